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
