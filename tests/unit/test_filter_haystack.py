"""A plain filter word is looked for in a row's haystack in two cached parts (the owner's, shared by
every socket of a process, and the socket's own): the answer is exactly ``needle in`` the joined
text, matches across the parts included; a process's long command line is held once, not per row."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.filtering import MEMO_CHARS, FilterRow, Memo, contains, parse_filter, row_for
from app.model import Endpoint, Family, ProcessInfo, Proto, Sock
from app.ports import PortRange

TEXT = st.text(alphabet="abcAB 1:.-İ", max_size=8)


def joined(r: FilterRow) -> str:
    """The haystack as it was built before it was cached: one join of every field."""
    return " ".join(
        (
            r.process,
            r.user,
            r.command,
            r.local_ip,
            str(r.local_port),
            r.remote_ip,
            str(r.remote_port or ""),
            str(r.pid or ""),
            r.state,
            r.proto,
            r.unit,
            r.container,
            r.forward,
        )
    ).lower()


@settings(max_examples=500, deadline=None)
@given(
    process=TEXT,
    user=TEXT,
    command=TEXT,
    ip=TEXT,
    unit=TEXT,
    needle=st.text(alphabet="abAB 1:.-İi", min_size=1, max_size=6),
)
def test_contains_is_in_the_joined_haystack(
    process: str, user: str, command: str, ip: str, unit: str, needle: str
) -> None:
    r = FilterRow(
        "tcp", ip, 80, "", None, "LISTEN", 7, process, user, command, PortRange.WELL_KNOWN, False, unit=unit
    )
    assert r.contains(needle.lower()) == (needle.lower() in joined(r))
    assert r.haystack() == joined(r)


def test_a_word_across_the_owner_and_the_socket_matches() -> None:
    sock = Sock(Proto.TCP, Family.IPV4, Endpoint("10.1.2.3", 8080), None, "LISTEN", 9, 99)
    owner = ProcessInfo(9, 1, "nginx", "/usr/sbin/nginx", ("nginx", "-g", "daemon off;"), "www", 1.0)
    r = row_for(sock, owner, False)
    assert parse_filter("off; 10.1").matches(r) and parse_filter("'off; 10.1'").matches(r)
    assert not parse_filter("zzz").matches(r)


def test_a_process_command_line_is_held_once_for_all_its_rows() -> None:
    owner = ProcessInfo(9, 1, "python3", "/usr/bin/python3", ("python3", "-c", "x" * 4000), "root", 1.0)
    rows = [
        row_for(Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", p), None, "LISTEN", 9, p), owner, False)
        for p in range(1, 50)
    ]
    assert all(r.command is rows[0].command for r in rows)
    for r in rows:
        r.contains("x")
    assert all(r._owner is rows[0]._owner for r in rows)


@settings(max_examples=300, deadline=None)
@given(
    owner=TEXT,
    owns=st.lists(TEXT, min_size=1, max_size=5),
    needle=st.text(alphabet="abAB 1:.-", min_size=1),
)
def test_a_memo_of_the_owner_part_answers_as_without(owner: str, owns: list[str], needle: str) -> None:
    memo = Memo()
    for own in owns:
        assert contains(owner, own, needle, memo) == (needle in owner + " " + own)


def test_a_memo_holds_a_bounded_number_of_characters() -> None:
    """A filter's predicate (and its memo) lives across polls: the command lines of processes
    that have exited are not kept beyond the memo's budget, whatever their number or length."""
    memo = Memo()
    longest = 100_000
    for i in range(3 * MEMO_CHARS // longest):
        owner = f"java{i} " + "x" * (longest - 10) + ("zz" if i % 2 else "")
        assert contains(owner, "own", "zz", memo) is bool(i % 2)
        assert memo.chars == sum(map(len, memo)) <= MEMO_CHARS
    assert len(memo) > 1  # (it still remembers what fits)
