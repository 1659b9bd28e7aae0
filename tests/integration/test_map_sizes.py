"""The maps keyed by socket keep the size a new dict of their length gets while sockets come and
go (app/churn.py): without it CPython grows each one's table to three times its entries the first
time deletes use up its free slots, and the dashboard's memory climbed for hundreds of polls.

Real loopback connections in this process, 1% to 10% of them replaced between polls, through the
real collector, row preparer and tables."""

from __future__ import annotations

import resource
import socket
import sys
from collections.abc import Iterator

import pytest

from app.churn import MIN_ENTRIES, Churned, compact
from app.fast.collector import FastCollector
from app.tui.livehealth import LiveHealth
from app.tui.state import Dashboard
from tests.tui.fixtures import FixedExposure

PAIRS = 700  # 1400 connection ends (and their rows): above MIN_ENTRIES


@pytest.fixture
def fds() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * PAIRS + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"needs {want} open files (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def oversized(table: dict[object, object]) -> bool:
    """Its table is bigger than the one a dict of its length is built with."""
    return sys.getsizeof(table) > sys.getsizeof(dict(table))


def test_every_map_by_socket_keeps_its_size_while_connections_come_and_go(fds: None) -> None:
    server = socket.create_server(("127.0.0.1", 0), backlog=PAIRS)
    port = server.getsockname()[1]
    pairs: list[tuple[socket.socket, socket.socket]] = []

    def connect(n: int) -> None:
        for _ in range(n):
            client = socket.create_connection(("127.0.0.1", port))
            pairs.append((client, server.accept()[0]))

    collector = FastCollector(stats=True)
    dash = Dashboard(FixedExposure(), health=LiveHealth())
    try:
        connect(PAIRS)
        for poll in range(30):  # some 2000 replaced: more than any of the maps had free
            gone = PAIRS // 100 if poll % 3 == 0 else PAIRS // 10
            for pair in pairs[:gone]:  # the oldest go
                for end in pair:
                    end.close()
            del pairs[:gone]
            connect(PAIRS - len(pairs))
            dash.apply_snapshot(collector.collect())
        preparer, tracker = dash.preparer, dash.preparer.tracker
        health = preparer.health
        assert isinstance(health, LiveHealth)
        maps = {
            "collector by inode": collector._by_inode,
            "owners": collector.owners.owner,
            "holders": collector.owners.holders,
            "preparer's connection keys": preparer._conn_keys,
            "tracker's keys": tracker._keyed,
            "live health": health.conns,
            "connection rows": dash.connections.rows,
        }
        small = {name: len(m) for name, m in maps.items() if len(m) < MIN_ENTRIES}
        assert not small, small  # (the test is about maps the size of the socket count)
        grown = {name: sys.getsizeof(m) for name, m in maps.items() if oversized(m)}
        assert not grown, grown
    finally:
        collector.close()
        for pair in pairs:
            for end in pair:
                end.close()
        server.close()


def test_compact_keeps_the_same_dict_and_its_order() -> None:
    table = {i: str(i) for i in range(5000)}
    view, same = table.keys(), table
    for i in range(5000, 12000):  # churn: the table grows for dead slots, its length stays
        del table[i - 5000]
        table[i] = str(i)
    assert oversized(table)
    order = list(table.items())
    compact(table)
    assert table is same and list(table.items()) == order and list(view) == [k for k, _v in order]
    assert not oversized(table)


class Owner:
    def __init__(self) -> None:
        self.by_key: dict[int, int] = {i: i for i in range(2000)}
        self.small: dict[int, int] = {}


def test_churned_compacts_only_what_grew_and_follows_replaced_maps() -> None:
    owner = Owner()
    churned = Churned(lambda: (owner.by_key, owner.small))
    churned.check()
    assert churned.compactions == 1  # a map seen for the first time: once
    churned.check()
    assert churned.compactions == 1  # unchanged: nothing
    for i in range(2000, 20000):
        del owner.by_key[i - 2000]
        owner.by_key[i] = i
        owner.small[i % 100] = i  # (a map below MIN_ENTRIES is left alone)
        if i % 100 == 0:
            churned.check()
            assert not oversized(owner.by_key)
    assert churned.compactions > 2
    owner.by_key = {i: i for i in range(3000)}  # replaced: looked at as a new map
    before = churned.compactions
    churned.check()
    assert churned.compactions == before + 1 and not oversized(owner.by_key)
