"""Test harness: start real atoll processes (or Debian's docker-registry for
cross-checking the tests themselves) on loopback ports chosen at run time, and
talk to them over HTTP. TestCase, NodeTestCase and ApiTestCase stop what a
test starts in cleanups; cluster.py builds clusters on Node, images.py the
images the tests push, clients.py runs skopeo.

Environment:
  ATOLL_BIN       path of the atoll binary (set by tests/run.py)
  TEST_REGISTRY   "atoll" (default) or "distribution": run the same tests
                  against docker-registry to validate them; tests that check
                  atoll-only behaviour call skip_unless_atoll().
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from images import OCI_MANIFEST, image, push, sha256_digest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ATOLL_BIN = os.environ.get("ATOLL_BIN", os.path.join(ROOT, "build", "debug", "atoll"))
TARGET = os.environ.get("TEST_REGISTRY", "atoll")


def is_atoll():
    return TARGET == "atoll"


def skip_unless_atoll(test):
    if not is_atoll():
        raise unittest.SkipTest("atoll-specific behaviour")


_handed_out = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _port_slot():
    """(slot, slots): tests/run.py runs test files side by side and gives
    each running file its own slot; a file hands out only ports p with
    p % slots == slot, so two files never pick the same port between the
    check and the node's bind (CI saw "address already in use")."""
    try:
        slots = int(os.environ.get("ATOLLTEST_PORT_SLOTS", "1"))
        slot = int(os.environ.get("ATOLLTEST_PORT_SLOT", "0"))
    except ValueError:
        return 0, 1
    if slots < 1 or not 0 <= slot < slots:
        return 0, 1
    return slot, slots


def free_port():
    """A loopback port free for TCP and for UDP (a node's gossip binds UDP
    on its peer port's number), never the same twice in one process and
    never one another running test file may hand out (_port_slot).
    Chosen outside the kernel's ephemeral range: a port from that range
    (bind to 0) can be taken by any outgoing connection between now and
    the moment the node binds it (seen under ASan: test_cluster_copies),
    a port outside it only by another listener."""
    lo, hi = _ephemeral_range()
    slot, slots = _port_slot()
    rnd = random.Random(os.getpid() ^ int(time.time() * 1000))
    ranges = []
    if lo > 12000:
        ranges.append((10000, lo - 1))
    if hi < 63000:
        ranges.append((hi + 1, 65000))
    for a, b in ranges:
        for _ in range(400):
            port = rnd.randint(a, b)
            port -= (port - slot) % slots
            if port < a or port in _handed_out or not _bindable(port):
                continue
            _handed_out.add(port)
            return port
    for _ in range(100 * slots):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port % slots != slot or port in _handed_out or not _bindable(port):
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port")


def mount_tmpfs(test, path, size):
    """Mount a tmpfs of size ("64m") on the existing dir path for test,
    unmounted at its cleanup; skips the test without root or mount(8)."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or mount is None or umount is None:
        test.skipTest("needs root and mount(8) for a tmpfs")
    p = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                        path], capture_output=True, timeout=30)
    if p.returncode != 0:
        test.skipTest(f"cannot mount a tmpfs: {p.stderr[:200]!r}")
    test.addCleanup(subprocess.run, [umount, "-l", path], timeout=30)


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value (returned) or raise
    AssertionError after timeout seconds. Exceptions from pred count as
    false (nodes may be restarting)."""
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            last = e
        if time.time() >= deadline:
            raise AssertionError(f"timeout after {timeout}s waiting for {what}"
                                 + (f" (last error: {last!r})" if last else ""))
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lowercase names
        self.body = body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        return json.loads(self.body)

    def error_codes(self):
        try:
            return [e["code"] for e in self.json()["errors"]]
        except Exception:
            return []

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:200]!r}>"


class Node:
    """One registry process with a private data dir under a temp dir."""

    name = "registry"  # in messages; cluster nodes have their own

    def __init__(self, tmp=None, args=(), env=None, port=None):
        self.own_tmp = tmp is None
        self.tmp = tmp or tempfile.mkdtemp(prefix="atoll-test-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.args = list(args)
        self.env = env
        self.port = port or free_port()
        self.proc = None
        self.log_path = os.path.join(self.tmp, "node.log")

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    @property
    def url(self):
        return f"http://{self.addr}"

    def start(self, wait=True, timeout=20):
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        log = open(self.log_path, "ab")
        if is_atoll():
            cmd = [ATOLL_BIN, "serve", "--listen", self.addr,
                   "--data-dir", self.data_dir] + self.args
        else:
            os.makedirs(self.data_dir, exist_ok=True)
            cfg = os.path.join(self.tmp, "registry.yml")
            with open(cfg, "w") as f:
                f.write(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {self.data_dir}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {self.addr}
  secret: test-secret
""")
            cmd = ["docker-registry", "serve", cfg]
        try:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        except BaseException:
            self.close()
            raise
        finally:
            log.close()
        if wait:
            try:
                self.wait_ready(timeout)
            except Exception:
                # setUpClass failures skip tearDownClass: clean up here.
                self.close()
                raise
        return self

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = self.request("GET", "/v2/", timeout=2)
                if r.status in (200, 401):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"registry not ready after {timeout}s:\n{self.log()}")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-5000:]
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9, then reap."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout)
        return self.proc.returncode if self.proc else None

    def restart(self):
        self.kill()
        return self.start()

    def close(self):
        # A graceful stop exercises shutdown (and lets sanitizer builds
        # report leaks); kill -9 only if it hangs.
        if self.proc and self.proc.poll() is None:
            try:
                self.terminate(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        if self.own_tmp and not os.environ.get("ATOLL_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- HTTP ----
    def request(self, method, path, body=None, headers=None, timeout=30):
        """One request on a fresh connection. path may be absolute URL or
        a path; returns Response. body may be bytes or an iterable of bytes
        (sent with Transfer-Encoding: chunked)."""
        if path.startswith("http://"):
            path = path[len("http://") + len(self.addr):]
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if body is not None and not isinstance(body, (bytes, bytearray)):
                conn.request(method, path, body=body, headers=hdrs,
                             encode_chunked=True)
            else:
                conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    # ---- OCI helpers ----
    def push_blob(self, repo, data, timeout=30):
        """POST + PUT ?digest= (monolithic in two steps). Returns digest."""
        d = sha256_digest(data)
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", timeout=timeout)
        assert r.status == 202, r
        r = self.request("PUT", with_query(r.header("location"), f"digest={d}"),
                         body=data, timeout=timeout,
                         headers={"Content-Type": "application/octet-stream"})
        assert r.status == 201, r
        return d

    def push_manifest(self, repo, ref, manifest, media_type=None):
        """PUT a manifest (dict or bytes). Returns (Response, digest)."""
        if isinstance(manifest, dict):
            body = json.dumps(manifest).encode()
            media_type = media_type or manifest.get("mediaType")
        else:
            body = manifest
        media_type = media_type or OCI_MANIFEST
        r = self.request("PUT", f"/v2/{repo}/manifests/{ref}", body=body,
                         headers={"Content-Type": media_type})
        return r, sha256_digest(body)

    def push_image(self, repo, tag, layers=(b"layer-one",), config=b"{}"):
        """Push config + layers + an OCI manifest; returns (digest, manifest bytes)."""
        img = image(layers, config)
        push(self, repo, tag, img)
        return img.digest, img.manifest


# ---- external tools, raw HTTP ----
def run_tool(cmd, timeout=180, check=True, env=None, input=None):
    """Run an external tool (skopeo, podman, ...) with a timeout; returns the
    CompletedProcess (text). With check, a non-zero exit raises AssertionError
    carrying the command and its output."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=full_env, input=input)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"timeout after {timeout}s: {' '.join(cmd)}\n"
                             f"{(e.stderr or b'').decode(errors='replace')[-3000:]}")
    p.stdout = p.stdout.decode(errors="replace")
    p.stderr = p.stderr.decode(errors="replace")
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}: {' '.join(cmd)}\n"
                             f"stdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
    return p


def raw_exchange(port, data, timeout=10, shutdown_write=False, max_bytes=1 << 20):
    """Send raw bytes on a fresh loopback connection and read until the peer
    closes, max_bytes arrive or `timeout` passes without progress. Returns
    (reply bytes, closed): closed is True when the peer closed (EOF or reset)
    and False when the read timed out. A send error (the peer closed or reset
    early) is not an error here."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    closed = False
    try:
        try:
            if data:
                s.sendall(data)
            if shutdown_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        while len(out) < max_bytes:
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
    return out, closed


def parse_raw_response(data):
    """(status, {lowercase header: value}, body) of the first HTTP response
    in raw bytes, or (None, {}, data) when it does not parse."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None, {}, data
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return None, {}, data
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers, body


def read_head(sock, limit=1 << 20):
    """Read from sock until the blank line that ends an HTTP head, EOF, or
    more than limit bytes. Returns all that arrived: the head, the blank
    line and what followed, or less when the peer stopped short."""
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) <= limit:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    return buf


class LoopbackServer(threading.Thread):
    """A TCP listener for test doubles (balancers, proxies, fake peers):
    the thread accepts connections and runs self.serve(conn) for each in a
    daemon thread of its own until stop() closes the listener."""

    def __init__(self, addr=("127.0.0.1", 0), backlog=64):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.stopped = False

    @property
    def addr(self):
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, conn):
        raise NotImplementedError

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass


# ---- Locations, the store on disk, OCI errors ----
def with_query(location, query):
    """Append a query string (without '?') to a Location that may already
    carry one."""
    return location + ("&" if "?" in location else "?") + query


def location_path(location):
    """Strip scheme and authority from a Location so the path can be
    compared (distribution answers absolute URLs, atoll relative ones)."""
    if location.startswith("http://") or location.startswith("https://"):
        rest = location.split("://", 1)[1]
        i = rest.find("/")
        return rest[i:] if i >= 0 else "/"
    return location


def blob_path(node, digest):
    """Where node's store keeps the blob (the file may not exist)."""
    hexd = digest.split(":", 1)[1]
    return os.path.join(node.data_dir, "blobs", "sha256", hexd[:2], hexd)


def corrupt_blob(node, digest):
    """Flip 16 bytes in the middle of node's copy of the blob (same size),
    as a bad disk would."""
    path = blob_path(node, digest)
    os.chmod(path, 0o644)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        old = f.read(16)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in old))


def assert_error(test, r, status, codes):
    """Check status and that the OCI error body carries one of `codes` (a
    code or a tuple of acceptable codes). HEAD responses carry no body."""
    if isinstance(codes, str):
        codes = (codes,)
    test.assertEqual(r.status, status, f"expected {status} {codes}: {r!r}")
    if not r.body:
        return
    ct = (r.header("content-type") or "").split(";")[0].strip()
    test.assertEqual(ct, "application/json", f"error Content-Type: {r!r}")
    try:
        doc = r.json()
    except ValueError:
        test.fail(f"error body is not JSON: {r!r}")
    test.assertIsInstance(doc.get("errors"), list, f"no errors list: {r!r}")
    test.assertTrue(doc["errors"], f"empty errors list: {r!r}")
    for e in doc["errors"]:
        test.assertIsInstance(e.get("code"), str, f"error without code: {r!r}")
    got = r.error_codes()
    test.assertTrue(any(c in codes for c in got),
                    f"expected one of {codes}, got {got}: {r!r}")


class RawConn:
    """A raw TCP connection for what http.client cannot express: malformed
    requests, pipelining, Expect: 100-continue, disconnects mid-body."""

    def __init__(self, node, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", node.port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by peer")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head=False):
        """Read one response (status line, headers, body framed by
        Content-Length / chunked / close). Interim 1xx responses are returned
        like any other, with an empty body."""
        status_line = self._line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"bad status line {status_line!r}")
        status = int(parts[1])
        headers = {}
        while True:
            line = self._line().decode("latin-1")
            if not line:
                break
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if head or status < 200 or status in (204, 304):
            return Response(status, headers, body)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
        elif "content-length" in headers:
            body = self._exact(int(headers["content-length"]))
        else:
            try:
                while True:
                    self._fill()
            except (EOFError, OSError):
                pass
            body, self.buf = self.buf, b""
        return Response(status, headers, body)

    def is_closed(self, timeout=5):
        """True when the peer closed the connection (EOF or reset) within
        timeout, with no further bytes pending."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            return True
        if data:
            self.buf += data
            return False
        return True


# ---- test case bases ----
class TestCase(unittest.TestCase):
    """Base of the integration tests: what a test starts here is stopped
    by a cleanup, which runs also when the test or its setUp fails."""

    def start_node(self, args=(), **kw):
        """A started Node of this test (Node's keywords)."""
        node = Node(args=args, **kw)
        self.addCleanup(node.close)
        return node.start()

    def temp_dir(self, prefix="atoll-test-", dir=None):
        """A temporary directory of this test."""
        path = tempfile.mkdtemp(prefix=prefix, dir=dir)
        self.addCleanup(shutil.rmtree, path, True)
        return path

    def assert_running(self, node):
        """node's process has not exited."""
        self.assertTrue(node.alive(), f"{node.name} died:\n{node.log()}")


class NodeTestCase(TestCase):
    """One registry node in self.node for all the tests of a class. A
    class cleanup stops it, also when a subclass's setUpClass fails after
    this one started it."""

    node = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.node = Node()
        cls.addClassCleanup(cls.node.close)
        cls.node.start()

    def assert_node_alive(self):
        """The node still runs and answers GET /v2/."""
        self.assert_running(self.node)
        r = self.node.request("GET", "/v2/", timeout=10)
        self.assertEqual(r.status, 200, f"node no longer serves: {r!r}")


class ApiTestCase(NodeTestCase):
    """One registry node per test class; unique repo names per test."""

    _seq = 0

    def repo(self, suffix=""):
        """A fresh valid repository name derived from the test name."""
        ApiTestCase._seq += 1
        base = self._testMethodName.lower().replace("test_", "", 1)
        base = "".join(c if c.isalnum() else "-" for c in base).strip("-") or "t"
        name = f"{type(self).__name__.lower()}/{base}-{ApiTestCase._seq}"
        return name + (f"/{suffix}" if suffix else "")

    def req(self, method, path, body=None, headers=None):
        return self.node.request(method, path, body=body, headers=headers)

    def start_upload(self, repo):
        r = self.req("POST", f"/v2/{repo}/blobs/uploads/")
        self.assertEqual(r.status, 202, f"POST upload: {r!r}")
        loc = r.header("location")
        self.assertTrue(loc, f"no Location: {r!r}")
        return loc
