"""Nemeses: faults generated up front from the seed (schedule.json) and
applied to the lab: partitions, lossy links, kill -9, SIGSTOP, clock bumps
and rate skew (libfaketime), membership replace/shrink/grow, full disk,
corrupted blob file. Every fault is healed by heal_all()."""
import json
import os
import random
import signal
import time

FAMILIES = ["partition", "lossy", "kill", "pause", "clock", "member", "disk",
            "corrupt"]
SHAPES = ["halves", "one", "leader", "bridge", "ring"]


def generate(seed, families, time_limit, nodes):
    """The whole schedule: [{"at": s, "family", ...params, "dur": s}]."""
    rnd = random.Random(f"{seed}/nemesis")
    sched = []
    t = 3.0
    i = 0
    order = list(families)
    while order:
        fam = order[i % len(order)] if i < len(order) else rnd.choice(order)
        dur = round(rnd.uniform(3.0, 7.0), 2)
        if t + dur > time_limit - 1:
            break
        f = {"at": round(t, 2), "dur": dur, "family": fam,
             "perm": rnd.sample(range(16), 16)}
        if fam == "partition":
            f["shape"] = rnd.choice(SHAPES)
        elif fam == "lossy":
            f["prob"] = rnd.choice([0.2, 0.4, 0.6])
            f["target"] = rnd.choice(["one", "leader"])
        elif fam in ("kill", "pause"):
            f["target"] = rnd.choice(["one", "leader", "minority"])
        elif fam == "clock":
            f["kind"] = rnd.choice(["bump", "skew"])
            f["bump"] = rnd.randint(1, 20)
            f["rate"] = rnd.choice([0.5, 2.0, 3.0])
            f["target"] = rnd.choice(["one", "leader"])
        elif fam == "member":
            f["kind"] = rnd.choice(["replace", "shrink-grow"]) if nodes >= 5 \
                else "replace"
            f["target"] = rnd.choice(["one", "leader"])
        elif fam == "corrupt":
            f["pick"] = rnd.randint(0, 1 << 30)
        sched.append(f)
        t += dur + round(rnd.uniform(2.0, 4.0), 2)
        i += 1
    return sched


class Nemesis:
    def __init__(self, lab, ctx, hist, nodes):
        self.lab = lab
        self.ctx = ctx
        self.hist = hist
        self.nodes = nodes
        self.clock_off = {}     # name -> seconds of forward offset
        self.clock_rate = {}    # name -> (rate, since)
        self.filled = []
        self.faults = 0

    # ---- targets ----
    def _perm(self, f, nodes):
        p = f["perm"]
        return sorted(nodes, key=lambda n: p[(n.slot - 1) % 16])

    def _targets(self, f, how=None):
        how = how or f.get("target", "one")
        ms = self._perm(f, [n for n in self.lab.members()])
        if not ms:
            return []
        if how == "leader":
            ln = self.lab.leader_name()
            for n in ms:
                if n.name == ln:
                    return [n]
            return ms[:1]
        if how == "minority":
            return ms[:(len(ms) - 1) // 2]
        return ms[:1]

    # ---- apply ----
    def apply(self, f):
        fam = f["family"]
        self.faults += 1
        detail = getattr(self, "_" + fam)(f)
        self.hist.nemesis(op="start", family=fam, detail=detail)
        return detail

    def heal(self, f):
        fam = f["family"]
        fn = getattr(self, "_heal_" + fam, None)
        detail = fn(f) if fn else None
        self.hist.nemesis(op="heal", family=fam, detail=detail)

    def _partition(self, f):
        ms = self._perm(f, self.lab.members())
        names = [n.name for n in ms]
        k = len(ms)
        grudge = {n.name: set() for n in ms}
        shape = f["shape"]
        if shape == "ring" and k < 5:
            shape = "halves"  # a majorities ring needs 5 nodes
        if shape == "leader":
            ln = self.lab.leader_name() or names[0]
            shape_sets = [[ln], [x for x in names if x != ln]]
        elif shape == "one":
            shape_sets = [names[:1], names[1:]]
        elif shape == "halves":
            shape_sets = [names[:k // 2], names[k // 2:]]
        else:
            shape_sets = None
        if shape_sets:
            a, b = shape_sets
            for x in a:
                grudge[x] |= set(b)
            for x in b:
                grudge[x] |= set(a)
        elif shape == "bridge":
            # two halves, the middle node sees both
            mid = names[k // 2]
            a, b = names[:k // 2], names[k // 2 + 1:]
            for x in a:
                grudge[x] |= set(b)
            for x in b:
                grudge[x] |= set(a)
            del mid
        else:  # ring: each node sees its ring neighbours within a majority
            maj = k // 2 + 1
            for i, x in enumerate(names):
                sees = {names[(i + d) % k] for d in range(-(maj // 2),
                                                          maj - maj // 2)}
                grudge[x] = set(names) - sees
        ips = {n.name: n.ip for n in ms}
        for n in ms:
            for other in sorted(grudge[n.name]):
                n.iptables(["-A", "INPUT", "-s", ips[other], "-j", "DROP"])
        return {"shape": f["shape"],
                "grudge": {k2: sorted(v) for k2, v in grudge.items()}}

    def _heal_partition(self, f):
        for n in self.lab.members():
            n.iptables(["-F", "INPUT"])

    def _lossy(self, f):
        ts = self._targets(f)
        for n in ts:
            n.iptables(["-A", "INPUT", "-m", "statistic", "--mode", "random",
                        "--probability", str(f["prob"]), "-j", "DROP"])
        return {"nodes": [n.name for n in ts], "prob": f["prob"]}

    _heal_lossy = _heal_partition

    def _kill(self, f):
        ts = self._targets(f)
        for n in ts:
            n.kill()
        f["_done"] = [n.name for n in ts]
        return {"nodes": f["_done"]}

    def _heal_kill(self, f):
        for n in self.lab.members():
            if not n.alive():
                n.start()
        return {"restarted": f.get("_done")}

    def _pause(self, f):
        ts = self._targets(f)
        for n in ts:
            n.signal(signal.SIGSTOP)
            n.paused = True
        f["_done"] = [n.name for n in ts]
        return {"nodes": f["_done"]}

    def _heal_pause(self, f):
        for n in self.lab.nodes:
            if n.paused:
                n.signal(signal.SIGCONT)
                n.paused = False

    def _clock(self, f):
        ts = self._targets(f)
        out = []
        for n in ts:
            off = self.clock_off.get(n.name, 0.0)
            if f["kind"] == "bump":
                off += f["bump"]
                self.clock_off[n.name] = off
                n.set_clock(f"+{off:.3f} x1")
                out.append([n.name, f"+{f['bump']}s"])
            else:
                n.set_clock(f"+{off:.3f} x{f['rate']}")
                self.clock_rate[n.name] = (f["rate"], time.monotonic(),
                                           n.start_time)
                out.append([n.name, f"x{f['rate']}"])
        return {"clock": out}

    def _heal_clock(self, f):
        # back to rate 1 without ever stepping a clock backwards: the rate
        # may count from the process start, so add all it may have gained
        for name, (rate, since, started) in list(self.clock_rate.items()):
            n = self._node(name)
            off = self.clock_off.get(name, 0.0)
            if rate > 1 and n is not None:
                off += (rate - 1) * (time.monotonic() - min(since, started)) + 1
            self.clock_off[name] = off
            if n is not None:
                n.set_clock(f"+{off:.3f} x1")
        self.clock_rate = {}

    def _member(self, f):
        ts = self._targets(f)
        if not ts:
            return {"skipped": "no member"}
        victim = ts[0]
        if victim.local or victim.disk_img:
            # keep the session node and the small-disk node
            others = [n for n in self._perm(f, self.lab.members())
                      if not n.local and not n.disk_img]
            victim = others[0]
        out = {"removed": victim.name}
        ok = self.remove(victim, out)
        out["remove_ok"] = ok
        if not ok:
            return out
        if f["kind"] == "shrink-grow":
            self.ctx.stop.wait(min(2.0, f["dur"] / 2))
        new = self.grow(self._free_slot(victim.slot))
        out["added"] = new.name if new else None
        return out

    def remove(self, victim, out=None):
        """POST /_atoll/members/remove through a live member (retried), then
        trust only the members table of the others: the answer may be lost
        or wrong when the victim is the leader."""
        body = json.dumps({"name": victim.name}).encode()
        answers = []
        deadline = time.time() + 15
        gone = False
        while time.time() < deadline and not gone:
            for n in self.lab.members():
                if n is victim or not n.alive() or n.paused:
                    continue
                try:
                    st, _, b = n.peer_req("POST", "/_atoll/members/remove",
                                          body, timeout=5)
                    answers.append([n.name, st, b[:160].decode("utf-8",
                                                               "replace")])
                except OSError as e:
                    answers.append([n.name, None, repr(e)[:80]])
                    continue
                break
            time.sleep(0.5)
            gone = self._gone(victim)
        if out is not None:
            out["remove_answers"] = answers[:6]
        if gone:
            victim.kill()
            victim.removed = True
            self.ctx.removed.add(victim.name)
            victim.iptables(["-F", "INPUT"])
        return gone

    def _gone(self, victim):
        """True when a live non-victim member lists a leader and no victim."""
        for n in self.lab.members():
            if n is victim or not n.alive() or n.paused:
                continue
            try:
                st, _, b = n.req("GET", "/_atoll/members", timeout=2)
                if st != 200:
                    continue
                m = json.loads(b)
            except (OSError, ValueError):
                continue
            if not m.get("leader") or m.get("leader") == victim.name:
                continue
            return all(e.get("name") != victim.name
                       for e in m.get("nodes", []))
        return False

    def _free_slot(self, fallback):
        """A namespace slot no node has used yet, else the victim's."""
        used = {n.slot for n in self.lab.nodes}
        for s in range(1, self.lab.slots + 1):
            if s not in used:
                return s
        return fallback

    def grow(self, slot):
        seeds = [n for n in self.lab.members() if n.alive() and not n.paused]
        if not seeds:
            return None
        new = self.lab.new_node(slot, join=f"{seeds[0].ip}:5001")
        new.iptables(["-F", "INPUT"])
        new.start()
        try:
            self.lab.wait_member(new, timeout=30)
        except RuntimeError as e:
            self.hist.nemesis(op="note", family="member", detail=str(e))
        return new

    def _disk(self, f):
        n = next((x for x in self.lab.members() if x.disk_img and x.alive()),
                 None)
        if n is None:
            return {"skipped": "no disk node"}
        path = f"/proc/{n.proc.pid}/root{n.data}/jt-fill"
        try:
            st = os.statvfs(os.path.dirname(path))
            free = st.f_bavail * st.f_frsize
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            try:
                os.posix_fallocate(fd, 0, max(free - 4096, 4096))
            except OSError:
                pass
            os.close(fd)
        except OSError as e:
            return {"node": n.name, "error": repr(e)}
        self.filled.append((n.name, path))
        return {"node": n.name, "filled": free}

    def _heal_disk(self, f):
        for name, path in self.filled:
            n = self._node(name)
            if n is not None and n.alive():
                path = f"/proc/{n.proc.pid}/root{n.data}/jt-fill"
                try:
                    os.unlink(path)
                except OSError:
                    pass
            elif n is not None and not n.removed:
                n.start()  # mounts the image: remove the fill file then
                time.sleep(0.3)
                if n.alive():
                    try:
                        os.unlink(f"/proc/{n.proc.pid}/root{n.data}/jt-fill")
                    except OSError:
                        pass
        self.filled = []
        for n in self.lab.members():
            if not n.alive():
                n.start()

    def _corrupt(self, f):
        """Push a fresh blob to one node, flip a byte of its stored file,
        then fetch it from the holder and from every other node: no 200 may
        carry wrong bytes (the fetch workload keeps pulling it too)."""
        import workloads as wl
        rnd = random.Random(f"{f['pick']}/corrupt")
        ms = [n for n in self._perm(f, self.lab.members())
              if n.alive() and not n.paused and not n.disk_img]
        if len(ms) < 2:
            return {"skipped": "too few nodes"}
        holder = ms[0]
        data = rnd.randbytes(rnd.randint(4096, 256 * 1024))
        t, d = wl.push_blob(holder, wl.REPO_FETCH, data)
        if t != "ok":
            return {"skipped": f"push {t}"}
        hexd = d.split(":", 1)[1]
        path = os.path.join(holder.data, "blobs", "sha256", hexd[:2], hexd)
        try:
            with open(path, "r+b") as fh:
                pos = f["pick"] % len(data)
                fh.seek(pos)
                c = fh.read(1)
                fh.seek(pos)
                fh.write(bytes([(c[0] if c else 0) ^ 0x5A]))
        except OSError as e:
            return {"node": holder.name, "error": repr(e)}
        self.ctx.corrupted.add(d)
        with self.ctx.lock:
            self.ctx.fetch_blobs.append((d, len(data), holder.name))
        got = {}
        for n in ms:
            got[n.name] = wl.fetch_once(self.ctx, n, d, len(data),
                                        holder.name, 500, corrupt=True)
        return {"node": holder.name, "blob": d, "fetches": got}

    def _node(self, name):
        return next((n for n in self.lab.nodes if n.name == name), None)

    def heal_all(self):
        self._heal_pause(None)
        self._heal_partition(None)
        self._heal_clock(None)
        self._heal_disk(None)
        for n in self.lab.members():
            if not n.alive():
                n.start()
        self.hist.nemesis(op="heal-all")
