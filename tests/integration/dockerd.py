"""A private Docker engine for the client tests: Debian's dockerd (with its
own containerd) on a unix socket under a temporary directory, vfs storage,
no iptables or bridge, stopped by its pid. Also the containerd socket it
manages, for ctr."""
import os
import shutil
import signal
import subprocess
import time

DOCKERD = shutil.which("dockerd")
# Debian's docker CLI matches the engine; another docker on PATH may not.
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else \
    shutil.which("docker")
CTR = shutil.which("ctr")


class Dockerd:
    def __init__(self, tmp, prefix=()):
        self.tmp = tmp
        self.prefix = list(prefix)  # e.g. ip netns exec NAME
        self.sock = os.path.join(tmp, "docker.sock")
        self.exec_root = os.path.join(tmp, "exec")
        self.config = os.path.join(tmp, "config")  # the CLI's credentials
        self.log_path = os.path.join(tmp, "dockerd.log")
        self.proc = None

    @property
    def containerd_sock(self):
        return os.path.join(self.exec_root, "containerd", "containerd.sock")

    def env(self):
        return {"DOCKER_HOST": f"unix://{self.sock}",
                "DOCKER_CONFIG": self.config}

    def start(self, timeout=60):
        os.makedirs(self.config, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.prefix + [DOCKERD, "--data-root", os.path.join(self.tmp, "root"),
             "--exec-root", self.exec_root,
             "--pidfile", os.path.join(self.tmp, "dockerd.pid"),
             "-H", f"unix://{self.sock}", "--storage-driver", "vfs",
             "--iptables=false", "--ip6tables=false", "--bridge=none",
             "--ip-forward=false", "--ip-masq=false"],
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        env = dict(os.environ, **self.env())
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited: {self.log()}")
            p = subprocess.run([DOCKER, "version"], env=env,
                               capture_output=True, timeout=30)
            if p.returncode == 0 and os.path.exists(self.containerd_sock):
                return self
            time.sleep(0.3)
        self.close()
        raise RuntimeError(f"dockerd not ready: {self.log()}")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def close(self):
        """SIGTERM (dockerd stops its containerd), kill -9 if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
