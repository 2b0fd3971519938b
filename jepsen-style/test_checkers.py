"""Unit tests of the checkers: known-bad histories (stale read, lost write,
garbage value, non-monotonic session, wrong bytes, lost push) must be caught
and known-good ones must pass; zones and WGL must agree on random small
histories. Runs alone in seconds: python3 jepsen-style/test_checkers.py"""
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkers import fetch, session, setcheck, wgl, zones  # noqa: E402

INF = float("inf")


def w(v, s, e, t="ok", key="k"):
    return {"f": "write", "value": v, "start": s, "end": e, "type": t,
            "key": key}


def r(v, s, e, t="ok", key="k"):
    return {"f": "read", "value": v, "start": s, "end": e, "type": t,
            "key": key}


def both(ops):
    z = zones.check(ops)
    b, unk = wgl.check(ops)
    assert not unk
    return bool(z), bool(b)


class Linearizability(unittest.TestCase):
    def test_good_sequential(self):
        ops = [r(None, 0, 1), w("a", 2, 3), r("a", 4, 5), w("b", 6, 7),
               r("b", 8, 9)]
        self.assertEqual(both(ops), (False, False))

    def test_good_concurrent(self):
        ops = [w("a", 0, 10), r("a", 1, 2), r(None, 1, 3), w("b", 5, 6),
               r("b", 7, 8)]
        # r(None) concurrent with w(a) at start: fine
        self.assertEqual(both(ops), (False, False))

    def test_stale_read(self):
        ops = [w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)]
        self.assertEqual(both(ops), (True, True))

    def test_lost_write(self):
        ops = [w("a", 0, 1), w("b", 2, 3), r("a", 4, 5), r("a", 6, 7)]
        self.assertEqual(both(ops), (True, True))

    def test_lost_write_initial(self):
        ops = [w("a", 0, 1), r(None, 2, 3)]
        self.assertEqual(both(ops), (True, True))

    def test_garbage_value(self):
        ops = [w("a", 0, 1), r("zzz", 2, 3)]
        self.assertEqual(both(ops), (True, True))

    def test_read_before_write(self):
        ops = [r("a", 0, 1), w("a", 2, 3)]
        self.assertEqual(both(ops), (True, True))

    def test_info_write_may_apply(self):
        ops = [w("a", 0, 1), w("b", 2, 3, "info"), r("b", 10, 11),
               r("b", 12, 13)]
        self.assertEqual(both(ops), (False, False))

    def test_info_write_may_not_apply(self):
        ops = [w("a", 0, 1), w("b", 2, 3, "info"), r("a", 10, 11)]
        self.assertEqual(both(ops), (False, False))

    def test_flip_flop(self):
        ops = [w("a", 0, 1), w("b", 2, 20, "info"), r("b", 3, 4),
               r("a", 5, 6)]
        self.assertEqual(both(ops), (True, True))

    def test_fail_ignored(self):
        ops = [w("a", 0, 1), w("b", 2, 3, "fail"), r("a", 4, 5),
               r("x", 4, 5, "fail")]
        self.assertEqual(both(ops), (False, False))

    def test_wgl_delete(self):
        ops = [w("a", 0, 1), {"f": "delete", "value": None, "start": 2,
                              "end": 3, "type": "ok", "key": "k"},
               r(None, 4, 5)]
        self.assertEqual(wgl.check(ops)[0], [])
        ops[-1] = r("a", 4, 5)
        self.assertTrue(wgl.check(ops)[0])

    def test_agree_random(self):
        rnd = random.Random(7)
        disagree = 0
        for _ in range(3000):
            ops = random_history(rnd)
            z, b = both(ops)
            if z != b:
                disagree += 1
                print("disagree", z, b, ops)
        self.assertEqual(disagree, 0)

    def test_zones_fast(self):
        rnd = random.Random(1)
        ops = []
        t = 0
        cur = None
        for i in range(20000):
            t += rnd.randint(1, 5)
            if rnd.random() < 0.3:
                cur = f"v{i}"
                ops.append(w(cur, t, t + 4))
            else:
                # a read concurrent with the next write may see either
                ops.append(r(cur, t, t + rnd.randint(4, 12)))
            t += 5
        self.assertEqual(zones.check(ops), [])


def random_history(rnd):
    """A small history of 3 processes against a true register, sometimes
    corrupted (stale value, garbage, lost write)."""
    t = 0
    ops = []
    vals = []
    state = None
    n = rnd.randint(2, 8)
    pending = []
    for i in range(n):
        t += rnd.randint(0, 3)
        s = t
        lin = s + rnd.randint(0, 3)
        e = lin + rnd.randint(0, 3)
        if rnd.random() < 0.5:
            v = f"v{i}"
            vals.append(v)
            typ = "info" if rnd.random() < 0.15 else "ok"
            if typ == "info" and rnd.random() < 0.5:
                pending.append(w(v, s, e, "info"))
                continue
            state = v
            ops.append(w(v, s, e, typ))
        else:
            ops.append(r(state, s, e))
        t = lin
    ops.extend(pending)
    if rnd.random() < 0.5:
        reads = [o for o in ops if o["f"] == "read"]
        if reads:
            o = rnd.choice(reads)
            o["value"] = rnd.choice(vals + [None, "garbage"]) if vals else \
                "garbage"
    return ops


class Others(unittest.TestCase):
    def test_fetch(self):
        good = {"f": "fetch", "status": 200, "sha_ok": True, "len_ok": True}
        self.assertEqual(fetch.check([good])[0], [])
        bad = dict(good, sha_ok=False)
        self.assertTrue(fetch.check([bad])[0])
        trunc = dict(good, len_ok=False)
        self.assertTrue(fetch.check([trunc])[0])

    def sess(self, f, seq, start, t="ok", applied=None, mi=0, inc=1):
        return {"session": "s", "f": f, "seq": seq, "start": start,
                "type": t, "applied": applied, "min_index": mi,
                "incarnation": inc}

    def test_session_good(self):
        ops = [self.sess("swrite", 1, 0, applied=5),
               self.sess("sread", 1, 1, applied=5, mi=5),
               self.sess("swrite", 2, 2, "info"),
               self.sess("sread", 1, 3, applied=6, mi=5),
               self.sess("sread", 2, 4, applied=7, mi=5)]
        self.assertEqual(session.check(ops), [])

    def test_session_info_applies_late(self):
        # an unknown-outcome write may be applied after later acked writes
        ops = [self.sess("swrite", 1, 0, "info"),
               self.sess("swrite", 2, 1), self.sess("swrite", 3, 2),
               self.sess("sread", 1, 3, applied=9),
               self.sess("sread", 1, 4, applied=9)]
        self.assertEqual(session.check(ops), [])
        ops.append(self.sess("sread", 2, 5, applied=9))
        self.assertTrue(session.check(ops))

    def test_session_ryw(self):
        ops = [self.sess("swrite", 1, 0), self.sess("swrite", 2, 1),
               self.sess("sread", 1, 2, applied=9)]
        self.assertTrue(session.check(ops))

    def test_session_monotonic(self):
        ops = [self.sess("swrite", 1, 0, "info"),
               self.sess("sread", 1, 1, applied=5),
               self.sess("sread", None, 2, applied=6)]
        self.assertTrue(session.check(ops))
        ops = [self.sess("sread", None, 1, applied=6),
               self.sess("sread", None, 2, applied=5)]
        self.assertTrue(session.check(ops))
        ops[1]["incarnation"] = 2
        self.assertEqual(session.check(ops), [])
        ops = [self.sess("sread", None, 1, applied=4, mi=5)]
        self.assertTrue(session.check(ops))

    def test_set(self):
        p = [{"tag": "t1", "digest": "d1", "blobs": [["b1", 1]],
              "type": "ok"},
             {"tag": "t2", "digest": "d2", "blobs": [], "type": "info"},
             {"tag": "t3", "digest": "d3", "blobs": [], "type": "fail"}]
        good = {"n1": {"tags": ["t1"], "tag_digest": {"t1": "d1"},
                       "manifest_ok": {"t1": True}, "blob_ok": {"b1": "ok"}}}
        self.assertEqual(setcheck.check(p, good)[0], [])
        lost = {"n1": {"tags": [], "tag_digest": {},
                       "manifest_ok": {}, "blob_ok": {}}}
        self.assertTrue(setcheck.check(p, lost)[0])
        unexp = {"n1": dict(good["n1"], tags=["t1", "t9"])}
        self.assertTrue(setcheck.check(p, unexp)[0])
        failp = {"n1": dict(good["n1"], tags=["t1", "t3"],
                            tag_digest={"t1": "d1", "t3": "d3"})}
        self.assertTrue(setcheck.check(p, failp)[0])
        dangling = {"n1": dict(good["n1"], blob_ok={"b1": "404"})}
        self.assertTrue(setcheck.check(p, dangling)[0])


if __name__ == "__main__":
    unittest.main()
