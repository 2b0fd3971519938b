"""The peer port refuses requests without the cluster secret: forwarded
writes, read index, join, membership changes and raft upgrades with a
missing or wrong secret get 401 (OCI-style JSON) and a closed connection;
malformed requests get 400 or a close; oversized bodies are refused. The
node keeps working and never logs the secret. A request in the first peer
protocol (no X-Atoll-Peer-Protocol header, JSON or text bodies) or in an
unknown version gets 426 naming both versions and one rate-limited WARN
line naming the peer. Skipped while atoll has no --peer-listen."""
import json
import os
import socket
import time
import unittest

import peerproto
from cluster import (Cluster, ClusterTestCase, get_tag, join_double,
                     push_small)
from harness import (LoopbackServer, parse_raw_response, raw_exchange,
                     read_head, wait_for)

BAD = "wrong-secret-0123456789"


def raft_upgrade(node, secret, raft_id="7", address="intruder", extra=b"",
                 version=peerproto.PEER_PROTOCOL):
    """Raw raft upgrade request on the peer port; returns (reply, closed)."""
    lines = ["POST /_atoll/raft HTTP/1.1",
             f"Host: {node.peer_addr}",
             "Upgrade: atoll-raft/1",
             "Connection: Upgrade"]
    if version is not None:
        lines.append(f"{peerproto.VERSION_HEADER}: {version}")
    if secret is not None:
        lines.append(f"Authorization: Bearer {secret}")
    if raft_id is not None:
        lines.append(f"X-Atoll-Raft-Id: {raft_id}")
    if address is not None:
        lines.append(f"X-Atoll-Raft-Address: {address}")
    lines.append("Content-Length: 0")
    req = ("\r\n".join(lines) + "\r\n\r\n").encode() + extra
    return raw_exchange(node.peer_port, req, timeout=5)


class PeerAuthTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_class_cluster(3, prefix="sec")

    def tearDown(self):
        c = self.cluster
        self.assert_nodes_alive()
        # the cluster still works after every test
        tag = self._testMethodName.replace("_", "-")
        r, d, b = push_small(c.nodes[len(tag) % 3], "sec/alive", tag)
        self.assertEqual(r.status, 201, r)
        self.assert_tag_everywhere("sec/alive", tag, d, body=b)

    def assert_401(self, r, what):
        self.assertEqual(r.status, 401, f"{what}: {r!r}")
        self.assertIn("application/json", r.header("content-type") or "", r)
        doc = json.loads(r.body)
        self.assertTrue(doc.get("errors"), f"{what}: no OCI error list: {r!r}")
        self.assertIsInstance(doc["errors"][0].get("code"), str)

    def test_propose_without_or_with_wrong_secret(self):
        c = self.cluster
        leader = c.leader()
        before = leader.status()["applied_index"]
        for secret in (None, BAD, "", c.secret + "x", c.secret[:-1]):
            r = leader.peer_request("POST", "/_atoll/propose", body=b"\0" * 64,
                                    headers={"Content-Type":
                                             "application/octet-stream"},
                                    secret=secret)
            self.assert_401(r, f"propose with secret {secret!r}")
        # other auth schemes are refused too
        r = leader.peer_request("POST", "/_atoll/propose", body=b"x" * 8,
                                headers={"Authorization": f"Basic {c.secret}"},
                                secret=None)
        self.assertEqual(r.status, 401, r)
        r = leader.peer_request("POST", "/_atoll/read-index", secret=BAD)
        self.assert_401(r, "read-index")
        # nothing was applied by the refused requests beyond heartbeats etc.
        self.assertGreaterEqual(leader.status()["applied_index"], before)

    def test_garbage_propose_with_right_secret(self):
        leader = self.cluster.leader()
        r = leader.peer_request("POST", "/_atoll/propose", body=b"\x01" * 64,
                                headers={"Content-Type":
                                         "application/octet-stream"})
        self.assertIn(r.status, (400, 422), f"garbage command: {r!r}")
        # bounded body size: 8 MiB + 64 is the limit
        s = socket.create_connection(("127.0.0.1", leader.peer_port), timeout=10)
        try:
            s.sendall((f"POST /_atoll/propose HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {self.cluster.secret}\r\n"
                       f"{peerproto.VERSION_HEADER}: 2\r\n"
                       f"Content-Type: application/octet-stream\r\n"
                       f"Content-Length: {1 << 34}\r\n\r\n").encode())
            data = read_head(s)
        finally:
            s.close()
        status, _, _ = parse_raw_response(data)
        self.assertIn(status, (400, 413), f"16 GiB propose body: {data[:300]!r}")

    def test_raft_upgrade_with_bad_secret(self):
        c = self.cluster
        for n in c.nodes:
            for secret in (None, BAD):
                out, closed = raft_upgrade(n, secret)
                status, _, _ = parse_raw_response(out)
                self.assertEqual(status, 401, f"raft upgrade {secret!r} on "
                                 f"{n.name}: {out[:300]!r}")
                self.assertTrue(closed, "connection left open after 401")
                self.assertNotIn(b"101", out.split(b"\r\n", 1)[0])

    def test_snapshot_files_on_peer_port(self):
        """GET /_atoll/snapshots/<index>-<hash> (raft/snaprecv.h) needs the
        secret, takes exactly two 16-digit lower-case hex numbers (the
        file's path is made from them, never from the text) and answers
        404 for a file it does not have; a raft upgrade's 101 says the
        node fetches snapshot files."""
        c = self.cluster
        n = c.nodes[2]
        ok_name = "/_atoll/snapshots/00000000000000a1-0123456789abcdef"
        for secret in (None, BAD):
            self.assert_401(n.peer_request("GET", ok_name, secret=secret),
                            f"snapshot file with secret {secret!r}")
        r = n.peer_request("GET", ok_name)
        self.assertEqual(r.status, 404, r)
        self.assertEqual(json.loads(r.body)["errors"][0]["code"],
                         "SNAPSHOT_UNKNOWN")
        for bad in ("../../../etc/passwd", "00000000000000a1",
                    "00000000000000A1-0123456789abcdef",
                    "00000000000000a1-0123456789abcdeg",
                    "00000000000000a1_0123456789abcdef",
                    "00000000000000a1-0123456789abcdef.ats2",
                    "0000000000000a1-0123456789abcdef0",
                    "fsm-00000000000000a1-0123456789abcdef.ats2",
                    "%2e%2e%2f%2e%2e%2fraft", ""):
            r = n.peer_request("GET", "/_atoll/snapshots/" + bad)
            self.assertEqual(r.status, 400, f"{bad!r}: {r!r}")
            self.assertTrue(json.loads(r.body)["errors"], r)
        r = n.peer_request("POST", ok_name, body=b"x")
        self.assertEqual(r.status, 405, r)
        out, _ = raft_upgrade(n, c.secret, raft_id="7", address="probe")
        head = out.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
        self.assertTrue(head.startswith("HTTP/1.1 101"), head)
        self.assertIn("x-atoll-raft-snapshot: fetch", head.lower())

    def test_raft_upgrade_missing_headers(self):
        c = self.cluster
        n = c.nodes[1]
        # right secret but no raft id / garbage id / no address: 400
        for kw in ({"raft_id": None}, {"raft_id": "abc"}, {"raft_id": "0"},
                   {"raft_id": "99999999999999999999999"},
                   {"address": None}):
            out, closed = raft_upgrade(n, c.secret, **kw)
            status, _, _ = parse_raw_response(out)
            self.assertIn(status, (400, 401, 403), f"{kw}: {out[:300]!r}")
            self.assertTrue(closed, f"{kw}: connection left open")
        # wrong protocol name
        req = (f"POST /_atoll/raft HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nAuthorization: Bearer {c.secret}\r\n"
               f"{peerproto.VERSION_HEADER}: 2\r\n"
               f"X-Atoll-Raft-Id: 5\r\nX-Atoll-Raft-Address: x\r\n"
               f"Content-Length: 0\r\n\r\n").encode()
        out, closed = raw_exchange(n.peer_port, req, timeout=5)
        status, _, _ = parse_raw_response(out)
        self.assertIsNotNone(status, out[:300])
        self.assertNotEqual(status, 101, out[:300])

    def test_join_with_bad_secret(self):
        c = self.cluster
        body = json.dumps({"name": "intruder", "peer_address": "127.0.0.1:9",
                           "api_address": "127.0.0.1:9", "region": "",
                           "standby": False}).encode()
        for n in c.nodes:
            for secret in (None, BAD):
                r = n.peer_request("POST", "/_atoll/join", body=body,
                                   headers={"Content-Type": "application/json"},
                                   secret=secret)
                self.assert_401(r, f"join on {n.name}")
            for path, doc in (("/_atoll/members/remove", {"name": "sec1"}),
                              ("/_atoll/transfer", {"name": None})):
                r = n.peer_request("POST", path, body=json.dumps(doc).encode(),
                                   headers={"Content-Type": "application/json"},
                                   secret=BAD)
                self.assert_401(r, f"{path} on {n.name}")
        time.sleep(0.2)
        names = {m["name"] for m in c.nodes[0].members()["nodes"]}
        self.assertEqual(names, {n.name for n in c.nodes})

    def test_join_name_taken_by_another_address(self):
        c = self.cluster
        taken = c.nodes[1]
        body = peerproto.join_body(taken.name, "127.0.0.1:9", "127.0.0.1:9")
        for via in c.nodes:  # followers proxy to the leader
            r = via.peer_request("POST", "/_atoll/join", body=body,
                                 headers={"Content-Type":
                                          peerproto.CONTENT_TYPE},
                                 timeout=30)
            self.assertEqual(r.status, 409, f"join via {via.name}: {r!r}")
            self.assertEqual(peerproto.reply(r.body)["status"], -9, r)
        m = [x for x in c.nodes[0].members()["nodes"] if x["name"] == taken.name]
        self.assertEqual(m[0]["peer_address"], taken.peer_addr)

    def test_join_with_bad_json(self):
        # JSON was the first protocol's join: no PeerJoin either
        c = self.cluster
        leader = c.leader()
        for body in (b"", b"{", b"[]", b'{"name": 5}', b'{"name":"x"}',
                     b"\xff\xfe" * 100):
            r = leader.peer_request("POST", "/_atoll/join", body=body,
                                    headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 400, f"join {body[:20]!r}: {r!r}")
        names = {m["name"] for m in leader.members()["nodes"]}
        self.assertEqual(names, {n.name for n in c.nodes})

    def assert_426(self, out, closed, what):
        status, headers, body = parse_raw_response(out)
        self.assertEqual(status, 426, f"{what}: {out[:300]!r}")
        self.assertTrue(closed, f"{what}: connection left open")
        self.assertEqual(headers.get(peerproto.VERSION_HEADER.lower()), "2")
        msg = json.loads(body)["errors"][0]
        self.assertEqual(msg["code"], "PEER_PROTOCOL", body)
        self.assertIn("this node speaks 2 (accepts 2..2)", msg["message"])
        return msg["message"]

    def new_log(self, node, since):
        with open(node.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def test_old_protocol_refused(self):
        # a node of the first peer protocol: no version header, bodies in
        # JSON, text or bare; every endpoint refuses it before reading them
        c = self.cluster
        n = c.nodes[2]
        since = os.path.getsize(n.log_path)
        old = [("POST", "/_atoll/propose", b"ATC1" + b"\0" * 60),
               ("POST", "/_atoll/read-index", b"3 7"),
               ("POST", "/_atoll/term", b""),
               ("POST", "/_atoll/join",
                json.dumps({"name": "old", "peer_address": "127.0.0.1:9",
                            "api_address": "127.0.0.1:9"}).encode()),
               ("POST", "/_atoll/replicate",
                b'{"repo":"a","digest":"sha256:' + b"0" * 64 + b'"}'),
               ("POST", "/_atoll/removed/1", b""),
               ("GET", "/_atoll/members", None)]
        for method, path, body in old * 5:
            lines = [f"{method} {path} HTTP/1.1", "Host: x",
                     f"Authorization: Bearer {c.secret}"]
            if body is not None:
                lines.append(f"Content-Length: {len(body)}")
            req = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
            out, closed = raw_exchange(n.peer_port, req, timeout=5)
            m = self.assert_426(out, closed, f"{method} {path}")
            self.assertIn("peer protocol 1 is not accepted", m)
        out, closed = raft_upgrade(n, c.secret, version=None)
        self.assert_426(out, closed, "raft upgrade")
        time.sleep(0.3)
        log = self.new_log(n, since)
        warns = [ln for ln in log.splitlines()
                 if "WARN" in ln and "older peer protocol" in ln]
        # one clear line for the flood (one per peer host and minute)
        self.assertEqual(len(warns), 1, "\n".join(warns) or log[-3000:])
        self.assertRegex(warns[0], r"peer 127\.0\.0\.1:\d+ speaks the older "
                         r"peer protocol 1 \(no X-Atoll-Peer-Protocol header\)"
                         r"; this node speaks 2 .*must be upgraded")
        # nothing joined, nothing crashed
        names = {m["name"] for m in n.members()["nodes"]}
        self.assertEqual(names, {x.name for x in c.nodes})

    def test_unknown_version_refused(self):
        # (the warning is once a minute per peer host: each test that
        # expects one uses a node no other test sends a refused version)
        c = self.cluster
        n = c.nodes[1]
        since = os.path.getsize(n.log_path)
        body = peerproto.read_index_body(1, 1, version=3)
        for v in ("3", "1", "two", ""):
            r = n.peer_request("POST", "/_atoll/read-index", body=body,
                               version=v)
            self.assertEqual(r.status, 426, f"version {v!r}: {r!r}")
            self.assertIn(f"peer protocol {3 if v == '3' else 1 if v == '1' else 0}"
                          " is not accepted", r.body.decode())
        # the right header but a body in another version: 400, not applied
        r = n.peer_request("POST", "/_atoll/read-index", body=body,
                           headers={"Content-Type": peerproto.CONTENT_TYPE})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(peerproto.reply(r.body)["status"], -4, r)
        # and in this one: the read index
        r = n.peer_request("POST", "/_atoll/read-index",
                           body=peerproto.read_index_body(),
                           headers={"Content-Type": peerproto.CONTENT_TYPE})
        self.assertIn(r.status, (200, 503), r)
        self.assertEqual(peerproto.reply(r.body)["version"], 2, r)
        time.sleep(0.3)
        warns = [ln for ln in self.new_log(n, since).splitlines()
                 if "WARN" in ln and "peer protocol 3" in ln]
        self.assertEqual(len(warns), 1, warns)
        self.assertIn("speaks the newer peer protocol 3", warns[0])
        self.assertIn("this node must be upgraded", warns[0])

    def test_cluster_forms_forwards_and_reads_through_followers(self):
        # every peer call of a working cluster speaks version 2: joins (the
        # cluster formed with --join), forwarded writes, follower reads
        # (read index) and leadership confirmation (term)
        c = self.cluster
        leader = c.leader()
        names = {m["name"] for m in leader.members()["nodes"]}
        self.assertEqual(names, {x.name for x in c.nodes})
        f1, f2 = c.followers(leader)[:2]
        for i in range(3):
            r, d, b = push_small(f1, "sec/fwd", f"t{i}")
            self.assertEqual(r.status, 201, f"write through {f1.name}: {r!r}")
            r = get_tag(f2, "sec/fwd", f"t{i}")
            self.assertEqual(r.status, 200, f"read through {f2.name}: {r!r}")
            self.assertEqual(r.header("docker-content-digest"), d)
            r = get_tag(leader, "sec/fwd", f"t{i}")
            self.assertEqual(r.status, 200, r)
        for n in c.nodes:
            with open(n.log_path, "rb") as f:
                log = f.read().decode(errors="replace")
            self.assertNotIn("answer refused", log, n.name)

    def test_raw_garbage_on_peer_port(self):
        c = self.cluster
        n = c.nodes[0]
        for data in (b"\x00\x01\x02\x03" * 64, b"GARBAGE\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64,
                     b"POST /_atoll/raft HTTP/1.1\r\n" + b"X" * 70000):
            out, closed = raw_exchange(n.peer_port, data, timeout=5)
            status, _, _ = parse_raw_response(out)
            self.assertTrue(closed or status in (400, 401, 431),
                            f"{data[:20]!r}: {out[:200]!r}")
            if status is not None:
                self.assertIn(status, (400, 401, 404, 431), out[:200])
        # a client that connects and says nothing does not block others
        idle = socket.create_connection(("127.0.0.1", n.peer_port))
        try:
            r = n.peer_request("GET", "/_atoll/members", timeout=5)
            self.assertEqual(r.status, 200, r)
        finally:
            idle.close()

    def test_secret_never_logged(self):
        c = self.cluster
        raft_upgrade(c.nodes[0], BAD)
        c.nodes[0].peer_request("POST", "/_atoll/propose", body=b"x" * 8,
                                secret=BAD)
        time.sleep(0.3)
        for n in c.nodes:
            with open(n.log_path, "rb") as f:
                log = f.read()
            self.assertNotIn(c.secret.encode(), log, f"secret in {n.name}'s log")
            self.assertNotIn(BAD.encode(), log,
                             f"offered secret in {n.name}'s log")
        with open(c.nodes[0].log_path, "rb") as f:
            log = f.read().decode(errors="replace")
        self.assertRegex(log, r"WARN.*127\.0\.0\.1",
                         "no WARN line naming the peer address of a refused "
                         "request")

    def test_api_port_does_not_serve_peer_endpoints(self):
        # Cluster control endpoints must not be reachable without the
        # secret through the public API port either.
        c = self.cluster
        n = c.nodes[1]
        for path in ("/_atoll/propose", "/_atoll/join", "/_atoll/read-index",
                     "/_atoll/members/remove", "/_atoll/transfer",
                     "/_atoll/raft"):
            r = n.request("POST", path, body=b"{}",
                          headers={"Content-Type": "application/json"})
            self.assertIn(r.status, (401, 403, 404, 405),
                          f"{path} on the API port: {r!r}")
        self.assertEqual(len(n.members()["nodes"]), 3)



class OldRaftPeer(LoopbackServer):
    """The peer listener of a node of the first peer protocol: it answers
    a raft upgrade with a 101 that states no protocol version, then keeps
    the stream open as a raft peer would."""

    def __init__(self):
        super().__init__(backlog=16)
        self.upgrades = 0

    def serve(self, c):
        try:
            c.settimeout(10)
            head = read_head(c)
            if b" /_atoll/raft " not in head.split(b"\r\n", 1)[0]:
                return
            self.upgrades += 1
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                      b"Upgrade: atoll-raft/1\r\nConnection: Upgrade\r\n\r\n")
            while c.recv(65536):
                pass
        except OSError:
            pass
        finally:
            c.close()


class OldRaftPeerTest(ClusterTestCase):
    """A raft dial answered by a node of the first peer protocol is refused
    by the dialer with one clear line, as that node's dials are refused by
    the listener: a stream that works one way only never reaches raft."""

    OLD_ID = 0x0DD0

    def test_raft_dial_to_old_node_refused(self):
        c = self.start_cluster(1, prefix="secold")
        n0 = c.nodes[0]
        old = OldRaftPeer()
        old.start()
        self.addCleanup(old.stop)
        since = os.path.getsize(n0.log_path)
        join_double(n0, "old", old.port, self.OLD_ID)

        def refused():
            with open(n0.log_path, "rb") as f:
                f.seek(since)
                log = f.read().decode(errors="replace")
            return [ln for ln in log.splitlines()
                    if "WARN" in ln and "raft connect to %d refused" %
                    self.OLD_ID in ln]
        lines = wait_for(refused, 30, what="the dialer's refusal")
        self.assertIn("it speaks peer protocol 1, this node 2", lines[0])
        self.assertGreaterEqual(old.upgrades, 1)
        self.assert_nodes_alive()


if __name__ == "__main__":
    unittest.main()
