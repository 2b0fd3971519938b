"""A network namespace of one test, with lo up and a non-loopback address
on lo. Clients built on containerd's resolver (helm, ctr) speak plain HTTP
to any loopback registry whatever its port speaks, and dockerd treats
loopback registries as insecure: in here, a registry on that address is a
registry like any other, and they use HTTPS and verify it. Needs root and
iproute2; the namespace is deleted by close()."""
import itertools
import os
import shutil
import subprocess

IP = shutil.which("ip")
NSENTER = shutil.which("nsenter")
_seq = itertools.count()


def available():
    return IP is not None and NSENTER is not None and os.geteuid() == 0


class Netns:
    def __init__(self, addr="10.99.0.1"):
        self.name = f"atoll-t{os.getpid()}-{next(_seq)}"
        self.addr = addr
        self.made = False

    def create(self):
        subprocess.run([IP, "netns", "add", self.name], check=True,
                       capture_output=True, timeout=30)
        self.made = True
        for args in (["link", "set", "lo", "up"],
                     ["addr", "add", f"{self.addr}/32", "dev", "lo"]):
            subprocess.run([IP, "-n", self.name] + args, check=True,
                           capture_output=True, timeout=30)
        return self

    def cmd(self, args):
        """args run inside the namespace; nsenter execs them (the pid is
        theirs) and, unlike ip netns exec, leaves the mounts alone (dockerd
        needs the host's cgroup file system under /sys)."""
        return [NSENTER, f"--net=/run/netns/{self.name}"] + list(args)

    def close(self):
        if self.made:
            subprocess.run([IP, "netns", "del", self.name],
                           capture_output=True, timeout=30)
            self.made = False


_libc = None


def _setns(fd):
    import ctypes
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNET = 0x40000000
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Inside:
    """Move this thread (the test's only one) into a namespace, and back:
    every process started meanwhile runs in it, and the test's own HTTP
    requests go to addresses inside it. Use as a context manager, or
    enter()/leave() from setUpClass/addClassCleanup."""

    def __init__(self, ns):
        self.ns = ns
        self.home = None

    def enter(self):
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        fd = os.open(f"/run/netns/{self.ns.name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(fd)
        finally:
            os.close(fd)
        return self

    def leave(self):
        if self.home is not None:
            try:
                _setns(self.home)
            finally:
                os.close(self.home)
                self.home = None

    def __enter__(self):
        return self.enter()

    def __exit__(self, *exc):
        self.leave()


def add_addr(ns, addr):
    """One more address on the namespace's lo."""
    subprocess.run([IP, "-n", ns.name, "addr", "add", f"{addr}/32", "dev",
                    "lo"], check=True, capture_output=True, timeout=30)
