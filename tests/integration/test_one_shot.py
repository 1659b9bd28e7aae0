"""The one-shot collector (``list``: FastCollector.for_one_shot, OwnerMap.read_once) finds the same
owners and holders as the dashboard's incremental one, on real shared sockets: a pre-fork
listener (master and workers hold it), a connection to it and a dup()ed fd of it here."""

from __future__ import annotations

import json
import os
import socket
import sys

import pytest

from app.fast.collector import FastCollector
from app.fast.owners import OwnerMap
from app.model import Snapshot
from tests.helpers import child_listener, prefork_listener, run_cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc and netlink")


def ours(snap: Snapshot, port: int) -> dict[int, tuple[int | None, tuple[int, ...]]]:
    """inode -> (owner, every holder) of the sockets on ``port`` (either end)."""
    return {
        s.inode: (s.pid, snap.holders_of(s))
        for s in snap.sockets
        if s.inode and port in (s.laddr.port, s.raddr.port if s.raddr else None)
    }


def test_one_shot_owners_and_holders_equal_the_dashboard_paths() -> None:
    with prefork_listener(3) as (master, port, workers):
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        copy = os.dup(conn.fileno())  # the same socket twice in one table: one holder
        try:
            one = FastCollector(path="netlink")
            one.for_one_shot()
            dash = FastCollector(path="netlink")
            fast, slow = one.collect(), dash.collect()
            got, want = ours(fast, port), ours(slow, port)
            assert got == want
            [listener] = [s for s in fast.on_port(port) if s.listening]
            assert listener.pid == master.pid
            assert fast.holders_of(listener) == (master.pid, *workers)
            assert fast.holders[listener.inode] == slow.holders[listener.inode]
            [mine] = [s for s in fast.sockets if s.raddr and s.raddr.port == port and s.laddr.port != port]
            assert mine.pid == os.getpid() and fast.holders_of(mine) == (os.getpid(),)
            assert all(p in fast.processes for p in (master.pid, *workers))
            # the one-shot map kept none of what a next poll would patch from
            assert not one.owners._fdmaps and not one.owners._tables and one._sorted is None
            assert len(one.owners.holders) == len(one.owners.shared)  # a set only per shared socket
        finally:
            os.close(copy)
            conn.close()


def test_read_once_equals_a_cold_resolve_for_every_host_socket() -> None:
    with prefork_listener(2) as (_master, port, _workers):
        collector = FastCollector(path="netlink")
        wanted = {s.inode: s.laddr.port for s in collector.collect().sockets if s.inode}
        cold = OwnerMap(track_holders=True)
        once = OwnerMap(track_holders=True)
        a = cold.resolve(dict(wanted))
        b = once.read_once(dict(wanted))
        # (processes elsewhere on the host may open and close sockets between the two reads)
        stable = [i for i in wanted if i in a and i in b]
        assert {i: a[i] for i in stable} == {i: b[i] for i in stable}
        assert {i: once.holders_of(i) for i in stable} == {i: cold.holders_of(i) for i in stable}
        mine = [i for i in stable if wanted[i] == port]
        assert len(mine) == 1 and len(once.holders_of(mine[0])) == 3


def test_a_one_shot_collector_reads_afresh_on_each_collect() -> None:
    one = FastCollector(path="netlink")
    one.for_one_shot()
    one.collect()
    with child_listener() as child:
        snap = one.collect()
        [s] = [s for s in snap.on_port(child.port) if s.listening]
        assert s.pid == child.pid


def test_list_json_names_every_holder_of_a_prefork_listener() -> None:
    with prefork_listener(2) as (master, port, workers):
        res = run_cli("list", "--json", "--port", str(port))
        assert res.returncode == 0, res.stderr
        [s] = json.loads(res.stdout)["sockets"]
        assert s["pid"] == master.pid
        assert [o["pid"] for o in s["owners"]] == [master.pid, *workers]
        table = run_cli("list", "--port", str(port))
        assert table.returncode == 0, table.stderr
        assert f" +{len(workers)}" in table.stdout
