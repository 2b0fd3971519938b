"""Issue 14: what a Kubernetes StatefulSet needs of the cluster when pods
stop and come back.

- `atoll members handoff` (a pod's preStop): the node hands leadership
  over if it leads, then its vote to a stable standby, before it stops.
- `--autopilot-reap-after`: a standby dead that long is removed (a
  StatefulSet scaled down leaves no dead members).
- `--auto-rejoin`: a node removed while it was away (scaled down, then up
  again with its volume) is told so by the leader when it comes back,
  stops, and on its next start joins again as a new member."""
import time
import unittest

import cluster
from harness import wait_for

EXTRA = ["--autopilot-reap-after", "3s", "--auto-rejoin=true"]


def roles(node):
    return {m["name"]: m["role"] for m in node.members(timeout=3)["nodes"]}


class HandoffTest(cluster.ClusterTestCase):
    def start5(self):
        c = self.start_cluster(5, extra=EXTRA)
        c.wait_roles(voters=3, timeout=30)
        return c

    def handoff(self, c, node, *name):
        return c.cli("members", "handoff", *name, "--peer", node.peer_addr,
                     "--cluster-secret-file", c.secret_file,
                     timeout=60).stdout

    def test_a_handoff_follower_and_leader(self):
        """A voter's handoff promotes a standby first, then demotes it:
        three voters all along; the leader's hands leadership over too."""
        c = self.start5()
        leader = c.leader()
        r = roles(leader)
        voter = next(n for n in c.nodes
                     if r[n.name] == "voter" and n.name != leader.name)
        self.handoff(c, voter)
        r = roles(leader)
        self.assertEqual(r[voter.name], "standby", r)
        self.assertEqual(sum(1 for v in r.values() if v == "voter"), 3, r)
        # the leader: leadership first, then its vote (the request goes
        # to the new leader)
        self.handoff(c, leader)
        new = c.leader(exclude=(leader.name,))
        self.assertNotEqual(new.name, leader.name)
        r = wait_for(lambda: (lambda d: d if d[leader.name] == "standby"
                              else None)(roles(new)), 15,
                     what="old leader standby")
        self.assertEqual(sum(1 for v in r.values() if v == "voter"), 3, r)
        # a standby's handoff is done at once
        self.handoff(c, voter)
        cluster.push_small(new, "after/handoff", "v1")

    def test_b_reap_and_rejoin(self):
        """A standby stopped for longer than the reap time is removed; it
        comes back with its old data dir, is told, stops, and its next
        start joins afresh (auto_rejoin)."""
        c = self.start5()
        leader = c.leader()
        r = roles(leader)
        gone = next(n for n in reversed(c.nodes) if r[n.name] == "standby")
        gone.terminate(timeout=30)
        t0 = time.monotonic()
        wait_for(lambda: gone.name not in roles(c.leader()), 30,
                 what=f"{gone.name} reaped")
        cluster.note(f"standby reaped {time.monotonic() - t0:.1f}s after "
                     "its stop (reap after 3s)")
        r = roles(c.leader())
        self.assertEqual(len(r), 4, r)
        cluster.push_small(c.leader(), "during/away", "v1")
        # back with its old raft dir: told it was removed, it stops
        gone.start(wait=False)
        wait_for(lambda: not gone.alive(), 30, what="the stray stops")
        self.assertIn("removed", gone.log())
        # the next start (a kubelet restarts it) joins as a new member
        gone.start()
        wait_for(lambda: roles(c.leader()).get(gone.name) == "standby", 30,
                 what=f"{gone.name} back as standby")
        self.assertIn("auto_rejoin wiped", gone.log())
        c.wait_roles(voters=3, timeout=30)
        self.assertEqual(cluster.get_tag(gone, "during/away", "v1").status,
                         200)

    def test_c_removed_while_up_rejoins(self):
        """An operator removes a live standby: it is told, stops, and
        with auto_rejoin its next start joins afresh (without it, the
        start refuses: docs/cluster.md)."""
        c = self.start5()
        r = roles(c.leader())
        victim = next(n for n in reversed(c.nodes) if r[n.name] == "standby")
        c.cli("members", "remove", victim.name, "--peer",
              c.leader().peer_addr, "--cluster-secret-file", c.secret_file)
        wait_for(lambda: not victim.alive(), 30, what="the removed node stops")
        victim.start()
        wait_for(lambda: roles(c.leader()).get(victim.name) == "standby", 30,
                 what=f"{victim.name} back as standby")
        self.assertIn("auto_rejoin wiped", victim.log())


if __name__ == "__main__":
    unittest.main()
