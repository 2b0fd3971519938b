"""The container image (deploy/image/build-image, `make image`): two builds
of one binary give one manifest digest; skopeo reads its config; it pushes
into a running node and comes back with the same digest; and its
filesystem alone runs `atoll version` (no container runtime: the image's
own dynamic loader and libraries, none from the host)."""
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest

import harness
from clients import docker_ref, needs_skopeo, skopeo

SCRIPT = os.path.join(harness.ROOT, "deploy", "image", "build-image")
RELEASE = os.path.join(harness.ROOT, "build", "release", "atoll")
UID = 65532


def image_binary():
    """The release binary when built (what `make image` uses), else the
    binary under test (ATOLL_BIN, debug by default)."""
    return RELEASE if os.path.exists(RELEASE) else harness.ATOLL_BIN


def build(binary, out):
    """Run the builder into out; its stdout."""
    p = harness.run_tool([SCRIPT, binary, out, "--epoch", "1700000000"],
                         timeout=300)
    return p.stdout


def read_json(path):
    with open(path, "rb") as f:
        return json.load(f)


class Layout:
    """An OCI layout the builder wrote: its index, manifest, config and the
    path of its one layer blob."""

    def __init__(self, path):
        self.path = path
        self.index = read_json(os.path.join(path, "index.json"))
        self.digest = self.index["manifests"][0]["digest"]
        self.manifest = read_json(self.blob_path(self.digest))
        self.config = read_json(self.blob_path(self.manifest["config"]["digest"]))
        self.layer = self.blob_path(self.manifest["layers"][0]["digest"])

    def blob_path(self, digest):
        return os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])


@needs_skopeo
class ImageTest(harness.NodeTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="atoll-image-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.binary = image_binary()
        cls.out1 = build(cls.binary, os.path.join(cls.tmp, "one"))
        cls.out2 = build(cls.binary, os.path.join(cls.tmp, "two"))
        cls.img = Layout(os.path.join(cls.tmp, "one"))

    def test_reproducible(self):
        other = Layout(os.path.join(self.tmp, "two"))
        self.assertEqual(self.img.digest, other.digest)
        self.assertIn(f"manifest digest: {self.img.digest}", self.out1)
        self.assertIn(f"manifest digest: {other.digest}", self.out2)
        self.assertRegex(self.out1, r"layer: \d+ bytes compressed .*, \d+ bytes uncompressed")
        for name in ("index.json", "oci-layout"):
            with open(os.path.join(self.tmp, "one", name), "rb") as a, \
                    open(os.path.join(self.tmp, "two", name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)

    def test_skopeo_inspect_config(self):
        cfg = json.loads(skopeo("inspect", "--config", f"oci:{self.img.path}").stdout)
        c = cfg["config"]
        self.assertEqual(c["User"], "65532:65532")
        self.assertEqual(c["Entrypoint"], ["/usr/bin/atoll"])
        self.assertEqual(c["Cmd"], ["serve", "--listen", "0.0.0.0:5000",
                                    "--data-dir", "/data"])
        self.assertEqual(set(c["ExposedPorts"]), {"5000/tcp", "5001/tcp", "5001/udp"})
        self.assertEqual(c["WorkingDir"], "/data")
        version = harness.run_tool([self.binary, "version"]).stdout.split()[1]
        labels = c["Labels"]
        self.assertEqual(labels["org.opencontainers.image.version"], version)
        self.assertRegex(labels["org.opencontainers.image.revision"], r"^([0-9a-f]{40}|unknown)$")
        self.assertIn("org.opencontainers.image.source", labels)
        self.assertEqual(cfg["os"], "linux")
        info = json.loads(skopeo("inspect", f"oci:{self.img.path}").stdout)
        self.assertEqual(info["Digest"], self.img.digest)
        self.assertEqual(len(info["Layers"]), 1)

    def test_layer_contents(self):
        with tarfile.open(self.img.layer, "r:gz") as tf:
            members = tf.getmembers()
        names = [m.name for m in members]
        self.assertEqual(names, sorted(names), "tar entries not sorted")
        files = {m.name for m in members if m.isfile()}
        self.assertIn("usr/bin/atoll", files)
        self.assertIn("etc/ssl/certs/ca-certificates.crt", files)
        self.assertIn("etc/passwd", files)
        self.assertIn("etc/group", files)
        tops = {n.split("/")[0] for n in names}
        self.assertLessEqual(tops, {"data", "etc", "usr", "lib", "lib64"})
        others = files - {"usr/bin/atoll", "etc/ssl/certs/ca-certificates.crt",
                          "etc/passwd", "etc/group"}
        for n in others:
            self.assertRegex(n, r"^(usr/)?lib(64|32)?/.*\.so(\.[0-9.]+)?$", "not a library")
        for m in members:
            self.assertEqual(m.mtime, 1700000000, m.name)
            self.assertFalse(m.issym() or m.islnk(), m.name)
            if m.name == "data":
                self.assertTrue(m.isdir())
                self.assertEqual((m.uid, m.gid), (UID, UID))
            else:
                self.assertEqual((m.uid, m.gid), (0, 0), m.name)
        data = [m for m in members if m.name == "data"]
        self.assertEqual(len(data), 1, "no /data")
        self.assertTrue(data[0].mode & 0o200, "/data not writable by its owner")

    def test_push_into_atoll(self):
        ref = docker_ref(self.node.addr, "atoll/atoll", "test")
        skopeo("copy", "--dest-tls-verify=false", f"oci:{self.img.path}", ref)
        r = self.node.request("GET", "/v2/atoll/atoll/manifests/test", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("docker-content-digest"), self.img.digest)
        with open(self.img.blob_path(self.img.digest), "rb") as f:
            self.assertEqual(r.body, f.read())
        info = json.loads(skopeo("inspect", "--tls-verify=false", ref).stdout)
        self.assertEqual(info["Digest"], self.img.digest)
        self.assert_node_alive()

    def test_runs_from_its_own_filesystem(self):
        root = tempfile.mkdtemp(prefix="atoll-image-root-")
        self.addCleanup(shutil.rmtree, root, True)
        with tarfile.open(self.img.layer, "r:gz") as tf:
            tf.extractall(root, filter="tar")
        loaders = [n for n in ("lib64/ld-linux-x86-64.so.2", "lib/ld-linux-aarch64.so.1")
                   if os.path.exists(os.path.join(root, n))]
        self.assertTrue(loaders, "no dynamic loader in the image")
        libdirs = sorted({os.path.dirname(os.path.join(dp, f))
                          for dp, _, fs in os.walk(root) for f in fs if ".so" in f})
        cmd = [os.path.join(root, loaders[0]), "--inhibit-cache",
               "--library-path", ":".join(libdirs),
               os.path.join(root, "usr", "bin", "atoll"), "version"]
        env = {"PATH": "/usr/bin:/bin", "LD_DEBUG": "libs"}
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        self.assertRegex(p.stdout, r"^atoll \S+")
        # every library the loader initialised came from the image
        inits = [line.split("calling init:", 1)[1].strip()
                 for line in p.stderr.splitlines() if "calling init:" in line]
        self.assertTrue(inits, p.stderr[-2000:])
        for path in inits:
            self.assertTrue(path.startswith(root + "/"), f"loaded from the host: {path}")


if __name__ == "__main__":
    unittest.main()
