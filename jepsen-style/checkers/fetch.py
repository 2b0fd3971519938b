"""Blob fetch checker: every 200 of a blob GET carried exactly the bytes of
its digest with a matching Content-Length (the client records sha_ok and
len_ok per operation); a blob whose upload was acknowledged is never a 404
after heal (checked by the set checker's final reads)."""


def check(ops):
    bad = []
    counts = {"200": 0, "other": 0, "timeout": 0}
    for op in ops:
        if op.get("f") != "fetch":
            continue
        st = op.get("status")
        if st == 200:
            counts["200"] += 1
            if not op.get("sha_ok") or not op.get("len_ok"):
                if op.get("corrupt") and op.get("node") == op.get("holder"):
                    bad.append({"kind": "holder-serves-corrupt", "detail":
                                "the node whose stored copy was corrupted "
                                "answered 200 with the corrupted bytes",
                                "ops": [op]})
                    continue
                bad.append({"kind": "wrong-bytes", "detail":
                            "a 200 whose body does not match its digest or "
                            "Content-Length", "ops": [op]})
        elif st is None:
            counts["timeout"] += 1
        else:
            counts["other"] += 1
    return bad, counts
