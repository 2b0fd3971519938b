"""Replication rules (issue 17), against Debian's docker-registry with
htpasswd and TLS started here: rules set on any node (replicated), run by
the leader when asked or on their interval; a push rule copies exactly the
tags its filters select, under the mapped name; a delete follows only when
the rule says so; a pull rule brings new tags on its schedule; a job whose
leader dies is run again by the next leader, and the remote never shows a
half-copied image."""
import json
import os
import shutil
import subprocess
import time
import unittest

import images
from cluster import ClusterTestCase, note, wait_for
from harness import ATOLL_BIN
from test_copy import USER, PASSWORD, Dist, atoll_copy, creds_file
from test_events import Receiver

ACCEPT = ", ".join((images.OCI_MANIFEST, images.OCI_INDEX))


class ReplicationTest(ClusterTestCase):
    def setUp(self):
        if shutil.which("docker-registry") is None:
            self.skipTest("no docker-registry")
        self.dist = Dist(self)
        self.creds = creds_file(self, f"{USER}:{PASSWORD}")
        self.rx = Receiver()
        self.addCleanup(self.rx.close)
        self.start_cluster(3, prefix="repl",
                           extra=["--events-url", self.rx.url])

    def rule(self, **kw):
        r = {"name": "to_dist", "direction": "push",
             "remote": {"urls": [self.dist.ref_base],
                        "credentials_file": self.creds,
                        "ca_file": self.dist.pki.ca},
             "repositories": ["prod/**"]}
        r.update(kw)
        return r

    def set_rules(self, *rules):
        node = self.cluster.followers()[0]
        r = self.admin(node, "PUT", "/_atoll/replication",
                       {"rules": list(rules)})
        self.assertEqual(r.status, 200, r)
        for n in self.cluster.nodes:
            self.cluster.wait_caught_up(n)

    def status(self, name):
        r = self.admin(self.cluster.live()[0], "GET",
                       "/_atoll/replication/status")
        self.assertEqual(r.status, 200, r)
        return r.json()["rules"].get(name)

    def run_and_wait(self, name, after=0):
        node = self.cluster.followers()[-1]
        t0 = int(time.time() * 1000)
        r = self.admin(node, "POST", f"/_atoll/replication/run?rule={name}")
        self.assertEqual(r.status, 202, r)
        st = wait_for(lambda: (s := self.status(name)) is not None and
                      s["started"] >= min(t0, max(after, 1)) and
                      s["ended"] >= s["started"] and
                      s["started"] > after and s, 60,
                      what=f"rule {name} run")
        return st

    def push(self, repo, tag, img=None):
        img = img or images.small(tag)
        images.push(self.cluster.leader(), repo, tag, img)
        return img

    def test_push_rule_filters_and_deletes(self):
        c = self.cluster
        imgs = {t: self.push("prod/app", t)
                for t in ("v1.0", "v1.1", "v2.0-rc1", "dev")}
        self.push("other/x", "v1.0")
        # refused: a bad document, no secret
        f = c.followers()[0]
        for bad in ({"rules": [self.rule(name="Bad-Name")]},
                    {"rules": [self.rule(direction="sideways")]},
                    {"rules": [self.rule(tags={"include": "("})]},
                    # glibc's regcomp takes gigabytes for this one
                    {"rules": [self.rule(tags={"exclude": "-r" + "+" * 40})]},
                    {"rules": [self.rule(tags={"include": "(a{32}){32}{32}"})]},
                    {"rules": [self.rule(repositories=["a{b"])]},
                    {"rules": [self.rule(remote={"urls": [self.dist.ref_base],
                                                 "rate": 0})]},
                    {"rules": [self.rule(), self.rule()]}):
            r = self.admin(f, "PUT", "/_atoll/replication", bad)
            self.assertEqual(r.status, 400, (bad, r))
        r = f.request("PUT", "/_atoll/replication",
                      body=json.dumps({"rules": []}).encode())
        self.assertEqual(r.status, 401)
        r = self.admin(f, "POST", "/_atoll/replication/run?rule=nope")
        self.assertEqual(r.status, 404)

        self.set_rules(self.rule(tags={"include": "^v[0-9]",
                                       "exclude": "-rc"},
                                 destination="mirror/",
                                 strip_prefix="prod/"))
        r = self.admin(c.nodes[2], "GET", "/_atoll/replication")
        self.assertEqual(r.json()["rules"][0]["name"], "to_dist")
        st = self.run_and_wait("to_dist")
        self.assertEqual(st["result"], "ok", st)
        self.assertEqual(self.dist.tags("mirror/app"), {"v1.0", "v1.1"})
        self.assertEqual(st["manifests"], 2)
        st_, body, _ = self.dist.request(
            "GET", "/v2/mirror/app/manifests/v1.1", accept=ACCEPT)
        self.assertEqual(body, imgs["v1.1"].manifest)
        st_, body, _ = self.dist.request("GET", "/v2/_catalog")
        self.assertEqual(json.loads(body)["repositories"], ["mirror/app"])

        # a tag deleted here stays there while the rule says no deletes
        r = c.leader().request("DELETE", "/v2/prod/app/manifests/v1.0")
        self.assertEqual(r.status, 202, r)
        st = self.run_and_wait("to_dist", after=st["started"])
        self.assertEqual(st["result"], "ok", st)
        self.assertEqual(st["manifests"], 0)  # nothing copied twice
        self.assertEqual(self.dist.tags("mirror/app"), {"v1.0", "v1.1"})
        # and goes when it says so
        self.set_rules(self.rule(tags={"include": "^v[0-9]",
                                       "exclude": "-rc"},
                                 destination="mirror/",
                                 strip_prefix="prod/", deletes=True))
        st = self.run_and_wait("to_dist", after=st["started"])
        self.assertEqual(st["result"], "ok", st)
        self.assertEqual(st["deleted"], 1)
        self.assertEqual(self.dist.tags("mirror/app"), {"v1.1"})
        r = c.leader().request("GET", "/metrics")
        self.assertIn("atoll_replication_runs_ok_total 3", r.body.decode())

    def test_cli(self):
        c = self.cluster
        node = c.followers()[0]
        auth = ["--addr", node.addr, "--cluster-secret-file", c.secret_file]
        d = self.temp_dir()
        one = os.path.join(d, "one.yaml")
        with open(one, "w") as f:
            f.write("name: first\ndirection: push\nremote:\n"
                    f"  url: {self.dist.ref_base}\n"
                    "repositories: [\"prod/**\"]\ninterval: 0s\n")
        two = os.path.join(d, "two.json")
        with open(two, "w") as f:
            json.dump(self.rule(name="second"), f)

        def cli(*args, rc=0):
            p = subprocess.run([ATOLL_BIN, "replication"] + list(args) + auth,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, rc, p.stderr.decode())
            return p.stdout.decode() + p.stderr.decode()

        def names():
            return [r["name"] for r in json.loads(cli("list"))["rules"]]
        cli("add", one)
        cli("add", two)
        self.assertEqual(names(), ["first", "second"])
        cli("add", one)  # the same name again: replaced, not doubled
        self.assertEqual(sorted(names()), ["first", "second"])
        cli("remove", "first")
        self.assertEqual(names(), ["second"])
        self.assertIn("no rule named first", cli("remove", "first", rc=1))
        self.assertIn("no such rule", cli("run", "first", rc=1))
        self.assertIn('"asked":true', cli("run", "second"))
        wait_for(lambda: "second" in json.loads(cli("status"))["rules"], 60,
                 what="second ran")
        bad = os.path.join(d, "bad.json")
        with open(bad, "w") as f:
            json.dump(self.rule(name="x", direction="up"), f)
        self.assertIn("direction", cli("add", bad, rc=1))

    def test_push_rule_on_push(self):
        self.set_rules(self.rule(on_push=True, destination="live/",
                                 tags={"include": "^v"}))
        self.push("prod/web", "v1")
        wait_for(lambda: self.dist.tags("live/prod/web") == {"v1"}, 30,
                 what="v1 replicated on push")
        self.push("prod/web", "nightly")  # not taken: no run for it
        self.push("prod/web", "v2")
        wait_for(lambda: self.dist.tags("live/prod/web") == {"v1", "v2"}, 30,
                 what="v2 replicated on push")
        st = self.status("to_dist")
        self.assertEqual(st["result"], "ok", st)
        # on_push is for push rules only
        r = self.admin(self.cluster.nodes[0], "PUT", "/_atoll/replication",
                       {"rules": [self.rule(direction="pull",
                                            on_push=True)]})
        self.assertEqual(r.status, 400, r)

    def test_pull_rule_on_schedule(self):
        c = self.cluster
        # the remote gets up/lib:t1 (through atoll copy from the cluster)
        self.push("seed/lib", "t1")
        self.push("seed/lib", "t2")
        dest = ["--dest-creds-file", self.creds, "--dest-ca",
                self.dist.pki.ca]
        leader = c.leader()
        atoll_copy(*dest, f"http://{leader.addr}/seed/lib:t1",
                   f"{self.dist.ref_base}/up/lib", check=0)
        self.set_rules({"name": "from_dist", "direction": "pull",
                        "remote": {"url": self.dist.ref_base,
                                   "credentials_file": self.creds,
                                   "ca_file": self.dist.pki.ca},
                        "repositories": ["up/*"], "destination": "cache/",
                        "interval": "1s"})

        def has(tag):
            r = c.nodes[1].request("GET", "/v2/cache/up/lib/tags/list")
            return r.status == 200 and tag in (r.json().get("tags") or [])
        wait_for(lambda: has("t1"), 30, what="t1 pulled on schedule")
        atoll_copy(*dest, f"http://{leader.addr}/seed/lib:t2",
                   f"{self.dist.ref_base}/up/lib", check=0)
        wait_for(lambda: has("t2"), 30, what="t2 pulled on schedule")
        st = self.status("from_dist")
        self.assertEqual(st["result"], "ok", st)
        # each run is an event too
        runs = [d for d in self.rx.docs()
                if d["type"] == "io.atoll.replication.finished"]
        self.assertTrue(runs)
        self.assertEqual(runs[-1]["subject"], "from_dist")
        self.assertEqual(runs[-1]["data"]["rule"], "from_dist")
        self.assertEqual(runs[-1]["data"]["result"], "ok")

    def test_job_taken_over_when_the_leader_dies(self):
        c = self.cluster
        big = images.image([os.urandom(48 << 20) for _ in range(3)])
        self.push("prod/big", "v1", big)
        self.set_rules(self.rule(timeout="10s"))
        leader = c.leader()
        r = self.admin(c.followers()[0], "POST",
                       "/_atoll/replication/run?rule=to_dist")
        self.assertEqual(r.status, 202, r)
        # the job runs on the leader: kill it mid-transfer
        wait_for(lambda: "to_dist" in self.admin(
            leader, "GET", "/_atoll/replication/status").json()
            ["running_here"], 20, interval=0.02, what="job running")
        time.sleep(0.1)
        leader.kill()
        killed_ms = int(time.time() * 1000)
        # never half-visible there: no manifest before its blobs
        st_, body, _ = self.dist.request(
            "GET", "/v2/prod/big/manifests/v1", accept=ACCEPT)
        self.assertIn(st_, (200, 404))
        if st_ == 200:
            self.assertEqual(body, big.manifest)
        new = c.wait_leader(exclude=[leader.name])
        st = wait_for(lambda: (s := self.status("to_dist")) is not None and
                      s.get("result") == "ok" and s, 60,
                      what="the new leader ran the job")
        # the run on record is the new leader's, started after the kill;
        # what the dead one uploaded in full was not uploaded again
        self.assertGreaterEqual(st["started"], killed_ms - 50)
        self.assertEqual(st["blobs"] + st["blobs_there"], 4)
        note(f"replication takeover: the new leader copied {st['blobs']} "
             f"blobs, {st['blobs_there']} were there already")
        self.assertEqual(self.dist.tags("prod/big"), {"v1"})
        st_, body, _ = self.dist.request(
            "GET", "/v2/prod/big/manifests/v1", accept=ACCEPT)
        self.assertEqual(body, big.manifest)
        for d, data in big.blobs().items():
            st_, got, _ = self.dist.request("GET", f"/v2/prod/big/blobs/{d}")
            self.assertEqual(st_, 200)
            self.assertEqual(len(got), len(data))
        self.assertNotEqual(new.name, leader.name)


if __name__ == "__main__":
    unittest.main()
