"""Durability of one atoll node: kill -9 during a stream of pushes loses no
acknowledged push, an interrupted upload resumes after a crash, SIGTERM lets
the in-flight request finish and exits 0, a restart serves everything again;
a snapshot's encoding child (raft/snapfork.c) killed mid-snapshot costs that
snapshot only, and dies with a node killed while it runs; kill -9 during a
restart's loading (raft dir, snapshot restore, log replay) loses nothing.

Atoll only. ITEST_VALIDATE_ON_DISTRIBUTION=1 runs these against Debian's
docker-registry too (TEST_REGISTRY=distribution), to check the tests
themselves; distribution does not promise any of this, so a failure there
is not necessarily a test bug.
"""
import http.client
import os
import random
import signal
import socket
import threading
import time
import unittest

import harness
import images
from harness import location_path, sha256_digest, with_query
from images import OCI_MANIFEST


def atoll_only(test):
    if os.environ.get("ITEST_VALIDATE_ON_DISTRIBUTION") == "1":
        return
    harness.skip_unless_atoll(test)


def parse_range(value):
    """'0-123' -> (0, 123)."""
    a, _, b = (value or "").partition("-")
    return int(a), int(b)


class Pusher(threading.Thread):
    """Pushes small unique images in a loop and records each acknowledged
    manifest PUT (201). Stops at the first error (the node was killed)."""

    def __init__(self, node, repo, prefix):
        super().__init__(daemon=True)
        self.node = node
        self.repo = repo
        self.prefix = prefix
        self.acked = []      # (tag, digest, manifest bytes, {digest: bytes})
        self.stop = threading.Event()
        self.error = None

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                self.push_one(i)
            except (OSError, http.client.HTTPException, AssertionError, ValueError) as e:
                self.error = e
                return
            i += 1

    def push_one(self, i):
        img = images.image([os.urandom(random.randint(1, 64 * 1024))])
        tag = f"{self.prefix}-{i}"
        images.push(self.node, self.repo, tag, img, timeout=10,
                    blob_timeout=10)
        self.acked.append((tag, img.digest, img.manifest, img.blobs()))


def snapshot_children(pid):
    """Pids of pid's children forked by its loop thread (the snapshot
    children: the node forks nothing else)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def gone(pid):
    """The process is dead (gone, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def signal_pid(pid, sig):
    """Send sig to pid unless it is gone already."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def full_log(node):
    """All of node's log (Node.log() keeps the last 5,000 characters)."""
    with open(node.log_path, errors="replace") as f:
        return f.read()


def catch_child(pid, seconds):
    """Poll for a snapshot child of pid for up to seconds; its pid or
    None."""
    end = time.time() + seconds
    while time.time() < end:
        kids = snapshot_children(pid)
        if kids:
            return kids[0]
        time.sleep(0.0005)
    return None


class DurabilityTest(harness.TestCase):
    def setUp(self):
        atoll_only(self)
        self.node = self.start_node()

    def verify_acked(self, repo, acked):
        n = self.node
        for tag, digest, body, blobs in acked:
            r = n.request("GET", f"/v2/{repo}/manifests/{tag}",
                          headers={"Accept": OCI_MANIFEST})
            self.assertEqual(r.status, 200, f"acknowledged tag {repo}:{tag} lost: {r}")
            self.assertEqual(r.body, body, f"{repo}:{tag} manifest bytes differ")
            self.assertEqual(r.header("docker-content-digest"), digest)
            r = n.request("GET", f"/v2/{repo}/manifests/{digest}",
                          headers={"Accept": OCI_MANIFEST})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, body)
            for d, data in blobs.items():
                r = n.request("GET", f"/v2/{repo}/blobs/{d}")
                self.assertEqual(r.status, 200, f"blob {d} of {repo}:{tag} lost: {r}")
                self.assertEqual(r.body, data, f"blob {d} bytes differ")
        if acked:
            r = n.request("GET", f"/v2/{repo}/tags/list")
            self.assertEqual(r.status, 200, r)
            tags = set(r.json().get("tags") or [])
            missing = {a[0] for a in acked} - tags
            self.assertFalse(missing, f"tags missing from list: {sorted(missing)[:10]}")

    def test_kill9_during_push_stream(self):
        n = self.node
        acked = {"dur/a": [], "dur/b": []}
        rounds = 3
        for rnd in range(rounds):
            pushers = [Pusher(n, repo, f"r{rnd}") for repo in acked]
            for p in pushers:
                p.start()
            time.sleep(random.uniform(1.0, 2.0))
            n.kill()
            for p in pushers:
                p.stop.set()
                p.join(30)
                self.assertFalse(p.is_alive(), "pusher hung after kill -9")
                acked[p.repo].extend(p.acked)
            self.assertTrue(any(p.acked for p in pushers),
                            f"round {rnd}: nothing acknowledged before the kill: "
                            f"{[p.error for p in pushers]}\n{n.log()}")
            n.start()
            for repo, lst in acked.items():
                self.verify_acked(repo, lst)
        # pushes keep working after the crashes
        p = Pusher(n, "dur/a", "after")
        p.push_one(0)
        self.verify_acked("dur/a", p.acked)

    def test_kill_snapshot_child_then_parent(self):
        """Snapshots every 32 writes while images are pushed: children
        killed mid-snapshot fail that snapshot alone (logged, the next one
        is taken); then a child frozen mid-snapshot when its node is killed
        -9 dies with it, the node restarts at once on the same data dir and
        serves every acknowledged push."""
        atoll_only(self)
        self.node.close()
        n = self.node = self.start_node(
            ["--snapshot-threshold", "32", "--snapshot-trailing", "16"])
        pushers = [Pusher(n, repo, "s") for repo in ("snap/a", "snap/b")]
        for p in pushers:
            p.start()
        killed = 0
        end = time.time() + 20
        while killed < 3 and time.time() < end:
            kid = catch_child(n.proc.pid, 2)
            if kid is not None:
                signal_pid(kid, signal.SIGKILL)
                killed += 1
        self.assertGreater(killed, 0, "no snapshot child seen")
        harness.wait_for(
            lambda: "snapshot child killed by signal 9" in full_log(n), 10,
            what="the failed snapshot logged")
        done = full_log(n).count("ms fork")
        harness.wait_for(lambda: full_log(n).count("ms fork") > done, 20,
                         what="a snapshot taken after the kills")
        frozen = None
        end = time.time() + 20
        while frozen is None and time.time() < end:
            kid = catch_child(n.proc.pid, 2)
            try:
                if kid is not None:  # stopped: still there when its node dies
                    os.kill(kid, signal.SIGSTOP)
                    frozen = kid
            except ProcessLookupError:
                pass
        self.assertIsNotNone(frozen, "no snapshot child to freeze")
        self.addCleanup(signal_pid, frozen, signal.SIGKILL)
        n.kill()
        for p in pushers:
            p.stop.set()
            p.join(30)
        # Stopped before its prctl, it exits on its own once it runs (its
        # parent is not the one it was forked by); stopped after it, the
        # parent's death already sent it SIGKILL.
        signal_pid(frozen, signal.SIGCONT)
        harness.wait_for(lambda: gone(frozen), 5,
                         what="the child died with its parent")
        n.start()
        for p in pushers:
            self.assertTrue(p.acked, f"nothing pushed: {p.error}")
            self.verify_acked(p.repo, p.acked)
        print(f"note: snapshot children killed {killed}, then one frozen "
                     f"and its node killed; "
                     f"{sum(len(p.acked) for p in pushers)} pushes verified",
              flush=True)

    def test_kill9_while_loading_snapshot(self):
        """kill -9 at random moments of a restart, while the node reads its
        raft dir, restores its snapshot (manifest bodies into a new body
        file) or replays the log tail: each time the next start serves
        every acknowledged push, byte for byte."""
        atoll_only(self)
        self.node.close()
        n = self.node = self.start_node(
            ["--snapshot-threshold", "64", "--snapshot-trailing", "16"])
        pushers = [Pusher(n, repo, "l") for repo in ("load/a", "load/b")]
        for p in pushers:
            p.start()
        time.sleep(3)
        for p in pushers:
            p.stop.set()
            p.join(30)
            self.assertTrue(p.acked, f"nothing pushed: {p.error}")
        before = after = 0
        def log_since(mark):
            with open(n.log_path, errors="replace") as f:
                f.seek(mark)
                return f.read()

        for rnd in range(8):
            n.kill()
            mark = os.path.getsize(n.log_path)
            n.start(wait=False)
            if rnd % 2 == 0:
                time.sleep(random.uniform(0.005, 0.3) if rnd else 0.005)
            else:
                # after the restore, during the log tail or just after: the
                # moment is found in the log (a slow build, ASan, restores
                # later than any fixed delay)
                end = time.time() + 30
                while (time.time() < end and n.alive() and
                       "restored a snapshot" not in log_since(mark)):
                    time.sleep(0.002)
                time.sleep(random.uniform(0, 0.1))
            n.kill()
            run = log_since(mark)
            if "restored a snapshot" in run:
                after += 1
            else:
                before += 1
        n.start()
        for p in pushers:
            self.verify_acked(p.repo, p.acked)
        self.assertGreater(before, 0, "no kill landed before the restore")
        self.assertGreater(after, 0, "no kill landed after the restore")
        print(f"note: {before + after} restarts killed ({before} before the "
              f"snapshot was restored, {after} after); "
              f"{sum(len(p.acked) for p in pushers)} pushes verified",
              flush=True)

    def test_interrupted_upload_resumes(self):
        n = self.node
        blob = os.urandom(4 * 1024 * 1024)
        half = len(blob) // 2
        repo = "dur/resume"
        r = n.request("POST", f"/v2/{repo}/blobs/uploads/")
        self.assertEqual(r.status, 202, r)
        loc = location_path(r.header("location"))
        r = n.request("PATCH", loc, body=blob[:half],
                      headers={"Content-Type": "application/octet-stream",
                               "Content-Range": f"0-{half - 1}"})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(parse_range(r.header("range")), (0, half - 1))
        loc = location_path(r.header("location"))
        n.kill()
        n.start()
        r = n.request("GET", loc)
        self.assertEqual(r.status, 204, f"upload lost after kill -9: {r}")
        start, end = parse_range(r.header("range"))
        self.assertEqual(start, 0)
        self.assertGreaterEqual(end, half - 1, "acknowledged bytes lost")
        self.assertLess(end, len(blob))
        loc = location_path(r.header("location") or loc)
        r = n.request("PATCH", loc, body=blob[end + 1:],
                      headers={"Content-Type": "application/octet-stream",
                               "Content-Range": f"{end + 1}-{len(blob) - 1}"})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(parse_range(r.header("range")), (0, len(blob) - 1))
        d = sha256_digest(blob)
        r = n.request("PUT", with_query(location_path(r.header("location")), f"digest={d}"))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.header("docker-content-digest"), d)
        r = n.request("GET", f"/v2/{repo}/blobs/{d}")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body == blob, "resumed blob differs")
        # and it survives another crash
        n.kill()
        n.start()
        r = n.request("GET", f"/v2/{repo}/blobs/{d}")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body == blob)

    def test_sigterm_with_slow_upload_in_flight(self):
        n = self.node
        repo = "dur/sigterm"
        img_digest, img_body = n.push_image(repo, "before", layers=(b"pre-sigterm layer",))
        r = n.request("POST", f"/v2/{repo}/blobs/uploads/")
        self.assertEqual(r.status, 202, r)
        loc = location_path(r.header("location"))
        total, step, pause = 256 * 1024, 16 * 1024, 0.1   # ~1.6 s of sending
        body = os.urandom(total)
        result = {}

        def slow_patch():
            s = socket.create_connection(("127.0.0.1", n.port), timeout=20)
            try:
                s.sendall((f"PATCH {loc} HTTP/1.1\r\nHost: {n.addr}\r\n"
                           f"Content-Type: application/octet-stream\r\n"
                           f"Content-Length: {total}\r\n\r\n").encode())
                for off in range(0, total, step):
                    s.sendall(body[off:off + step])
                    time.sleep(pause)
                data = harness.read_head(s)
                result["status"] = harness.parse_raw_response(data)[0]
            except OSError as e:
                result["error"] = e
            finally:
                s.close()
                result["done"] = time.time()

        t = threading.Thread(target=slow_patch, daemon=True)
        t.start()
        time.sleep(0.5)
        t0 = time.time()
        n.proc.send_signal(15)
        try:
            rc = n.proc.wait(15)
        except Exception:
            self.fail(f"node did not exit within 15 s of SIGTERM\n{n.log()}")
        self.assertIn(rc, (0,) if harness.is_atoll() else (0, -15),
                      f"exit code after SIGTERM\n{n.log()}")
        t.join(20)
        self.assertFalse(t.is_alive(), "in-flight request hung after SIGTERM")
        # either the request completed with 202, or the connection was closed
        self.assertTrue(result.get("status") in (202, None), result)
        self.assertLess(result["done"] - t0, 20)
        n.start()
        r = n.request("GET", f"/v2/{repo}/manifests/before",
                      headers={"Accept": OCI_MANIFEST})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, img_body)
        self.assertEqual(r.header("docker-content-digest"), img_digest)
        if result.get("status") == 202:
            # the acknowledged upload survived the shutdown and completes
            r = n.request("GET", loc)
            self.assertEqual(r.status, 204, r)
            self.assertEqual(parse_range(r.header("range")), (0, total - 1))
            d = sha256_digest(body)
            r = n.request("PUT", with_query(location_path(r.header("location") or loc),
                                            f"digest={d}"))
            self.assertEqual(r.status, 201, r)
            r = n.request("GET", f"/v2/{repo}/blobs/{d}")
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.body == body)

    def test_restart_serves_everything(self):
        n = self.node
        repos = ["restart/one", "restart/two/deep", "restart/three"]
        images = {}
        for i, repo in enumerate(repos):
            for tag in ("v1", "v2", "latest"):
                layers = (os.urandom(1000 + i), b"shared layer for restart")
                d, body = n.push_image(repo, tag, layers=layers,
                                       config=b'{"i":"%d-%s"}' % (i, tag.encode()))
                images[(repo, tag)] = (d, body, layers)
        r = n.request("DELETE", "/v2/restart/three/manifests/v2")
        if harness.is_atoll():
            self.assertEqual(r.status, 202, r)   # distribution cannot delete tags
        if r.status == 202:
            del images[("restart/three", "v2")]
        deleted_ok = r.status == 202

        def check():
            r = n.request("GET", "/v2/_catalog")
            self.assertEqual(r.status, 200, r)
            cat = r.json()["repositories"]
            for repo in repos:
                self.assertIn(repo, cat)
            self.assertEqual(cat, sorted(cat))
            for repo in repos:
                r = n.request("GET", f"/v2/{repo}/tags/list")
                self.assertEqual(r.status, 200, r)
                want = sorted(t for (rp, t) in images if rp == repo)
                self.assertEqual(sorted(r.json()["tags"]), want)
            for (repo, tag), (d, body, layers) in images.items():
                for ref in (tag, d):
                    r = n.request("GET", f"/v2/{repo}/manifests/{ref}",
                                  headers={"Accept": OCI_MANIFEST})
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.body, body)
                    self.assertEqual(r.header("content-type"), OCI_MANIFEST)
                for layer in layers:
                    r = n.request("GET", f"/v2/{repo}/blobs/{sha256_digest(layer)}")
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.body, layer)
                    r = n.request("GET", f"/v2/{repo}/blobs/{sha256_digest(layer)}",
                                  headers={"Range": "bytes=1-3"})
                    self.assertEqual(r.status, 206, r)
                    self.assertEqual(r.body, layer[1:4])
            if deleted_ok:
                r = n.request("GET", "/v2/restart/three/manifests/v2")
                self.assertEqual(r.status, 404, r)

        check()
        rc = n.terminate(30)
        self.assertIn(rc, (0,) if harness.is_atoll() else (0, -15), n.log())
        n.start()
        check()
        n.kill()
        n.start()
        check()


if __name__ == "__main__":
    unittest.main()
