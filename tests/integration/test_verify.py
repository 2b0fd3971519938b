"""A node never serves bytes whose sha256 differs from the digest, also when
its own stored copy changed on disk after the push (DESIGN.md section 6,
C3): a blob file is verified the first time it is served after any change
to it; a corrupt copy is removed and the blob is fetched again from another
holder, or the client gets a retryable 503 when there is none."""
import hashlib
import os
import unittest

import harness
from cluster import ClusterTestCase, wait_for
from harness import blob_path, corrupt_blob, sha256_digest


class SingleNodeVerifyTest(harness.TestCase):
    def setUp(self):
        harness.skip_unless_atoll(self)
        self.node = self.start_node()

    def test_corrupt_local_copy_is_never_served(self):
        n = self.node
        repo = "verify/app"
        data = os.urandom(3 << 20)
        d = n.push_blob(repo, data)
        # served (and verified) once, then served again from the cache
        for _ in range(2):
            r = n.request("GET", f"/v2/{repo}/blobs/{d}")
            self.assertEqual(r.status, 200)
            self.assertEqual(sha256_digest(r.body), d)
        corrupt_blob(n, d)
        r = n.request("GET", f"/v2/{repo}/blobs/{d}")
        self.assertNotEqual(r.status, 200, "served a corrupt copy")
        self.assertEqual(r.status, 503, r)  # known, no good copy anywhere
        self.assertFalse(os.path.exists(blob_path(n, d)),
                         "the corrupt copy must be removed")
        # a range of it: same rule
        r = n.request("GET", f"/v2/{repo}/blobs/{d}",
                      headers={"Range": "bytes=0-9"})
        self.assertNotIn(r.status, (200, 206))
        # pushed again: served again, byte-exact
        self.assertEqual(n.push_blob(repo, data), d)
        r = n.request("GET", f"/v2/{repo}/blobs/{d}")
        self.assertEqual(r.status, 200)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), d.split(":")[1])
        # a Range request of a verified file
        r = n.request("GET", f"/v2/{repo}/blobs/{d}",
                      headers={"Range": "bytes=10-19"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, data[10:20])


class ClusterVerifyTest(ClusterTestCase):
    def setUp(self):
        self.start_cluster(2, prefix="verify", extra=["--min-copies", "2"])

    def test_corrupt_copy_refetched_from_other_holder(self):
        c = self.cluster
        n0, n1 = c.nodes
        repo = "verify/two"
        data = os.urandom(2 << 20)
        # min_copies 2: the manifest PUT answers once n1 holds a copy too
        # (it asks again every 2 s; a lone blob gets a single ask, which a
        # loaded machine can lose)
        n0.push_image(repo, "v1", layers=(data,))
        d = sha256_digest(data)
        wait_for(lambda: os.path.exists(blob_path(n1, d)), 20,
                 what="copy on n1")
        corrupt_blob(n0, d)
        # n0's peer endpoint refuses its corrupt copy
        r = n0.peer_request("GET", f"/_atoll/blobs/{d}")
        self.assertEqual(r.status, 404, r)
        # the API on n0 fetches a good copy from n1
        r = n0.request("GET", f"/v2/{repo}/blobs/{d}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sha256_digest(r.body), d)
        r = n0.request("GET", f"/v2/{repo}/blobs/{d}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sha256_digest(r.body), d)


if __name__ == "__main__":
    unittest.main()
