"""Events to webhooks (issue 17): pushes and deletes go to every receiver
named by --events-url as CloudEvents JSON, sent by the leader in commit
order (so in order per repository, whichever node took the push), signed
with HMAC-SHA256 when --events-secret-file is set; a receiver that is down
or hangs never slows a push (a bounded queue drops its oldest); pulls are
sent too with --events-pull, by the node that served them. The receiver
here is a real HTTP server the test runs."""
import hashlib
import hmac
import http.server
import json
import os
import re
import subprocess
import threading
import time
import unittest

import images
from cluster import ClusterTestCase
from harness import (ATOLL_BIN, NodeTestCase, TestCase, free_port,
                     sha256_digest, skip_unless_atoll, wait_for)

SECRET = "s3cret-for-events"
SIG_HEADER = "X-Atoll-Signature-256"


class Receiver(http.server.ThreadingHTTPServer):
    """Records each POST: (headers, body bytes). mode: "ok" (204), "fail"
    (500), or "hang" (no answer until the mode changes)."""

    daemon_threads = True

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()
        self.mode = "ok"
        self.fail_next = 0
        self.posts = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(h):
                body = h.rfile.read(int(h.headers.get("Content-Length", 0)))
                with self.lock:
                    self.posts += 1
                    failing = self.fail_next > 0
                    if failing:
                        self.fail_next -= 1
                while self.mode == "hang":
                    time.sleep(0.02)
                if failing or self.mode == "fail":
                    h.send_response(500)
                    h.send_header("Content-Length", "0")
                    h.end_headers()
                    return
                with self.lock:
                    self.events.append((dict(h.headers), body))
                h.send_response(204)
                h.end_headers()

        super().__init__(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def docs(self):
        with self.lock:
            return [json.loads(b) for _, b in self.events]

    def close(self):
        self.mode = "ok"
        self.shutdown()
        self.server_close()


def secret_file(test):
    d = test.temp_dir()
    path = os.path.join(d, "events-secret")
    with open(path, "w") as f:
        f.write(SECRET + "\n")
    return path


def metric(node, name):
    r = node.request("GET", "/metrics")
    m = re.search(rf"^{name} (\d+)", r.body.decode(), re.M)
    return int(m.group(1)) if m else None


def push_tag(node, repo, tag):
    img = images.small(tag)
    images.push(node, repo, tag, img)
    return img.digest


class EventsClusterTest(ClusterTestCase):
    def setUp(self):
        self.rx = Receiver()
        self.addCleanup(self.rx.close)
        self.start_cluster(3, prefix="ev", extra=[
            "--events-url", self.rx.url,
            "--events-secret-file", secret_file(self)])

    def test_in_commit_order_signed(self):
        c = self.cluster
        order = {"ev/a": [], "ev/b": []}
        digests = {}
        # pushes go to every node in turn: one sender still orders them
        for i in range(8):
            for k, repo in enumerate(order):
                node = c.nodes[(2 * i + k) % 3]
                tag = f"t{i}"
                digests[(repo, tag)] = push_tag(node, repo, tag)
                order[repo].append(tag)
        # a tag delete and a manifest delete, on followers
        f = c.followers()
        r = f[0].request("DELETE", "/v2/ev/a/manifests/t3")
        self.assertEqual(r.status, 202, r)
        d5 = digests[("ev/b", "t5")]
        r = f[1].request("DELETE", f"/v2/ev/b/manifests/{d5}")
        self.assertEqual(r.status, 202, r)
        want = 16 + 2
        wait_for(lambda: len(self.rx.events) >= want, 20,
                 what="all events at the receiver")
        time.sleep(0.3)  # nothing more, nothing twice
        self.assertEqual(len(self.rx.events), want)

        ids = []
        for headers, body in self.rx.events:
            sig = "sha256=" + hmac.new(SECRET.encode(), body,
                                       hashlib.sha256).hexdigest()
            self.assertEqual(headers.get(SIG_HEADER), sig)
            self.assertTrue(headers.get("Content-Type", "").startswith(
                "application/cloudevents+json"))
            self.assertNotIn(SECRET, body.decode())
            doc = json.loads(body)
            self.assertEqual(doc["specversion"], "1.0")
            self.assertEqual(doc["source"], "/atoll/log")
            self.assertEqual(doc["id"], str(doc["data"]["index"]))
            self.assertRegex(doc["time"], r"^\d{4}-\d\d-\d\dT[\d:.]+Z$")
            ids.append(int(doc["id"]))
        # one stream in commit order: ids (log indexes) only go up
        self.assertEqual(ids, sorted(set(ids)))

        docs = self.rx.docs()
        pushes = [d for d in docs if d["type"] == "io.atoll.manifest.pushed"]
        for repo, tags in order.items():
            got = [d["data"]["tag"] for d in pushes
                   if d["data"]["repository"] == repo]
            self.assertEqual(got, tags, repo)
        p = pushes[0]
        self.assertEqual(p["subject"], "ev/a:t0")
        self.assertEqual(p["data"]["digest"], digests[("ev/a", "t0")])
        self.assertEqual(p["data"]["mediaType"], images.OCI_MANIFEST)
        self.assertGreater(p["data"]["size"], 0)
        tag_del = docs[-2]
        self.assertEqual(tag_del["type"], "io.atoll.tag.deleted")
        self.assertEqual(tag_del["subject"], "ev/a:t3")
        self.assertEqual(tag_del["data"]["digest"], digests[("ev/a", "t3")])
        mf_del = docs[-1]
        self.assertEqual(mf_del["type"], "io.atoll.manifest.deleted")
        self.assertEqual(mf_del["subject"], f"ev/b@{d5}")
        leader = c.leader()
        wait_for(lambda: metric(leader, "atoll_events_sent_total") == want, 5,
                 what="sent counter")
        for n in c.followers():
            self.assertEqual(metric(n, "atoll_events_sent_total"), 0)


class EventsFailoverTest(ClusterTestCase):
    def test_new_leader_sends_past_the_mark(self):
        rx = Receiver()
        self.addCleanup(rx.close)
        c = self.start_cluster(3, prefix="evf",
                               extra=["--events-url", rx.url])
        leader = c.leader()
        for i in range(5):
            push_tag(leader, "evf/r", f"t{i}")
        wait_for(lambda: len(rx.events) == 5, 10, what="first five")
        last = int(rx.docs()[-1]["id"])
        # the leader records where the receivers are, through the log
        for n in c.nodes:
            wait_for(lambda: (metric(n, "atoll_events_delivered_index")
                              or 0) >= last, 10, what="delivered mark")
        # the receiver hangs: the next five stay with the leader, which dies
        rx.mode = "hang"
        for i in range(5, 10):
            push_tag(leader, "evf/r", f"t{i}")
        for n in c.nodes:
            c.wait_caught_up(n)
        leader.kill()
        rx.mode = "ok"
        c.wait_leader(exclude=[leader.name])
        want = [f"t{i}" for i in range(10)]
        wait_for(lambda: set(d["data"]["tag"] for d in rx.docs()) ==
                 set(want), 20, what="every tag at the receiver")
        first, ids = [], []
        for d in rx.docs():
            if d["data"]["tag"] not in first:
                first.append(d["data"]["tag"])
                ids.append(int(d["id"]))
        # in order, at least once; a repeat carries the same id
        self.assertEqual(first, want)
        self.assertEqual(ids, sorted(ids))
        by_id = {}
        for d in rx.docs():
            self.assertEqual(by_id.setdefault(d["id"], d["data"]["tag"]),
                             d["data"]["tag"])


class EventsNodeTest(TestCase):
    def node_with(self, rx, *args):
        return self.start_node(args=("--events-url", rx.url) + args)

    def setUp(self):
        skip_unless_atoll(self)
        self.rx = Receiver()
        self.addCleanup(self.rx.close)

    def test_hung_receiver_does_not_slow_pushes(self):
        self.rx.mode = "hang"
        node = self.node_with(self.rx, "--events-queue", "5",
                              "--events-timeout", "30s")
        digests = []
        t0 = time.monotonic()
        for i in range(30):
            digests.append(push_tag(node, "hang/r", f"t{i}"))
        took = time.monotonic() - t0
        # the first event sits in a 30 s attempt: had a push waited for
        # it, 30 pushes would take far longer than one attempt's limit
        self.assertLess(took, 30)
        wait_for(lambda: metric(node, "atoll_events_dropped_total") == 24, 5,
                 what="oldest waiting events dropped")
        self.assertEqual(metric(node, "atoll_events_queued"), 6)
        self.assertEqual(metric(node, "atoll_events_sent_total"), 0)
        # the receiver recovers: the one in flight, then the 5 newest
        self.rx.mode = "ok"
        wait_for(lambda: len(self.rx.events) == 6, 10, what="queue drained")
        tags = [d["data"]["tag"] for d in self.rx.docs()]
        self.assertEqual(tags, ["t0", "t25", "t26", "t27", "t28", "t29"])
        self.assertEqual(metric(node, "atoll_events_queued"), 0)

    def test_retried_until_taken(self):
        self.rx.fail_next = 2
        node = self.node_with(self.rx)
        push_tag(node, "retry/r", "one")
        wait_for(lambda: len(self.rx.events) == 1, 10, what="event delivered")
        self.assertEqual(self.rx.posts, 3)
        self.assertEqual(metric(node, "atoll_events_retries_total"), 2)
        self.assertEqual(metric(node, "atoll_events_sent_total"), 1)

    def test_pull_events(self):
        node = self.node_with(self.rx, "--events-pull", "true",
                              "--name", "puller")
        d = push_tag(node, "pull/r", "v1")
        wait_for(lambda: len(self.rx.events) == 1, 10, what="push event")
        r = node.request("HEAD", "/v2/pull/r/manifests/v1")
        self.assertEqual(r.status, 200)
        r = node.request("GET", "/v2/pull/r/manifests/v1")
        self.assertEqual(r.status, 200)
        r = node.request("GET", f"/v2/pull/r/manifests/{d}")
        self.assertEqual(r.status, 200)
        wait_for(lambda: len(self.rx.events) == 3, 10, what="pull events")
        time.sleep(0.2)
        docs = self.rx.docs()
        self.assertEqual(len(docs), 3)  # no event for the HEAD
        pulls = docs[1:]
        for p in pulls:
            self.assertEqual(p["type"], "io.atoll.manifest.pulled")
            self.assertEqual(p["source"], "/atoll/node/puller")
            self.assertEqual(p["data"]["digest"], d)
        self.assertEqual(pulls[0]["subject"], "pull/r:v1")
        self.assertEqual(pulls[1]["subject"], f"pull/r@{d}")
        self.assertNotEqual(pulls[0]["id"], pulls[1]["id"])

    def test_no_pull_events_by_default(self):
        node = self.node_with(self.rx)
        push_tag(node, "quiet/r", "v1")
        wait_for(lambda: len(self.rx.events) == 1, 10, what="push event")
        node.request("GET", "/v2/quiet/r/manifests/v1")
        time.sleep(0.3)
        self.assertEqual(len(self.rx.events), 1)

    def test_bad_config_refused(self):
        for args, want in (
                (["--events-url", "ftp://x/hook"], "http:// or https://"),
                (["--events-url", "http://a/,"], "trailing comma"),
                (["--events-url", self.rx.url, "--events-secret-file",
                  "/nonexistent/secret"], "events_secret_file"),
                (["--events-url", self.rx.url, "--events-queue", "0"],
                 "events_queue")):
            d = self.temp_dir()
            p = subprocess.run(
                [ATOLL_BIN, "serve", "--listen", f"127.0.0.1:{free_port()}",
                 "--data-dir", d] + args,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertIn(want, p.stdout.decode(errors="replace"), args)


if __name__ == "__main__":
    unittest.main()
