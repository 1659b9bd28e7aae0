"""The layout of ``struct tcp_info`` (INET_DIAG_INFO in the sock_diag dump) and /proc/net/netstat.

Only the fields portscope shows are parsed. The kernel's struct grows over time: a longer struct
from a newer kernel has trailing fields that are ignored; a shorter one from an older kernel lacks
some fields, which are then ``None`` (never a wrong 0). Offsets are those of include/uapi/linux/tcp.h.
The values are read as raw tuples (:data:`RAW_FIELDS` order); :mod:`app.health` gives them meaning.
"""

from __future__ import annotations

import struct
from _operator import itemgetter  # (operator.py only re-exports it)

from app.health import ListenCounters, Tracked

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# (name, struct code, offset in struct tcp_info); all unsigned, native byte order.
_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("retransmits", "B", 2),  # retransmits of the current unacked segment (the timer's count)
    ("unacked", "I", 24),
    ("last_data_sent", "I", 44),  # ms since the last data was sent
    ("last_data_recv", "I", 52),  # ms since the last data was received
    ("rtt", "I", 68),  # smoothed RTT, microseconds
    ("rttvar", "I", 72),
    ("snd_cwnd", "I", 80),  # congestion window, segments
    ("total_retrans", "I", 100),
    ("bytes_acked", "Q", 120),
    ("bytes_received", "Q", 128),
    ("delivery_rate", "Q", 160),  # bytes/s
    ("bytes_sent", "Q", 200),
)
RAW_FIELDS = tuple(name for name, _code, _off in _FIELDS)
_SIZES = {"B": 1, "I": 4, "Q": 8}
# The struct length each field needs to be present.
_NEEDS = tuple(off + _SIZES[code] for _name, code, off in _FIELDS)
FULL_LENGTH = max(_NEEDS)  # 208: kernels since 4.19 send at least this much


def info_struct(prefix: str = "=") -> struct.Struct:
    """A Struct reading :data:`RAW_FIELDS` from the start of a tcp_info (with ``prefix`` bytes
    of ``x`` padding possible before it via :func:`fields_format`)."""
    return struct.Struct(prefix + fields_format())


def fields_format(names: tuple[str, ...] = RAW_FIELDS) -> str:
    """The struct format (no prefix) reading the fields ``names`` (in RAW_FIELDS order) at their
    offsets, FULL_LENGTH long."""
    fmt = []
    pos = 0
    for (name, code, off), end in zip(_FIELDS, _NEEDS, strict=True):
        if name not in names:
            continue
        if off > pos:
            fmt.append(f"{off - pos}x")
        fmt.append(code)
        pos = end
    if pos < FULL_LENGTH:
        fmt.append(f"{FULL_LENGTH - pos}x")
    return "".join(fmt)


# What the health tracker follows of every connection each poll (app.fast.statstable), and where
# each is in a stats row (3 + its index in RAW_FIELDS).
HEALTH_FIELDS = ("unacked", "rtt", "total_retrans", "bytes_acked", "bytes_received")
HEALTH_INDEXES = tuple(3 + RAW_FIELDS.index(name) for name in HEALTH_FIELDS)
_HEALTH_OF_ROW = itemgetter(*HEALTH_INDEXES)


def health_of_rows(rows: Iterable[tuple[int, tuple[int | None, ...]]]) -> dict[int, Tracked]:
    """inode -> HEALTH_FIELDS of each decoded stats row (``(inode, row)`` pairs) that has a
    tcp_info; inode 0 (no file, nothing follows it) is left out."""
    return {inode: _HEALTH_OF_ROW(row) for inode, row in rows if inode and len(row) > 3}


_FULL = info_struct()


def parse_raw(info: bytes) -> tuple[int | None, ...]:
    """RAW_FIELDS of one tcp_info of any length: fields past its end are ``None``."""
    n = len(info)
    if n >= FULL_LENGTH:
        return _FULL.unpack_from(info, 0)
    padded = info + bytes(FULL_LENGTH - n)
    values = _FULL.unpack_from(padded, 0)
    return tuple(v if need <= n else None for v, need in zip(values, _NEEDS, strict=True))


def read_listen_counters(path: str = "/proc/net/netstat") -> ListenCounters | None:
    """``ListenOverflows`` and ``ListenDrops`` from /proc/net/netstat; ``None`` if unreadable."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if not names.startswith("TcpExt:") or not values.startswith("TcpExt:"):
            continue
        table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
        try:
            return ListenCounters(int(table.get("ListenOverflows", 0)), int(table.get("ListenDrops", 0)))
        except ValueError:
            return None
    return None
