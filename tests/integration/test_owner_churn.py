"""The dashboard's owner map under fd churn in real processes: after a table is read again only
in part (app/fast/owners.py), every socket's owner and holders are what a fresh look says, in
the cases a review found wrong: a socket moved onto a file's fd number, a socket handed to a
child whose parent then reuses the number, a recycled pid, and a search that took an owner's
socket away. A fake clock keeps the minute's full sweep from hiding a mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest

from app.fast.collector import FastCollector
from app.model import Snapshot

# A process that runs what it is sent: "!stmt" is executed, anything else evaluated and its repr
# printed. After "!kid = os.fork()" the new process only holds its fds (until killed by pid).
_CHILD = r"""
import os, socket, sys, time
ns = {"os": os, "socket": socket}
for line in sys.stdin:
    try:
        if line.startswith("!"):
            exec(line[1:], ns)
            result = None
        else:
            result = eval(line, ns)
        if ns.get("kid") == 0:
            sys.stdin.close()
            while True:
                time.sleep(100)
        print("ok", repr(result), flush=True)
    except Exception as exc:
        print("err", repr(exc), flush=True)
"""


class Child:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = self.proc.pid

    def __call__(self, line: str) -> object:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        assert reply.startswith("ok "), (line, reply)
        return eval(reply[3:])

    def fork(self) -> int:
        self("!kid = os.fork()")
        kid = self("kid")
        assert isinstance(kid, int)
        return kid

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def spawn() -> Iterator[list[object]]:
    """Children (and forked pids) made by a test, killed by pid afterwards."""
    made: list[object] = []
    yield made
    for thing in made:
        if isinstance(thing, Child):
            thing.stop()
        else:
            try:
                os.kill(int(thing), 9)  # type: ignore[call-overload]
                os.waitpid(int(thing), os.WNOHANG)  # type: ignore[call-overload]
            except (OSError, ChildProcessError):
                pass


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def dashboard_collector() -> tuple[FastCollector, Clock]:
    collector = FastCollector()
    clock = Clock()
    collector.owners.clock = clock
    collector.collect()
    return collector, clock


def seen(snap: Snapshot, inodes: list[int]) -> dict[int, object]:
    by_inode = {s.inode: s for s in snap.sockets}
    return {i: (by_inode[i].pid, snap.holders_of(by_inode[i])) if i in by_inode else None for i in inodes}


def poll(collector: FastCollector, clock: Clock, inodes: list[int]) -> dict[int, object]:
    """The next poll (a second later, no sweep), checked against a fresh collector's look."""
    clock.now += 1
    got = seen(collector.collect(), inodes)
    owners = collector.owners  # (what it counts per owner is exactly what it owns)
    assert owners._owns == Counter(owners.owner.values())
    fresh = FastCollector()
    try:
        assert got == seen(fresh.collect(), inodes)
    finally:
        fresh.close()
    return got


def listener(child: Child) -> int:
    child('!s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()')
    ino = child("os.fstat(s.fileno()).st_ino")
    assert isinstance(ino, int)
    return ino


def test_a_shared_listener_moved_onto_a_files_fd_keeps_both_holders(spawn: list[object]) -> None:
    parent = Child()
    spawn.append(parent)
    ino = listener(parent)
    parent('!f = os.open("/dev/null", os.O_RDONLY)')
    kid = parent.fork()
    spawn.append(kid)
    collector, clock = dashboard_collector()
    try:
        assert poll(collector, clock, [ino]) == {ino: (parent.pid, (parent.pid, kid))}
        parent("!os.dup2(s.fileno(), f); s.close()")  # inetd style: the socket onto fd f
        for _ in range(2):
            assert poll(collector, clock, [ino]) == {ino: (parent.pid, (parent.pid, kid))}
    finally:
        collector.close()


def test_a_listener_handed_to_a_child_is_no_longer_the_parents(spawn: list[object]) -> None:
    parent = Child()
    spawn.append(parent)
    ino = listener(parent)
    collector, clock = dashboard_collector()
    try:
        assert poll(collector, clock, [ino]) == {ino: (parent.pid, (parent.pid,))}
        kid = parent.fork()
        spawn.append(kid)
        # the parent lets its copy go; a file takes the number, and one more file opens
        parent('!s.close(); f1 = os.open("/dev/null", os.O_RDONLY); f2 = os.open("/dev/null", os.O_RDONLY)')
        for _ in range(2):
            assert poll(collector, clock, [ino]) == {ino: (kid, (kid,))}
    finally:
        collector.close()


def test_a_socket_the_search_takes_from_its_owner_goes_to_the_other_holder(spawn: list[object]) -> None:
    parent = Child()
    spawn.append(parent)
    ino = listener(parent)
    collector, clock = dashboard_collector()
    try:
        poll(collector, clock, [ino])
        kid = parent.fork()
        spawn.append(kid)
        # the parent's copy goes and a new UDP socket takes its number (found by the search)
        parent(
            '!s.close(); u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); '
            'f = os.open("/dev/null", os.O_RDONLY)'
        )
        udp = parent("os.fstat(u.fileno()).st_ino")
        assert isinstance(udp, int)
        got = poll(collector, clock, [ino, udp])
        assert got == {ino: (kid, (kid,)), udp: (parent.pid, (parent.pid,))}
        assert ino not in collector.owners.negative
    finally:
        collector.close()


_LAST_PID = "/proc/sys/kernel/ns_last_pid"


@pytest.mark.skipif(
    not (os.geteuid() == 0 and os.path.exists(_LAST_PID)), reason="needs root and ns_last_pid"
)
def test_a_recycled_pid_does_not_inherit_the_old_processes_fds(spawn: list[object]) -> None:
    """A process holding only files exits and a new worker of a listener's master gets its pid
    before the next poll, with the listener at a number the old process had as a file."""
    master = Child()
    spawn.append(master)
    ino = listener(master)
    gone = Child()
    spawn.append(gone)
    gone('!fs = [os.open("/dev/null", os.O_RDONLY) for _ in range(3)]')
    collector, clock = dashboard_collector()
    try:
        poll(collector, clock, [ino])
        gone.stop()
        worker = None
        for _ in range(20):
            with open(_LAST_PID, "w") as f:
                f.write(str(gone.pid - 1))
            worker = master.fork()
            spawn.append(worker)
            if worker == gone.pid:
                break
        if worker != gone.pid:
            pytest.skip("could not get the same pid again (busy machine)")
        assert poll(collector, clock, [ino]) == {ino: (master.pid, (master.pid, worker))}
    finally:
        collector.close()
