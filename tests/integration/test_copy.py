"""atoll copy (issue 17): an image, an index with its children, or every
tag of a repository, from one registry to another with digests kept,
against Debian's docker-registry (a real foreign registry) with htpasswd
and TLS started here; a second run copies nothing; bad credentials and an
untrusted certificate are refused with the registry's words."""
import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import unittest

import images
import pki
from harness import (ATOLL_BIN, TestCase, free_port, sha256_digest,
                     skip_unless_atoll, wait_for)
from test_token import bcrypt_line

USER, PASSWORD = "copier", "copy-pass-1"


class Dist:
    """docker-registry over TLS with an htpasswd user; with accesslog, its
    access log lines go to log_path too."""

    def __init__(self, test, accesslog=False):
        self.dir = test.temp_dir()
        self.pki = pki.Pki(self.dir)
        cert, key = self.pki.issue(1)
        htp = os.path.join(self.dir, "htpasswd")
        with open(htp, "w") as f:
            f.write(bcrypt_line(USER, PASSWORD))
        self.port = free_port()
        cfg = os.path.join(self.dir, "config.yml")
        with open(cfg, "w") as f:
            f.write(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: {"false" if accesslog else "true"}
storage:
  filesystem:
    rootdirectory: {self.dir}/data
  delete:
    enabled: true
auth:
  htpasswd:
    realm: copy-test
    path: {htp}
http:
  addr: 127.0.0.1:{self.port}
  secret: copy-test-secret
  tls:
    certificate: {cert}
    key: {key}
""")
        self.log_path = os.path.join(self.dir, "log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg],
                                     stdout=self.log, stderr=self.log)
        test.addCleanup(self.close)
        wait_for(self.up, 20, what="docker-registry up")

    def close(self):
        if self.log.closed:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def up(self):
        try:
            return self.request("GET", "/v2/")[0] in (200, 401)
        except OSError:
            return False

    def request(self, method, path, accept=None):
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                           context=ctx, timeout=30)
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        hdrs = {"Authorization": "Basic " + auth}
        if accept:
            hdrs["Accept"] = accept
        try:
            conn.request(method, path, headers=hdrs)
            r = conn.getresponse()
            return r.status, r.read(), r.getheader("Content-Type")
        finally:
            conn.close()

    def tags(self, repo):
        """The tags of repo there (none when it does not exist)."""
        st, body, _ = self.request("GET", f"/v2/{repo}/tags/list")
        if st == 404:
            return set()
        assert st == 200, body
        return set(json.loads(body).get("tags") or [])

    @property
    def ref_base(self):
        return f"https://127.0.0.1:{self.port}"


def creds_file(test, text):
    path = os.path.join(test.temp_dir(), "creds")
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
    return path


def atoll_copy(*args, check=None, env=None):
    p = subprocess.run([ATOLL_BIN, "copy"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120,
                       env=dict(os.environ, **env) if env else None)
    out = p.stdout.decode() + p.stderr.decode()
    if check is not None and p.returncode != check:
        raise AssertionError(f"atoll copy exit {p.returncode}: {out}")
    return p.returncode, out


ACCEPT = ", ".join((images.OCI_MANIFEST, images.OCI_INDEX))


class CopyTest(TestCase):
    def setUp(self):
        skip_unless_atoll(self)
        if shutil.which("docker-registry") is None:
            self.skipTest("no docker-registry")
        self.node = self.start_node()
        self.dist = Dist(self)
        self.creds = creds_file(self, f"{USER}:{PASSWORD}")
        self.dest = ["--dest-creds-file", self.creds, "--dest-ca",
                     self.dist.pki.ca]

    def src(self, ref):
        return f"http://{self.node.addr}/{ref}"

    def dst(self, ref):
        return f"{self.dist.ref_base}/{ref}"

    def assert_same_manifest(self, repo, ref, body):
        st, got, ct = self.dist.request("GET", f"/v2/{repo}/manifests/{ref}",
                                        accept=ACCEPT)
        self.assertEqual(st, 200)
        self.assertEqual(got, body)

    def test_image_to_foreign_registry_and_back(self):
        img = images.image([os.urandom(3000), os.urandom(70000)])
        images.push(self.node, "src/app", "v1", img)
        rc, out = atoll_copy(*self.dest, self.src("src/app:v1"),
                             self.dst("dst/app"), check=0)
        self.assertIn("copied 1 manifest(s) and 3 blob(s)", out)
        self.assert_same_manifest("dst/app", "v1", img.manifest)
        self.assert_same_manifest("dst/app", img.digest, img.manifest)
        for d, data in img.blobs().items():
            st, got, _ = self.dist.request("GET", f"/v2/dst/app/blobs/{d}")
            self.assertEqual((st, got), (200, data))
        # again: nothing copied twice
        rc, out = atoll_copy(*self.dest, self.src("src/app:v1"),
                             self.dst("dst/app:v1"), check=0)
        self.assertIn("copied 0 manifest(s) and 0 blob(s), 0 bytes; "
                      "already there: 1 manifest(s)", out)
        # and back, every tag, into a new repository of atoll
        img2 = images.image([os.urandom(500)])
        images.push(self.node, "src/app", "v2", img2)
        atoll_copy(*self.dest, self.src("src/app:v2"), self.dst("dst/app"),
                   check=0)
        rc, out = atoll_copy("--src-creds-file", self.creds, "--src-ca",
                             self.dist.pki.ca, "--all-tags",
                             self.dst("dst/app"), self.src("back/app"),
                             check=0)
        self.assertIn("copied 2 manifest(s)", out)
        for tag, want in (("v1", img), ("v2", img2)):
            r = self.node.request("GET", f"/v2/back/app/manifests/{tag}",
                                  headers={"Accept": ACCEPT})
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, want.manifest)

    def test_index_with_children(self):
        kids = [images.image([os.urandom(100 + i)]) for i in range(2)]
        for i, k in enumerate(kids):
            images.push(self.node, "src/multi", k.digest, k)
        index = json.dumps({
            "schemaVersion": 2, "mediaType": images.OCI_INDEX,
            "manifests": [images.descriptor(images.OCI_MANIFEST, k.manifest)
                          for k in kids]}).encode()
        r, idx = self.node.push_manifest("src/multi", "all", index,
                                         images.OCI_INDEX)
        self.assertEqual(r.status, 201, r)
        rc, out = atoll_copy(*self.dest, self.src("src/multi:all"),
                             self.dst("dst/multi"), check=0)
        self.assertIn("copied 3 manifest(s) and 4 blob(s)", out)
        self.assert_same_manifest("dst/multi", "all", index)
        for k in kids:
            self.assert_same_manifest("dst/multi", k.digest, k.manifest)

    def test_referrers_follow_their_subject(self):
        img = images.image([os.urandom(2000)])
        images.push(self.node, "src/signed", "v1", img)
        sig = images.image([b"signature-bytes"], subject=images.descriptor(
            images.OCI_MANIFEST, img.manifest),
            artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json")
        images.push(self.node, "src/signed", sig.digest, sig)
        # atoll to atoll: the referrer is found at the destination
        rc, out = atoll_copy(self.src("src/signed:v1"),
                             self.src("dst/signed"), check=0)
        self.assertIn("copied 2 manifest(s)", out)
        r = self.node.request("GET",
                              f"/v2/dst/signed/referrers/{img.digest}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([m["digest"] for m in r.json()["manifests"]],
                         [sig.digest])
        # to distribution (no referrers API there): the manifest goes too
        atoll_copy(*self.dest, self.src("src/signed:v1"),
                   self.dst("dst/signed"), check=0)
        self.assert_same_manifest("dst/signed", sig.digest, sig.manifest)

    def test_tag_filters_and_deletes(self):
        imgs = {t: images.small(t) for t in ("v1.0", "v1.1", "v2.0-rc1",
                                               "dev")}
        for t, img in imgs.items():
            images.push(self.node, "src/filt", t, img)
        # latest: the same manifest as v1.1
        images.push(self.node, "src/filt", "latest", imgs["v1.1"])
        filt = ["--all-tags", "--tags-regex", "^v[0-9]", "--exclude-regex",
                "-rc"]
        atoll_copy(*self.dest, *filt, self.src("src/filt"),
                   self.dst("dst/filt"), check=0)
        self.assertEqual(self.dist.tags("dst/filt"), {"v1.0", "v1.1"})
        # a tag gone at the source stays without --delete-missing
        r = self.node.request("DELETE", "/v2/src/filt/manifests/v1.0")
        self.assertEqual(r.status, 202, r)
        atoll_copy(*self.dest, *filt, self.src("src/filt"),
                   self.dst("dst/filt"), check=0)
        self.assertEqual(self.dist.tags("dst/filt"), {"v1.0", "v1.1"})
        rc, out = atoll_copy(*self.dest, *filt, "--delete-missing",
                             self.src("src/filt"), self.dst("dst/filt"),
                             check=0)
        self.assertIn("deleted 1 tag(s)", out)
        self.assertEqual(self.dist.tags("dst/filt"), {"v1.1"})
        # distribution deletes by digest only: a tag the filters do not
        # select (latest) on the same manifest keeps it there
        atoll_copy(*self.dest, self.src("src/filt:latest"),
                   self.dst("dst/filt"), check=0)
        r = self.node.request("DELETE", "/v2/src/filt/manifests/v1.1")
        self.assertEqual(r.status, 202, r)
        rc, out = atoll_copy(*self.dest, *filt, "--delete-missing",
                             self.src("src/filt"), self.dst("dst/filt"),
                             check=0)
        self.assertIn("deleted 0 tag(s)", out)
        self.assertIn("latest (kept) points to the same manifest", out)
        self.assertEqual(self.dist.tags("dst/filt"), {"v1.1", "latest"})
        # and back into atoll
        atoll_copy("--src-creds-file", self.creds, "--src-ca",
                   self.dist.pki.ca, "--all-tags", self.dst("dst/filt"),
                   self.src("back/filt"), check=0)
        rc, out = atoll_copy(*["--src-creds-file", self.creds, "--src-ca",
                               self.dist.pki.ca], "--all-tags",
                             "--tags-regex", "^latest$", "--delete-missing",
                             self.dst("dst/filt"), self.src("back/filt"),
                             check=0)
        self.assertIn("deleted 0 tag(s)", out)  # latest is there
        r = self.node.request("GET", "/v2/back/filt/tags/list")
        self.assertEqual(set(r.json()["tags"]), {"v1.1", "latest"})
        # atoll deletes a tag alone: v1.1 goes, latest (same manifest) stays
        rc, out = atoll_copy("--all-tags", "--tags-regex", "^v1",
                             "--delete-missing", self.src("src/filt"),
                             self.src("back/filt"), check=0)
        self.assertIn("deleted 1 tag(s)", out)
        r = self.node.request("GET", "/v2/back/filt/tags/list")
        self.assertEqual(set(r.json()["tags"]), {"latest"})

    def test_semver_filter(self):
        for t in ("v1.0.0", "v1.4.2", "v2.0.0", "1.5.0-rc.1", "latest"):
            images.push(self.node, "src/ver", t, images.small(t))
        rc, out = atoll_copy(*self.dest, "--all-tags", "--semver",
                             ">=1.2 <2", self.src("src/ver"),
                             self.dst("dst/ver"), check=0)
        self.assertEqual(self.dist.tags("dst/ver"), {"v1.4.2", "1.5.0-rc.1"})
        rc, out = atoll_copy(*self.dest, "--all-tags", "--semver", ">=x",
                             self.src("src/ver"), self.dst("dst/ver"))
        self.assertEqual(rc, 2)
        self.assertIn("semver range", out)

    def test_blobs_stream(self):
        """Blobs go from the source's GET to the destination's PUT through
        a pipe, not a file: with no usable temporary directory the copy
        still works, both ways; each side checks the digest."""
        img = images.image([os.urandom(3 << 20), os.urandom(1000)])
        images.push(self.node, "src/streamed", "v1", img)
        nodir = {"TMPDIR": os.path.join(self.temp_dir(), "missing")}
        atoll_copy(*self.dest, self.src("src/streamed:v1"),
                   self.dst("dst/streamed"), check=0, env=nodir)
        self.assert_same_manifest("dst/streamed", "v1", img.manifest)
        atoll_copy("--src-creds-file", self.creds, "--src-ca",
                   self.dist.pki.ca, self.dst("dst/streamed:v1"),
                   self.src("back/streamed"), check=0, env=nodir)
        for d, data in img.blobs().items():
            r = self.node.request("GET", f"/v2/back/streamed/blobs/{d}")
            self.assertEqual((r.status, r.body), (200, data))

    def test_docker_config_credentials(self):
        """A Docker config.json (a dockerconfigjson Secret) as the
        credentials file: the entry of the registry's host is used; with
        none for it, the copy goes anonymous and is refused."""
        img = images.small("cfg")
        images.push(self.node, "src/cfg", "v1", img)
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        host = f"127.0.0.1:{self.dist.port}"
        good = creds_file(self, json.dumps(
            {"auths": {"other.example": {"auth": "eDp5"},
                       f"https://{host}/v1/": {"auth": auth}}}))
        atoll_copy("--dest-creds-file", good, "--dest-ca", self.dist.pki.ca,
                   self.src("src/cfg:v1"), self.dst("dst/cfg"), check=0)
        self.assert_same_manifest("dst/cfg", "v1", img.manifest)
        other = creds_file(self, json.dumps(
            {"other.example": {"username": "x", "password": "y"}}))
        rc, out = atoll_copy("--dest-creds-file", other, "--dest-ca",
                             self.dist.pki.ca, self.src("src/cfg:v1"),
                             self.dst("dst/cfg2"))
        self.assertEqual(rc, 1, out)
        self.assertIn("wants a user name and password", out)

    def test_rate(self):
        """--rate N: at most N requests per second to each host, every
        request counted (the ping, manifests, blobs, referrers)."""
        import time
        img = images.image([os.urandom(100), os.urandom(200)])
        images.push(self.node, "src/rated", "v1", img)
        t0 = time.monotonic()
        rc, out = atoll_copy(*self.dest, "--rate", "4",
                             self.src("src/rated:v1"), self.dst("dst/rated"),
                             check=0)
        took = time.monotonic() - t0
        # the source alone answers a ping, the manifest, 3 blobs and the
        # referrers: 6 requests, 5 gaps of 250 ms
        self.assertGreaterEqual(took, 1.2, out)
        self.assert_same_manifest("dst/rated", "v1", img.manifest)
        for bad in ("0", "-1", "x", "20000"):
            rc, out = atoll_copy("--rate", bad, self.src("src/rated:v1"),
                                 self.dst("dst/rated"))
            self.assertEqual(rc, 2, (bad, out))

    def test_refusals(self):
        img = images.small("r")
        images.push(self.node, "src/r", "v1", img)
        bad = creds_file(self, f"{USER}:wrong-password-xyz")
        rc, out = atoll_copy("--dest-creds-file", bad, "--dest-ca",
                             self.dist.pki.ca, self.src("src/r:v1"),
                             self.dst("dst/r"))
        self.assertEqual(rc, 1, out)
        self.assertIn("401", out)
        self.assertNotIn("wrong-password-xyz", out)
        # the registry's certificate is not trusted without its CA
        rc, out = atoll_copy("--dest-creds-file", self.creds,
                             self.src("src/r:v1"), self.dst("dst/r"))
        self.assertEqual(rc, 1, out)
        self.assertIn("certificate", out.lower())
        # unknown tag: 404 in words
        rc, out = atoll_copy(*self.dest, self.src("src/r:nope"),
                             self.dst("dst/r"))
        self.assertEqual(rc, 1, out)
        self.assertIn("404", out)
        # bad usage
        for args in (["only-one-arg"],
                     ["--tags-regex", "x", self.src("src/r:v1"),
                      self.dst("dst/r")],
                     ["--all-tags", "--tags-regex", "(", self.src("src/r"),
                      self.dst("dst/r")],
                     ["--all-tags", "--tags-regex", "a" + "+" * 40,
                      self.src("src/r"), self.dst("dst/r")]):
            rc, out = atoll_copy(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn("usage", out)


if __name__ == "__main__":
    unittest.main()
