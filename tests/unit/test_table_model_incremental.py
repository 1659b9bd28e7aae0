"""A refresh puts its few rows in and out of the flat list of lines in place: the lines are not
rebuilt from every row (``TableModel.lines_rebuilt`` counts rebuilds), and they are what a
rebuild from scratch gives, reversed, grouped, collapsed or narrowed."""

from __future__ import annotations

import random

from widgets.table_model import Column, Group, RowSpec, TableModel

COLS = (Column("name", "Name", 6), Column("n", "N", 4))


def spec(key: str, n: int, group: str = "") -> RowSpec:
    return RowSpec(key, (key, n), group, None, ("odd",) if n % 2 else ())


def rebuilt(m: TableModel) -> list[str]:
    m._rebuild_lines()
    return list(m.lines)


def test_a_refresh_of_a_few_rows_does_not_rebuild_the_lines() -> None:
    rng = random.Random(3)
    m = TableModel(COLS, sort_column=1)
    m.apply(added=[spec(f"r{i:04}", rng.randrange(500)) for i in range(2000)], mark_new=False)
    m.move_cursor_to(1000)
    cursor = m.cursor_key
    for step in range(20):
        before, searches = m.lines_rebuilt, m.cursor_searches
        keys = sorted(set(m.rows) - {cursor})
        m.apply(
            added=[spec(f"n{step}-{i}", rng.randrange(500)) for i in range(10)],
            updated=[spec(k, rng.randrange(500)) for k in rng.sample(keys, 5)],  # (sort moves)
            gone=rng.sample(keys, 10),
        )
        assert m.lines_rebuilt == before
        assert m.cursor_key == cursor and m.lines[m.cursor_index] == cursor
        assert m.cursor_searches == searches  # its index followed the rows put in above it
        lines = list(m.lines)
        assert lines == rebuilt(m)


def test_grouped_reversed_collapsed_and_narrowed_lines_stay_right() -> None:
    rng = random.Random(5)
    m = TableModel(COLS, (Group("a", "A"), Group("b", "B"), Group("c", "C")), sort_column=1)
    m.apply(
        added=[spec(f"r{i:03}", rng.randrange(90), rng.choice("abc")) for i in range(300)], mark_new=False
    )
    m.set_sort(1, reverse=True)
    m.set_collapsed("b", True)
    m.move_cursor_to(40)
    for step in range(30):
        if step == 10:
            m.set_filter(lambda r: r.values[1] % 3 == 0)
        if step == 20:
            m.set_selection("odd")
        keys = sorted(m.rows)
        cursor = m.cursor_key
        m.apply(
            added=[spec(f"n{step}-{i}", rng.randrange(90), rng.choice("abc")) for i in range(4)],
            updated=[spec(k, rng.randrange(90), rng.choice("abc")) for k in rng.sample(keys, 4)],
            gone=rng.sample(keys, 4),
        )
        assert m.lines[m.cursor_index] == m.cursor_key
        if cursor in m.lines:
            assert m.cursor_key == cursor  # the cursor keeps its row
        lines = list(m.lines)
        assert lines == rebuilt(m)
    # a narrowed grouped table hides an empty group: its last row going takes its header along
    m.set_filter(lambda r: r.key.startswith("solo") or r.group != "c")
    m.apply(added=[spec("solo", 3, "c")], mark_new=False)
    assert "\x00c" in m.lines
    m.apply(dropped=["solo"])
    assert "\x00c" not in m.lines and m.lines == rebuilt(m)
