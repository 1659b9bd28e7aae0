"""The table writer's column-by-column fast path gives the lines the row-by-row one gave."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.cli.table import _plain_line, cell_width, render

cells = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
    st.sampled_from(["", " ", "a ", "日本", "e\u0301", "…", "x\u3000", "🙂", "\u3000", "-"]),
    st.text(max_size=6),
)


def reference(rows: list[list[str]], headers: list[str], width: int | None) -> list[str]:
    """The writer as it was: every cell measured, each row joined by itself."""
    widths = [cell_width(h) for h in headers]
    measured = []
    for row in rows:
        cws = [cell_width(c) for c in row]
        measured.append(cws)
        for i, w in enumerate(cws[:-1]):
            widths[i] = max(widths[i], w)
    lines = [_plain_line(headers, [cell_width(h) for h in headers], widths, width)]
    lines += [_plain_line(row, cws, widths, width) for row, cws in zip(rows, measured, strict=True)]
    return lines


@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.lists(
                st.text(st.characters(min_codepoint=65, max_codepoint=90), max_size=6), min_size=n, max_size=n
            ),
            st.lists(st.lists(cells, min_size=n, max_size=n), max_size=8),
        )
    ),
    st.one_of(st.none(), st.integers(1, 40)),
)
def test_fast_render_equals_the_row_by_row_one(
    table: tuple[list[str], list[list[str]]], width: int | None
) -> None:
    headers, rows = table
    assert render(rows, headers, width) == reference(rows, headers, width)
