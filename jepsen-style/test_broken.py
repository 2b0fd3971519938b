"""Deliberately broken builds must be caught: a binary built with
`make BUILD=build/bugs BUGS=1 all` and run with ATOLL_TEST_BUG=stale-read
(follower tag reads skip the read index) or ATOLL_TEST_BUG=early-ack (a
manifest PUT answered right after proposing) must make the suite report a
violation; the same binary and seed without the bug must pass.

A violation depends on a fault landing at the right moment, and timing varies
from run to run even with the same seed (early-ack with seed 22 went
unnoticed once in three runs): a bug counts as caught when one of up to
ATTEMPTS seeds reports it.

  python3 jepsen-style/test_broken.py [--atoll build/bugs/atoll]

About 2.5 minutes (three 30-second runs; more when a seed misses); not part
of `make jepsen`.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ATTEMPTS = 3  # seeds tried for a bug that must be caught
RUN = os.path.join(HERE, "run.py")

CASES = [
    # (bug, seed, nemesis, expect violation)
    ("stale-read", 21, "partition", True),
    ("early-ack", 22, "partition", True),
    (None, 22, "partition", False),
]


def run_case(a, bug, seed, fams, expect):
    """One run; True when it ended as expected."""
    cmd = [sys.executable, RUN, "--seed", str(seed), "--nodes", "3",
           "--time-limit", a.time_limit, "--nemesis", fams,
           "--atoll", a.atoll]
    if bug:
        cmd += ["--bug", bug]
    if expect:
        cmd += ["--expect-fail"]
    print(f"--- bug={bug or 'none'} seed={seed} nemesis={fams} "
          f"expect={'violation' if expect else 'pass'}", flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    viol = [ln for ln in r.stdout.splitlines()
            if ln.strip().startswith(("zones:", "wgl:", "set:",
                                      "fetch:", "session:"))]
    for ln in viol[:4]:
        print("   ", ln.strip())
    print("   ", last)
    return r.returncode == 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--atoll", default="build/bugs/atoll")
    p.add_argument("--time-limit", default="30")
    a = p.parse_args()
    if not os.path.exists(a.atoll):
        print(f"SKIP: no {a.atoll}; build it with "
              "make BUILD=build/bugs BUGS=1 all")
        return 0
    failures = 0
    for bug, seed0, fams, expect in CASES:
        for attempt in range(ATTEMPTS if expect else 1):
            seed = seed0 + 100 * attempt
            ok = run_case(a, bug, seed, fams, expect)
            if ok:
                break
        if not ok:
            failures += 1
            print("    -> NOT as expected")
    print("PASS" if failures == 0 else f"FAIL ({failures} cases)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
