"""Every process holding a socket (app/fast/owners.py with track_holders): a pre-fork server, a
socket passed over SCM_RIGHTS after the first poll, and a steady poll that reads no fd table."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from app.fast.collector import FastCollector
from app.holders import primary_holder
from app.model import Snapshot
from tests.helpers import PREFORK, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def listener_of(snap: Snapshot, port: int):  # type: ignore[no-untyped-def]
    found = [s for s in snap.on_port(port) if s.listening]
    assert len(found) == 1
    return found[0]


def test_a_prefork_listener_names_the_master_and_every_worker() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PREFORK, "3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port_s, *kids_s = proc.stdout.readline().split()
        port, kids = int(port_s), sorted(int(k) for k in kids_s)
        fast = FastCollector()
        snap = fast.collect()
        listener = listener_of(snap, port)
        assert listener.pid == proc.pid  # the master, not the newest worker
        assert snap.holders_of(listener) == (proc.pid, *kids)
        assert all(snap.processes[k].ppid == proc.pid for k in kids)
        # once the collector's own new fds (pidfds of the new owners) are read, a steady poll
        # reads no fd table at all
        fast.collect()
        fast.collect()
        assert fast.owners.stats.pids_walked == 0
        # the master exits; the workers (now orphans, reparented) keep the socket: the lowest is primary
        proc.stdin.close()
        proc.wait(timeout=10)

        def after() -> Snapshot | None:
            s = fast.collect()
            lst = [x for x in s.on_port(port) if x.listening]
            return s if lst and lst[0].pid == kids[0] else None

        snap2 = wait_for(after, timeout=10)
        assert snap2.holders_of(listener_of(snap2, port)) == tuple(kids)
    finally:
        proc.kill()
        proc.wait()
        for k in kids if "kids" in dir() else []:
            try:
                os.kill(k, 9)
            except ProcessLookupError:
                pass


# Receives one fd over a unix socket, then holds it until stdin closes.
_RECEIVER = r"""
import array, socket, sys
a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); a.connect(sys.argv[1])
print("ready", flush=True)
msg, anc, flags, addr = a.recvmsg(1, socket.CMSG_LEN(4))
fd = array.array("i", anc[0][2][:4])[0]
print("got", fd, flush=True)
sys.stdin.readline()
"""


def test_a_socket_passed_over_scm_rights_later_gains_its_second_holder(tmp_path: object) -> None:
    import array
    import tempfile

    path = os.path.join(tempfile.mkdtemp(prefix="ps-scm-"), "s")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(path)
    unix.listen(1)
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    port = lst.getsockname()[1]
    rx = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert rx.stdout is not None
        conn, _ = unix.accept()
        assert rx.stdout.readline().strip() == "ready"
        fast = FastCollector()
        snap = fast.collect()
        assert snap.holders_of(listener_of(snap, port)) == (os.getpid(),)
        conn.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [lst.fileno()]))])
        assert rx.stdout.readline().startswith("got")
        snap = fast.collect()  # the receiver's fd count changed: its table is read again
        # the receiver is our child and we hold the socket too: we are the primary holder whatever
        # the pids (after a pid wrap-around the child's pid is the lower one)
        expect = (os.getpid(), rx.pid)
        assert snap.holders_of(listener_of(snap, port)) == expect
        assert listener_of(snap, port).pid == expect[0]
        fast.collect()  # (settles the pidfd the cache opened for the receiver: our own fd count)
        lst.close()  # our copy goes: the receiver alone holds it now
        snap = fast.collect()
        assert snap.holders_of(listener_of(snap, port)) == (rx.pid,)
    finally:
        rx.kill()
        rx.wait()
        unix.close()


def test_primary_holder_rule() -> None:
    assert primary_holder({10, 11, 12}, {11: 10, 12: 10, 10: 1}) == 10  # the master
    assert primary_holder({11, 12}, {11: 1, 12: 1}) == 11  # unrelated: the lowest pid
    assert primary_holder({5, 6}, {5: 6, 6: 5}) == 5  # a cycle (impossible, but total): lowest
    assert primary_holder({7}, {}) == 7


_SWAP = r"""
import socket, sys
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(8)
print(lst.getsockname()[1], flush=True)
for line in sys.stdin:  # each line: accept one connection and close the previous one (same fd count)
    conn, _ = lst.accept()
    if "old" in dir():
        old.close()
    old = conn
    print("swapped", flush=True)
"""


def test_a_new_socket_in_a_process_that_kept_its_fd_count_is_found_at_once() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SWAP], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    clients: list[socket.socket] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port = int(proc.stdout.readline())

        def swap() -> socket.socket:
            c = socket.create_connection(("127.0.0.1", port))
            clients.append(c)
            proc.stdin.write("x\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            assert proc.stdout.readline().strip() == "swapped"  # type: ignore[union-attr]
            return c

        swap()
        fast = FastCollector()
        fast.collect()
        fast.collect()
        for _ in range(3):
            c = swap()  # the child's fd count is the same as before: one accepted, one closed
            snap = fast.collect()
            server_end = [
                s for s in snap.on_port(port) if s.raddr is not None and s.raddr.port == c.getsockname()[1]
            ]
            assert [s.pid for s in server_end] == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
        for c in clients:
            c.close()
