"""Joining: a 4th node joins a cluster that already holds 2,000 tags (with
small snapshot thresholds, so it catches up through InstallSnapshot) and
becomes a standby serving every tag, also when killed -9 while installing
the leader's snapshot; a --role standby node stays standby and
serves reads and writes. The 100,000-tag measurement is
tests/bench/cluster-join. Skipped while atoll has no --peer-listen."""
import glob
import os
import random
import re
import time
import unittest

from cluster import (ClusterNode, ClusterTestCase, get_tag, list_all_tags,
                     load_tags, note, push_small, wait_for)

NTAGS = 2000


def read_log(node):
    with open(node.log_path, errors="replace") as f:
        return f.read()


class JoinLoadedClusterTest(ClusterTestCase):
    def setUp(self):
        self.start_cluster(3, prefix="join",
                           extra=["--snapshot-threshold", "256",
                                  "--snapshot-trailing", "64"])

    def test_fourth_node_joins_with_2000_tags(self):
        c = self.cluster
        repo = "join/many"
        t0 = time.time()
        tags = load_tags(c.nodes, repo, NTAGS)
        load_s = time.time() - t0
        leader = c.leader()
        target = int(leader.status()["commit_index"])

        t0 = time.time()
        fresh = c.add_node()
        fresh.start()
        m = c.wait_member(fresh.name, role="standby", timeout=40)
        self.assertEqual(m["role"], "standby",
                         "a 4th node with 3 voters present must be standby")
        wait_for(lambda: fresh.applied_index() >= target, 40,
                 what=f"joiner applied >= {target}")
        join_s = time.time() - t0
        got = list_all_tags(fresh, repo)
        self.assertEqual(len(got), NTAGS, "joiner is missing tags")
        self.assertEqual(set(got), set(tags))
        for tag in random.sample(sorted(tags), 50):
            r = get_tag(fresh, repo, tag)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("docker-content-digest"), tags[tag])
        # the joiner takes part: a write through it is seen everywhere
        r, d, b = push_small(fresh, repo, "via-joiner")
        self.assertEqual(r.status, 201, r)
        self.assert_tag_everywhere(repo, "via-joiner", d, body=b)
        # voters unchanged
        doc = c.wait_roles(timeout=20, voters=3)
        self.assertEqual(sum(1 for x in doc["nodes"] if x["role"] == "voter"), 3)
        # a restart of the joiner does not join again: same id, same role
        old_id = m["id"]
        fresh.terminate(timeout=30)
        fresh.start()
        c.wait_roles(timeout=30, voters=3)
        again = [x for x in c.members()["nodes"] if x["name"] == fresh.name]
        self.assertEqual(len(again), 1)
        self.assertEqual(again[0]["id"], old_id)
        # snapshots are files of atoll's own (raft/snapfile.h): libraft
        # keeps a descriptor; the leader sent the joiner only that, and the
        # joiner fetched the file from the leader's peer listener
        # (raft/snaprecv.h)
        for n in c.nodes[:3]:
            files = glob.glob(os.path.join(n.data_dir, "**", "fsm-*.ats2"),
                              recursive=True)
            self.assertTrue(files, f"{n.name}: no snapshot file")
            for p in glob.glob(os.path.join(n.data_dir, "**", "snapshot-*"),
                               recursive=True):
                self.assertLess(os.path.getsize(p), 256, p)
        logs = {n.name: read_log(n) for n in c.nodes}
        sent = [k for k in list(logs)[:3]
                if "as its descriptor: it fetches the file" in logs[k]]
        self.assertTrue(sent, "no snapshot sent as a descriptor")
        self.assertFalse([k for k in logs if "read from its file" in logs[k]],
                         "a leader sent a file's bytes to a node that fetches")
        self.assertRegex(logs[fresh.name], r"snapshot \d+ fetched from '[^']+'"
                         r": \d+ bytes in \d+ ms, checked and stored")
        self.assertIn("installing snapshot", logs[fresh.name])
        self.assertTrue(
            [k for k in list(logs)[:3] if "sending snapshot file" in logs[k]],
            "no peer listener sent a snapshot file")
        served = 0
        for n in c.nodes[:3]:
            r = n.request("GET", "/metrics", timeout=10)
            m = re.search(rb"^atoll_peer_snapshot_serves_total (\d+)$",
                          r.body, re.M)
            self.assertTrue(m, f"{n.name}: no snapshot serves in /metrics")
            served += int(m.group(1))
        self.assertGreaterEqual(served, 1)
        note(f"loaded {NTAGS} tags in {load_s:.1f}s; 4th node joined and "
             f"caught up in {join_s:.1f}s")

    def test_joiner_without_fetch_gets_the_bytes(self):
        """A node started with --snapshot-fetch false (as nodes of earlier
        releases, which never say they fetch) gets the snapshot's bytes
        inside raft: the leader expands the descriptor for it."""
        c = self.cluster
        repo = "join/nofetch"
        tags = load_tags(c.nodes, repo, 600)
        target = int(c.leader().status()["commit_index"])
        fresh = c.add_node(extra=["--snapshot-fetch", "false"])
        fresh.start()
        wait_for(lambda: fresh.applied_index() >= target, 40,
                 what=f"joiner applied >= {target}")
        self.assertEqual(set(list_all_tags(fresh, repo)), set(tags))
        logs = {n.name: read_log(n) for n in c.nodes}
        self.assertTrue(
            [k for k in list(logs)[:3]
             if "read from its file (it does not fetch files)" in logs[k]],
            "no leader expanded a descriptor for a node that does not fetch")
        self.assertNotIn("fetching snapshot", logs[fresh.name])
        self.assertIn("installing a snapshot of", logs[fresh.name])


    def test_joiner_killed_while_installing(self):
        """kill -9 of a joining node as soon as it starts installing the
        leader's snapshot, three times: it comes back each time, finally
        catches up and serves every tag, and the cluster writes on."""
        c = self.cluster
        repo = "join/kill"
        tags = load_tags(c.nodes, repo, NTAGS, images=200)
        target = int(c.leader().status()["commit_index"])
        fresh = c.add_node()
        caught = 0
        for _ in range(3):
            mark = (os.path.getsize(fresh.log_path)
                    if os.path.exists(fresh.log_path) else 0)
            fresh.start(wait=False)
            end = time.time() + 40
            while time.time() < end and fresh.alive():
                with open(fresh.log_path, errors="replace") as f:
                    f.seek(mark)
                    # the fetch (raft/snaprecv.h), then libraft's install
                    if re.search(r"fetching snapshot|installing snapshot",
                                 f.read()):
                        caught += 1
                        break
                time.sleep(0.002)
            fresh.kill()
        self.assertGreater(caught, 0, "no install seen to kill")
        fresh.start()
        wait_for(lambda: fresh.applied_index() >= target, 60,
                 what=f"joiner applied >= {target}")
        got = list_all_tags(fresh, repo)
        self.assertEqual(set(got), set(tags))
        for tag in random.sample(sorted(tags), 50):
            r = get_tag(fresh, repo, tag)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("docker-content-digest"), tags[tag])
        r, d, b = push_small(c.nodes[0], repo, "after-kills")
        self.assertEqual(r.status, 201, r)
        self.assert_tag_everywhere(repo, "after-kills", d, body=b)
        note(f"joiner killed {caught} times while installing a snapshot; "
             f"then caught up with {NTAGS} tags")


class StandbyRoleTest(ClusterTestCase):
    def setUp(self):
        self.start_cluster(1, prefix="edge")

    def test_standby_node_never_votes(self):
        c = self.cluster
        edge = c.add_node(extra=["--role", "standby", "--region", "edge-1",
                                 "--read-consistency", "local"])
        edge.start()
        voter = c.add_node()
        voter.start()
        doc = c.wait_roles(timeout=30, voters=2)
        roles = {m["name"]: m["role"] for m in doc["nodes"]}
        self.assertEqual(roles[edge.name], "standby", doc)
        self.assertEqual(roles[voter.name], "voter", doc)
        region = [m["region"] for m in doc["nodes"] if m["name"] == edge.name]
        self.assertEqual(region, ["edge-1"])
        # a standby writes (forwarded) and reads its own writes
        r, d, b = push_small(edge, "edge/app", "v1")
        self.assertEqual(r.status, 201, r)
        r = get_tag(edge, "edge/app", "v1",
                    headers={"X-Atoll-Min-Index": r.header("x-atoll-index")})
        self.assertEqual(r.header("docker-content-digest"), d)
        # losing the standby costs no quorum
        edge.kill()
        r, d2, _ = push_small(c.nodes[0], "edge/app", "v2")
        self.assertEqual(r.status, 201, r)
        # the standby serves local reads... after it comes back and catches up
        edge.start()
        c.wait_caught_up(edge, timeout=20)
        r = get_tag(edge, "edge/app", "v2")
        self.assertEqual(r.header("docker-content-digest"), d2)


if __name__ == "__main__":
    unittest.main()


class JoinRefusedTest(ClusterTestCase):
    """A node whose join is refused exits non-zero with the reason, rather
    than running on as a registry in no cluster (issue 15)."""

    def setUp(self):
        self.start_cluster(1, prefix="ref")

    def refused(self, name, extra, reason):
        c = self.cluster
        node = ClusterNode(c, name, join=c.nodes[0].peer_addr, extra=extra)
        c.nodes.append(node)
        node.start(wait=False)
        wait_for(lambda: not node.alive(), 30, what=f"{name} exits")
        self.assertEqual(node.proc.returncode, 1)
        self.assertIn(reason, node.log())
        c.nodes.remove(node)

    def test_wrong_secret_and_taken_name_exit(self):
        self.refused("ref9", ["--cluster-secret", "another-secret-0123456789"],
                     "wrong cluster secret")
        # the same name as the member, at another address (the last
        # --name wins)
        self.refused("ref8", ["--name", "ref0"], "the name is taken")
        self.assertEqual(len(self.cluster.members()["nodes"]), 1)
