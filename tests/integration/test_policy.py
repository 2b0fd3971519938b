"""Access policy and its enforcement on every API endpoint (issue 12):
the matrix of actions by callers on a three-node cluster, requests spread
over the nodes; a policy change made on one node holding on the others
at once; 401 and 403 bodies; access control staying off without
accounts (auth auto) and forced off or on."""
import base64
import hashlib
import json
import os

import harness
import images
from cluster import ClusterTestCase
from harness import ATOLL_BIN, with_query

FAST = ("--bcrypt-cost", "4")
PW = "password-1"

POLICY = {"rules": [
    {"repository": "lib/**", "subjects": ["group:readers"],
     "actions": ["pull"]},
    {"repository": "lib/**", "subjects": ["group:writers"],
     "actions": ["pull", "push", "delete"]},
    {"repository": "public/**", "subjects": ["anonymous", "authenticated"],
     "actions": ["pull"]},
]}


def basic(user, password=PW):
    raw = f"{user}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class PolicyTest(ClusterTestCase):

    @classmethod
    def setUpClass(cls):
        c = cls.start_class_cluster(3, prefix="pol", extra=FAST)
        cls.bearer = {"Authorization": f"Bearer {c.secret}"}
        n0 = c.nodes[0]
        for name, body in (
                ("reader", {"groups": ["readers"]}),
                ("writer", {"groups": ["writers"]}),
                ("boss", {"admin": True})):
            body.update(name=name, password=PW)
            r = n0.request("POST", "/_atoll/users", headers=cls.bearer,
                           body=json.dumps(body).encode())
            assert r.status == 201, r
        r = n0.request("POST", "/_atoll/robots", headers=cls.bearer,
                       body=json.dumps({"name": "ci", "permissions": [
                           {"repository": "lib/**",
                            "actions": ["pull", "push"]}]}).encode())
        assert r.status == 201, r
        cls.robot = {"Authorization": "Basic " + base64.b64encode(
            f"robot$ci:{r.json()['secret']}".encode()).decode()}
        r = n0.request("PUT", "/_atoll/policy", headers=cls.bearer,
                       body=json.dumps(POLICY).encode())
        assert r.status == 200, r
        cls.img = images.small("pol")
        r = cls.push(n0, "lib/app", "v1", cls.bearer)
        assert r.status == 201, r
        r = cls.push(n0, "secret/app", "v1", cls.bearer)
        assert r.status == 201, r
        # a blob in secret/app only: a mount without from finds no source
        # a reader of lib/** may pull
        cls.secret_blob = b"only in secret/app"
        r = n0.request("POST", "/v2/secret/app/blobs/uploads/",
                       headers=cls.bearer)
        assert r.status == 202, r
        r = n0.request("PUT", with_query(
            r.header("location"), f"digest={digest(cls.secret_blob)}"),
            body=cls.secret_blob, headers=cls.bearer)
        assert r.status == 201, r
        # the same blobs, another manifest: re-pointing v1 to it is an
        # overwrite, pointing a new tag to it a push
        doc = json.loads(cls.img.manifest)
        doc["annotations"] = {"policy.test": "other"}
        cls.other = json.dumps(doc).encode()
        cls.callers = {"anonymous": {}, "reader": basic("reader"),
                       "writer": basic("writer"), "robot": cls.robot,
                       "admin": basic("boss")}

    @classmethod
    def push(cls, node, repo, tag, hdrs):
        img = cls.img
        for blob in (img.config, img.layers[0]):
            r = node.request("POST", f"/v2/{repo}/blobs/uploads/",
                             headers=hdrs)
            if r.status != 202:
                return r
            r = node.request("PUT", with_query(r.header("location"),
                                               f"digest={digest(blob)}"),
                             body=blob, headers=dict(
                                 hdrs, **{"Content-Type":
                                          "application/octet-stream"}))
            if r.status != 201:
                return r
        return node.request("PUT", f"/v2/{repo}/manifests/{tag}",
                            body=img.manifest, headers=dict(
                                hdrs, **{"Content-Type":
                                         images.OCI_MANIFEST}))

    def tearDown(self):
        self.assert_nodes_alive()

    def test_matrix(self):
        nodes = self.cluster.nodes
        img = self.img
        missing = "sha256:" + "0" * 64
        acts = {
            "pull": ("GET", "/v2/lib/app/manifests/v1"),
            "pull blob": ("HEAD", f"/v2/lib/app/blobs/{digest(img.config)}"),
            "push": ("POST", "/v2/lib/app/blobs/uploads/"),
            "delete": ("DELETE", f"/v2/lib/app/manifests/{missing}"),
            "tags": ("GET", "/v2/lib/app/tags/list"),
            "public pull": ("GET", "/v2/public/x/tags/list"),
            "other repo": ("GET", "/v2/other/app/tags/list"),
            "catalog": ("GET", "/v2/_catalog"),
            "base": ("GET", "/v2/"),
            "admin": ("GET", "/_atoll/placement"),
            "gc": ("POST", "/_atoll/gc?dry_run=true"),
            "new tag": ("PUT", "/v2/lib/app/manifests/t-{who}"),
            "overwrite": ("PUT", "/v2/lib/app/manifests/v1"),
            "mount": ("POST", "/v2/lib/m-{who}/blobs/uploads/?mount="
                      f"{digest(img.config)}&from=lib/app"),
            "mount unreadable": ("POST", "/v2/lib/n-{who}/blobs/uploads/"
                                 f"?mount={digest(img.config)}"
                                 "&from=secret/app"),
            # OCI 1.1's automatic mount: from any repository the caller
            # may pull
            "mount any": ("POST", "/v2/lib/a-{who}/blobs/uploads/?mount="
                          f"{digest(img.config)}"),
            "mount any unreadable": (
                "POST", "/v2/lib/b-{who}/blobs/uploads/"
                f"?mount={digest(self.secret_blob)}"),
        }
        order = ["anonymous", "reader", "writer", "robot", "admin"]
        matrix = {  # anonymous, reader, writer, robot, admin
            "pull":        (401, 200, 200, 200, 200),
            "pull blob":   (401, 200, 200, 200, 200),
            "push":        (401, 403, 202, 202, 202),
            "delete":      (401, 403, 404, 403, 404),
            "tags":        (401, 200, 200, 200, 200),
            "public pull": (404, 404, 404, 403, 404),
            "other repo":  (401, 403, 403, 403, 404),
            "catalog":     (200, 200, 200, 200, 200),
            "base":        (401, 200, 200, 200, 200),
            "admin":       (401, 403, 403, 403, 200),
            "gc":          (401, 403, 403, 403, 200),
            # re-pointing a tag needs overwrite: nobody but the admin
            "new tag":     (401, 403, 201, 201, 201),
            "overwrite":   (401, 403, 403, 403, 201),
            # a mount needs pull on from; without it, an upload session
            "mount":       (401, 403, 201, 201, 201),
            "mount unreadable": (401, 403, 202, 202, 201),
            "mount any":   (401, 403, 201, 201, 201),
            "mount any unreadable": (401, 403, 202, 202, 201),
        }
        i = 0
        for act, want in matrix.items():
            method, path = acts[act]
            for who, status in zip(order, want):
                node = nodes[i % 3]
                i += 1
                hdrs = dict(self.callers[who])
                body = None
                if method == "PUT":
                    body = self.other
                    hdrs["Content-Type"] = images.OCI_MANIFEST
                r = node.request(method, path.format(who=who), body=body,
                                 headers=hdrs)
                self.assertEqual(r.status, status,
                                 f"{act} as {who} on {node.name}: {r!r}")
                if status == 401:
                    self.assertEqual(r.header("www-authenticate"),
                                     'Basic realm="atoll"')
                if method == "HEAD":
                    continue  # no body
                if status == 401:
                    self.assertIn("UNAUTHORIZED", r.error_codes())
                if status == 403:
                    self.assertIn("DENIED", r.error_codes())
        # /metrics counts the gate's decisions (summed over the nodes)
        counts = {}
        for n in nodes:
            for line in n.request("GET", "/metrics").body.decode() \
                    .splitlines():
                if line.startswith("atoll_gate_decisions_total{"):
                    result = line.split('"')[1]
                    counts[result] = counts.get(result, 0) + \
                        int(line.split()[-1])
        for result in ("allowed", "401", "403"):
            self.assertGreater(counts.get(result, 0), 0, counts)
        # the catalog names only what the caller may pull
        for who, want in (("anonymous", []), ("reader", ["lib/app"]),
                          ("robot", ["lib/app"]),
                          ("admin", ["lib/app", "secret/app"])):
            r = nodes[2].request("GET", "/v2/_catalog",
                                 headers=self.callers[who])
            got = [x for x in r.json()["repositories"]
                   if x in ("lib/app", "secret/app")]
            self.assertEqual(got, want, who)
        # wrong credentials are 401 whoever they name
        for hdrs in (basic("reader", "wrong-pass"), basic("nobody"),
                     {"Authorization": "Bearer not-a-token"},
                     {"Authorization": "Basic !!"}):
            r = nodes[1].request("GET", "/v2/", headers=hdrs)
            self.assertEqual(r.status, 401, f"{hdrs}: {r!r}")
        # open endpoints stay open
        for path in ("/livez", "/readyz", "/metrics"):
            r = nodes[2].request("GET", path)
            self.assertEqual(r.status, 200, f"{path}: {r!r}")
        # the cluster views name nodes and addresses: admins only
        for path in ("/_atoll/status", "/_atoll/members"):
            for who, want in (("anonymous", 401), ("reader", 403),
                              ("admin", 200)):
                r = nodes[2].request("GET", path, headers=self.callers[who])
                self.assertEqual(r.status, want, f"{path} {who}: {r!r}")
            r = nodes[2].request("GET", path, headers=self.bearer)
            self.assertEqual(r.status, 200, f"{path}: {r!r}")

    def test_failed_logins_are_limited(self):
        """Ten wrong passwords for one name on a node: the next attempt is
        429 without a bcrypt, also with the right password; other names
        from the same address go on."""
        n = self.cluster.nodes[1]
        r = n.request("POST", "/_atoll/users", headers=self.bearer,
                      body=json.dumps({"name": "victim", "password": PW})
                      .encode())
        self.assertEqual(r.status, 201, r)
        for _ in range(10):
            r = n.request("GET", "/v2/", headers=basic("victim", "wrong-1"))
            self.assertEqual(r.status, 401, r)
        for pw in ("wrong-1", PW):
            r = n.request("GET", "/v2/", headers=basic("victim", pw))
            self.assertEqual(r.status, 429, r)
            self.assertIn("TOOMANYREQUESTS", r.error_codes())
            self.assertTrue(int(r.header("retry-after")) >= 1)
        r = n.request("GET", "/v2/", headers=basic("reader"))
        self.assertEqual(r.status, 200, r)
        # the limit is per node: another node lets the victim in
        r = self.cluster.nodes[2].request("GET", "/v2/",
                                          headers=basic("victim"))
        self.assertEqual(r.status, 200, r)

    def test_change_on_one_node_holds_on_the_others_at_once(self):
        c = self.cluster
        a, b, d = c.nodes
        reader = self.callers["reader"]
        path = "/v2/lib/app/blobs/uploads/"
        self.assertEqual(b.request("POST", path, headers=reader).status, 403)
        grant = {"rules": POLICY["rules"] + [
            {"repository": "lib/app", "subjects": ["user:reader"],
             "actions": ["pull", "push"]}]}
        pfile = os.path.join(c.tmp, "policy.json")
        with open(pfile, "w") as f:
            json.dump(grant, f)
        p = harness.run_tool([ATOLL_BIN, "policy", "set", pfile, "--addr",
                              a.addr, "--cluster-secret-file",
                              c.secret_file], timeout=60)
        self.assertIn('"index"', p.stdout)
        # no X-Atoll-Min-Index: the gate's read barrier is enough
        for n in (b, d):
            r = n.request("POST", path, headers=reader)
            self.assertEqual(r.status, 202, f"{n.name}: {r!r}")
        # and back (as the admin user, over HTTP): revoked at once
        r = a.request("PUT", "/_atoll/policy", headers=basic("boss"),
                      body=json.dumps(POLICY).encode())
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("x-atoll-index"))
        for n in (b, d):
            r = n.request("POST", path, headers=reader)
            self.assertEqual(r.status, 403, f"{n.name}: {r!r}")
        p = harness.run_tool([ATOLL_BIN, "policy", "get", "--addr", d.addr,
                              "--cluster-secret-file", c.secret_file],
                             timeout=60)
        doc = json.loads(p.stdout)
        self.assertTrue(doc["set"])
        self.assertEqual(len(doc["rules"]), 3)
        self.assertEqual(doc["rules"][2]["subjects"],
                         ["anonymous", "authenticated"])
        # a non-admin may not change the policy; bad policies are 400
        r = b.request("PUT", "/_atoll/policy", headers=self.callers["writer"],
                      body=json.dumps(POLICY).encode())
        self.assertEqual(r.status, 403, r)
        for bad in ({"rules": [{"repository": "A", "subjects": ["anonymous"],
                                "actions": []}]},
                    {"rules": [{"repository": "a", "subjects": ["who"],
                                "actions": []}]},
                    {"rules": [{"repository": "a", "subjects": ["anonymous"],
                                "actions": ["fly"]}]},
                    {"nope": 1}):
            r = b.request("PUT", "/_atoll/policy", headers=self.bearer,
                          body=json.dumps(bad).encode())
            self.assertEqual(r.status, 400, f"{bad}: {r!r}")
        # the same policy written in YAML, set with the CLI on another
        # node: the same rules
        yfile = os.path.join(c.tmp, "policy.yaml")
        with open(yfile, "w") as f:
            f.write("# readers pull, writers push and delete\n"
                    "rules:\n"
                    "  - repository: lib/**\n"
                    "    subjects: [group:readers]\n"
                    "    actions: [pull]\n"
                    "  - repository: \"lib/**\"\n"
                    "    subjects:\n"
                    "      - group:writers\n"
                    "    actions: [pull, push, delete]\n"
                    "  - repository: public/**\n"
                    "    subjects: [anonymous, authenticated]\n"
                    "    actions: [pull]\n")
        harness.run_tool([ATOLL_BIN, "policy", "set", yfile, "--addr",
                          b.addr, "--cluster-secret-file", c.secret_file],
                         timeout=60)
        p = harness.run_tool([ATOLL_BIN, "policy", "get", "--addr", a.addr,
                              "--cluster-secret-file", c.secret_file],
                             timeout=60)
        self.assertEqual(json.loads(p.stdout)["rules"], doc["rules"])
        with open(yfile, "w") as f:
            f.write("rules: [ {repository: a, &x subjects: []} ]\n")
        p = harness.run_tool([ATOLL_BIN, "policy", "set", yfile, "--addr",
                              b.addr, "--cluster-secret-file", c.secret_file],
                             timeout=60, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("yaml", p.stderr)
        # the audit line names who, from where, the index
        self.assertTrue(any("set the access policy" in n.log()
                            for n in c.nodes))


class NoLeaderTest(ClusterTestCase):
    """A node cut off from the majority keeps serving pulls of what it
    holds to callers the state it applied lets in; writes get 503."""

    def test_pulls_without_a_leader(self):
        c = self.start_cluster(3, prefix="pnol", extra=FAST)
        a, b, d = c.nodes
        bearer = {"Authorization": f"Bearer {c.secret}"}
        r = a.request("POST", "/_atoll/users", headers=bearer,
                      body=json.dumps({"name": "reader", "password": PW})
                      .encode())
        self.assertEqual(r.status, 201, r)
        PolicyTest.img = images.small("nol")
        r = PolicyTest.push(a, "lib/app", "v1", bearer)
        self.assertEqual(r.status, 201, r)
        man = digest(PolicyTest.img.manifest)
        cfg = digest(PolicyTest.img.config)
        idx = r.header("x-atoll-index")
        reader = dict(basic("reader"), **{"X-Atoll-Min-Index": idx})
        # d holds the blob (fetched once) before it is cut off
        self.assertEqual(d.request("GET", f"/v2/lib/app/blobs/{cfg}",
                                   headers=reader).status, 200)
        for n in (a, b):
            n.kill()
        reader = basic("reader")
        for method, path in (("GET", f"/v2/lib/app/blobs/{cfg}"),
                             ("HEAD", f"/v2/lib/app/manifests/{man}"),
                             ("GET", "/v2/")):
            r = d.request(method, path, headers=reader, timeout=30)
            self.assertEqual(r.status, 200, f"{method} {path}: {r!r}")
        r = d.request("GET", "/v2/", headers=basic("reader", "wrong-pass"),
                      timeout=30)
        self.assertEqual(r.status, 401, r)
        r = d.request("POST", "/v2/lib/app/blobs/uploads/", headers=reader,
                      timeout=30)
        self.assertEqual(r.status, 503, r)


class AutoTest(ClusterTestCase):
    """auth auto: open until the first account; auth off: always open."""

    def test_auto_then_on_and_forced_off(self):
        c = self.start_cluster(1, prefix="pauto", extra=FAST,
                               per_node={})
        n = c.nodes[0]
        self.assertEqual(n.request("GET", "/v2/").status, 200)
        self.assertEqual(n.request("POST", "/v2/x/blobs/uploads/").status,
                         202)
        bearer = {"Authorization": f"Bearer {c.secret}"}
        r = n.request("PUT", "/_atoll/policy", headers=bearer,
                      body=b'{"rules":[]}')
        self.assertEqual(r.status, 200, r)
        r = n.request("GET", "/v2/")
        self.assertEqual(r.status, 401, r)
        self.assertEqual(n.request("POST", "/v2/x/blobs/uploads/").status,
                         401)
        # the cluster secret may everything
        self.assertEqual(n.request("POST", "/v2/x/blobs/uploads/",
                                   headers=bearer).status, 202)
        # reset: back to open (no account exists)
        r = n.request("DELETE", "/_atoll/policy", headers=bearer)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(n.request("GET", "/v2/").status, 200)

    def test_auth_off(self):
        c = self.start_cluster(1, prefix="poff", extra=FAST + ("--auth",
                                                                "off"))
        n = c.nodes[0]
        bearer = {"Authorization": f"Bearer {c.secret}"}
        r = n.request("PUT", "/_atoll/policy", headers=bearer,
                      body=b'{"rules":[]}')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(n.request("GET", "/v2/").status, 200)
        self.assertEqual(n.request("POST", "/v2/x/blobs/uploads/").status,
                         202)
