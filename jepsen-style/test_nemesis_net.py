#!/usr/bin/env python3
"""Self-test of the iptables nemeses on real namespaces, without atoll
(needs root; ~3 s): udp-partition is one-way and UDP-only, udp-loss drops
only UDP, and every heal removes exactly the rules its fault added while
the rules of another active fault stay. Namespaces jt<pid>-*, deleted at
the end whatever happens.

    python3 jepsen-style/test_nemesis_net.py
"""
import os
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import lab as labmod  # noqa: E402
import nemesis as nem  # noqa: E402

PORT = 5001

# a UDP or TCP probe run inside a node namespace: prints "got" or "none"
RECV = r"""
import socket, sys
proto, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port)); s.settimeout(0.6)
    print("ready", flush=True)
    got = 0
    try:
        while True:
            s.recvfrom(100); got += 1
    except socket.timeout:
        pass
    print("got" if got else "none", got, flush=True)
else:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port)); s.listen(4); s.settimeout(1.5)
    print("ready", flush=True)
    try:
        c, _ = s.accept(); print("got", 1, flush=True)
    except socket.timeout:
        print("none", 0, flush=True)
"""
SEND = r"""
import socket, sys
proto, ip, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        try:
            s.sendto(b"x", (ip, port))
        except OSError:
            pass  # EPERM: dropped by an OUTPUT rule
else:
    try:
        socket.create_connection((ip, port), timeout=1.0)
    except OSError:
        pass
"""


class FakeHist:
    def nemesis(self, **kw):
        pass


class FakeCtx:
    removed = set()


class NetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root")
        cls.net = labmod.Net(3)
        cls.tmp = tempfile.TemporaryDirectory()
        try:
            cls.net.up()
        except Exception:
            cls.net.down()
            raise
        cls.lab = labmod.Lab("/bin/true", cls.tmp.name, cls.net.prefix,
                             "s", 3)
        cls.nodes = [cls.lab.new_node(i) for i in (1, 2, 3)]

    @classmethod
    def tearDownClass(cls):
        cls.net.down()
        cls.tmp.cleanup()
        left = [x for x in labmod.list_netns()
                if x.startswith(cls.net.prefix + "-")]
        assert not left, left

    def setUp(self):
        self.nem = nem.Nemesis(self.lab, FakeCtx(), FakeHist(), 3)
        self.nem.lab.leader_name = lambda timeout=1.0: None

    def tearDown(self):
        self.nem.heal_all()
        for n in self.nodes:
            self.assertEqual(self.rules(n), [])

    def rules(self, n):
        out = labmod.sh(["ip", "netns", "exec", n.ns, "iptables", "-w", "-S"])
        return [x for x in out.stdout.splitlines() if x.startswith("-A")]

    def hears(self, dst, src, proto="udp", n=20):
        """How many of n probes src sends does dst get (tcp: 0 or 1)."""
        r = subprocess.Popen(["ip", "netns", "exec", dst.ns, sys.executable,
                              "-c", RECV, proto, dst.ip, str(PORT)],
                             stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(r.stdout.readline().strip(), "ready")
            subprocess.run(["ip", "netns", "exec", src.ns, sys.executable,
                            "-c", SEND, proto, dst.ip, str(PORT), str(n)],
                           timeout=5, check=True)
            out = r.stdout.readline().split()
            r.wait(timeout=5)
        finally:
            if r.poll() is None:
                r.kill()
                r.wait()
            r.stdout.close()
        return int(out[1])

    def fault(self, fam, **kw):
        f = {"family": fam, "perm": list(range(16)), "dur": 1}
        f.update(kw)
        return f, self.nem.apply(f)

    def test_udp_partition_mute_is_one_way_and_udp_only(self):
        a, b, c = self.nodes
        f, d = self.fault("udp-partition", shape="mute", target="one")
        self.assertEqual(d["target"], "n1")
        self.assertEqual(self.hears(b, a), 0)      # nobody hears n1
        self.assertEqual(self.hears(c, a), 0)
        self.assertEqual(self.hears(a, b), 20)     # n1 still hears them
        self.assertEqual(self.hears(c, b), 20)
        self.assertEqual(self.hears(b, a, "tcp"), 1)  # TCP untouched
        self.nem.heal(f)
        self.assertEqual(self.hears(b, a), 20)

    def test_udp_partition_shapes(self):
        for shape in nem.UDP_SHAPES:
            f, d = self.fault("udp-partition", shape=shape, target="one")
            deaf = d["deaf_to"]
            self.assertTrue(deaf, shape)
            for x, srcs in deaf.items():
                # asymmetric: no pair drops both ways
                for y in srcs:
                    self.assertNotIn(x, deaf.get(y, []), (shape, x, y))
            self.nem.heal(f)
            for n in self.nodes:
                self.assertEqual(self.rules(n), [], shape)

    def test_udp_loss_drops_some_udp_only(self):
        a, b, _ = self.nodes
        f, d = self.fault("udp-loss", prob=0.4, target="all")
        self.assertEqual(sorted(d["nodes"]), ["n1", "n2", "n3"])
        got = self.hears(b, a, n=200)
        # both ways: 1 - 0.6 * 0.6 = 64% lost on average
        self.assertTrue(20 < got < 140, got)
        self.assertEqual(self.hears(b, a, "tcp"), 1)
        self.nem.heal(f)
        self.assertEqual(self.hears(b, a, n=50), 50)

    def test_heal_keeps_other_faults_rules(self):
        a, b, c = self.nodes
        f1, _ = self.fault("partition", shape="one")
        n_part = {n.name: len(self.rules(n)) for n in self.nodes}
        f2, _ = self.fault("udp-partition", shape="deaf", target="one")
        f3, _ = self.fault("lossy", prob=0.2, target="one")
        self.nem.heal(f2)
        self.nem.heal(f3)
        self.assertEqual({n.name: len(self.rules(n)) for n in self.nodes},
                         n_part)
        f4, _ = self.fault("udp-loss", prob=0.3, target="one")
        self.nem.heal(f1)
        self.assertEqual(len(self.rules(a)), 2)    # udp-loss in and out
        self.assertEqual(self.rules(b) + self.rules(c), [])
        self.nem.heal(f4)
        self.assertEqual(self.rules(a), [])

    def test_generate(self):
        fams = ["udp-loss", "udp-partition", "autopilot"]
        s1 = nem.generate(5, fams, 60, 3)
        self.assertEqual(s1, nem.generate(5, fams, 60, 3))
        self.assertEqual([f["family"] for f in s1[:3]], fams)
        for f in s1:
            if f["family"] == "autopilot":
                # down longer than dead-after (plus detection)
                self.assertGreater(f["dur"], nem.AUTOPILOT_DEAD_AFTER + 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
