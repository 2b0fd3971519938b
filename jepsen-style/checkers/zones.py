"""Zones linearizability checker for registers whose writes all carry unique
values (Gibbons & Korach 1997), O(n log n) in the number of operations.

An operation is a dict: f ("write" or "read"), value, start, end (numbers;
end = inf for a write with unknown outcome), type ("ok", "fail", "info").
The initial value is None (written before the history began).
"""
import bisect

INF = float("inf")


def check_key(ops, key=None):
    """Returns a list of violations (dicts with kind, detail, ops)."""
    writes = {None: {"f": "write", "value": None, "start": -2, "end": -1,
                     "type": "ok", "id": "initial"}}
    reads = {}
    bad = []
    for op in ops:
        if op["type"] == "fail":
            continue
        if op["f"] == "write":
            if op["value"] in writes and op["value"] is not None:
                bad.append({"kind": "duplicate-write", "key": key,
                            "detail": "two writes of one value", "ops": [op]})
                continue
            w = dict(op)
            if op["type"] == "info":
                w["end"] = INF
            writes[op["value"]] = w
        elif op["f"] == "read":
            if op["type"] != "ok":
                continue
            reads.setdefault(op["value"], []).append(op)
    fwd = []
    bwd = []
    for v, rs in reads.items():
        w = writes.get(v)
        if w is None:
            for r in rs:
                bad.append({"kind": "garbage-read", "key": key,
                            "detail": f"read {v!r} that nobody wrote",
                            "ops": [r]})
            continue
        for r in rs:
            if r["end"] < w["start"]:
                bad.append({"kind": "read-before-write", "key": key,
                            "detail": f"read of {v!r} completed before its "
                            "write began", "ops": [w, r]})
    for v, w in writes.items():
        rs = reads.get(v, [])
        if w["type"] == "info" and not rs:
            continue  # may never have happened
        min_f = min([w["end"]] + [r["end"] for r in rs])
        max_s = max([w["start"]] + [r["start"] for r in rs])
        if min_f < max_s:
            fwd.append((min_f, max_s, v))
        else:
            bwd.append((max_s, min_f, v))
    fwd.sort(key=lambda z: (z[0], z[1]))
    for a, b in zip(fwd, fwd[1:]):
        if b[0] < a[1]:
            bad.append({"kind": "overlapping-forward-zones", "key": key,
                        "detail": f"values {a[2]!r} and {b[2]!r} must both be "
                        "current over the same interval",
                        "values": [a[2], b[2]],
                        "ops": _cluster_ops(writes, reads, a[2], b[2])})
    starts = [z[0] for z in fwd]
    for s, e, v in bwd:
        i = bisect.bisect_left(starts, s) - 1
        # forward zones may overlap (already reported); check the neighbours
        for j in (i, i - 1):
            if 0 <= j < len(fwd):
                fs, fe, fv = fwd[j]
                if fv != v and fs < s and e < fe:
                    bad.append({"kind": "backward-zone-inside-forward",
                                "key": key,
                                "detail": f"value {v!r} was current only "
                                f"inside the interval where {fv!r} had to "
                                "be (stale read or lost write)",
                                "values": [v, fv],
                                "ops": _cluster_ops(writes, reads, v, fv)})
                    break
    return bad


def _cluster_ops(writes, reads, *vals):
    out = []
    for v in vals:
        if v in writes and writes[v].get("id") != "initial":
            out.append(writes[v])
        out.extend(reads.get(v, [])[:5])
    return out


def check(ops):
    """ops of many keys (op["key"]); returns violations of every key."""
    by_key = {}
    for op in ops:
        by_key.setdefault(op.get("key"), []).append(op)
    bad = []
    for k, kops in sorted(by_key.items(), key=lambda kv: str(kv[0])):
        bad.extend(check_key(kops, k))
    return bad
