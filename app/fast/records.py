"""Decoded socket records shared by the netlink and /proc/net readers.

A :class:`Record` is what one raw kernel record decodes to. Readers keep records in a dict keyed
by the raw bytes (netlink) or raw fields (/proc/net), so a socket that did not change between two
polls is never decoded again; the collector also keeps on the record the :class:`Sock` it built and
that Sock's sort key, so an unchanged socket with an unchanged owner costs one dict lookup.
"""

from __future__ import annotations

from app.model import UDP_BOUND, UDP_CONNECTED, Endpoint, Family, Proto, Sock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from app.fast.statstable import StatsTable

# Kernel TCP states (include/net/tcp_states.h) by number, named as psutil names them.
# TCP_NEW_SYN_RECV (12) is a request socket: /proc/net/tcp (and so psutil) shows it as SYN_RECV.
TCP_STATE_NAMES: dict[int, str] = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN_RECV",
}


class Record:
    """One socket as the kernel reported it, plus the collector's cached Sock for it."""

    __slots__ = (
        "family",
        "inode",
        "laddr",
        "netns",
        "pid",
        "proto",
        "raddr",
        "skey",
        "sock",
        "status",
    )

    def __init__(
        self,
        proto: Proto,
        family: Family,
        laddr: Endpoint,
        raddr: Endpoint | None,
        status: str,
        inode: int,
    ) -> None:
        self.proto = proto
        self.family = family
        self.laddr = laddr
        self.raddr = raddr
        self.status = status
        self.inode = inode
        self.netns = 0  # the namespace's inode, set by the collector for other namespaces' records
        self.pid: int | None = None
        self.sock: Sock | None = None
        self.skey = 0  # the sort key of ``sock`` (an int: app.backends.base.sort_key), once built


def make_record(
    proto: Proto, family: Family, lip: str, lport: int, rip: str, rport: int, tcp_state: int, inode: int
) -> Record:
    """Build a record the way psutil reports it: no remote address when the remote port is 0, and UDP
    sockets BOUND (no peer) or CONNECTED instead of a TCP state."""
    raddr = Endpoint(rip, rport) if rport else None
    if proto is Proto.UDP:
        status = UDP_CONNECTED if raddr is not None else UDP_BOUND
    else:
        status = TCP_STATE_NAMES.get(tcp_state, "NONE")
    return Record(proto, family, Endpoint(lip, lport), raddr, status, inode)


# Stands in the readers' caches for sockets that are not listed (no local port: psutil skips them).
SKIP = Record(Proto.TCP, Family.IPV4, Endpoint("", 0), None, "NONE", 0)


class ReadResult:
    """One reader pass: the records in kernel order, which of them were decoded just now (new or
    changed sockets), for a full read the cached records that were not seen again (closed), and,
    when the reader was asked for them, each socket's queues and TCP info by inode
    (:mod:`app.fast.statstable`: read as flat tuples ``(rqueue, wqueue, inode, *tcp_info fields)``)."""

    __slots__ = ("closed", "fresh", "records", "stats")

    def __init__(
        self,
        records: list[Record],
        fresh: list[Record],
        closed: list[Record] | None,
        stats: StatsTable | None = None,
    ) -> None:
        self.records = records
        self.fresh = fresh
        self.closed = closed
        self.stats = stats
