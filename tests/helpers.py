"""Real sockets and real child processes for tests. Everything binds to loopback only."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


def can_unshare(*flags: str) -> bool:
    """True when this process may make the namespaces ``flags`` name (``--mount``, ``--net``):
    root, util-linux's unshare, and a kernel that allows it."""
    import shutil

    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", *flags, "true"], capture_output=True, timeout=30).returncode == 0


needs_mount_ns = pytest.mark.skipif(not can_unshare("--mount"), reason="needs root and unshare --mount")
