"""The lab: one network namespace per node plus a switch namespace holding a
bridge (option B of ../shared/notes/jepsen.md), atoll processes inside them,
and cleanup that survives failures.

Names: jt<ownerpid>-sw (switch, bridge br0 at 10.231.0.254) and
jt<ownerpid>-n<i> (node i at 10.231.0.<i>, interface eth0). The host network
is never touched. The runner creates the namespaces in the host namespace
(outer process), then re-executes itself inside the switch namespace (inner
process) where it starts nodes with `ip netns exec`. The outer process tears
everything down (processes, namespaces) whatever happens to the inner one; a
new run sweeps namespaces whose owner pid is dead.
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import time

SUBNET = "10.231.0"
API_PORT = 5000
PEER_PORT = 5001
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
# gossip (SWIM over UDP on the peer port's number) and autopilot timings
# suited to the lab's fast raft timings; passed only when the binary lists
# the option in `atoll serve --help` (older builds lack them). Keep the
# autopilot values in step with nemesis.AUTOPILOT_DEAD_AFTER/_STABILIZATION.
LAB_FLAGS = [
    ("--gossip-probe-interval", "300ms"),
    ("--gossip-probe-timeout", "150ms"),
    ("--gossip-interval", "100ms"),
    ("--autopilot-dead-after", "3s"),
    ("--autopilot-stabilization", "1s"),
]


def supported_flags(atoll):
    """The LAB_FLAGS that `atoll serve --help` mentions, as a flat list."""
    try:
        p = subprocess.run([atoll, "serve", "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10, text=True)
        text = p.stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    out = []
    for flag, value in LAB_FLAGS:
        if re.search(re.escape(flag) + r"\b", text):
            out += [flag, value]
    return out


def sh(args, timeout=10, check=True):
    """Run a short command with a deadline; returns CompletedProcess."""
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: rc={p.returncode} "
                           f"{p.stderr.strip()}")
    return p


def list_netns():
    p = sh(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def _pid_alive(pid):
    """Is pid a live (not zombie) runner? A reused pid running something
    else counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return state != "Z" and b"run.py" in cmd


def _kill_ns_pids(ns):
    p = sh(["ip", "netns", "pids", ns], check=False)
    pids = [int(x) for x in p.stdout.split() if x.isdigit()]
    for pid in pids:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    return pids


def remove_faketime_shm(pids):
    """libfaketime creates /dev/shm/faketime_shm_<pid> (and a semaphore) in
    the first process that loads it, here the node's pid (ip netns exec then
    execs atoll), and removes them only at a normal exit of that very
    image, so every node leaves them behind. Remove those of our pids once
    the processes are gone."""
    for pid in pids:
        for name in (f"faketime_shm_{pid}", f"sem.faketime_sem_{pid}"):
            try:
                os.unlink(os.path.join("/dev/shm", name))
            except OSError:
                pass


def delete_namespaces(names, timeout=10):
    for ns in names:
        _kill_ns_pids(ns)
    for ns in names:
        sh(["ip", "netns", "del", ns], check=False)
    deadline = time.time() + timeout
    while time.time() < deadline:
        left = set(names) & set(list_netns())
        if not left:
            return
        time.sleep(0.05)


def sweep_dead_owners():
    """Delete jt<pid>-* namespaces whose owner pid is gone; returns them."""
    dead = []
    for ns in list_netns():
        m = re.match(r"^jt(\d+)-", ns)
        if m and not _pid_alive(int(m.group(1))):
            dead.append(ns)
    if dead:
        delete_namespaces(dead)
    return dead


class Net:
    """Namespaces and the bridge (created and removed by the outer process)."""

    def __init__(self, slots, owner=None):
        self.owner = owner or os.getpid()
        self.prefix = f"jt{self.owner}"
        self.slots = slots
        self.switch = f"{self.prefix}-sw"
        self.created = []

    def node_ns(self, i):
        return f"{self.prefix}-n{i}"

    def up(self):
        sh(["ip", "netns", "add", self.switch])
        self.created.append(self.switch)
        sw = ["ip", "-n", self.switch]
        sh(sw + ["link", "set", "lo", "up"])
        sh(sw + ["link", "add", "br0", "type", "bridge"])
        sh(sw + ["addr", "add", f"{SUBNET}.254/24", "dev", "br0"])
        sh(sw + ["link", "set", "br0", "up"])
        for i in range(1, self.slots + 1):
            ns = self.node_ns(i)
            sh(["ip", "netns", "add", ns])
            self.created.append(ns)
            sh(sw + ["link", "add", f"v{i}", "type", "veth", "peer", "name",
                     "eth0", "netns", ns])
            sh(sw + ["link", "set", f"v{i}", "master", "br0"])
            sh(sw + ["link", "set", f"v{i}", "up"])
            n = ["ip", "-n", ns]
            sh(n + ["link", "set", "lo", "up"])
            sh(n + ["addr", "add", f"{SUBNET}.{i}/24", "dev", "eth0"])
            sh(n + ["link", "set", "eth0", "up"])

    def down(self):
        names = [ns for ns in self.created]
        for ns in list_netns():
            if ns.startswith(self.prefix + "-") and ns not in names:
                names.append(ns)
        delete_namespaces(names)
        self.created = []


def http_req(host, method, path, body=None, headers=None, timeout=5.0,
             port=API_PORT):
    """One HTTP request with a deadline on connect and on every read.
    Returns (status, headers(lowercase), body) or raises OSError /
    http.client.HTTPException. sent tells whether the request was written
    (attribute on the exception: e.jt_sent)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    sent = False
    try:
        conn.request(method, path, body=body, headers=headers or {})
        sent = True
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    except (OSError, http.client.HTTPException) as e:
        e.jt_sent = sent
        raise
    finally:
        conn.close()


class Node:
    """One atoll process in namespace slot i (10.231.0.i)."""

    def __init__(self, lab, slot, name, join=None, local=False):
        self.lab = lab
        self.slot = slot
        self.name = name
        self.ip = f"{SUBNET}.{slot}"
        self.join = join
        self.local = local
        self.dir = os.path.join(lab.rundir, "nodes", name)
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "atoll.log")
        self.clock_file = os.path.join(self.dir, "faketime")
        self.proc = None
        self.paused = False
        self.removed = False
        self.disk_img = None
        self.start_time = time.monotonic()
        os.makedirs(self.data, exist_ok=True)
        with open(self.clock_file, "w") as f:
            f.write("+0 x1\n")

    @property
    def ns(self):
        return self.lab.net_prefix + f"-n{self.slot}"

    def cmd(self):
        c = [self.lab.atoll, "serve", "--name", self.name,
             "--listen", f"{self.ip}:{API_PORT}",
             "--peer-listen", f"{self.ip}:{PEER_PORT}",
             "--data-dir", self.data,
             "--cluster-secret", self.lab.secret,
             "--election-timeout", "500ms", "--heartbeat-timeout", "50ms",
             # below the clients' 5 s op timeout: an op that finds no
             # leader waits for the election, and still fails definitely
             # (not "info") when none comes
             "--leader-wait", "2s",
             "--target-voters", str(self.lab.target_voters),
             "--log-level", "info"] + self.lab.extra_flags
        if self.join:
            c += ["--join", self.join]
        if self.local:
            c += ["--read-consistency", "local"]
        if self.disk_img:
            # the small image is far below the default reserves: blobs
            # stop at 32 + 8 MiB free (the raft dir shares the image, so
            # the raft reserve counts on top), raft at 8 MiB, two 8 MiB
            # segments below (F9). Below its blob reserve the node relays
            # GETs of blobs held elsewhere, no copy kept (F10, fixed): a
            # run spends much of its time there, so the relay is tested
            c += ["--reserve-bytes", "32MiB", "--raft-reserve", "8MiB"]
        return c

    def start(self):
        env = dict(os.environ)
        env.pop("JT_INNER", None)
        if self.lab.faketime and os.path.exists(FAKETIME_LIB):
            env["LD_PRELOAD"] = FAKETIME_LIB
            env["FAKETIME_TIMESTAMP_FILE"] = self.clock_file
            env["FAKETIME_NO_CACHE"] = "1"
        inner = self.cmd()
        if self.disk_img:
            # private mount namespace: the small ext4 image is the data dir
            inner = ["unshare", "--mount", "--propagation", "private",
                     "sh", "-c", 'img=$1; dir=$2; shift 2; '
                     'mount -o loop "$img" "$dir" || exit 97; exec "$@"',
                     "sh", self.disk_img, self.data] + inner
        args = ["ip", "netns", "exec", self.ns] + inner
        logf = open(self.log_path, "ab")
        logf.write(f"--- start {time.time():.3f} {' '.join(args)}\n".encode())
        logf.flush()
        self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        logf.close()
        self.paused = False
        self.start_time = time.monotonic()
        self.lab.pids.add(self.proc.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        if self.proc is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.paused = False

    def stop(self):
        """SIGTERM (graceful), then SIGKILL after a deadline."""
        if not self.alive():
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            self.kill()

    def req(self, method, path, body=None, headers=None, timeout=5.0):
        return http_req(self.ip, method, path, body, headers, timeout)

    def peer_req(self, method, path, body=None, timeout=10.0):
        h = {"Authorization": f"Bearer {self.lab.secret}",
             "Content-Type": "application/json",
             "X-Atoll-Peer-Protocol": "2"}  # proto/peer.h
        return http_req(self.ip, method, path, body, h, timeout, PEER_PORT)

    def status(self, timeout=2.0):
        st, _, body = self.req("GET", "/_atoll/status", timeout=timeout)
        if st != 200:
            raise ValueError(f"status {st}")
        return json.loads(body)

    def iptables(self, args):
        return sh(["ip", "netns", "exec", self.ns, "iptables", "-w"] + args,
                  check=False)

    def set_clock(self, spec):
        tmp = self.clock_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(spec + "\n")
        os.replace(tmp, self.clock_file)


class Lab:
    """The cluster inside the namespaces (used by the inner process)."""

    def __init__(self, atoll, rundir, net_prefix, secret, target_voters,
                 faketime=False, slots=8):
        self.atoll = os.path.abspath(atoll)
        self.rundir = rundir
        self.net_prefix = net_prefix
        self.secret = secret
        self.target_voters = target_voters
        self.faketime = faketime
        self.slots = slots
        self.nodes = []          # every node ever started (by name)
        self.pids = set()
        self.free_slots = []
        self.next_name = 1
        self.extra_flags = supported_flags(self.atoll)

    def new_node(self, slot, join=None, local=False):
        n = Node(self, slot, f"n{self.next_name}", join, local)
        self.next_name += 1
        self.nodes.append(n)
        return n

    def members(self):
        """Nodes currently in the cluster (not removed)."""
        return [n for n in self.nodes if not n.removed]

    def leader_name(self, timeout=1.0):
        for n in self.members():
            if not n.alive() or n.paused:
                continue
            try:
                st, _, body = n.req("GET", "/_atoll/members", timeout=timeout)
                if st == 200:
                    ln = json.loads(body).get("leader")
                    if ln:
                        return ln
            except (OSError, ValueError, http.client.HTTPException):
                pass
        return None

    def wait_ready(self, node, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not node.alive():
                raise RuntimeError(f"{node.name} exited: see {node.log_path}")
            try:
                st, _, _ = node.req("GET", "/readyz", timeout=1.0)
                if st == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{node.name} not ready after {timeout}s")

    def wait_member(self, node, timeout=30.0):
        """Wait until the node is listed as a voter or standby."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for other in self.members():
                if not other.alive() or other.paused:
                    continue
                try:
                    st, _, body = other.req("GET", "/_atoll/members", timeout=1)
                    if st == 200:
                        m = json.loads(body)
                        for e in m.get("nodes", []):
                            if e.get("name") == node.name and \
                                    e.get("role") in ("voter", "standby"):
                                return
                except (OSError, ValueError, http.client.HTTPException):
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"{node.name} not a member after {timeout}s")

    def stop_all(self):
        for n in self.nodes:
            n.kill()
        if self.faketime:
            remove_faketime_shm(self.pids)  # every node process ever started

    def remove_dir(self, node):
        shutil.rmtree(node.data, ignore_errors=True)
