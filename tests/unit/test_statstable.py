"""StatsTable (app/fast/statstable.py) reads exactly what decoding every message at once read:
chunks built like the kernel's (same-length sock_diag messages with a tcp_info attribute),
checked message by message against netlink.message_stats, in any order of chunks and rows."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from app.fast import netlink
from app.fast.statstable import StatsTable
from app.fast.tcpinfo import FULL_LENGTH, HEALTH_FIELDS, HEALTH_INDEXES, RAW_FIELDS, fields_format
from app.health import tracked

_TCPINFO = struct.Struct("=" + fields_format())


def message(rq: int, wq: int, inode: int, fields: tuple[int, ...], info_len: int = FULL_LENGTH + 24) -> bytes:
    """One sock_diag message: header, inet_diag_msg (queues, inode), an 8-byte attribute before the
    INET_DIAG_INFO one (as the kernel puts INET_DIAG_SHUTDOWN first), then the tcp_info."""
    info = bytearray(info_len)
    _TCPINFO.pack_into(info, 0, *fields)
    body = bytearray(72)
    struct.pack_into("=II4xI", body, 56, rq, wq, inode)
    attrs = struct.pack("=HHB3x", 5, 8, 0) + struct.pack("=HH", 4 + info_len, netlink.INET_DIAG_INFO) + info
    raw = bytes(body) + attrs
    return struct.pack("=IHHII", 16 + len(raw), netlink.SOCK_DIAG_BY_FAMILY, 2, 1, 0) + raw


_field = st.integers(min_value=0, max_value=2**31)
_row = st.tuples(
    st.integers(min_value=0, max_value=2**20),
    st.integers(min_value=0, max_value=2**20),
    st.integers(min_value=0, max_value=50),  # small inodes: the same socket in two chunks, inode 0
    st.tuples(*[_field] * len(RAW_FIELDS)),
)


def _fields(raw: tuple[int, ...]) -> tuple[int, ...]:
    """RAW_FIELDS values that fit their struct codes (retransmits is one byte)."""
    return (raw[0] & 0xFF, *raw[1:])


def _add_chunk(table: StatsTable, msgs: list[bytes]) -> None:
    data = b"".join(msgs)
    step = len(msgs[0])
    info_at = netlink._info_offset(data, 0, step)
    assert info_at > 0 and netlink.all_have_info(data, step, len(msgs), info_at)
    table.add_chunk(data, step, netlink._stats_struct(step, info_at), netlink._health_struct(step, info_at))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(_row, min_size=1, max_size=6)), min_size=1, max_size=6))
def test_a_table_reads_what_eager_decoding_read(parts: list[tuple[bool, list[tuple]]]) -> None:
    table = StatsTable()
    expected: dict[int, tuple[int | None, ...]] = {}  # what dict.update of decoded rows gave
    for as_chunk, rows in parts:
        msgs = [message(rq, wq, inode, _fields(raw)) for rq, wq, inode, raw in rows]
        decoded = [netlink.message_stats(m, 0, len(m)) for m in msgs]
        if as_chunk:
            _add_chunk(table, msgs)
        else:
            for row in decoded:
                table.add_row(row[2], row)  # type: ignore[arg-type]
        expected.update((row[2], row) for row in decoded)  # type: ignore[misc]
    listed = list(table.items())
    assert dict(listed) == expected and len(listed) == len(expected)  # each socket once
    assert {ino: table.get(ino) for ino in expected} == expected
    assert {ino: table.queues(ino) for ino in expected} == {ino: row[:2] for ino, row in expected.items()}
    assert table.queues(10**9) is None
    assert set(table) == set(expected) and len(table) == len(expected)
    assert table.get(10**9) is None and 10**9 not in table
    # the trackers' five fields, as they read them from the decoded rows
    assert dict(tracked(table)) == {
        ino: tuple(row[i] for i in HEALTH_INDEXES) for ino, row in expected.items() if ino
    }


def test_the_health_fields_are_the_named_ones() -> None:
    assert [RAW_FIELDS[i - 3] for i in HEALTH_INDEXES] == list(HEALTH_FIELDS)


def test_a_reader_of_most_sockets_gets_them_decoded_at_once_with_the_same_answers() -> None:
    msgs = [message(i, 2 * i, 1000 + i, (i % 256, *range(i, i + len(RAW_FIELDS) - 1))) for i in range(3000)]
    table = StatsTable()
    for start in range(0, len(msgs), 100):
        _add_chunk(table, msgs[start : start + 100])
    want = {row[2]: row for row in (netlink.message_stats(m, 0, len(m)) for m in msgs)}
    got = {ino: table.get(ino) for ino in want}  # (one by one, then from the bulk decode)
    assert got == want
    assert table._all is not None  # switched to the bulk decode on the way
    assert table.get(1000) == want[1000] and table.get(5) is None
