"""The CLI as a new user meets it (issue 15, rough edges): `atoll status`
prints tables (the raw document only with --json), an unreachable node is
named with the OS's reason, the commands other than serve say how they
take the cluster secret, `atoll help serve` is serve's help; serve runs
malloc on huge pages when told to."""
import json
import os
import unittest

import harness
from harness import ATOLL_BIN, free_port


def atoll(*args, check=False):
    return harness.run_tool([ATOLL_BIN] + list(args), timeout=30, check=check)


class CliTest(harness.NodeTestCase):
    def test_status_tables_and_json(self):
        out = atoll("status", "--addr", self.node.addr, check=True).stdout
        self.assertFalse(out.lstrip().startswith("{"), out)
        self.assertIn("NAME", out)
        doc = json.loads(atoll("status", "--addr", self.node.addr, "--json",
                               check=True).stdout)
        self.assertEqual(doc["state"], "leader")

    def test_unreachable_named_with_reason(self):
        addr = f"127.0.0.1:{free_port()}"
        for cmd in (("status",), ("members",), ("gc", "--dry-run")):
            p = atoll(*cmd, "--addr", addr)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(addr, p.stderr)
            self.assertIn("Connection refused", p.stderr)
            self.assertNotIn("i/o error", p.stderr)

    def test_serve_malloc_on_huge_pages_opt_in(self):
        """ATOLL_MALLOC_HUGEPAGES=1: serve execs itself once with
        glibc.malloc.hugetlb=1 (node/main.c), same pid, same name; not by
        default, and an operator's own GLIBC_TUNABLES is left alone."""
        def environ(node):
            with open(f"/proc/{node.proc.pid}/environ", "rb") as f:
                return [e for e in f.read().split(b"\0")
                        if e.startswith(b"GLIBC_TUNABLES=")]
        self.assertEqual(environ(self.node), [])
        on = self.start_node(env={"ATOLL_MALLOC_HUGEPAGES": "1"})
        self.assertEqual(environ(on),
                         [b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1"])
        with open(f"/proc/{on.proc.pid}/comm") as f:
            self.assertEqual(f.read().strip(),
                             os.path.basename(harness.ATOLL_BIN)[:15])
        own = self.start_node(env={"ATOLL_MALLOC_HUGEPAGES": "1",
                                   "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
        self.assertEqual(environ(own),
                         [b"GLIBC_TUNABLES=glibc.malloc.arena_max=2"])

    def test_secret_flag_and_help(self):
        for cmd in (("gc",), ("members", "transfer"), ("users", "list"),
                    ("status",)):
            p = atoll(*cmd, "--cluster-secret", "x" * 20)
            self.assertEqual(p.returncode, 2)
            self.assertIn("--cluster-secret-file", p.stderr)
            self.assertIn("ps", p.stderr)
        p = atoll("help", "serve", check=True)
        self.assertIn("usage: atoll serve", p.stdout)
        self.assertIn("--untagged", atoll("help", check=True).stdout)


if __name__ == "__main__":
    unittest.main()
