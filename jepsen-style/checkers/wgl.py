"""General linearizability checker for a register (read, write, delete =
write of None) after Wing & Gong and Lowe, as in Porcupine: iterative search
with a cache of (linearized set, state). Exponential in the concurrency on
one key, so it is bounded by a deadline and a cache cap and then answers
"unknown", never a silent ok.

Operations: dicts with f ("write", "delete", "read"), value, start, end,
type ("ok", "fail", "info"). Initial state None.
"""
import time

INF = float("inf")


def _prepare(ops):
    out = []
    for op in ops:
        if op["type"] == "fail":
            continue
        if op["type"] == "info" and op["f"] == "read":
            continue
        o = dict(op)
        if op["type"] == "info":
            o["end"] = INF
        out.append(o)
    return out


def check_key(ops, deadline_s=5.0, max_cache=2_000_000):
    """Returns ("ok"|"illegal"|"unknown", detail dict)."""
    ops = _prepare(ops)
    n = len(ops)
    if n == 0:
        return "ok", {}
    # entries: (time, kind, op index); kind 0 = call, 1 = return
    ev = []
    for i, op in enumerate(ops):
        ev.append((op["start"], 0, i))
        ev.append((op["end"], 1, i))
    ev.sort(key=lambda e: (e[0], e[1]))
    m = len(ev)
    # doubly linked list over entries, index m = head sentinel
    nxt = list(range(1, m + 1)) + [0]
    prv = [m] + list(range(0, m - 1)) + [None]
    nxt[m - 1] = None
    nxt[m] = 0
    kind = [e[1] for e in ev]
    opof = [e[2] for e in ev]
    ret_entry = [0] * n
    for idx, e in enumerate(ev):
        if e[1] == 1:
            ret_entry[e[2]] = idx
    head = m

    def lift(c):
        r = ret_entry[opof[c]]
        for x in (c, r):
            p, q = prv[x], nxt[x]
            nxt[p] = q
            if q is not None:
                prv[q] = p

    def unlift(c):
        r = ret_entry[opof[c]]
        for x in (r, c):
            p, q = prv[x], nxt[x]
            nxt[p] = x
            if q is not None:
                prv[q] = x

    state = None
    lin = 0
    stack = []
    cache = set()
    entry = nxt[head]
    t0 = time.monotonic()
    steps = 0
    best = 0
    while nxt[head] is not None:
        steps += 1
        if steps & 0xFFF == 0 and time.monotonic() - t0 > deadline_s:
            return "unknown", {"reason": "deadline", "ops": n}
        if len(cache) > max_cache:
            return "unknown", {"reason": "cache cap", "ops": n}
        if kind[entry] == 0:
            op = ops[opof[entry]]
            if op["f"] == "read":
                ok, ns = (op["value"] == state), state
            elif op["f"] == "delete":
                ok, ns = True, None
            else:
                ok, ns = True, op["value"]
            if ok:
                nl = lin | (1 << opof[entry])
                key = (nl, ns)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state = ns
                    lin = nl
                    lift(entry)
                    best = max(best, len(stack))
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
        else:
            if not stack:
                op = ops[opof[entry]]
                return "illegal", {"op": op, "linearized_prefix": best,
                                   "ops": n}
            entry, state = stack.pop()
            lin &= ~(1 << opof[entry])
            unlift(entry)
            entry = nxt[entry]
    return "ok", {"ops": n}


def check(ops, deadline_s=5.0):
    """Per key. Returns (violations, unknown_keys)."""
    by_key = {}
    for op in ops:
        by_key.setdefault(op.get("key"), []).append(op)
    bad, unknown = [], []
    for k, kops in sorted(by_key.items(), key=lambda kv: str(kv[0])):
        verdict, detail = check_key(kops, deadline_s)
        if verdict == "illegal":
            bad.append({"kind": "not-linearizable", "key": k,
                        "detail": "no legal order: this operation could not "
                        "be linearized", "ops": [detail["op"]]})
        elif verdict == "unknown":
            unknown.append({"key": k, **detail})
    return bad, unknown
