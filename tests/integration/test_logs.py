"""Logs (issue 12): --log-format json makes every line on stderr one JSON
object; an access line per API request (method, path, status, bytes,
duration, request id, user, remote address); audit lines for account and
membership changes; no secret in any line; failed logins limited per user
name and address (429 with Retry-After, no bcrypt)."""
import base64
import json
import re
import unittest

import harness
from cluster import Cluster, wait_for
from harness import free_port

FAST = ("--bcrypt-cost", "4")
SECRET = "log-test-cluster-secret-8f3a9c"


def basic(user, password):
    raw = f"{user}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def read_log(node):
    with open(node.log_path, "rb") as f:
        return f.read().decode("utf-8")


def json_lines(test, text):
    """Every line of text parsed; fails on the first that is not a JSON
    object with the fixed keys."""
    out = []
    for i, line in enumerate(text.splitlines()):
        try:
            o = json.loads(line)
        except ValueError as e:
            test.fail(f"line {i + 1} is not JSON ({e}): {line!r}")
        test.assertIsInstance(o, dict, line)
        for k in ("time", "level", "component", "caller", "msg"):
            test.assertIn(k, o, line)
        test.assertRegex(o["time"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        out.append(o)
    return out


class JsonLogTest(unittest.TestCase):
    """One node with --log-format json and a cluster secret (for the
    account endpoints)."""

    @classmethod
    def setUpClass(cls):
        harness.skip_unless_atoll(cls)
        cls.node = harness.Node(args=[
            "--log-format", "json", "--cluster-secret", SECRET,
            "--peer-listen", f"127.0.0.1:{free_port()}"] + list(FAST))
        cls.node.start()

    @classmethod
    def tearDownClass(cls):
        cls.node.close()

    def bearer(self):
        return {"Authorization": f"Bearer {SECRET}"}

    def add_user(self, name, password, admin=False):
        r = self.node.request("POST", "/_atoll/users", body=json.dumps(
            {"name": name, "password": password, "admin": admin}).encode(),
            headers=self.bearer())
        self.assertEqual(r.status, 201, r.body)

    def lines(self):
        """The log so far, every line JSON; waits for the lines of the
        last request (written when the loop next waits)."""
        self.node.request("GET", "/livez")
        return json_lines(self, read_log(self.node))

    def access(self, path):
        return [o for o in self.lines()
                if o["component"] == "access" and o.get("path") == path]

    def test_access_lines(self):
        n = self.node
        n.push_image("logs/app", "v1")
        r = n.request("GET", "/v2/logs/app/manifests/v1",
                      headers={"X-Atoll-Request-Id": "rid-123"})
        self.assertEqual(r.status, 200)
        body = r.body
        r = n.request("GET", "/v2/logs/app/tags/list?n=5&password=qwerty1")
        self.assertEqual(r.status, 200)
        n.request("GET", "/v2/logs/missing/manifests/x")

        got = wait_for(lambda: self.access("/v2/logs/app/manifests/v1"), 5)
        a = got[-1]
        self.assertEqual(a["level"], "info")
        self.assertEqual(a["method"], "GET")
        self.assertEqual(a["status"], 200)
        self.assertEqual(a["bytes"], len(body))
        self.assertEqual(a["request_id"], "rid-123")
        self.assertEqual(a["user"], "-")
        self.assertIsInstance(a["duration_ms"], (int, float))
        self.assertRegex(a["remote"], r"^127\.0\.0\.1:\d+$")
        t = self.access("/v2/logs/app/tags/list")[-1]
        self.assertEqual(t["query"], "n=5")
        self.assertNotIn("qwerty1", read_log(n))
        m = self.access("/v2/logs/missing/manifests/x")[-1]
        self.assertEqual(m["status"], 404)
        self.assertEqual(m["request_id"], "-")

    def test_secrets_never_logged(self):
        n = self.node
        self.add_user("sally", "sally-password-77", admin=True)
        r = n.request("GET", "/_atoll/users",
                      headers=basic("sally", "sally-password-77"))
        self.assertEqual(r.status, 200)
        r = n.request("POST", "/_atoll/robots", body=json.dumps(
            {"name": "ci", "permissions": [
                {"repository": "logs/**", "actions": ["pull"]}]}).encode(),
            headers=basic("sally", "sally-password-77"))
        self.assertEqual(r.status, 201, r.body)
        robot_secret = r.json()["secret"]
        n.request("GET", "/v2/", headers=basic("robot$ci", robot_secret))
        n.request("GET", "/_atoll/users",
                  headers=basic("sally", "wrong-password-55"))
        lines = self.lines()
        # the admin's name reaches the access line of her request
        self.assertTrue(any(o.get("user") == "sally" for o in lines))
        text = read_log(n)
        for s in (SECRET, "sally-password-77", robot_secret,
                  "wrong-password-55",
                  base64.b64encode(b"sally:sally-password-77").decode(),
                  base64.b64encode(
                      f"robot$ci:{robot_secret}".encode()).decode()):
            self.assertNotIn(s, text)

    def test_audit_users(self):
        self.add_user("audrey", "audrey-password-1")
        r = self.node.request("DELETE", "/_atoll/users/audrey",
                              headers=self.bearer())
        self.assertEqual(r.status, 200)
        audit = [o for o in self.lines() if o["component"] == "audit"]
        added = [o for o in audit if "added user 'audrey'" in o["msg"]]
        removed = [o for o in audit if "removed user 'audrey'" in o["msg"]]
        self.assertEqual(len(added), 1, audit)
        self.assertEqual(len(removed), 1, audit)
        self.assertIn("the cluster secret from 127.0.0.1", added[0]["msg"])
        self.assertRegex(removed[0]["msg"], r"at index \d+$")

    def test_failed_login_limit(self):
        n = self.node
        self.add_user("mallet", "mallet-password-1", admin=True)
        self.add_user("other", "other-password-1", admin=True)
        for i in range(10):
            r = n.request("GET", "/_atoll/users",
                          headers=basic("mallet", f"guess-{i}-xx"))
            self.assertEqual(r.status, 401, f"attempt {i + 1}")
        r = n.request("GET", "/_atoll/users",
                      headers=basic("mallet", "guess-10-xx"))
        self.assertEqual(r.status, 429)
        self.assertEqual(r.error_codes(), ["TOOMANYREQUESTS"])
        self.assertGreater(int(r.header("Retry-After")), 0)
        # the right password waits for the window too
        r = n.request("GET", "/_atoll/users",
                      headers=basic("mallet", "mallet-password-1"))
        self.assertEqual(r.status, 429)
        # another user from the same address is not affected
        r = n.request("GET", "/_atoll/users",
                      headers=basic("other", "other-password-1"))
        self.assertEqual(r.status, 200)
        metrics = n.request("GET", "/metrics").body.decode()
        self.assertRegex(metrics, r"(?m)^atoll_auth_limited_total [1-9]")


class ClusterAuditTest(unittest.TestCase):
    """Two nodes with --log-format json: audit lines for a join and a
    removal on the leader, and only JSON on either node's stderr."""

    def test_join_and_remove(self):
        harness.skip_unless_atoll(self)
        with Cluster(2, extra=("--log-format", "json"),
                     prefix="log") as c:
            c.start()
            leader = c.leader()
            other = c.followers(leader)[0]
            c.cli("members", "remove", other.name, "--peer",
                  leader.peer_addr, "--cluster-secret-file", c.secret_file)

            def audit():
                leader.request("GET", "/livez")
                return [o for o in json_lines(self, read_log(leader))
                        if o["component"] == "audit"]
            wait_for(lambda: any("removed node" in o["msg"]
                                 for o in audit()), 10)
            lines = audit()
            joined = [o for o in lines if "joined" in o["msg"]]
            removed = [o for o in lines if "removed node" in o["msg"]]
            self.assertTrue(joined, lines)
            self.assertIn(f"node '{other.name}' at {other.peer_addr}",
                          joined[0]["msg"])
            self.assertRegex(joined[0]["msg"], r"at index \d+$")
            self.assertIn(f"'{other.name}'", removed[0]["msg"])
            for node in c.nodes:
                text = read_log(node)
                json_lines(self, text)
                self.assertNotIn(c.secret, text)


if __name__ == "__main__":
    unittest.main()
