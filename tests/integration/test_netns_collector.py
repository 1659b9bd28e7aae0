"""``FastCollector(netns="all")``: sockets of other network namespaces, labelled, with their owners;
a namespace that goes away takes its sockets with it."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from app.collector import PsutilCollector
from app.fast.collector import FastCollector
from app.model import Snapshot
from tests.helpers import netns_listener, wait_for

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or os.geteuid() != 0
    or shutil.which("unshare") is None
    or shutil.which("ip") is None,
    reason="needs Linux, root, unshare and ip (a listener in a private network namespace)",
)


def inside(snap: Snapshot, pid: int) -> list:  # type: ignore[type-arg]
    return [s for s in snap.sockets if s.pid == pid and s.listening]


def test_a_listener_in_another_namespace_is_listed_and_labelled() -> None:
    with netns_listener("unshare", "--net") as (proc, port):
        assert inside(FastCollector().collect(), proc.pid) == []  # the default: this namespace only
        collector = FastCollector(netns="all", fallback=PsutilCollector)
        snap = collector.collect()
        [sock] = inside(snap, proc.pid)
        assert sock.laddr.port == port and sock.netns != 0
        info = snap.namespaces[sock.netns]
        assert info.inode == sock.netns and not info.current and info.label
        assert snap.namespaces[0].current and snap.namespaces[0].inode != sock.netns
        assert sock.endpoint_key.startswith(f"@{sock.netns}/tcp:127.0.0.1:")
        assert snap.owner(sock) is not None and snap.owner(sock).pid == proc.pid  # type: ignore[union-attr]
        # ours on the same address do not collide with it
        assert len(set(snap.keys)) == len(snap.sockets)
        # a steady poll keeps it, and the namespace's end takes its sockets away
        assert inside(collector.collect(), proc.pid) == [sock]
        proc.kill()
        proc.wait(timeout=10)
        wait_for(lambda: not [s for s in collector.collect().sockets if s.netns == sock.netns], timeout=15)
        collector.close()


def test_switching_to_every_namespace_and_back_at_run_time() -> None:
    with netns_listener("unshare", "--net") as (proc, _port):
        collector = FastCollector()
        assert inside(collector.collect(), proc.pid) == []
        collector.set_netns("all")
        assert [s.pid for s in inside(collector.collect(), proc.pid)] == [proc.pid]
        collector.set_netns("current")
        snap = collector.collect()
        assert inside(snap, proc.pid) == [] and not [s for s in snap.sockets if s.netns]
        collector.close()
