"""Nodes reached by host name: with --advertise localhost every node
advertises "localhost:<port>", so the raft transport must resolve a name
(asynchronously, in libuv's thread pool) for every connection; the cluster
forms, replicates and fails over exactly as with IP addresses."""
import unittest

from cluster import ClusterTestCase, get_tag, push_small


class AdvertisedNamesTest(ClusterTestCase):
    def setUp(self):
        self.start_cluster(3, prefix="names", extra=["--advertise", "localhost"])

    def test_cluster_over_names(self):
        c = self.cluster
        members = c.members()
        self.assertEqual(len(members["nodes"]), 3)
        for n in members["nodes"]:
            self.assertTrue(n["peer_address"].startswith("localhost:"), n)
            self.assertTrue(n["api_address"].startswith("localhost:"), n)
        self.assertEqual(sum(1 for n in members["nodes"]
                             if n["role"] == "voter"), 3)
        r, digest, _ = push_small(c.nodes[0], "names/app", "v1")
        self.assertEqual(r.status, 201)
        for node in c.nodes:
            r = get_tag(node, "names/app", "v1")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("docker-content-digest"), digest)
        # failover: the new leader dials the others by name
        leader = c.leader()
        leader.kill()
        new = c.wait_leader(exclude=[leader])
        r, digest2, _ = push_small(new, "names/app", "v2")
        self.assertEqual(r.status, 201)
        for node in c.live():
            r = get_tag(node, "names/app", "v2")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("docker-content-digest"), digest2)


if __name__ == "__main__":
    unittest.main()
