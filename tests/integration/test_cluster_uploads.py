"""Uploads behind a load balancer (issue 4, acceptance item 2): an upload id
names its owner node (its tag is the owner's raft id in hex); a PATCH, PUT,
GET or DELETE on the upload URL that lands on another node is relayed to the
owner's peer listener and the answer relayed back (node/cluster/proxy.c). An owner
that is gone or unknown gives 404 BLOB_UPLOAD_UNKNOWN (the client restarts
the upload), never a corrupt blob.

Also: skopeo copy through a round-robin load balancer that sends every
request on a new connection to the next node.

Set ATOLL_PROXY_BENCH=1 to also measure a 256 MiB PATCH through a non-owner
vs direct to the owner (printed; needs curl). Skipped while atoll has no
--peer-listen."""
import http.client
import os
import shutil
import socket
import subprocess
import threading
import time
import unittest

import ocilayout
from clients import (assert_same_image, docker_ref, needs_skopeo, skopeo_pull,
                     skopeo_push)
from cluster import ClusterTestCase, join_double, wait_for
from harness import (LoopbackServer, location_path, read_head, sha256_digest,
                     with_query)

CURL = shutil.which("curl")
MIB = 1024 * 1024
OCTET = {"Content-Type": "application/octet-stream"}


def upload_id(loc):
    return location_path(loc).rstrip("/").rsplit("/", 1)[1].split("?")[0]


def with_digest(loc, digest):
    return with_query(loc, f"digest={digest}")


def chunks_of(data, size):
    for i in range(0, len(data), size):
        yield data[i:i + size]


class RoundRobinLB(LoopbackServer):
    """A tiny HTTP load balancer on loopback: every client connection gets
    its first request head read, rewritten with Connection: close, and sent
    on a new connection to the next node; bytes are then relayed both ways
    until the node closes. Clients that keep connections alive therefore
    see a new connection (and node) per request."""

    def __init__(self, nodes):
        super().__init__()
        self.nodes = list(nodes)
        self.next = 0
        self.lock = threading.Lock()
        self.per_node = {n.name: 0 for n in self.nodes}

    def pick(self):
        with self.lock:
            n = self.nodes[self.next % len(self.nodes)]
            self.next += 1
            self.per_node[n.name] += 1
            return n

    @staticmethod
    def pump(src, dst):
        try:
            while True:
                b = src.recv(256 * 1024)
                if not b:
                    break
                dst.sendall(b)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve(self, c):
        b = None
        try:
            buf = read_head(c, limit=65536)
            if b"\r\n\r\n" not in buf:
                return
            head, rest = buf.split(b"\r\n\r\n", 1)
            lines = [ln for ln in head.split(b"\r\n")
                     if not ln.lower().startswith(b"connection:")]
            lines.append(b"Connection: close")
            node = self.pick()
            b = socket.create_connection(("127.0.0.1", node.port), timeout=60)
            b.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + rest)
            up = threading.Thread(target=self.pump, args=(c, b), daemon=True)
            up.start()
            self.pump(b, c)
        except OSError:
            pass
        finally:
            c.close()
            if b is not None:
                b.close()


class ProxyUploadTest(ClusterTestCase):
    """One 3-node cluster: split uploads, status, delete, errors, skopeo."""

    @classmethod
    def setUpClass(cls):
        cls.start_class_cluster(3, prefix="up")

    def tearDown(self):
        self.assert_nodes_alive()

    def node_tag(self, node):
        return "%016x" % int(node.status()["id"])

    def start_upload(self, node, repo):
        r = node.request("POST", f"/v2/{repo}/blobs/uploads/")
        self.assertEqual(r.status, 202, r)
        loc = r.header("location")
        self.assertTrue(loc.startswith("/v2/"), loc)
        self.assertTrue(upload_id(loc).startswith(self.node_tag(node) + "-"),
                        f"{loc}: no owner tag of {node.name}")
        return loc

    def assert_blob_everywhere(self, repo, digest, data):
        for n in self.cluster.nodes:
            r = n.request("GET", f"/v2/{repo}/blobs/{digest}", timeout=120)
            self.assertEqual(r.status, 200, f"{n.name}: {r!r}")
            self.assertEqual(len(r.body), len(data), n.name)
            self.assertTrue(r.body == data, f"{n.name}: bytes differ")

    def test_split_upload_across_nodes(self):
        # POST on n0, streamed PATCH on n1, Content-Range PATCH on n2,
        # PUT with the last chunk on n2: the blob is intact everywhere.
        n0, n1, n2 = self.cluster.nodes
        repo = "split/streamed"
        parts = [os.urandom(6 * MIB + 123), os.urandom(5 * MIB),
                 os.urandom(3 * MIB + 7)]
        data = b"".join(parts)
        digest = sha256_digest(data)
        loc = self.start_upload(n0, repo)
        # streamed (chunked) PATCH through n1
        r = n1.request("PATCH", loc, body=chunks_of(parts[0], 256 * 1024),
                       headers=OCTET, timeout=120)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.header("range"), f"0-{len(parts[0]) - 1}")
        self.assertEqual(upload_id(r.header("location")), upload_id(loc))
        self.assertTrue(r.header("docker-upload-uuid"))
        loc = r.header("location")
        # Content-Range chunk through n2
        start = len(parts[0])
        end = start + len(parts[1]) - 1
        h = dict(OCTET)
        h["Content-Range"] = f"{start}-{end}"
        r = n2.request("PATCH", loc, body=parts[1], headers=h, timeout=120)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.header("range"), f"0-{end}")
        loc = r.header("location")
        # status through n1
        r = n1.request("GET", loc)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header("range"), f"0-{end}")
        # closing PUT with the last chunk through n2
        h = dict(OCTET)
        h["Content-Range"] = f"{end + 1}-{len(data) - 1}"
        r = n2.request("PUT", with_digest(loc, digest), body=parts[2],
                       headers=h, timeout=120)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.header("docker-content-digest"), digest)
        self.assertEqual(r.header("location"), f"/v2/{repo}/blobs/{digest}")
        # the session is gone on its owner
        r = n1.request("GET", loc)
        self.assertEqual(r.status, 404, r)
        self.assertIn("BLOB_UPLOAD_UNKNOWN", r.error_codes())
        self.cluster.wait_all_caught_up()
        self.assert_blob_everywhere(repo, digest, data)

    def test_chunked_put_through_other_node(self):
        # POST on n2, PUT ?digest= with a chunked body through n0.
        n0, n1, n2 = self.cluster.nodes
        repo = "split/put"
        data = os.urandom(9 * MIB + 5)
        digest = sha256_digest(data)
        loc = self.start_upload(n2, repo)
        r = n0.request("PUT", with_digest(loc, digest),
                       body=chunks_of(data, MIB), headers=OCTET, timeout=120)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.header("docker-content-digest"), digest)
        self.cluster.wait_all_caught_up()
        self.assert_blob_everywhere(repo, digest, data)

    def test_status_head_and_delete_through_other_nodes(self):
        n0, n1, n2 = self.cluster.nodes
        repo = "split/delete"
        loc = self.start_upload(n1, repo)
        r = n0.request("PATCH", loc, body=b"x" * 1000, headers=OCTET)
        self.assertEqual(r.status, 202, r)
        r = n2.request("GET", loc)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header("range"), "0-999")
        self.assertEqual(r.header("docker-upload-uuid"), upload_id(loc))
        r = n0.request("HEAD", loc)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header("range"), "0-999")
        r = n2.request("DELETE", loc)
        self.assertEqual(r.status, 204, r)
        for n in (n0, n1, n2):
            r = n.request("GET", loc)
            self.assertEqual(r.status, 404, f"{n.name}: {r!r}")
            self.assertIn("BLOB_UPLOAD_UNKNOWN", r.error_codes())

    def test_errors_are_relayed(self):
        # Out-of-order chunk (416 + Range), wrong digest (400), wrong repo
        # (404) come back from the owner unchanged; nothing is stored.
        n0, n1, n2 = self.cluster.nodes
        repo = "split/errors"
        loc = self.start_upload(n0, repo)
        r = n1.request("PATCH", loc, body=b"a" * 100, headers=OCTET)
        self.assertEqual(r.status, 202, r)
        h = dict(OCTET)
        h["Content-Range"] = "500-599"
        r = n2.request("PATCH", loc, body=b"b" * 100, headers=h)
        self.assertEqual(r.status, 416, r)
        self.assertEqual(r.header("range"), "0-99")
        self.assertIn("BLOB_UPLOAD_INVALID", r.error_codes())
        bad = sha256_digest(b"something else")
        r = n2.request("PUT", with_digest(loc, bad), body=b"c" * 10,
                       headers=OCTET)
        self.assertEqual(r.status, 400, r)
        self.assertIn("DIGEST_INVALID", r.error_codes())
        for n in self.cluster.nodes:
            r = n.request("HEAD", f"/v2/{repo}/blobs/{bad}")
            self.assertEqual(r.status, 404, f"{n.name}: {r!r}")
        other = loc.replace(f"/v2/{repo}/", "/v2/split/other/")
        r = n1.request("GET", other)
        self.assertEqual(r.status, 404, r)
        self.assertIn("BLOB_UPLOAD_UNKNOWN", r.error_codes())

    def test_early_answer_with_large_body(self):
        # The owner refuses at once (409: another request holds the upload)
        # while a large body is on its way through the relay: the client
        # gets the owner's 409, not a relay failure.
        n0, n1, n2 = self.cluster.nodes
        repo = "split/busy"
        loc = self.start_upload(n0, repo)
        started = threading.Event()
        release = threading.Event()
        outcome = {}

        def slow_body():
            yield b"s" * 1000
            started.set()
            release.wait(30)
            yield b"t" * 1000

        def slow_patch():
            try:
                r = n0.request("PATCH", loc, body=slow_body(), headers=OCTET,
                               timeout=60)
                outcome["status"] = r.status
            except (OSError, http.client.HTTPException) as e:
                outcome["error"] = repr(e)

        t = threading.Thread(target=slow_patch)
        t.start()
        try:
            self.assertTrue(started.wait(10))
            time.sleep(0.3)
            r = n1.request("PATCH", loc, body=os.urandom(16 * MIB),
                           headers=OCTET, timeout=60)
            self.assertEqual(r.status, 409, r)
            self.assertIn("BLOB_UPLOAD_INVALID", r.error_codes())
        finally:
            release.set()
            t.join(60)
        self.assertEqual(outcome.get("status"), 202, outcome)
        r = n2.request("GET", loc)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header("range"), "0-1999")

    def test_client_disconnect_mid_body_then_resume(self):
        # The client goes away half-way through a relayed PATCH: the owner
        # keeps what it received, like a direct disconnect; the upload then
        # resumes from the reported offset through a third node.
        n0, n1, n2 = self.cluster.nodes
        repo = "split/resume"
        data = os.urandom(8 * MIB)
        loc = self.start_upload(n0, repo)
        s = socket.create_connection(("127.0.0.1", n1.port), timeout=30)
        s.sendall((f"PATCH {loc} HTTP/1.1\r\nHost: x\r\n"
                   f"Content-Type: application/octet-stream\r\n"
                   f"Content-Length: {len(data)}\r\n\r\n").encode())
        s.sendall(data[:3 * MIB])
        time.sleep(0.5)
        s.close()

        def resumable():
            r = n2.request("GET", loc)
            if r.status != 204:
                return None
            # a PATCH of nothing tells whether the session is still locked
            h = dict(OCTET)
            r2 = n2.request("PATCH", loc, body=b"", headers=h)
            return r if r2.status == 202 else None
        r = wait_for(resumable, 30, what="session unlocked")
        size = int(r.header("range").split("-")[1]) + 1
        if r.header("range") == "0-0":
            size = 0
        self.assertLessEqual(size, 3 * MIB)
        h = dict(OCTET)
        h["Content-Range"] = f"{size}-{len(data) - 1}"
        r = n2.request("PATCH", loc, body=data[size:], headers=h, timeout=120)
        self.assertEqual(r.status, 202, r)
        digest = sha256_digest(data)
        r = n1.request("PUT", with_digest(r.header("location"), digest),
                       timeout=120)
        self.assertEqual(r.status, 201, r)
        self.cluster.wait_all_caught_up()
        self.assert_blob_everywhere(repo, digest, data)

    def test_unknown_tags(self):
        # A tag that names no member, a malformed tag, and a member's tag
        # with an id it never issued: 404 BLOB_UPLOAD_UNKNOWN everywhere.
        n0, n1, n2 = self.cluster.nodes
        repo = "split/bogus"
        rnd = os.urandom(16).hex()
        ids = ["00000000deadbeef-" + rnd, "zz-" + rnd,
               self.node_tag(n2) + "-" + rnd]
        for uid in ids:
            for n in self.cluster.nodes:
                for method, body in (("GET", None), ("PATCH", b"x" * 10),
                                     ("DELETE", None)):
                    r = n.request(method, f"/v2/{repo}/blobs/uploads/{uid}",
                                  body=body, headers=OCTET)
                    self.assertEqual(r.status, 404,
                                     f"{method} {uid} on {n.name}: {r!r}")
                    self.assertIn("BLOB_UPLOAD_UNKNOWN", r.error_codes())

    def test_peer_port_needs_secret(self):
        # The owner's peer port serves relayed /v2/ requests only with the
        # cluster secret.
        n0 = self.cluster.nodes[0]
        loc = self.start_upload(n0, "split/auth")
        r = n0.peer_request("GET", loc, headers={"X-Atoll-Proxied": "1"},
                            secret=None)
        self.assertEqual(r.status, 401, r)
        r = n0.peer_request("GET", loc, headers={"X-Atoll-Proxied": "1"})
        self.assertEqual(r.status, 204, r)

    @needs_skopeo
    def test_skopeo_through_round_robin_lb(self):
        c = self.cluster
        lb = RoundRobinLB(c.nodes)
        lb.start()
        self.addCleanup(lb.stop)
        repo = "split/skopeo"
        tmp = self.temp_dir("atoll-lb-skopeo-")
        src = os.path.join(tmp, "src")
        img = ocilayout.build_layout(
            src, sizes=(1024, 5 * MIB, 12 * MIB, 3 * MIB + 17), tag="v1")
        skopeo_push(src, "v1", docker_ref(lb.addr, repo, "v1"), timeout=300)
        c.wait_all_caught_up()
        back = skopeo_pull(docker_ref(lb.addr, repo, "v1"),
                           os.path.join(tmp, "out"), "v1", timeout=300)
        assert_same_image(self, img, back)
        self.assertTrue(all(v > 0 for v in lb.per_node.values()),
                        lb.per_node)

    @unittest.skipUnless(os.environ.get("ATOLL_PROXY_BENCH") and CURL,
                         "set ATOLL_PROXY_BENCH=1 (needs curl)")
    def test_bench_256m_patch(self):
        n0, n1, _ = self.cluster.nodes
        path = os.path.join(self.temp_dir("atoll-proxy-bench-"), "blob")
        with open(path, "wb") as f:
            for _ in range(256):
                f.write(os.urandom(MIB))
        res = {"direct": [], "proxied": []}
        for _ in range(3):
            for label, via in (("direct", n0), ("proxied", n1)):
                loc = self.start_upload(n0, "split/bench")
                t = time.monotonic()
                p = subprocess.run(
                    [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                     "-X", "PATCH", "-T", path, "-H",
                     "Content-Type: application/octet-stream",
                     f"http://{via.addr}{loc}"],
                    stdout=subprocess.PIPE, timeout=600)
                dt = time.monotonic() - t
                self.assertEqual(p.stdout.decode(), "202")
                res[label].append(256 * MIB / dt / 1e6)
                n0.request("DELETE", loc)
        print("\n256 MiB PATCH (MB/s, 3 runs each): direct to the owner "
              + " ".join(f"{v:.0f}" for v in res["direct"])
              + "; through a non-owner "
              + " ".join(f"{v:.0f}" for v in res["proxied"]))


class FakeOwner(LoopbackServer):
    """A fake member's peer listener: records each relayed request head
    (and its Content-Length body) and answers with self.answer (bytes) or,
    when it is None, closes without answering. Raft dials are refused."""

    def __init__(self):
        super().__init__(backlog=16)
        self.answer = None
        self.heads = []
        self.bodies = []

    def serve(self, c):
        try:
            c.settimeout(10)
            buf = read_head(c)
            if b"\r\n\r\n" not in buf:
                return
            head, rest = buf.split(b"\r\n\r\n", 1)
            head = head.decode("latin-1")
            if " /v2/" not in head.split("\r\n", 1)[0]:
                return  # raft dial or anything else: close
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            while len(rest) < length:
                d = c.recv(65536)
                if not d:
                    break
                rest += d
            self.heads.append(head)
            self.bodies.append(rest)
            if self.answer is not None:
                c.sendall(self.answer)
                c.shutdown(socket.SHUT_WR)
                while c.recv(65536):
                    pass
        except OSError:
            pass
        finally:
            c.close()


class ProxyBadOwnerTest(ClusterTestCase):
    """A member whose peer listener is a fake: what the relay sends, and
    how it treats malformed, oversized or missing answers (502, never a
    crash), and which headers it relays."""

    FAKE_ID = 0x7A110C8

    @classmethod
    def setUpClass(cls):
        cls.start_class_cluster(1, prefix="upfake")
        cls.fake = FakeOwner()
        cls.fake.start()
        cls.addClassCleanup(cls.fake.stop)
        n0 = cls.cluster.nodes[0]
        join_double(n0, "fake", cls.fake.port, cls.FAKE_ID)

        def listed():
            return any(m["name"] == "fake"
                       for m in n0.members()["nodes"])
        wait_for(listed, 30, what="fake member in the node table")

    def tearDown(self):
        self.assert_nodes_alive()

    def url(self):
        uid = "%016x-%s" % (self.FAKE_ID, os.urandom(16).hex())
        return f"/v2/fake/repo/blobs/uploads/{uid}"

    def test_request_and_relayed_headers(self):
        n0 = self.cluster.nodes[0]
        url = self.url()
        self.fake.answer = (
            b"HTTP/1.1 202 Accepted\r\n"
            b"Location: " + url.encode() + b"\r\n"
            b"Range: 0-9\r\nDocker-Upload-UUID: u\r\n"
            b"Set-Cookie: a=b\r\nX-Atoll-Test: yes\r\n"
            b"Content-Length: 0\r\n\r\n")
        h = dict(OCTET)
        h["Content-Range"] = "0-9"
        h["X-Atoll-Request-Id"] = "rid-1"
        r = n0.request("PATCH", url + "?x=1", body=b"0123456789", headers=h)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.header("location"), url)
        self.assertEqual(r.header("range"), "0-9")
        self.assertEqual(r.header("x-atoll-test"), "yes")
        self.assertIsNone(r.header("set-cookie"))
        head = self.fake.heads[-1]
        lines = head.split("\r\n")
        self.assertEqual(lines[0], f"PATCH {url}?x=1 HTTP/1.1")
        hdrs = {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip()
                for ln in lines[1:]}
        self.assertEqual(hdrs["authorization"],
                         f"Bearer {self.cluster.secret}")
        self.assertEqual(hdrs["x-atoll-proxied"], "1")
        self.assertEqual(hdrs["content-range"], "0-9")
        self.assertEqual(hdrs["content-length"], "10")
        self.assertEqual(hdrs["x-atoll-request-id"], "rid-1")
        self.assertEqual(self.fake.bodies[-1], b"0123456789")

    def test_bad_answers_give_502(self):
        n0 = self.cluster.nodes[0]
        answers = {
            "garbage": b"NOT HTTP AT ALL\r\n\r\n",
            "huge head": b"HTTP/1.1 204 No Content\r\nX-Big: "
                         + b"a" * (70 * 1024) + b"\r\n\r\n",
            "huge body": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
                         + b"b" * 100000,
            "truncated": b"HTTP/1.1 202 Accepted\r\nContent-Length: 10\r\n"
                         b"\r\nabc",
            "no answer": None,
        }
        for what, answer in answers.items():
            self.fake.answer = answer
            r = n0.request("GET", self.url())
            self.assertEqual(r.status, 502, f"{what}: {r!r}")
            self.assertIn("UNAVAILABLE", r.error_codes(), what)
        # the node still relays a good answer afterwards
        self.fake.answer = b"HTTP/1.1 204 No Content\r\nRange: 0-0\r\n\r\n"
        r = n0.request("GET", self.url())
        self.assertEqual(r.status, 204, r)


class ProxyOwnerDeathTest(ClusterTestCase):
    """The owner dies: mid-body the client request fails and nothing is
    committed; afterwards the others answer 404 BLOB_UPLOAD_UNKNOWN."""

    def setUp(self):
        self.start_cluster(3, prefix="updie")

    def test_owner_killed(self):
        c = self.cluster
        leader = c.leader()
        owner = [n for n in c.nodes if n is not leader][0]
        relay, other = [n for n in c.nodes if n is not owner]
        repo = "die/owner"
        r = owner.request("POST", f"/v2/{repo}/blobs/uploads/")
        self.assertEqual(r.status, 202, r)
        loc = r.header("location")
        r = relay.request("PATCH", loc, body=os.urandom(MIB), headers=OCTET)
        self.assertEqual(r.status, 202, r)

        # A slow chunked PUT through relay; the owner dies half-way.
        data = os.urandom(8 * MIB)
        digest = sha256_digest(data)
        sent = threading.Event()
        outcome = {}

        def body():
            for i, piece in enumerate(chunks_of(data, 256 * 1024)):
                if i == 8:
                    sent.set()
                    time.sleep(1.0)
                yield piece

        def put():
            try:
                h = dict(OCTET)
                conn = http.client.HTTPConnection("127.0.0.1", relay.port,
                                                  timeout=60)
                conn.request("PUT", with_digest(loc, digest), body=body(),
                             headers=h, encode_chunked=True)
                outcome["status"] = conn.getresponse().status
                conn.close()
            except (OSError, http.client.HTTPException) as e:
                outcome["error"] = repr(e)

        t = threading.Thread(target=put)
        t.start()
        self.assertTrue(sent.wait(30))
        owner.kill()
        t.join(90)
        self.assertFalse(t.is_alive())
        self.assertTrue("error" in outcome or outcome.get("status", 0) >= 500,
                        outcome)
        for n in (relay, other):
            for method in ("GET", "PATCH", "DELETE"):
                r = n.request(method, loc,
                              body=b"x" if method == "PATCH" else None,
                              headers=OCTET)
                self.assertEqual(r.status, 404, f"{method} on {n.name}: {r!r}")
                self.assertIn("BLOB_UPLOAD_UNKNOWN", r.error_codes())
            r = n.request("HEAD", f"/v2/{repo}/blobs/{digest}")
            self.assertEqual(r.status, 404, f"{n.name}: {r!r}")
        # The survivors still take uploads (their own or each other's).
        wait_for(lambda: c.leader(exclude=(owner.name,)), 30, what="leader")
        data = os.urandom(2 * MIB)
        d = sha256_digest(data)
        r = relay.request("POST", f"/v2/{repo}/blobs/uploads/")
        self.assertEqual(r.status, 202, r)
        r = other.request("PUT", with_digest(r.header("location"), d),
                          body=data, headers=OCTET, timeout=60)
        self.assertEqual(r.status, 201, r)


if __name__ == "__main__":
    unittest.main()
