"""Bearer tokens (issue 12): the token endpoint of every node on a
three-node cluster. A token fetched from one node (GET with Basic, POST
with the OAuth2 password form, or anonymous) carries the claims the
registry token spec names, is signed ES256 by the cluster's one current
key, and verifies against the public keys every node serves at
/_atoll/token/jwks (checked here with the `cryptography` package, not
with atoll's own code). Scopes merge; wrong passwords get 401 and no
token; a rotation on another node gives a new kid everywhere while the
old key keeps verifying."""
import base64
import json
import os
import time
import unittest
import urllib.parse
import warnings

import harness
from cluster import ClusterTestCase, wait_for
from harness import ATOLL_BIN

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import \
        encode_dss_signature
    HAVE_CRYPTO = True
except ImportError:  # pragma: no cover
    HAVE_CRYPTO = False

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


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def parts(token):
    h, p, s = token.split(".")
    return json.loads(b64d(h)), json.loads(b64d(p)), s


def verify_es256(token, jwk):
    """True when token's signature verifies with the public JWK."""
    x = int.from_bytes(b64d(jwk["x"]), "big")
    y = int.from_bytes(b64d(jwk["y"]), "big")
    pub = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    signed, sig = token.rsplit(".", 1)
    raw = b64d(sig)
    if len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                               int.from_bytes(raw[32:], "big"))
    try:
        pub.verify(der, signed.encode(), ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


class TokenClusterTest(ClusterTestCase):
    """One three-node cluster for the token calls."""

    @classmethod
    def setUpClass(cls):
        cls.start_class_cluster(3, prefix="tok", extra=FAST)
        c = cls.cluster
        p = harness.run_tool(
            [ATOLL_BIN, "users", "add", "alice", "--password-stdin",
             "--admin", "--cluster-secret-file", c.secret_file,
             "--addr", c.nodes[0].addr],
            input=b"alice-pass-1\n", check=True, timeout=60)
        assert "added" in p.stdout, p.stdout
        r = c.nodes[1].request(
            "POST", "/_atoll/users",
            body=json.dumps({"name": "bob", "password": "bob-pass-12"})
            .encode(),
            headers={"Authorization": f"Bearer {c.secret}",
                     "Content-Type": "application/json"})
        assert r.status == 201, r

    def tearDown(self):
        self.assert_nodes_alive()

    # ---- helpers ----
    def get_token(self, node, query, headers=None, status=200):
        r = node.request("GET", "/_atoll/token?" + query, headers=headers)
        self.assertEqual(r.status, status, r)
        return r

    def post_token(self, node, form, status=200):
        body = urllib.parse.urlencode(form).encode()
        r = node.request("POST", "/_atoll/token", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, status, r)
        return r

    def jwks(self, node):
        r = node.request("GET", "/_atoll/token/jwks")
        self.assertEqual(r.status, 200, r)
        return {k["kid"]: k for k in r.json()["keys"]}

    def jwks_has(self, node, kid):
        return kid in self.jwks(node)

    def assert_verifies_everywhere(self, token):
        """Every node serves the token's key, and it verifies the token."""
        kid = parts(token)[0]["kid"]
        for n in self.cluster.nodes:
            wait_for(lambda: self.jwks_has(n, kid), 5,
                     what=f"kid {kid} on {n.name}")
            self.assertTrue(verify_es256(token, self.jwks(n)[kid]),
                            f"token does not verify on {n.name}")

    # ---- tests ----
    def test_get_with_basic_gives_a_spec_token_valid_on_every_node(self):
        c = self.cluster
        before = int(time.time())
        r = self.get_token(
            c.nodes[0],
            "service=atoll&scope=repository:lib/app:pull&account=alice",
            headers=basic("alice", "alice-pass-1"))
        doc = r.json()
        self.assertEqual(doc["token"], doc["access_token"])
        self.assertEqual(doc["expires_in"], 300)
        self.assertRegex(doc["issued_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(r.headers.get("cache-control"), "no-store")
        header, claims, _ = parts(doc["token"])
        self.assertEqual(header["alg"], "ES256")
        self.assertEqual(header["typ"], "JWT")
        self.assertEqual(len(header["kid"]), 43)
        self.assertEqual(claims["iss"], "atoll")
        self.assertEqual(claims["aud"], "atoll")
        self.assertEqual(claims["sub"], "alice")
        self.assertTrue(claims["jti"])
        self.assertLessEqual(abs(claims["iat"] - before), 5)
        self.assertEqual(claims["nbf"], claims["iat"])
        self.assertEqual(claims["exp"], claims["iat"] + 300)
        self.assertEqual(claims["access"], [
            {"type": "repository", "name": "lib/app", "actions": ["pull"]}])
        if HAVE_CRYPTO:
            self.assert_verifies_everywhere(doc["token"])

    def test_all_nodes_sign_with_the_same_key(self):
        kids = set()
        for n in self.cluster.nodes:
            r = self.get_token(n, "service=atoll",
                               headers=basic("bob", "bob-pass-12"))
            kids.add(parts(r.json()["token"])[0]["kid"])
        self.assertEqual(len(kids), 1, kids)
        if HAVE_CRYPTO:
            self.assert_verifies_everywhere(r.json()["token"])
        # the JWKS is public only
        for n in self.cluster.nodes:
            for k in self.jwks(n).values():
                self.assertNotIn("d", k)
                self.assertEqual((k["kty"], k["crv"], k["alg"]),
                                 ("EC", "P-256", "ES256"))

    def test_scopes_merge(self):
        # helm asks pull and pull,push apart; entries in one scope are
        # separated by spaces ('+' in a query)
        q = ("service=atoll&scope=repository:lib/app:pull"
             "&scope=repository:lib/app:pull,push"
             "&scope=repository:other/x:pull+registry:catalog:*"
             "&scope=repository:lib/app:delete%20repository:Bad_Name:pull"
             "&scope=weird:thing:pull")
        r = self.get_token(self.cluster.nodes[1], q,
                           headers=basic("bob", "bob-pass-12"))
        access = parts(r.json()["token"])[1]["access"]
        self.assertEqual(access, [
            {"type": "repository", "name": "lib/app",
             "actions": ["pull", "push", "delete"]},
            {"type": "repository", "name": "other/x", "actions": ["pull"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
        ])

    def test_anonymous_gets_nothing_without_a_policy(self):
        # accounts exist, so access control is on; without a policy an
        # anonymous caller may do nothing, and its token says so
        r = self.get_token(
            self.cluster.nodes[2],
            "service=atoll&scope=repository:lib/app:pull,push"
            "&scope=registry:catalog:*")
        claims = parts(r.json()["token"])[1]
        self.assertEqual(claims["sub"], "")
        self.assertEqual(claims["access"], [])

    def set_policy(self, rules):
        c = self.cluster
        r = c.nodes[0].request(
            "PUT", "/_atoll/policy", body=json.dumps({"rules": rules})
            .encode(), headers={"Authorization": f"Bearer {c.secret}",
                                "Content-Type": "application/json"})
        self.assertIn(r.status, (200, 201), r)
        self.addCleanup(c.nodes[0].request, "DELETE", "/_atoll/policy",
                        headers={"Authorization": f"Bearer {c.secret}"})

    def test_tokens_open_the_registry_on_every_node(self):
        """Tokens grant what the policy allows; a token from one node opens
        /v2/ on the others, and each request is checked against it."""
        self.set_policy([
            {"repository": "public/**", "subjects": ["anonymous"],
             "actions": ["pull"]},
            {"repository": "lib/**", "subjects": ["user:bob"],
             "actions": ["pull"]}])
        n1, n2, n3 = self.cluster.nodes
        r = self.get_token(n1, "service=atoll&scope=repository:public/x:"
                           "pull,push")
        self.assertEqual(parts(r.json()["token"])[1]["access"], [
            {"type": "repository", "name": "public/x", "actions": ["pull"]}])
        r = self.get_token(n1, "service=atoll&scope=repository:lib/app:"
                           "pull,push", headers=basic("bob", "bob-pass-12"))
        tok = r.json()["token"]
        self.assertEqual(parts(tok)[1]["access"], [
            {"type": "repository", "name": "lib/app", "actions": ["pull"]}])
        bearer = {"Authorization": f"Bearer {tok}"}
        for n in (n2, n3):
            self.assertEqual(n.request("GET", "/v2/", headers=bearer).status,
                             200)
            r = n.request("GET", "/v2/lib/app/tags/list", headers=bearer)
            self.assertEqual(r.status, 404, r)  # allowed; no such repo
            r = n.request("POST", "/v2/lib/app/blobs/uploads/",
                          headers=bearer)
            self.assertEqual(r.status, 403, r)  # the token has no push
            r = n.request("GET", "/v2/other/x/tags/list", headers=bearer)
            self.assertEqual(r.status, 403, r)  # not in the token
        # an admin's token with push works for push on any node
        r = self.get_token(n2, "service=atoll&scope=repository:lib/app:"
                           "pull,push", headers=basic("alice",
                                                      "alice-pass-1"))
        admin = {"Authorization": f"Bearer {r.json()['token']}"}
        r = n3.request("POST", "/v2/lib/app/blobs/uploads/", headers=admin)
        self.assertEqual(r.status, 202, r)
        # tampered, unsigned and garbage tokens: 401
        h, p_, sig = tok.split(".")
        forged_claims = dict(parts(tok)[1])
        forged_claims["access"] = [{"type": "repository", "name": "lib/app",
                                    "actions": ["pull", "push"]}]
        forged = h + "." + base64.urlsafe_b64encode(json.dumps(
            forged_claims).encode()).decode().rstrip("=") + "." + sig
        none_hdr = base64.urlsafe_b64encode(
            b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
        for bad in (forged, none_hdr + "." + p_ + ".", "x" * 9000, "a.b.c",
                    tok[:-4]):
            r = n2.request("GET", "/v2/", headers={
                "Authorization": f"Bearer {bad}"})
            self.assertEqual(r.status, 401, (bad[:40], r))
            self.assertIn("UNAUTHORIZED", r.body.decode())

    def test_scopeless_token_for_docker_login(self):
        r = self.get_token(self.cluster.nodes[0], "service=atoll",
                           headers=basic("alice", "alice-pass-1"))
        self.assertEqual(parts(r.json()["token"])[1]["access"], [])

    def test_post_password_grant(self):
        r = self.post_token(self.cluster.nodes[2], {
            "grant_type": "password", "username": "alice",
            "password": "alice-pass-1", "service": "atoll",
            "client_id": "helm", "scope": "repository:lib/app:pull,push "
                                          "repository:lib/app:pull"})
        doc = r.json()
        self.assertEqual(doc["scope"], "repository:lib/app:pull,push")
        self.assertEqual(doc["token_type"], "Bearer")
        claims = parts(doc["access_token"])[1]
        self.assertEqual(claims["sub"], "alice")
        self.assertEqual(claims["access"][0]["actions"], ["pull", "push"])
        if HAVE_CRYPTO:
            self.assert_verifies_everywhere(doc["access_token"])
        # no refresh tokens are given out
        self.assertNotIn("refresh_token", doc)
        r = self.post_token(self.cluster.nodes[2], {
            "grant_type": "refresh_token", "refresh_token": "x",
            "service": "atoll", "client_id": "helm"}, status=400)

    def test_wrong_credentials_get_401_and_no_token(self):
        n = self.cluster.nodes[1]
        for headers in (basic("alice", "wrong-password"),
                        basic("nobody", "whatever-pw"),
                        {"Authorization": "Basic !!!"}):
            r = self.get_token(n, "service=atoll&scope=repository:a/b:pull",
                               headers=headers, status=401)
            self.assertEqual(r.json()["errors"][0]["code"], "UNAUTHORIZED")
            self.assertNotIn(b"token", r.body)
        r = self.post_token(n, {"grant_type": "password",
                                "username": "alice",
                                "password": "wrong-password",
                                "service": "atoll"}, status=401)
        self.assertNotIn(b"access_token", r.body)

    def test_bad_requests(self):
        n = self.cluster.nodes[0]
        self.get_token(n, "service=other", status=400)
        self.get_token(n, "service=atoll&scope=%zz", status=400)
        too_many = "&".join(f"scope=repository:r{i}:pull" for i in range(40))
        self.get_token(n, "service=atoll&" + too_many, status=400)
        r = n.request("PUT", "/_atoll/token")
        self.assertEqual(r.status, 405, r)
        r = n.request("POST", "/_atoll/token", body=b"{}",
                      headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)

    def test_rotation_on_another_node(self):
        c = self.cluster
        old = self.get_token(c.nodes[0], "service=atoll",
                             headers=basic("alice", "alice-pass-1"))
        old_token = old.json()["token"]
        old_kid = parts(old_token)[0]["kid"]
        # refused without admin rights
        r = c.nodes[1].request("POST", "/_atoll/token-keys/rotate",
                               headers=basic("bob", "bob-pass-12"))
        self.assertEqual(r.status, 403, r)
        r = c.nodes[1].request("POST", "/_atoll/token-keys/rotate")
        self.assertEqual(r.status, 401, r)
        # by the CLI, with the cluster secret, on node 2
        p = harness.run_tool(
            [ATOLL_BIN, "token", "rotate", "--cluster-secret-file",
             c.secret_file, "--addr", c.nodes[1].addr],
            check=True, timeout=60)
        self.assertIn("new signing key", p.stdout)
        new_kid = p.stdout.split()[3]
        self.assertNotEqual(new_kid, old_kid)
        # every node signs with the new key soon; the old one still
        # verifies
        for n in c.nodes:
            def signs_new():
                t = self.get_token(n, "service=atoll").json()["token"]
                return parts(t)[0]["kid"] == new_kid
            wait_for(signs_new, 5, what=f"new kid on {n.name}")
            keys = self.jwks(n)
            self.assertIn(old_kid, keys)
            if HAVE_CRYPTO:
                self.assertTrue(verify_es256(old_token, keys[old_kid]))
        p = harness.run_tool([ATOLL_BIN, "token", "keys", "--addr",
                              c.nodes[2].addr], check=True, timeout=60)
        self.assertIn(f"{new_kid}  (signs)", p.stdout)
        # an audit line on the node that rotated
        with open(c.nodes[1].log_path, "rb") as f:
            log = f.read().decode(errors="replace")
        self.assertIn(f"rotated the token signing key: new kid '{new_kid}'",
                      log)

    def test_no_secret_in_logs(self):
        self.get_token(self.cluster.nodes[0], "service=atoll",
                       headers=basic("alice", "alice-pass-1"))
        for n in self.cluster.nodes:
            with open(n.log_path, "rb") as f:
                log = f.read().decode(errors="replace")
            self.assertNotIn("alice-pass-1", log)
            self.assertNotIn("PRIVATE KEY", log)
            self.assertNotIn("eyJ", log)  # no token


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@unittest.skipUnless(os.path.exists(FAKETIME_LIB), "libfaketime missing")
class TokenExpiryTest(harness.TestCase):
    """A token verified once is remembered, but not past its expiry: the
    node's wall clock jumps (libfaketime) past the token's lifetime and
    the same token, accepted a moment before, is refused."""

    def test_cached_token_expires(self):
        tmp = self.temp_dir("atoll-tokexp-")
        clock = os.path.join(tmp, "clock")
        with open(clock, "w") as f:
            f.write("+0 x1\n")
        htp = os.path.join(tmp, "htpasswd")
        with open(htp, "w") as f:
            f.write(bcrypt_line("carol", "carol-pass-1"))
        node = harness.Node(args=["--htpasswd", htp, "--bcrypt-cost", "4"],
                            env={"LD_PRELOAD": FAKETIME_LIB,
                                 "FAKETIME_TIMESTAMP_FILE": clock,
                                 "FAKETIME_NO_CACHE": "1",
                                 "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                                 # a sanitizer build: libfaketime comes
                                 # before the ASan runtime here
                                 "ASAN_OPTIONS": os.environ.get(
                                     "ASAN_OPTIONS", "") +
                                 ":verify_asan_link_order=0"})
        self.addCleanup(node.close)
        node.start()
        r = node.request("GET", "/_atoll/token?service=atoll&scope="
                         "repository:lib/app:pull",
                         headers=basic("carol", "carol-pass-1"))
        self.assertEqual(r.status, 200, r)
        bearer = {"Authorization": f"Bearer {r.json()['token']}"}
        for _ in range(2):  # verified, then from the cache
            self.assertEqual(node.request("GET", "/v2/", headers=bearer)
                             .status, 200)
        tmpf = clock + ".tmp"
        with open(tmpf, "w") as f:
            f.write("+400 x1\n")  # past 300 s and the 30 s of skew
        os.replace(tmpf, clock)
        r = node.request("GET", "/v2/", headers=bearer)
        self.assertEqual(r.status, 401, r)
        # Basic credentials still work: only the token's time is over
        self.assertEqual(node.request("GET", "/v2/", headers=basic(
            "carol", "carol-pass-1")).status, 200)
