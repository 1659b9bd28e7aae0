"""The table model's sort keys are flat ``(kind, value, row key)`` tuples and reuse a cell's text
when it is lower case already (one tuple and no string copy per row: at 100k rows that is about
12 MB); the order must be exactly the one of ``((kind, value), row key)`` with text compared
case-insensitively, None first, then numbers, then text, tuples element by element."""

from __future__ import annotations

import random
from typing import Any

from widgets.table_model import Column, RowSpec, TableModel


def reference_norm(value: Any) -> tuple[int, Any]:
    """The order the table promises, written independently of widgets.table_model."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, tuple):
        return (2, tuple(reference_norm(v) for v in value))
    return (3, str(value).lower())


VALUES: tuple[Any, ...] = (
    None,
    0,
    3,
    2.5,
    True,
    "abc",
    "ABC",
    "Abd",
    "127.0.0.1:80",
    "[::1]:80",
    "Zeta",
    ("127.0.0.1", 80),
    ("127.0.0.1", 443),
    ("::1", 80),
    ("::1", None),
)


def test_rows_sort_as_the_nested_case_insensitive_order() -> None:
    rng = random.Random(7)
    for column in range(2):
        m = TableModel((Column("a", "A", 5), Column("b", "B", 5)), sort_column=column)
        specs = []
        for i in range(60):
            a = rng.choice([v for v in VALUES if not isinstance(v, tuple)])
            b = rng.choice([v for v in VALUES if isinstance(v, tuple) or v is None])
            specs.append(RowSpec(f"k{i:02d}", (a, b)))
        m.apply(added=specs, mark_new=False)
        want = sorted(specs, key=lambda s: (reference_norm(s.values[column]), s.key))
        assert m.lines == [s.key for s in want]
        m.set_sort(column, reverse=True)
        assert m.lines == [s.key for s in reversed(want)]


def test_a_lower_case_cell_is_its_own_sort_text_and_mixed_case_is_folded() -> None:
    m = TableModel((Column("a", "A", 5),))
    text = "".join(["127.0.0.1:", "8080"])  # a string of its own, as a cell makes it
    m.apply(added=[RowSpec("x", (text,)), RowSpec("y", ("MiXed",))], mark_new=False)
    x, y = m.rows["x"].sort_key, m.rows["y"].sort_key
    assert x == (3, text, "x") and x[1] is text
    assert y == (3, "mixed", "y")
    assert m.lines == ["x", "y"]
