"""Peer mutual TLS (--peer-tls-ca/--peer-tls-cert/--peer-tls-key) with
certificates from `atoll cert`: a three-node cluster forms, replicates a
push (a blob pulled on another node comes peer to peer over TLS), fails
over; a node with a certificate from another CA, and one speaking plain
HTTP, are refused at the TLS layer and the refusal is logged; and a TLS
hello on a plaintext peer port gets the plain 400."""
import hashlib
import os
import socket
import ssl
import subprocess
import tempfile
import time

import harness
from cluster import (ClusterTestCase, ClusterNode, get_tag, list_all_tags,
                     load_tags)
from harness import ATOLL_BIN, wait_for


def atoll_cert(*args):
    subprocess.run([ATOLL_BIN, "cert"] + list(args), check=True,
                   stdout=subprocess.DEVNULL, timeout=30)


class Certs:
    """A cluster CA under dir/<ca> and node certificates it signs."""

    def __init__(self, dir, ca="ca"):
        self.dir = dir
        self.ca_dir = os.path.join(dir, ca)
        atoll_cert("ca", "--out", self.ca_dir)
        self.ca = os.path.join(self.ca_dir, "ca.crt")

    def node(self, name, sans=("127.0.0.1", "localhost")):
        out = os.path.join(self.dir, "nodes")
        args = ["node", "--ca", self.ca_dir, "--name", name, "--out", out]
        for s in sans:
            args += ["--san", s]
        atoll_cert(*args)
        return (os.path.join(out, name + ".crt"),
                os.path.join(out, name + ".key"))

    def args(self, name):
        crt, key = self.node(name)
        return ["--peer-tls-ca", self.ca, "--peer-tls-cert", crt,
                "--peer-tls-key", key]


def log_of(node):
    with open(node.log_path, "rb") as f:
        return f.read().decode(errors="replace")


class PeerTlsCertTest(harness.TestCase):
    def test_cert_files_modes_and_no_overwrite(self):
        d = self.temp_dir()
        c = Certs(d)
        crt, key = c.node("n1")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.join(c.ca_dir, "ca.key")).st_mode
                         & 0o777, 0o600)
        out = subprocess.run(["openssl", "verify", "-CAfile", c.ca, crt],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        text = subprocess.run(["openssl", "x509", "-in", crt, "-noout",
                               "-text"], capture_output=True,
                              text=True).stdout
        self.assertIn("IP Address:127.0.0.1", text)
        self.assertIn("DNS:localhost", text)
        self.assertIn("TLS Web Client Authentication", text)
        r = subprocess.run([ATOLL_BIN, "cert", "ca", "--out", c.ca_dir],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--force", r.stderr)


class PeerTlsClusterTest(ClusterTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="atoll-peertls-")
        self.addCleanup(subprocess.run, ["rm", "-rf", self.dir])
        self.certs = Certs(self.dir)
        per_node = {i: self.certs.args(f"t{i}") for i in range(3)}
        self.start_cluster(3, per_node=per_node, prefix="t")

    def refused(self, node, args, what):
        """A 4th node started with args (joining through node) never
        becomes a member; node logs the refusal."""
        c = self.cluster
        extra = ClusterNode(c, f"x{len(c.nodes)}", join=node.peer_addr,
                            extra=args)
        c.nodes.append(extra)
        extra.start(wait=False)
        wait_for(lambda: "refused by mutual TLS" in log_of(node) and what
                 in log_of(node), 15, what=f"refusal of {what} logged")
        # gossip (UDP, sealed with the cluster secret alone) may list it
        # as a live member without raft state: "role": "none"
        names = [m["name"] for m in c.members()["nodes"]
                 if m.get("role") != "none"]
        self.assertNotIn(extra.name, names)
        extra.kill()
        c.nodes.remove(extra)

    def tls_refused(self, node, source, cert, what):
        ctx = ssl.create_default_context(cafile=self.certs.ca)
        if cert:
            ctx.load_cert_chain(*cert)
        with self.assertRaises((ssl.SSLError, OSError)):
            with socket.create_connection(("127.0.0.1", node.peer_port), 5,
                                          source_address=(source, 0)) as s:
                with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                    t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    if not t.recv(100):
                        raise OSError("closed")
        wait_for(lambda: f"peer {source}:" in log_of(node) and what
                 in log_of(node), 10, what=f"refusal of {what} logged")

    def test_forms_replicates_fails_over_refuses(self):
        c = self.cluster
        for n in c.nodes:
            self.assertIn("peers speak mutual TLS", log_of(n))
        # A push on one node, pulled on another: tag by raft, blob bytes by
        # a peer fetch, both over TLS.
        n0, n2 = c.nodes[0], c.nodes[2]
        layer = os.urandom(200 * 1024)
        digest = n0.push_image("tls/app", "v1", layers=(layer,))
        wait_for(lambda: get_tag(n2, "tls/app", "v1").status == 200, 15,
                 what="tag on node 3")
        r = n2.request("GET", f"/v2/tls/app/blobs/"
                       f"sha256:{hashlib.sha256(layer).hexdigest()}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, layer)
        self.assertTrue(digest)

        # The upload relay: POST on n0, PATCH through n1 and PUT through
        # n2 are relayed to n0 over TLS; the blob is whole.
        part1, part2 = os.urandom(3 << 20), os.urandom(1 << 20)
        r = n0.request("POST", "/v2/tls/relay/blobs/uploads/")
        self.assertEqual(r.status, 202, r)
        loc = r.header("location")
        octet = {"Content-Type": "application/octet-stream"}
        r = c.nodes[1].request("PATCH", loc, body=part1, headers=octet,
                               timeout=60)
        self.assertEqual(r.status, 202, r)
        loc = r.header("location")
        d2 = "sha256:" + hashlib.sha256(part1 + part2).hexdigest()
        sep = "&" if "?" in loc else "?"
        r = n2.request("PUT", f"{loc}{sep}digest={d2}", body=part2,
                       headers=octet, timeout=60)
        self.assertEqual(r.status, 201, r)
        r = n0.request("GET", f"/v2/tls/relay/blobs/{d2}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, part1 + part2)

        # Each refusal on its own node: the WARN is rate-limited per host.
        # Another CA (joining through n0), then plain HTTP (through n1).
        other = Certs(self.dir, ca="other-ca")
        crt, key = other.node("x3")
        self.refused(c.nodes[0], ["--peer-tls-ca", other.ca,
                                  "--peer-tls-cert", crt,
                                  "--peer-tls-key", key],
                     "unknown ca")
        self.refused(c.nodes[1], [], "plain HTTP on the TLS port")

        # TLS clients from other source addresses (one WARN per host):
        # without a certificate, then with one from another CA.
        self.tls_refused(n2, "127.0.0.2", None, "did not return a certificate")
        self.tls_refused(n2, "127.0.0.3", (crt, key),
                         "unable to get local issuer certificate")
        # A plain request on the mutual TLS peer port: the plain 400.
        with socket.create_connection(("127.0.0.1", n2.peer_port), 5) as s:
            s.sendall(b"GET /_atoll/peer/members HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 400"))

        # The Helm chart's preStop form over mutual TLS: `atoll members
        # handoff --peer https://localhost:PORT` with the node's own
        # certificate in ATOLL_CLIENT_*; three voters, no standby: it keeps
        # its vote and says so (exit 0).
        follower = [n for n in c.live() if n is not c.leader()][0]
        crt, key = (os.path.join(self.dir, "nodes", follower.name + ext)
                    for ext in (".crt", ".key"))
        out = subprocess.run(
            [ATOLL_BIN, "members", "handoff", "--peer",
             f"https://localhost:{follower.peer_port}",
             "--cluster-secret-file", c.secret_file],
            capture_output=True, text=True, timeout=60,
            env=dict(os.environ, ATOLL_CACERT=self.certs.ca,
                     ATOLL_CLIENT_CERT=crt, ATOLL_CLIENT_KEY=key))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("it stays a voter", out.stdout)

        # Fail over: stop the leader; a new one; writes continue.
        leader = c.leader()
        leader.proc.kill()
        leader.proc.wait(10)
        new = c.wait_leader(timeout=30, exclude=(leader.name,))
        self.assertNotEqual(new.name, leader.name)
        other_node = [n for n in c.live() if n is not new][0]
        other_node.push_image("tls/app", "v2", layers=(b"after failover",))
        wait_for(lambda: get_tag(new, "tls/app", "v2").status == 200, 15,
                 what="write after failover")


class PeerTlsSnapshotFetchTest(ClusterTestCase):
    """A node that fell behind fetches the leader's snapshot file
    (raft/snaprecv.h) over the mutual TLS peer port, as any peer call."""

    def test_joiner_fetches_snapshot_file_over_tls(self):
        d = tempfile.mkdtemp(prefix="atoll-peertls-")
        self.addCleanup(subprocess.run, ["rm", "-rf", d])
        certs = Certs(d)
        c = self.start_cluster(
            3, per_node={i: certs.args(f"t{i}") for i in range(4)},
            prefix="t", extra=["--snapshot-threshold", "64",
                               "--snapshot-trailing", "16"])
        tags = load_tags(c.nodes, "tls/snap", 400)
        target = int(c.leader().status()["commit_index"])
        fresh = c.add_node()
        fresh.start()
        wait_for(lambda: fresh.applied_index() >= target, 40,
                 what=f"joiner applied >= {target}")
        self.assertEqual(set(list_all_tags(fresh, "tls/snap")), set(tags))
        self.assertIn("peers speak mutual TLS", log_of(fresh))
        self.assertRegex(log_of(fresh), r"snapshot \d+ fetched from '[^']+'"
                         r": \d+ bytes in \d+ ms, checked and stored")


class PlainPeerPortTest(ClusterTestCase):
    def test_tls_hello_on_plain_peer_port_gets_400(self):
        c = self.start_cluster(1)
        n = c.nodes[0]
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", n.peer_port), 5) as s:
            try:
                with ctx.wrap_socket(s) as t:
                    t.recv(10)
                self.fail("a TLS handshake succeeded on a plain port")
            except (ssl.SSLError, OSError):
                pass
        with socket.create_connection(("127.0.0.1", n.peer_port), 5) as s:
            hello = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ctx.wrap_bio(hello[0], hello[1])
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            s.sendall(hello[1].read())
            time.sleep(0.2)
            data = s.recv(4096)
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:100])
