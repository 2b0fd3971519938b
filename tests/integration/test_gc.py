"""Online garbage collection (issue 4): `atoll gc` asks a node (POST
/_atoll/gc) to find the blobs no manifest references that are older than
the grace period and to commit their deletion through the raft log
(GcSweep); every node then deletes its own copies. --dry-run only reports.
Pushes go on while it runs. Single node and a 3-node cluster."""
import json
import os
import subprocess
import threading
import time
import unittest

import harness
import images
from cluster import ClusterTestCase
from harness import (ATOLL_BIN, blob_path, sha256_digest, skip_unless_atoll,
                     wait_for)
from images import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST


def run_gc(node, *args, secret_file=None, check=True):
    """atoll gc --addr node ...; returns (exit code, parsed JSON or None,
    stderr)."""
    cmd = [ATOLL_BIN, "gc", "--addr", node.addr] + list(args)
    if secret_file is not None:
        cmd += ["--cluster-secret-file", secret_file]
    env = dict(os.environ)
    env.pop("ATOLL_CLUSTER_SECRET_FILE", None)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=env)
    doc = json.loads(p.stdout) if p.returncode == 0 else None
    if check:
        assert p.returncode == 0, f"{cmd}: {p.returncode}\n{p.stderr}"
    return p.returncode, doc, p.stderr


def push_image(node, repo, tag, layers, config, subject=None):
    """Push config + layers and an OCI manifest (by digest when tag is None;
    subject: a descriptor); returns (digest, bytes, {blob digest: bytes})."""
    img = images.image(layers, config, subject=subject,
                       artifact_type=("application/vnd.example.signature"
                                      if subject is not None else None))
    images.push(node, repo, tag if tag is not None else img.digest, img)
    return img.digest, img.manifest, img.blobs()


def untagged_setup(node, repo):
    """An image re-tagged so that its first manifest is untagged, a tagged
    index of two untagged children and an untagged referrer of the index.
    Returns (old image, {name: image kept}, blobs unique to the old one)."""
    salt = os.urandom(8).hex().encode()
    shared = b"u-shared-" + salt + os.urandom(2000)
    old = push_image(node, repo, "latest",
                     [shared, b"u-old-only-" + os.urandom(3000)],
                     b'{"v":1,"salt":"' + salt + b'"}')
    new = push_image(node, repo, "latest",
                     [shared, b"u-new-only-" + os.urandom(3000)],
                     b'{"v":2,"salt":"' + salt + b'"}')
    kids = [push_image(node, repo, None, [b"u-kid-%d-" % i + os.urandom(999)],
                       b'{"kid":%d,"salt":"' % i + salt + b'"}')
            for i in range(2)]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": k[0],
                            "size": len(k[1]),
                            "platform": {"architecture": f"a{i}",
                                         "os": "linux"}}
                           for i, k in enumerate(kids)]}
    ibody = json.dumps(index).encode()
    r, idig = node.push_manifest(repo, "multi", ibody, OCI_INDEX)
    assert r.status == 201, r
    sig = push_image(node, repo, None, [b"u-sig-" + os.urandom(500)],
                     b'{"sig":"' + salt + b'"}',
                     subject={"mediaType": OCI_INDEX, "digest": idig,
                              "size": len(ibody)})
    unique_old = {d: v for d, v in old[2].items() if d not in new[2]}
    assert len(unique_old) == 2  # its config and its own layer
    kept = {"new": new, "kid0": kids[0], "kid1": kids[1],
            "index": (idig, ibody, {}), "sig": sig}
    return old, kept, unique_old


def assert_untagged_kept(test, node, repo, kept):
    for name, img in kept.items():
        digest, body, _ = img
        r = node.request("GET", f"/v2/{repo}/manifests/{digest}",
                         headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
        test.assertEqual(r.status, 200, f"{name} on {node.addr}: {r!r}")
        test.assertEqual(r.body, body)
        assert_pulls(test, node, repo, img)


def two_images(node, repo):
    """Images A and B sharing one layer; returns (A, B) as push_image does
    and the blobs unique to A."""
    salt = os.urandom(8).hex().encode()
    shared = b"shared-layer-" + salt + os.urandom(3000)
    a = push_image(node, repo, "a", [shared, b"a-only-1-" + os.urandom(5000),
                                     b"a-only-2-" + os.urandom(7000)],
                   b'{"image":"a","salt":"' + salt + b'"}')
    b = push_image(node, repo, "b", [shared, b"b-only-" + os.urandom(4000)],
                   b'{"image":"b","salt":"' + salt + b'"}')
    unique_a = {d: v for d, v in a[2].items() if d not in b[2]}
    assert len(unique_a) == 3
    return a, b, unique_a


def assert_pulls(test, node, repo, image):
    digest, body, blobs = image
    r = node.request("GET", f"/v2/{repo}/manifests/{digest}",
                     headers={"Accept": OCI_MANIFEST})
    test.assertEqual(r.status, 200, f"manifest on {node.addr}: {r!r}")
    test.assertEqual(r.body, body)
    for d, data in blobs.items():
        r = node.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)
        test.assertEqual(r.status, 200, f"blob {d} on {node.addr}: {r!r}")
        test.assertEqual(r.body, data, f"blob {d} bytes on {node.addr}")


def wait_swept(node, repo, digests, timeout=10):
    """Wait until every blob answers 404 on node (within timeout) and then
    its file leaves node's disk (within 10 s)."""
    for d in digests:
        wait_for(lambda: node.request(
            "GET", f"/v2/{repo}/blobs/{d}").status == 404, timeout,
            what=f"{d} gone on {node.addr}")
        wait_for(lambda: not os.path.exists(blob_path(node, d)), 10,
                 what=f"{d} removed from {node.addr}'s disk")


def settle(cluster):
    """Wait until no node copies blobs to peers (min_copies replication):
    a copy that lands after a sweep records its blob again (correct, but
    then garbage for the next run, which the exact counts here exclude)."""
    def quiet():
        for n in cluster.live():
            st = n.status()
            if st.get("copies_in_flight", 0) or st.get("under_replicated", 0):
                return False
        return True
    wait_for(quiet, 60, what="replication settled")


class Pusher(threading.Thread):
    """Pushes small distinct images in a loop until stopped; records every
    pushed image and every failure."""

    def __init__(self, node, repo):
        super().__init__(daemon=True)
        self.node, self.repo = node, repo
        self.stop = threading.Event()
        self.images, self.errors = [], []

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                img = push_image(self.node, self.repo, f"p{i}",
                                 [b"pl-" + os.urandom(2000)],
                                 b'{"p":%d,"r":"%s"}' % (i, os.urandom(4).hex().encode()))
                self.images.append(img)
            except Exception as e:  # recorded, asserted by the test
                self.errors.append(repr(e))
            i += 1


class GcSingleNodeTest(harness.TestCase):
    def setUp(self):
        skip_unless_atoll(self)
        self.node = self.start_node()

    def test_dry_run_then_sweep(self):
        n = self.node
        repo = "gc/one"
        a, b, unique_a = two_images(n, repo)
        # nothing unreferenced yet
        _, doc, _ = run_gc(n, "--dry-run", "--grace", "0s")
        self.assertEqual(doc["candidates"], 0, doc)
        r = n.request("DELETE", f"/v2/{repo}/manifests/{a[0]}")
        self.assertEqual(r.status, 202, r)

        # dry run: exactly A's unique blobs and their bytes; nothing goes
        _, doc, _ = run_gc(n, "--dry-run", "--grace", "0s")
        self.assertEqual(doc["dry_run"], True)
        self.assertEqual(doc["candidates"], 3, doc)
        self.assertEqual(doc["bytes"], sum(len(v) for v in unique_a.values()))
        self.assertEqual(doc["deleted"], 0)
        # within the default grace (1h) nothing is a candidate
        _, doc, _ = run_gc(n, "--dry-run")
        self.assertEqual(doc["candidates"], 0, doc)
        for d in unique_a:
            self.assertTrue(os.path.exists(blob_path(n, d)))
            self.assertEqual(n.request("GET", f"/v2/{repo}/blobs/{d}").status,
                             200)

        _, doc, _ = run_gc(n, "--grace", "0s")
        self.assertEqual(doc["dry_run"], False)
        self.assertEqual(doc["candidates"], 3, doc)
        self.assertEqual(doc["deleted"], 3, doc)
        self.assertEqual(doc["deleted_bytes"],
                         sum(len(v) for v in unique_a.values()))
        for d in unique_a:
            r = n.request("GET", f"/v2/{repo}/blobs/{d}")
            self.assertEqual(r.status, 404, r)
            self.assertIn("BLOB_UNKNOWN", r.error_codes())
            wait_for(lambda: not os.path.exists(blob_path(n, d)), 10,
                     what=f"{d} removed from disk")
        assert_pulls(self, n, repo, b)
        # a second run finds nothing
        _, doc, _ = run_gc(n, "--grace", "0s")
        self.assertEqual(doc["candidates"], 0, doc)

        # a swept blob can be pushed again, and stays
        d, data = next(iter(unique_a.items()))
        self.assertEqual(n.push_blob(repo, data), d)
        time.sleep(0.3)  # any local deletion would have run by now
        r = n.request("GET", f"/v2/{repo}/blobs/{d}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, data)
        # a blob uploaded within the grace period is kept
        _, doc, _ = run_gc(n, "--grace", "1h")
        self.assertEqual(doc["candidates"], 0, doc)
        self.assertTrue(os.path.exists(blob_path(n, d)))

        r = n.request("GET", "/metrics")
        self.assertIn(b"atoll_gc_files_removed_total 3", r.body)

    def test_pushes_during_gc(self):
        n = self.node
        repo = "gc/busy"
        grace = 4
        a, b, unique_a = two_images(n, repo)
        r = n.request("DELETE", f"/v2/{repo}/manifests/{a[0]}")
        self.assertEqual(r.status, 202, r)
        pusher = Pusher(n, "gc/pushed")
        pusher.start()
        try:
            time.sleep(grace + 0.5)  # A's blobs are now older than grace
            runs = []
            for _ in range(5):
                runs.append(run_gc(n, "--grace", f"{grace}s")[1])
                time.sleep(0.2)
        finally:
            pusher.stop.set()
            pusher.join(60)
        self.assertEqual(pusher.errors, [])
        self.assertGreater(len(pusher.images), 3)
        self.assertEqual(sum(doc["deleted"] for doc in runs), 3, runs)
        for d in unique_a:
            self.assertEqual(n.request("GET", f"/v2/{repo}/blobs/{d}").status,
                             404)
        assert_pulls(self, n, repo, b)
        for img in pusher.images:
            assert_pulls(self, n, "gc/pushed", img)

    def test_bad_requests(self):
        n = self.node
        r = n.request("GET", "/_atoll/gc")
        self.assertEqual(r.status, 405, r)
        r = n.request("POST", "/_atoll/gc?grace=forever")
        self.assertEqual(r.status, 400, r)
        r = n.request("POST", "/_atoll/gc?dry_run=maybe")
        self.assertEqual(r.status, 400, r)
        r = n.request("POST", "/_atoll/gc?dry_run=1&grace=0s")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["dry_run"], True)


class GcUntaggedTest(harness.TestCase):
    """Untagged manifests: off by default, on with --gc-untagged (config)
    or untagged=true (atoll gc --untagged)."""

    def check_collected(self, nodes, repo, old, kept, unique_old):
        for n in nodes:
            r = n.request("GET", f"/v2/{repo}/manifests/{old[0]}",
                          headers={"Accept": OCI_MANIFEST})
            self.assertEqual(r.status, 404, f"old manifest on {n.addr}")
            wait_swept(n, repo, unique_old)
            assert_untagged_kept(self, n, repo, kept)

    def test_off_by_default_then_untagged(self):
        skip_unless_atoll(self)
        n = self.start_node()
        repo = "gc/untagged"
        old, kept, unique_old = untagged_setup(n, repo)
        # policy off (default): no manifest is collected
        _, doc, _ = run_gc(n, "--grace", "0s")
        self.assertEqual(doc["untagged"], False, doc)
        self.assertEqual(doc["manifests"], 0, doc)
        self.assertEqual(doc["candidates"], 0, doc)
        assert_pulls(self, n, repo, old)
        # dry run with the policy: one manifest, nothing goes
        _, doc, _ = run_gc(n, "--dry-run", "--grace", "0s", "--untagged")
        self.assertEqual(doc["manifests"], 1, doc)
        self.assertEqual(doc["manifests_deleted"], 0, doc)
        assert_pulls(self, n, repo, old)
        # within the default grace (1h) nothing is a candidate
        _, doc, _ = run_gc(n, "--untagged")
        self.assertEqual(doc["manifests"], 0, doc)
        _, doc, _ = run_gc(n, "--grace", "0s", "--untagged")
        self.assertEqual(doc["manifests"], 1, doc)
        self.assertEqual(doc["manifests_deleted"], 1, doc)
        self.assertEqual(doc["deleted"], 2, doc)
        self.assertEqual(doc["deleted_bytes"],
                         sum(len(v) for v in unique_old.values()))
        self.check_collected([n], repo, old, kept, unique_old)
        _, doc, _ = run_gc(n, "--grace", "0s", "--untagged")
        self.assertEqual((doc["manifests"], doc["candidates"]), (0, 0),
                         doc)
        r = n.request("POST", "/_atoll/gc?untagged=perhaps")
        self.assertEqual(r.status, 400, r)

    def test_config_key(self):
        skip_unless_atoll(self)
        n = self.start_node(args=["--gc-untagged"])
        repo = "gc/untagged-cfg"
        old, kept, unique_old = untagged_setup(n, repo)
        # a run can switch the policy off
        _, doc, _ = run_gc(n, "--grace", "0s", "--untagged=false")
        self.assertEqual(doc["manifests"], 0, doc)
        assert_pulls(self, n, repo, old)
        _, doc, _ = run_gc(n, "--grace", "0s")
        self.assertEqual(doc["untagged"], True, doc)
        self.assertEqual(doc["manifests_deleted"], 1, doc)
        self.check_collected([n], repo, old, kept, unique_old)


class GcScheduleTest(harness.TestCase):
    def test_interval(self):
        skip_unless_atoll(self)
        n = self.start_node(args=["--gc-interval", "300ms", "--gc-grace", "1s"])
        repo = "gc/sched"
        a, b, unique_a = two_images(n, repo)
        r = n.request("DELETE", f"/v2/{repo}/manifests/{a[0]}")
        self.assertEqual(r.status, 202, r)
        wait_swept(n, repo, unique_a, timeout=15)
        assert_pulls(self, n, repo, b)

    def test_store_scan_at_start(self):
        skip_unless_atoll(self)
        n = self.start_node(args=["--gc-scan-delay", "300ms"])
        data = b"keep me " + os.urandom(8)
        d = n.push_blob("gc/scan", data)
        self.assertEqual(n.terminate(), 0)
        # a copy without a record (as a crash mid-sweep leaves)
        orphan = b"orphan " + os.urandom(8)
        path = blob_path(n, sha256_digest(orphan))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(orphan)
        n.start()
        wait_for(lambda: not os.path.exists(path), 10, what="orphan removed")
        self.assertTrue(os.path.exists(blob_path(n, d)))
        r = n.request("GET", f"/v2/gc/scan/blobs/{d}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, data)


class GcClusterTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_class_cluster(3, prefix="gc")

    def test_batches_through_follower(self):
        import concurrent.futures
        c = self.cluster
        leader = c.leader()
        follower = c.followers(leader)[0]
        repo = "gc/batches"
        count = 1100  # two GcSweep commands, forwarded to the leader

        def push(i):
            return leader.push_blob(repo, b"batch-%d-" % i + os.urandom(8))
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            digests = list(ex.map(push, range(count)))
        settle(c)
        _, doc, _ = run_gc(follower, "--grace", "0s",
                           secret_file=c.secret_file)
        self.assertEqual(doc["candidates"], count, doc)
        self.assertEqual(doc["deleted"], count, doc)
        self.assertEqual(doc["batches"], 2, doc)
        for n in c.live():
            wait_for(lambda: not any(os.path.exists(blob_path(n, d))
                                     for d in digests), 30,
                     what=f"files removed on {n.name}")
            r = n.request("GET", f"/v2/{repo}/blobs/{digests[-1]}")
            self.assertEqual(r.status, 404, r)

    def test_sweep_every_node(self):
        c = self.cluster
        leader = c.leader()
        follower = c.followers(leader)[0]
        other = [n for n in c.live() if n not in (leader, follower)][0]
        repo = "gc/cluster"
        a, b, unique_a = two_images(leader, repo)
        # another node fetches a copy of A's blobs (lazy peer fetch)
        for d, data in unique_a.items():
            r = other.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, data)
            self.assertTrue(os.path.exists(blob_path(other, d)))
        r = leader.request("DELETE", f"/v2/{repo}/manifests/{a[0]}")
        self.assertEqual(r.status, 202, r)
        settle(c)

        # admin only: the cluster secret is required
        code, _, err = run_gc(follower, "--dry-run", "--grace", "0s",
                              check=False)
        self.assertEqual(code, 1, err)
        self.assertIn("secret", err)

        _, doc, _ = run_gc(follower, "--dry-run", "--grace", "0s",
                           secret_file=c.secret_file)
        self.assertEqual(doc["candidates"], 3, doc)
        self.assertEqual(doc["bytes"], sum(len(v) for v in unique_a.values()))
        for d in unique_a:
            self.assertTrue(os.path.exists(blob_path(leader, d)))

        # run on a follower: its sweeps go through the leader
        _, doc, _ = run_gc(follower, "--grace", "0s",
                           secret_file=c.secret_file)
        self.assertEqual(doc["deleted"], 3, doc)
        for n in c.live():
            wait_swept(n, repo, unique_a)
            for d in unique_a:
                r = n.request("GET", f"/v2/{repo}/blobs/{d}")
                self.assertIn("BLOB_UNKNOWN", r.error_codes())
        for n in c.live():
            assert_pulls(self, n, repo, b)

    def test_untagged(self):
        c = self.cluster
        leader = c.leader()
        follower = c.followers(leader)[0]
        repo = "gc/cuntagged"
        old, kept, unique_old = untagged_setup(follower, repo)
        settle(c)
        _, doc, _ = run_gc(follower, "--grace", "0s",
                           secret_file=c.secret_file)
        self.assertEqual(doc["manifests"], 0, doc)
        for n in c.live():
            assert_pulls(self, n, repo, old)
        _, doc, _ = run_gc(follower, "--grace", "0s", "--untagged",
                           secret_file=c.secret_file)
        self.assertEqual(doc["manifests_deleted"], 1, doc)
        GcUntaggedTest.check_collected(self, c.live(), repo, old, kept,
                                       unique_old)

    def test_pushes_during_gc(self):
        c = self.cluster
        leader = c.leader()
        follower = c.followers(leader)[0]
        repo = "gc/cbusy"
        grace = 4
        a, b, unique_a = two_images(follower, repo)
        r = follower.request("DELETE", f"/v2/{repo}/manifests/{a[0]}")
        self.assertEqual(r.status, 202, r)
        settle(c)
        pushers = [Pusher(leader, "gc/cpushed-l"),
                   Pusher(follower, "gc/cpushed-f")]
        for p in pushers:
            p.start()
        try:
            time.sleep(grace + 0.5)
            deleted = 0
            for _ in range(4):
                deleted += run_gc(leader, "--grace", f"{grace}s",
                                  secret_file=c.secret_file)[1]["deleted"]
                time.sleep(0.2)
        finally:
            for p in pushers:
                p.stop.set()
            for p in pushers:
                p.join(60)
        self.assertEqual(deleted, 3)
        for p in pushers:
            self.assertEqual(p.errors, [])
            self.assertGreater(len(p.images), 2)
        for n in c.live():
            assert_pulls(self, n, repo, b)
        for p in pushers:
            for img in p.images:
                for n in c.live():
                    assert_pulls(self, n, p.repo, img)


@unittest.skipUnless(os.environ.get("ATOLL_GC_BENCH"), "set ATOLL_GC_BENCH=1")
class GcBench(harness.TestCase):
    """Timing: 10,000 blobs of which 5,000 are garbage, one node."""

    def test_bench(self):
        import concurrent.futures
        skip_unless_atoll(self)
        n = self.start_node()
        repo = "gc/bench"
        total, per_mf = 10000, 100

        def push(i):
            return n.push_blob(repo, b"bench-%d-" % i + os.urandom(16))
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            digests = list(ex.map(push, range(total)))
        t_push = time.time() - t0
        # the first half is referenced by 50 manifests, the rest garbage
        cfg = n.push_blob(repo, b"{}")
        for m in range(total // 2 // per_mf):
            layers = [{"mediaType": OCI_LAYER, "digest": d, "size": 1}
                      for d in digests[m * per_mf:(m + 1) * per_mf]]
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG,
                                          "digest": cfg, "size": 2},
                               "layers": layers}).encode()
            r, _ = n.push_manifest(repo, f"m{m}", body, OCI_MANIFEST)
            self.assertEqual(r.status, 201, r)
        t0 = time.time()
        _, dry, _ = run_gc(n, "--dry-run", "--grace", "0s")
        t_dry = time.time() - t0
        t0 = time.time()
        _, real, _ = run_gc(n, "--grace", "0s")
        t_real = time.time() - t0
        t0 = time.time()
        wait_for(lambda: b"atoll_gc_files_removed_total %d\n" % (total // 2)
                 in n.request("GET", "/metrics").body, 120,
                 what="local files removed")
        t_files = time.time() - t0
        self.assertFalse(any(os.path.exists(blob_path(n, d))
                             for d in digests[total // 2:]))
        self.assertTrue(all(os.path.exists(blob_path(n, d))
                            for d in digests[:total // 2]))
        self.assertEqual(dry["candidates"], total // 2)
        self.assertEqual(real["deleted"], total // 2)
        print(f"\nGC bench: pushed {total} blobs in {t_push:.1f}s; "
              f"dry run {dry['candidates']} candidates in {t_dry * 1000:.0f} ms "
              f"(server {dry['ms']} ms); real run deleted {real['deleted']} "
              f"in {t_real * 1000:.0f} ms (server {real['ms']} ms, "
              f"{real['batches']} batches); files gone {t_files * 1000:.0f} ms later")


class GcCatchUpTest(ClusterTestCase):
    """A node that is down during a GC and catches up (by snapshot: the
    leader's log is compacted past it) deletes its copies too: either it
    sees the records vanish when the snapshot replaces its state, or (when
    the snapshot arrives before it re-applied its own log) the store scan
    gc_scan_delay after the install finds copies without a record."""

    def test_down_during_gc(self):
        c = self.start_cluster(3, prefix="gcsnap",
                               extra=["--snapshot-threshold", "32",
                                      "--snapshot-trailing", "8",
                                      "--gc-scan-delay", "1s"])
        leader = c.leader()
        down = c.followers(leader)[0]
        repo = "gc/catchup"
        a, b, unique_a = two_images(leader, repo)
        for d in unique_a:
            r = down.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)
            self.assertEqual(r.status, 200, r)
            self.assertTrue(os.path.exists(blob_path(down, d)))
        down.terminate()
        r = leader.request("DELETE", f"/v2/{repo}/manifests/{a[0]}")
        self.assertEqual(r.status, 202, r)
        _, doc, _ = run_gc(leader, "--grace", "0s",
                           secret_file=c.secret_file)
        self.assertEqual(doc["deleted"], 3, doc)
        # enough writes for snapshots that compact the sweep away
        for i in range(120):
            r, _ = leader.push_manifest(repo, f"t{i}", b[1], OCI_MANIFEST)
            self.assertEqual(r.status, 201, r)
        down.start()
        # under load a snapshot install is sometimes retried only after
        # libraft's install_snapshot_timeout (30 s)
        c.wait_caught_up(down, timeout=75)
        for d in unique_a:
            try:
                wait_for(lambda: not os.path.exists(blob_path(down, d)),
                         15, what=f"{d} removed from {down.name}'s disk")
            except AssertionError:
                print(down.log()[-3000:])
                raise
            r = down.request("GET", f"/v2/{repo}/blobs/{d}")
            self.assertEqual(r.status, 404, r)
        assert_pulls(self, down, repo, b)


if __name__ == "__main__":
    unittest.main()
