"""Typing more of a word only narrows: then the table looks again only at the rows that passed
(app.tui.state.narrows). Checked against the filter itself: whenever ``narrows(a, b)``, every row
that filter ``b`` lets through, ``a`` lets through too."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import UsageError
from app.filtering import FilterRow, parse_filter
from app.ports import PortRange
from app.tui.state import narrows

WORDS = st.sampled_from(
    [
        "a",
        "ab",
        "u",
        "user:",
        "user:a",
        "proc:n",
        "new",
        "ne",
        "tc",
        "tcp",
        "-a",
        "pid:1",
        ":8",
        "1",
        "x.1",
        "n",
    ]
)
ROWS = [
    FilterRow(
        "tcp",
        "127.0.0.1",
        80,
        "",
        None,
        "LISTEN",
        1,
        "nginx",
        "alice",
        "nginx -g x",
        PortRange.WELL_KNOWN,
        True,
    ),
    FilterRow(
        "udp",
        "10.0.0.1",
        5353,
        "",
        None,
        "BOUND",
        12,
        "avahi",
        "bob",
        "",
        PortRange.REGISTERED,
        False,
        new=True,
    ),
    FilterRow("tcp", "::1", 8080, "::1", 41000, "ESTABLISHED", None, "", "", "", PortRange.REGISTERED, False),
    FilterRow(
        "tcp",
        "127.0.0.1",
        1,
        "",
        None,
        "LISTEN",
        2,
        "user",
        "nobody",
        "ne tc",
        PortRange.WELL_KNOWN,
        False,
        unit="u.service",
    ),
]


def passing(text: str) -> set[int] | None:
    try:
        flt = parse_filter(text)
    except UsageError:
        return None
    return {i for i, r in enumerate(ROWS) if flt.matches(r)}


@settings(max_examples=500, deadline=None)
@given(
    head=st.lists(WORDS, max_size=2), last=WORDS, more=st.text(alphabet="abnuc1:.-p", min_size=1, max_size=3)
)
def test_a_narrowing_text_never_lets_more_rows_through(head: list[str], last: str, more: str) -> None:
    before = " ".join([*head, last])
    after = before + more
    if not narrows(before, after):
        return
    a, b = passing(before), passing(after)
    if a is None or b is None:
        return  # a text that does not parse is never applied
    assert b <= a, (before, after)


def test_narrows() -> None:
    assert narrows("ngi", "ngin") and narrows("tcp ngi", "tcp nginx") and narrows("user:al", "user:ali")
    assert not narrows("ngin", "ngi") and not narrows("ngi", "ngi x") and not narrows("ngi ", "ngi x")
    assert not narrows("user", "user:a") and not narrows("ne", "new") and not narrows("-ab", "-abc")
    assert not narrows("pid:1", "pid:12") and not narrows("port:80", "port:800") and not narrows('"a', '"ab')
