"""Three-node cluster basics: formation (members, status), linearizable tag
reads on every node right after a push (skopeo and HTTP), writes through a
follower, and read_consistency local with X-Atoll-Applied-Index /
X-Atoll-Min-Index. Skipped while atoll has no --peer-listen."""
import os
import shutil
import time
import unittest

import ocilayout
from clients import docker_ref, needs_skopeo, skopeo_push
from cluster import (ClusterTestCase, get_tag, push_small, require_members_cli,
                     wait_for)


class FormationTest(ClusterTestCase):
    """Bootstrap + 2 joins; writes and reads through every node."""

    @classmethod
    def setUpClass(cls):
        cls.start_class_cluster(3, prefix="form")

    def tearDown(self):
        self.assert_nodes_alive()

    def test_push_spread_over_nodes(self):
        """Blobs through one node, the manifest at once through another
        (a client behind a Service whose connections land on different
        pods): the manifest's check of its blobs reads at the leader's
        commit index when this node has not applied them yet, so it never
        answers MANIFEST_BLOB_UNKNOWN (issue 14's run of the chart found
        it)."""
        import images
        c = self.cluster
        nodes = c.nodes
        for i in range(30):
            img = images.small(f"spread{i}")
            a, b = nodes[i % 3], nodes[(i + 1) % 3]
            images.push_blobs(a, "spread/app", img)
            r = b.request("PUT", f"/v2/spread/app/manifests/t{i}",
                          body=img.manifest,
                          headers={"Content-Type": images.OCI_MANIFEST})
            self.assertEqual(r.status, 201, f"push {i} via {a.name}, "
                             f"manifest via {b.name}: {r!r}")

    def test_members_three_voters_one_leader(self):
        c = self.cluster
        names = {n.name for n in c.nodes}
        for n in c.nodes:
            doc = n.members()
            got = {m["name"]: m for m in doc["nodes"]}
            self.assertEqual(set(got), names, f"members on {n.name}: {doc}")
            self.assertTrue(all(m["role"] == "voter" for m in got.values()), doc)
            leaders = [m["name"] for m in got.values() if m.get("leader")]
            self.assertEqual(len(leaders), 1, f"leaders on {n.name}: {doc}")
            self.assertEqual(doc["leader"], leaders[0], doc)
            ids = [m["id"] for m in got.values()]
            self.assertEqual(len(set(ids)), 3, f"raft ids not unique: {doc}")
            self.assertTrue(all(isinstance(i, int) and i > 0 for i in ids), doc)
            for node in c.nodes:
                m = got[node.name]
                self.assertEqual(m["peer_address"], node.peer_addr, m)
                self.assertEqual(m["api_address"], node.addr, m)
        # every node agrees on who leads
        self.assertEqual(len({n.members()["leader"] for n in c.nodes}), 1)

    def test_status_cli_lists_members(self):
        require_members_cli()
        c = self.cluster
        leader = c.leader()
        for n in c.nodes:
            p = c.cli("status", "--addr", n.addr)
            for node in c.nodes:
                self.assertIn(node.name, p.stdout,
                              f"atoll status on {n.name} lacks {node.name}:\n"
                              f"{p.stdout}")
            self.assertIn(leader.name, p.stdout)
            # durability columns: blobs short of copies, copies in flight
            self.assertIn("UNDER", p.stdout)
            self.assertIn("COPYING", p.stdout)
            # the node's own document: with --json only
            self.assertNotIn('"under_replicated"', p.stdout)
            doc = c.cli("status", "--addr", n.addr, "--json").stdout
            self.assertIn('"under_replicated"', doc)
        p = c.cli("members", "--addr", c.nodes[1].addr)
        for node in c.nodes:
            self.assertIn(node.name, p.stdout, p.stdout)
        st = leader.status()
        self.assertEqual(st["state"], "leader", st)
        for f in c.followers(leader):
            self.assertEqual(f.status()["state"], "follower")

    def test_members_needs_no_auth_but_peer_port_does(self):
        c = self.cluster
        n = c.nodes[2]
        r = n.peer_request("GET", "/_atoll/members")
        self.assertEqual(r.status, 200, r)
        self.assertEqual({m["name"] for m in r.json()["nodes"]},
                         {x.name for x in c.nodes})
        r = n.peer_request("GET", "/_atoll/members", secret=None)
        self.assertEqual(r.status, 401, r)

    def test_http_push_then_read_everywhere(self):
        # 20 rounds: a new manifest under the same tag, pushed to a
        # rotating node, is what every node answers immediately after.
        c = self.cluster
        repo = "cluster/linear"
        for i in range(20):
            writer = c.nodes[i % 3]
            r, digest, body = push_small(writer, repo, "latest")
            self.assertEqual(r.status, 201, f"round {i} on {writer.name}: {r!r}")
            self.assertTrue(r.header("x-atoll-index"), f"no X-Atoll-Index: {r!r}")
            self.assert_tag_everywhere(repo, "latest", digest, body=body)

    @needs_skopeo
    def test_skopeo_push_then_read_everywhere(self):
        c = self.cluster
        repo = "cluster/skopeo"
        tmp = self.temp_dir("atoll-cl-skopeo-")
        for i in range(20):
            writer = c.nodes[i % 3]
            src = os.path.join(tmp, f"img{i}")
            img = ocilayout.build_layout(src, sizes=(256,), tag="v1")
            skopeo_push(src, "v1", docker_ref(writer.addr, repo, "v1"),
                        timeout=60)
            for n in c.nodes:
                r = get_tag(n, repo, "v1")
                self.assertEqual(r.status, 200, f"round {i} {n.name}: {r!r}")
                self.assertEqual(r.header("docker-content-digest"),
                                 img.digest,
                                 f"round {i}: {n.name} answered a stale "
                                 f"digest right after the push to "
                                 f"{writer.name}")
            shutil.rmtree(src, ignore_errors=True)

    def test_writes_through_follower(self):
        c = self.cluster
        leader = c.leader()
        f = c.followers(leader)[0]
        repo = "cluster/viafollower"
        r, d1, b1 = push_small(f, repo, "one")
        self.assertEqual(r.status, 201, r)
        idx = int(r.header("x-atoll-index"))
        self.assertGreater(idx, 0)
        # the answering follower has applied it already (C1)
        self.assertGreaterEqual(f.applied_index(), idx)
        r, d2, b2 = push_small(f, repo, "two")
        self.assertEqual(r.status, 201, r)
        self.assert_tag_everywhere(repo, "one", d1, body=b1)
        self.assert_tag_everywhere(repo, "two", d2, body=b2)
        # tag list everywhere
        for n in c.nodes:
            r = n.request("GET", f"/v2/{repo}/tags/list")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(sorted(r.json()["tags"]), ["one", "two"],
                             f"tags on {n.name}")
        # tag delete through the (other) follower
        f2 = c.followers(leader)[1]
        r = f2.request("DELETE", f"/v2/{repo}/manifests/one")
        self.assertIn(r.status, (202, 200), r)
        for n in c.nodes:
            r = get_tag(n, repo, "one")
            self.assertEqual(r.status, 404, f"deleted tag on {n.name}: {r!r}")
            r = n.request("GET", f"/v2/{repo}/tags/list")
            self.assertEqual(r.json()["tags"], ["two"], f"tags on {n.name}")
        # manifest delete by digest through a follower
        r = f.request("DELETE", f"/v2/{repo}/manifests/{d2}")
        self.assertEqual(r.status, 202, r)
        # reads by digest are local (no read barrier): another node sees
        # the delete once it applied it, which the index token waits for
        idx = r.header("x-atoll-index")
        self.assertIsNotNone(idx, r)
        for n in c.nodes:
            r = get_tag(n, repo, d2, headers={"X-Atoll-Min-Index": idx})
            self.assertEqual(r.status, 404, f"deleted manifest on {n.name}: {r!r}")

    def test_every_response_carries_applied_index(self):
        for n in self.cluster.nodes:
            for path in ("/v2/", "/v2/_catalog", "/v2/nosuch/tags/list"):
                r = n.request("GET", path)
                v = r.header("x-atoll-applied-index")
                self.assertIsNotNone(v, f"{path} on {n.name}: {r!r}")
                self.assertGreater(int(v), 0)


class LocalReadsTest(ClusterTestCase):
    """c2 runs read_consistency: local (an edge-style node)."""

    @classmethod
    def setUpClass(cls):
        cls.start_class_cluster(3, prefix="local",
                                per_node={2: ["--read-consistency", "local"]})

    def test_min_index_gives_read_your_writes(self):
        c = self.cluster
        local = c.nodes[2]
        writer = c.leader()
        if writer is local:
            writer = c.followers(local)[0]
        repo = "cluster/local"
        for i in range(10):
            r, digest, body = push_small(writer, repo, "t")
            self.assertEqual(r.status, 201, r)
            idx = int(r.header("x-atoll-index"))
            r = get_tag(local, repo, "t",
                        headers={"X-Atoll-Min-Index": str(idx)})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("docker-content-digest"), digest,
                             f"round {i}: min index {idx} ignored")
            self.assertGreaterEqual(int(r.header("x-atoll-applied-index")), idx)

    def test_local_node_reports_staleness_and_catches_up(self):
        c = self.cluster
        local = c.nodes[2]
        writer = [n for n in c.nodes if n is not local][0]
        repo = "cluster/local2"
        r, digest, _ = push_small(writer, repo, "x")
        self.assertEqual(r.status, 201, r)
        idx = int(r.header("x-atoll-index"))
        # without the token, a local read may be stale but says how stale
        r = get_tag(local, repo, "x")
        self.assertIn(r.status, (200, 404), r)
        self.assertIsNotNone(r.header("x-atoll-applied-index"), r)
        # and it converges within a few heartbeats
        wait_for(lambda: int(get_tag(local, repo, "x").header(
            "x-atoll-applied-index")) >= idx, 10, what="local catch-up")
        r = get_tag(local, repo, "x")
        self.assertEqual(r.header("docker-content-digest"), digest)

    def test_min_index_in_the_future_times_out_503(self):
        local = self.cluster.nodes[2]
        far = local.applied_index() + 10 ** 9
        t0 = time.time()
        r = get_tag(local, "cluster/local", "t",
                    headers={"X-Atoll-Min-Index": str(far)}, timeout=60)
        self.assertEqual(r.status, 503, r)
        self.assertLess(time.time() - t0, 60)
        # garbage token: an answer (400 preferably), not a hang or a crash
        r = get_tag(local, "cluster/local", "t",
                    headers={"X-Atoll-Min-Index": "12abc"}, timeout=60)
        self.assertIn(r.status, (400, 200, 404), r)
        self.assertTrue(local.alive())

    def test_local_node_forwards_writes(self):
        c = self.cluster
        local = c.nodes[2]
        r, digest, body = push_small(local, "cluster/local3", "w")
        self.assertEqual(r.status, 201, r)
        self.assert_tag_everywhere("cluster/local3", "w", digest, body=body)


if __name__ == "__main__":
    unittest.main()
