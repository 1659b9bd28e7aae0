"""TCP health of sockets: RTT, retransmits, bytes and queues, as the Linux backend reads them.

A snapshot taken with stats (``FastCollector(stats=True)``) carries ``Snapshot.stats``: per socket
inode a flat tuple ``(rqueue, wqueue, inode, *tcp_info fields)`` (the tcp_info part only for TCP
sockets with a file descriptor). The tuples stay raw so a poll of 20k sockets builds no objects;
the functions here turn one socket's entry into a :class:`TcpInfo` or :class:`Queue` when shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

RawStats = tuple[int | None, ...]


class TcpInfo(NamedTuple):
    """What the dashboard and ``--stats`` show of one TCP socket; ``None`` where the kernel's
    struct is too short to say."""

    rtt_ms: float | None
    rttvar_ms: float | None
    retrans: int | None
    total_retrans: int | None
    bytes_sent: int | None
    bytes_acked: int | None
    bytes_received: int | None
    delivery_rate: int | None
    cwnd: int | None
    unacked: int | None
    last_send_ms: int | None
    last_recv_ms: int | None

    @classmethod
    def from_raw(cls, raw: tuple[int | None, ...]) -> TcpInfo:
        (
            retransmits,
            unacked,
            last_sent,
            last_recv,
            rtt,
            rttvar,
            cwnd,
            total,
            acked,
            received,
            rate,
            sent,
        ) = raw
        return cls(
            rtt_ms=None if rtt is None else rtt / 1000,
            rttvar_ms=None if rttvar is None else rttvar / 1000,
            retrans=retransmits,
            total_retrans=total,
            bytes_sent=sent,
            bytes_acked=acked,
            bytes_received=received,
            delivery_rate=rate,
            cwnd=cwnd,
            unacked=unacked,
            last_send_ms=last_sent,
            last_recv_ms=last_recv,
        )

    def as_dict(self) -> dict[str, float | int | None]:
        return self._asdict()


class Queue(NamedTuple):
    """A socket's queues from the diag message: for a listener, the accept queue (connections
    waiting for accept()) and its backlog; for others, bytes waiting to be read and to be sent."""

    current: int
    max: int


class ListenCounters(NamedTuple):
    """The host's TcpExt counters: accept-queue overflows and the drops they cause (since boot)."""

    overflows: int
    drops: int


def tcp_info(stats: Mapping[int, RawStats] | None, inode: int | None) -> TcpInfo | None:
    """The TCP info of the socket ``inode`` (``None``: not TCP, no stats, or not known)."""
    entry = stats.get(inode) if stats and inode else None
    if entry is None or len(entry) <= 3:
        return None
    return TcpInfo.from_raw(entry[3:])


def queue(stats: Mapping[int, RawStats] | None, inode: int | None) -> Queue | None:
    """The queues of the socket ``inode`` (``None`` when not known)."""
    entry = stats.get(inode) if stats and inode else None
    if entry is None or entry[0] is None or entry[1] is None:
        return None
    return Queue(entry[0], entry[1])
