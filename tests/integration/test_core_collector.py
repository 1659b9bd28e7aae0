"""The psutil collector against real sockets on loopback, in this process and in child processes,
plus faults injected for one process at a time (never a faked main path)."""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import pytest

import app.processes
from app.collector import PsutilCollector, default_collector, sort_sockets
from app.exposure import ExposureKind, ExposureMap
from app.model import ESTABLISHED, Family, Proto, Snapshot, Sock
from app.ports import port_range
from app.processes import ProcessCache, read_process
from tests.helpers import Child, child_listener, listening_socket, needs_ipv6, spawn_listener, wait_for

ENDPOINTS = [
    pytest.param("tcp", "127.0.0.1", id="tcp4"),
    pytest.param("udp", "127.0.0.1", id="udp4"),
    pytest.param("tcp", "::1", id="tcp6", marks=needs_ipv6),
    pytest.param("udp", "::1", id="udp6", marks=needs_ipv6),
]


def mine(snap: Snapshot, port: int, proto: str, host: str | None = None) -> list[Sock]:
    """This test's sockets: the same port number may be in use on the other loopback address."""
    return [
        s
        for s in snap.sockets
        if s.laddr.port == port and s.proto.value == proto and (host is None or s.laddr.ip == host)
    ]


def check_listener(s: Sock, proto: str, host: str, port: int, pid: int) -> None:
    assert s.proto is Proto(proto)
    assert s.family is (Family.IPV6 if ":" in host else Family.IPV4)
    assert s.laddr.ip == host and s.laddr.port == port
    assert s.raddr is None
    assert s.status == ("LISTEN" if proto == "tcp" else "BOUND")
    assert s.listening
    assert s.pid == pid
    assert s.range is port_range(port)
    assert ExposureMap().classify(s.laddr.ip).kind is ExposureKind.LOOPBACK


@pytest.mark.parametrize(("proto", "host"), ENDPOINTS)
def test_listener_in_this_process(proto: str, host: str) -> None:
    with listening_socket(proto, host) as srv:
        port = srv.getsockname()[1]
        snap = PsutilCollector().collect(port=port)
        [s] = mine(snap, port, proto)
        check_listener(s, proto, host, port, os.getpid())
        owner = snap.owner(s)
        assert owner is not None and owner.pid == os.getpid()
        assert owner.create_time == psutil.Process().create_time()
        assert s in snap.listeners and s not in snap.connections
        # the unfiltered snapshot has the very same socket
        assert s in PsutilCollector().collect().sockets


@pytest.mark.parametrize(("proto", "host"), ENDPOINTS)
def test_listener_in_a_child_process(proto: str, host: str) -> None:
    with child_listener(proto, host, name="ps-core-child") as child:
        snap = PsutilCollector().collect(port=child.port)
        [s] = mine(snap, child.port, proto, host)
        check_listener(s, proto, host, child.port, child.pid)
        owner = snap.owner(s)
        assert owner is not None
        assert owner.name == "ps-core-child"
        assert owner.ppid == os.getpid()
        assert owner.cmdline[-4:] == (proto, host, "0", "ps-core-child")
        assert owner.identity == (child.pid, psutil.Process(child.pid).create_time())


def test_closed_listener_is_gone() -> None:
    collector = PsutilCollector()
    with listening_socket("tcp", "127.0.0.1") as srv:
        port = srv.getsockname()[1]
        assert mine(collector.collect(port=port), port, "tcp")
    wait_for(lambda: not mine(collector.collect(port=port), port, "tcp"))
    assert not mine(collector.collect(), port, "tcp")


def test_killed_child_listener_is_gone() -> None:
    collector = PsutilCollector()
    child = spawn_listener("udp", "127.0.0.1")
    try:
        assert [s.pid for s in mine(collector.collect(port=child.port), child.port, "udp")] == [child.pid]
    finally:
        child.stop()
    wait_for(lambda: not mine(collector.collect(port=child.port), child.port, "udp"))


@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
def test_established_connection_on_both_ends(host: str) -> None:
    with ExitStack() as stack:
        srv = stack.enter_context(listening_socket("tcp", host))
        port = srv.getsockname()[1]
        client = stack.enter_context(socket.create_connection((host, port), timeout=5))
        accepted, _ = srv.accept()
        stack.enter_context(accepted)
        cport = client.getsockname()[1]

        snap = PsutilCollector().collect()
        [listener] = [s for s in mine(snap, port, "tcp", host) if s.listening]
        [server_end] = [s for s in mine(snap, port, "tcp", host) if not s.listening]
        [client_end] = mine(snap, cport, "tcp", host)
        assert server_end.status == client_end.status == ESTABLISHED
        assert server_end.raddr is not None and server_end.raddr.port == cport
        assert client_end.raddr is not None and client_end.raddr.port == port
        assert server_end.pid == client_end.pid == os.getpid()
        assert snap.in_ephemeral(client_end)  # the kernel picked the client's port from that range
        assert snap.established_to(listener) == 1
        # the listener sorts before its connections; who PORT sees both ends' server side
        assert sort_sockets(snap.on_port(port))[0] is listener
        assert {s for s in snap.on_port(port) if s.laddr.ip == host} == {listener, server_end}

        second = stack.enter_context(socket.create_connection((host, port), timeout=5))
        stack.enter_context(srv.accept()[0])
        assert second.getsockname()[1] != cport
        assert PsutilCollector().collect().established_to(listener) == 2


def test_udp_connected_socket() -> None:
    with listening_socket("udp", "127.0.0.1") as srv:
        port = srv.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.connect(("127.0.0.1", port))
            pport = peer.getsockname()[1]
            snap = PsutilCollector().collect()
            [bound] = mine(snap, port, "udp")
            [connected] = mine(snap, pport, "udp")
            assert bound.status == "BOUND" and bound.listening and bound.raddr is None
            assert connected.status == "CONNECTED" and not connected.listening
            assert connected.raddr is not None and connected.raddr.port == port


def test_snapshot_basics() -> None:
    snap = PsutilCollector().collect()
    assert snap.taken_at > 0 and snap.source == "psutil"
    assert snap.privileged == (os.geteuid() == 0)
    assert snap.sockets == tuple(sort_sockets(snap.sockets))
    for s in snap.sockets:
        if s.pid is not None:
            assert snap.processes[s.pid].pid == s.pid
    assert len(snap.keyed()) == len(snap.sockets)
    assert snap.ephemeral[0] <= snap.ephemeral[1]


def test_portscope_collector_env_forces_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTSCOPE_COLLECTOR", "psutil")
    assert isinstance(default_collector(), PsutilCollector)
    monkeypatch.delenv("PORTSCOPE_COLLECTOR")
    assert callable(default_collector().collect)


# -- the per-process fallback (macOS, where net_connections needs root) ---------------------------


def _denied(*_args: object, **_kwargs: object) -> Any:
    raise psutil.AccessDenied()


def test_fallback_to_per_process_listing_finds_the_real_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    with child_listener("tcp", "127.0.0.1") as child, listening_socket("udp", "127.0.0.1") as own:
        monkeypatch.setattr(psutil, "net_connections", _denied)
        snap = PsutilCollector().collect()
        [s] = mine(snap, child.port, "tcp")
        check_listener(s, "tcp", "127.0.0.1", child.port, child.pid)
        owner = snap.owner(s)
        assert owner is not None and owner.name == child.name
        oport = own.getsockname()[1]
        assert [x.pid for x in mine(snap, oport, "udp")] == [os.getpid()]
        assert any("needs root" in w for w in snap.warnings)


def test_fallback_skips_a_process_that_denies_access(monkeypatch: pytest.MonkeyPatch) -> None:
    with child_listener("tcp", "127.0.0.1") as denied, child_listener("tcp", "127.0.0.1") as ok:
        real = psutil.Process.net_connections

        def per_process(self: psutil.Process, kind: str = "inet") -> Any:
            if self.pid == denied.pid:
                raise psutil.AccessDenied(self.pid)
            return real(self, kind)

        monkeypatch.setattr(psutil, "net_connections", _denied)
        monkeypatch.setattr(psutil.Process, "net_connections", per_process)
        snap = PsutilCollector().collect()
        assert not mine(snap, denied.port, "tcp")
        assert [s.pid for s in mine(snap, ok.port, "tcp")] == [ok.pid]
        [note] = [w for w in snap.warnings if "needs root" in w]
        assert "could not be read" in note


# -- owners that vanish or refuse mid-scan ----------------------------------------------------------


@pytest.fixture
def two_children() -> Iterator[tuple[Any, Any]]:
    with (
        child_listener("tcp", "127.0.0.1", name="ps-victim") as a,
        child_listener("udp", "127.0.0.1", name="ps-bystander") as b,
    ):
        yield a, b


def _faulty_process_class(pid: int, make: Callable[[int], Exception]) -> type[psutil.Process]:
    class Faulty(psutil.Process):
        def __init__(self, p: int | None = None) -> None:
            if p == pid:
                raise make(pid)
            super().__init__(p)

    return Faulty


def assert_victim_counted_rest_intact(snap: Snapshot, victim: Any, bystander: Any) -> None:
    [b] = mine(snap, bystander.port, "udp")
    owner = snap.owner(b)
    assert b.pid == bystander.pid and owner is not None and owner.name == "ps-bystander"
    [v] = mine(snap, victim.port, "tcp")
    assert v.pid is None and snap.owner(v) is None  # kept, not dropped, and not misattributed
    assert victim.pid not in snap.processes
    assert snap.hidden_owners >= 1
    assert any("1 owner exited or could not be read" in w for w in snap.warnings), snap.warnings


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda pid: psutil.NoSuchProcess(pid), id="NoSuchProcess"),
        pytest.param(lambda pid: psutil.AccessDenied(pid), id="AccessDenied"),
        pytest.param(lambda pid: psutil.ZombieProcess(pid), id="ZombieProcess"),
    ],
)
def test_owner_lookup_fault_for_one_pid(
    monkeypatch: pytest.MonkeyPatch, two_children: tuple[Any, Any], make: Callable[[int], Exception]
) -> None:
    """psutil's view of a process that cannot be read (the lookup elsewhere than Linux)."""
    victim, bystander = two_children
    monkeypatch.setattr(app.processes, "_LINUX", False)
    monkeypatch.setattr(psutil, "Process", _faulty_process_class(victim.pid, make))
    snap = PsutilCollector().collect()
    assert_victim_counted_rest_intact(snap, victim, bystander)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize(
    "errno_", [errno.ENOENT, errno.EACCES, errno.ESRCH], ids=["gone", "denied", "exited"]
)
def test_owner_lookup_fault_in_proc_for_one_pid(
    monkeypatch: pytest.MonkeyPatch, two_children: tuple[Any, Any], errno_: int
) -> None:
    """The Linux lookup reads /proc/PID/stat: that read failing for one pid (it exited, or is not
    ours to read) drops just that owner."""
    from app.fast import procfs

    victim, bystander = two_children
    real_open = os.open

    def faulty_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path) == f"/proc/{victim.pid}/stat":
            raise OSError(errno_, os.strerror(errno_))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(procfs.os, "open", faulty_open)
    snap = PsutilCollector().collect()
    monkeypatch.undo()
    assert_victim_counted_rest_intact(snap, victim, bystander)


def test_read_process_gone_for_one_pid(
    monkeypatch: pytest.MonkeyPatch, two_children: tuple[Any, Any]
) -> None:
    victim, bystander = two_children
    real = app.processes.read_process
    monkeypatch.setattr(app.processes, "read_process", lambda pid: None if pid == victim.pid else real(pid))
    assert_victim_counted_rest_intact(PsutilCollector().collect(), victim, bystander)


def test_owner_really_exits_between_listing_and_lookup(
    monkeypatch: pytest.MonkeyPatch, two_children: tuple[Any, Any]
) -> None:
    victim, bystander = two_children
    real = psutil.net_connections

    def list_then_kill(kind: str = "inet") -> Any:
        conns = real(kind)
        victim.stop()  # SIGKILL and reap: the pid in the listing now names no process
        return conns

    monkeypatch.setattr(psutil, "net_connections", list_then_kill)
    snap = PsutilCollector().collect()
    assert_victim_counted_rest_intact(snap, victim, bystander)


def test_read_process_of_a_missing_pid_is_none() -> None:
    child = spawn_listener()
    pid = child.pid
    child.stop()
    assert read_process(pid) is None


# -- process records: one per (pid, create_time) -------------------------------------------------


NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")


def _respawn_on_pid(pid: int, name: str) -> Child | None:
    """Start a listener that gets ``pid`` again (a real pid reuse), via ns_last_pid. Other
    processes fork concurrently, so try a few times; ``None`` if it never lands."""
    for _ in range(30):
        try:
            NS_LAST_PID.write_text(str(pid - 1))
        except OSError:
            return None
        child = spawn_listener("tcp", "127.0.0.1", name=name)
        if child.pid == pid:
            return child
        child.stop()
    return None


@pytest.mark.skipif(
    not (os.geteuid() == 0 and NS_LAST_PID.exists()), reason="needs root and /proc/sys/kernel/ns_last_pid"
)
@pytest.mark.parametrize("use_pidfd", [True, False], ids=["pidfd", "start-time"])
def test_a_recycled_pid_is_never_the_old_process(use_pidfd: bool) -> None:
    collector = PsutilCollector()
    collector.processes = ProcessCache(use_pidfd=use_pidfd)
    old = spawn_listener("tcp", "127.0.0.1", name="ps-old-owner")
    try:
        snap = collector.collect(port=old.port)
        [s] = mine(snap, old.port, "tcp")
        old_info = snap.owner(s)
        assert old_info is not None and old_info.name == "ps-old-owner"
    finally:
        old.stop()
    new = _respawn_on_pid(old.pid, "ps-new-owner")
    if new is None:
        pytest.skip("could not get the same pid again (busy machine or ns_last_pid not writable)")
    try:
        snap = collector.collect(port=new.port)
        [s] = mine(snap, new.port, "tcp")
        info = snap.owner(s)
        assert s.pid == old.pid
        assert info is not None and info.name == "ps-new-owner"
        assert info.create_time != old_info.create_time
        assert info.identity == (old.pid, psutil.Process(old.pid).create_time())
    finally:
        new.stop()


def test_cache_forgets_processes_that_are_gone() -> None:
    child = spawn_listener()
    cache = ProcessCache()
    try:
        assert child.pid in cache.lookup([child.pid, os.getpid()])
    finally:
        child.stop()
    assert cache.lookup([child.pid, os.getpid()]).keys() == {os.getpid()}
    assert cache.failures == 1
    cache.forget_except([os.getpid()])
    assert len(cache) == 1
