"""Lazy peer blob fetch (issue 4, first step): a GET of a blob linked in a
repository on a node that does not hold the bytes fetches them from a holder
(GET /_atoll/blobs/<digest> on its peer port), stores them verified, records
the node as a holder and serves the client. Concurrent GETs share one
transfer; a holder with a corrupt copy is skipped (never a 200 with wrong
bytes); with no holder reachable the answer is 503, never 404.
Skipped while atoll has no --peer-listen."""
import http.client
import os
import re
import socket
import time
import threading
import unittest

import images
import ocilayout
from clients import (assert_same_image, docker_ref, needs_skopeo, skopeo_pull,
                     skopeo_push)
from cluster import ClusterTestCase, note, wait_for
from harness import LoopbackServer, blob_path, corrupt_blob, sha256_digest

# These tests need blobs held by one node only: no min_copies replication.
NO_COPIES = ["--min-copies", "1"]


def metric(node, name):
    r = node.request("GET", "/metrics", timeout=10)
    assert r.status == 200, r
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\d+)$", r.body,
                  re.M)
    assert m, f"no {name} in /metrics of {node.name}"
    return int(m.group(1))


def get_outcome(node, path, timeout=60, headers=None):
    """GET path; returns (status, body, complete). complete is False when
    the connection closed before Content-Length bytes arrived."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        try:
            body = r.read()
            return r.status, body, True
        except (http.client.IncompleteRead, ConnectionError) as e:
            partial = getattr(e, "partial", b"")
            return r.status, partial, False
    finally:
        conn.close()


def push_image_with(node, repo, tag, layer):
    """Push config + one layer + manifest to node; returns the layer digest."""
    img = images.image([layer])
    images.push(node, repo, tag, img)
    return img.layer_digests[0]


class FetchTestCase(ClusterTestCase):
    def push_layer(self, repo, size, tag="v1"):
        """Push an image with one layer of `size` random bytes to n0 (the
        only holder) and wait until every node applied it. Returns (layer
        bytes, layer digest)."""
        layer = os.urandom(size)
        d = push_image_with(self.cluster.nodes[0], repo, tag, layer)
        self.cluster.wait_all_caught_up()
        return layer, d


class FetchTest(FetchTestCase):
    """One cluster: fetch, sharing, corrupt holders, skopeo."""

    @classmethod
    def setUpClass(cls):
        cls.start_class_cluster(3, extra=NO_COPIES, prefix="fetch")

    def tearDown(self):
        self.assert_nodes_alive()

    def test_get_from_non_holder(self):
        c = self.cluster
        n0, n1, n2 = c.nodes
        repo = "fetch/basic"
        layer, d = self.push_layer(repo, 3 * 1024 * 1024 + 123)
        # the peer endpoint: n0 holds it, n1 does not
        r = n0.peer_request("GET", f"/_atoll/blobs/{d}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("docker-content-digest"), d)
        self.assertEqual(r.body, layer)
        self.assertEqual(n1.peer_request("GET", f"/_atoll/blobs/{d}").status,
                         404)
        self.assertEqual(n1.peer_request("GET", "/_atoll/blobs/sha256:zz")
                         .status, 400)
        self.assertEqual(n0.peer_request("GET", f"/_atoll/blobs/{d}",
                                         secret="wrong").status, 401)
        # HEAD from the metadata, without fetching
        before = metric(n2, "atoll_peer_blob_fetches_total")
        r = n2.request("HEAD", f"/v2/{repo}/blobs/{d}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(int(r.header("content-length")), len(layer))
        self.assertEqual(r.header("docker-content-digest"), d)
        self.assertEqual(metric(n2, "atoll_peer_blob_fetches_total"), before)
        # GET on n1 fetches from n0
        r = n1.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sha256_digest(r.body), d)
        self.assertEqual(r.body, layer)
        r = n1.peer_request("GET", f"/_atoll/blobs/{d}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, layer)
        # a Range GET on n2 fetches too and answers the slice
        r = n2.request("GET", f"/v2/{repo}/blobs/{d}",
                       headers={"Range": "bytes=1000-1999"}, timeout=60)
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.body, layer[1000:2000])
        # unknown in the repo: still 404
        other = sha256_digest(b"never pushed")
        self.assertEqual(n1.request("GET", f"/v2/{repo}/blobs/{other}")
                         .status, 404)

    def test_concurrent_gets_share_one_transfer(self):
        c = self.cluster
        n0, n1, _ = c.nodes
        repo = "fetch/shared"
        layer, d = self.push_layer(repo, 8 * 1024 * 1024)
        fetches = metric(n1, "atoll_peer_blob_fetches_total")
        serves = [metric(n, "atoll_peer_blob_serves_total") for n in c.nodes]
        results = [None] * 10
        start = threading.Barrier(10)

        def get(i):
            start.wait()
            try:
                results[i] = n1.request("GET", f"/v2/{repo}/blobs/{d}",
                                        timeout=60)
            except Exception as e:  # reported below
                results[i] = e

        threads = [threading.Thread(target=get, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        for i, r in enumerate(results):
            self.assertFalse(isinstance(r, Exception), f"GET {i}: {r!r}")
            self.assertEqual(r.status, 200, f"GET {i}: {r!r}")
            self.assertEqual(r.body, layer, f"GET {i}: wrong bytes")
        self.assertEqual(metric(n1, "atoll_peer_blob_fetches_total"),
                         fetches + 1)
        after = [metric(n, "atoll_peer_blob_serves_total") for n in c.nodes]
        self.assertEqual(sum(after) - sum(serves), 1,
                         f"serves before {serves}, after {after}")

    def test_large_blob(self):
        # Larger than the upload session's high-water mark (16 MiB): the
        # transfer pauses while the disk catches up.
        c = self.cluster
        n0, _, n2 = c.nodes
        repo = "fetch/large"
        layer, d = self.push_layer(repo, 40 * 1024 * 1024 + 5)
        r = n2.request("GET", f"/v2/{repo}/blobs/{d}", timeout=120)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body), len(layer))
        self.assertEqual(sha256_digest(r.body), d)
        # the client gets its tail once the bytes are verified; the copy is
        # committed (fdatasync, rename) right after
        wait_for(lambda: os.path.exists(blob_path(n2, d)), 20,
                 what="the fetched copy committed")
        with open(blob_path(n2, d), "rb") as f:
            self.assertEqual(sha256_digest(f.read()), d)
        # the fetch checked the file: a second GET serves it without
        # hashing it again (the streaming client left the note too)
        wait_for(lambda: metric(n2, "atoll_fetches_active") == 0, 20,
                 what="the fetch done")
        hashes = metric(n2, "atoll_blob_verify_hashes_total")
        r = n2.request("GET", f"/v2/{repo}/blobs/{d}", timeout=120)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sha256_digest(r.body), d)
        self.assertEqual(metric(n2, "atoll_blob_verify_hashes_total"), hashes)

    def test_corrupt_holder_never_served(self):
        c = self.cluster
        n0, n1, n2 = c.nodes
        repo = "fetch/corrupt"
        layer, d = self.push_layer(repo, 16 * 1024 * 1024 + 7)
        corrupt_blob(n0, d)
        # the only holder is corrupt: never a complete 200 with wrong bytes.
        # The body streams while it downloads, so the client sees either a
        # body cut short (the held-back tail never comes) or a 503.
        outcomes = []
        for _ in range(2):
            status, body, complete = get_outcome(n1, f"/v2/{repo}/blobs/{d}")
            outcomes.append((status, len(body), complete))
            self.assertFalse(status == 200 and complete,
                             "corrupt bytes served as a complete 200")
            if status == 200:
                self.assertLess(len(body), len(layer))
            else:
                self.assertEqual(status, 503)
        note(f"corrupt holder, GETs (status, bytes, complete): {outcomes}")
        # a Range GET waits for the verification: a clean 503
        r = n1.request("GET", f"/v2/{repo}/blobs/{d}",
                       headers={"Range": "bytes=0-99"}, timeout=60)
        self.assertEqual(r.status, 503, r)
        self.assertTrue(r.header("retry-after"), r)
        # caught by the fetcher's digest check (holder marked suspect) or,
        # before a byte left, by the holder's own verification of its copy
        # (node/cluster/verify.c: the corrupt copy is removed)
        self.assertTrue("suspect" in n1.log() or
                        "does not match its digest" in n0.log())
        # a second, good holder: push the same blob to n2
        self.assertEqual(n2.push_blob(repo, layer), d)
        self.cluster.wait_all_caught_up()
        r = n1.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, layer)

    def test_stream_64mib(self):
        # The body streams while the transfer runs: 200 with the full
        # Content-Length at once, bytes flowing before the commit.
        c = self.cluster
        n0, n1, _ = c.nodes
        repo = "fetch/stream"
        layer, d = self.push_layer(repo, 64 * 1024 * 1024)
        conn = http.client.HTTPConnection("127.0.0.1", n1.port, timeout=120)
        try:
            t0 = time.monotonic()
            conn.request("GET", f"/v2/{repo}/blobs/{d}")
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(int(r.getheader("content-length")), len(layer))
            first = r.read(64 * 1024)
            ttfb = time.monotonic() - t0
            rest = r.read()
            total = time.monotonic() - t0
        finally:
            conn.close()
        body = first + rest
        self.assertEqual(len(body), len(layer))
        self.assertEqual(sha256_digest(body), d)
        note(f"fetch 64 MiB cross-node: first 64 KiB after {ttfb * 1000:.0f}"
             f" ms, all after {total * 1000:.0f} ms")
        if total > 1.0:
            self.assertLess(ttfb, total / 2, "no bytes before the end")

    def test_slow_client_does_not_stall_others(self):
        c = self.cluster
        n0, n1, _ = c.nodes
        repo = "fetch/slow"
        size = 24 * 1024 * 1024
        layer, d = self.push_layer(repo, size)
        fetches = metric(n1, "atoll_peer_blob_fetches_total")
        slow = http.client.HTTPConnection("127.0.0.1", n1.port, timeout=120)
        try:
            slow.request("GET", f"/v2/{repo}/blobs/{d}")
            rs = slow.getresponse()
            self.assertEqual(rs.status, 200)
            got = rs.read(1024)
            # a second client joins (or arrives after the commit): it is
            # served in full while the first one has read next to nothing
            status, body, complete = get_outcome(n1, f"/v2/{repo}/blobs/{d}",
                                                 timeout=60)
            self.assertEqual((status, complete), (200, True))
            self.assertEqual(body, layer)
            # (the tail goes out once the bytes are verified, which may be
            # before the commit's fdatasync: the copy lands soon after)
            wait_for(lambda: os.path.exists(blob_path(n1, d)), 20,
                     what="the copy committed while a client is slow")
            got += rs.read()
            self.assertEqual(got, layer)
        finally:
            slow.close()
        self.assertEqual(metric(n1, "atoll_peer_blob_fetches_total"),
                         fetches + 1)

    def test_head_and_range_not_local(self):
        c = self.cluster
        n0, _, n2 = c.nodes
        repo = "fetch/range"
        layer, d = self.push_layer(repo, 5 * 1024 * 1024 + 11)
        r = n2.request("HEAD", f"/v2/{repo}/blobs/{d}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(int(r.header("content-length")), len(layer))
        self.assertFalse(os.path.exists(blob_path(n2, d)))
        r = n2.request("GET", f"/v2/{repo}/blobs/{d}",
                       headers={"Range": f"bytes={len(layer) - 100}-"},
                       timeout=60)
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.body, layer[-100:])
        self.assertEqual(r.header("content-range"),
                         f"bytes {len(layer) - 100}-{len(layer) - 1}/"
                         f"{len(layer)}")

    @needs_skopeo
    def test_skopeo_push_one_node_pull_another(self):
        c = self.cluster
        n0, n1, _ = c.nodes
        repo = "fetch/skopeo"
        tmp = self.temp_dir("atoll-fetch-skopeo-")
        src = os.path.join(tmp, "src")
        img = ocilayout.build_layout(src, sizes=(1024, 3 * 1024 * 1024),
                                     tag="v1")
        skopeo_push(src, "v1", docker_ref(n0.addr, repo, "v1"), timeout=120)
        c.wait_all_caught_up()
        back = skopeo_pull(docker_ref(n1.addr, repo, "v1"),
                           os.path.join(tmp, "out"), "v1", timeout=120)
        assert_same_image(self, img, back)


class CorruptingProxy(LoopbackServer):
    """A TCP forwarder on listen_addr to target_addr that flips one byte of
    every occurrence of needle in what the target answers: a holder whose
    own copy is fine (so its serve-time verification passes) but whose bytes
    arrive corrupt, as a bad link or a lying peer would give them. Bytes that
    could start the needle are held back at most 50 ms. Runs once made."""

    def __init__(self, listen_addr, target_addr, needle):
        super().__init__(listen_addr)
        self.target = target_addr
        self.needle = needle
        self.flipped = 0
        self.start()

    def serve(self, c):
        try:
            u = socket.create_connection(self.target, timeout=5)
            u.settimeout(None)
        except OSError:
            c.close()
            return
        threading.Thread(target=self._plain, args=(c, u),
                         daemon=True).start()
        self._corrupting(u, c)

    @staticmethod
    def _close_both(a, b):
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    @staticmethod
    def _plain(src, dst):
        try:
            while True:
                b = src.recv(1 << 16)
                if not b:
                    break
                dst.sendall(b)
        except OSError:
            pass
        CorruptingProxy._close_both(src, dst)

    def _held(self, data):
        """Length of the longest suffix of data that starts the needle."""
        for k in range(min(len(self.needle) - 1, len(data)), 0, -1):
            if data.endswith(self.needle[:k]):
                return k
        return 0

    def _corrupting(self, src, dst):
        import select
        tail = b""
        try:
            while True:
                r, _, _ = select.select([src], [], [], 0.05)
                if not r:
                    if tail:
                        dst.sendall(tail)
                        tail = b""
                    continue
                b = src.recv(1 << 16)
                if not b:
                    if tail:
                        dst.sendall(tail)
                    break
                data = bytearray(tail + b)
                i = data.find(self.needle)
                while i >= 0:
                    data[i] ^= 0xFF
                    self.flipped += 1
                    i = data.find(self.needle, i + 1)
                k = self._held(bytes(data))
                tail = bytes(data[len(data) - k:]) if k else b""
                out = data[:len(data) - k]
                if out:
                    dst.sendall(out)
        except OSError:
            pass
        CorruptingProxy._close_both(src, dst)


class FetchCorruptLinkTest(FetchTestCase):
    """The holder's copy is fine (its own verification passes) but the bytes
    reach the fetching node corrupt: the fetcher's early verification (the
    upload's hash watch, blobs >= 8 MiB streamed while they arrive) must cut
    the client's body short, drop the copy and mark the holder suspect."""

    def setUp(self):
        self.proxy = None

        def proxy_n0(i, node):
            # the other nodes reach n0's peer port at 127.0.0.2 (advertised):
            # through the proxy, which corrupts only the chosen blob's bytes
            if i == 0:
                self.proxy = CorruptingProxy(("127.0.0.2", node.peer_port),
                                             ("127.0.0.1", node.peer_port),
                                             b"\x00" * 64)  # set per test
                self.addCleanup(self.proxy.stop)
        self.start_cluster(3, extra=NO_COPIES,
                           per_node={0: ["--advertise", "127.0.0.2"]},
                           prefix="fcorr", before_start=proxy_n0)

    def test_corrupt_link_never_served(self):
        c = self.cluster
        n0, n1, n2 = c.nodes
        repo = "fetch/corruptlink"
        layer, d = self.push_layer(repo, 16 * 1024 * 1024 + 3)
        # 48 bytes from the middle of the blob: random, found nowhere else
        self.proxy.needle = layer[8 * 1024 * 1024:8 * 1024 * 1024 + 48]
        status, body, complete = get_outcome(n1, f"/v2/{repo}/blobs/{d}")
        note(f"corrupt link, GET (status, bytes, complete): "
             f"{(status, len(body), complete)}, flipped {self.proxy.flipped}")
        self.assertGreater(self.proxy.flipped, 0, "the proxy saw no blob")
        self.assertFalse(status == 200 and complete,
                         "corrupt bytes served as a complete 200")
        if status == 200:
            # the held-back tail never went out
            self.assertLessEqual(len(body), len(layer) - 64 * 1024)
        else:
            self.assertEqual(status, 503)
        wait_for(lambda: "does not match its digest" in n1.log(), 20,
                 what="n1 found the digest mismatch")
        self.assertIn("suspect", n1.log())
        note("n1: " + " | ".join(ln.split(" ", 2)[-1] for ln in
                                 n1.log().splitlines()
                                 if "does not match" in ln))
        self.assertFalse(os.path.exists(blob_path(n1, d)))
        # the canceled session leaves no file behind
        up = os.path.join(n1.data_dir, "uploads")
        wait_for(lambda: not os.path.isdir(up) or not os.listdir(up), 20,
                 what="n1's uploads/ empty")
        # a good holder: n2 gets the same blob pushed; n0 is suspect now
        self.assertEqual(n2.push_blob(repo, layer), d)
        c.wait_all_caught_up()
        r = n1.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sha256_digest(r.body), d)


    def test_corrupt_link_relay_cut(self):
        # The same link, to a node below its reserve: the relay hashes what
        # passes through and cuts the client's body before its last 64 KiB
        # when the digest does not match. (A comment, not a docstring: the
        # runner lost this test's status line in two runs.)
        c = self.cluster
        n0, n1, _ = c.nodes
        repo = "fetch/corruptrelay"
        layer, d = self.push_layer(repo, 2 * 1024 * 1024 + 3)
        self.proxy.needle = layer[1024 * 1024:1024 * 1024 + 48]
        n1.kill()
        n1.args = n1.args + ["--reserve-bytes", str(10 ** 15)]
        n1.start()
        c.wait_caught_up(n1)
        status, body, complete = get_outcome(n1, f"/v2/{repo}/blobs/{d}")
        note(f"corrupt link, relayed GET (status, bytes, complete): "
             f"{(status, len(body), complete)}, flipped {self.proxy.flipped}")
        self.assertGreater(self.proxy.flipped, 0, "the proxy saw no blob")
        self.assertEqual(status, 200)
        self.assertFalse(complete, "corrupt bytes relayed as a complete 200")
        self.assertLessEqual(len(body), len(layer) - 64 * 1024)
        wait_for(lambda: "does not match its digest" in n1.log(), 20,
                 what="n1 found the digest mismatch")
        self.assertFalse(os.path.exists(blob_path(n1, d)))
        self.assertTrue(n1.alive(), n1.log())


class FetchFailoverTest(FetchTestCase):
    """The first holder dies: the copy fetched by another node serves."""

    def setUp(self):
        self.start_cluster(3, extra=NO_COPIES, prefix="fofail")

    def test_served_from_second_holder(self):
        c = self.cluster
        n0, n1, n2 = c.nodes
        repo = "fetch/failover"
        layer, d = self.push_layer(repo, 4 * 1024 * 1024 + 1)
        before = n1.applied_index()
        r = n1.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, layer)
        # wait until n2 knows that n1 holds it too (n1 records itself as a
        # holder right after serving)
        wait_for(lambda: n1.applied_index() > before, 30,
                 what="n1 recorded as a holder")
        target = c.leader().status()["commit_index"]
        wait_for(lambda: n2.applied_index() >= target, 30,
                 what="n2 caught up")
        n0.kill()
        r = wait_for(lambda: (lambda x: x if x.status == 200 else None)(
            n2.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)), 30,
            interval=0.5, what="GET from n2 after n0 died")
        self.assertEqual(r.body, layer)
        self.assertEqual(sha256_digest(r.body), d)
        self.assertEqual(n2.peer_request("GET", f"/_atoll/blobs/{d}").status,
                         200)

    def test_client_gone_then_stop_mid_fetch(self):
        c = self.cluster
        n0, n1, n2 = c.nodes
        repo = "fetch/gone"
        layer, d = self.push_layer(repo, 40 * 1024 * 1024 + 3)
        req = (f"GET /v2/{repo}/blobs/{d} HTTP/1.1\r\n"
               f"Host: x\r\n\r\n").encode()
        # a client that goes away right after asking: the fetch goes on
        s = socket.create_connection(("127.0.0.1", n1.port))
        s.sendall(req)
        s.close()
        r = n1.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, layer)
        self.assertTrue(n1.alive(), n1.log())
        # a node stopped while it fetches stops cleanly
        s = socket.create_connection(("127.0.0.1", n2.port))
        s.sendall(req)
        time.sleep(0.02)
        rc = n2.terminate(timeout=30)
        s.close()
        self.assertEqual(rc, 0, n2.log())


class FetchReserveTest(FetchTestCase):
    """Below the free-space reserve a node keeps no new copy: a GET of a
    blob it does not hold is relayed from a holder (the bytes pass through,
    verified, none kept), and what it holds is served as before."""

    def setUp(self):
        self.start_cluster(3, extra=NO_COPIES, prefix="fres")

    def test_relay_below_reserve(self):
        c = self.cluster
        n0, n1, _ = c.nodes
        repo = "fetch/reserve"
        kept = os.urandom(1024 * 1024)
        other = os.urandom(24 * 1024 * 1024 + 5)
        dk = push_image_with(n0, repo, "v1", kept)
        do = push_image_with(n0, repo, "v2", other)
        c.wait_all_caught_up()
        r = n1.request("GET", f"/v2/{repo}/blobs/{dk}", timeout=60)
        self.assertEqual(r.status, 200, r)
        n1.kill()
        n1.args = n1.args + ["--reserve-bytes", str(10 ** 15)]
        n1.start()
        c.wait_caught_up(n1)
        index = n1.applied_index()
        r = n1.request("GET", f"/v2/{repo}/blobs/{do}", timeout=60)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("docker-content-digest"), do)
        self.assertEqual(sha256_digest(r.body), do)
        self.assertEqual(r.body, other)
        self.assertEqual(metric(n1, "atoll_peer_blob_relays_total"), 1)
        self.assertEqual(metric(n1, "atoll_relays_active"), 0)
        self.assertIn("no copy kept", n1.log())
        # a single range, relayed: only those bytes
        r = n1.request("GET", f"/v2/{repo}/blobs/{do}", timeout=60,
                       headers={"Range": "bytes=1000-1999"})
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.body, other[1000:2000])
        self.assertEqual(r.headers.get("content-range"),
                         f"bytes 1000-1999/{len(other)}")
        r = n1.request("GET", f"/v2/{repo}/blobs/{do}", timeout=60,
                       headers={"Range": f"bytes={len(other)}-"})
        self.assertEqual(r.status, 416, r)
        # nothing was kept: no blob file, no upload session, not recorded
        self.assertFalse(os.path.exists(blob_path(n1, do)))
        up = os.path.join(n1.data_dir, "uploads")
        self.assertTrue(not os.path.isdir(up) or not os.listdir(up))
        time.sleep(0.5)
        self.assertEqual(n1.applied_index(), index, "a relay wrote metadata")
        # what it holds is served from its disk
        r = n1.request("GET", f"/v2/{repo}/blobs/{dk}", timeout=60)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, kept)
        r = n1.request("HEAD", f"/v2/{repo}/blobs/{do}")
        self.assertEqual(r.status, 200, r)
        # a client that reads a little and goes away (the relay paused for
        # it): the transfer is dropped, nothing stays behind
        s = socket.create_connection(("127.0.0.1", n1.port))
        s.settimeout(30)
        s.sendall(f"GET /v2/{repo}/blobs/{do} HTTP/1.1\r\n"
                  f"Host: x\r\n\r\n".encode())
        got = 0
        while got < 1024 * 1024:
            b = s.recv(65536)
            self.assertTrue(b, "relay closed early")
            got += len(b)
        time.sleep(0.3)
        s.close()
        wait_for(lambda: metric(n1, "atoll_relays_active") == 0, 30,
                 what="the abandoned relay dropped")
        self.assertEqual(metric(n1, "atoll_peer_blob_relays_total"), 3)
        # the only holder gone: 503, never 404 or a wrong body
        n0.kill()
        r = n1.request("GET", f"/v2/{repo}/blobs/{do}", timeout=60)
        self.assertEqual(r.status, 503, r)
        self.assertTrue(n1.alive(), n1.log())


class FetchRegionTest(FetchTestCase):
    """A holder in the fetching node's region is preferred."""

    @classmethod
    def setUpClass(cls):
        cls.start_class_cluster(3, extra=NO_COPIES, prefix="freg", per_node={
            0: ["--region", "east"], 1: ["--region", "west"],
            2: ["--region", "west"]})

    def test_same_region_first(self):
        c = self.cluster
        n0, n1, n2 = c.nodes
        repo = "fetch/region"
        layer, d = self.push_layer(repo, 1024 * 1024)
        before = n1.applied_index()
        r = n1.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)
        self.assertEqual(r.status, 200, r)
        wait_for(lambda: n1.applied_index() > before, 30,
                 what="n1 recorded as a holder")
        c.wait_caught_up(n2)
        s0 = metric(n0, "atoll_peer_blob_serves_total")
        s1 = metric(n1, "atoll_peer_blob_serves_total")
        # n2 (west) has two holders: n0 (east, first by name) and n1 (west)
        r = n2.request("GET", f"/v2/{repo}/blobs/{d}", timeout=60)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, layer)
        self.assertEqual(metric(n1, "atoll_peer_blob_serves_total"), s1 + 1)
        self.assertEqual(metric(n0, "atoll_peer_blob_serves_total"), s0)


if __name__ == "__main__":
    unittest.main()
