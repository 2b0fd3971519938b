"""Logins over HTTPS with real clients, against a node serving HTTPS with a
test CA and replicated accounts: podman login, docker login (Debian's
dockerd, private), helm registry login, skopeo --creds, ctr --user; then a
push and a pull with each. A wrong password fails every login. A robot's
secret works as a password and stops working at its expiry.

The node and every client run in a network namespace of the test, the node
on a non-loopback address (netns.py): helm and ctr would speak plain HTTP
to a loopback registry, and dockerd would not verify its certificate."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
import ocilayout
from clients import PODMAN, SKOPEO
from dockerd import CTR, DOCKER, DOCKERD, Dockerd
import netns
from harness import ATOLL_BIN, run_tool
from pki import OPENSSL, Pki

TIMEOUT = 240
SECRET = "login-test-cluster-secret"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
HELM = os.environ.get("ATOLL_HELM") or (
    os.path.join(ROOT, "build", "tools", "helm")
    if os.path.exists(os.path.join(ROOT, "build", "tools", "helm"))
    else shutil.which("helm"))
WRITER, WRITER_PW = "alice", "alice-password-1"
WRONG_PW = "not-alices-password"


class NetnsNode:
    """An atoll node serving HTTPS on ns.addr inside the namespace."""

    def __init__(self, ns, tmp, cert, key, ca, args):
        self.ns, self.tmp, self.ca = ns, tmp, ca
        self.port = harness.free_port()
        self.addr = f"{ns.addr}:{self.port}"
        self.log_path = os.path.join(tmp, "node.log")
        self.cmd = ns.cmd([ATOLL_BIN, "serve", "--listen", self.addr,
                           "--data-dir", os.path.join(tmp, "data"),
                           "--tls-cert", cert, "--tls-key", key] + args)
        self.proc = None

    def start(self, timeout=20):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"atoll exited: {self.log()}")
            p = subprocess.run(self.ns.cmd(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                 "--cacert", self.ca, f"https://{self.addr}/v2/"]),
                capture_output=True, text=True, timeout=10)
            if p.stdout in ("200", "401"):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"atoll not ready: {self.log()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-5000:]
        except OSError:
            return ""

    def close(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@unittest.skipIf(OPENSSL is None or SKOPEO is None,
                 "openssl or skopeo not installed")
@unittest.skipUnless(netns.available(), "needs root and iproute2 (netns)")
class LoginTest(harness.TestCase):
    """With Basic challenges: clients send their credentials on every
    request."""
    CHALLENGE = "basic"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="atoll-login-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.ns = netns.Netns().create()
        cls.addClassCleanup(cls.ns.close)
        cls.pki = Pki(cls.tmp)
        cert, key = cls.pki.issue(3001, ips=[cls.ns.addr])
        # the CA as clients that read a directory of certificates want it
        cls.cert_dir = os.path.join(cls.tmp, "certs")
        os.makedirs(cls.cert_dir)
        shutil.copyfile(cls.pki.ca, os.path.join(cls.cert_dir, "ca.crt"))
        secret_file = os.path.join(cls.tmp, "secret")
        with open(secret_file, "w") as f:
            f.write(SECRET + "\n")
        cls.secret_file = secret_file
        cls.node = NetnsNode(cls.ns, cls.tmp, cert, key, cls.pki.ca, [
            "--cluster-secret-file", secret_file, "--peer-listen",
            f"127.0.0.1:{harness.free_port()}", "--bcrypt-cost", "4",
            "--auth-challenge", cls.CHALLENGE])
        cls.addClassCleanup(cls.node.close)
        cls.node.start()
        cls.host = cls.node.addr
        cls.cli("users", "add", WRITER, "--password-stdin",
                input=WRITER_PW + "\n")
        # one image, pushed with credentials, for the clients to pull
        src = os.path.join(cls.tmp, "layout")
        cls.img = ocilayout.build_layout(src, sizes=(2000, 300000))
        cls.skopeo("copy", "--dest-creds", f"{WRITER}:{WRITER_PW}",
                   "--dest-cert-dir", cls.cert_dir, f"oci:{src}:v1",
                   f"docker://{cls.host}/login/base:v1")

    @classmethod
    def in_ns(cls, cmd, **kw):
        """run_tool inside the namespace."""
        kw.setdefault("timeout", TIMEOUT)
        return run_tool(cls.ns.cmd(cmd), **kw)

    @classmethod
    def cli(cls, *args, input=None, check=True):
        return cls.in_ns([ATOLL_BIN] + list(args) +
                        ["--addr", f"https://{cls.host}",
                         "--cluster-secret-file", cls.secret_file],
                        input=input.encode() if input else None,
                        check=check, timeout=60,
                        env={"ATOLL_CACERT": cls.pki.ca})

    @classmethod
    def skopeo(cls, *args, check=True):
        return cls.in_ns([SKOPEO, "--insecure-policy"] + list(args),
                       check=check)

    def tearDown(self):
        self.assertTrue(self.node.alive(), self.node.log())

    def assert_failed(self, p, what):
        self.assertNotEqual(p.returncode, 0,
                            f"{what} succeeded:\n{p.stdout}\n{p.stderr}")

    # ---- skopeo ----
    def test_skopeo_creds(self):
        ref = f"docker://{self.host}/login/base:v1"
        p = self.skopeo("inspect", "--creds", f"{WRITER}:{WRITER_PW}",
                        "--cert-dir", self.cert_dir, ref)
        self.assertIn(self.img.digest, p.stdout)
        p = self.skopeo("inspect", "--creds", f"{WRITER}:{WRONG_PW}",
                        "--cert-dir", self.cert_dir, ref, check=False)
        self.assert_failed(p, "skopeo with a wrong password")
        p = self.skopeo("inspect", "--no-creds", "--cert-dir", self.cert_dir,
                        ref, check=False)
        self.assert_failed(p, "skopeo without credentials")

    # ---- podman ----
    @unittest.skipIf(PODMAN is None, "podman not installed")
    def test_podman_login_push_pull(self):
        work = self.temp_dir(prefix="podman-", dir=self.tmp)
        auth = os.path.join(work, "auth.json")

        def podman(*args, check=True, input=None):
            base = [PODMAN, "--root", os.path.join(work, "root"),
                    "--runroot", os.path.join(work, "runroot"),
                    "--tmpdir", os.path.join(work, "libpod"),
                    "--storage-driver", "vfs", "--cgroup-manager",
                    "cgroupfs", "--events-backend", "file"]
            return self.in_ns(base + list(args), check=check,
                            input=input.encode() if input else None,
                            env={"TMPDIR": work, "REGISTRY_AUTH_FILE": auth})
        try:
            p = podman("login", "--cert-dir", self.cert_dir, "-u", WRITER,
                       "--password-stdin", self.host, input=WRONG_PW + "\n",
                       check=False)
            self.assert_failed(p, "podman login with a wrong password")
            p = podman("login", "--cert-dir", self.cert_dir, "-u", WRITER,
                       "--password-stdin", self.host, input=WRITER_PW + "\n")
            self.assertIn("Login Succeeded", p.stdout)
            podman("pull", "--cert-dir", self.cert_dir,
                   f"{self.host}/login/base:v1")
            podman("tag", f"{self.host}/login/base:v1",
                   f"{self.host}/login/podman:v1")
            podman("push", "--cert-dir", self.cert_dir,
                   f"{self.host}/login/podman:v1")
            p = self.skopeo("inspect", "--creds", f"{WRITER}:{WRITER_PW}",
                            "--cert-dir", self.cert_dir,
                            f"docker://{self.host}/login/podman:v1")
            self.assertIn('"Name"', p.stdout)
            podman("logout", self.host)
        finally:
            podman("rmi", "--all", "--force", check=False)

    # ---- docker ----
    @unittest.skipIf(DOCKERD is None or DOCKER is None,
                     "dockerd (Debian's docker.io) not installed")
    def test_docker_login_push_pull(self):
        d = Dockerd(self.temp_dir(prefix="dockerd-", dir="/tmp"),
                    prefix=self.ns.cmd([]))
        self.addCleanup(d.close)
        d.start()
        # dockerd trusts a registry's CA from /etc/docker/certs.d/<host>
        certs = f"/etc/docker/certs.d/{self.host}"
        os.makedirs(certs, exist_ok=True)
        self.addCleanup(shutil.rmtree, certs, True)
        shutil.copyfile(self.pki.ca, os.path.join(certs, "ca.crt"))

        def docker(*args, check=True, input=None):
            return run_tool([DOCKER] + list(args), timeout=TIMEOUT,
                            check=check, env=d.env(),
                            input=input.encode() if input else None)
        p = docker("login", "-u", WRITER, "--password-stdin", self.host,
                   input=WRONG_PW + "\n", check=False)
        self.assert_failed(p, "docker login with a wrong password")
        p = docker("login", "-u", WRITER, "--password-stdin", self.host,
                   input=WRITER_PW + "\n")
        self.assertIn("Login Succeeded", p.stdout)
        docker("pull", f"{self.host}/login/base:v1")
        docker("tag", f"{self.host}/login/base:v1",
               f"{self.host}/login/docker:v1")
        docker("push", f"{self.host}/login/docker:v1")
        p = self.skopeo("inspect", "--creds", f"{WRITER}:{WRITER_PW}",
                        "--cert-dir", self.cert_dir,
                        f"docker://{self.host}/login/docker:v1")
        self.assertIn('"Name"', p.stdout)
        docker("logout", self.host)
        p = docker("pull", f"{self.host}/login/docker:v1", check=False)
        self.assert_failed(p, "docker pull after logout")

        # ---- ctr, on the containerd that dockerd runs ----
        if CTR is None:
            return
        # ctr fetches in its own process: in the namespace
        ctr = self.ns.cmd([CTR, "-a", d.containerd_sock, "-n",
                           "atoll-login"])
        ref = f"{self.host}/login/base:v1"
        p = run_tool(ctr + ["content", "fetch", "--user",
                            f"{WRITER}:{WRONG_PW}", "--tlscacert",
                            self.pki.ca, ref], check=False, timeout=TIMEOUT)
        self.assert_failed(p, "ctr with a wrong password")
        run_tool(ctr + ["content", "fetch", "--user", f"{WRITER}:{WRITER_PW}",
                        "--tlscacert", self.pki.ca, ref], timeout=TIMEOUT)
        run_tool(ctr + ["images", "tag", ref,
                        f"{self.host}/login/ctr:v1"], timeout=60)
        run_tool(ctr + ["images", "push", "--user",
                        f"{WRITER}:{WRITER_PW}", "--tlscacert", self.pki.ca,
                        f"{self.host}/login/ctr:v1"], timeout=TIMEOUT)
        p = self.skopeo("inspect", "--creds", f"{WRITER}:{WRITER_PW}",
                        "--cert-dir", self.cert_dir,
                        f"docker://{self.host}/login/ctr:v1")
        self.assertIn(self.img.digest, p.stdout)

    # ---- helm ----
    @unittest.skipIf(HELM is None, "helm not installed (make deps)")
    def test_helm_registry_login_push_pull(self):
        work = self.temp_dir(prefix="helm-", dir=self.tmp)
        env = {"HOME": work, "XDG_CONFIG_HOME": os.path.join(work, "cfg"),
               "XDG_CACHE_HOME": os.path.join(work, "cache"),
               "XDG_DATA_HOME": os.path.join(work, "data"),
               "HELM_REGISTRY_CONFIG": os.path.join(work, "registry.json")}

        def helm(*args, check=True, input=None):
            return self.in_ns([HELM] + list(args), check=check, env=env,
                            input=input.encode() if input else None)
        chart = os.path.join(work, "hello")
        os.makedirs(os.path.join(chart, "templates"))
        with open(os.path.join(chart, "Chart.yaml"), "w") as f:
            f.write("apiVersion: v2\nname: hello\nversion: 0.1.0\n")
        with open(os.path.join(chart, "templates", "cm.yaml"), "w") as f:
            f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                    "  name: hello\ndata:\n  a: b\n")
        helm("package", chart, "-d", work)
        tgz = os.path.join(work, "hello-0.1.0.tgz")
        p = helm("registry", "login", self.host, "--ca-file", self.pki.ca,
                 "-u", WRITER, "--password-stdin", input=WRONG_PW + "\n",
                 check=False)
        self.assert_failed(p, "helm registry login with a wrong password")
        p = helm("registry", "login", self.host, "--ca-file", self.pki.ca,
                 "-u", WRITER, "--password-stdin", input=WRITER_PW + "\n")
        self.assertIn("Login Succeeded", p.stdout + p.stderr)
        helm("push", tgz, f"oci://{self.host}/charts", "--ca-file",
             self.pki.ca)
        out = os.path.join(work, "pulled")
        os.makedirs(out)
        helm("pull", f"oci://{self.host}/charts/hello", "--version",
             "0.1.0", "--ca-file", self.pki.ca, "-d", out)
        self.assertTrue(os.path.exists(os.path.join(out, "hello-0.1.0.tgz")))
        helm("registry", "logout", self.host)

    # ---- robots ----
    def test_robot_secret_until_expiry(self):
        p = self.cli("robots", "add", "ci", "--permission",
                     "login/**:pull,push", "--expires", "6s")
        secret = p.stdout.strip().splitlines()[-1]
        start = time.time()
        ref = f"docker://{self.host}/login/base:v1"
        p = self.skopeo("inspect", "--creds", f"robot$ci:{secret}",
                        "--cert-dir", self.cert_dir, ref)
        self.assertIn(self.img.digest, p.stdout)
        p = self.skopeo("inspect", "--creds", "robot$ci:wrong-secret",
                        "--cert-dir", self.cert_dir, ref, check=False)
        self.assert_failed(p, "a robot with a wrong secret")
        time.sleep(max(0.0, start + 7 - time.time()))
        p = self.skopeo("inspect", "--creds", f"robot$ci:{secret}",
                        "--cert-dir", self.cert_dir, ref, check=False)
        self.assert_failed(p, "a robot past its expiry")


class BearerLoginTest(LoginTest):
    """With Bearer challenges: every client fetches tokens from the node's
    token endpoint (GET or POST) with the credentials, then presents
    them."""
    CHALLENGE = "bearer"


if __name__ == "__main__":
    unittest.main()
