"""Real sockets and real child processes for tests. Everything binds to loopback only."""

from __future__ import annotations

import atexit
import io
import os
import platform
import queue
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

_CHILD = r"""
import os, signal, socket, sys, time
proto, host, port, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ignore_term = "ignore-term" in sys.argv[5:]
accept = "accept" in sys.argv[5:]
if ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
try:
    import ctypes
    ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME: a recognisable name
except Exception:
    pass
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(fam, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if fam == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind((host, port))
if proto == "tcp":
    s.listen(64)
print(s.getsockname()[1], flush=True)
deadline = time.time() + 300
held = []
if accept and proto == "tcp":
    s.settimeout(0.2)
while time.time() < deadline:
    if accept and proto == "tcp":
        try:
            held.append(s.accept()[0])  # keep it open: an accepted connection owned by this process
        except OSError:
            pass
    else:
        time.sleep(0.2)
"""


@dataclass
class Child:
    proc: subprocess.Popen[str]
    port: int
    proto: str
    host: str
    name: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def spawn_listener(
    proto: str = "tcp",
    host: str = "127.0.0.1",
    port: int = 0,
    name: str = "ps-test-srv",
    ignore_term: bool = False,
    accept: bool = False,
) -> Child:
    """Start a child process that listens on ``host:port`` (0 = any free port) and wait for it.

    The child runs from a script file, so its command line stays short and readable:
    ``python /tmp/portscope-listener-….py tcp 127.0.0.1 8080 NAME``."""
    args = [sys.executable, _child_script(), proto, host, str(port), name]
    if ignore_term:
        args.append("ignore-term")
    if accept:
        args.append("accept")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"listener child failed to start on {host}:{port}")
    return Child(proc, int(line), proto, host, name)


@contextmanager
def child_listener(*args: object, **kwargs: object) -> Iterator[Child]:
    child = spawn_listener(*args, **kwargs)  # type: ignore[arg-type]
    try:
        yield child
    finally:
        child.stop()


# tests of app.memtune: what it tunes is glibc's allocator
glibc_only = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
    reason="glibc's allocator only",
)


def has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="this host has no IPv6 loopback (::1)")


def quiet_port(proto: str = "tcp", host: str = "127.0.0.1") -> int:
    """A free port *below* the ephemeral range: no other test's bind to port 0 (nor an outgoing
    connection) can take it right after a test frees it, as happens on a busy shared machine."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    for _ in range(200):
        port = random.randrange(20000, max(20001, min(low, 32768)))
        with socket.socket(fam, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    return free_port(proto, host)


def free_port(proto: str = "tcp", host: str = "127.0.0.1") -> int:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(fam, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something truthy; return it, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def portscope_cmd() -> list[str]:
    """The installed console script if present beside this interpreter, else ``python -m app``."""
    script = os.path.join(os.path.dirname(sys.executable), "portscope")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "app"]


def run_cli(*args: str, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*portscope_cmd(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,  # type: ignore[call-overload]
    )


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


_CHILD_SCRIPT: str | None = None


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _child_script() -> str:
    """The listener child's code in a temporary file (written once per test session)."""
    global _CHILD_SCRIPT
    if _CHILD_SCRIPT is None or not os.path.exists(_CHILD_SCRIPT):
        fd, _CHILD_SCRIPT = tempfile.mkstemp(prefix="portscope-listener-", suffix=".py")
        with os.fdopen(fd, "w") as f:
            f.write(_CHILD)
        os.chmod(_CHILD_SCRIPT, 0o644)
        atexit.register(_remove_quietly, _CHILD_SCRIPT)
    return _CHILD_SCRIPT


def child_script() -> str:
    """The listener child's script (argv: proto host port name [ignore-term] [accept]), to run it
    some other way than :func:`spawn_listener` (under another parent)."""
    return _child_script()


def spawn_listener_with_args(
    extra_args: list[str], proto: str = "tcp", host: str = "127.0.0.1", name: str = "ps-test-srv"
) -> Child:
    """Like :func:`spawn_listener`, with ``extra_args`` appended to the child's command line (to see
    how hostile command lines are shown). The child ignores them. It runs the listener from a script
    file, so its command line is short: ``python /tmp/...py tcp 127.0.0.1 0 NAME extra-args ...``."""
    args = [sys.executable, _child_script(), proto, host, "0", name, "extra-args", *extra_args]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"listener child failed to start on {host}")
    return Child(proc, int(line), proto, host, name)


@contextmanager
def listening_socket(proto: str = "tcp", host: str = "127.0.0.1") -> Iterator[socket.socket]:
    """A socket in this process bound to ``host`` on a free port (TCP: listening, UDP: bound)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(fam, kind)
    try:
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, 0))
        if proto == "tcp":
            s.listen(16)
        yield s
    finally:
        s.close()


@contextmanager
def tcp_server(handler: Callable[[socket.socket], None], host: str = "127.0.0.1") -> Iterator[int]:
    """A thread accepting connections on ``host`` and running ``handler`` on each, in its own thread."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(16)
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=_serve, args=(handler, conn), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(5)
        srv.close()


def _serve(handler: Callable[[socket.socket], None], conn: socket.socket) -> None:
    with conn:
        try:
            handler(conn)
        except OSError:
            pass


_ZOMBIE_LEADER = r"""
import ctypes, os, platform, socket, sys, threading, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
def hold():
    time.sleep(300)
    s.close()
threading.Thread(target=hold, daemon=False).start()
print(s.getsockname()[1], flush=True)
time.sleep(0.2)
SYS_EXIT = {"x86_64": 60, "aarch64": 93, "armv7l": 1, "i686": 1, "riscv64": 93}.get(platform.machine(), 60)
ctypes.CDLL(None).syscall(SYS_EXIT, 0)  # only the main thread exits: the leader becomes a zombie task
"""


def spawn_zombie_leader() -> Child:
    """A process whose main thread has exited (the thread-group leader is a zombie task) while a
    second thread keeps its TCP listener open: alive, and the owner of that listener."""
    proc = subprocess.Popen([sys.executable, "-c", _ZOMBIE_LEADER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"zombie-leader child failed to start: {line!r}")
    child = Child(proc, int(line), "tcp", "127.0.0.1", "python")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until the main thread is gone
        try:
            with open(f"/proc/{proc.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return child
        except OSError:
            break
        time.sleep(0.02)
    child.stop()
    raise RuntimeError("the zombie-leader child's main thread did not exit")


# Binds a listener, forks N workers that keep it; prints "port worker_pids..."; on a line on stdin
# the parent exits (the workers stay until their stdin closes... they watch a pipe).
PREFORK = r"""
import os, socket, sys, time
n = int(sys.argv[1])
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
r, w = os.pipe()
kids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)  # until the test closes the parent's stdin and the pipe's write end is gone
        time.sleep(0.5)
        os._exit(0)
    kids.append(pid)
os.close(r)
print(s.getsockname()[1], *kids, flush=True)
sys.stdin.readline()
"""


@contextmanager
def prefork_listener(workers: int = 3) -> Iterator[tuple[subprocess.Popen[str], int, list[int]]]:
    """A pre-fork server: the parent binds 127.0.0.1, forks ``workers`` children that keep the
    socket. Yields (parent, port, worker pids); kills them all by pid afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PREFORK, str(workers)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    kids: list[int] = []
    try:
        assert proc.stdout is not None
        port_s, *kids_s = proc.stdout.readline().split()
        kids = sorted(int(k) for k in kids_s)
        yield proc, int(port_s), kids
    finally:
        for pid in kids:
            kill_quietly(pid)
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def growing_listener(name: str = "ps-grow") -> Iterator[Child]:
    """A child in this namespace listening on 127.0.0.1 that opens one more listener each time
    :func:`more` asks (so a test can move it into a cgroup first and then watch a new socket)."""
    fd, script = tempfile.mkstemp(suffix=".py", prefix="portscope-grow-")
    with os.fdopen(fd, "w") as f:
        f.write(LISTENER)
    os.chmod(script, 0o644)
    proc = subprocess.Popen(
        [sys.executable, "-u", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield Child(proc, int(proc.stdout.readline()), "tcp", "127.0.0.1", name)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        os.unlink(script)


# A listener that prints its port, then opens one more listener each time it reads a line.
LISTENER = r"""
import socket, sys
held = []
def listen():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    held.append(s)
    print(s.getsockname()[1], flush=True)
listen()
for _ in sys.stdin:
    listen()
"""


@contextmanager
def netns_listener(*prefix: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A child listening on 127.0.0.1 inside a new network namespace (``prefix`` makes it, e.g.
    ``unshare --net``); lo is brought up inside first. Yields (process, port)."""
    fd, script = tempfile.mkstemp(suffix=".py", prefix="portscope-netns-")
    with os.fdopen(fd, "w") as f:
        f.write(LISTENER)
    os.chmod(script, 0o644)
    inner = f"ip link set lo up && exec {sys.executable} -u {script}"
    proc = subprocess.Popen(
        [*prefix, "sh", "-c", inner], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"the namespaced listener did not start: {line!r}"
        yield proc, int(line)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        os.unlink(script)


def more(proc: subprocess.Popen[str]) -> int:
    """Ask the namespaced child for one more listener; its port."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("more\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


# --- private network namespaces --------------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A private network namespace, and a PID namespace whose init is the script: when the script ends
# (or unshare is killed), the kernel ends every process it started, so nothing it ran can outlive
# it; /proc is remounted so socket owners are seen with the namespace's pids.
UNSHARE = ["unshare", "--net", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child", "--"]

NETNS_PRELUDE = r"""
import json, os, socket, subprocess, sys, threading, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
CLI = [sys.executable, "-m", "app"]

def sh(cmd):
    subprocess.run(cmd, shell=True, check=True, capture_output=True)

def cli(*args, timeout=120):
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)
    return {"rc": r.returncode, "out": r.stdout, "err": r.stderr}

def cli_json(*args, timeout=120):
    r = cli(*args, "--json", timeout=timeout)
    r["json"] = json.loads(r["out"]) if r["out"].strip() else None
    return r
"""


def _netns_works() -> bool:
    if sys.platform != "linux" or not all(shutil.which(t) for t in ("unshare", "ip")):
        return False
    try:
        r = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


_NETNS: list[bool] = []


def netns_works() -> bool:
    """Whether :func:`run_in_netns` can run here (checked once)."""
    if not _NETNS:
        _NETNS.append(_netns_works())
    return _NETNS[0]


needs_netns = pytest.mark.skipif(
    not netns_works(), reason="needs root, unshare (util-linux) and ip (iproute2) for a private namespace"
)


def run_in_netns(script: str, timeout: float = 180) -> object:
    """Run the Python ``script`` (after :data:`NETNS_PRELUDE`: loopback up, ``cli()``, ``sh()``) in a
    private network namespace that ends with it, from the checkout's root, and return the JSON
    value it prints on its last stdout line. Addresses, routes and firewall rules it sets up exist
    only in that namespace."""
    import json
    import textwrap

    code = NETNS_PRELUDE + textwrap.dedent(script)
    r = subprocess.run(
        [*UNSHARE, sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if r.returncode != 0 or not r.stdout.strip():
        raise AssertionError(f"namespace script failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def can_unshare(*flags: str) -> bool:
    """True when this process may make the namespaces ``flags`` name (``--mount``, ``--net``):
    root, util-linux's unshare, and a kernel that allows it."""
    import shutil

    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", *flags, "true"], capture_output=True, timeout=30).returncode == 0


needs_mount_ns = pytest.mark.skipif(not can_unshare("--mount"), reason="needs root and unshare --mount")
_PREFORK = r"""
import ctypes, os, signal, socket, sys, time
logdir, n, mode, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
try:
    ctypes.CDLL(None).prctl(15, b"ps-prefork", 0, 0, 0)  # PR_SET_NAME
except Exception:
    pass
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
parent = os.getpid()
def record(who, signo, sender):
    with open(os.path.join(logdir, "%d.log" % who), "a") as f:
        f.write("%d %d %.3f\n" % (signo, sender, time.time()))
WANTED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1}
workers = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:  # a worker: keeps the listener, logs each signal and its sender, then exits
        signal.pthread_sigmask(signal.SIG_BLOCK, WANTED)
        me = os.getpid()
        deadline = time.time() + 300
        while time.time() < deadline:
            info = signal.sigtimedwait(WANTED, 0.1)
            if info is not None:
                record(me, info.si_signo, info.si_pid)
                os._exit(0)
            if os.getppid() != parent:  # the master is gone: so is the worker
                os._exit(0)
        os._exit(0)
    workers.append(pid)
def on_term(signum, frame):
    record(parent, signum, 0)
    if mode == "ignore-term":
        return
    for w in workers:  # a master stops its own workers
        os.kill(w, signal.SIGUSR1)
    for w in workers:
        os.waitpid(w, 0)
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
print(s.getsockname()[1], *workers, flush=True)
deadline = time.time() + 300
while time.time() < deadline:
    time.sleep(0.1)
"""


@dataclass
class PreFork:
    """A pre-fork server: the master binds a TCP listener on loopback and forks workers that keep
    it. Workers log every signal they get with its sender's pid (siginfo) and exit on it, or when
    the master is gone. The master logs SIGTERM; it stops its workers with SIGUSR1 and exits,
    unless started with ``mode="ignore-term"``."""

    proc: subprocess.Popen[str]
    port: int
    workers: list[int]
    logdir: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signals(self, pid: int) -> list[tuple[int, int, float]]:
        """(signal, sender pid, time) for every signal ``pid`` logged (the master's sender is 0)."""
        try:
            with open(os.path.join(self.logdir, f"{pid}.log")) as f:
                rows = [line.split() for line in f]
        except FileNotFoundError:
            return []
        return [(int(a), int(b), float(c)) for a, b, c in rows]

    def stop(self) -> None:
        for pid in [*self.workers, self.pid]:
            kill_quietly(pid)
        self.proc.wait(timeout=10)


@contextmanager
def prefork_server(logdir: str, workers: int = 2, mode: str = "stop-workers") -> Iterator[PreFork]:
    argv = [sys.executable, "-c", _PREFORK, logdir, str(workers), mode, str(quiet_port())]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port, *pids = (int(x) for x in proc.stdout.readline().split())
    server = PreFork(proc, port, pids, logdir)
    try:
        yield server
    finally:
        server.stop()


_SUPERVISOR = r"""
import subprocess, sys, time
port = int(sys.argv[1])
child = (
    "import os, socket, sys, time\n"
    "parent = os.getppid()\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
    "s.listen(8)\n"
    "print('ready', flush=True)\n"
    "deadline = time.time() + 300\n"
    "while time.time() < deadline and os.getppid() == parent: time.sleep(0.1)\n"
)
for _ in range(20):  # restart the child whenever it exits, as a supervisor does
    c = subprocess.Popen([sys.executable, "-c", child, str(port)], stdout=subprocess.PIPE, text=True)
    c.stdout.readline()
    print(c.pid, flush=True)
    c.wait()
    time.sleep(0.05)
"""


@dataclass
class Supervisor:
    """A supervisor that restarts its child (a TCP listener on loopback on a fixed ``port``) each
    time it exits; ``next_child()`` reads the pid of the next child started."""

    proc: subprocess.Popen[str]
    port: int
    children: list[int]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def next_child(self) -> int:
        assert self.proc.stdout is not None
        pid = int(self.proc.stdout.readline())
        self.children.append(pid)
        return pid

    def stop(self) -> None:
        kill_quietly(self.pid)
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.children += [int(line) for line in self.proc.stdout.read().split()]
        for pid in self.children:  # (each also exits by itself once its supervisor is gone)
            kill_quietly(pid)


@contextmanager
def supervised_listener() -> Iterator[Supervisor]:
    port = quiet_port()
    proc = subprocess.Popen([sys.executable, "-c", _SUPERVISOR, str(port)], stdout=subprocess.PIPE, text=True)
    sup = Supervisor(proc, port, [])
    try:
        sup.next_child()
        yield sup
    finally:
        sup.stop()


# --- TCP traffic on loopback ---------------------------------------------------------------------


@contextmanager
def connected_pair() -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    """(listener, client, accepted server end) on 127.0.0.1, owned by this process."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        srv = stack.enter_context(socket.socket())
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        client = stack.enter_context(socket.create_connection(srv.getsockname()))
        server, _ = srv.accept()
        stack.enter_context(server)
        yield srv, client, server


def move(src: socket.socket, dst: socket.socket, n: int) -> None:
    """Send ``n`` bytes from ``src`` and read every one of them at ``dst``."""
    sender = threading.Thread(target=src.sendall, args=(b"x" * n,))
    sender.start()
    got = 0
    while got < n:
        chunk = dst.recv(1 << 16)
        assert chunk
        got += len(chunk)
    sender.join()


def echo(conn: socket.socket) -> None:
    """A :func:`tcp_server` handler that sends back what it receives."""
    while data := conn.recv(4096):
        conn.sendall(data)


# --- reading the CLI's aligned tables ----------------------------------------------------------------


def table_columns(header: str) -> dict[str, int]:
    """Column name -> where it starts in an aligned table's header line."""
    import re

    return {m.group(0): m.start() for m in re.finditer(r"\S+", header)}


def table_cell(line: str, cols: dict[str, int], name: str) -> str:
    """The text of column ``name`` in an aligned row (up to where the next column starts)."""
    start = cols[name]
    later = [p for p in sorted(cols.values()) if p > start]
    return line[start : later[0] if later else None].strip()


# --- a running `portscope watch` -------------------------------------------------------------------

DEADLINE = 20.0


class Live:
    """A running ``portscope watch``: stdout is read in this thread with select() and a deadline (so
    the test can close it at any time); stderr is pumped by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.err: list[str] = []
        self._err_q: queue.Queue[str] = queue.Queue()
        self._buf = b""
        assert proc.stdout is not None and proc.stderr is not None
        self._out_fd = proc.stdout.fileno()
        threading.Thread(target=self._pump, args=(proc.stderr, self._err_q), daemon=True).start()

    @staticmethod
    def _pump(stream: io.TextIOBase, q: queue.Queue[str]) -> None:
        try:
            for line in stream:
                q.put(line)
        except (ValueError, OSError):
            pass

    def stderr_line(self, contains: str) -> str:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                line = self._err_q.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.err.append(line)
            if contains in line:
                return line
        raise AssertionError(f"no stderr line with {contains!r}; got {self.err!r}")

    def stdout_until(self, match: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + DEADLINE
        seen: list[str] = []
        while time.monotonic() < deadline:
            while b"\n" in self._buf:
                raw, self._buf = self._buf.split(b"\n", 1)
                line = raw.decode()
                seen.append(line)
                if match(line):
                    return line
            ready, _, _ = select.select([self._out_fd], [], [], 0.1)
            if ready:
                chunk = os.read(self._out_fd, 65536)
                if not chunk:
                    break
                self._buf += chunk
        raise AssertionError(f"no matching stdout line within {DEADLINE}s; got {seen!r}")

    def all_stderr(self) -> str:
        while True:
            try:
                self.err.append(self._err_q.get(timeout=0.5))
            except queue.Empty:
                return "".join(self.err)


@contextmanager
def watching(*args: str) -> Iterator[Live]:
    proc = subprocess.Popen(
        [*portscope_cmd(), "watch", "--interval", "0.2", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    live = Live(proc)
    try:
        live.stderr_line("watching")  # the first snapshot is taken: changes from now on are events
        yield live
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


# --- a container engine (podman) and an sshd, for the fixtures in conftest.py ------------------------

SSHD = "/usr/sbin/sshd"


@dataclass
class Engine:
    sock: str
    podman: list[str]  # podman with this engine's storage flags
    cid: str
    image: str
    port: int


def podman_base(tmp: Path) -> list[str]:
    return [
        "podman",
        "--root",
        str(tmp / "root"),
        "--runroot",
        str(tmp / "run"),
        "--tmpdir",
        str(tmp / "tmp"),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]


def tiny_image_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"portscope test image\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def engine_answers(sock: str) -> bool:
    from app.containers import EngineError, api_get

    try:
        return api_get(sock, "/_ping", timeout=0.5)[0] == 200
    except EngineError:
        return False


def listening_ports(pid: int) -> set[int]:
    proc = psutil.Process(pid)
    conns = proc.net_connections("tcp") if hasattr(proc, "net_connections") else proc.connections("tcp")
    return {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def ssh_client(sshd: tuple[int, str], *forward_args: str) -> subprocess.Popen[bytes]:
    port, key = sshd
    argv = [
        "ssh",
        *forward_args,
        *("-i", key, "-p", str(port)),
        *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
        *("-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR"),
        "root@127.0.0.1",
    ]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)


# A child with two client connections to the test's listener; it sends a line on either on demand.
_TWO_CLIENTS = r"""
import socket, sys
port = int(sys.argv[1])
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
print(" ".join(str(c.getsockname()[1]) for c in conns), flush=True)
for line in sys.stdin:
    i = int(line)
    try:
        conns[i].sendall(b"ping\n")
        print("sent", i, flush=True)
    except OSError as exc:
        print("error", i, exc.errno, flush=True)
"""


@contextmanager
def two_connections() -> Iterator[tuple[subprocess.Popen[str], list[int], list[socket.socket], int]]:
    """A child with two client connections to a listener of the test's own on loopback; it sends
    "ping" on one when told (:func:`ask_client`). Yields (child, its two local ports, the two
    accepted server ends in the same order, the listener's port)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-c", _TWO_CLIENTS, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    accepted: list[socket.socket] = []
    try:
        assert child.stdout is not None
        ports = [int(p) for p in child.stdout.readline().split()]
        accepted = [srv.accept()[0] for _ in range(2)]
        by_peer = {a.getpeername()[1]: a for a in accepted}
        accepted = [by_peer[p] for p in ports]  # accepted[i] is the server end of the child's conns[i]
        for a in accepted:
            a.settimeout(5)
        yield child, ports, accepted, port
    finally:
        child.kill()
        child.wait()
        for a in accepted:
            a.close()
        srv.close()


def ask_client(child: subprocess.Popen[str], i: int) -> str:
    """Make the child send on its connection ``i``: "sent i", or "error i ERRNO" if it is gone."""
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(f"{i}\n")
    child.stdin.flush()
    return child.stdout.readline().strip()
