"""A real Ray cluster of a head and worker nodes on this machine, reachable on 127.0.0.1 only:
for the tests and the throughput benchmark, not for production.

`ray start` always binds its servers to every interface and replaces 127.0.0.1 with the
machine's address, so the cluster is started inside a private network namespace that has
nothing but the loopback interface (`unshare -rn`, see `in_private_network`). There, Ray's
only address is 127.0.0.1 and nothing it starts can be reached from, or reach, outside.
"""
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def in_private_network(argv):
    """Runs argv (this Python) again inside a new network namespace: a user namespace too
    where this user may make one (`unshare -rn`), else, as root, a network namespace alone."""
    if os.environ.get("FOCAL_PRIVATE_NETWORK"):
        raise SystemExit(f"error: still not in a private network namespace after unshare (interfaces {interfaces()})")
    unshare = shutil.which("unshare")
    if not unshare:
        raise SystemExit("error: unshare (util-linux) is needed to keep the test cluster on loopback")
    tried = []
    for flags in (["--user", "--map-root-user", "--net"], ["--net"]):
        probe = subprocess.run([unshare] + flags + ["true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if probe.returncode == 0:
            env = dict(os.environ, FOCAL_PRIVATE_NETWORK="1")
            return subprocess.call([unshare] + flags + [sys.executable] + argv, env=env)
        tried.append(f"unshare {' '.join(flags)}: {probe.stderr.strip()}")
    raise SystemExit("error: cannot make a private network namespace for the test cluster:\n" + "\n".join(tried))


def interfaces():
    """Network interfaces of this process's namespace (not /sys/class/net, which shows the
    namespace sysfs was mounted in)."""
    return sorted(name for _, name in socket.if_nameindex())


def loopback_up():
    """Brings `lo` up in a fresh network namespace; refuses to run where other interfaces exist."""
    if interfaces() != ["lo"]:
        raise SystemExit(f"error: not in a private network namespace (interfaces {interfaces()})")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0))
        flags = struct.unpack("16sH", ifr[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
    finally:
        s.close()


def listening_addresses():
    """Local addresses of every listening TCP socket in this namespace (from /proc/net)."""
    out = []
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = open(f"/proc/net/{name}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] != "0A":  # LISTEN
                continue
            addr, port = f[1].split(":")
            raw = bytes.fromhex(addr)
            if width == 8:
                ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                ip = socket.inet_ntop(socket.AF_INET6, words)
            out.append(f"{ip}:{int(port, 16)}")
    return out


def is_loopback(address):
    ip = address.rsplit(":", 1)[0]
    return ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1") or ip.startswith("::ffff:127.")


class LoopbackCluster:
    """`ray start --head` and `workers` more nodes, each with `cpus` CPUs; stopped on exit."""

    def __init__(self, temp_dir, workers=1, cpus=1, port=6390):
        self.temp_dir, self.workers, self.cpus, self.port = temp_dir, workers, cpus, port
        self.ray = os.path.join(os.path.dirname(sys.executable), "ray")
        self.address = f"127.0.0.1:{port}"

    def _start(self, *extra):
        cmd = [self.ray, "start", "--num-cpus", str(self.cpus), "--object-store-memory", str(200 * 2**20),
               "--disable-usage-stats"] + list(extra)
        run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"ray start failed: {run.stdout[-2000:]}")

    def __enter__(self):
        loopback_up()
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        self._start("--head", "--port", str(self.port), "--include-dashboard", "false", "--temp-dir", self.temp_dir)
        for _ in range(self.workers):
            self._start("--address", self.address)
        # Until every node has registered.
        import ray
        ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
        deadline = time.time() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 1 + self.workers:
            if time.time() > deadline:
                raise RuntimeError("the Ray worker nodes did not join within 60 s")
            time.sleep(0.5)
        ray.shutdown()
        return self

    def __exit__(self, *exc):
        subprocess.run([self.ray, "stop", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return False


def _processes():
    """(pid, parent pid, argv[0]) of every process in this namespace."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = open(f"/proc/{p}/stat").read()
            argv0 = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        out.append((int(p), ppid, argv0))
    return out


def task_workers(name="run_input"):
    """PIDs of Ray worker processes now running a `name` task that has a `focal` child."""
    procs = _processes()
    with_focal = {ppid for _, ppid, argv0 in procs if os.path.basename(argv0) == "focal"}
    return [pid for pid, _, argv0 in procs if argv0.startswith(f"ray::{name}") and pid in with_focal]
