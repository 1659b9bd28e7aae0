"""Every holder of a real socket: a pre-fork server (the parent binds, forked workers keep the
listener) and a zombie thread-group leader whose live thread still holds the listener. The
socket inodes come from the kernel's own table (netlink sock_diag)."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.fast.netlink import NetlinkReader
from app.fast.procfs import _fd_links
from app.holders import ordered_holders, primary_owner, process_sockets, read_ppid, socket_holders
from tests.helpers import wait_for

PREFORK = r"""
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
workers = []
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        time.sleep(300)
        os._exit(0)
    workers.append(pid)
print(s.getsockname()[1], *workers, flush=True)
time.sleep(300)
"""

# The main thread leaves with the raw exit syscall (not exit_group): the leader becomes a zombie
# whose /proc/PID/fd is empty while the other thread goes on holding the listener.
ZOMBIE_LEADER = r"""
import ctypes, socket, sys, threading, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
threading.Thread(target=lambda: (time.sleep(300), s.close())).start()
print(s.getsockname()[1], flush=True)
ctypes.CDLL(None).syscall(int(sys.argv[1]), 0)
"""

SYS_EXIT = {
    "x86_64": 60,
    "aarch64": 93,
    "riscv64": 93,
    "i686": 1,
    "i386": 1,
    "armv7l": 1,
    "ppc64le": 1,
    "s390x": 1,
}


@contextmanager
def run_script(code: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """Run ``code`` in a child; yield it and the numbers on its first output line. Kills the
    child and every pid it reported (its own forked workers), by pid."""
    fd, path = tempfile.mkstemp(suffix=".py", prefix="portscope-holders-")
    with os.fdopen(fd, "w") as f:
        f.write(code)
    proc = subprocess.Popen([sys.executable, path, *args], stdout=subprocess.PIPE, text=True)
    numbers: list[int] = []
    try:
        assert proc.stdout is not None
        numbers = [int(x) for x in proc.stdout.readline().split()]
        assert numbers, "the child printed nothing"
        yield proc, numbers
    finally:
        for pid in numbers[1:]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait(timeout=10)
        for pid in numbers[1:]:
            try:
                os.waitpid(pid, os.WNOHANG)  # not our children: reaped by init; nothing to do
            except ChildProcessError:
                pass
        os.unlink(path)


def listener_inode(port: int) -> int:
    """The inode of the TCP listener on 127.0.0.1:``port``, from the kernel's socket table."""
    reader = NetlinkReader()
    try:
        recs = [r for r in reader.read(port).records if r.status == "LISTEN"]
    finally:
        reader.close()
    assert len(recs) == 1, recs
    return recs[0].inode


def test_prefork_every_holder_listed_and_the_parent_is_primary() -> None:
    with run_script(PREFORK, "3") as (proc, numbers):
        port, workers = numbers[0], numbers[1:]
        inode = listener_inode(port)
        holders = socket_holders([inode])
        assert holders == {inode: sorted([proc.pid, *workers])}
        assert all(read_ppid(w) == proc.pid for w in workers)
        assert primary_owner(holders[inode]) == proc.pid
        assert ordered_holders(holders[inode]) == [proc.pid, *sorted(workers)]
        # only some pids looked at: the same answer for them
        assert socket_holders([inode], pids=[workers[0], os.getpid()]) == {inode: [workers[0]]}
        # a worker that exits is no longer a holder
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: workers[0] not in socket_holders([inode]).get(inode, []))
        assert primary_owner(socket_holders([inode])[inode]) == proc.pid


@pytest.mark.skipif(platform.machine() not in SYS_EXIT, reason=f"no SYS_exit number for {platform.machine()}")
def test_a_zombie_leader_still_holds_its_socket_through_its_threads() -> None:
    with run_script(ZOMBIE_LEADER, str(SYS_EXIT[platform.machine()])) as (proc, numbers):
        port = numbers[0]
        inode = listener_inode(port)
        wait_for(lambda: _state(proc.pid) == "Z")  # the leader is a zombie now
        listed = _fd_links(f"/proc/{proc.pid}/fd")
        assert listed is None or listed == ([], [])  # the trap: its own fd table lists nothing
        assert proc.poll() is None  # yet the process lives on in its other thread
        assert inode in (process_sockets(proc.pid) or set())
        assert socket_holders([inode]) == {inode: [proc.pid]}


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("State:"):
                return line.split()[1]
    return "?"


def test_unheld_and_gone() -> None:
    assert socket_holders([]) == {}
    assert socket_holders([1]) == {}  # inode 1 is no socket
    done = subprocess.Popen(["true"])
    done.wait()
    assert process_sockets(done.pid) is None and read_ppid(done.pid) is None


def test_primary_owner_rules() -> None:
    parents = {10: 1, 11: 10, 12: 10, 20: 1, 30: 20}
    assert primary_owner([12, 11, 10], parents.get) == 10  # the master, not the newest worker
    assert primary_owner([30, 20, 10], parents.get) == 10  # unrelated masters: the lowest pid
    assert primary_owner([11, 12], parents.get) == 11  # workers whose master is gone: the lowest
    assert primary_owner([], parents.get) is None
    assert primary_owner([5], lambda pid: None) == 5
    cycle = {1: 2, 2: 1}  # only with pid reuse; still an answer
    assert primary_owner([2, 1], cycle.get) == 1
    assert ordered_holders([12, 11, 10], parents.get) == [10, 11, 12]


def test_read_ppid_of_a_process_with_parentheses_in_its_name() -> None:
    code = "import ctypes,time; ctypes.CDLL(None).prctl(15, b'a) b (c', 0, 0, 0); print(1, flush=True)"
    code += "; time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline()
        assert read_ppid(proc.pid) == os.getpid()
    finally:
        proc.kill()
        proc.wait()
