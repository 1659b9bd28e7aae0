"""Connect outcomes: the one state enum and the one classifier behind `test`, `scan` and the panels.

Every probe (a TCP connect, a UDP datagram) ends in one of a few kernel-visible ways: it connected or
got a reply, it timed out, or a call failed with an errno. :func:`classify` turns that into a
:class:`ConnectState` and a short reason, once for every caller, so the same port never reads
``unreachable`` in one command and ``filtered`` in another. The table (also in README.md):

==============================================  ===========  ===============================
what happened                                   TCP          UDP
==============================================  ===========  ===============================
connected (TCP handshake) / a reply (UDP)       open         open
connected to itself (no listener, see below)    closed       -
ECONNREFUSED: a RST, ICMP port unreachable      closed       closed
no answer within the timeout                    filtered     open|filtered, or open when a
                                                             socket on this machine is bound
                                                             to that address and port
EHOSTUNREACH ENETUNREACH EHOSTDOWN ENETDOWN     unreachable  unreachable
ENONET (no route; ICMP host/net unreachable)
EACCES EPERM (a prohibit route, a firewall)     filtered     filtered
anything else (EINVAL from a blackhole route,   error        error
EADDRNOTAVAIL, no free descriptor, ...)
==============================================  ===========  ===============================

Self-connect: connecting to an unused port inside the ephemeral range can make the kernel pick that
same port as the source, and the socket connects to itself (TCP simultaneous open). Nothing listens
there, so it is ``closed``, not ``open``; the same for two of a scan's own sockets that meet.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class ConnectState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # refused (TCP RST) or ICMP port unreachable (UDP); or a self-connect
    FILTERED = "filtered"  # TCP timed out, or a prohibit route / firewall rule refused to send
    UNREACHABLE = "unreachable"  # no route to the host or network
    OPEN_FILTERED = "open|filtered"  # UDP without any reply: open and silent, or dropped
    ERROR = "error"  # anything else: the probe itself could not be made


# The order of summaries ("3 open, 1 closed"); also the precedence when several results for one
# target are combined: the best evidence of something answering comes first.
STATES: tuple[ConnectState, ...] = (
    ConnectState.OPEN,
    ConnectState.OPEN_FILTERED,
    ConnectState.FILTERED,
    ConnectState.CLOSED,
    ConnectState.UNREACHABLE,
    ConnectState.ERROR,
)

UNREACHABLE_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.ENONET}
)
BLOCKED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


class SelfConnected(OSError):
    """A TCP connect that reached the prober's own socket (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    state: ConnectState
    reason: str  # short, for people: "refused", "timed out", "No route to host", ...


def classify(
    proto: str,
    err: int = 0,
    *,
    timed_out: bool = False,
    self_connect: bool = False,
    bound_here: bool = False,
) -> Verdict:
    """The state of one probe. ``err`` is the errno of the failed call (0: it connected / a reply
    came); ``timed_out`` nothing answered in time; ``self_connect`` the TCP socket's peer is one of
    the prober's own sockets; ``bound_here`` (UDP) a socket on this machine is bound to the target."""
    udp = proto == "udp"
    if timed_out:
        if not udp:
            return Verdict(ConnectState.FILTERED, "timed out")
        if bound_here:
            return Verdict(ConnectState.OPEN, "no reply, but a socket is bound there on this machine")
        return Verdict(ConnectState.OPEN_FILTERED, "no reply")
    if err == 0:
        if self_connect:
            return Verdict(ConnectState.CLOSED, "connected to itself: nothing listens")
        return Verdict(ConnectState.OPEN, "reply" if udp else "connected")
    if err == errno.ECONNREFUSED:
        return Verdict(ConnectState.CLOSED, "ICMP port unreachable" if udp else "refused")
    if err in UNREACHABLE_ERRNOS:
        return Verdict(ConnectState.UNREACHABLE, os.strerror(err))
    if err in BLOCKED_ERRNOS:
        return Verdict(ConnectState.FILTERED, f"{os.strerror(err)} (a prohibit route or a firewall rule)")
    return Verdict(ConnectState.ERROR, os.strerror(err))


def classify_exception(proto: str, exc: BaseException) -> Verdict:
    """:func:`classify` for an exception raised by a blocking connect/send/recv."""
    if isinstance(exc, SelfConnected):
        return classify(proto, self_connect=True)
    if isinstance(exc, TimeoutError):
        return classify(proto, timed_out=True)
    if isinstance(exc, OSError) and exc.errno:
        return classify(proto, exc.errno)
    return Verdict(ConnectState.ERROR, str(exc) or type(exc).__name__)


def combine(states: Iterable[str]) -> ConnectState:
    """One state for several results about one target (attempts, or its addresses): the first of
    :data:`STATES` present; ``error`` when there is none."""
    present = set(states)
    for s in STATES:
        if s in present:
            return s
    return ConnectState.ERROR


def format_counts(counts: dict[str, int]) -> str:
    """``3 open, 1 closed`` in :data:`STATES` order, zeros left out; ``nothing`` when all are zero."""
    parts = [f"{counts[s]} {s}" for s in STATES if counts.get(s)]
    return ", ".join(parts) or "nothing"
