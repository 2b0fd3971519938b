"""Issue 13, acceptance 3: a StatefulSet-style start.

Five nodes started at the same moment, each with the same --join list (all
five peer addresses, itself included, as a Kubernetes headless service
resolves) and --bootstrap-expect 3, must form exactly one cluster with 3
voters and 2 standbys. Repeated RUNS times (20 in make test), each run on
fresh data dirs and ports; every run must give one cluster: every node
lists the same five members and the same leader, and exactly one node
bootstrapped.
"""
import os
import secrets
import shutil
import tempfile
import time
import unittest

import cluster
import harness
from harness import free_port, wait_for

RUNS = int(os.environ.get("ATOLL_BOOTSTRAP_RUNS", "20"))
FAST = list(cluster.FAST_RAFT) + [
    "--gossip-probe-interval", "200ms", "--gossip-probe-timeout", "100ms",
    "--gossip-interval", "50ms", "--autopilot-stabilization", "500ms"]


def full_log(n):
    with open(n.log_path, "rb") as f:
        return f.read().decode(errors="replace")


class Member(cluster.ClusterNode):
    """A ClusterNode whose ports are chosen before any node starts."""


class BootstrapExpectTest(harness.TestCase):

    def run_once(self, run):
        tmp = tempfile.mkdtemp(prefix=f"atoll-bexp{run}-")
        fake = type("C", (), {})()
        fake.tmp = tmp
        fake.secret = secrets.token_hex(24)
        nodes = []
        try:
            ports = [free_port() for _ in range(5)]
            join = ",".join(f"127.0.0.1:{p}" for p in ports)
            for i in range(5):
                n = Member(fake, f"b{run}n{i}", join=join,
                           extra=FAST + ["--bootstrap-expect", "3"])
                n.peer_port = ports[i]
                n.args[n.args.index("--peer-listen") + 1] = \
                    f"127.0.0.1:{ports[i]}"
                nodes.append(n)
            t0 = time.time()
            for n in nodes:  # as close to "at once" as processes get
                n.start(wait=False)
            for n in nodes:
                n.wait_ready(30)

            def one_cluster():
                docs = [n.members(timeout=2) for n in nodes]
                leaders = {d.get("leader") for d in docs}
                if len(leaders) != 1 or None in leaders:
                    return None
                for d in docs:
                    roles = sorted(m["role"] for m in d["nodes"])
                    if roles != ["standby", "standby", "voter", "voter",
                                 "voter"]:
                        return None
                return docs[0]
            doc = wait_for(one_cluster, 60,
                           what=f"run {run}: one cluster, 3 voters, 2 "
                           "standbys")
            took = time.time() - t0
            boots = [n.name for n in nodes
                     if "bootstrapping a new cluster" in full_log(n)]
            self.assertEqual(len(boots), 1, (boots, doc))
            return took
        except BaseException:
            for n in nodes:
                print(f"===== {n.name}\n{n.log()}")
            raise
        finally:
            for n in nodes:
                n.kill()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_statefulset_start(self):
        cluster.require_cluster()
        times = [self.run_once(r) for r in range(RUNS)]
        cluster.note(f"{RUNS} parallel starts of 5 nodes, --bootstrap-expect 3: "
              f"one cluster every time, formed in {min(times):.2f}-"
              f"{max(times):.2f} s")


if __name__ == "__main__":
    unittest.main()
