"""Set checker for acknowledged pushes: after heal every acknowledged push
(tag, manifest, blobs) must be readable byte-exact on every node, nothing
that was never attempted may appear, a definite failure may not appear.

pushes: dicts with tag, digest, blobs [[digest, size]], type ok|fail|info.
observed: {node: {"tags": [listed tags] or None,
                  "tag_digest": {tag: digest or None},
                  "manifest_ok": {tag: bool}, "blob_ok": {digest: str}}}
blob_ok values: "ok" or a short error; skip_blobs: digests excluded (blobs
deliberately corrupted on their only holder); lost_ok: digests whose only
known holder was removed from the cluster with its disk (a blob lives on
the node that received it until blob replication exists): counted as
"blob-lost-with-node", not a violation.
"""


def check(pushes, observed, skip_blobs=(), lost_ok=()):
    bad = []
    counts = {"ok": 0, "lost": 0, "unexpected": 0, "recovered": 0,
              "info-absent": 0, "fail-present": 0, "dangling": 0,
              "blob-lost-with-node": 0}
    by_tag = {p["tag"]: p for p in pushes}
    for node, obs in sorted(observed.items()):
        listed = obs.get("tags")
        if listed is None:
            bad.append({"kind": "unreadable", "node": node,
                        "detail": "tag list could not be read after heal",
                        "ops": []})
            continue
        for t in listed:
            if t not in by_tag:
                counts["unexpected"] += 1
                bad.append({"kind": "unexpected", "node": node,
                            "detail": f"tag {t} was never pushed", "ops": []})
        for p in pushes:
            t = p["tag"]
            got = obs["tag_digest"].get(t)
            if t in obs.get("unreadable", {}):
                counts["unreadable"] = counts.get("unreadable", 0) + 1
                bad.append({"kind": "unreadable-after-heal", "node": node,
                            "detail": f"tag {t}: "
                            f"{obs['unreadable'][t]} (3 tries)", "ops": [p]})
                continue
            if p["type"] == "ok":
                if got != p["digest"]:
                    counts["lost"] += 1
                    bad.append({"kind": "lost", "node": node,
                                "detail": f"acked tag {t} reads {got}",
                                "ops": [p]})
                    continue
                counts["ok"] += 1
            elif p["type"] == "info":
                if got is None:
                    counts["info-absent"] += 1
                    continue
                if got != p["digest"]:
                    bad.append({"kind": "wrong-digest", "node": node,
                                "detail": f"tag {t} reads {got}",
                                "ops": [p]})
                    continue
                counts["recovered"] += 1
            else:
                if got is not None:
                    counts["fail-present"] += 1
                    bad.append({"kind": "fail-present", "node": node,
                                "detail": f"tag {t} was answered as a "
                                "definite failure but is present",
                                "ops": [p]})
                continue
            if not obs["manifest_ok"].get(t, False):
                bad.append({"kind": "manifest-bytes", "node": node,
                            "detail": f"manifest of {t} not byte-exact",
                            "ops": [p]})
            for d, _size in p["blobs"]:
                if d in skip_blobs:
                    continue
                r = obs["blob_ok"].get(d, "not checked")
                if r != "ok" and d in lost_ok:
                    counts["blob-lost-with-node"] += 1
                elif r != "ok":
                    counts["dangling"] += 1
                    bad.append({"kind": "dangling", "node": node,
                                "detail": f"blob {d} of {t}: {r}",
                                "ops": [p]})
    return bad, counts
