"""Harness for N-node atoll clusters on loopback, built on harness.Node.

A Cluster owns one temp dir; each ClusterNode lives in its own subdirectory
with its own API port (--listen) and peer port (--peer-listen), both chosen
at run time. The first node bootstraps, the others start with --join pointing
at the first node's peer address. Cluster.close() stops every process and
removes the temp dir, also when a test fails half-way.

Contract (issue 3): GET /_atoll/members (API port, no auth) answers
  {"leader": "<name>", "nodes": [{"name", "id", "peer_address",
   "api_address", "region", "role": "voter|standby|spare", "leader": bool}]}
and every peer-port request carries "Authorization: Bearer <secret>".

Tests call require_cluster() first: it raises unittest.SkipTest while the
binary does not know --peer-listen (the cluster code is not there yet).
"""
import atexit
import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness
import images
import peerproto
from harness import ATOLL_BIN, free_port, wait_for
from images import OCI_MANIFEST, sha256_digest

# Short raft timers keep the tests fast (contract: 500ms / 50ms).
FAST_RAFT = ("--election-timeout", "500ms", "--heartbeat-timeout", "50ms")
# Gossip and autopilot on the same scale: a joining node is a voter 300 ms
# after gossip sees it alive and caught up (default 10 s).
FAST_GOSSIP = ("--gossip-probe-interval", "500ms", "--gossip-probe-timeout",
               "250ms", "--gossip-interval", "100ms",
               "--autopilot-stabilization", "300ms")

_cluster_support = None


def cluster_supported():
    """(bool, reason): does this atoll binary have the cluster flags?"""
    global _cluster_support
    if _cluster_support is None:
        if not harness.is_atoll():
            _cluster_support = (False, "cluster tests need atoll "
                                "(TEST_REGISTRY=distribution)")
        elif not os.path.exists(ATOLL_BIN):
            _cluster_support = (False, f"no atoll binary at {ATOLL_BIN}")
        else:
            try:
                p = subprocess.run([ATOLL_BIN, "serve", "--help"],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=20)
                out = p.stdout.decode(errors="replace")
            except (OSError, subprocess.TimeoutExpired) as e:
                out = f"cannot run {ATOLL_BIN}: {e}"
            if "--peer-listen" in out:
                _cluster_support = (True, "")
            else:
                _cluster_support = (False, "atoll serve --help does not list "
                                    "--peer-listen: cluster support not built "
                                    "yet (issue 3)")
    return _cluster_support


def require_cluster():
    ok, why = cluster_supported()
    if not ok:
        raise unittest.SkipTest(why)


_cli_support = None


def require_members_cli():
    """Skip unless `atoll help` lists the members subcommand (the cluster
    CLI lands separately from the daemon side)."""
    global _cli_support
    require_cluster()
    if _cli_support is None:
        try:
            p = subprocess.run([ATOLL_BIN, "help"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=20)
            _cli_support = "members" in p.stdout.decode(errors="replace")
        except (OSError, subprocess.TimeoutExpired):
            _cli_support = False
    if not _cli_support:
        raise unittest.SkipTest("atoll help does not list the 'members' "
                                "command: cluster CLI not built yet")


class ClusterNode(harness.Node):
    """One cluster member: harness.Node plus a name, a peer port and the
    cluster flags. Restarting keeps the same ports, name and data dir (a
    node with a non-empty raft dir ignores --join)."""

    def __init__(self, cluster, name, join=None, extra=()):
        tmp = os.path.join(cluster.tmp, name)
        os.makedirs(tmp, exist_ok=True)
        self.cluster = cluster
        self.name = name
        self.peer_port = free_port()
        self.join = join
        args = ["--name", name,
                "--peer-listen", f"127.0.0.1:{self.peer_port}",
                "--cluster-secret", cluster.secret,
                "--log-level", "info"] + list(FAST_RAFT) + list(FAST_GOSSIP)
        if join:
            args += ["--join", join]
        args += list(extra)
        super().__init__(tmp=tmp, args=args)

    @property
    def peer_addr(self):
        return f"127.0.0.1:{self.peer_port}"

    # ---- peer port ----
    def peer_request(self, method, path, body=None, headers=None,
                     secret=True, timeout=15,
                     version=peerproto.PEER_PROTOCOL):
        """A request on the peer port. secret: True = the cluster secret,
        a string (even "") = that bearer token, None/False = no
        Authorization header. version: the peer protocol version header
        (None: none, as a node of the first protocol sends)."""
        hdrs = dict(headers or {})
        if version is not None:
            hdrs[peerproto.VERSION_HEADER] = str(version)
        if secret is True:
            hdrs["Authorization"] = f"Bearer {self.cluster.secret}"
        elif isinstance(secret, str):
            hdrs["Authorization"] = f"Bearer {secret}"
        conn = http.client.HTTPConnection("127.0.0.1", self.peer_port,
                                          timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return harness.Response(r.status,
                                    {k.lower(): v for k, v in r.getheaders()},
                                    data)
        finally:
            conn.close()

    # ---- cluster views (API port; with access control on they want an
    # admin or the cluster secret, which the harness always has) ----
    def admin_headers(self):
        return {"Authorization": f"Bearer {self.cluster.secret}"}

    def members(self, timeout=5):
        r = self.request("GET", "/_atoll/members", timeout=timeout,
                         headers=self.admin_headers())
        if r.status != 200:
            raise ValueError(f"/_atoll/members on {self.name}: {r!r}")
        return r.json()

    def status(self, timeout=5):
        r = self.request("GET", "/_atoll/status", timeout=timeout,
                         headers=self.admin_headers())
        if r.status != 200:
            raise ValueError(f"/_atoll/status on {self.name}: {r!r}")
        return r.json()

    def applied_index(self):
        return int(self.status()["applied_index"])


class Cluster:
    """N nodes: n0 bootstraps, n1.. join through n0's peer address.

    extra: args for every node; per_node: {index: args} added for one node.
    """

    def __init__(self, n=3, extra=(), per_node=None, prefix="c"):
        require_cluster()
        self.tmp = tempfile.mkdtemp(prefix="atoll-cluster-")
        self.secret = secrets.token_hex(24)
        self.secret_file = os.path.join(self.tmp, "cluster-secret")
        with open(self.secret_file, "w") as f:
            f.write(self.secret + "\n")
        os.chmod(self.secret_file, 0o600)
        self.extra = list(extra)
        self.per_node = dict(per_node or {})
        self.prefix = prefix
        self.n = n
        self.nodes = []
        self.created = 0  # node names are never reused

    # ---- lifecycle ----
    def add_node(self, join=True, extra=()):
        """Create (not start) the next node; joins n0 unless join=False or
        join is an explicit peer address."""
        i = self.created
        self.created += 1
        if join is True:
            join = self.nodes[0].peer_addr if self.nodes else None
        elif join is False:
            join = None
        args = self.extra + list(self.per_node.get(i, ())) + list(extra)
        node = ClusterNode(self, f"{self.prefix}{i}", join=join, extra=args)
        self.nodes.append(node)
        return node

    def start(self, timeout=30, before_start=None):
        """Start all n nodes one after the other and wait until the
        members table shows them all, with n0 as the only bootstrapper.
        before_start(i, node), when given, runs before node i starts (its
        ports are known by then)."""
        try:
            first = self.add_node(join=False)
            if before_start:
                before_start(0, first)
            first.start()
            self.wait_leader(timeout=timeout)
            for i in range(1, self.n):
                node = self.add_node()
                if before_start:
                    before_start(i, node)
                node.start()
                self.wait_member(node.name, timeout=timeout)
            self.wait_roles(timeout=timeout)
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        for node in self.nodes:
            try:
                node.close()
            except Exception:
                node.kill()
        if os.environ.get("ATOLL_KEEP_TMP") == "1":  # to read the logs after
            print(f"kept {self.tmp}", flush=True)
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def live(self):
        return [n for n in self.nodes if n.alive()]

    def by_name(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def logs(self):
        out = []
        for n in self.nodes:
            out.append(f"===== {n.name} (api {n.addr}, peer {n.peer_addr}) "
                       f"=====\n{n.log()}")
        return "\n".join(out)

    # ---- waiting for cluster states ----
    def members(self, via=None):
        """The members document as seen by `via` (default: first live node
        that answers)."""
        nodes = [via] if via else self.live()
        last = None
        for n in nodes:
            try:
                return n.members()
            except (OSError, http.client.HTTPException, ValueError) as e:
                last = e
        raise ValueError(f"no node answers /_atoll/members: {last!r}")

    def leader(self, timeout=15, exclude=()):
        """The live ClusterNode every live node agrees is leader (waits)."""
        def agreed():
            names = set()
            for n in self.live():
                if n.name in exclude:
                    continue
                doc = n.members(timeout=2)
                names.add(doc.get("leader") or "")
            if len(names) == 1:
                name = names.pop()
                if name and name not in exclude:
                    node = self.by_name(name)
                    if node.alive():
                        return node
            return None
        return wait_for(agreed, timeout, what="one agreed leader")

    def wait_leader(self, timeout=15, exclude=()):
        return self.leader(timeout=timeout, exclude=exclude)

    def followers(self, leader=None):
        leader = leader or self.leader()
        return [n for n in self.live() if n is not leader]

    def wait_member(self, name, role=None, timeout=30):
        def present():
            for n in self.live():
                doc = n.members(timeout=2)
                for m in doc.get("nodes", []):
                    if m.get("name") == name and (role is None or
                                                  m.get("role") == role):
                        return m
                return None
            return None
        return wait_for(present, timeout, what=f"member {name} role {role}")

    def wait_roles(self, timeout=30, voters=None):
        """Wait until every live node reports the same members table with
        every node in a final role (voter or standby, no spare) and a
        leader. voters: expected voter count (default min(n, 3))."""
        want_voters = voters if voters is not None else min(len(self.nodes), 3)
        names = {n.name for n in self.nodes}

        def settled():
            docs = [n.members(timeout=2) for n in self.live()]
            for doc in docs:
                got = {m["name"]: m["role"] for m in doc.get("nodes", [])}
                if set(got) != names:
                    return None
                if any(r not in ("voter", "standby") for r in got.values()):
                    return None
                if sum(1 for r in got.values() if r == "voter") != want_voters:
                    return None
                if not doc.get("leader"):
                    return None
            return docs[0]
        return wait_for(settled, timeout,
                        what=f"{len(names)} members, {want_voters} voters")

    def wait_serving(self, timeout=30):
        """Wait until every live node answers a linearizable read
        (GET /v2/_catalog) with 200: right after an election reads may get
        503 UNAVAILABLE until the new leader's barrier commits. With access
        control on, an anonymous 401 comes after the same barrier."""
        def serving():
            return all(n.request("GET", "/v2/_catalog", timeout=5).status
                       in (200, 401) for n in self.live())
        wait_for(serving, timeout, what="every node serving consistent reads")

    def wait_caught_up(self, node, timeout=30):
        """Wait until node has applied at least the leader's commit index."""
        leader = self.leader()
        target = int(leader.status()["commit_index"])
        wait_for(lambda: node.applied_index() >= target, timeout,
                 what=f"{node.name} applied >= {target}")
        return target

    def wait_all_caught_up(self, timeout=30):
        """wait_caught_up for every node, one after the other."""
        for n in self.nodes:
            self.wait_caught_up(n, timeout=timeout)

    # ---- CLI ----
    def cli(self, *args, check=True, timeout=60):
        return harness.run_tool([ATOLL_BIN] + list(args), timeout=timeout,
                                check=check)


# ---- pushes ----
def small_image(tag_hint=""):
    """(config bytes, layer bytes, manifest bytes) of a unique tiny image."""
    img = images.small(tag_hint)
    return img.config, img.layers[0], img.manifest


def push_small(node, repo, tag, request_id=None, timeout=15):
    """Push a unique image (two blobs + manifest) to node. Returns
    (manifest Response, digest, manifest bytes); blob failures raise."""
    img = images.small(tag)
    hdrs = {"X-Atoll-Request-Id": request_id} if request_id else None
    r = images.push(node, repo, tag, img, headers=hdrs, timeout=timeout,
                    expect=None)
    return r, img.digest, img.manifest


def get_tag(node, repo, tag, headers=None, timeout=15):
    h = {"Accept": OCI_MANIFEST}
    h.update(headers or {})
    return node.request("GET", f"/v2/{repo}/manifests/{tag}", headers=h,
                        timeout=timeout)


class StreamPusher(threading.Thread):
    """Pushes unique small images to `target()` in a loop until stopped.
    Blobs then manifest; a failed step is retried (same bytes, same request
    id) until it succeeds or the pusher is stopped. Every 201 on the
    manifest PUT is recorded in acked as (tag, digest, bytes, time)."""

    def __init__(self, target, repo, prefix="s", pause=0.0):
        super().__init__(daemon=True)
        self.target = target
        self.repo = repo
        self.prefix = prefix
        self.pause = pause
        self.acked = []
        self.errors = []
        # manifest PUT answers other than 201 and the two retryable 503s
        # (UNAVAILABLE: not applied; OUTCOME_UNKNOWN: retry with the id)
        self.bad = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def _retry(self, fn):
        while not self.stop.is_set():
            try:
                r = fn()
                if r is not None:
                    return r
            except (OSError, http.client.HTTPException, AssertionError) as e:
                self.errors.append(repr(e)[:200])
            time.sleep(0.05)
        return None

    def run(self):
        i = 0
        while not self.stop.is_set():
            tag = f"{self.prefix}-{i}"
            config, layer, m = small_image(tag)
            rid = f"stream-{self.prefix}-{i}-{os.urandom(4).hex()}"
            ok = True
            for data in (config, layer):
                if self._retry(lambda: self.target().push_blob(self.repo, data)) is None:
                    ok = False
                    break
            if not ok:
                return

            def put():
                r = self.target().request(
                    "PUT", f"/v2/{self.repo}/manifests/{tag}", body=m,
                    headers={"Content-Type": OCI_MANIFEST,
                             "X-Atoll-Request-Id": rid}, timeout=10)
                if r.status == 201:
                    return r
                self.errors.append(f"{r.status} {r.body[:120]!r}")
                codes = r.error_codes()
                if r.status != 503 or not codes or any(
                        c not in ("UNAVAILABLE", "OUTCOME_UNKNOWN") for c in codes):
                    self.bad.append(r)
                elif "OUTCOME_UNKNOWN" in codes and \
                        r.header("x-atoll-outcome") != "unknown":
                    self.bad.append(r)
                return None
            r = self._retry(put)
            if r is None:
                return
            with self.lock:
                self.acked.append((tag, sha256_digest(m), m, time.time()))
            i += 1
            if self.pause:
                time.sleep(self.pause)

    def acked_after(self, t):
        with self.lock:
            return [a for a in self.acked if a[3] > t]

    def finish(self, timeout=30):
        self.stop.set()
        self.join(timeout)
        return not self.is_alive()


NOTES = []


def join_double(node, name, peer_port, node_id):
    """Ask node (a member) to add a standby member called name whose peer
    listener is a test double on 127.0.0.1:peer_port, from a thread: the
    join answers only once the member has its final role, which a double
    never reaches. Returns at once; wait for the node table to list it."""
    body = peerproto.join_body(name, f"127.0.0.1:{peer_port}",
                               "127.0.0.1:9", standby=True, node_id=node_id)

    def join():
        try:
            node.peer_request("POST", "/_atoll/join", body=body,
                              headers={"Content-Type":
                                       peerproto.CONTENT_TYPE},
                              timeout=60)
        except (OSError, http.client.HTTPException):
            pass

    threading.Thread(target=join, daemon=True).start()


def note(text):
    """Record a measurement; printed at exit, not in the middle of
    unittest's result lines (tests/run.py parses them)."""
    NOTES.append(text)


def _print_notes():
    for n in NOTES:
        sys.stderr.write(f"note: {n}\n")


atexit.register(_print_notes)


def test_failed(test):
    """True once `test` has a failure or error (Python 3.11 reports them to
    the result as they happen)."""
    res = getattr(getattr(test, "_outcome", None), "result", None)
    if res is None:
        return False
    return any(t is test for t, _ in res.failures + res.errors)


def close_reporting(test, c):
    """tearDown of a test that owns cluster c: close it, and when the test
    failed keep the nodes' logs first (they go with the temporary dir)."""
    if c is None:
        return
    if test_failed(test):
        note(f"logs of {test.id()}:\n" + c.logs()[-20000:])
    c.close()


class ClusterTestCase(harness.TestCase):
    """Base: helpers for tests that own a Cluster in self.cluster, started
    per test (start_cluster, in setUp or in the test) or per class
    (start_class_cluster, in setUpClass)."""

    cluster = None

    def failed(self):
        return test_failed(self)

    def admin(self, node, method, path, doc=None):
        """An admin request to node as the cluster secret, doc (if any) as
        a JSON body."""
        body = json.dumps(doc).encode() if doc is not None else None
        hdrs = {"Authorization": f"Bearer {self.cluster.secret}"}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        return node.request(method, path, body=body, headers=hdrs)

    def start_cluster(self, n=3, before_start=None, **kw):
        """Start Cluster(n, **kw) as self.cluster; a cleanup closes it and
        keeps the nodes' logs when the test failed (close_reporting)."""
        c = Cluster(n, **kw)
        self.cluster = c
        self.addCleanup(close_reporting, self, c)
        return c.start(before_start=before_start)

    @classmethod
    def start_class_cluster(cls, n=3, **kw):
        """Start Cluster(n, **kw) as cls.cluster for every test of the
        class; a class cleanup closes it."""
        c = Cluster(n, **kw)
        cls.cluster = c
        cls.addClassCleanup(c.close)
        return c.start()

    def assert_nodes_alive(self):
        """No process of the cluster has exited."""
        for n in self.cluster.nodes:
            self.assert_running(n)

    def assert_tag_everywhere(self, repo, tag, digest, nodes=None, body=None):
        for n in nodes or self.cluster.live():
            r = get_tag(n, repo, tag)
            self.assertEqual(r.status, 200, f"{repo}:{tag} on {n.name}: {r!r}")
            self.assertEqual(r.header("docker-content-digest"), digest,
                             f"{repo}:{tag} on {n.name}: stale digest")
            if body is not None:
                self.assertEqual(r.body, body, f"{repo}:{tag} bytes on {n.name}")

    def assert_acked_present(self, repo, acked, nodes):
        """Every acknowledged (tag, digest, bytes, t) is readable on every
        node in nodes, by tag and by digest."""
        for n in nodes:
            for tag, digest, body, _ in acked:
                r = get_tag(n, repo, tag)
                self.assertEqual(r.status, 200, f"acked {repo}:{tag} lost on "
                                 f"{n.name}: {r!r}")
                self.assertEqual(r.body, body, f"{repo}:{tag} on {n.name}")
                r = get_tag(n, repo, digest)
                self.assertEqual(r.status, 200, f"acked {digest} lost on {n.name}")


def load_tags(nodes, repo, count, images=10, workers=8, prefix="tag"):
    """Put `count` tags into repo, spread over `images` distinct manifests
    and over the given nodes (round robin), with `workers` threads. Returns
    {tag: digest}. Raises AssertionError on the first failed PUT."""
    import concurrent.futures
    node0 = nodes[0]
    manifests = []
    for i in range(images):
        config, layer, m = small_image(f"{prefix}{i}")
        node0.push_blob(repo, config)
        node0.push_blob(repo, layer)
        manifests.append(m)
    tags = {}

    def put(i):
        m = manifests[i % len(manifests)]
        tag = f"{prefix}-{i:06d}"
        node = nodes[i % len(nodes)]
        for attempt in range(50):
            try:
                r = node.request("PUT", f"/v2/{repo}/manifests/{tag}", body=m,
                                 headers={"Content-Type": OCI_MANIFEST,
                                          "X-Atoll-Request-Id":
                                              f"load-{prefix}-{i}"},
                                 timeout=30)
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
                continue
            if r.status == 201:
                return tag, sha256_digest(m)
            if r.status != 503:
                raise AssertionError(f"PUT {repo}:{tag} on {node.name}: {r!r}")
            time.sleep(0.1)
        raise AssertionError(f"PUT {repo}:{tag}: still 503 after retries")

    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        for tag, d in ex.map(put, range(count)):
            tags[tag] = d
    return tags


def list_all_tags(node, repo, page=1000):
    """Every tag of repo on node, following the Link header."""
    out = []
    path = f"/v2/{repo}/tags/list?n={page}"
    while path:
        r = node.request("GET", path, timeout=30)
        if r.status != 200:
            raise AssertionError(f"tags/list on {node.name}: {r!r}")
        out += r.json().get("tags") or []
        link = r.header("link")
        if not link:
            break
        path = link.split(">", 1)[0].lstrip("<")
        if path.startswith("http"):
            path = "/" + path.split("://", 1)[1].split("/", 1)[1]
    return out
