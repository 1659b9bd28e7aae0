"""The table model against a naive one, on random sequences of refreshes (added, updated, changed,
gone, renamed, dropped rows), filters, selections and sorts: after every step its lines, facet
counts and cursor are what recomputing everything from scratch gives."""

from __future__ import annotations

import random
from collections import Counter
from operator import itemgetter

from hypothesis import given, settings
from hypothesis import strategies as st

from widgets.table_model import HEADER_PREFIX, Column, Group, Mark, RowSpec, TableModel, _norm

COLS = (Column("name", "Name", 6), Column("n", "N", 4), Column("s", "S", 4))
# the same columns reading their values from the payload (a model with derived=True keeps none)
DERIVED = tuple(Column(c.key, c.label, c.width, get=itemgetter(i)) for i, c in enumerate(COLS))
FACETS = ("x", "y", "z")


def expected_lines(m: TableModel) -> list[str]:
    flt = m._filter
    listed = [
        r
        for r in m.rows.values()
        if (flt is None or flt(r)) and (m.selection is None or m.selection in r.facets)
    ]
    lines: list[str] = []
    for g in m.groups:
        mine = [r for r in listed if r.group == g.id]
        if m.grouped:
            if m.narrowed and not mine:
                continue
            lines.append(HEADER_PREFIX + g.id)
            if g.id in m.collapsed:
                continue
        mine.sort(key=lambda r: (_norm(m.value(r, m.sort_column)), r.key))
        if m.sort_reverse:
            mine.reverse()
        lines.extend(r.key for r in mine)
    return lines


def check(m: TableModel) -> None:
    if m.rows or m.lines:  # (a model never refreshed has no lines, not even group headers)
        assert m.lines == expected_lines(m)
    flt = m._filter
    assert m.facet_totals - Counter() == Counter(f for r in m.rows.values() for f in r.facets)
    passing = [r for r in m.rows.values() if flt is None or flt(r)]
    assert m.passing == len(passing)
    assert m.facet_passing - Counter() == Counter(f for r in passing for f in r.facets)
    for r in m.rows.values():  # (what later steps read instead of the lists)
        assert r.passes == (flt is None or flt(r)), r.key
        assert r.listed == (r.passes and (m.selection is None or m.selection in r.facets)), r.key
    for gid, lst in m._all.items():
        assert [r.sort_key for r in lst] == sorted(r.sort_key for r in m.rows.values() if r.group == gid)
        assert all(m.rows[r.key] is r for r in lst)
    if m.lines:
        assert 0 <= m.cursor_index < len(m.lines)
        assert m.lines[m.cursor_index] == m.cursor_key


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), grouped=st.booleans(), derived=st.booleans(), few=st.booleans())
def test_random_refreshes_filters_selections_and_sorts(
    seed: int, grouped: bool, derived: bool, few: bool
) -> None:
    rng = random.Random(seed)
    groups = (Group("a", "a"), Group("b", "b")) if grouped else ()
    m = TableModel(
        DERIVED if derived else COLS, groups, sort_column=1, new_ttl=2, changed_ttl=2, derived=derived
    )
    m.few_share = 2.0 if few else 0.0  # (each narrowing pass through the one path or the other)
    limit: int | None = None  # the limit filter in force, if that is the filter
    handed: dict[str, tuple[object, ...]] = {}  # key -> the values of the last spec handed for it

    def a_spec(key: str) -> RowSpec:
        facets = tuple(f for f in FACETS if rng.random() < 0.4)
        values = (key, rng.choice((None, rng.randint(0, 20))), rng.choice(("p", "q", "r", None)))
        group = rng.choice("ab") if grouped else ""
        # (a derived model reads its values from the payload: its specs carry none)
        return RowSpec(key, () if derived else values, group, values if derived else None, facets)

    for _ in range(rng.randint(1, 40)):
        op = rng.random()
        keys = sorted(m.rows)
        if op < 0.55:
            added = [a_spec(f"k{rng.randint(0, 40)}") for _ in range(rng.randint(0, 4))]
            added = list({s.key: s for s in added if s.key not in m.rows}.values())
            updated = [a_spec(k) for k in rng.sample(keys, min(len(keys), rng.randint(0, 3)))]
            changed = rng.sample(keys, min(len(keys), rng.randint(0, 2)))
            gone = rng.sample(keys, min(len(keys), rng.randint(0, 2)))
            rest = [k for k in keys if k not in gone and m.rows[k].mark is not Mark.GONE]
            renamed: dict[str, str] = {}
            for old in rng.sample(rest, min(len(rest), rng.randint(0, 2))):
                new = f"r{rng.randint(0, 40)}"
                if new not in m.rows and new not in renamed.values() and all(s.key != new for s in added):
                    renamed[old] = new
            dropped = [k for k in rng.sample(rest, min(len(rest), rng.randint(0, 1))) if k not in renamed]
            updated = [s for s in updated if s.key not in renamed and s.key not in dropped]
            m.apply(
                added=added,
                updated=updated,
                changed=[k for k in changed if k not in renamed and k not in dropped],
                gone=[k for k in gone if k not in renamed and k not in dropped],
                renamed=renamed,
                dropped=dropped,
                mark_new=rng.random() < 0.8,
            )
            for old, new in renamed.items():
                assert new in m.rows
                handed[new] = handed[old]
            handed.update((s.key, s.payload if derived else s.values) for s in (*added, *updated))
            for k in dropped:
                assert k not in m.rows
        elif op < 0.7:
            choice = rng.random()
            if choice < 0.2:
                m.set_filter(None)
                limit = None
            elif choice < 0.4:
                m.set_filter(lambda r: r.mark is Mark.NEW)
                limit = None
            else:
                new_limit = rng.randint(0, 20)
                # a lower limit lets through only rows the higher one did: the narrowing pass
                narrowing = limit is not None and new_limit <= limit
                limit = new_limit
                m.set_filter(lambda r, v=new_limit: (r.values[1] or 0) <= v, narrowing=narrowing)
        elif op < 0.8:
            m.set_selection(rng.choice((None, *FACETS)))
        elif op < 0.9:
            m.set_sort(rng.randint(0, 2), rng.random() < 0.5)
        elif m.lines:
            m.move_cursor_to(rng.randrange(len(m.lines)))
        if grouped and rng.random() < 0.1:
            m.toggle_group(rng.choice("ab"))
        check(m)
        for key, row in m.rows.items():  # what each row shows is what it was last handed
            assert row.values == handed[key]
            assert [m.value(row, i) for i in range(len(COLS))] == list(handed[key])
