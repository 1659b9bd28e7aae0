"""Headless tests of the table model and the dashboard's data side (no Textual app running)."""

from __future__ import annotations

import dataclasses
import random

from app.filtering import parse_filter
from app.model import Endpoint
from app.tui.columns import L_CONNS, L_PROCESS
from app.tui.formatting import sparkline
from app.tui.rows import IfaceTracker, established_counter
from app.tui.state import Dashboard, text_predicate
from tests.tui.fixtures import (
    BASE_SOCKETS,
    NOW,
    FixedExposure,
    fixed_interfaces,
    second_snapshot,
    snapshot,
    tcp,
)
from widgets.table_model import HEADER_PREFIX, Column, Group, Mark, RowSpec, TableModel, layout_columns

COLS = (Column("name", "Name", 6), Column("n", "N", 4, priority=1, align="right"))


def spec(key: str, n: int, group: str = "") -> RowSpec:
    return RowSpec(key, (key, n), group)


def keys(model: TableModel) -> list[str]:
    return [k for k in model.lines if not k.startswith(HEADER_PREFIX)]


def test_rows_are_sorted_and_resorted_when_a_value_moves() -> None:
    m = TableModel(COLS, sort_column=1)
    m.apply(added=[spec("a", 3), spec("b", 1), spec("c", 2)], mark_new=False)
    assert keys(m) == ["b", "c", "a"]
    m.apply(updated=[spec("b", 9)])
    assert keys(m) == ["c", "a", "b"]
    m.set_sort(1, reverse=True)
    assert keys(m) == ["b", "a", "c"]
    m.set_sort(0)
    assert keys(m) == ["a", "b", "c"]


def test_marks_new_for_a_few_refreshes_gone_for_one_then_removed() -> None:
    m = TableModel(COLS, new_ttl=2)
    m.apply(added=[spec("a", 1)], mark_new=False)
    assert m.rows["a"].mark is Mark.NONE
    m.apply(added=[spec("b", 2)])
    assert m.rows["b"].mark is Mark.NEW
    m.apply()
    assert m.rows["b"].mark is Mark.NEW
    m.apply()
    assert m.rows["b"].mark is Mark.NONE
    m.apply(gone=["a"])
    assert m.rows["a"].mark is Mark.GONE and "a" in m.lines  # still shown, marked
    m.apply()
    assert "a" not in m.rows and "a" not in m.lines
    m.apply(updated=[spec("b", 5)], changed=["b"])
    assert m.rows["b"].mark is Mark.CHANGED


def test_cursor_stays_on_its_key_as_rows_appear_and_vanish_above() -> None:
    m = TableModel(COLS, sort_column=1)
    m.apply(added=[spec(f"r{i}", i * 10) for i in range(10)], mark_new=False)
    m.select_key("r5")
    before = m.cursor_index
    m.apply(added=[spec("x1", 1), spec("x2", 2), spec("x3", 3)])
    assert m.cursor_row() is not None and m.cursor_row().key == "r5"  # type: ignore[union-attr]
    assert m.cursor_index == before + 3
    m.apply(gone=["r0", "r1", "x1"])
    m.apply()  # the gone rows are removed now
    assert m.cursor_row().key == "r5"  # type: ignore[union-attr]
    assert m.cursor_index == before + 3 - 3


def test_cursor_row_vanishing_moves_to_the_row_in_its_place() -> None:
    m = TableModel(COLS, sort_column=1)
    m.apply(added=[spec("a", 1), spec("b", 2), spec("c", 3)], mark_new=False)
    m.select_key("b")
    m.apply(gone=["b"])
    assert m.cursor_key == "b"  # marked gone, still there
    m.apply()
    assert m.cursor_key == "c"


def test_groups_are_headed_and_collapsible() -> None:
    m = TableModel(COLS, (Group("g1", "first"), Group("g2", "second")))
    m.apply(added=[spec("a", 1, "g1"), spec("b", 2, "g2"), spec("c", 3, "g2")], mark_new=False)
    assert m.lines == [HEADER_PREFIX + "g1", "a", HEADER_PREFIX + "g2", "b", "c"]
    assert m.cursor_key == "a"  # the cursor starts on a row, not a header
    m.select_key("b")
    m.set_collapsed("g2", True)
    assert m.lines == [HEADER_PREFIX + "g1", "a", HEADER_PREFIX + "g2"]
    assert m.cursor_key == HEADER_PREFIX + "g2"
    assert m.group_count("g2") == 2
    m.toggle_group("g2")
    assert "c" in m.lines


def test_filter_applies_to_new_rows_and_to_expiring_marks() -> None:
    m = TableModel(COLS, new_ttl=1)
    m.apply(added=[spec("a", 1)], mark_new=False)
    m.set_filter(lambda r: r.mark is Mark.NEW)  # like the "new" filter term
    assert keys(m) == []
    m.apply(added=[spec("b", 2)])
    assert keys(m) == ["b"]
    m.apply()  # b's mark expires: it leaves the filtered view
    assert keys(m) == []


def test_apply_only_looks_at_changed_rows() -> None:
    """Scale: one refresh evaluates the filter for the rows it was handed, not for every row."""
    calls = 0

    def pred(_row: object) -> bool:
        nonlocal calls
        calls += 1
        return True

    m = TableModel(COLS, sort_column=1)
    m.set_filter(pred)
    m.apply(added=[spec(f"r{i}", i) for i in range(20_000)], mark_new=False)
    calls = 0
    m.apply(added=[spec("new1", -1)], updated=[spec("r7", 7), spec("r8", 80_000)], gone=["r9"])
    assert calls <= 6  # new1, r8 (moved) and r9 (marked gone): never the 20k rows
    assert keys(m)[0] == "new1" and keys(m)[-1] == "r8"


def test_random_operations_keep_lines_consistent() -> None:
    rng = random.Random(7)
    m = TableModel(COLS, (Group("a", "a"), Group("b", "b")), sort_column=1)
    live: dict[str, int] = {}
    for _ in range(300):
        added, updated, gone = [], [], []
        for _ in range(rng.randint(0, 5)):
            k = f"k{rng.randint(0, 60)}"
            if k not in live:
                live[k] = rng.randint(0, 100)
                added.append(spec(k, live[k], rng.choice("ab")))
        for k in rng.sample(sorted(live), min(len(live), rng.randint(0, 3))):
            if rng.random() < 0.5:
                live[k] = rng.randint(0, 100)
                updated.append(spec(k, live[k], m.rows[k].group if k in m.rows else "a"))
            else:
                gone.append(k)
                del live[k]
        m.apply(added=added, updated=[u for u in updated if u.key not in gone], gone=gone)
        shown = keys(m)
        assert len(shown) == len(set(shown))
        assert set(live) <= set(shown)
        for group in ("a", "b"):
            vals = [m.rows[k].values[1] for k in shown if m.rows[k].group == group]
            assert vals == sorted(vals)


def test_layout_drops_columns_by_priority_and_shares_spare_width() -> None:
    cols = (
        Column("a", "A", 5, priority=0),
        Column("b", "B", 10, priority=2, flex=1),
        Column("c", "C", 5, priority=1),
    )
    assert layout_columns(cols, 100) == [(0, 5), (1, 88), (2, 5)]
    assert layout_columns(cols, 12) == [(0, 5), (2, 5)]
    assert layout_columns(cols, 3) == [(0, 3)]
    assert layout_columns(cols, 0) == []


def test_established_counter_matches_snapshot_established_to() -> None:
    snap = snapshot(
        [
            *BASE_SOCKETS,
            tcp("127.0.0.1", 80, "ESTABLISHED", 101, Endpoint("127.0.0.1", 50000)),
            tcp("::1", 80, "ESTABLISHED", 101, Endpoint("::1", 50001)),
        ]
    )
    count = established_counter(snap)
    for s in snap.listeners:
        assert count(s) == snap.established_to(s), s


def test_dashboard_rows_groups_and_marks_from_snapshots() -> None:
    d = Dashboard(FixedExposure(), clock=lambda: NOW)
    d.apply_snapshot(snapshot())
    lst = d.listening
    by_port = {r.values[2]: r for r in lst.rows.values()}
    assert by_port[80].group == "well-known"
    assert by_port[55000].group == "dynamic"
    assert by_port[8080].values[L_PROCESS] == "node"
    assert by_port[8080].values[L_CONNS] == 1  # one ESTABLISHED to it
    assert by_port[55000].values[L_PROCESS] == "[red]x\\x1b[2J"  # escaped, literal
    assert all(r.mark is Mark.NONE for r in lst.rows.values())
    totals = lst.facet_totals
    assert {r: totals[r] for r in ("well-known", "registered", "dynamic")} == {
        "well-known": 2,
        "registered": 4,
        "dynamic": 1,
    }
    assert totals["exposed"] == 2 and totals["ephemeral"] == 2  # 40000 and 55000
    d.apply_snapshot(second_snapshot())
    by_port = {r.values[2]: r for r in lst.rows.values()}
    assert by_port[8443].mark is Mark.NEW
    assert by_port[40000].mark is Mark.GONE
    changed = [r for r in d.connections.rows.values() if r.mark is Mark.CHANGED]
    assert [r.values[1] for r in changed] == ["LAST_ACK"]
    # the vanished row's socket comes with the snapshot it was seen in
    gone_key = by_port[40000].key
    found = d.socket_for(lst, gone_key)
    assert found is not None and found[1] is d.previous and found[0].laddr.port == 40000
    d.apply_snapshot(second_snapshot())
    assert 40000 not in {r.values[2] for r in lst.rows.values()}


def test_socket_predicate_terms() -> None:
    d = Dashboard(FixedExposure(), clock=lambda: NOW)
    d.apply_snapshot(snapshot())

    def ports(text: str, model: TableModel = d.listening, selection: str | None = None) -> set[int]:
        model.set_filter(text_predicate(parse_filter(text) if text else None))
        model.set_selection(selection)
        return {model.rows[k].payload.sock.laddr.port for k in keys(model)}

    assert ports(":8080") == {8080}
    assert ports("port:5432") == {5432}
    assert ports("pid:303") == {55000}
    assert ports("user:postgres") == {5432}
    assert ports("proc:nginx") == {80}
    assert ports("range:dynamic") == {55000}
    assert ports("exposed") == {80}
    assert ports("udp") == {5353}
    assert ports("-tcp") == {5353}
    assert ports("", selection="well-known") == {80}
    assert ports("", selection="ephemeral") == {40000, 55000}
    assert ports("state:close_wait", d.connections) == {42000}
    assert ports("", d.connections, selection="TIME_WAIT") == {43000}


def test_interfaces_rates_and_sparklines() -> None:
    tracker = IfaceTracker()
    first = tracker.update(fixed_interfaces(), 10.0)
    assert first[0].values[7] is None  # no rate before a second sample
    later = [dataclasses.replace(i, bytes_recv=i.bytes_recv + 2048) for i in fixed_interfaces()]
    second = tracker.update(later, 12.0)
    assert second[0].values[7] == 1024.0
    assert sparkline([0, 1, 2, 4]) == "▁▃▅█"
    assert sparkline([0, 0]) == "▁▁"
