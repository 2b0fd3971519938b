#!/usr/bin/env python3
"""Run every test of atoll and print one closing line: N passed, N failed.

Suites:
  unit         $BUILD/tests/**/test_*, one per tests/unit/**/test_*.c
               (cmocka, TAP output)
  integration  tests/integration/test_*.py (unittest; real atoll processes)
  fuzz         build/fuzz/fuzz/fuzz_* (libFuzzer, short runs from the seed corpus)

Usage: tests/run.py [--build DIR] [--only SUITE[,SUITE]] [--fuzz-seconds N]
                    [-k PATTERN] [-j N]
"""
import argparse
import concurrent.futures
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []

    def add(self, other):
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        self.failures += other.failures


def run_unit(path, name, timeout):
    t = Tally()
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
    try:
        p = subprocess.run([path], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout,
                           cwd=ROOT)
        out = p.stdout.decode(errors="replace")
        rc = p.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        rc = "timeout"
    seen = 0
    for line in out.splitlines():
        m = re.match(r"^(not ok|ok) \d+ - (.*?)(\s+# SKIP.*)?$", line)
        if not m:
            continue
        seen += 1
        if m.group(3):
            t.skipped += 1
        elif m.group(1) == "ok":
            t.passed += 1
        else:
            t.failed += 1
            t.failures.append(f"{name}: {m.group(2)}")
    if rc != 0 and t.failed == 0:
        t.failed += 1
        t.failures.append(f"{name}: exit {rc}")
    if t.failed:
        sys.stdout.write(out[-20000:] + "\n")
    print(f"unit {name}: {t.passed} passed, {t.failed} failed"
          f"{', %d skipped' % t.skipped if t.skipped else ''}", flush=True)
    return t


NAME_ONLY_RE = re.compile(r"^test\S* \([\w.]+\)$")
OPEN_RE = re.compile(r"^(test\S*) \([\w.]+\).*\.\.\.$")
RESULT_RE = re.compile(r"^(test\S*) \(([\w.]+)\).*? \.\.\. (ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$")


def run_integration(path, build, timeout, pattern, slots=None):
    t = Tally()
    name = os.path.basename(path)
    env = dict(os.environ)
    env["ATOLL_BIN"] = os.path.join(ROOT, build, "atoll")
    env["ATOLL_BUILD"] = os.path.join(ROOT, build)
    env["PYTHONPATH"] = os.path.join(ROOT, "tests", "integration")
    slot = slots.get() if slots is not None else None
    if slot is not None:
        # harness.free_port: files running side by side hand out
        # disjoint ports.
        env["ATOLLTEST_PORT_SLOT"] = str(slot)
        env["ATOLLTEST_PORT_SLOTS"] = str(slots.maxsize)
    cmd = [sys.executable, "-m", "unittest", "-v"]
    if pattern:
        cmd += ["-k", pattern]
    cmd.append(os.path.splitext(name)[0])
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout,
                           cwd=os.path.dirname(path))
        out = p.stdout.decode(errors="replace")
        rc = p.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        rc = "timeout"
    finally:
        if slot is not None:
            slots.put(slot)
    joined = out.replace(" ...\n", " ... ").splitlines()
    # A test with a docstring prints "test_x (mod.Class.test_x)" and then
    # "<first docstring line> ... ok" on the next line: join the two.
    # When the test printed before its status, what follows " ... " is
    # its output: the name stays open ("... " at the end) and the output
    # becomes a line of its own, so that the status found later counts.
    lines = []
    for line in joined:
        if (lines and NAME_ONLY_RE.match(lines[-1].strip())
                and " ... " in line):
            rest = line.rsplit(" ... ", 1)[1]
            word = rest.strip()
            if word in ("ok", "FAIL", "ERROR") or word.startswith(
                    ("skipped", "expected failure", "unexpected success")):
                lines[-1] = lines[-1].strip() + " ... " + rest
            else:
                lines[-1] = lines[-1].strip() + " ..."
                lines.append(rest)
        else:
            lines.append(line)
    # A test that prints (a "note:" line) splits "test_x (...) ... " from
    # its "ok": the status then comes alone on a later line.
    pending = None
    for line in lines:
        m = RESULT_RE.match(line.strip())
        if m:
            pending = None
        else:
            o = OPEN_RE.match(line.strip())
            if o:
                pending = o.group(1)
                continue
            word = line.strip()
            if pending is None or not (word in ("ok", "FAIL", "ERROR") or
                                       word.startswith("skipped")):
                continue
            m = (pending, word)
            pending = None
        if isinstance(m, tuple):
            name_, status = m
        else:
            name_, status = m.group(1), m.group(3)
        if status == "ok" or status == "expected failure":
            t.passed += 1
        elif status.startswith("skipped"):
            t.skipped += 1
        else:
            t.failed += 1
            t.failures.append(f"{name}: {name_} {status}")
    if rc != 0 and t.failed == 0:
        t.failed += 1
        t.failures.append(f"{name}: exit {rc}")
    if t.failed:
        sys.stdout.write(out[-30000:] + "\n")
    print(f"integration {name}: {t.passed} passed, {t.failed} failed"
          f"{', %d skipped' % t.skipped if t.skipped else ''}", flush=True)
    return t


def run_fuzz(path, seconds):
    t = Tally()
    name = os.path.basename(path)
    corpus_src = os.path.join(ROOT, "tests", "fuzz", "corpus",
                              name[len("fuzz_"):])
    with tempfile.TemporaryDirectory(prefix="atoll-fuzz-") as tmp:
        corpus = os.path.join(tmp, "corpus")
        if os.path.isdir(corpus_src):
            shutil.copytree(corpus_src, corpus)
        else:
            os.mkdir(corpus)
        cmd = [path, f"-max_total_time={seconds}", "-rss_limit_mb=1024",
               "-timeout=10", f"-artifact_prefix={tmp}/", corpus]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               timeout=seconds + 120)
            out = p.stdout.decode(errors="replace")
            rc = p.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace")
            rc = "timeout"
        if rc == 0:
            t.passed += 1
        else:
            t.failed += 1
            t.failures.append(f"{name}: exit {rc}")
            sys.stdout.write(out[-8000:] + "\n")
            for f in os.listdir(tmp):
                if f.startswith(("crash-", "leak-", "timeout-", "oom-")):
                    dst = os.path.join(ROOT, "build", f"{name}-{f}")
                    shutil.copy(os.path.join(tmp, f), dst)
                    print(f"fuzz {name}: reproducer saved to {dst}")
    print(f"fuzz {name}: {'passed' if t.passed else 'FAILED'} ({seconds}s)",
          flush=True)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/debug")
    ap.add_argument("--only", default="unit,integration,fuzz")
    ap.add_argument("--fuzz-seconds", type=int, default=8)
    ap.add_argument("-k", dest="pattern", default=None)
    ap.add_argument("-j", dest="jobs", type=int, default=2)
    args = ap.parse_args()
    suites = args.only.split(",")
    total = Tally()
    start = time.time()
    # Sanitizer builds: every process (atoll servers included) writes its
    # reports to files here; any report fails the run.
    san_dir = None
    if "asan" in args.build or "san" in os.environ.get("SAN", ""):
        san_dir = tempfile.mkdtemp(prefix="atoll-san-")
        os.environ["ASAN_OPTIONS"] = (f"log_path={san_dir}/asan:"
                                      "detect_leaks=1:abort_on_error=0")
        os.environ["UBSAN_OPTIONS"] = (f"log_path={san_dir}/ubsan:"
                                       "print_stacktrace=1")

    if "unit" in suites:
        # From the sources, so a binary left by an older layout never runs.
        src = os.path.join(ROOT, "tests", "unit")
        bins = []
        for dirpath, _, names in sorted(os.walk(src)):
            for f in sorted(names):
                if f.startswith("test_") and f.endswith(".c"):
                    rel = os.path.relpath(os.path.join(dirpath, f[:-2]), src)
                    bins.append((os.path.join(ROOT, args.build, "tests", rel),
                                 rel))
        for b, rel in bins:
            total.add(run_unit(b, rel, 600))

    if "integration" in suites:
        d = os.path.join(ROOT, "tests", "integration")
        files = sorted(os.path.join(d, f) for f in os.listdir(d)
                       if f.startswith("test_") and f.endswith(".py"))
        slots = queue.Queue(args.jobs)
        for i in range(args.jobs):
            slots.put(i)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
            for r in ex.map(lambda f: run_integration(
                    f, args.build, 900, args.pattern, slots), files):
                total.add(r)

    if "fuzz" in suites:
        d = os.path.join(ROOT, "build", "fuzz", "fuzz")
        bins = sorted(os.path.join(d, f) for f in os.listdir(d)
                      if f.startswith("fuzz_")) if os.path.isdir(d) else []
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
            for r in ex.map(lambda b: run_fuzz(b, args.fuzz_seconds), bins):
                total.add(r)

    if san_dir is not None:
        reports = sorted(os.listdir(san_dir))
        for f in reports:
            with open(os.path.join(san_dir, f), errors="replace") as fh:
                sys.stdout.write(f"--- sanitizer report {f}\n{fh.read()[-6000:]}\n")
            total.failed += 1
            total.failures.append(f"sanitizer report in a test process: {f}")
        shutil.rmtree(san_dir, ignore_errors=True)

    print(f"# {time.time() - start:.0f}s")
    for f in total.failures:
        print(f"FAILED: {f}")
    line = f"{total.passed} passed, {total.failed} failed"
    if total.skipped:
        line += f", {total.skipped} skipped"
    print(line)
    return 1 if total.failed else 0


if __name__ == "__main__":
    sys.exit(main())
