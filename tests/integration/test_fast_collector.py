"""The fast collector on real loopback sockets: same answers as psutil, incremental owners, fallbacks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from app.collector import PsutilCollector, default_collector
from app.errors import CollectorUnavailable
from app.fast import netlink as netlink_mod
from app.fast.collector import FastCollector
from app.fast.netlink import NetlinkReader, NetlinkUnavailable
from app.fast.procnet import ProcNetReader
from app.model import Snapshot, Sock
from tests.helpers import child_listener, has_ipv6, spawn_listener, wait_for

PATHS = ("netlink", "procnet")


def view(s: Sock) -> tuple[object, ...]:
    return (s.proto, s.family, s.laddr, s.raddr, s.status, s.pid)


def listening_pids(snap: Snapshot, port: int) -> list[int | None]:
    """Owners of the listeners on ``port`` (a TIME_WAIT left by another test may share the number)."""
    return [s.pid for s in snap.on_port(port) if s.listening]


def ours(snap: Snapshot, ports: set[int]) -> set[tuple[object, ...]]:
    """The sockets this test made: local or remote port among ``ports``, not TIME_WAIT (those
    depend on what other tests closed a moment ago)."""
    return {
        view(s)
        for s in snap.sockets
        if s.status != "TIME_WAIT"
        and (s.laddr.port in ports or (s.raddr is not None and s.raddr.port in ports))
    }


class Sockets:
    """Sockets in the test process: TCP listener + a connected pair, UDP bound and connected,
    and the same over IPv6 when the host has ::1."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.ports: set[int] = set()
        self.add_family("127.0.0.1", socket.AF_INET)
        if has_ipv6():
            self.add_family("::1", socket.AF_INET6)

    def keep(self, s: socket.socket) -> socket.socket:
        self.stack.callback(s.close)
        return s

    def add_family(self, host: str, af: socket.AddressFamily) -> None:
        lst = self.keep(socket.socket(af, socket.SOCK_STREAM))
        lst.bind((host, 0))
        lst.listen(8)
        port = lst.getsockname()[1]
        client = self.keep(socket.create_connection((host, port)))
        accepted, _ = lst.accept()
        self.keep(accepted)
        u1 = self.keep(socket.socket(af, socket.SOCK_DGRAM))
        u1.bind((host, 0))
        u2 = self.keep(socket.socket(af, socket.SOCK_DGRAM))
        u2.bind((host, 0))
        u2.connect(u1.getsockname()[:2])
        self.ports |= {port, client.getsockname()[1], u1.getsockname()[1], u2.getsockname()[1]}


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as st:
        yield st


@pytest.mark.parametrize("path", PATHS)
def test_same_sockets_states_and_owners_as_psutil(path: str, stack: ExitStack) -> None:
    mine = Sockets(stack)
    children = [stack.enter_context(child_listener("tcp", "127.0.0.1"))]
    children.append(stack.enter_context(child_listener("udp", "127.0.0.1")))
    if has_ipv6():
        children.append(stack.enter_context(child_listener("tcp", "::1")))
        children.append(stack.enter_context(child_listener("udp", "::1")))
    ports = mine.ports | {c.port for c in children}

    fast = FastCollector(path=path)  # type: ignore[arg-type]
    assert fast.source == path
    got = fast.collect()
    want = PsutilCollector().collect()
    assert got.source == path
    assert ours(got, ports) == ours(want, ports)
    assert len(ours(got, ports)) == 5 * (2 if has_ipv6() else 1) + len(children)
    # and the set is what the test made: 2 TCP listeners-side + 2 UDP per family, all owned
    me = os.getpid()
    assert {s[5] for s in ours(got, mine.ports)} == {me}
    for child in children:
        socks = [s for s in got.on_port(child.port) if s.listening]
        assert [s.pid for s in socks] == [child.pid]
        owner = got.owner(socks[0])
        assert owner is not None and owner.name == child.name
    # a steady second poll answers the same
    assert ours(fast.collect(), ports) == ours(got, ports)


def test_uniform_fast_parse_equals_message_by_message(
    stack: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = Sockets(stack)
    fast_path = NetlinkReader().read()
    monkeypatch.setattr(NetlinkReader, "_take_uniform", lambda self, *a: False)
    slow_path = NetlinkReader().read()

    def rows(records: list) -> set[tuple[object, ...]]:  # type: ignore[type-arg]
        return {
            (r.proto, r.family, r.laddr, r.raddr, r.status, r.inode)
            for r in records
            if r.laddr.port in mine.ports
        }

    assert rows(fast_path.records) == rows(slow_path.records)
    assert len(rows(fast_path.records)) >= 8


@pytest.mark.parametrize("path", PATHS)
def test_new_socket_in_known_process_gets_its_owner_next_poll(path: str, stack: ExitStack) -> None:
    Sockets(stack)
    fast = FastCollector(path=path)  # type: ignore[arg-type]
    fast.collect()
    fast.collect()
    new = stack.enter_context(socket.socket())
    new.bind(("127.0.0.1", 0))
    new.listen(4)
    port = new.getsockname()[1]
    snap = fast.collect()
    assert listening_pids(snap, port) == [os.getpid()]
    assert fast.owners.stats.unknown >= 1  # it was resolved by this poll's walk


@pytest.mark.parametrize("path", PATHS)
def test_new_socket_in_new_process_gets_its_owner_next_poll(path: str) -> None:
    fast = FastCollector(path=path)  # type: ignore[arg-type]
    fast.collect()
    with child_listener("tcp", "127.0.0.1") as child:
        snap = fast.collect()
        socks = [s for s in snap.on_port(child.port) if s.listening]
        assert [s.pid for s in socks] == [child.pid]
        assert snap.owner(socks[0]) is not None
        assert snap.owner(socks[0]).name == child.name  # type: ignore[union-attr]


def test_closed_socket_disappears_and_exited_owner_is_forgotten() -> None:
    fast = FastCollector()
    child = spawn_listener("udp", "127.0.0.1")
    try:
        snap = fast.collect()
        assert listening_pids(snap, child.port) == [child.pid]
    finally:
        child.stop()
    snap = fast.collect()
    assert [s for s in snap.on_port(child.port) if s.proto.value == "udp"] == []
    assert child.pid not in snap.processes
    assert child.pid not in fast.processes


def test_inherited_socket_moves_to_the_surviving_process(stack: ExitStack) -> None:
    """The owner exits but a child it started keeps the socket open: the next poll finds the child."""
    code = (
        "import os, socket, subprocess, sys, time\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(4)\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "                       pass_fds=[s.fileno()])\n"
        "print(s.getsockname()[1], kid.pid, flush=True)\n"
        "sys.stdin.readline()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None and parent.stdin is not None
    port_s, kid_s = parent.stdout.readline().split()
    port, kid = int(port_s), int(kid_s)

    def kill_kid() -> None:
        try:
            os.kill(kid, 9)
        except ProcessLookupError:
            pass

    stack.callback(kill_kid)
    fast = FastCollector()
    first = fast.collect()
    # Both hold it: the parent is the primary owner (its parent does not hold it), the kid follows.
    assert listening_pids(first, port) == [parent.pid]
    listener = next(s for s in first.on_port(port) if s.listening)
    assert first.holders_of(listener) == (parent.pid, kid)
    parent.stdin.close()
    parent.wait(timeout=10)
    snap = wait_for(lambda: (s := fast.collect()) and listening_pids(s, port) == [kid] and s)
    listener = next(s for s in snap.on_port(port) if s.listening)
    assert snap.owner(listener).pid == kid  # type: ignore[union-attr]
    assert snap.holders_of(listener) == (kid,)


@pytest.mark.parametrize("path", PATHS)
def test_port_filter_returns_only_that_port_with_owners(path: str) -> None:
    with child_listener("tcp", "127.0.0.1") as a, child_listener("udp", "127.0.0.1") as b:
        fast = FastCollector(path=path)  # type: ignore[arg-type]
        snap = fast.collect(port=a.port)
        assert {s.laddr.port for s in snap.sockets} == {a.port}
        assert listening_pids(snap, a.port) == [a.pid]
        assert set(snap.processes) == {a.pid}
        # the same collector then does a full poll correctly
        full = fast.collect()
        assert listening_pids(full, b.port) == [b.pid]
        assert listening_pids(full, a.port) == [a.pid]


def test_fallback_to_procnet_when_netlink_cannot_open(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(netlink_mod, "open_socket", refuse)
    with child_listener("tcp", "127.0.0.1") as child:
        fast = FastCollector()
        assert fast.source == "procnet"
        snap = fast.collect()
        assert snap.source == "procnet"
        assert listening_pids(snap, child.port) == [child.pid]
        with pytest.raises(OSError):
            FastCollector(path="netlink")


def test_fallback_to_psutil_when_proc_net_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> socket.socket:
        raise NetlinkUnavailable(97, "no netlink here")

    monkeypatch.setattr(netlink_mod, "open_socket", refuse)
    monkeypatch.setattr(ProcNetReader.__init__, "__defaults__", ("/nonexistent/proc/net",))
    with child_listener("udp", "127.0.0.1") as child:
        fast = FastCollector(fallback=PsutilCollector)
        assert fast.source == "psutil"
        snap = fast.collect()
        assert snap.source == "psutil"
        assert listening_pids(snap, child.port) == [child.pid]
        assert isinstance(default_collector(), FastCollector)  # the factory hands the fallback in
        assert default_collector().collect().source == "psutil"


def test_no_source_at_all_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> socket.socket:
        raise NetlinkUnavailable(97, "no netlink here")

    monkeypatch.setattr(netlink_mod, "open_socket", refuse)
    monkeypatch.setattr(ProcNetReader.__init__, "__defaults__", ("/nonexistent/proc/net",))
    with pytest.raises(CollectorUnavailable, match=r"cannot list sockets: netlink .*; procnet"):
        FastCollector()


def test_netlink_failing_at_run_time_moves_down_the_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        fast = FastCollector()
        assert fast.collect().source == "netlink"

        def broken(self: NetlinkReader, port: int | None = None) -> object:
            raise NetlinkUnavailable(13, "sock_diag: Permission denied")

        monkeypatch.setattr(NetlinkReader, "read", broken)
        snap = fast.collect()
        assert snap.source == "procnet"
        assert any("netlink failed" in w for w in snap.warnings)
        assert listening_pids(snap, child.port) == [child.pid]
        assert not any("netlink" in w for w in fast.collect().warnings)


def test_default_collector_is_the_fast_one_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTSCOPE_COLLECTOR", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    c = default_collector()
    assert isinstance(c, FastCollector)
    assert c.collect().source == "netlink"


def test_fast_path_imports_no_textual() -> None:
    code = (
        "import sys\n"
        "from app.collector import default_collector\n"
        "snap = default_collector().collect(port=1)\n"
        "assert snap.source == 'netlink', snap.source\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'textual'], 'textual imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_incremental_polls_match_a_fresh_full_poll(stack: ExitStack) -> None:
    """Patched order, hidden count and owners after opens/closes equal those of a cold collector."""
    from app.collector import hidden_owner_count, sort_key

    Sockets(stack)
    fast = FastCollector()
    fast.collect()
    extra: list[socket.socket] = []
    for round_ in range(4):
        for _ in range(3):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(2)
            extra.append(s)
        if round_ % 2:
            extra.pop(0).close()
        child = spawn_listener("udp", "127.0.0.1")
        try:
            snap = fast.collect()
            assert list(snap.sockets) == sorted(snap.sockets, key=sort_key)
            assert snap.hidden_owners == hidden_owner_count(snap.sockets)
            assert listening_pids(snap, child.port) == [child.pid]
            for s in extra:
                assert [x.pid for x in snap.on_port(s.getsockname()[1]) if x.listening] == [os.getpid()]
        finally:
            child.stop()
    for s in extra:
        s.close()


def test_a_connection_read_before_accept_gets_its_inode_and_owner_once_accepted() -> None:
    """A connection waiting in the accept queue has no file yet (inode 0, no owner); accepted, the
    same connection (same netlink key) gets its inode and its owner at the next poll, not never."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    port = lst.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    collector = FastCollector()
    conn = None
    try:

        def server_end(snap: Snapshot) -> Sock:
            (sock,) = [
                s
                for s in snap.sockets
                if s.laddr.port == port and s.raddr is not None and s.raddr.port == client.getsockname()[1]
            ]
            return sock

        waiting = server_end(collector.collect())
        assert not waiting.inode and waiting.pid is None  # in the accept queue: nobody holds it
        conn, _ = lst.accept()
        accepted = server_end(collector.collect())
        assert accepted.inode == os.fstat(conn.fileno()).st_ino
        assert accepted.pid == os.getpid()
        assert server_end(collector.collect()).pid == os.getpid()  # and it stays so
    finally:
        collector.close()
        for s in (conn, client, lst):
            if s is not None:
                s.close()
