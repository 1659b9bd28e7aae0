"""Parsing struct tcp_info of any length, and the netlink attribute walk, never raise."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from app.fast import netlink
from app.fast.tcpinfo import FULL_LENGTH, RAW_FIELDS, parse_raw
from app.health import TcpInfo


def full_info(rtt_us: int = 1500, acked: int = 10**9) -> bytes:
    buf = bytearray(280)
    struct.pack_into("=B", buf, 2, 3)  # retransmits
    struct.pack_into("=I", buf, 24, 7)  # unacked
    struct.pack_into("=I", buf, 68, rtt_us)
    struct.pack_into("=I", buf, 100, 42)  # total_retrans
    struct.pack_into("=Q", buf, 120, acked)
    struct.pack_into("=Q", buf, 200, acked + 5)  # bytes_sent
    return bytes(buf)


def test_a_full_struct_gives_every_field() -> None:
    info = TcpInfo.from_raw(parse_raw(full_info()))
    assert info.rtt_ms == 1.5 and info.retrans == 3 and info.unacked == 7 and info.total_retrans == 42
    assert info.bytes_acked == 10**9 and info.bytes_sent == 10**9 + 5


def test_a_short_struct_from_an_older_kernel_gives_none_not_zero() -> None:
    info = TcpInfo.from_raw(parse_raw(full_info()[:104]))  # 3.x-era length: no byte counters
    assert info.rtt_ms == 1.5 and info.total_retrans == 42
    assert info.bytes_acked is None and info.bytes_sent is None and info.delivery_rate is None


@given(st.binary(max_size=400))
def test_any_length_parses(raw: bytes) -> None:
    values = parse_raw(raw)
    assert len(values) == len(RAW_FIELDS)
    if len(raw) >= FULL_LENGTH:
        assert None not in values
    TcpInfo.from_raw(values)


def _message(attrs: bytes) -> bytes:
    body = bytes(72) + attrs
    return struct.pack("=IHHII", 16 + len(body), netlink.SOCK_DIAG_BY_FAMILY, 2, 1, 0) + body


@given(st.binary(max_size=600))
def test_message_stats_on_garbage_attributes_never_raises(attrs: bytes) -> None:
    msg = _message(attrs)
    row = netlink.message_stats(msg, 0, len(msg))
    assert len(row) in (3, 3 + len(RAW_FIELDS))
    netlink._info_offset(msg, 0, len(msg))


def test_message_stats_finds_the_info_attribute_after_others() -> None:
    info = full_info()
    attrs = struct.pack("=HHB3x", 5, 8, 0) + struct.pack("=HH", 4 + len(info), netlink.INET_DIAG_INFO) + info
    msg = _message(attrs)
    row = netlink.message_stats(msg, 0, len(msg))
    assert TcpInfo.from_raw(row[3:]).rtt_ms == 1.5
    assert netlink._info_offset(msg, 0, len(msg)) == 88 + 8 + 4


def _row(
    inode: int, *, unacked: int = 0, total: int = 0, acked: int = 0, received: int = 0
) -> tuple[int, ...]:
    # (rq, wq, inode, retransmits, unacked, last_sent, last_recv, rtt, rttvar, cwnd, total_retrans,
    #  bytes_acked, bytes_received, delivery_rate, bytes_sent)
    return (0, 0, inode, 0, unacked, 0, 0, 100, 50, 10, total, acked, received, 0, acked)


def test_tracker_rates_stall_storm_and_overflows() -> None:
    from app.health import STALL_POLLS, STORM_RETRANS, HealthTracker, Queue, queue_marked

    t = HealthTracker()
    t.update({7: _row(7, acked=1000, received=0)}, 10.0, (5, 5))
    t.update({7: _row(7, acked=3000, received=500)}, 12.0, (5, 5))
    h = t.get(7)
    assert h is not None and h.rates.tx == 1000 and h.rates.rx == 250 and t.overflows == 0
    for i in range(STALL_POLLS):
        t.update({7: _row(7, unacked=2, acked=3000, received=500, total=i)}, 13.0 + i, (9, 9))
    h = t.get(7)
    assert h is not None and h.stalled and not h.storm and h.rates.tx == 0 and t.overflows == 0
    t.update(
        {7: _row(7, unacked=2, acked=3000, received=500, total=STALL_POLLS + STORM_RETRANS)}, 20.0, (12, 12)
    )
    h = t.get(7)
    assert h is not None and h.storm and t.overflows == 3
    t.update({7: _row(7, unacked=0, acked=9000, received=500)}, 21.0, (12, 12))
    h = t.get(7)
    assert h is not None and not h.stalled and not h.storm
    t.update({}, 22.0, (12, 12))
    assert t.get(7) is None  # closed connections are forgotten
    assert queue_marked(Queue(4, 5)) and not queue_marked(Queue(3, 5))
    assert queue_marked(Queue(1, 128), overflowed=True) and not queue_marked(Queue(0, 128), overflowed=True)
