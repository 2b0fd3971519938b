"""Session checker for --read-consistency local nodes. A session is pinned
to one node, writes its own tag (values numbered 1, 2, ... in order) and
reads it with X-Atoll-Min-Index set to the highest index it has seen.
Violations: a read of an acknowledged write older than the session's last
acknowledged write (read-your-writes), a read of an acknowledged write older
than an acknowledged write read before (monotonic reads), a value the
session never wrote, an applied index below the min index sent, an applied
index going down within one incarnation of the node. A write with an
unknown outcome (info) may take effect at any time after its invocation,
also after later acknowledged writes, so reading it is never stale.

ops: dicts with session, f (swrite|sread), seq (write number or read value
number, None = not found), type, min_index, applied, incarnation.
"""


def check(ops):
    bad = []
    by_s = {}
    for op in ops:
        if op.get("f") in ("swrite", "sread"):
            by_s.setdefault(op["session"], []).append(op)
    for s, sops in by_s.items():
        sops.sort(key=lambda o: o["start"])
        last_acked = 0
        last_read = 0
        written = set()
        acked = set()
        seen_any = False
        last_applied = {}
        for op in sops:
            if op["f"] == "swrite":
                written.add(op["seq"])
                if op["type"] == "ok":
                    last_acked = max(last_acked, op["seq"])
                    acked.add(op["seq"])
                continue
            if op["type"] != "ok":
                continue
            v = op["seq"] or 0
            if v and v not in written:
                bad.append({"kind": "session-garbage", "session": s,
                            "detail": f"read value {v} never written",
                            "ops": [op]})
            pending = v and v not in acked  # info: may apply at any time
            if v < last_acked and not pending:
                bad.append({"kind": "read-your-writes", "session": s,
                            "detail": f"read {v} after write {last_acked} "
                            "was acknowledged", "ops": [op]})
            if v < last_read and not pending:
                bad.append({"kind": "non-monotonic-read", "session": s,
                            "detail": f"read {v} after reading {last_read}",
                            "ops": [op]})
            if v == 0 and seen_any:
                bad.append({"kind": "non-monotonic-read", "session": s,
                            "detail": "tag not found after it was read",
                            "ops": [op]})
            seen_any = seen_any or v != 0
            if not pending:
                last_read = max(last_read, v)
            a = op.get("applied")
            mi = op.get("min_index") or 0
            if a is not None:
                if a < mi:
                    bad.append({"kind": "index-below-token", "session": s,
                                "detail": f"applied {a} < min index {mi}",
                                "ops": [op]})
                inc = op.get("incarnation")
                prev = last_applied.get(inc)
                if prev is not None and a < prev:
                    bad.append({"kind": "non-monotonic-index", "session": s,
                                "detail": f"applied index {a} after {prev} "
                                "on the same node process", "ops": [op]})
                last_applied[inc] = max(a, prev or 0)
    return bad
