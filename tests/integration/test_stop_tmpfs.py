"""F7 (jepsen-style/FINDINGS.md): libraft 0.15's uv io may call its close
callback again after raft_close's callback ran, from the close of a
segment writer that still had a write in the pool (on a file system
without O_DIRECT, such as tmpfs, every write goes through the pool). atoll
used to release the io (raft_uv_close) and its own struct right away, and
that late call read freed memory: under ASan, 2 of 6 and 2 of 8 graceful
stops crashed inside libraft or the commit guard. Now the commit guard lets
raft's close callback run once and the io and the meta are never freed
(raft/open.c, meta_bury).

This test stops a node with its raft dir on a tmpfs, after pushes, several
times: every stop must end with status 0 and no sanitizer report. It
catches the bug reliably only in `make asan` (a plain build reads the
freed memory silently); the note says how many stops saw the late call."""
import os
import unittest

import harness
import images
from harness import Node

STOPS = 6
PUSHES = 30


class StopOnTmpfsTest(harness.TestCase):
    def setUp(self):
        self.tmp = self.temp_dir(prefix="atoll-f7-")
        self.raft = os.path.join(self.tmp, "raft")
        os.makedirs(self.raft)
        harness.mount_tmpfs(self, self.raft, "128m")

    def test_graceful_stops(self):
        late = 0
        for i in range(STOPS):
            d = os.path.join(self.tmp, f"n{i}")
            os.makedirs(d)
            raft = os.path.join(self.raft, f"n{i}")
            n = Node(tmp=d, args=["--raft-dir", raft, "--raft-reserve", "0",
                                  "--log-level", "info,raft:debug"])
            self.addCleanup(n.close)
            n.start()
            for j in range(PUSHES):
                images.push(n, "f7/app", f"t{j}",
                            images.small(f"f7-{i}-{j}"))
            n.proc.send_signal(15)
            rc = n.proc.wait(60)
            log = n.log()
            self.assertNotIn("Sanitizer", log, log[-3000:])
            self.assertNotIn("runtime error", log, log[-3000:])
            self.assertEqual(rc, 0, f"stop {i}: {log[-3000:]}")
            self.assertIn("stopped", log)
            late += "close callback again" in log
        print(f"\nnote: {STOPS} graceful stops with the raft dir on tmpfs: "
              f"all clean; libraft called its io's close callback late in "
              f"{late}", flush=True)


if __name__ == "__main__":
    unittest.main()
