"""Coloured tables line up as plain ones: render() measures the visible text only (wide and
combining characters too), cuts at the same place, and wraps whole cells only."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from app.cli.color import RESET, STYLES, paint, wants_color
from app.cli.table import render

OURS = re.compile(r"\x1b\[[0-9;]*m")
ROLES = st.sampled_from([None, *STYLES])
CELLS = st.text(alphabet=st.sampled_from("ab 漢字é\u0301-…"), max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda n: st.tuples(
            st.lists(st.lists(CELLS, min_size=n, max_size=n), max_size=4),
            st.lists(st.lists(ROLES, min_size=n, max_size=n), min_size=4, max_size=4),
            st.just(n),
        )
    ),
    st.none() | st.integers(2, 30),
)
def test_coloured_render_is_the_plain_render_plus_whole_cell_sequences(case, width) -> None:  # type: ignore[no-untyped-def]
    rows, styles, n = case
    headers = [f"H{i}" for i in range(n)]
    plain = render(rows, headers, width)
    coloured = render(rows, headers, width, styles[: len(rows)], color=True)
    assert [OURS.sub("", line) for line in coloured] == plain
    for line in coloured:
        opened = len(OURS.findall(line)) - line.count(RESET)
        assert opened == line.count(RESET)  # every colour is closed on its own line


def test_a_styled_cell_is_wrapped_whole_and_the_padding_stays_outside() -> None:
    lines = render([["漢字", "x"], ["a", "y"]], ["NAME", "V"], None, [["trouble", None], [None, None]], True)
    assert lines[1] == f"\x1b[31m漢字{RESET}  x"  # 漢字 is 4 columns wide: as wide as NAME
    assert lines[2] == "a     y"
    assert (
        paint("", "trouble", True) == "" and paint("x", None, True) == "x" and paint("x", "dim", False) == "x"
    )


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_wants_color(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert wants_color("auto", _Stream(True)) and not wants_color("auto", _Stream(False))
    assert wants_color("always", _Stream(False)) and not wants_color("never", _Stream(True))
    monkeypatch.setenv("NO_COLOR", "0")  # any non-empty value
    assert not wants_color("auto", _Stream(True)) and wants_color("always", _Stream(True))
    monkeypatch.setenv("NO_COLOR", "")
    assert wants_color("auto", _Stream(True))
    monkeypatch.setenv("TERM", "dumb")
    assert not wants_color("auto", _Stream(True))
