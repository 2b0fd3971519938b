"""HTTPS on the API listener (--tls-cert/--tls-key), with a test CA and
certificates made here with the openssl CLI: curl and skopeo trusting the
CA, pushes and pulls over HTTPS, the answer to the wrong protocol on either
kind of port and what the node logs for it, and certificate reloads on
SIGHUP and when the files change."""
import os
import re
import shutil
import signal
import socket
import ssl
import tempfile
import time
import unittest

import harness
import ocilayout
from clients import SKOPEO, assert_same_image, needs_skopeo, skopeo
from images import OCI_MANIFEST, image, push, sha256_digest
from pki import OPENSSL, Pki, TlsNode, install

CURL = shutil.which("curl")
needs_openssl = unittest.skipIf(OPENSSL is None, "openssl CLI not installed")

# A log line: "<time> <LEVEL> <component> <file:line> <message>".
LOG_RE = re.compile(r"^\S+ (DEBUG|INFO|WARN|ERROR)\s+(\S+) (\S+) (.*)$")


def serial_of(conn):
    """The serial number of the server certificate on an open
    HTTPSConnection."""
    return int(conn.sock.getpeercert()["serialNumber"], 16)


class LogWatch:
    """The lines a node logs from now on."""

    def __init__(self, node):
        self.path = node.log_path
        self.start = os.path.getsize(self.path)

    def lines(self):
        with open(self.path, "rb") as f:
            f.seek(self.start)
            text = f.read().decode(errors="replace")
        out = []
        for line in text.splitlines():
            m = LOG_RE.match(line)
            # access lines (one per request, of other clients too) say
            # nothing about connections or TLS
            if m and m.group(2) != "access":
                out.append((m.group(1), m.group(4)))
        return out

    def wait(self, pred, timeout=10, what="a log line"):
        return harness.wait_for(
            lambda: [ln for ln in self.lines() if pred(ln)], timeout,
            what=what)


def local_port(sock):
    return sock.getsockname()[1]


def raw(port, data, timeout=10):
    """Send data on a new connection, read until the peer closes. Returns
    (our port, what came back, whether the peer closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    closed = False
    try:
        mine = local_port(s)
        s.sendall(data)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
    finally:
        s.close()
    return mine, out, closed


def client_hello(port):
    """A TLS handshake with Python's ssl module against a port; returns our
    port and the SSLError it ended with (None when it succeeded)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    mine = local_port(s)
    try:
        ctx.wrap_socket(s).close()
        return mine, None
    except ssl.SSLError as e:
        return mine, e
    finally:
        s.close()


@needs_openssl
class TlsTest(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp_class = tempfile.mkdtemp(prefix="atoll-tls-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp_class, True)
        cls.pki = Pki(cls.tmp_class)
        cls.cert1, cls.key1 = cls.pki.issue(1001)
        cls.cert2, cls.key2 = cls.pki.issue(1002)
        cls.cert3, cls.key3 = cls.pki.issue(1003)

    def tls_node(self, args=()):
        """A node of this test on its own copies of the first pair, with a
        peer listener (plain HTTP) and debug logs of the HTTP server."""
        d = self.temp_dir("atoll-tls-node-")
        cert, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        shutil.copyfile(self.cert1, cert)
        shutil.copyfile(self.key1, key)
        self.peer_port = harness.free_port()
        node = TlsNode(self.pki, cert, key, args=[
            "--cluster-secret", "tls-test-secret", "--peer-listen",
            f"127.0.0.1:{self.peer_port}", "--log-level", "info,http:debug"
        ] + list(args))
        self.addCleanup(node.close)
        node.start()
        node.cert, node.key = cert, key
        return node

    def assert_quiet(self, watch, port, want):
        """What the node logged for the connection from our port: exactly
        one line, at DEBUG, containing want; and nothing at INFO or above
        about a connection, a malformed request or TLS."""
        lines = watch.lines()
        mine = [ln for ln in lines if f":{port}:" in ln[1]
                and "->" not in ln[1]]
        self.assertEqual(len(mine), 1, f"log for :{port}: {lines}")
        self.assertEqual(mine[0][0], "DEBUG", mine)
        self.assertIn(want, mine[0][1])
        loud = [ln for ln in lines if ln[0] != "DEBUG" and re.search(
            r"127\.0\.0\.1:|malformed|Invalid method|tls|TLS", ln[1])]
        self.assertEqual(loud, [], "INFO or WARN lines")

    # ---- serving ----
    @unittest.skipIf(CURL is None, "curl not installed")
    def test_curl_trusts_the_ca(self):
        node = self.tls_node()
        p = harness.run_tool([CURL, "-sS", "--cacert", self.pki.ca,
                              "-D", "-", f"{node.url}/v2/"])
        self.assertIn("HTTP/1.1 200", p.stdout)
        self.assertTrue(p.stdout.endswith("{}"), p.stdout)
        p = harness.run_tool([CURL, "-sS", "-o", "/dev/null",
                              f"{node.url}/v2/"], check=False)
        self.assertEqual(p.returncode, 60, p.stderr)  # untrusted without CA
        p = harness.run_tool([CURL, "-sS", "--cacert", self.pki.ca, "-o",
                              "/dev/null", "-w", "%{http_version}",
                              f"{node.url}/v2/"])
        self.assertEqual(p.stdout, "1.1")  # offered h2: ALPN gave http/1.1

    def test_push_and_pull(self):
        node = self.tls_node()
        big = os.urandom(24 * 1024 * 1024)
        img = image([b"small layer", big])
        push(node, "tls/app", "v1", img, blob_timeout=120)
        conn = node.connection()
        try:
            conn.request("GET", "/v2/tls/app/manifests/v1",
                         headers={"Accept": OCI_MANIFEST})
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.read(), img.manifest)
            for d, data in img.blobs().items():
                conn.request("GET", f"/v2/tls/app/blobs/{d}")
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                got = r.read()
                self.assertEqual(sha256_digest(got), d)
                self.assertEqual(len(got), len(data))
        finally:
            conn.close()

    @needs_skopeo
    def test_skopeo_verifies_with_the_ca(self):
        node = self.tls_node()
        certs = self.temp_dir("atoll-tls-certs-")
        shutil.copyfile(self.pki.ca, os.path.join(certs, "ca.crt"))
        src = os.path.join(self.temp_dir(), "src")
        img = ocilayout.build_layout(src, sizes=(1024, 3 * 1024 * 1024))
        ref = f"docker://{node.addr}/tls/skopeo:v1"
        skopeo("copy", "--dest-cert-dir", certs, f"oci:{src}:v1", ref)
        back = os.path.join(self.temp_dir(), "back")
        skopeo("copy", "--src-cert-dir", certs, ref, f"oci:{back}:v1")
        assert_same_image(self, img, ocilayout.read_layout(back, "v1"))
        # Without the CA, verification fails: the CA is what made it work.
        p = skopeo("inspect", ref, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("certificate", p.stderr)

    # ---- the wrong protocol ----
    def test_plain_http_on_the_tls_port(self):
        node = self.tls_node()
        watch = LogWatch(node)
        port, out, closed = raw(node.port,
                                b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = harness.parse_raw_response(out)
        self.assertEqual(status, 400, out)
        self.assertEqual(body, b"this port speaks HTTPS\n")
        self.assertEqual(headers.get("connection"), "close")
        self.assertTrue(closed)
        time.sleep(0.3)
        self.assert_quiet(watch, port, "plain HTTP on the TLS port")
        self.assertEqual(node.request("GET", "/v2/").status, 200)

    def check_hello_on_plain(self, node, port_under_test):
        watch = LogWatch(node)
        port, err = client_hello(port_under_test)
        self.assertIsNotNone(err, "a TLS handshake with a plain port")
        time.sleep(0.3)
        self.assert_quiet(watch, port, "TLS hello on a plain HTTP port")
        # What the client got: a plain HTTP answer saying why.
        hello = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ssl.create_default_context().wrap_bio(*hello,
                                                    server_hostname="x")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        _, out, closed = raw(port_under_test, hello[1].read())
        status, _, body = harness.parse_raw_response(out)
        self.assertEqual(status, 400, out)
        self.assertEqual(body, b"this port speaks plain HTTP\n")
        self.assertTrue(closed)

    def test_tls_hello_on_the_peer_port(self):
        node = self.tls_node()
        self.check_hello_on_plain(node, self.peer_port)

    def test_tls_hello_on_a_plain_api_port(self):
        node = self.start_node(args=["--log-level", "info,http:debug"])
        self.check_hello_on_plain(node, node.port)

    # ---- reloads ----
    def test_sighup_reload_keeps_old_connections(self):
        node = self.tls_node()
        old = node.connection()
        self.addCleanup(old.close)
        old.request("GET", "/v2/")
        self.assertEqual(old.getresponse().read(), b"{}")
        self.assertEqual(serial_of(old), 1001)
        install(self.cert2, node.cert)
        install(self.key2, node.key)
        watch = LogWatch(node)
        node.proc.send_signal(signal.SIGHUP)
        # Before the file poll (2 s) could see the change.
        lines = watch.wait(lambda ln: "tls: reloaded" in ln[1], timeout=1.5,
                           what="the reload")
        self.assertRegex(lines[0][1], r"serial 0*3EA\b")  # 1002
        new = node.connection()
        self.addCleanup(new.close)
        new.request("GET", "/v2/")
        self.assertEqual(new.getresponse().read(), b"{}")
        self.assertEqual(serial_of(new), 1002)
        old.request("GET", "/v2/")  # the old connection still works
        self.assertEqual(old.getresponse().read(), b"{}")
        self.assertEqual(serial_of(old), 1001)
        self.assertTrue(any("SIGHUP" in ln[1] for ln in watch.lines()))

    def new_serial(self, node):
        conn = node.connection(timeout=10)
        try:
            conn.request("GET", "/v2/")
            conn.getresponse().read()
            return serial_of(conn)
        finally:
            conn.close()

    def test_rotation_by_replacing_the_files(self):
        node = self.tls_node()
        watch = LogWatch(node)
        # Mid-rotation: a new certificate next to the old key. Refused,
        # once, and the old pair goes on serving.
        install(self.cert2, node.cert)
        watch.wait(lambda ln: ln[0] == "WARN" and "reload failed" in ln[1],
                   timeout=10, what="the failed reload")
        self.assertEqual(self.new_serial(node), 1001)
        install(self.key2, node.key)
        harness.wait_for(lambda: self.new_serial(node) == 1002, 10,
                         what="the new certificate")
        warns = [ln for ln in watch.lines() if ln[0] == "WARN"]
        self.assertEqual(len(warns), 1, warns)
        # A symlink swap of the directory the files live in (Kubernetes
        # secret volumes, cert-manager) is seen too.
        d = self.temp_dir("atoll-tls-swap-")
        for gen, (c, k) in ((1, (self.cert2, self.key2)),
                            (2, (self.cert3, self.key3))):
            os.mkdir(os.path.join(d, f"g{gen}"))
            shutil.copyfile(c, os.path.join(d, f"g{gen}", "tls.crt"))
            shutil.copyfile(k, os.path.join(d, f"g{gen}", "tls.key"))
        os.symlink("g1", os.path.join(d, "current"))
        for name in ("tls.crt", "tls.key"):
            link = os.path.join(os.path.dirname(node.cert), name)
            os.symlink(os.path.join(d, "current", name), link + ".new")
            os.replace(link + ".new", link)
        os.symlink("g2", os.path.join(d, "next"))
        os.replace(os.path.join(d, "next"), os.path.join(d, "current"))
        harness.wait_for(lambda: self.new_serial(node) == 1003, 10,
                         what="the certificate behind the swapped symlink")


if __name__ == "__main__":
    unittest.main()
