"""Client workloads: tags as registers, acknowledged pushes (set), blob fetch
from non-holders, local-mode sessions. Every call has a deadline; every
operation is recorded as an invoke and a completion (ok, fail or info)."""
import hashlib
import http.client
import json
import random
import threading
import time

REPO_REG = "jt/reg"
REPO_SET = "jt/set"
REPO_FETCH = "jt/fetch"
REPO_SESS = "jt/sess"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
OP_TIMEOUT = 5.0
CONFIG = b'{"architecture":"amd64","os":"linux"}'


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class History:
    def __init__(self, t0):
        self.t0 = t0
        self.lock = threading.Lock()
        self.events = []
        self.ops = []

    def now(self):
        return time.monotonic_ns() - self.t0

    def invoke(self, wl, f, process, node, **kw):
        op = {"wl": wl, "f": f, "process": process, "node": node,
              "start": self.now(), "end": None, "type": None, **kw}
        with self.lock:
            self.events.append({"type": "invoke", "time": op["start"],
                                "wl": wl, "f": f, "process": process,
                                "node": node, **kw})
        return op

    def complete(self, op, typ, **kw):
        op["end"] = self.now()
        op["type"] = typ
        op.update(kw)
        with self.lock:
            ev = {k: v for k, v in op.items() if k not in ("start", "end")}
            ev["time"] = op["end"]
            self.events.append(ev)
            self.ops.append(op)

    def nemesis(self, **kw):
        with self.lock:
            self.events.append({"type": "nemesis", "time": self.now(), **kw})


def classify_write(status, headers, body):
    """ok / fail / info for a write's HTTP answer."""
    if 200 <= status < 300:
        return "ok"
    if status == 503:
        if headers.get("x-atoll-outcome", "") == "unknown" or \
                b"OUTCOME_UNKNOWN" in body:
            return "info"
        return "fail"
    if 400 <= status < 500:
        return "fail"
    return "info"  # 5xx other than 503: the contract does not say: unknown


def write_call(node, method, path, body, headers):
    """Returns (type, status, headers, body). Connection refused before
    sending = fail; a timeout or a cut connection after sending = info."""
    try:
        st, h, b = node.req(method, path, body, headers, timeout=OP_TIMEOUT)
    except (OSError, http.client.HTTPException) as e:
        return ("info" if getattr(e, "jt_sent", True) else "fail"), None, \
            {}, repr(e).encode()
    return classify_write(st, h, b), st, h, b


def push_blob(node, repo, data):
    """POST + PUT ?digest=. Returns (type, digest)."""
    d = sha(data)
    t, st, h, b = write_call(node, "POST", f"/v2/{repo}/blobs/uploads/", b"",
                             {"Content-Length": "0"})
    if t != "ok":
        return t, d
    loc = h.get("location", "")
    if loc.startswith("http"):
        loc = "/" + loc.split("/", 3)[3]
    sep = "&" if "?" in loc else "?"
    t, st, h, b = write_call(node, "PUT", f"{loc}{sep}digest={d}", data,
                             {"Content-Type": "application/octet-stream"})
    return t, d


def manifest(config_digest, layers, value):
    m = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
         "config": {"mediaType": MT_CONFIG, "digest": config_digest,
                    "size": len(CONFIG)},
         "layers": [{"mediaType": MT_LAYER, "digest": d, "size": s}
                    for d, s in layers],
         "annotations": {"jt.value": value}}
    return json.dumps(m, sort_keys=True).encode()


def manifest_value(body):
    try:
        return json.loads(body)["annotations"]["jt.value"]
    except (ValueError, KeyError, TypeError):
        return "<unparsable:" + sha(body) + ">"


class Ctx:
    """Shared state of one run's clients."""

    def __init__(self, lab, hist, seed, stop, opts):
        self.lab = lab
        self.hist = hist
        self.seed = seed
        self.stop = stop
        self.opts = opts
        self.config_digest = sha(CONFIG)
        self.lock = threading.Lock()
        self.counter = 0
        self.fetch_blobs = []     # (digest, size, holder name, data)
        self.corrupted = set()    # digests corrupted on a holder
        self.set_pushes = []
        self.removed = set()      # names removed from the cluster
        self.lost_with_node = set()

    def uniq(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def live_nodes(self, linearizable=False):
        ns = [n for n in self.lab.members() if n.proc is not None]
        if linearizable:
            ns = [n for n in ns if not n.local]
        return ns

    def pace(self, rnd):
        self.stop.wait(rnd.uniform(0.02, 0.12) * self.opts.get("pace", 1.0))


def setup(ctx):
    """Push the shared config blob (retry until a leader answers)."""
    deadline = time.time() + 30
    for repo in (REPO_REG, REPO_SET, REPO_SESS):
        while True:
            n = random.choice(ctx.live_nodes(True))
            t, _ = push_blob(n, repo, CONFIG)
            if t == "ok":
                break
            if time.time() > deadline:
                raise RuntimeError("cannot push the config blob")
            time.sleep(0.3)


def register_worker(ctx, idx, nthreads):
    rnd = random.Random(f"{ctx.seed}/reg/{idx}")
    keys = [f"r{i}" for i in range(ctx.opts.get("keys", 3))]
    proc = idx
    while not ctx.stop.is_set():
        nodes = ctx.live_nodes(True)
        if not nodes:
            ctx.pace(rnd)
            continue
        node = rnd.choice(nodes)
        key = rnd.choice(keys)
        if rnd.random() < 0.4:
            value = f"{key}-{ctx.uniq()}"
            body = manifest(ctx.config_digest, [], value)
            op = ctx.hist.invoke("register", "write", proc, node.name,
                                 key=key, value=value)
            t, st, h, b = write_call(node, "PUT",
                                     f"/v2/{REPO_REG}/manifests/{key}", body,
                                     {"Content-Type": MT_MANIFEST})
            ctx.hist.complete(op, t, status=st,
                              index=_int(h.get("x-atoll-index")))
            if t == "info":
                proc += nthreads
        else:
            op = ctx.hist.invoke("register", "read", proc, node.name, key=key)
            try:
                st, h, b = node.req("GET", f"/v2/{REPO_REG}/manifests/{key}",
                                    headers={"Accept": MT_MANIFEST},
                                    timeout=OP_TIMEOUT)
            except (OSError, http.client.HTTPException) as e:
                ctx.hist.complete(op, "fail", error=repr(e)[:120])
            else:
                applied = _int(h.get("x-atoll-applied-index"))
                if st == 200:
                    ctx.hist.complete(op, "ok", value=manifest_value(b),
                                      status=st, applied=applied)
                elif st == 404:
                    ctx.hist.complete(op, "ok", value=None, status=st,
                                      applied=applied)
                else:
                    ctx.hist.complete(op, "fail", status=st)
        ctx.pace(rnd)


def set_worker(ctx, idx):
    rnd = random.Random(f"{ctx.seed}/set/{idx}")
    maxsize = ctx.opts.get("max_blob", 64 * 1024)
    while not ctx.stop.is_set():
        nodes = ctx.live_nodes()
        if not nodes:
            ctx.pace(rnd)
            continue
        node = rnd.choice(nodes)
        u = ctx.uniq()
        tag = f"s{u}"
        blobs = []
        ok = True
        for _ in range(rnd.randint(1, 2)):
            data = rnd.randbytes(rnd.randint(1024, maxsize))
            t, d = push_blob(node, REPO_SET, data)
            if t != "ok":
                ok = False
                break
            blobs.append([d, len(data)])
        if not ok:
            ctx.pace(rnd)
            continue
        body = manifest(ctx.config_digest, blobs, tag)
        op = ctx.hist.invoke("set", "push", idx, node.name, tag=tag,
                             digest=sha(body), blobs=blobs)
        t, st, h, b = write_call(node, "PUT", f"/v2/{REPO_SET}/manifests/{tag}",
                                 body, {"Content-Type": MT_MANIFEST})
        ctx.hist.complete(op, t, status=st)
        ctx.pace(rnd)


def fetch_worker(ctx, idx):
    rnd = random.Random(f"{ctx.seed}/fetch/{idx}")
    maxsize = ctx.opts.get("max_fetch_blob", 512 * 1024)
    while not ctx.stop.is_set():
        nodes = ctx.live_nodes()
        if len(nodes) < 2:
            ctx.pace(rnd)
            continue
        if not ctx.fetch_blobs or rnd.random() < 0.3:
            holder = rnd.choice(nodes)
            data = rnd.randbytes(rnd.randint(1024, maxsize))
            t, d = push_blob(holder, REPO_FETCH, data)
            if t == "ok":
                with ctx.lock:
                    ctx.fetch_blobs.append((d, len(data), holder.name))
            ctx.pace(rnd)
            continue
        d, size, holder = rnd.choice(ctx.fetch_blobs)
        others = [n for n in nodes if n.name != holder]
        if not others:
            continue
        fetch_once(ctx, rnd.choice(others), d, size, holder, idx)
        ctx.pace(rnd)


def fetch_once(ctx, node, d, size, holder, proc, **kw):
    """One recorded blob GET; a 200 is checked for sha256 and length."""
    op = ctx.hist.invoke("fetch", "fetch", proc, node.name, digest=d,
                         holder=holder, **kw)
    try:
        st, h, b = node.req("GET", f"/v2/{REPO_FETCH}/blobs/{d}",
                            timeout=OP_TIMEOUT * 2)
    except (OSError, http.client.HTTPException) as e:
        ctx.hist.complete(op, "fail", status=None, error=repr(e)[:120])
        return None
    if st == 200:
        cl = h.get("content-length")
        ctx.hist.complete(op, "ok", status=st, sha_ok=(sha(b) == d),
                          len_ok=(cl is None or int(cl) == len(b))
                          and len(b) == size)
    else:
        ctx.hist.complete(op, "fail", status=st)
    return st


def session_worker(ctx, idx, node_name):
    """A session pinned to a --read-consistency local node."""
    rnd = random.Random(f"{ctx.seed}/sess/{idx}")
    tag = f"sess{idx}"
    seq = 0
    token = 0
    sess = f"sess{idx}"
    while not ctx.stop.is_set():
        node = next((n for n in ctx.lab.nodes if n.name == node_name), None)
        if node is None or node.removed:
            return
        inc = node.proc.pid if node.proc else None
        if rnd.random() < 0.3:
            seq += 1
            body = manifest(ctx.config_digest, [], f"{seq}")
            op = ctx.hist.invoke("session", "swrite", idx, node.name,
                                 session=sess, seq=seq)
            t, st, h, b = write_call(node, "PUT",
                                     f"/v2/{REPO_SESS}/manifests/{tag}",
                                     body, {"Content-Type": MT_MANIFEST})
            i = _int(h.get("x-atoll-index"))
            if t == "ok" and i:
                token = max(token, i)
            ctx.hist.complete(op, t, status=st, index=i, incarnation=inc)
        else:
            op = ctx.hist.invoke("session", "sread", idx, node.name,
                                 session=sess, min_index=token,
                                 incarnation=inc)
            hdr = {"Accept": MT_MANIFEST}
            if token:
                hdr["X-Atoll-Min-Index"] = str(token)
            try:
                st, h, b = node.req("GET", f"/v2/{REPO_SESS}/manifests/{tag}",
                                    headers=hdr, timeout=OP_TIMEOUT)
            except (OSError, http.client.HTTPException) as e:
                ctx.hist.complete(op, "fail", error=repr(e)[:120])
            else:
                a = _int(h.get("x-atoll-applied-index"))
                if st in (200, 404):
                    v = None
                    if st == 200:
                        try:
                            v = int(manifest_value(b))
                        except ValueError:
                            v = -1
                    ctx.hist.complete(op, "ok", seq=v, status=st, applied=a)
                    if a:
                        token = max(token, a)
                else:
                    ctx.hist.complete(op, "fail", status=st, applied=a)
        ctx.pace(rnd)


def _int(s):
    try:
        return int(s)
    except (TypeError, ValueError):
        return None


def final_reads(ctx, nodes, budget=150.0):
    """After heal: per node, the set repo's tags, every pushed tag, its
    manifest bytes and every blob; fetch-workload blobs too. Raises
    TimeoutError past the budget (seconds)."""
    deadline = time.monotonic() + budget
    observed = {}
    pushes = [o for o in ctx.hist.ops if o["f"] == "push"]
    fetch_bad = []
    for n in nodes:
        obs = {"tags": None, "tag_digest": {}, "manifest_ok": {},
               "blob_ok": {}, "tag_status": {}, "unreadable": {}}
        try:
            st, h, b = n.req("GET", f"/v2/{REPO_SET}/tags/list?n=100000",
                             timeout=15)
            if st == 200:
                obs["tags"] = json.loads(b).get("tags") or []
            elif st == 404:
                obs["tags"] = []
        except (OSError, http.client.HTTPException, ValueError):
            pass
        for p in pushes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"final reads took over {budget}s")
            t = p["tag"]
            st = None
            for attempt in range(3):
                if attempt:
                    time.sleep(0.5)
                try:
                    st, h, b = n.req("GET", f"/v2/{REPO_SET}/manifests/{t}",
                                     headers={"Accept": MT_MANIFEST},
                                     timeout=10)
                except (OSError, http.client.HTTPException) as e:
                    st = repr(e)[:60]
                    continue
                if st in (200, 404):
                    break
            obs["tag_status"][str(st)] = obs["tag_status"].get(str(st), 0) + 1
            if st != 200:
                if st != 404:
                    obs["unreadable"][t] = st
                continue
            obs["tag_digest"][t] = sha(b)
            obs["manifest_ok"][t] = (sha(b) == p["digest"])
            if p["type"] == "fail":
                continue
            for d, size in p["blobs"]:
                if d in obs["blob_ok"]:
                    continue
                obs["blob_ok"][d] = _get_blob(
                    n, REPO_SET, d, size,
                    tries=1 if p["node"] in ctx.removed else 3)
        observed[n.name] = obs
        for d, size, holder in ctx.fetch_blobs:
            if d in ctx.corrupted:
                continue
            gone = holder in ctx.removed
            r = _get_blob(n, REPO_FETCH, d, size, tries=1 if gone else 3)
            if r != "ok" and gone:
                ctx.lost_with_node.add(d)
            elif r != "ok":
                fetch_bad.append({"kind": "fetch-final", "node": n.name,
                                  "detail": f"acked blob {d} (holder "
                                  f"{holder}) after heal: {r}", "ops": []})
    return observed, fetch_bad


def lost_ok(ctx):
    """Set blobs uploaded to a node that was later removed."""
    out = set()
    for o in ctx.hist.ops:
        if o["f"] == "push" and o["node"] in ctx.removed:
            out.update(d for d, _ in o["blobs"])
    return out


def _get_blob(n, repo, d, size, tries=3):
    res = "not tried"
    for attempt in range(tries):
        if attempt:
            time.sleep(0.5)
        try:
            st, h, b = n.req("GET", f"/v2/{repo}/blobs/{d}", timeout=20)
        except (OSError, http.client.HTTPException) as e:
            res = f"error {e!r}"[:80]
            continue
        if st != 200:
            res = f"status {st}"
            if st == 503:
                continue
            return res
        if sha(b) != d or len(b) != size:
            return f"wrong bytes (len {len(b)})"
        return "ok"
    return res
