"""Nemeses: faults generated up front from the seed (schedule.json) and
applied to the lab: partitions, lossy links, kill -9, SIGSTOP, clock bumps
and rate skew (libfaketime), membership replace/shrink/grow, full disk,
corrupted blob file, UDP-only (gossip) loss and asymmetric UDP partitions,
an autopilot scenario (a voter dead long enough to be replaced by the
standby), and elect-kill (the Figure 8 pattern: kill -9 each new leader
right after its election, repeatedly). Every fault is healed by heal_all().

iptables rules are bookkept: each fault removes with -D exactly the rules it
added (a heal never flushes the rules of another fault); heal_all() removes
what is left and then flushes INPUT and OUTPUT of every member."""
import http.client
import json
import os
import random
import signal
import time

FAMILIES = ["partition", "lossy", "kill", "pause", "clock", "member", "disk",
            "corrupt", "udp-loss", "udp-partition", "autopilot", "restart",
            "elect-kill"]
SHAPES = ["halves", "one", "leader", "bridge", "ring"]
# udp-partition shapes, all one-way (A drops UDP from B, B still hears A):
# pair (one directed pair), deaf (the target hears no one), mute (no one
# hears the target), halves (one half drops what the other half sends)
UDP_SHAPES = ["pair", "deaf", "mute", "halves"]
# families that want one extra node beyond target_voters (a standby):
# autopilot replaces a dead voter with it; under UDP faults it shows
# whether gossip-only trouble makes autopilot move healthy voters
STANDBY_FAMILIES = {"autopilot", "udp-loss", "udp-partition"}
# lab timings (lab.py passes them to the nodes): a voter gossip sees dead
# for AUTOPILOT_DEAD_AFTER is replaced; the nemesis waits at most
# AUTOPILOT_WAIT seconds after the kill for the members table to show it
AUTOPILOT_DEAD_AFTER = 3.0
AUTOPILOT_STABILIZATION = 1.0
AUTOPILOT_WAIT = 15.0


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
        if fam == "autopilot":
            # down longer than dead-after plus gossip's detection time
            dur = round(rnd.uniform(7.0, 9.0), 2)
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
        elif fam == "udp-loss":
            f["prob"] = rnd.choice([0.2, 0.3, 0.4])
            f["target"] = rnd.choice(["one", "leader", "all"])
        elif fam == "udp-partition":
            f["shape"] = rnd.choice(UDP_SHAPES)
            f["target"] = rnd.choice(["one", "leader"])
        elif fam == "autopilot":
            f["target"] = rnd.choice(["one", "leader"])
        elif fam == "restart":
            f["target"] = rnd.choice(["one", "leader"])
        elif fam == "elect-kill":
            dur = round(rnd.uniform(6.0, 9.0), 2)  # room for 2-3 rounds
            if t + dur > time_limit - 1:
                break
            f["dur"] = dur
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
        self.rules = []         # [fault id, node, chain, rule spec]
        self.fault_ids = 0
        self.autopilot = []     # outcome of every autopilot fault

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
        self.fault_ids += 1
        f["_id"] = self.fault_ids
        detail = getattr(self, "_" + fam.replace("-", "_"))(f)
        self.hist.nemesis(op="start", family=fam, detail=detail)
        return detail

    def heal(self, f):
        fam = f["family"]
        fn = getattr(self, "_heal_" + fam.replace("-", "_"), None)
        detail = fn(f) if fn else None
        self.hist.nemesis(op="heal", family=fam, detail=detail)
        return detail

    # ---- iptables bookkeeping ----
    def _rule(self, f, n, chain, spec):
        """Append one rule for fault f on node n and remember it."""
        n.iptables(["-A", chain] + spec)
        self.rules.append([f.get("_id") if f else None, n, chain, spec])

    def _unrule(self, f=None):
        """Delete (-D) exactly the rules fault f added (all when None)."""
        keep, gone = [], 0
        for r in self.rules:
            if f is None or r[0] == f.get("_id"):
                r[1].iptables(["-D", r[2]] + r[3])
                gone += 1
            else:
                keep.append(r)
        self.rules = keep
        return gone

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
                self._rule(f, n, "INPUT", ["-s", ips[other], "-j", "DROP"])
        return {"shape": f["shape"],
                "grudge": {k2: sorted(v) for k2, v in grudge.items()}}

    def _heal_partition(self, f):
        return {"rules_removed": self._unrule(f)}

    def _lossy(self, f):
        ts = self._targets(f)
        for n in ts:
            self._rule(f, n, "INPUT", ["-m", "statistic", "--mode", "random",
                                       "--probability", str(f["prob"]),
                                       "-j", "DROP"])
        return {"nodes": [n.name for n in ts], "prob": f["prob"]}

    _heal_lossy = _heal_partition

    # ---- gossip (UDP) faults: raft and HTTP are TCP and stay untouched ----
    def _udp_loss(self, f):
        """Random loss of UDP datagrams into and out of the target nodes."""
        if f.get("target") == "all":
            ts = self._perm(f, self.lab.members())
        else:
            ts = self._targets(f)
        stat = ["-p", "udp", "-m", "statistic", "--mode", "random",
                "--probability", str(f["prob"]), "-j", "DROP"]
        for n in ts:
            self._rule(f, n, "INPUT", stat)
            self._rule(f, n, "OUTPUT", stat)
        return {"nodes": [n.name for n in ts], "prob": f["prob"],
                "target": f.get("target")}

    _heal_udp_loss = _heal_partition

    def _udp_partition(self, f):
        """Asymmetric: a node drops UDP from some peers while they still
        hear it. drops[x] = the nodes x no longer hears."""
        ms = self._perm(f, self.lab.members())
        names = [n.name for n in ms]
        if len(ms) < 2:
            return {"skipped": "too few nodes"}
        t = self._targets(f)[0].name if f.get("target") == "leader" \
            else names[0]
        rest = [x for x in names if x != t]
        drops = {x: [] for x in names}
        shape = f["shape"]
        if shape == "pair":
            drops[t] = [rest[0]]
        elif shape == "deaf":
            drops[t] = list(rest)
        elif shape == "mute":
            for x in rest:
                drops[x] = [t]
        else:  # halves: side a (with the target) stops hearing side b
            k = len(names)
            order = [t] + rest
            a, b = order[:k // 2], order[k // 2:]
            for x in a:
                drops[x] = list(b)
        ips = {n.name: n.ip for n in ms}
        for n in ms:
            for other in drops[n.name]:
                self._rule(f, n, "INPUT", ["-p", "udp", "-s", ips[other],
                                           "-j", "DROP"])
        return {"shape": shape, "target": t,
                "deaf_to": {k2: v for k2, v in drops.items() if v}}

    _heal_udp_partition = _heal_partition

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

    def _restart(self, f):
        """Graceful stop (SIGTERM, as a rolling restart or an upgrade does)
        of one node or the leader; started again with its data at heal.
        The node must come back as the member it was."""
        ts = self._targets(f)
        for n in ts:
            n.stop()
        f["_done"] = [n.name for n in ts]
        return {"stopped": f["_done"]}

    _heal_restart = _heal_kill

    def _leader_node(self, exclude=(), timeout=10.0, poll=0.01):
        """The living node that the others name leader (not one of
        exclude), polled every poll seconds; None after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.ctx.stop.is_set():
            ln = self.lab.leader_name(timeout=0.5)
            for n in self.lab.members():
                if n.name == ln and n.name not in exclude and n.alive() \
                        and not n.paused:
                    return n
            time.sleep(poll)
        return None

    def _elect_kill(self, f):
        """The Raft paper's Figure 8 pattern, repeated until the fault's
        time is up (FINDINGS F6, raft/guard.h): kill -9 the leader; as soon
        as another node is named leader, kill -9 it too, right after its
        election (the window in which libraft 0.15 could count replicas of
        an old-term entry); restart the first victim, wait for a leader,
        restart the second; again. Two nodes are down together only
        between the second kill and the first restart (a 3-node cluster
        is then briefly without quorum). Every victim is restarted with
        its data before this returns; the heal restarts any left over."""
        deadline = time.monotonic() + f["dur"]
        rounds = []
        while time.monotonic() < deadline - 1.0 and \
                not self.ctx.stop.is_set():
            first = self._leader_node(timeout=5.0)
            if first is None:
                break
            first.kill()
            t_kill = time.monotonic()
            second = self._leader_node(exclude=(first.name,), timeout=10.0)
            if second is not None:
                elected = time.monotonic() - t_kill
                second.kill()
                rounds.append([first.name, second.name, round(elected, 3)])
            first.start()
            self._leader_node(timeout=10.0)
            if second is not None:
                second.start()
            if second is None:
                break
        f["_done"] = rounds
        # [first victim, second victim (the new leader), seconds from the
        # first kill to the second's election being seen]
        return {"rounds": rounds}

    _heal_elect_kill = _heal_kill

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
            self.rules = [r for r in self.rules if r[1] is not victim]
            victim.iptables(["-F", "INPUT"])
            victim.iptables(["-F", "OUTPUT"])
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
        self.rules = [r for r in self.rules if r[1].slot != slot]
        new.iptables(["-F", "INPUT"])
        new.iptables(["-F", "OUTPUT"])
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

    # ---- autopilot: a voter dead longer than --autopilot-dead-after ----
    def _roles(self, exclude=None):
        """{name: role} and the leader from a live member's table, or
        (None, None)."""
        for n in self.lab.members():
            if n is exclude or not n.alive() or n.paused:
                continue
            try:
                st, _, b = n.req("GET", "/_atoll/members", timeout=2)
                if st != 200:
                    continue
                m = json.loads(b)
            except (OSError, ValueError, http.client.HTTPException):
                continue
            if not m.get("leader"):
                continue
            return {e.get("name"): e.get("role")
                    for e in m.get("nodes", [])}, m.get("leader")
        return None, None

    def _autopilot(self, f):
        """kill -9 a voter (one, or the leader) while a standby exists and
        keep it down; the heal waits up to AUTOPILOT_WAIT s after the kill
        for autopilot to promote a standby and demote the victim, then
        restarts the victim. Without autopilot on the build the scenario
        records a skip (a note, never a violation)."""
        roles, _ = self._roles()
        if roles is None:
            return {"skipped": "no members table with a leader"}
        standbys = sorted(k for k, v in roles.items() if v == "standby")
        if not standbys:
            return {"skipped": "no standby in the cluster"}
        voters = [n for n in self._perm(f, self.lab.members())
                  if roles.get(n.name) == "voter" and n.alive()]
        if len(voters) < 3:
            return {"skipped": f"only {len(voters)} live voters"}
        victim = voters[0]
        if f.get("target") == "leader":
            ln = self.lab.leader_name()
            victim = next((n for n in voters if n.name == ln), victim)
        victim.kill()
        f["_victim"] = victim.name
        f["_standbys"] = standbys
        f["_killed_at"] = time.monotonic()
        return {"killed": victim.name, "standbys": standbys,
                "voters": [n.name for n in voters]}

    def _heal_autopilot(self, f):
        victim = self._node(f.get("_victim") or "")
        if victim is None:
            return None
        deadline = f["_killed_at"] + AUTOPILOT_WAIT
        out = {"victim": victim.name}
        while True:
            roles, leader = self._roles(exclude=victim)
            promoted = [s for s in f["_standbys"]
                        if roles and roles.get(s) == "voter"]
            if roles and promoted and roles.get(victim.name) != "voter":
                out.update(replaced_by=promoted, victim_role=roles.get(
                    victim.name), after_s=round(time.monotonic() -
                                                f["_killed_at"], 1))
                break
            if time.monotonic() > deadline:
                out["skipped"] = (
                    f"autopilot did not replace {victim.name} within "
                    f"{AUTOPILOT_WAIT:g}s of its kill (roles {roles}); "
                    "this build has no autopilot, or it is off")
                print(f"  autopilot: SKIP: {out['skipped']}", flush=True)
                break
            time.sleep(0.3)
        if not victim.removed and not victim.alive():
            victim.start()
        if "skipped" not in out:
            # the victim comes back as a non-voter; it must catch up
            try:
                self.lab.wait_member(victim, timeout=20)
                roles, _ = self._roles()
                out["victim_role_after_restart"] = (roles or {}).get(
                    victim.name)
            except RuntimeError as e:
                out["rejoin"] = str(e)
        self.autopilot.append(out)
        return out

    def _node(self, name):
        return next((n for n in self.lab.nodes if n.name == name), None)

    def heal_all(self):
        self._heal_pause(None)
        self._unrule(None)
        for n in self.lab.members():
            n.iptables(["-F", "INPUT"])
            n.iptables(["-F", "OUTPUT"])
        self._heal_clock(None)
        self._heal_disk(None)
        for n in self.lab.members():
            if not n.alive():
                n.start()
        self.hist.nemesis(op="heal-all")
