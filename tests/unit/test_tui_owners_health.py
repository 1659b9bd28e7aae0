"""The dashboard's owners and health as data (no Textual): rows from fixed snapshots with TCP stats,
the new filter terms, marks as flags, numeric sorts that start with the busiest row, the hidden
Netns column, and a poll that rebuilds only the connection rows whose shown health changed."""

from __future__ import annotations

from app.filtering import parse_filter
from app.health import STALL_POLLS
from app.tui.columns import (
    C_RX,
    C_TX,
    L_PROCESS,
    L_QUEUE,
    L_SERVICE,
    QUEUE_FULL,
    STALLED,
    STORM,
    QueueCell,
)
from app.tui.rows import Preparer
from app.tui.state import Dashboard, text_predicate
from tests.tui.fixtures import NOW, FixedExposure, FixedFacts, health_snapshot, health_snapshots
from widgets.table_model import HEADER_PREFIX, TableModel


def dashboard() -> Dashboard:
    return Dashboard(FixedExposure(), clock=lambda: NOW, facts=FixedFacts())


def by_port(model: TableModel) -> dict[int, object]:
    return {r.payload.sock.laddr.port: r for r in model.rows.values()}


def conn(d: Dashboard, local_port: int) -> object:
    return next(r for r in d.connections.rows.values() if r.payload.sock.laddr.port == local_port)


def listed(model: TableModel) -> list[int]:
    return [model.rows[k].payload.sock.laddr.port for k in model.lines if not k.startswith(HEADER_PREFIX)]


def test_listener_rows_carry_holders_service_forward_and_queue() -> None:
    d = dashboard()
    d.apply_snapshot(health_snapshot(0))
    rows = by_port(d.listening)
    nginx = rows[80]
    assert nginx.values[L_PROCESS] == "nginx +2"  # type: ignore[attr-defined]
    assert nginx.payload.holders == 3  # type: ignore[attr-defined]
    assert nginx.values[L_SERVICE] == "nginx.service"  # type: ignore[attr-defined]
    assert rows[8080].values[L_SERVICE] == "web"  # type: ignore[attr-defined]  # a container's name
    tunnel = rows[9099].values[L_PROCESS]  # type: ignore[attr-defined]
    assert tunnel == "ssh  ssh tunnel → 127.0.0.1:8088 via deploy@bastion"
    assert rows[5432].values[L_QUEUE] == QueueCell(120, 128)  # type: ignore[attr-defined]
    assert QUEUE_FULL in rows[5432].flags  # type: ignore[attr-defined]  # 94% of its backlog
    assert rows[8080].values[L_QUEUE] == QueueCell(3, 128) and not rows[8080].flags  # type: ignore[attr-defined]
    assert rows[5353].values[L_QUEUE] is None  # type: ignore[attr-defined]  # UDP has no accept queue
    # flags are not facets: the range bar's counts do not see them
    assert QUEUE_FULL not in d.listening.facet_totals


def test_filter_terms_unit_container_netns_tunnel() -> None:
    d = dashboard()
    d.apply_snapshot(health_snapshot(0))

    def ports(text: str, model: TableModel = d.listening) -> list[int]:
        model.set_filter(text_predicate(parse_filter(text)))
        return sorted(listed(model))

    assert ports("unit:nginx") == [80]
    assert ports("unit:postgresql.service") == [5432]
    assert ports("unit:docker-") == [5353, 8080]  # a container's scope is its unit
    assert ports("container:web") == [5353, 8080]
    assert ports("container:node:20") == [5353, 8080]  # by image
    assert ports("container:ab12ab12") == [5353, 8080]  # by id
    assert ports("tunnel") == [9099]
    assert ports("-tunnel -container:web") == [80, 5432]
    assert ports("unit:nginx", d.connections) == [80]
    assert ports("netns:current") == []  # only while every namespace is read
    d.show_netns(True)
    d.apply_snapshot(health_snapshot(1))
    assert by_port(d.listening)[80].payload.netns == "host"  # type: ignore[attr-defined]
    assert ports("netns:host") == [80, 5353, 5432, 8080, 9099]
    assert ports("netns:elsewhere") == []


def test_rates_between_polls_stalls_and_storms_are_flags_on_their_rows() -> None:
    d = dashboard()
    snaps = health_snapshots(STALL_POLLS + 1)
    d.apply_snapshot(snaps[0])
    assert conn(d, 42000).values[C_RX] == 0.0  # type: ignore[attr-defined]  # one poll: no rate yet
    d.apply_snapshot(snaps[1])
    assert conn(d, 42000).values[C_RX] == 1 << 20  # type: ignore[attr-defined]  # 2 MiB in 2 s
    assert conn(d, 5432).values[C_TX] == 1 << 20  # type: ignore[attr-defined]
    assert conn(d, 8080).values[C_TX] == 0.0  # type: ignore[attr-defined]  # idle
    assert STORM in conn(d, 80).flags  # type: ignore[attr-defined]  # 20 retransmits in one poll
    assert STALLED not in conn(d, 41000).flags  # type: ignore[attr-defined]
    for s in snaps[2:]:
        d.apply_snapshot(s)
    assert STALLED in conn(d, 41000).flags  # type: ignore[attr-defined]  # unacked, no progress
    assert "stalled" not in d.connections.facet_totals  # the state bar never counts marks


def test_a_poll_rebuilds_only_connections_whose_shown_health_changed() -> None:
    preparer = Preparer(FixedExposure(), FixedFacts())
    first = preparer.prepare(health_snapshot(0))
    assert len(first.conns.added) == 5
    second = preparer.prepare(health_snapshot(1))
    # the busy pair (5432 <-> 42000) and 80's retransmitting connection changed; the idle 8080
    # pair and the stalled 41000 (nothing moved, same RTT) did not
    assert sorted(s.payload.sock.laddr.port for s in second.conns.updated) == [80, 5432, 42000]
    assert not second.conns.added and not second.conns.gone and not second.conns.changed
    third = preparer.prepare(health_snapshot(2))
    # the busy pair moves as fast as before (same rates, same RTT): nothing to redraw; 80's
    # retransmit count rose again
    assert sorted(s.payload.sock.laddr.port for s in third.conns.updated) == [80]
    # 41000 turns stalled after STALL_POLLS polls without progress: its row is rebuilt then, once
    later = [preparer.prepare(health_snapshot(n)) for n in range(3, 6)]
    stalled = [
        [s.payload.sock.laddr.port for s in p.conns.updated if s.payload.sock.laddr.port == 41000]
        for p in later
    ]
    assert stalled == [[41000], [], []]
    assert later[-1].health.moving  # the busy connections' rates, for the detail pane's totals


def test_rate_sorts_start_with_the_busiest_and_are_numeric() -> None:
    d = dashboard()
    for s in health_snapshots(2):
        d.apply_snapshot(s)
    model = d.connections
    col = model.columns[C_TX]
    assert col.reverse_first
    model.set_sort(C_TX, col.reverse_first)
    order = listed(model)
    assert order[0] == 5432  # 1 MiB/s before 32 KiB/s (numbers, not text: "32.0K" > "1.0M")
    assert order[1] == 80


def test_the_netns_column_is_hidden_until_every_namespace_is_read() -> None:
    d = dashboard()
    assert "netns" in d.listening.hidden and "netns" in d.connections.hidden
    assert all(d.listening.columns[i].key != "netns" for i, _w in d.listening.layout(300))
    d.show_netns(True)
    assert any(d.listening.columns[i].key == "netns" for i, _w in d.listening.layout(300))
    d.show_netns(False)
    assert "netns" in d.listening.hidden


def test_the_connections_view_at_80_columns_keeps_state_endpoints_process_and_rates() -> None:
    d = dashboard()
    shown = [d.connections.columns[i].key for i, _w in d.connections.layout(78)]
    assert shown == ["state", "local", "remote", "process", "rx", "tx"]
    shown = [d.listening.columns[i].key for i, _w in d.listening.layout(118)]
    assert "service" in shown and "queue" in shown and "command" not in shown
    shown = [d.listening.columns[i].key for i, _w in d.listening.layout(100)]
    assert "service" not in shown and "exposure" in shown  # the service goes first


def test_health_cells_fit_their_columns() -> None:
    from app.tui.formatting import fmt_rate_cell, fmt_rtt

    assert [fmt_rate_cell(v) for v in (None, 0, 850, 12.3 * 1024, 512 * 1024, 1.2 * 1024**2)] == [
        "-",
        "0",
        "850B",
        "12.3K",
        "512K",
        "1.2M",
    ]
    assert [fmt_rtt(v) for v in (None, 0.005, 2.5, 35, 1500)] == ["-", "5µs", "2.5ms", "35ms", "1.5s"]
    rates = [0.3, 999, 1023.9, 99.95 * 1024, 1023.9 * 1024, 999.9 * 1024**2, 5000 * 1024**3]
    assert all(len(fmt_rate_cell(v)) <= 6 for v in rates)  # the Rx/s and Tx/s columns are 6 wide


def test_a_poll_hands_the_table_only_listeners_whose_cells_may_have_changed() -> None:
    from dataclasses import replace

    preparer = Preparer(FixedExposure(), FixedFacts())
    first = preparer.prepare(health_snapshot(0))
    assert len(first.listen.added) == 5
    again = preparer.prepare(health_snapshot(1))  # the same listeners, queues and owners
    assert not again.listen.added and not again.listen.updated
    snap = health_snapshot(2)
    stats = dict(snap.stats or {})
    stats[1003] = (7, 128, 1003)  # 8080's accept queue grew
    moved = preparer.prepare(replace(snap, stats=stats))
    assert [s.payload.sock.laddr.port for s in moved.listen.updated] == [8080]
    assert moved.listen.updated[0].payload.queue == QueueCell(7, 128)


def test_sockets_of_a_namespace_coming_into_view_are_rows_not_events() -> None:
    from dataclasses import replace

    from app.model import Endpoint, Family, NetnsInfo, Proto, Sock

    def in_ns(port: int) -> Sock:
        return Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", port), None, "LISTEN", 404, 9000 + port, 77)

    here = {0: NetnsInfo(1, "host", None, True)}
    both = {**here, 77: NetnsInfo(77, "container web", None, False)}
    base = health_snapshot(0)
    preparer = Preparer(FixedExposure(), FixedFacts())
    preparer.prepare(replace(base, namespaces=here))
    shown = preparer.prepare(replace(base, sockets=(*base.sockets, in_ns(80)), namespaces=both))
    assert [s.payload.sock.netns for s in shown.listen.added] == [77]  # the row comes
    assert not shown.events  # but nothing "opened": it only came into view
    later = preparer.prepare(replace(base, sockets=(*base.sockets, in_ns(80), in_ns(81)), namespaces=both))
    assert [(e.kind.value, e.sock.laddr.port) for e in later.events] == [("opened", 81)]  # a real one
    hidden = preparer.prepare(replace(base, namespaces=here))
    assert len(hidden.listen.gone) == 2 and not hidden.events
