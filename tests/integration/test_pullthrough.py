"""Pull-through caches (issue 17): a proxy rule makes hub/ a cache of
Debian's docker-registry (htpasswd and TLS) started here. Ten concurrent
first pulls of a 256 MiB image through three nodes make one upstream
transfer of it; a tag moved upstream is seen once the ttl passed, not
before; with the upstream stopped, what is cached still pulls; pushes
under the prefix are refused; an index comes with its children."""
import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import threading
import time

import clients
import images
from cluster import ClusterTestCase, note, wait_for
from test_copy import USER, PASSWORD, Dist, atoll_copy, creds_file

ACCEPT = ", ".join((images.OCI_MANIFEST, images.OCI_INDEX))
BIG = 256 << 20
TTL_S = 3


@contextlib.contextmanager
def stream(node, path, timeout=120):
    """A GET whose answer is read as it comes."""
    host, port = node.addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        yield conn.getresponse()
    finally:
        conn.close()


class PullThroughTest(ClusterTestCase):
    def setUp(self):
        if shutil.which("docker-registry") is None:
            self.skipTest("no docker-registry")
        self.dist = Dist(self, accesslog=True)
        self.creds = creds_file(self, f"{USER}:{PASSWORD}")
        self.start_cluster(3, prefix="pt")
        self.set_rules(self.rule())
        # the images reach docker-registry from a node outside the cluster:
        # the cluster holds none of their blobs before it pulls them
        self.src = self.start_node()

    def rule(self, **kw):
        r = {"name": "up", "direction": "proxy", "prefix": "hub/",
             "remote": {"urls": [self.dist.ref_base],
                        "credentials_file": self.creds,
                        "ca_file": self.dist.pki.ca},
             "ttl": f"{TTL_S}s"}
        r.update(kw)
        return r

    def set_rules(self, *rules):
        r = self.admin(self.cluster.followers()[0], "PUT",
                       "/_atoll/replication", {"rules": list(rules)})
        self.assertEqual(r.status, 200, r)
        for n in self.cluster.nodes:
            self.cluster.wait_caught_up(n)

    def upstream(self, repo, tag, img):
        """img as repo:tag in docker-registry (pushed to a node outside the
        cluster, then atoll copy)."""
        images.push(self.src, repo, tag, img, blob_timeout=120)
        atoll_copy("--dest-creds-file", self.creds, "--dest-ca",
                   self.dist.pki.ca, f"http://{self.src.addr}/{repo}:{tag}",
                   f"{self.dist.ref_base}/{repo}", check=0)

    def upstream_gets(self, digest):
        """Blob GETs of digest that docker-registry answered 200."""
        with open(self.dist.log_path, "rb") as f:
            text = f.read().decode(errors="replace")
        return len(re.findall(r'"GET /v2/[^ ]*/blobs/%s HTTP/[0-9.]+" 200'
                              % re.escape(digest), text))

    def manifest(self, node, repo, ref, timeout=60):
        return node.request("GET", f"/v2/{repo}/manifests/{ref}",
                            headers={"Accept": ACCEPT}, timeout=timeout)

    def pull(self, node, repo, tag):
        """The manifest and every blob, each checked; returns the
        manifest's bytes."""
        r = self.manifest(node, repo, tag)
        if r.status != 200:
            raise AssertionError(f"{node.addr} {repo}:{tag}: {r!r}")
        m = json.loads(r.body)
        for desc in [m["config"]] + m["layers"]:
            h = hashlib.sha256()
            got = 0
            with stream(node, f"/v2/{repo}/blobs/{desc['digest']}") as resp:
                if resp.status != 200:
                    raise AssertionError(f"{node.addr} blob: {resp.status}")
                while chunk := resp.read(1 << 20):
                    h.update(chunk)
                    got += len(chunk)
            if "sha256:" + h.hexdigest() != desc["digest"] or \
                    got != desc["size"]:
                raise AssertionError(f"{node.addr}: blob {desc['digest']} "
                                     f"came back different ({got} bytes)")
        return r.body

    def test_one_upstream_transfer_ttl_and_outage(self):
        c = self.cluster
        big = images.image([os.urandom(BIG)])
        self.upstream("app", "v1", big)
        small_a = images.small("a")
        self.upstream("small", "latest", small_a)
        base = self.upstream_gets(big.layer_digests[0])

        # ten concurrent first pulls through three nodes
        errors = []
        t0 = time.time()

        def one(i):
            try:
                body = self.pull(c.nodes[i % 3], "hub/app", "v1")
                if body != big.manifest:
                    errors.append(f"puller {i}: another manifest")
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(f"puller {i}: {e}")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual(errors, [])
        note(f"pull-through: 10 first pulls of {BIG >> 20} MiB through 3 "
             f"nodes in {time.time() - t0:.1f} s")
        self.assertEqual(self.upstream_gets(big.layer_digests[0]) - base, 1,
                         "one upstream transfer of the big layer")
        # by digest too, and the tags list shows what is cached
        self.assertEqual(self.manifest(c.nodes[1], "hub/app",
                                       big.digest).body, big.manifest)

        # a tag moved upstream: the old one within the ttl, the new after
        self.assertEqual(self.pull(c.nodes[2], "hub/small", "latest"),
                         small_a.manifest)
        seen = time.time()
        small_b = images.small("b")
        self.upstream("small", "latest", small_b)
        got = self.manifest(c.nodes[2], "hub/small", "latest").body
        if time.time() - seen < TTL_S - 0.5:
            self.assertEqual(got, small_a.manifest, "changed before the ttl")
        wait_for(lambda: self.manifest(c.nodes[2], "hub/small",
                                       "latest").body == small_b.manifest,
                 TTL_S + 20, what="the moved tag seen after the ttl")
        self.assertEqual(self.pull(c.nodes[0], "hub/small", "latest"),
                         small_b.manifest)

        # the upstream stops: what is cached still pulls, on every node
        self.dist.close()
        time.sleep(TTL_S + 0.5)  # every tag is due for a check
        for n in c.nodes:
            t1 = time.time()
            self.assertEqual(self.pull(n, "hub/app", "v1"), big.manifest)
            self.assertLess(time.time() - t1, 30)
            self.assertEqual(self.pull(n, "hub/small", "latest"),
                             small_b.manifest)
        r = self.manifest(c.nodes[1], "hub/never", "v1")
        self.assertEqual(r.status, 503, r)
        self.assertIn("UNAVAILABLE", r.body.decode())

    def test_pushes_refused_index_and_rules(self):
        c = self.cluster
        n = c.followers()[0]
        img = images.small("x")
        r = n.request("POST", "/v2/hub/app/blobs/uploads/")
        self.assertEqual(r.status, 405, r)
        self.assertIn("pull-through", r.body.decode())
        r = n.request("PUT", "/v2/hub/app/manifests/v1", body=img.manifest,
                      headers={"Content-Type": images.OCI_MANIFEST})
        self.assertEqual(r.status, 405, r)
        self.assertIn("UNSUPPORTED", r.body.decode())
        # outside the prefix, pushes go on
        images.push(n, "hubx/app", "v1", img)

        # an index brings its children; each pulls by digest
        kids = [images.small(f"k{i}") for i in range(2)]
        for k in kids:
            images.push(self.src, "multi", k.digest, k)
        index = json.dumps({
            "schemaVersion": 2, "mediaType": images.OCI_INDEX,
            "manifests": [images.descriptor(images.OCI_MANIFEST, k.manifest)
                          for k in kids]}).encode()
        r, _ = self.src.push_manifest("multi", "all", index, images.OCI_INDEX)
        self.assertEqual(r.status, 201, r)
        atoll_copy("--dest-creds-file", self.creds, "--dest-ca",
                   self.dist.pki.ca, f"http://{self.src.addr}/multi:all",
                   f"{self.dist.ref_base}/multi", check=0)
        r = self.manifest(c.nodes[2], "hub/multi", "all")
        self.assertEqual((r.status, r.body), (200, index))
        for k in kids:
            self.assertEqual(self.pull(c.nodes[1], "hub/multi", k.digest),
                             k.manifest)
        # a real client through the cache: skopeo, on a node that has not
        # pulled it yet, checks every digest itself
        if clients.SKOPEO is not None:
            k = images.small("skopeo")
            self.upstream("viaskopeo", "v1", k)
            back = clients.skopeo_pull(
                clients.docker_ref(c.nodes[0].addr, "hub/viaskopeo", "v1"),
                os.path.join(self.temp_dir(), "layout"), "v1")
            # (skopeo writes the manifest and layers its own way: compare
            # contents)
            self.assertEqual(back.config, k.config)
            self.assertEqual(back.uncompressed_layers(), k.layers)
        # unknown upstream: 404 with the registry's word
        r = self.manifest(c.nodes[0], "hub/multi", "nope")
        self.assertEqual(r.status, 404, r)

        # the leader's ask endpoint: bad input gets a clear 4xx, a
        # follower says it does not lead, no secret gets 401
        ld, fl = c.leader(), c.followers()[0]
        for path, want in (("/_atoll/pullthrough/-bad/hub/multi", 400),
                           ("/_atoll/pullthrough/sha256:xyz/hub/multi", 400),
                           ("/_atoll/pullthrough/all", 400),
                           ("/_atoll/pullthrough/all/", 400),
                           ("/_atoll/pullthrough/all/nothub/x", 404)):
            r = ld.peer_request("GET", path)
            self.assertEqual(r.status, want, (path, r))
        self.assertEqual(fl.peer_request(
            "GET", "/_atoll/pullthrough/all/hub/multi").status, 503)
        self.assertEqual(ld.peer_request(
            "GET", "/_atoll/pullthrough/all/hub/multi",
            secret=None).status, 401)
        self.assertEqual(ld.peer_request(
            "GET", "/_atoll/pullthrough/all/hub/multi").status, 200)

        # rules: bad prefixes, overlaps, fields of other kinds; no run
        f = c.followers()[0]
        for bad in (self.rule(prefix="hub"), self.rule(prefix="/hub/"),
                    self.rule(prefix=""), self.rule(tags={"include": "x"}),
                    self.rule(ttl="soon")):
            r = self.admin(f, "PUT", "/_atoll/replication", {"rules": [bad]})
            self.assertEqual(r.status, 400, (bad, r))
        r = self.admin(f, "PUT", "/_atoll/replication",
                       {"rules": [self.rule(),
                                  self.rule(name="up2", prefix="hub/x/")]})
        self.assertEqual(r.status, 400, r)
        self.assertIn("overlap", r.body.decode())
        r = self.admin(f, "POST", "/_atoll/replication/run?rule=up")
        self.assertEqual(r.status, 400, r)
        # a second upstream under its own prefix, and the first removed:
        # hub/ takes pushes again
        self.set_rules(self.rule(name="quay", prefix="quay/"))
        r = wait_for(lambda: (x := n.request(
            "POST", "/v2/hub/app/blobs/uploads/")).status == 202 and x, 10,
            what="hub/ writable again")
        r = n.request("POST", "/v2/quay/app/blobs/uploads/")
        self.assertEqual(r.status, 405, r)
        self.assertEqual(self.pull(c.nodes[0], "quay/multi", kids[0].digest),
                         kids[0].manifest)
