"""Issue 13, acceptance 2: real processes, gossip and autopilot, edge sites.

Seven nodes in one network namespace of their own, each on its own address
on the namespace's lo (10.98.0.1-7), so that iptables there can cut one
node off without touching the host: three voters and a standby (voter
material) in region "eu", three edge nodes (--role edge) in region "us".
The test process itself moves into the namespace for the class
(netns.Inside) and back at the end.

One scenario, in order (each step needs the cluster the previous left):
  1. the cluster forms: 3 voters, 1 standby, 3 edges, every member sees
     every other alive through gossip, with region, role, RTT, version;
     an image pushed to a voter pulls from an edge (local reads);
  2. SIGSTOP an edge for 10 s: no other member is ever declared dead by
     anyone, and it is alive again after SIGCONT;
  3. partition an edge (all its traffic dropped) for EDGE_AWAY_S seconds
     while manifests are pushed: the voters' manifest PUT latency is the
     same as with it connected; healed, it catches up (a snapshot: the
     log was compacted meanwhile) and serves the tags pushed while away;
  4. kill -9 a voter: every live member sees it dead within a few
     seconds, and autopilot promotes the standby and demotes the dead
     voter; no acknowledged write is lost.
"""
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import unittest

import cluster
import harness
import images
import netns
from harness import ATOLL_BIN, wait_for

EDGE_AWAY_S = int(os.environ.get("ATOLL_EDGE_AWAY_S", "120"))
IPTABLES = shutil.which("iptables")
GOSSIP = ("--gossip-probe-interval", "300ms", "--gossip-probe-timeout",
          "150ms", "--gossip-interval", "100ms")
AUTOPILOT = ("--autopilot-dead-after", "3s", "--autopilot-stabilization",
             "1s")


class SiteNode(harness.Node):
    """A node on its own address inside the namespace (API :5000, peer
    :5001)."""

    def __init__(self, tmp, name, ip, secret, args):
        self.name = name
        self.ip = ip
        self.secret = secret
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        super().__init__(tmp=d, port=5000, args=[
            "--name", name, "--peer-listen", f"{ip}:5001",
            "--cluster-secret", secret, "--log-level", "info"]
            + list(cluster.FAST_RAFT) + list(GOSSIP) + list(AUTOPILOT)
            + list(args))

    @property
    def addr(self):
        return f"{self.ip}:{self.port}"

    @property
    def peer_addr(self):
        return f"{self.ip}:5001"

    def request(self, method, path, body=None, headers=None, timeout=30):
        import http.client
        conn = http.client.HTTPConnection(self.ip, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            r = conn.getresponse()
            return harness.Response(
                r.status, {k.lower(): v for k, v in r.getheaders()},
                r.read())
        finally:
            conn.close()

    def doc(self, path, timeout=3):
        r = self.request("GET", path, timeout=timeout,
                         headers={"Authorization": f"Bearer {self.secret}"})
        if r.status != 200:
            raise ValueError(f"{path} on {self.name}: {r!r}")
        return r.json()

    def members(self):
        return self.doc("/_atoll/members")

    def gossip_view(self):
        """{name: gossip state} as this node sees it."""
        return {m["name"]: m.get("gossip", "unknown")
                for m in self.members()["nodes"]}


@unittest.skipUnless(netns.available() and IPTABLES,
                     "needs root, iproute2 and iptables (netns)")
class EdgeSitesTest(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cluster.require_cluster()
        cls.tmp = tempfile.mkdtemp(prefix="atoll-sites-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.ns = netns.Netns(addr="10.98.0.1").create()
        cls.addClassCleanup(cls.ns.close)
        for i in range(2, 8):
            netns.add_addr(cls.ns, f"10.98.0.{i}")
        inside = netns.Inside(cls.ns).enter()
        cls.addClassCleanup(inside.leave)
        secret = secrets.token_hex(24)
        voters = ",".join(f"10.98.0.{i}:5001" for i in (1, 2, 3))
        cls.nodes = {}
        plan = [("v0", 1, "eu", "voter"), ("v1", 2, "eu", "voter"),
                ("v2", 3, "eu", "voter"), ("s0", 4, "eu", "voter"),
                ("e0", 5, "us", "edge"), ("e1", 6, "us", "edge"),
                ("e2", 7, "us", "edge")]
        for name, i, region, role in plan:
            args = ["--region", region, "--role", role,
                    "--snapshot-threshold", "64", "--snapshot-trailing",
                    "16"]
            if name != "v0":
                args += ["--join", voters]
            node = SiteNode(cls.tmp, name, f"10.98.0.{i}", secret, args)
            cls.nodes[name] = node
            cls.addClassCleanup(node.close)
        cls.nodes["v0"].start()
        for name, _, _, _ in plan[1:]:
            cls.nodes[name].start()
            wait_for(lambda: any(m["name"] == name and
                                 m["role"] in ("voter", "standby")
                                 for m in cls.nodes["v0"].members()["nodes"]),
                     60, what=f"{name} joined")

    def node(self, name):
        return self.nodes[name]

    def live(self):
        return [n for n in self.nodes.values() if n.alive()]

    def leader(self):
        def agreed():
            names = {n.members().get("leader") for n in self.live()}
            if len(names) == 1 and None not in names:
                return self.node(names.pop())
            return None
        return wait_for(agreed, 30, what="one agreed leader")

    def roles(self, via):
        return {m["name"]: m["role"] for m in via.members()["nodes"]}

    def iptables(self, *args):
        subprocess.run([IPTABLES, "-w"] + list(args), check=True,
                       capture_output=True, timeout=30)

    # ---- the scenario, as one test (the steps build on each other) ----
    def test_sites(self):
        self.step_formed()
        self.step_sigstop()
        self.step_partition()
        self.step_kill_voter()

    def step_formed(self):
        def formed():
            for n in self.live():
                doc = n.members()
                got = {m["name"]: m for m in doc["nodes"]}
                if set(got) != set(self.nodes):
                    return None
                if any(m.get("gossip") != "alive" for m in got.values()):
                    return None
                voters = {k for k, m in got.items() if m["role"] == "voter"}
                if voters != {"v0", "v1", "v2"}:
                    return None
            return doc
        doc = wait_for(formed, 60, what="7 members, gossip alive everywhere")
        by = {m["name"]: m for m in doc["nodes"]}
        for e in ("e0", "e1", "e2"):
            self.assertEqual(by[e]["role"], "standby", by[e])
            self.assertEqual(by[e]["gossip_role"], "edge", by[e])
            self.assertEqual(by[e]["region"], "us", by[e])
        self.assertEqual(by["s0"]["role"], "standby", by["s0"])
        for m in by.values():
            self.assertTrue(m.get("version"), m)
        # RTTs come with gossip's probes: the first ones may take a few
        # probe intervals after the members are alive (seen under ASan)
        doc = wait_for(lambda: (lambda d: d if any(
            m.get("rtt_ms") for m in d["nodes"]) else None)(
                self.node("v0").members()), 30, what="an RTT measured")
        # an image pushed to the core region pulls from the edge site
        img = images.small("sites")
        images.push(self.node("v1"), "sites/app", "v1", img)
        e0 = self.node("e0")
        r = wait_for(lambda: (lambda r: r if r.status == 200 else None)(
            e0.request("GET", "/v2/sites/app/manifests/v1",
                       headers={"Accept": images.OCI_MANIFEST})), 20,
                     what="the tag on the edge")
        self.assertEqual(r.body, img.manifest)
        for d, data in img.blobs().items():
            r = e0.request("GET", f"/v2/sites/app/blobs/{d}")
            self.assertEqual((r.status, r.body), (200, data))

    def step_sigstop(self):
        e1 = self.node("e1")
        others = [n for n in self.live() if n is not e1]
        os.kill(e1.proc.pid, signal.SIGSTOP)
        wrong = []
        try:
            end = time.time() + 10
            while time.time() < end:
                for n in others:
                    try:
                        view = n.gossip_view()
                    except (OSError, ValueError):
                        continue
                    for name, st in view.items():
                        if name != "e1" and st in ("dead", "suspect"):
                            wrong.append((n.name, name, st))
                time.sleep(0.2)
        finally:
            os.kill(e1.proc.pid, signal.SIGCONT)
        # suspicion of a healthy member may flicker under load; a death
        # never may
        self.assertFalse([w for w in wrong if w[2] == "dead"], wrong)
        wait_for(lambda: all(n.gossip_view().get("e1") == "alive"
                             for n in self.live()), 30,
                 what="e1 alive again everywhere")

    def put_latencies(self, node, repo, tags):
        img = images.small(repo)
        images.push_blobs(node, repo, img)
        out = []
        for t in tags:
            t0 = time.perf_counter()
            r = node.request("PUT", f"/v2/{repo}/manifests/{t}",
                             body=img.manifest,
                             headers={"Content-Type": images.OCI_MANIFEST})
            out.append(time.perf_counter() - t0)
            self.assertEqual(r.status, 201, r)
        return out, img

    def step_partition(self):
        e2 = self.node("e2")
        leader = self.leader()
        before, _ = self.put_latencies(leader, "lat/before",
                                       [f"t{i}" for i in range(40)])
        # cut e2 off: nothing in, nothing out
        rules = [("INPUT", "-d", e2.ip), ("INPUT", "-s", e2.ip)]
        for chain, flag, ip in rules:
            self.iptables("-A", chain, flag, ip, "-j", "DROP")
        try:
            wait_for(lambda: self.node("v0").gossip_view().get("e2") in
                     ("dead", "suspect"), 30, what="e2 seen away")
            t_end = time.time() + EDGE_AWAY_S
            during = []
            tags = []
            batch = 0
            while time.time() < t_end:
                lat, img = self.put_latencies(
                    leader, "lat/during",
                    [f"b{batch}-{i}" for i in range(20)])
                during += lat
                tags += [f"b{batch}-{i}" for i in range(20)]
                batch += 1
                time.sleep(1)
        finally:
            for chain, flag, ip in rules:
                self.iptables("-D", chain, flag, ip, "-j", "DROP")
        med_b = statistics.median(before)
        med_d = statistics.median(during)
        p95_b = sorted(before)[int(len(before) * 0.95) - 1]
        p95_d = sorted(during)[int(len(during) * 0.95) - 1]
        cluster.note(f"manifest PUT on the leader: edge connected median "
              f"{med_b * 1000:.2f} ms p95 {p95_b * 1000:.2f} ms; edge away "
              f"{EDGE_AWAY_S}s median {med_d * 1000:.2f} ms p95 "
              f"{p95_d * 1000:.2f} ms ({len(during)} PUTs)")
        self.assertLess(med_d, med_b * 2 + 0.005)
        # healed: it catches up and serves what was pushed while away
        want = leader.doc("/_atoll/status")["commit_index"]
        try:
            wait_for(lambda: e2.doc("/_atoll/status")["applied_index"] >=
                     want, 60, what="e2 caught up")
        except AssertionError:
            print(f"===== e2\n{e2.log()}\n===== leader {leader.name}\n"
                  f"{leader.log()}")
            raise
        r = e2.request("GET", "/v2/lat/during/tags/list")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(set(tags) <= set(r.json()["tags"]))
        wait_for(lambda: all(n.gossip_view().get("e2") == "alive"
                             for n in self.live()), 30,
                 what="e2 alive again everywhere")
        with open(e2.log_path, "rb") as f:
            self.assertIn(b"restored a snapshot", f.read())

    def step_kill_voter(self):
        leader = self.leader()
        victim = next(self.node(n) for n in ("v1", "v2", "v0")
                      if self.node(n) is not leader)
        acked = []
        img = images.small("acked")
        images.push_blobs(leader, "acked/app", img)
        victim.kill()
        t0 = time.time()
        wait_for(lambda: all(n.gossip_view().get(victim.name) == "dead"
                             for n in self.live()), 30,
                 what=f"{victim.name} dead everywhere")
        seen = time.time() - t0
        cluster.note(f"kill -9 {victim.name}: dead in every live member's view "
              f"after {seen:.2f} s")
        self.assertLess(seen, 10)
        # writes go on while autopilot works
        for i in range(20):
            r = leader.request("PUT", f"/v2/acked/app/manifests/a{i}",
                               body=img.manifest,
                               headers={"Content-Type": images.OCI_MANIFEST})
            if r.status == 201:
                acked.append(f"a{i}")
            time.sleep(0.2)

        def replaced():
            roles = self.roles(self.leader())
            if roles.get("s0") == "voter" and roles.get(victim.name) != \
                    "voter":
                return roles
            return None
        roles = wait_for(replaced, 60, what="autopilot replaced the voter")
        self.assertEqual(sum(1 for r in roles.values() if r == "voter"), 3,
                         roles)
        st = self.leader().doc("/_atoll/status")
        actions = st.get("autopilot", {}).get("actions", [])
        self.assertTrue(any(victim.name in str(a) for a in actions), st)
        self.assertTrue(acked)
        for n in self.live():
            r = n.request("GET", "/v2/acked/app/tags/list")
            self.assertEqual(r.status, 200, r)
            self.assertTrue(set(acked) <= set(r.json()["tags"]), (n.name, r))


if __name__ == "__main__":
    unittest.main()
