"""Socket load for the benchmark: P child processes holding N sockets between them, loopback only.

Each child holds TCP listeners, UDP sockets (some connected to another UDP socket) and client ends
of TCP connections to listeners in other children (the accepted ends live in the listener's
child), on 127.0.0.1 and ::1. Connected sockets use SO_LINGER 0, so killing a child leaves no
TIME_WAIT behind. Children take commands on stdin and exit when it closes (or after a deadline),
so they never outlive the benchmark; :class:`Load` also kills them by pid on exit.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

CHILD = r"""
import collections, json, os, resource, selectors, socket, struct, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft != hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
try:
    import ctypes
    ctypes.CDLL(None).prctl(15, b"ps-bench-load", 0, 0, 0)
    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGKILL if the benchmark dies
except Exception:
    pass
n_listen, n_udp, v6_every, deadline = (int(a) for a in sys.argv[1:5])
LINGER0 = struct.pack("ii", 1, 0)
sel = selectors.DefaultSelector()
keep = []
listeners = []
udp_ports = []

def host(i):
    return "::1" if v6_every and i % v6_every == v6_every - 1 else "127.0.0.1"

def fam(h):
    return socket.AF_INET6 if ":" in h else socket.AF_INET

for i in range(n_listen):
    h = host(i)
    s = socket.socket(fam(h), socket.SOCK_STREAM)
    if ":" in h:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((h, 0))
    s.listen(4096)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, "accept")
    listeners.append([h, s.getsockname()[1]])
    keep.append(s)
for i in range(n_udp):
    h = host(i)
    u = socket.socket(fam(h), socket.SOCK_DGRAM)
    u.bind((h, 0))
    keep.append(u)
    udp_ports.append([h, u.getsockname()[1]])
for i in range(1, len(udp_ports), 4):  # every 4th UDP socket is connected to another one
    h, p = udp_ports[i - 1]
    if h == udp_ports[i][0]:
        keep[n_listen + i].connect((h, p))
sys.stdout.write(json.dumps({"listeners": listeners}) + "\n")
sys.stdout.flush()
sel.register(sys.stdin, selectors.EVENT_READ, "cmd")
clients = collections.deque()  # client ends this child opened, oldest first
accepted = set()  # accepted ends; closed when the peer resets them

def connect(h, p):
    c = socket.socket(fam(h), socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    c.connect((h, p))
    clients.append(c)

def accept_all(s):
    while True:
        try:
            a, _ = s.accept()
        except (BlockingIOError, InterruptedError):
            return
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        a.setblocking(False)
        sel.register(a, selectors.EVENT_READ, "conn")  # readable only once the peer is gone
        accepted.add(a)

def reap(a):
    try:
        gone = not a.recv(1)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        gone = True
    if gone:
        sel.unregister(a)
        accepted.discard(a)
        a.close()

def count():
    return len(keep) + len(clients) + len(accepted)

end = time.time() + deadline
while time.time() < end:
    for key, _ in sel.select(timeout=1.0):
        if key.data == "accept":
            accept_all(key.fileobj)
            continue
        if key.data == "conn":
            reap(key.fileobj)
            continue
        line = sys.stdin.readline()
        if not line:
            sys.exit(0)
        cmd = json.loads(line)
        if cmd["op"] == "close":  # close the oldest client ends (RST: the peer's end goes too)
            for _ in range(min(int(cmd["n"]), len(clients))):
                clients.popleft().close()
        if cmd["op"] in ("connect", "close"):
            for h, p in cmd.get("to", ()):
                connect(h, p)
        elif cmd["op"] == "sync":
            for s in keep[:n_listen]:
                accept_all(s)
        sys.stdout.write(json.dumps({"n": count()}) + "\n")
        sys.stdout.flush()
"""


@dataclass
class Child:
    proc: subprocess.Popen[str]
    listeners: list[tuple[str, int]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, cmd: dict[str, object]) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError(f"load child {self.pid} died")
        return int(json.loads(reply)["n"])


def raise_nofile() -> int:
    """Raise our soft fd limit to the hard one; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def fits(n_sockets: int, n_procs: int) -> tuple[bool, str]:
    """Whether this host's fd limit and port range allow the load."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    per_child = 2 * n_sockets // n_procs + 64  # accepted ends are uneven: leave room
    if hard != resource.RLIM_INFINITY and per_child > hard:
        return False, f"needs ~{per_child} fds per child, RLIMIT_NOFILE hard limit is {hard}"
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    bound = n_sockets // 10  # listeners + UDP sockets take exclusive ports (per address)
    if bound > (hi - lo) // 2:
        return False, f"needs ~{bound} bound ports, the ephemeral range has {hi - lo + 1}"
    return True, ""


class Load:
    """Start with :meth:`start`; always :meth:`stop` (a context manager does)."""

    def __init__(self, n_sockets: int, n_procs: int, *, seed: int = 1, deadline: float = 900) -> None:
        self.n_sockets = n_sockets
        self.n_procs = n_procs
        self.children: list[Child] = []
        self.rng = random.Random(seed)
        self.deadline = deadline
        self.total = 0

    def __enter__(self) -> Load:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise_nofile()
        n, p = self.n_sockets, self.n_procs
        per = n / p
        n_listen = max(1, round(per * 0.05))
        n_udp = max(1, round(per * 0.10))
        n_conn = max(0, round((n - p * (n_listen + n_udp)) / 2))  # each connection is two sockets
        for _ in range(p):
            args = [sys.executable, "-c", CHILD, str(n_listen), str(n_udp), "5", str(int(self.deadline))]
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.children.append(Child(proc))
        for child in self.children:
            assert child.proc.stdout is not None
            line = child.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"load child {child.pid} failed to start")
            child.listeners = [(h, int(port)) for h, port in json.loads(line)["listeners"]]
        targets = [(i, lst) for i, c in enumerate(self.children) for lst in c.listeners]
        plan: list[list[tuple[str, int]]] = [[] for _ in self.children]
        for k in range(n_conn):
            src = k % p
            dst, (host, port) = targets[self.rng.randrange(len(targets))]
            if dst == src and p > 1:  # connect to another process, as clients and servers usually are
                host, port = self.rng.choice(self.children[(src + 1) % p].listeners)
            plan[src].append((host, port))
        for child, to in zip(self.children, plan, strict=True):
            for i in range(0, len(to), 500):
                child.send({"op": "connect", "to": to[i : i + 500]})
        self.total = sum(child.send({"op": "sync"}) for child in self.children)

    def churn(self) -> int:
        """One new connection from a random child to a random listener; returns the client's pid."""
        child = self.rng.choice(self.children)
        other = self.rng.choice(self.children)
        host, port = self.rng.choice(other.listeners)
        child.send({"op": "connect", "to": [(host, port)]})
        return child.pid

    def churn_fraction(self, fraction: float) -> int:
        """Replace about ``fraction`` of the load's sockets: close the oldest client ends of
        ``k`` connections in random children (SO_LINGER 0: both ends vanish, no TIME_WAIT) and
        open ``k`` new ones, so ~4k sockets change (2k gone, 2k new). Returns k."""
        k = max(1, round(self.n_sockets * fraction / 4))
        plan: dict[int, tuple[int, list[tuple[str, int]]]] = {}
        for _ in range(k):
            i = self.rng.randrange(len(self.children))
            j = (
                (i + 1 + self.rng.randrange(len(self.children) - 1)) % len(self.children)
                if len(self.children) > 1
                else i
            )
            n, to = plan.get(i, (0, []))
            to.append(self.rng.choice(self.children[j].listeners))
            plan[i] = (n + 1, to)
        for i, (n, to) in plan.items():
            self.children[i].send({"op": "close", "n": n, "to": to})
        return k

    def a_port(self) -> int:
        """A TCP listener's port on 127.0.0.1 (for `who PORT`)."""
        for child in self.children:
            for host, port in child.listeners:
                if host == "127.0.0.1":
                    return port
        raise RuntimeError("no IPv4 listener")

    def stop(self) -> None:
        """Kill every child we started (by pid) and reap it."""
        for child in self.children:
            if child.proc.poll() is None:
                try:
                    os.kill(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for child in self.children:
            try:
                child.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for stream in (child.proc.stdin, child.proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        self.children = []


def count_sockets() -> int:
    """Inet sockets on the host right now (for reporting), via /proc/net."""
    total = 0
    for name in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/net/{name}") as f:
                total += sum(1 for _ in f) - 1
        except OSError:
            pass
    return total


if __name__ == "__main__":  # a quick manual check: python bench/load.py 2000 20
    n, p = int(sys.argv[1]), int(sys.argv[2])
    t = time.perf_counter()
    with Load(n, p) as load:
        took = time.perf_counter() - t
        print(f"{load.total} sockets in {p} children in {took:.1f}s; host has {count_sockets()}")
        if len(sys.argv) > 3:
            time.sleep(float(sys.argv[3]))
