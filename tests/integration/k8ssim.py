"""A tiny Kubernetes for the rendered chart: kubelet, StatefulSet
controller, headless-service DNS, PodDisruptionBudget and a client Service,
enough to run what `helm template deploy/helm/atoll` renders as real
processes (issue 14, acceptance 2).

What it does, object by object:
  - Release: `helm template REL CHART -n NS -f values...` parsed with PyYAML;
    the StatefulSet, Services, PodDisruptionBudget, Secrets, ConfigMaps.
  - Sim ("the node"): one network namespace of its own holding a bridge on
    10.244.0.0/24 (10.244.0.1 is the node); every pod is a network
    namespace "<tag>-<pod name>" (the tag keeps two runs on one machine
    apart; the pod name itself, its --name and its DNS names are the real
    ones) joined to that bridge by a veth pair, one IP per pod. The test
    thread moves into the node's namespace (netns.Inside) like the
    kubelet's probes and a client would be; nothing is added to the host's
    own network.
  - DNS: /etc/netns/<netns>/hosts, which `ip netns exec` bind-mounts over
    /etc/hosts for the processes it starts (ip-netns(8)), lists every
    existing pod of every release under its headless names
    (<pod>.<headless>.<ns>.svc.<domain> and the shorter forms the
    resolver's search path would give) and the pod's own name; a release
    made with external_dns=True also gets its pods' --advertise names (the
    DNS an edge site would have). Pods not running have no address there,
    as a headless Service with publishNotReadyAddresses lists only
    existing pods. The files are rewritten when pods come and go. A rename
    would not reach a running process (the bind mount holds the old inode),
    so every hosts file keeps one fixed size and is rewritten in place with
    one pwrite (padding is blank lines). resolv.conf gets the pod's search
    path and a nameserver that answers nothing, quickly.
  - Kubelet (Pod): command + args with $(VAR) expanded from the env
    (literal values, fieldRef metadata.name/namespace/labels['..']/
    annotations['..'], status.podIP, secretKeyRef, configMapKeyRef), run
    as the securityContext's runAsUser/runAsGroup with fsGroup as a
    supplementary group (setpriv), no_new_privs when
    allowPrivilegeEscalation is false; restartPolicy Always with a short
    backoff; startup, readiness and liveness httpGet probes (path, port by
    name or number, scheme, periodSeconds, failureThreshold,
    timeoutSeconds; startup gates the others; liveness failure restarts);
    termination runs lifecycle.preStop.exec in the pod's namespace, then
    SIGTERM, then SIGKILL after terminationGracePeriodSeconds. Only the
    simulator's own pids are ever signalled.
  - Volumes: volumeClaimTemplates become per-pod directories kept across
    pod deletion like PVCs (<claim>-<pod>); persistentVolumeClaimRetention
    Policy whenScaled Delete wipes them on scale-down; emptyDir is per pod
    (kept across container restarts, gone with the pod); secret and
    configMap volumes are materialized from the rendered objects or from
    "existing" Secrets the test adds (Sim.add_secret), one file per key,
    mode defaultMode, group fsGroup.
  - StatefulSet: Parallel creation of ordinals 0..n-1, rolling update from
    the highest ordinal down, each pod evicted only when the rendered PDB
    allows it and replaced by a pod of the new template that must become
    Ready; scale down deletes the highest ordinals at once, scale up
    creates the missing ones with their retained claims.
  - Service: each request goes to one ready pod of the Service's selector.

The one liberty taken: a container sees the host's file system, so every
volumeMount's mountPath is mapped to the pod's host directory for it, and
an argument or env value that starts with a mountPath (also after the "="
of --flag=value) is rewritten to that directory; the command
/usr/bin/atoll is the binary under test (harness.ATOLL_BIN). Not
simulated: readOnlyRootFilesystem, resources, images, scheduling,
topology spread, NetworkPolicy, Ingress.

Needs root, iproute2 (ip), setpriv (util-linux), helm (test_helm.HELM or
$HELM) and PyYAML; available() says whether they are there.
"""
import http.client
import itertools
import os
import random
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time

import harness
import netns

try:
    import yaml
except ImportError:  # python3-yaml is in .ci/install-deps
    yaml = None

IP = shutil.which("ip")
SETPRIV = shutil.which("setpriv")
CHART = os.path.join(harness.ROOT, "deploy", "helm", "atoll")
HELM = os.environ.get("HELM", os.path.join(harness.ROOT, "build", "tools",
                                           "helm"))
HOSTS_SIZE = 32768
SUBNET = "10.244.0"


def available():
    """(bool, reason)."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces)"
    if IP is None or not netns.available():
        return False, "needs iproute2 (ip, nsenter)"
    if SETPRIV is None:
        return False, "needs setpriv (util-linux)"
    if yaml is None:
        return False, "needs PyYAML (Debian python3-yaml)"
    if not os.access(HELM, os.X_OK):
        return False, f"no helm at {HELM} (.ci/install-deps fetches it)"
    return True, ""


def _run(args, check=True, timeout=30):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s: rc %d: %s" % (" ".join(args), p.returncode,
                                              p.stderr.strip()))
    return p


# ---------------------------------------------------------------- render
class Release:
    """One `helm template` of the chart: its objects by kind."""

    def __init__(self, name, namespace, values_files=(), sets=(),
                 external_dns=False):
        self.name = name
        self.namespace = namespace
        self.external_dns = external_dns
        args = [HELM, "template", name, CHART, "--namespace", namespace]
        for f in values_files:
            args += ["-f", f]
        for s in sets:
            args += ["--set", s]
        env = dict(os.environ, HELM_CACHE_HOME="/nonexistent/cache",
                   HELM_CONFIG_HOME="/nonexistent/config",
                   HELM_DATA_HOME="/nonexistent/data")
        p = subprocess.run(args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60,
                           env=env)
        if p.returncode != 0:
            raise RuntimeError(f"helm template: {p.stderr}")
        self.text = p.stdout
        self.objects = [d for d in yaml.safe_load_all(p.stdout) if d]

    def kind(self, kind):
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind):
        found = self.kind(kind)
        if len(found) != 1:
            raise ValueError(f"{len(found)} {kind} objects in the render")
        return found[0]

    @property
    def sts(self):
        return self.one("StatefulSet")

    @property
    def pdb(self):
        found = self.kind("PodDisruptionBudget")
        return found[0] if found else None

    def service(self, name=None, headless=False):
        for s in self.kind("Service"):
            if name is not None and s["metadata"]["name"] != name:
                continue
            if (s["spec"].get("clusterIP") == "None") == headless:
                return s
        raise KeyError(f"no {'headless ' if headless else ''}Service {name}")

    @property
    def headless(self):
        return self.sts["spec"]["serviceName"]

    def pod_name(self, ordinal):
        return f"{self.sts['metadata']['name']}-{ordinal}"

    def cluster_domain(self):
        """The cluster domain the chart put into --advertise (or the
        default)."""
        for a in self.sts["spec"]["template"]["spec"]["containers"][0].get(
                "args", []):
            m = re.match(r"--advertise=\$\(POD_NAME\)\.[^.]+\.[^.]+\.svc\.(.+)$",
                         a)
            if m:
                return m.group(1)
        return "cluster.local"


def match_labels(selector, labels):
    return all(labels.get(k) == v
               for k, v in (selector.get("matchLabels") or {}).items())


# ------------------------------------------------------------------- pod
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text, env):
    """Kubernetes $(VAR) expansion: defined names are replaced, $$ is $,
    undefined references stay as written."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, str(text))


class Pod:
    """One pod of a StatefulSet: its network namespace, volumes, the
    container process (restartPolicy Always) and the kubelet's probes."""

    def __init__(self, sim, sts, ordinal, release):
        self.sim = sim
        self.sts = sts
        self.ordinal = ordinal
        self.release = release
        self.name = release.pod_name(ordinal)
        self.namespace = release.namespace
        tpl = release.sts["spec"]["template"]
        self.labels = dict(tpl["metadata"].get("labels") or {})
        self.labels["statefulset.kubernetes.io/pod-name"] = self.name
        self.annotations = dict(tpl["metadata"].get("annotations") or {})
        self.spec = tpl["spec"]
        self.container = self.spec["containers"][0]
        self.netns = f"{sim.tag}-{self.name}"
        self.ip = sim.alloc_ip(self.namespace, self.name)
        self.dir = os.path.join(sim.tmp, "pods", f"{self.namespace}.{self.name}")
        self.log_path = os.path.join(self.dir, "container.log")
        self.proc = None
        self.started = False
        self.ready = False
        self.restarts = 0
        self.terminating = False
        self.gone = threading.Event()
        self.events = []
        self.mounts = []  # (mountPath, host dir), longest first
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        psc = self.spec.get("securityContext") or {}
        csc = self.container.get("securityContext") or {}
        self.uid = csc.get("runAsUser", psc.get("runAsUser"))
        self.gid = csc.get("runAsGroup", psc.get("runAsGroup"))
        self.fs_group = psc.get("fsGroup")
        self.no_new_privs = csc.get("allowPrivilegeEscalation") is False

    def event(self, text):
        self.events.append((time.time(), text))

    # ---- sandbox ----
    def _create_sandbox(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        _run([IP, "netns", "add", self.netns])
        self.sim.netns_made.add(self.netns)
        idx = self.sim.veth_index(self.netns)
        host_if = f"{self.sim.tag}v{idx}"
        # A pod recreated under its old address keeps its old MAC too: the
        # node's and the other pods' ARP caches stay right (a new MAC
        # would leave them pointing at a gone veth for up to ~45 s).
        mac = "02:00:" + ":".join(f"{int(o):02x}" for o in self.ip.split("."))
        _run([IP, "-n", self.sim.node_ns.name, "link", "add", host_if, "type",
              "veth", "peer", "name", "eth0", "address", mac, "netns",
              self.netns])
        _run([IP, "-n", self.sim.node_ns.name, "link", "set", host_if,
              "master", "br0", "up"])
        for args in (["link", "set", "lo", "up"],
                     ["addr", "add", f"{self.ip}/24", "dev", "eth0"],
                     ["link", "set", "eth0", "up"]):
            _run([IP, "-n", self.netns] + args)
        etc = os.path.join("/etc/netns", self.netns)
        os.makedirs(etc, exist_ok=True)
        self.sim.etc_made.add(etc)
        ns = self.namespace
        dom = self.release.cluster_domain()
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write(f"search {ns}.svc.{dom} svc.{dom} {dom}\n"
                    "nameserver 127.0.0.1\noptions ndots:5 timeout:1 "
                    "attempts:1\n")
        hosts = os.path.join(etc, "hosts")
        with open(hosts + ".new", "wb") as f:
            f.write(b"\n" * HOSTS_SIZE)
        os.rename(hosts + ".new", hosts)
        self._volumes()

    def _volumes(self):
        """Host directories for every volumeMount (see the module doc)."""
        vols = {v["name"]: v for v in self.spec.get("volumes") or []}
        claims = {c["metadata"]["name"] for c in
                  self.release.sts["spec"].get("volumeClaimTemplates") or []}
        grp = self.fs_group if self.fs_group is not None else 0
        out = []
        for m in self.container.get("volumeMounts") or []:
            name = m["name"]
            if name in claims:
                d = self.sim.claim_dir(self.namespace, f"{name}-{self.name}",
                                       grp)
            elif name in vols and "emptyDir" in vols[name]:
                d = os.path.join(self.dir, "emptydir", name)
                os.makedirs(d, exist_ok=True)
                os.chown(d, 0, grp)
                os.chmod(d, 0o1777)
            elif name in vols and ("secret" in vols[name] or
                                   "configMap" in vols[name]):
                d = os.path.join(self.dir, "volumes", name)
                self._materialize(vols[name], d, grp)
            else:
                raise RuntimeError(f"{self.name}: volume {name} has no source")
            out.append((m["mountPath"].rstrip("/") or "/", d))
        out.sort(key=lambda x: -len(x[0]))
        self.mounts = out

    def _materialize(self, vol, d, grp):
        if "secret" in vol:
            src = vol["secret"]
            data = self.sim.secret_data(self.namespace, src["secretName"])
        else:
            src = vol["configMap"]
            data = self.sim.configmap_data(self.namespace, src["name"])
        if data is None:
            raise RuntimeError(f"{self.name}: {vol['name']}: no such "
                               f"{'Secret' if 'secret' in vol else 'ConfigMap'}")
        mode = src.get("defaultMode", 0o644)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        items = src.get("items")
        pairs = ([(i["key"], i["path"]) for i in items] if items else
                 [(k, k) for k in data])
        for key, path in pairs:
            p = os.path.join(d, path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data[key])
            os.chown(p, 0, grp)
            os.chmod(p, mode)

    # ---- the container ----
    def map_path(self, value):
        """A value naming a path under a mountPath -> the host dir; also
        the value after the first "=" (--flag=/path)."""
        value = str(value)

        def one(v):
            for mp, host in self.mounts:
                if v == mp or v.startswith(mp + "/"):
                    return host + v[len(mp):]
            return None
        hit = one(value)
        if hit is not None:
            return hit
        if "=" in value:
            k, _, v = value.partition("=")
            hit = one(v)
            if hit is not None:
                return f"{k}={hit}"
        return value

    def _field(self, path):
        if path == "metadata.name":
            return self.name
        if path == "metadata.namespace":
            return self.namespace
        if path == "status.podIP":
            return self.ip
        m = re.match(r"metadata\.(labels|annotations)\['(.+)'\]$", path)
        if m:
            src = self.labels if m.group(1) == "labels" else self.annotations
            return src.get(m.group(2), "")
        raise RuntimeError(f"{self.name}: fieldRef {path} not simulated")

    def env(self):
        out = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
               "HOSTNAME": self.name, "HOME": "/"}
        for e in self.container.get("env") or []:
            if "value" in e:
                out[e["name"]] = expand(e["value"], out)
                continue
            vf = e.get("valueFrom") or {}
            if "fieldRef" in vf:
                out[e["name"]] = self._field(vf["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
                data = (self.sim.secret_data(self.namespace, ref["name"])
                        if "secretKeyRef" in vf else
                        self.sim.configmap_data(self.namespace, ref["name"]))
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    raise RuntimeError(f"{self.name}: env {e['name']}: "
                                       f"{ref['name']}/{ref['key']} missing")
                out[e["name"]] = data[ref["key"]].decode()
            else:
                raise RuntimeError(f"{self.name}: env {e['name']} not "
                                   "simulated")
        return {k: self.map_path(v) for k, v in out.items()}

    def argv(self, words, env):
        words = [expand(w, env) for w in words]
        if words and words[0] == "/usr/bin/atoll":
            words[0] = harness.ATOLL_BIN
        return [words[0]] + [self.map_path(w) for w in words[1:]]

    def _exec_prefix(self):
        pre = [IP, "netns", "exec", self.netns]
        if self.uid is not None:
            pre += [SETPRIV, f"--reuid={self.uid}",
                    f"--regid={self.gid if self.gid is not None else self.uid}"]
            if self.fs_group is not None:
                pre += [f"--groups={self.fs_group}"]
            else:
                pre += ["--clear-groups"]
            if self.no_new_privs:
                pre += ["--no-new-privs"]
            pre += ["--"]
        return pre

    def container_argv(self):
        env = self.env()
        c = self.container
        return self.argv(list(c.get("command") or []) +
                         list(c.get("args") or []), env), env

    def _start_container(self):
        argv, env = self.container_argv()
        log = open(self.log_path, "ab")
        try:
            log.write(f"---- start {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self._exec_prefix() + argv,
                                         stdout=log, stderr=log, env=env,
                                         cwd="/", stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self.sim.pids.add(self.proc.pid)
        self.started = False
        self.ready = False
        self.event("container started")

    # ---- probes ----
    def _port(self, port):
        if isinstance(port, int):
            return port
        for p in self.container.get("ports") or []:
            if p.get("name") == port and p.get("protocol", "TCP") == "TCP":
                return p["containerPort"]
        raise RuntimeError(f"{self.name}: no port named {port}")

    def probe(self, spec):
        h = spec["httpGet"]
        timeout = spec.get("timeoutSeconds", 1)
        port = self._port(h["port"])
        try:
            if h.get("scheme", "HTTP").upper() == "HTTPS":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                conn = http.client.HTTPSConnection(self.ip, port,
                                                   timeout=timeout,
                                                   context=ctx)
            else:
                conn = http.client.HTTPConnection(self.ip, port,
                                                  timeout=timeout)
            try:
                hdrs = {x["name"]: x["value"]
                        for x in h.get("httpHeaders") or []}
                conn.request("GET", h.get("path", "/"), headers=hdrs)
                r = conn.getresponse()
                r.read()
                return 200 <= r.status < 400
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            return False

    def _loop(self):
        c = self.container
        sp, rp, lp = (c.get("startupProbe"), c.get("readinessProbe"),
                      c.get("livenessProbe"))
        backoff = 0.5
        next_start = 0.0
        t = {"startup": 0.0, "readiness": 0.0, "liveness": 0.0}
        fails = {"startup": 0, "readiness": 0, "liveness": 0}
        while not self._stop.is_set():
            now = time.time()
            with self._lock:
                if self.terminating:
                    break
                if self.proc is None or self.proc.poll() is not None:
                    if self.proc is not None:
                        self.event(f"container exited {self.proc.returncode}")
                        self.proc = None
                        self.started = self.ready = False
                        self.restarts += 1
                        next_start = now + backoff
                        backoff = min(backoff * 2, 5.0)
                    if now >= next_start:
                        self._start_container()
                        for k, p in (("startup", sp), ("readiness", rp),
                                     ("liveness", lp)):
                            t[k] = now + ((p or {}).get(
                                "initialDelaySeconds", 0))
                            fails[k] = 0
                proc = self.proc
            if proc is None:
                self._stop.wait(0.1)
                continue
            kill = None
            if not self.started:
                if sp is None:
                    self.started = True
                elif now >= t["startup"]:
                    t["startup"] = now + sp.get("periodSeconds", 10)
                    if self.probe(sp):
                        self.started = True
                        self.event("startup probe passed")
                        t["readiness"] = t["liveness"] = time.time()
                    else:
                        fails["startup"] += 1
                        if fails["startup"] >= sp.get("failureThreshold", 3):
                            kill = "startup probe failed"
            else:
                if rp is None:
                    self.ready = True
                elif now >= t["readiness"]:
                    t["readiness"] = now + rp.get("periodSeconds", 10)
                    if self.probe(rp):
                        fails["readiness"] = 0
                        if not self.ready and not self.terminating:
                            self.event("ready")
                        self.ready = not self.terminating
                    else:
                        fails["readiness"] += 1
                        if fails["readiness"] >= rp.get("failureThreshold", 3):
                            if self.ready:
                                self.event("not ready")
                            self.ready = False
                if lp is not None and now >= t["liveness"]:
                    t["liveness"] = now + lp.get("periodSeconds", 10)
                    if self.probe(lp):
                        fails["liveness"] = 0
                    else:
                        fails["liveness"] += 1
                        if fails["liveness"] >= lp.get("failureThreshold", 3):
                            kill = "liveness probe failed"
            if kill:
                with self._lock:
                    if self.terminating:
                        break
                    self.event(kill + ": restarting the container")
                    self.ready = False
                self._stop_container()
                continue
            self._stop.wait(0.1)

    # ---- lifecycle ----
    def start(self):
        """Create the sandbox and volumes, publish the DNS names, start
        the kubelet loop (which starts the container)."""
        self._create_sandbox()
        self.sim.pod_added(self)
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"kubelet-{self.name}")
        self._thread.start()
        return self

    def grace(self):
        return self.spec.get("terminationGracePeriodSeconds", 30)

    def _pre_stop(self, deadline):
        hook = ((self.container.get("lifecycle") or {}).get("preStop") or {})
        if "exec" not in hook:
            return None
        env = self.env()
        argv = self.argv(hook["exec"]["command"], env)
        t0 = time.time()
        try:
            p = subprocess.run(self._exec_prefix() + argv,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, cwd="/",
                               timeout=max(1.0, deadline - time.time()))
            out = p.stdout.decode(errors="replace")
            self.event(f"preStop rc {p.returncode} in "
                       f"{time.time() - t0:.2f}s: {out.strip()[-300:]}")
            return p.returncode
        except subprocess.TimeoutExpired:
            self.event("preStop timed out")
            return None

    def _stop_container(self, pre_stop=True):
        """preStop, SIGTERM, SIGKILL after the grace period. Returns the
        seconds it took."""
        t0 = time.time()
        deadline = t0 + self.grace()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return 0.0
        if pre_stop:
            self._pre_stop(deadline)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            self.event("grace period over: SIGKILL")
            proc.kill()
            proc.wait(timeout=10)
        self.event(f"container stopped rc {proc.returncode}")
        return time.time() - t0

    def delete(self):
        """Graceful deletion: out of the Service's endpoints at once,
        preStop, SIGTERM, SIGKILL after the grace; then the sandbox and
        emptyDirs go, and the DNS names with them. Returns the seconds the
        container took to stop."""
        with self._lock:
            self.terminating = True
            self.ready = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        took = self._stop_container()
        self.sim.pod_removed(self)
        self.gone.set()
        return took

    def kill_now(self):
        """Cleanup only: SIGKILL, no hooks. Containers start under the
        lock after a look at terminating, so none starts after this."""
        with self._lock:
            self.terminating = True
            p = self.proc
        self._stop.set()
        if p is not None and p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def log(self, tail=6000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-tail:]
        except OSError:
            return ""

    # ---- talking to it ----
    def request(self, method, path, body=None, headers=None, timeout=10,
                port="http"):
        conn = http.client.HTTPConnection(self.ip, self._port(port),
                                          timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            r = conn.getresponse()
            return harness.Response(
                r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def doc(self, path, timeout=3):
        r = self.request("GET", path, timeout=timeout)
        if r.status != 200:
            raise ValueError(f"{path} on {self.name}: {r!r}")
        return r.json()

    def exec(self, words, timeout=60):
        """Run a command in the pod like `kubectl exec` (same env, mapping,
        user and namespace). CompletedProcess, text."""
        env = self.env()
        return subprocess.run(self._exec_prefix() + self.argv(words, env),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=env, cwd="/",
                              text=True, timeout=timeout)


# ----------------------------------------------------------- StatefulSet
class StatefulSet:
    """The controller of one release's StatefulSet."""

    def __init__(self, sim, release):
        self.sim = sim
        self.release = release
        self.replicas = release.sts["spec"]["replicas"]
        self.pods = {}
        self.retired = []  # deleted pods, with their events
        policy = release.sts["spec"].get("podManagementPolicy",
                                         "OrderedReady")
        if policy != "Parallel":
            raise RuntimeError(f"podManagementPolicy {policy} not simulated")
        sim.statefulsets.append(self)

    @property
    def selector(self):
        return self.release.sts["spec"]["selector"]

    def _create(self, ordinal):
        pod = Pod(self.sim, self, ordinal, self.release)
        self.pods[ordinal] = pod
        return pod.start()

    def create(self):
        """Every ordinal at once (Parallel)."""
        for i in range(self.replicas):
            self._create(i)

    def ready_pods(self):
        return [p for _, p in sorted(self.pods.items()) if p.ready]

    def wait_ready(self, timeout, what=None):
        return harness.wait_for(
            lambda: len(self.ready_pods()) == self.replicas and
            len(self.pods) == self.replicas, timeout, interval=0.1,
            what=what or f"{self.replicas} pods of "
            f"{self.release.name} ready")

    def pdb_allows(self):
        """Would the rendered PDB allow one more voluntary disruption?"""
        pdb = self.release.pdb
        if pdb is None:
            return True
        sel = pdb["spec"]["selector"]
        pods = [p for p in self.sim.all_pods() if p.namespace ==
                self.release.namespace and match_labels(sel, p.labels)]
        healthy = sum(1 for p in pods if p.ready)
        expected = self.replicas

        def count(v):
            if isinstance(v, str) and v.endswith("%"):
                return -(-int(v[:-1]) * expected // 100)
            return int(v)
        if "minAvailable" in pdb["spec"]:
            desired = count(pdb["spec"]["minAvailable"])
        else:
            desired = expected - count(pdb["spec"].get("maxUnavailable", 1))
        return healthy - desired > 0

    def evict(self, ordinal, timeout=120):
        """The eviction API: wait until the PDB allows it, then delete."""
        harness.wait_for(self.pdb_allows, timeout, interval=0.1,
                         what=f"the PDB to allow evicting "
                         f"{self.release.pod_name(ordinal)}")
        pod = self.pods.pop(ordinal)
        self.retired.append(pod)
        return pod.delete()

    def rolling_update(self, new_release, timeout=120, on_pod=None):
        """RollingUpdate to new_release's template: highest ordinal first,
        each pod evicted through the PDB, its replacement Ready before the
        next. Returns [(pod, seconds to stop, seconds to Ready)]."""
        self.release = new_release
        out = []
        for i in sorted(self.pods, reverse=True):
            self.wait_ready(timeout)
            name = self.release.pod_name(i)
            stop = self.evict(i, timeout)
            t0 = time.time()
            pod = self._create(i)
            harness.wait_for(lambda: pod.ready, timeout, interval=0.1,
                             what=f"{name} ready again")
            out.append((name, stop, time.time() - t0))
            if on_pod:
                on_pod(pod)
        return out

    def apply(self, new_release, timeout=120):
        """A new render applied: a changed pod template rolls the pods
        (rolling_update), a changed replica count scales. Returns (names
        of the pods rolled, names of the pods scaled away)."""
        old = self.release.sts["spec"]["template"]
        rolled = []
        if new_release.sts["spec"]["template"] != old:
            rolled = [n for n, _, _ in
                      self.rolling_update(new_release, timeout)]
        self.release = new_release
        gone = self.scale(new_release.sts["spec"]["replicas"], timeout)
        return rolled, gone

    def scale(self, n, timeout=120):
        """Scale to n: the highest ordinals deleted at once, or the missing
        ones created at once (with their retained claims)."""
        self.replicas = n
        going = [self.pods.pop(i) for i in sorted(self.pods) if i >= n]
        self.retired += going
        threads = [threading.Thread(target=p.delete, daemon=True)
                   for p in going]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
        policy = (self.release.sts["spec"].get(
            "persistentVolumeClaimRetentionPolicy") or {})
        if policy.get("whenScaled") == "Delete":
            for p in going:
                for c in self.release.sts["spec"].get(
                        "volumeClaimTemplates") or []:
                    self.sim.delete_claim(
                        p.namespace, f"{c['metadata']['name']}-{p.name}")
        for i in range(n):
            if i not in self.pods:
                self._create(i)
        return [p.name for p in going]


class Service:
    """A ClusterIP Service: each request to one ready pod of its
    selector."""

    def __init__(self, sim, release, name=None):
        self.sim = sim
        self.release = release
        self.obj = release.service(name, headless=False)
        self.rng = random.Random(7)

    def endpoints(self):
        sel = {"matchLabels": self.obj["spec"]["selector"]}
        return [p for p in self.sim.all_pods()
                if p.namespace == self.release.namespace and p.ready and
                match_labels(sel, p.labels)]

    def pick(self):
        eps = self.endpoints()
        if not eps:
            raise ConnectionRefusedError("no ready endpoints")
        return self.rng.choice(eps)

    def request(self, method, path, body=None, headers=None, timeout=10,
                pod=None):
        """One request on a new connection: to a random ready pod (as
        kube-proxy balances connections), or to `pod` (a client whose
        keep-alive connection stays where session() put it)."""
        port = self.obj["spec"]["ports"][0]["targetPort"]
        return (pod or self.pick()).request(method, path, body=body,
                                            headers=headers, timeout=timeout,
                                            port=port)

    def session(self):
        """The pod one client connection lands on."""
        return self.pick()


# ------------------------------------------------------------------ node
class Sim:
    """The node: its network namespace and bridge, the pods' DNS, the
    Secrets and ConfigMaps, every pod it runs. close() removes all of it
    (processes by their pids, namespaces, /etc/netns dirs, files)."""

    _seq = itertools.count()

    def __init__(self):
        self.tag = f"k{os.getpid()}x{next(self._seq)}"
        self.tmp = tempfile.mkdtemp(prefix="atoll-k8s-")
        os.chmod(self.tmp, 0o755)
        self.node_ns = None
        self.inside = None
        self.netns_made = set()
        self.etc_made = set()
        self.pids = set()
        self.statefulsets = []
        self.secrets = {}     # (ns, name) -> {key: bytes}
        self.configmaps = {}  # (ns, name) -> {key: bytes}
        self.releases = []
        self._ips = {}
        self._veth = {}
        self._veth_seq = itertools.count()
        self._hosts_lock = threading.Lock()
        self._live = []       # pods with a sandbox

    @staticmethod
    def sweep_stale():
        """Namespaces and /etc/netns dirs of earlier runs whose process is
        gone (killed before its cleanups ran): their names and files are
        removed; processes are never touched."""
        stale = re.compile(r"^k(\d+)x\d+-")
        names = _run([IP, "netns", "list"], check=False).stdout.split("\n")
        names = [n.split()[0] for n in names if n.strip()]
        try:
            names += os.listdir("/etc/netns")
        except OSError:
            pass
        for n in sorted(set(names)):
            m = stale.match(n)
            if not m or os.path.exists(f"/proc/{m.group(1)}"):
                continue
            subprocess.run([IP, "netns", "del", n], capture_output=True,
                           timeout=30)
            shutil.rmtree(os.path.join("/etc/netns", n), ignore_errors=True)

    def start(self):
        self.sweep_stale()
        self.node_ns = netns.Netns(addr="127.0.0.2")
        self.node_ns.name = f"{self.tag}-node"
        self.node_ns.create()
        _run([IP, "-n", self.node_ns.name, "link", "add", "br0", "type",
              "bridge"])
        _run([IP, "-n", self.node_ns.name, "addr", "add", f"{SUBNET}.1/24",
              "dev", "br0"])
        _run([IP, "-n", self.node_ns.name, "link", "set", "br0", "up"])
        # threads started from here on (kubelets, clients) inherit it
        self.inside = netns.Inside(self.node_ns).enter()
        return self

    def close(self):
        for s in self.statefulsets:
            for p in list(s.pods.values()):
                p.kill_now()
        for p in list(self._live):
            p.kill_now()
        if self.inside is not None:
            self.inside.leave()
            self.inside = None
        for n in sorted(self.netns_made):
            subprocess.run([IP, "netns", "del", n], capture_output=True,
                           timeout=30)
        self.netns_made.clear()
        if self.node_ns is not None:
            self.node_ns.close()
        for d in sorted(self.etc_made):
            shutil.rmtree(d, ignore_errors=True)
        self.etc_made.clear()
        if os.environ.get("ATOLL_K8SSIM_KEEP"):
            print(f"k8ssim: kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- objects ----
    def add_release(self, release):
        """Apply a render's Secrets and ConfigMaps (the StatefulSet is run
        by StatefulSet(sim, release))."""
        import base64
        self.releases = [r for r in self.releases
                         if (r.name, r.namespace) !=
                         (release.name, release.namespace)] + [release]
        for s in release.kind("Secret"):
            data = {k: base64.b64decode(v)
                    for k, v in (s.get("data") or {}).items()}
            data.update({k: v.encode()
                         for k, v in (s.get("stringData") or {}).items()})
            self.secrets[(release.namespace, s["metadata"]["name"])] = data
        for c in release.kind("ConfigMap"):
            data = {k: v.encode() for k, v in (c.get("data") or {}).items()}
            self.configmaps[(release.namespace, c["metadata"]["name"])] = data
        return release

    def add_secret(self, namespace, name, data):
        """A Secret made outside the chart (existingSecret)."""
        self.secrets[(namespace, name)] = {
            k: v.encode() if isinstance(v, str) else v
            for k, v in data.items()}

    def secret_data(self, ns, name):
        return self.secrets.get((ns, name))

    def configmap_data(self, ns, name):
        return self.configmaps.get((ns, name))

    def claim_dir(self, ns, claim, gid=0):
        """The claim's directory (made once, kept until delete_claim),
        group-owned by the pod's fsGroup like a volume kubelet prepared."""
        d = os.path.join(self.tmp, "pvc", f"{ns}.{claim}")
        if not os.path.isdir(d):
            os.makedirs(d)
            os.chown(d, 0, gid)
            os.chmod(d, 0o2775)
        return d

    def delete_claim(self, ns, claim):
        shutil.rmtree(os.path.join(self.tmp, "pvc", f"{ns}.{claim}"),
                      ignore_errors=True)

    def alloc_ip(self, ns, pod):
        key = (ns, pod)
        if key not in self._ips:
            n = len(self._ips) + 10
            if n > 250:
                raise RuntimeError("out of pod addresses")
            self._ips[key] = f"{SUBNET}.{n}"
        return self._ips[key]

    def veth_index(self, netns_name):
        """A fresh number per sandbox: a deleted namespace's veth may
        linger a moment in the kernel, so names are never reused."""
        self._veth[netns_name] = n = next(self._veth_seq)
        return n

    def all_pods(self):
        with self._hosts_lock:
            return list(self._live)

    # ---- DNS ----
    def _names(self, pod):
        rel = pod.release
        h, ns, dom = rel.headless, rel.namespace, rel.cluster_domain()
        names = [f"{pod.name}.{h}.{ns}.svc.{dom}", f"{pod.name}.{h}.{ns}.svc",
                 f"{pod.name}.{h}.{ns}"]
        short = [f"{pod.name}.{h}"]
        if rel.external_dns:
            for a in pod.container.get("args") or []:
                if a.startswith("--advertise="):
                    names.append(expand(a.split("=", 1)[1],
                                        {"POD_NAME": pod.name}))
        return names, short

    def _write_hosts(self):
        with self._hosts_lock:
            live = [p for p in self._live if not p.gone.is_set()]
            for p in live:
                lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost",
                         f"{p.ip}\t{p.name}"]
                for q in live:
                    names, short = self._names(q)
                    if q.namespace == p.namespace:
                        names += short
                    lines.append(f"{q.ip}\t" + " ".join(names))
                text = ("\n".join(lines) + "\n").encode()
                if len(text) > HOSTS_SIZE:
                    raise RuntimeError("hosts file too large")
                text += b"\n" * (HOSTS_SIZE - len(text))
                path = os.path.join("/etc/netns", p.netns, "hosts")
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.pwrite(fd, text, 0)
                finally:
                    os.close(fd)

    def pod_added(self, pod):
        with self._hosts_lock:
            self._live.append(pod)
        self._write_hosts()

    def pod_removed(self, pod):
        with self._hosts_lock:
            if pod in self._live:
                self._live.remove(pod)
        self._write_hosts()
        subprocess.run([IP, "netns", "del", pod.netns], capture_output=True,
                       timeout=30)
        self.netns_made.discard(pod.netns)
        etc = os.path.join("/etc/netns", pod.netns)
        shutil.rmtree(etc, ignore_errors=True)
        self.etc_made.discard(etc)
        # emptyDirs go with the pod; the log stays for the test's report
        shutil.rmtree(os.path.join(pod.dir, "emptydir"), ignore_errors=True)
        shutil.rmtree(os.path.join(pod.dir, "volumes"), ignore_errors=True)
        if os.path.exists(pod.log_path):
            keep = os.path.join(self.tmp, "logs")
            os.makedirs(keep, exist_ok=True)
            with open(pod.log_path, "rb") as f, open(
                    os.path.join(keep, f"{pod.namespace}.{pod.name}.log"),
                    "ab") as g:
                g.write(f.read())
            os.unlink(pod.log_path)

    def resolve_in(self, pod, name, running=False):
        """The address `name` resolves to inside the pod's namespace (as a
        check that the DNS really works), or None. running: in the mount
        namespace of the pod's running container (its /etc/hosts as bound
        when it started)."""
        if running:
            args = [netns.NSENTER, "-t", str(pod.proc.pid), "-m", "-n",
                    "getent", "hosts", name]
        else:
            args = [IP, "netns", "exec", pod.netns, "getent", "hosts", name]
        p = subprocess.run(args, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=10)
        return p.stdout.split()[0] if p.returncode == 0 and p.stdout else None
