"""Users and robot accounts, replicated (issue 12, second step): the
account endpoints /_atoll/users and /_atoll/robots and the atoll users /
atoll robots CLI on a three-node cluster, the htpasswd file of one node,
and what every node keeps across a restart. A verified password shows as
403 on the account endpoints for a non-admin (authenticated, not
allowed) and 200 for an admin; a refused one as 401."""
import base64
import json
import os
import signal
import tempfile
import time
import warnings

import harness
from cluster import ClusterTestCase, wait_for
from harness import ATOLL_BIN

# cost 4: a bcrypt takes about a millisecond instead of 80
FAST = ("--bcrypt-cost", "4")


def basic(user, password):
    raw = f"{user}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def bcrypt_line(user, password):
    """An htpasswd line as `htpasswd -B` writes it ($2y$)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
        h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH,
                                               rounds=16))
    return f"{user}:$2y${h[4:]}\n"


def names(r, key):
    return sorted(u["name"] for u in r.json()[key])


class UsersClusterTest(ClusterTestCase):
    """One three-node cluster for the account calls."""

    @classmethod
    def setUpClass(cls):
        cls.start_class_cluster(
            3, prefix="usr",
            extra=FAST + ("--snapshot-threshold", "16",
                          "--snapshot-trailing", "8"))

    def tearDown(self):
        self.assert_nodes_alive()

    # ---- helpers ----
    def cli(self, *args, node=None, input=None, check=True):
        node = node or self.cluster.nodes[0]
        return harness.run_tool([ATOLL_BIN] + list(args) +
                                ["--addr", node.addr], input=input,
                                check=check, timeout=60)

    def secret_args(self):
        return ["--cluster-secret-file", self.cluster.secret_file]

    def bearer(self):
        return {"Authorization": f"Bearer {self.cluster.secret}"}

    def add_user(self, name, password, admin=False, node=None):
        args = ["users", "add", name, "--password-stdin"] + self.secret_args()
        if admin:
            args.append("--admin")
        p = self.cli(*args, node=node, input=(password + "\n").encode())
        self.assertIn(f"user '{name}' added", p.stdout)
        return int(p.stdout.rsplit("index ", 1)[1].rstrip(")\n"))

    def users_status(self, node, user, password, index=None):
        """The status of an account call authenticated as user (after the
        node applied index, when given)."""
        hdrs = basic(user, password)
        if index:
            hdrs["X-Atoll-Min-Index"] = str(index)
        return node.request("GET", "/_atoll/users", headers=hdrs).status

    def assert_everywhere(self, user, password, status, index=None):
        for n in self.cluster.nodes:
            got = self.users_status(n, user, password, index)
            self.assertEqual(got, status, f"{user} on {n.name}: {got}")

    def assert_soon_everywhere(self, user, password, status):
        """A change seen by every node within a heartbeat or so: the
        followers apply it after the node that answered."""
        for n in self.cluster.nodes:
            wait_for(lambda: self.users_status(n, user, password) == status,
                     5, what=f"{user} {status} on {n.name}")

    def assert_no_secret_in_logs(self, *secrets):
        for n in self.cluster.nodes:
            with open(n.log_path, "rb") as f:
                log = f.read().decode(errors="replace")
            for s in secrets:
                self.assertNotIn(s, log, f"a secret in the log of {n.name}")

    # ---- tests ----
    def test_user_added_on_one_node_holds_on_every_node(self):
        c = self.cluster
        index = self.add_user("alice", "alice-pass-1", admin=True,
                              node=c.nodes[1])
        # at once, without waiting: a follower that has not applied the
        # user yet asks for a read barrier before it refuses
        self.assert_everywhere("alice", "alice-pass-1", 200)
        for n in c.nodes:
            r = n.request("GET", "/_atoll/users",
                          headers=dict(self.bearer(),
                                       **{"X-Atoll-Min-Index": str(index)}))
            self.assertEqual(r.status, 200, r)
            alice = [u for u in r.json()["users"] if u["name"] == "alice"]
            self.assertEqual(len(alice), 1, r.json())
            self.assertTrue(alice[0]["admin"])
            self.assertEqual(alice[0]["source"], "replicated")
            self.assertNotIn("password", r.body.decode())
            self.assertNotIn("$2b$", r.body.decode())
        # the CLI as alice, on each node
        pwfile = os.path.join(c.tmp, "alice.pw")
        with open(pwfile, "w") as f:
            f.write("alice-pass-1\n")
        for n in c.nodes:
            p = self.cli("users", "list", "--user", "alice",
                         "--user-password-file", pwfile, node=n)
            self.assertIn("alice", p.stdout)

        # a new password on another node: the old one fails everywhere
        # (at once after the change's index; within a heartbeat anyway,
        # the cached verification of the old one included)
        p = self.cli("users", "passwd", "alice", "--password-stdin",
                     *self.secret_args(), node=c.nodes[2],
                     input=b"alice-pass-2\n")
        self.assertIn("new password", p.stdout)
        index = int(p.stdout.rsplit("index ", 1)[1].rstrip(")\n"))
        self.assert_everywhere("alice", "alice-pass-1", 401, index)
        self.assert_everywhere("alice", "alice-pass-2", 200)

        # added twice: 409; passwd of nobody: 404
        p = self.cli("users", "add", "alice", "--password-stdin",
                     *self.secret_args(), input=b"whatever-1\n", check=False)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("exists", p.stderr)
        r = c.nodes[0].request("POST", "/_atoll/users/passwd",
                               body=b'{"name":"nobody","password":"x2345678"}',
                               headers=self.bearer())
        self.assertEqual(r.status, 404, r)

        # removed on one node: gone everywhere
        p = self.cli("users", "remove", "alice", *self.secret_args(),
                     node=c.nodes[0])
        self.assertIn("removed", p.stdout)
        self.assert_soon_everywhere("alice", "alice-pass-2", 401)
        for n in c.nodes:
            p = self.cli("users", "list", *self.secret_args(), node=n)
            self.assertNotIn("alice", p.stdout)
        self.assert_no_secret_in_logs("alice-pass-1", "alice-pass-2")

    def test_robot_secret_shown_once_and_expires(self):
        c = self.cluster
        p = self.cli("robots", "add", "ci", "--permission", "lib/**:pull,push",
                     "--permission", "public/*:pull", "--expires", "4s",
                     *self.secret_args(), node=c.nodes[2])
        secret = p.stdout.strip()
        self.assertEqual(len(secret), 43, p.stdout)
        self.assertIn("shown only", p.stderr)
        t0 = time.time()
        # verified (a robot is no admin: 403, not 401) on every node
        self.assert_everywhere("robot$ci", secret, 403)
        self.assert_everywhere("robot$ci", secret[:-1] + "x"
                               if secret[-1] != "x" else secret[:-1] + "y",
                               401)
        self.assert_everywhere("ci", secret, 401)  # robots need the prefix
        for n in c.nodes:
            r = n.request("GET", "/_atoll/robots", headers=self.bearer())
            self.assertEqual(r.status, 200, r)
            self.assertNotIn(secret, r.body.decode())
            robot = r.json()["robots"][0]
            self.assertEqual(robot["name"], "robot$ci")
            self.assertEqual(robot["permissions"],
                             [{"repository": "lib/**",
                               "actions": ["pull", "push"]},
                              {"repository": "public/*",
                               "actions": ["pull"]}])
            self.assertNotIn("secret", robot)
        p = self.cli("robots", "list", *self.secret_args())
        self.assertIn("robot$ci", p.stdout)
        self.assertNotIn(secret, p.stdout)
        # at its expiry it stops verifying, cached or not
        time.sleep(max(0, t0 + 4.5 - time.time()))
        self.assert_everywhere("robot$ci", secret, 401)
        p = self.cli("robots", "list", *self.secret_args())
        self.assertIn("expired", p.stdout)
        self.cli("robots", "remove", "robot$ci", *self.secret_args())
        r = c.nodes[1].request("GET", "/_atoll/robots", headers=self.bearer())
        self.assertEqual(r.json()["robots"], [])
        self.assert_no_secret_in_logs(secret)

    def test_anonymous_401_non_admin_403(self):
        c = self.cluster
        self.add_user("bob", "bob-pass-1")
        calls = [("GET", "/_atoll/users", None),
                 ("POST", "/_atoll/users",
                  b'{"name":"eve","password":"eve-pass-1","admin":true}'),
                 ("POST", "/_atoll/users/remove", b'{"name":"bob"}'),
                 ("DELETE", "/_atoll/users/bob", None),
                 ("GET", "/_atoll/robots", None),
                 ("POST", "/_atoll/robots",
                  b'{"name":"x","permissions":[{"repository":"a",'
                  b'"actions":["pull"]}]}')]
        for n in c.nodes:
            for method, path, body in calls:
                for hdrs in ({}, {"Authorization": "Bearer wrong"},
                             {"Authorization": "Basic !!"},
                             basic("bob", "bob-pass-2"),
                             basic("nobody", "bob-pass-1")):
                    r = n.request(method, path, body=body, headers=hdrs)
                    self.assertEqual(r.status, 401,
                                     f"{method} {path} {hdrs} on {n.name}")
                    self.assertEqual(r.header("www-authenticate"),
                                     'Basic realm="atoll"')
                    self.assertIn("UNAUTHORIZED", r.error_codes())
                r = n.request(method, path, body=body,
                              headers=basic("bob", "bob-pass-1"))
                self.assertEqual(r.status, 403, f"{method} {path}: {r!r}")
                self.assertIn("DENIED", r.error_codes())
        # nothing changed
        r = c.nodes[0].request("GET", "/_atoll/users", headers=self.bearer())
        self.assertIn("bob", names(r, "users"))
        self.assertNotIn("eve", names(r, "users"))
        # the cluster secret may; a DELETE by path works too
        r = c.nodes[1].request("DELETE", "/_atoll/users/bob",
                               headers=self.bearer())
        self.assertEqual(r.status, 200, r)
        self.assert_everywhere("bob", "bob-pass-1", 401,
                               r.header("x-atoll-index"))

    def test_bad_input(self):
        n = self.cluster.nodes[0]
        for body in (b"", b"{", b"[]", b'{"name":"a:b","password":"x2345678"}',
                     b'{"name":"robot$x","password":"x2345678"}',
                     b'{"name":"ok","password":"short"}',
                     b'{"name":"ok","password":"' + b"x" * 73 + b'"}',
                     b'{"name":"ok","password":"x2345678","groups":["a b"]}',
                     b'{"name":"ok","password":"x2345678","admin":"yes"}',
                     b'{"name":"ok","name":"ok2","password":"x2345678"}'):
            r = n.request("POST", "/_atoll/users", body=body,
                          headers=self.bearer())
            self.assertEqual(r.status, 400, f"{body!r}: {r!r}")
        for body in (b'{"name":"r1"}',
                     b'{"name":"r1","permissions":[]}',
                     b'{"name":"r1","permissions":[{"repository":"A",'
                     b'"actions":["pull"]}]}',
                     b'{"name":"r1","permissions":[{"repository":"a",'
                     b'"actions":["fly"]}]}',
                     b'{"name":"r1","expires_in":"soon","permissions":'
                     b'[{"repository":"a","actions":["pull"]}]}',
                     b'{"name":"R1","permissions":[{"repository":"a",'
                     b'"actions":["pull"]}]}'):
            r = n.request("POST", "/_atoll/robots", body=body,
                          headers=self.bearer())
            self.assertEqual(r.status, 400, f"{body!r}: {r!r}")
        r = n.request("PUT", "/_atoll/users", body=b"{}", headers=self.bearer())
        self.assertEqual(r.status, 405, r)
        r = n.request("GET", "/_atoll/users/x/y", headers=self.bearer())
        self.assertEqual(r.status, 404, r)
        r = n.request("POST", "/_atoll/users", body=b"x" * 70000,
                      headers=self.bearer())
        self.assertIn(r.status, (400, 413), r)

    def test_zz_restart_keeps_accounts(self):
        """Runs last: every node restarts (from its snapshot and log)."""
        c = self.cluster
        for i in range(12):  # past the snapshot threshold
            self.add_user(f"u{i:02d}", f"u{i:02d}-pass-1",
                          node=c.nodes[i % 3])
        self.add_user("root", "root-pass-1", admin=True)
        for n in c.nodes:
            n.terminate()
        for n in c.nodes:
            n.start(wait=False)
        for n in c.nodes:
            n.wait_ready()
        c.wait_leader(timeout=30)
        c.wait_serving()
        for n in c.nodes:
            snaps = [f for f in os.listdir(os.path.join(n.data_dir, "raft"))
                     if f.startswith("snapshot-")]
            self.assertTrue(snaps, f"no snapshot on {n.name}")
            r = n.request("GET", "/_atoll/users",
                          headers=basic("root", "root-pass-1"))
            self.assertEqual(r.status, 200, r)
            self.assertTrue({f"u{i:02d}" for i in range(12)} <=
                            set(names(r, "users")), r.json())
            self.assertEqual(self.users_status(n, "u07", "u07-pass-1"), 403)
            self.assertEqual(self.users_status(n, "u07", "u07-pass-2"), 401)


class HtpasswdTest(harness.TestCase):
    """Users of one node's htpasswd file: read at start and on SIGHUP; a
    bad file stops the start naming the line."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="atoll-htpasswd-")
        self.addCleanup(lambda: __import__("shutil").rmtree(
            self.tmp, ignore_errors=True))
        self.file = os.path.join(self.tmp, "htpasswd")
        self.secret = "htpasswd-test-secret"

    def write(self, text):
        with open(self.file, "w") as f:
            f.write(text)

    def start(self):
        return self.start_node(args=FAST + ("--htpasswd", self.file,
                                            "--cluster-secret", self.secret))

    def test_htpasswd_users_and_sighup(self):
        self.write("# local users\n" + bcrypt_line("dave", "dave-pass-1"))
        n = self.start()

        def status(user, password):
            return n.request("GET", "/_atoll/users",
                             headers=basic(user, password)).status
        self.assertEqual(status("dave", "dave-pass-1"), 403)  # verified
        self.assertEqual(status("dave", "dave-pass-2"), 401)
        self.assertEqual(status("erin", "erin-pass-1"), 401)
        r = n.request("GET", "/_atoll/users",
                      headers={"Authorization": f"Bearer {self.secret}"})
        self.assertEqual(r.json()["users"],
                         [{"name": "dave", "admin": False, "groups": [],
                           "source": "htpasswd"}])

        # SIGHUP reads the file again
        self.write(bcrypt_line("erin", "erin-pass-1"))
        n.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: status("erin", "erin-pass-1") == 403, 10,
                 what="erin after SIGHUP")
        self.assertEqual(status("dave", "dave-pass-1"), 401)
        # a bad file on SIGHUP: an error naming the line, the table stays
        self.write(bcrypt_line("erin", "erin-pass-1") +
                   "frank:$apr1$abc$defghijklmnopqrstuvwxy\n")
        n.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "line 2" in n.log(), 10, what="the reload error")
        self.assertTrue(n.alive())
        self.assertEqual(status("erin", "erin-pass-1"), 403)
        self.assertNotIn("erin-pass-1", n.log())
        n.close()

    def test_bad_htpasswd_or_cost_stops_the_start(self):
        self.write(bcrypt_line("dave", "dave-pass-1") + "bad line\n")
        for args in (("--htpasswd", self.file),
                     ("--htpasswd", os.path.join(self.tmp, "missing")),
                     ("--bcrypt-cost", "3"), ("--bcrypt-cost", "32")):
            p = harness.run_tool([ATOLL_BIN, "serve", "--listen",
                                  "127.0.0.1:0", "--data-dir",
                                  os.path.join(self.tmp, "data")] + list(args),
                                 check=False, timeout=30)
            self.assertNotEqual(p.returncode, 0, args)
            err = p.stdout + p.stderr
            if args[1] == self.file:
                self.assertIn("line 2", err)
                self.assertIn(self.file, err)
            elif args[0] == "--bcrypt-cost":
                self.assertIn("bcrypt_cost", err)
            else:
                self.assertIn("missing", err)


if __name__ == "__main__":
    import unittest
    unittest.main()
