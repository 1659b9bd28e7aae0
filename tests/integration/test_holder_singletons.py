"""OwnerMap keeps a socket's only holder as a plain pid and a set only for a shared socket (a set per
socket cost about 200 bytes a socket at 100k): a real listener going from one holder to two
(a child inherits it), back to one (the child exits), to two again, then to the child alone (the
first holder closes its copy) must be listed exactly as before at every step."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from app.fast.owners import OwnerMap

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s
    s.close()


def inherit(sock: socket.socket) -> subprocess.Popen[bytes]:
    """A child holding ``sock`` (inherited fd) until its stdin closes; it reports once it runs."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print(flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=(sock.fileno(),),
    )
    assert child.stdout is not None and child.stdout.readline() == b"\n"
    return child


def finish(child: subprocess.Popen[bytes]) -> None:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    child.wait(timeout=10)
    child.stdout.close()


def test_holders_of_a_socket_that_gains_and_loses_holders(listener: socket.socket) -> None:
    me = os.getpid()
    ino = os.fstat(listener.fileno()).st_ino
    wanted = {ino: listener.getsockname()[1]}
    owners = OwnerMap(track_holders=True)
    children: list[subprocess.Popen[bytes]] = []
    try:
        owners.resolve(wanted)
        assert owners.holders_of(ino) == (me,) and ino not in owners.shared
        assert owners.owner[ino] == me and owners.shared_holders() == {}

        first = inherit(listener)
        children.append(first)
        owners.resolve(wanted)
        assert owners.holders_of(ino) == (me, first.pid)  # the parent is the primary holder
        assert ino in owners.shared and owners.shared_holders() == {ino: (me, first.pid)}
        assert owners.owner[ino] == me

        finish(first)
        owners.resolve(wanted)
        assert owners.holders_of(ino) == (me,) and ino not in owners.shared
        assert owners.shared_holders() == {} and owners.owner[ino] == me

        second = inherit(listener)
        children.append(second)
        owners.resolve(wanted)
        assert owners.holders_of(ino) == (me, second.pid) and ino in owners.shared

        listener.close()  # the child keeps the socket: it is the child's alone now
        owners.resolve(wanted)
        assert owners.holders_of(ino) == (second.pid,) and ino not in owners.shared
        assert owners.owner[ino] == second.pid and owners.shared_holders() == {}

        owners.drop_inodes([ino])  # the socket closed
        assert owners.holders_of(ino) == () and ino not in owners.holders
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            for stream in (child.stdin, child.stdout):
                if stream is not None:
                    stream.close()
