"""GET /metrics is valid Prometheus text that `promtool check metrics`
accepts (issue 14), on a busy cluster:

(a) three nodes; images pushed through one node and pulled through
    another, some 404s; then every node's /metrics passes promtool with
    exit 0 (no lint finding: HELP and TYPE on every family, counters end
    in _total, base units);
(b) the series operators scrape are there: request duration histograms
    by route and method, raft term/indexes/leader/lag, gossip members by
    state, storage, process_*;
(c) every histogram is consistent: cumulative bucket counts never go
    down, the +Inf bucket equals _count, and _sum is not negative;
(d) the leader shows each follower's lag and the voters (all healthy),
    and exactly one node says it leads; the others export neither;
(e) the leader stops: the survivors count a leader change, show the
    stopped node as left, the new leader counts 2 healthy voters, and
    their /metrics still passes promtool.

The promtool parts skip (with the reason) when promtool is missing: it
comes from Debian's prometheus package (.ci/install-deps installs it).
"""
import re
import shutil
import subprocess
import unittest

import cluster
from cluster import ClusterTestCase
from harness import skip_unless_atoll, wait_for

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(node):
    r = node.request("GET", "/metrics", timeout=10)
    if r.status != 200:
        raise AssertionError(f"/metrics on {node.name}: {r!r}")
    return r.body.decode()


def samples(text):
    """[(name, {label: value}, float)] of the sample lines of text."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m is None:
            raise AssertionError(f"not a sample line: {line!r}")
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def value(text, name, **labels):
    for n, lab, v in samples(text):
        if n == name and all(lab.get(k) == x for k, x in labels.items()):
            return v
    return None


def check_histograms(test, text):
    """(c) on every histogram of text; returns how many series it saw."""
    series = {}
    for n, lab, v in samples(text):
        if not n.endswith(("_bucket", "_sum", "_count")):
            continue
        base, _, part = n.rpartition("_")
        le = lab.pop("le", None)
        key = (base, tuple(sorted(lab.items())))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if part == "bucket":
            s["buckets"].append((le, v))
        else:
            s[part] = v
    seen = 0
    for (base, lab), s in series.items():
        if not s["buckets"]:
            continue  # a _count or _sum of a summary or a plain counter
        seen += 1
        counts = [v for _, v in s["buckets"]]
        les = [float(le) for le, _ in s["buckets"]]
        test.assertEqual(les, sorted(les), f"{base}{lab}: le order")
        test.assertEqual(s["buckets"][-1][0], "+Inf", f"{base}{lab}")
        test.assertEqual(counts, sorted(counts),
                         f"{base}{lab}: buckets go down: {counts}")
        test.assertEqual(counts[-1], s["count"], f"{base}{lab}: +Inf != count")
        test.assertGreaterEqual(s["sum"], 0, f"{base}{lab}")
    return seen


class MetricsTest(ClusterTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        skip_unless_atoll(cls)
        cluster.require_cluster()
        cls.start_class_cluster(3)
        c = cls.cluster
        a, b = c.nodes[0], c.nodes[1]
        for i in range(3):
            cluster.push_small(a, f"metrics/app{i}", "v1")
        c.wait_all_caught_up()
        for i in range(3):
            r = cluster.get_tag(b, f"metrics/app{i}", "v1")
            assert r.status == 200, r
        for path in ("/v2/metrics/nope/manifests/v1",
                     "/v2/metrics/nope/blobs/sha256:" + "0" * 64,
                     "/v2/metrics/app0/tags/list", "/v2/_catalog", "/nowhere"):
            b.request("GET", path)
        b.request("HEAD", "/v2/metrics/app1/manifests/v1")

    def test_promtool_accepts_every_node(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool missing (Debian package prometheus; "
                          ".ci/install-deps installs it)")
        for node in self.cluster.nodes:
            text = scrape(node)
            p = subprocess.run([promtool, "check", "metrics"],
                               input=text.encode(), capture_output=True,
                               timeout=60)
            self.assertEqual(
                p.returncode, 0,
                f"promtool on {node.name}'s /metrics: "
                f"{p.stdout.decode()}{p.stderr.decode()}")

    def test_series_present(self):
        text = scrape(self.cluster.nodes[1])
        for name in ("atoll_raft_term", "atoll_raft_commit_index",
                     "atoll_raft_applied_index", "atoll_raft_last_index",
                     "atoll_raft_leader_changes_total", "atoll_raft_is_leader",
                     "atoll_raft_guard_held_total",
                     "atoll_raft_guard_dropped_total",
                     "atoll_raft_guard_barriers_total",
                     "atoll_storage_free_bytes",
                     "atoll_storage_upload_sessions",
                     "atoll_fetches_active", "atoll_copies_in_flight",
                     "atoll_peer_blob_relays_total", "atoll_relays_active",
                     "process_resident_memory_bytes",
                     "process_cpu_seconds_total", "process_open_fds",
                     "process_max_fds", "process_start_time_seconds"):
            self.assertIsNotNone(value(text, name), name)
        # the commit guard (raft/guard.h): whoever won an election appended
        # a barrier of its term at once
        texts = [scrape(n) for n in self.cluster.nodes]
        leaders = [t for t in texts if value(t, "atoll_raft_is_leader") == 1]
        self.assertEqual(len(leaders), 1)
        self.assertGreaterEqual(
            value(leaders[0], "atoll_raft_guard_barriers_total"), 1)
        self.assertEqual(sum(value(t, "atoll_raft_guard_dropped_total")
                             for t in texts), 0)
        self.assertGreater(value(text, "process_resident_memory_bytes"), 0)
        self.assertGreater(value(text, "process_open_fds"), 0)
        self.assertGreater(value(text, "atoll_storage_free_bytes"), 0)
        # manifest bodies off the heap (raft/bodies.h), on a follower too:
        # 3 pushed, each served from the body file by the pulls above
        self.assertGreater(
            value(text, "atoll_manifest_body_bytes", state="live"), 0)
        self.assertEqual(value(text, "atoll_manifest_bodies_in_memory"), 0)
        # the event loop's lateness (node/loop_lag.h): ticking every 50 ms
        self.assertGreater(value(text, "atoll_loop_lag_seconds_count"), 0)
        self.assertIsNotNone(value(text, "atoll_loop_lag_max_seconds"))
        for kind in ("busy", "waiting"):
            self.assertIsNotNone(
                value(text, "atoll_loop_stalls_total", kind=kind), kind)
        self.assertIsNotNone(value(text, "atoll_loop_stall_faults_total"))
        self.assertGreaterEqual(value(text, "atoll_raft_term"), 1)
        self.assertEqual(value(text, "atoll_gossip_members", state="alive"),
                         3)
        h = "atoll_http_request_duration_seconds_count"
        self.assertGreaterEqual(value(text, h, route="manifest",
                                      method="GET"), 3)
        self.assertEqual(value(text, h, route="manifest", method="HEAD"), 1)
        self.assertGreaterEqual(value(text, h, route="blob", method="GET"), 1)
        for route in ("tags", "catalog", "other"):
            self.assertGreaterEqual(value(text, h, route=route, method="GET"),
                                    1, route)
        self.assertGreaterEqual(value(text, "atoll_http_requests_total",
                                      **{"class": "4xx"}), 2)
        # pushes went to n0: its upload and manifest PUT routes counted
        t0 = scrape(self.cluster.nodes[0])
        self.assertGreaterEqual(value(t0, h, route="upload", method="POST"),
                                3)
        self.assertGreaterEqual(value(t0, h, route="manifest", method="PUT"),
                                3)

    def test_histograms_consistent(self):
        for node in self.cluster.nodes:
            self.assertGreater(check_histograms(self, scrape(node)), 0,
                               node.name)

    def test_leader_and_lag(self):
        c = self.cluster
        leader = c.wait_leader()
        c.wait_all_caught_up()
        texts = {n.name: scrape(n) for n in c.nodes}
        leaders = [n for n, t in texts.items()
                   if value(t, "atoll_raft_is_leader") == 1]
        self.assertEqual(leaders, [leader.name])
        lt = texts[leader.name]
        peers = {lab["peer"]: v for n, lab, v in samples(lt)
                 if n == "atoll_raft_peer_lag_entries"}
        others = {n.name for n in c.nodes if n is not leader}
        self.assertEqual(set(peers), others, lt)
        # caught up: within a few entries (a heartbeat barrier may be
        # in flight)
        wait_for(lambda: all(
            v <= 5 for n, lab, v in samples(scrape(leader))
            if n == "atoll_raft_peer_lag_entries"), 10, what="lag <= 5")
        for n in others:
            self.assertIsNone(value(texts[n], "atoll_raft_peer_lag_entries"))
        # voters: on the leader only (absent elsewhere), all 3 healthy once
        # autopilot has seen them alive and caught up
        wait_for(lambda: value(scrape(leader), "atoll_raft_voters_healthy") == 3,
                 15, what="3 healthy voters on the leader")
        self.assertEqual(value(scrape(leader), "atoll_raft_voters"), 3)
        for n in others:
            for name in ("atoll_raft_voters", "atoll_raft_voters_healthy"):
                self.assertIsNone(value(texts[n], name), f"{name} on {n}")


class LeaderChangeTest(ClusterTestCase):

    def test_leader_change_counted(self):
        skip_unless_atoll(self)
        c = self.start_cluster(3)
        old = c.wait_leader()
        rest = [n for n in c.nodes if n is not old]
        before = {n.name: value(scrape(n), "atoll_raft_leader_changes_total")
                  for n in rest}
        old.terminate()
        new = c.wait_leader(exclude=(old.name,), timeout=30)
        self.assertNotEqual(new.name, old.name)
        for n in rest:
            wait_for(lambda: value(scrape(n),
                                   "atoll_raft_leader_changes_total")
                     >= before[n.name] + 1, 10,
                     what=f"{n.name} counts the leader change")
        # the new leader counts the stopped voter out of the healthy ones
        wait_for(lambda: value(scrape(new), "atoll_raft_voters_healthy") == 2,
                 20, what="2 healthy voters on the new leader")
        text = scrape(new)
        self.assertEqual(value(text, "atoll_raft_is_leader"), 1)
        self.assertIn(value(text, "atoll_raft_voters"), (2, 3))
        check_histograms(self, text)
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool missing (Debian package prometheus)")
        for n in rest:
            p = subprocess.run([promtool, "check", "metrics"],
                               input=scrape(n).encode(), capture_output=True,
                               timeout=60)
            self.assertEqual(p.returncode, 0,
                             p.stdout.decode() + p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
