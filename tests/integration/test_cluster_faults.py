"""Three-node cluster under faults: kill -9 of the leader during a push
stream (failover time, no acknowledged push lost, the killed node catches up
after restart), stop/restart of the whole cluster (graceful and kill -9),
members remove of a dead node, leadership transfer, SIGTERM handover, a
leader stepping down with requests pending (F11).
Skipped while atoll has no --peer-listen."""
import json
import shutil
import signal
import threading
import time
import unittest

from cluster import (ClusterTestCase, StreamPusher, get_tag, note, push_small,
                     require_members_cli, small_image, wait_for)
from images import OCI_MANIFEST

FAILOVER_LIMIT = 10.0   # seconds from kill -9 to the next acknowledged write
HANDOVER_LIMIT = 3.0    # seconds from SIGTERM to an agreed new leader


class ClusterPerTest(ClusterTestCase):
    """A fresh three-node cluster for each test."""

    def setUp(self):
        self.start_cluster(3, prefix=self._testMethodName[5:9])

    def start_pusher(self, target, repo, prefix, min_acked=3):
        p = StreamPusher(lambda: target, repo, prefix)
        p.start()
        wait_for(lambda: len(p.acked) >= min_acked, 20,
                 what=f"{min_acked} acknowledged pushes to {target.name} "
                      f"(errors: {p.errors[-3:]})")
        return p


class FailoverTest(ClusterPerTest):
    def test_kill9_leader_during_pushes(self):
        c = self.cluster
        leader = c.leader()
        target = c.followers(leader)[0]
        other = c.followers(leader)[1]
        repo = "faults/kill"
        p = self.start_pusher(target, repo, "k")
        t_kill = time.time()
        leader.kill()
        try:
            # two acks after the kill: the second push started after the
            # kill, so it was certainly committed by the new leader
            wait_for(lambda: len(p.acked_after(t_kill)) >= 2, FAILOVER_LIMIT,
                     what="an acknowledged write after the leader's kill -9 "
                          f"(pusher errors: {p.errors[-3:]})")
        finally:
            failover = time.time() - t_kill
        self.assertLess(failover, FAILOVER_LIMIT)
        new_leader = c.leader(exclude=(leader.name,))
        self.assertIn(new_leader, (target, other))
        time.sleep(0.5)
        self.assertTrue(p.finish(), "pusher hung")
        acked = list(p.acked)
        self.assertGreater(len(acked), 3)
        self.assertEqual(p.bad, [], "manifest PUTs during failover must "
                         "fail only with 503 UNAVAILABLE or OUTCOME_UNKNOWN")
        self.assert_acked_present(repo, acked, [target, other])
        # writes work through the surviving follower and the new leader
        for n in (target, other):
            r, d, b = push_small(n, repo, f"after-{n.name}")
            self.assertEqual(r.status, 201, r)
        # the killed node comes back as a follower and catches up
        leader.start()
        c.wait_roles(timeout=30)
        c.wait_caught_up(leader, timeout=30)
        self.assert_acked_present(repo, acked, [leader])
        self.assertNotEqual(c.leader().name, "", "no leader after restart")
        note(f"failover after kill -9: {failover:.2f}s, "
             f"{len(acked)} pushes acknowledged")


class InvisibleFailoverTest(ClusterPerTest):
    def test_kill9_leader_no_503_through_a_follower(self):
        """Tag writes and reads through a follower while the leader is
        killed: a request that finds no leader waits for the election
        (leader_wait) instead of failing: no 503 at all, and every read
        answers the tag's last acknowledged value or a later one
        (issue 15)."""
        import threading
        c = self.cluster
        leader = c.leader()
        target = c.followers(leader)[0]
        repo = "faults/invisible"
        # one image, many tags: each write moves tag "t" to a new manifest
        imgs = []
        for i in range(40):
            r, d, body = push_small(target, repo, f"base{i}")
            self.assertEqual(r.status, 201, r)
            imgs.append((d, body))
        stop = threading.Event()
        errors, acked = [], []  # acked: (time, index) of tag writes
        lock = threading.Lock()
        reads = {"n": 0, "stale": 0}

        def writer():
            i = 0
            while not stop.is_set():
                d, body = imgs[i % len(imgs)]
                r = target.request(
                    "PUT", f"/v2/{repo}/manifests/t",
                    body=body, headers={"Content-Type": OCI_MANIFEST},
                    timeout=30)
                if r.status != 201:
                    errors.append(("PUT", r.status, r.body[:200]))
                else:
                    with lock:
                        acked.append(i % len(imgs))
                i += 1

        def reader():
            while not stop.is_set():
                with lock:
                    floor = acked[-1] if acked else None
                r = get_tag(target, repo, "t", timeout=30)
                reads["n"] += 1
                if r.status != 200:
                    if not (r.status == 404 and floor is None):
                        errors.append(("GET", r.status, r.body[:200]))
                    continue
                if floor is not None and r.header("docker-content-digest") \
                        not in {d for d, _ in imgs}:
                    reads["stale"] += 1

        ts = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for t in ts:
            t.start()
        try:
            wait_for(lambda: len(acked) >= 5, 20, what="writes before the kill")
            n_before = len(acked)
            leader.kill()
            wait_for(lambda: len(acked) >= n_before + 10, 20,
                     what=f"writes after the kill (errors {errors[-3:]})")
        finally:
            stop.set()
            for t in ts:
                t.join(60)
        self.assertEqual(errors, [], "requests during the election failed")
        self.assertEqual(reads["stale"], 0)
        # the last acknowledged write is what every survivor serves
        last = imgs[acked[-1]][0]
        for n in c.live():
            wait_for(lambda: get_tag(n, repo, "t").header(
                "docker-content-digest") == last, 10, what="last write")
        # the new leader went through the commit guard (raft/guard.h): a
        # barrier of its term at once, results held until it was stored
        from test_metrics import scrape, value
        new = c.leader(exclude=(leader.name,))
        text = scrape(new)
        self.assertGreaterEqual(
            value(text, "atoll_raft_guard_barriers_total"), 1)
        note(f"kill -9 of the leader under {len(acked)} tag writes and "
             f"{reads['n']} reads through a follower: 0 errors; the new "
             f"leader's guard held "
             f"{value(text, 'atoll_raft_guard_held_total'):g} results")


class ReadinessTest(ClusterPerTest):
    def test_readyz_follows_the_leader(self):
        """Followers stay ready while the leader lives (heartbeats keep
        them fresh), turn not ready within the election timeout (500 ms
        here) of its kill -9, and ready again under the new leader."""
        c = self.cluster
        leader = c.leader()
        f = c.followers(leader)[0]
        for _ in range(30):
            self.assertEqual(f.request("GET", "/readyz").status, 200)
            time.sleep(0.05)
        leader.kill()
        t0 = time.monotonic()
        wait_for(lambda: f.request("GET", "/readyz").status == 503, 5,
                 what="not ready after the leader's kill")
        unready = time.monotonic() - t0
        wait_for(lambda: f.request("GET", "/readyz").status == 200, 15,
                 what="ready under a new leader")
        self.assertLess(unready, 1.5)
        note(f"readyz: follower not ready {unready:.2f}s after the leader's "
             "kill -9 (election timeout 500ms)")


class LeadershipStaysTest(ClusterPerTest):
    """Leadership moves only when it must (pre-vote is on; issue 15)."""

    def term_and_leader(self, node):
        st = node.status()
        return int(st["term"]), st.get("leader_id")

    def test_returning_follower_does_not_depose(self):
        """A follower cut off for 3 s (SIGSTOP: it hears nobody and
        nobody hears it) comes back: its pre-vote fails, the term and the
        leader stay."""
        c = self.cluster
        leader = c.leader()
        f = c.followers(leader)[0]
        term0, lid0 = self.term_and_leader(leader)
        f.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)
        finally:
            f.proc.send_signal(signal.SIGCONT)
        time.sleep(2)  # its election timer fires, its pre-vote fails
        self.assertEqual(c.leader().name, leader.name)
        term1, lid1 = self.term_and_leader(leader)
        self.assertEqual((term1, lid1), (term0, lid0))
        push_small(f, "stays/f", "v1")

    def test_paused_leader_costs_one_election(self):
        """The leader paused 3 s: the others elect one new leader; back,
        the old leader steps down without another election."""
        c = self.cluster
        leader = c.leader()
        others = c.followers(leader)
        term0, _ = self.term_and_leader(others[0])
        leader.proc.send_signal(signal.SIGSTOP)
        try:
            new = c.wait_leader(timeout=10, exclude=(leader.name,))
            time.sleep(3)
        finally:
            leader.proc.send_signal(signal.SIGCONT)
        time.sleep(2)
        self.assertEqual(c.leader().name, new.name)
        term1, _ = self.term_and_leader(new)
        terms = {self.term_and_leader(n)[0] for n in c.nodes}
        self.assertEqual(terms, {term1})
        # one election: one term more (a split vote would cost another)
        self.assertLessEqual(term1 - term0, 2)
        note(f"paused leader: terms {term0} -> {term1}, "
             f"one new leader ({new.name})")
        push_small(leader, "stays/l", "v1")


class SteppingDownTest(ClusterPerTest):
    def test_leader_steps_down_with_requests_pending(self):
        """F11: a leader paused under load (writes through every node, reads
        through the followers), then resumed into a newer term, steps down
        with applies and read barriers pending; libraft fails them from
        inside its step-down, and nothing atoll does in those callbacks may
        reach raft as if it still led (it crashed in progressState). Six
        times: every node stays up, and every acknowledged push is served
        everywhere."""
        c = self.cluster
        pushers = [self.start_pusher(n, f"down/{n.name}", "p", min_acked=1)
                   for n in c.nodes]
        stop = threading.Event()
        reads = [0]
        tagged = [0]
        # many small tag writes through every node: forwarded writes, each
        # committed one pushing the commit index with a barrier (read.c),
        # so that barriers and applies are always pending on the leader
        config, layer, m = small_image("down")
        for n in c.nodes:
            n.push_blob("down/tags", config)
            n.push_blob("down/tags", layer)

        def tagger(k):
            i = 0
            while not stop.is_set():
                n = c.nodes[(k + i) % len(c.nodes)]
                try:
                    n.request("PUT", f"/v2/down/tags/manifests/t{k}-{i}",
                              body=m, headers={"Content-Type": OCI_MANIFEST},
                              timeout=5)
                    tagged[0] += 1
                except OSError:
                    pass
                i += 1
        taggers = [threading.Thread(target=tagger, args=(k,), daemon=True)
                   for k in range(8)]
        for t in taggers:
            t.start()

        def reader():
            while not stop.is_set():
                for n in c.nodes:
                    try:
                        n.request("GET", "/v2/down/" + c.nodes[0].name +
                                  "/tags/list", timeout=5)
                        reads[0] += 1
                    except OSError:
                        pass
        readers = [threading.Thread(target=reader, daemon=True)
                   for _ in range(3)]
        for t in readers:
            t.start()
        try:
            for rnd in range(6):
                leader = c.leader(timeout=15)
                leader.proc.send_signal(signal.SIGSTOP)
                try:
                    c.wait_leader(timeout=15, exclude=(leader.name,))
                finally:
                    leader.proc.send_signal(signal.SIGCONT)
                time.sleep(1.5)
                for n in c.nodes:
                    self.assertTrue(n.alive(),
                                    f"round {rnd}: {n.name} died:\n{n.log()}")
        finally:
            stop.set()
            for p in pushers:
                p.stop.set()
            for p in pushers:
                p.join(30)
            for t in readers + taggers:
                t.join(10)
        for p in pushers:
            self.assertTrue(p.acked, p.errors[-3:])
            self.assertFalse(p.bad, p.bad[:3])
            for tag, d, b, _ in p.acked[-5:]:
                self.assert_tag_everywhere(p.repo, tag, d, body=b)
        note(f"6 leaders paused and stepped down under load: "
             f"{sum(len(p.acked) for p in pushers)} pushes, {tagged[0]} tag "
             f"writes, {reads[0]} reads, every node up")


class RestartTest(ClusterPerTest):
    def push_some(self, repo, n=9, prefix="t"):
        acked = []
        for i in range(n):
            node = self.cluster.nodes[i % 3]
            tag = f"{prefix}{i}"
            r, d, b = push_small(node, repo, tag)
            self.assertEqual(r.status, 201, r)
            acked.append((tag, d, b, time.time()))
        return acked

    def restart_all(self, how):
        c = self.cluster
        if how == "graceful":
            for n in c.nodes:
                rc = n.terminate(timeout=30)
                self.assertEqual(rc, 0, f"{n.name} exit code {rc}:\n{n.log()}")
        else:
            for n in c.nodes:
                n.kill()
        for n in c.nodes:
            n.start(wait=False)
        for n in c.nodes:
            n.wait_ready(30)
        c.wait_roles(timeout=30)
        c.wait_serving(timeout=30)

    def test_restart_whole_cluster(self):
        c = self.cluster
        repo = "faults/restart"
        acked = self.push_some(repo)
        before = {n.name: n.members()["nodes"] for n in c.nodes}
        ids = {m["name"]: m["id"] for m in before[c.nodes[0].name]}

        self.restart_all("graceful")
        self.assert_acked_present(repo, acked, c.nodes)
        doc = c.nodes[1].members()
        self.assertEqual({m["name"]: m["id"] for m in doc["nodes"]}, ids,
                         "raft ids changed across a restart")

        more = self.push_some(repo, 6, prefix="u")
        self.restart_all("kill")
        self.assert_acked_present(repo, acked + more, c.nodes)
        # more writes after the restarts
        r, d, b = push_small(c.nodes[2], repo, "final")
        self.assertEqual(r.status, 201, r)
        self.assert_tag_everywhere(repo, "final", d, body=b)


class MembershipTest(ClusterPerTest):
    def test_remove_dead_node_then_replace(self):
        c = self.cluster
        leader = c.leader()
        dead = c.followers(leader)[0]
        survivor = c.followers(leader)[1]
        dead.kill()
        # ask through the surviving follower's peer port: proxied to the leader
        r = survivor.peer_request("POST", "/_atoll/members/remove",
                                  body=json.dumps({"name": dead.name}).encode(),
                                  headers={"Content-Type": "application/json"},
                                  timeout=30)
        self.assertEqual(r.status, 200, r)
        for n in (leader, survivor):
            names = {m["name"] for m in n.members()["nodes"]}
            self.assertNotIn(dead.name, names, f"members on {n.name}")
        # two voters left: writes still commit
        r, d, b = push_small(survivor, "faults/remove", "x")
        self.assertEqual(r.status, 201, r)
        self.assert_tag_everywhere("faults/remove", "x", d, nodes=[leader, survivor])
        # removing an unknown name is an error, not a crash
        r = leader.peer_request("POST", "/_atoll/members/remove",
                                body=b'{"name":"no-such-node"}', timeout=30)
        self.assertIn(r.status, (404, 400, 409), r)
        # a replacement joins and becomes the third voter
        c.nodes.remove(dead)
        dead.close()
        fresh = c.add_node(join=survivor.peer_addr)
        fresh.start()
        c.wait_roles(timeout=30, voters=3)
        self.assert_tag_everywhere("faults/remove", "x", d)

    def test_members_cli_remove(self):
        require_members_cli()
        c = self.cluster
        leader = c.leader()
        dead = c.followers(leader)[0]
        survivor = c.followers(leader)[1]
        dead.kill()
        c.cli("members", "remove", dead.name, "--peer", survivor.peer_addr,
              "--cluster-secret-file", c.secret_file)
        for n in (leader, survivor):
            names = {m["name"] for m in n.members()["nodes"]}
            self.assertNotIn(dead.name, names, f"members on {n.name}")
        p = c.cli("members", "--addr", survivor.addr)
        self.assertNotIn(dead.name, p.stdout)
        self.assertIn(survivor.name, p.stdout)
        p = c.cli("members", "remove", "no-such-node", "--peer", leader.peer_addr,
                  "--cluster-secret-file", c.secret_file, check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        # wrong secret: refused
        bad = c.secret_file + ".bad"
        with open(bad, "w") as f:
            f.write("not-the-secret\n")
        p = c.cli("members", "remove", survivor.name, "--peer", leader.peer_addr,
                  "--cluster-secret-file", bad, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(leader.members()["nodes"]), 2)

    def test_remove_the_leader(self):
        """jepsen-style F2/F3: removing the leader (through a follower)
        hands leadership over first and answers 200; the removed node says
        it is removed; writes through the remaining followers keep working
        (min_copies 2: blobs get their copies on the remaining nodes)."""
        require_members_cli()
        c = self.cluster
        leader = c.leader()
        via = c.followers(leader)[0]
        c.cli("members", "remove", leader.name, "--peer", via.peer_addr,
              "--cluster-secret-file", c.secret_file)
        new = c.leader(exclude=(leader.name,))
        for n in c.followers(leader) + [new]:
            names = {m["name"] for m in n.members()["nodes"]}
            self.assertNotIn(leader.name, names, f"members on {n.name}")
        # the new leader tells it; it stops, and refuses to start again
        wait_for(lambda: not leader.alive(), 15,
                 what="the removed node stops")
        self.assertIn("was removed from the cluster", leader.log())
        leader.start(wait=False)
        wait_for(lambda: not leader.alive(), 15,
                 what="a restart of the removed node gives up")
        self.assertNotEqual(leader.proc.returncode, 0)
        self.assertIn("wipe its data dir", leader.log())
        repo = "faults/rmleader"
        for i, n in enumerate(c.followers(leader)):
            r, d, b = push_small(n, repo, f"t{i}", timeout=30)
            self.assertEqual(r.status, 201, r)
            for m in c.followers(leader):
                r = get_tag(m, repo, f"t{i}")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("docker-content-digest"), d)

    def test_transfer_leadership(self):
        c = self.cluster
        leader = c.leader()
        to = c.followers(leader)[1]
        t0 = time.time()
        # through a follower's peer port (proxied to the leader)
        via = c.followers(leader)[0]
        r = via.peer_request("POST", "/_atoll/transfer",
                             body=json.dumps({"name": to.name}).encode(),
                             headers={"Content-Type": "application/json"},
                             timeout=30)
        self.assertEqual(r.status, 200, r)
        new = wait_for(lambda: (lambda ld: ld if ld.name == to.name else None)(
            c.leader(timeout=5)), 10, what=f"leader {to.name} after transfer")
        self.assertLess(time.time() - t0, 10)
        # no name: any up-to-date voter other than the current leader
        r = new.peer_request("POST", "/_atoll/transfer", body=b'{"name":null}',
                             headers={"Content-Type": "application/json"},
                             timeout=30)
        self.assertEqual(r.status, 200, r)
        newer = wait_for(lambda: (lambda l: l if l.name != new.name else None)(
            c.leader(timeout=5)), 10, what="leadership moved away")
        self.assertNotEqual(newer.name, new.name)
        r, d, b = push_small(new, "faults/transfer", "t")
        self.assertEqual(r.status, 201, r)
        self.assert_tag_everywhere("faults/transfer", "t", d, body=b)

    def test_members_cli_transfer(self):
        require_members_cli()
        c = self.cluster
        leader = c.leader()
        to = c.followers(leader)[1]
        c.cli("members", "transfer", to.name, "--peer",
              c.followers(leader)[0].peer_addr,
              "--cluster-secret-file", c.secret_file)
        new = wait_for(lambda: (lambda ld: ld if ld.name == to.name else None)(
            c.leader(timeout=5)), 10, what=f"leader {to.name} after transfer")
        c.cli("members", "transfer", "--peer", new.peer_addr,
              "--cluster-secret-file", c.secret_file)
        wait_for(lambda: c.leader(timeout=5).name != new.name, 10,
                 what="leadership moved away")
        bad = c.secret_file + ".bad"
        with open(bad, "w") as f:
            f.write("not-the-secret\n")
        p = c.cli("members", "transfer", to.name, "--peer", new.peer_addr,
                  "--cluster-secret-file", bad, check=False)
        self.assertNotEqual(p.returncode, 0)

    def test_sigterm_leader_hands_over(self):
        c = self.cluster
        leader = c.leader()
        target, other = c.followers(leader)
        repo = "faults/sigterm"
        p = self.start_pusher(target, repo, "g")
        t0 = time.time()
        leader.proc.send_signal(signal.SIGTERM)
        new = c.leader(timeout=HANDOVER_LIMIT + 5, exclude=(leader.name,))
        handover = time.time() - t0
        rc = leader.proc.wait(30)
        self.assertEqual(rc, 0, f"leader exit code {rc}:\n{leader.log()}")
        self.assertIn(new, (target, other))
        self.assertLess(handover, HANDOVER_LIMIT,
                        f"new leader after {handover:.2f}s")
        wait_for(lambda: len(p.acked_after(t0 + handover)) >= 2, 10,
                 what=f"writes after the handover (errors {p.errors[-3:]})")
        self.assertTrue(p.finish(), "pusher hung")
        self.assertEqual(p.bad, [], "manifest PUTs during the handover must "
                         "fail only with 503 UNAVAILABLE or OUTCOME_UNKNOWN")
        self.assert_acked_present(repo, p.acked, [target, other])
        note(f"SIGTERM handover: {handover:.2f}s")


class LostQuorumTest(RestartTest):
    def test_force_new_cluster_after_losing_majority(self):
        """Two of three voters lost for good (kill -9, data wiped): the
        survivor cannot write or serve linearizable reads; restarted once
        with --force-new-cluster it is a one-voter cluster with every
        acknowledged push, takes writes, and a fresh node can join it."""
        c = self.cluster
        repo = "faults/quorum"
        acked = self.push_some(repo, n=6)
        survivor = c.leader()  # the longest log
        wait_for(lambda: all(n.applied_index() >= survivor.applied_index()
                             for n in c.nodes), 10, what="all applied")
        for n in c.nodes:
            if n is not survivor:
                n.kill()
                shutil.rmtree(n.data_dir, ignore_errors=True)
        wait_for(lambda: get_tag(survivor, repo, acked[0][0],
                                 timeout=10).status == 503,
                 20, what="the survivor refusing linearizable reads")

        survivor.kill()
        survivor.args += ["--force-new-cluster", "true"]
        survivor.start()
        wait_for(lambda: get_tag(survivor, repo, acked[0][0],
                                 timeout=10).status == 200,
                 20, what="the recovered node serving")
        self.assert_acked_present(repo, acked, [survivor])
        r, d, b = push_small(survivor, repo, "after")
        self.assertEqual(r.status, 201, r)

        # Back to normal: restart without the flag, then grow again.
        survivor.terminate()
        survivor.args = survivor.args[:-2]
        survivor.start()
        fresh = c.add_node(join=survivor.peer_addr)
        fresh.start()
        c.wait_member(fresh.name, timeout=30)
        wait_for(lambda: get_tag(fresh, repo, "after",
                                 timeout=10).status == 200,
                 30, what="the new node serving")
        self.assert_tag_everywhere(repo, "after", d, nodes=[survivor, fresh],
                                   body=b)
        self.assert_acked_present(repo, acked, [fresh])


if __name__ == "__main__":
    unittest.main()
