"""/proc parsing (app/fast/procfs.py) against real processes, including a zombie thread-group leader."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.collector import default_collector
from app.fast import procfs
from tests.helpers import child_listener, spawn_zombie_leader

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def _listener_inode(port: int) -> int:
    inodes = procfs.proc_net_inodes(port, ["tcp"])
    assert len(inodes) == 1
    return next(iter(inodes))


def test_stat_and_socket_inodes_of_a_live_listener() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        st = procfs.read_stat(child.pid)
        assert st is not None and st.alive and st.ppid == os.getpid() and st.threads == 1
        assert st.start_ticks == procfs.start_ticks(child.pid)
        ino = _listener_inode(child.port)
        assert ino in (procfs.socket_inodes(child.pid) or [])
        assert procfs.inode_holders([ino]) == {ino: {child.pid}}
    assert procfs.read_stat(child.pid) is None and procfs.socket_inodes(child.pid) is None


def test_a_zombie_leader_with_a_live_thread_is_alive_and_owns_its_listener() -> None:
    child = spawn_zombie_leader()
    try:
        st = procfs.read_stat(child.pid)
        assert st is not None and st.state == "Z" and st.threads >= 1 and st.alive
        assert os.listdir(f"/proc/{child.pid}/fd") == []  # the leader's own table reads empty
        ino = _listener_inode(child.port)
        assert ino in (procfs.socket_inodes(child.pid) or [])
        assert procfs.inode_holders([ino]) == {ino: {child.pid}}
        snap = default_collector().collect()
        mine = [s for s in snap.on_port(child.port) if s.listening]
        assert [s.pid for s in mine] == [child.pid]  # owned, not "no visible owner"
    finally:
        child.stop()


def test_an_exited_unreaped_child_is_not_alive() -> None:
    import time

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while (st := procfs.read_stat(proc.pid)) is not None and st.state != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert st is not None and st.threads == 1 and not st.alive
    finally:
        proc.wait()


THREADED = r"""
import socket, sys, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
for _ in range(8):
    threading.Thread(target=sys.stdin.read, daemon=True).start()
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
"""

# The leader keeps every capability; one thread drops all of its own (capset is per thread) and
# so lets a capability-less root read the fd table that all threads share.
CAP_THREAD = r"""
import ctypes, socket, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
for _ in range(4):
    threading.Thread(target=sys.stdin.read, daemon=True).start()
ready = threading.Event()
def drop():
    none = (Data * 2)()
    assert libc.capset(ctypes.byref(Header(0x20080522, 0)), none) == 0, ctypes.get_errno()
    ready.set()
    sys.stdin.read()
threading.Thread(target=drop, daemon=True).start()
ready.wait()
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
"""

CAPLESS_READER = r"""
import os, sys
from app.fast import procfs
opened = []
real_open = os.open
os.open = lambda path, *a, **k: (opened.append(path), real_open(path, *a, **k))[1]
print(procfs.socket_inodes(int(sys.argv[1])), len(opened))
"""


CAPLESS = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop capabilities and keep uid 0")


@contextmanager
def _child(script: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A root child running ``script`` (with every capability), and the first line it prints."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        yield child, child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait()


def _read_as_capless_root(pid: int) -> list[str]:
    """What CAPLESS_READER prints about ``pid`` when run as root without any capability."""
    out = subprocess.run(
        ["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-c", CAPLESS_READER, str(pid)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@CAPLESS
def test_a_table_whose_links_are_unreadable_is_empty_without_reading_each_thread() -> None:
    """root without capabilities may list a full-capability root process's fds but not read
    their links (ptrace access): as for pid 1 in some containers. That table is empty; its
    threads' tables are the same table, so they are not listed one by one (15 threads of pid 1
    cost `who` 5 ms on the idle machine before)."""
    with _child(THREADED) as (child, line):
        assert line.isdigit() and len(os.listdir(f"/proc/{child.pid}/task")) > 8
        assert _read_as_capless_root(child.pid) == ["[]", "1"]  # empty, from the leader's table alone


@CAPLESS
def test_a_thread_that_dropped_its_capabilities_lets_the_table_be_read() -> None:
    """Capabilities are per thread, the fd table is shared: where the leader's links are
    unreadable to a capability-less root, a thread without capabilities lets it read them (found
    with one readlink per thread)."""
    with _child(CAP_THREAD) as (child, line):
        ino = _listener_inode(int(line))
        inodes, opened = _read_as_capless_root(child.pid)
        assert str(ino) in inodes  # through the thread without capabilities
        assert int(opened) <= 2  # the leader's table and that thread's, no other listing
