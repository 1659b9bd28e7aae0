"""Events between two snapshots: what opened, closed, changed owner or changed state.

This one pure module is used by the dashboard's change highlighting (:func:`changed_keys`),
the events view, ``--alert-exposed`` (:func:`exposed_openings`) and ``portscope watch``.
(``portscope baseline`` compares listeners by (proto, address, port) instead: see app/baseline.py.)

Identity rules:

* Sockets are compared per *endpoint* (``Sock.endpoint_key``: protocol, local address and port,
  plus the peer for connections). Several sockets can share an endpoint (SO_REUSEPORT workers,
  a forked server); within one endpoint they are paired up as the same socket first (the same
  object, which a collector keeps for an unchanged socket, or the same inode), then by owner pid,
  then by state, so one sibling going away is one ``closed`` event and never a reshuffle of the
  others.
* ``owner-changed``: the endpoint is still there but another process holds it (another pid, or
  the same pid with another start time, i.e. a recycled pid). An owner that merely became
  visible or invisible (permissions, a process that exited mid-scan) is not a change.
* ``state-changed``: the same socket in another TCP state (ESTABLISHED -> CLOSE_WAIT ...).
  A UDP socket that ``connect()``s gets a peer and therefore another endpoint: closed + opened.

Each event carries the key of its row (:meth:`Snapshot.keyed`): the current snapshot's key,
or for ``closed`` the previous snapshot's, so the dashboard can highlight the row.

``queue-overflow`` (:func:`queue_overflows`, from snapshots taken with stats) is not a change of a
socket but of its load: a TCP listener's accept queue reached 80% of its backlog (it was below at
the previous poll), or the host counted accept-queue overflows (``TcpExt ListenOverflows``) since
the previous poll, i.e. connections it dropped because a queue was full.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from app.health import queue, queue_marked
from app.model import LISTEN, ProcessInfo, Proto, Snapshot, Sock

if TYPE_CHECKING:
    from app.exposure import ExposureMap


class EventKind(StrEnum):
    OPENED = "opened"
    CLOSED = "closed"
    OWNER_CHANGED = "owner-changed"
    STATE_CHANGED = "state-changed"
    QUEUE_OVERFLOW = "queue-overflow"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    time: float
    key: str
    sock: Sock  # the socket now (for CLOSED: as it was last seen)
    owner: ProcessInfo | None  # its owner now (for CLOSED: as last seen)
    before: Sock | None = None  # for OWNER_CHANGED / STATE_CHANGED: the socket as it was
    before_owner: ProcessInfo | None = None


@dataclass(frozen=True, slots=True)
class QueueOverflow:
    """A ``queue-overflow`` event: ``sock`` is the listener whose accept queue holds ``current`` of
    at most ``max`` connections; ``overflows`` is how many connections the host dropped from full
    accept queues since the previous poll. ``sock`` is ``None`` when the host counted overflows but
    no listener's queue was waiting at this poll (it drained in between)."""

    time: float
    key: str | None
    sock: Sock | None
    owner: ProcessInfo | None
    current: int | None
    max: int | None
    overflows: int

    kind = EventKind.QUEUE_OVERFLOW


def full_queues(snapshot: Snapshot) -> set[str]:
    """Row keys of the TCP listeners whose accept queue is at least 80% of its backlog."""
    out = set()
    for sock, key in zip(snapshot.sockets, snapshot.keys, strict=True):
        if (
            sock.proto is Proto.TCP
            and sock.status == LISTEN
            and queue_marked(queue(snapshot.stats, sock.inode))
        ):
            out.add(key)
    return out


def queue_overflows(snapshot: Snapshot, full_before: set[str], overflows: int) -> list[QueueOverflow]:
    """The ``queue-overflow`` events of ``snapshot`` (taken with stats): each TCP listener whose
    queue is newly at 80% of its backlog (not in ``full_before``, :func:`full_queues` of the
    previous poll), and, when the host's ListenOverflows rose by ``overflows`` since then, each
    listener of this namespace with connections waiting (or one host-wide event if none has).
    Pure: the same inputs give the same events."""
    events: list[QueueOverflow] = []
    if snapshot.stats is None:
        return events
    now = snapshot.taken_at
    for sock, key in zip(snapshot.sockets, snapshot.keys, strict=True):
        if sock.proto is not Proto.TCP or sock.status != LISTEN:
            continue
        q = queue(snapshot.stats, sock.inode)
        if q is None:
            continue
        newly_full = queue_marked(q) and key not in full_before
        # the host's counter is this namespace's (/proc/net/netstat): blame only its listeners
        waiting_in_overflow = overflows > 0 and q.current > 0 and not sock.netns
        if newly_full or waiting_in_overflow:
            events.append(QueueOverflow(now, key, sock, snapshot.owner(sock), q.current, q.max, overflows))
    if overflows > 0 and not any(e.sock is not None and not e.sock.netns for e in events):
        events.append(QueueOverflow(now, None, None, None, None, None, overflows))
    return events


Scope = Literal["all", "listening", "connections"]


def restrict(snapshot: Snapshot, scope: Scope) -> Snapshot:
    """``snapshot`` with only its listeners (or only its connections): diff these for a narrower watch."""
    if scope == "all":
        return snapshot
    socks = snapshot.listeners if scope == "listening" else snapshot.connections
    return replace(snapshot, sockets=socks)


def _owner_identity(snap: Snapshot, sock: Sock) -> tuple[int, float] | None:
    owner = snap.owner(sock)
    if owner is not None:
        return owner.identity
    return (sock.pid, 0.0) if sock.pid is not None else None


def _owner_changed(old_id: tuple[int, float] | None, new_id: tuple[int, float] | None) -> bool:
    if old_id is None or new_id is None:
        return False  # became visible or invisible: not a change of owner
    if old_id[0] != new_id[0]:
        return True
    # same pid: another process only if both start times are known and differ (pid reuse)
    return bool(old_id[1] and new_id[1] and abs(old_id[1] - new_id[1]) > 0.01)


def _pair(old: list[Sock], new: list[Sock]) -> tuple[list[tuple[Sock, Sock]], list[Sock], list[Sock]]:
    """Pair the sockets of one endpoint: the same socket (the same object, which a collector keeps
    for an unchanged socket, or the same inode), then same (pid, state), then same pid, then same
    state, then in order. Returns (pairs, unmatched old, unmatched new)."""
    pairs: list[tuple[Sock, Sock]] = []
    # the same socket: by dictionary (each is unique, so one pass; a thousand siblings built anew
    # every poll, as the portable backend gives them, cost no pass per pair)
    by_id = {id(o): i for i, o in enumerate(old)}
    by_inode = {(o.inode, o.netns): i for i, o in enumerate(old) if o.inode}
    taken = [False] * len(old)
    new_left: list[Sock] = []
    for n in new:
        at = by_id.get(id(n))
        if at is None and n.inode:
            at = by_inode.get((n.inode, n.netns))
        if at is not None and not taken[at]:
            taken[at] = True
            pairs.append((old[at], n))
        else:
            new_left.append(n)
    old_left = [o for o, t in zip(old, taken, strict=True) if not t]
    rules = (
        lambda a, b: a.pid == b.pid and a.status == b.status and a.pid is not None,
        lambda a, b: a.pid == b.pid and a.pid is not None,
        lambda a, b: a.status == b.status,
        lambda a, b: True,
    )
    for same in rules:
        if not old_left or not new_left:
            break
        unpaired: list[Sock] = []
        for n in new_left:
            # (by position: equal sockets are still different sockets, so never list.remove)
            at = next((i for i, o in enumerate(old_left) if same(o, n)), None)
            if at is None:
                unpaired.append(n)
            else:
                pairs.append((old_left.pop(at), n))
        new_left = unpaired
    return pairs, old_left, new_left


def diff(prev: Snapshot, cur: Snapshot) -> list[Event]:
    """Events that turn ``prev`` into ``cur``: opened and changed sockets in ``cur``'s order, then
    closed ones in ``prev``'s order. Pure: no I/O, the same inputs give the same events."""
    prev_keys = {id(s): k for s, k in zip(prev.sockets, prev.keys, strict=True)}
    cur_keys = {id(s): k for s, k in zip(cur.sockets, cur.keys, strict=True)}
    before: dict[str, list[Sock]] = defaultdict(list)
    for s in prev.sockets:
        before[s.endpoint_key].append(s)
    after: dict[str, list[Sock]] = defaultdict(list)
    for s in cur.sockets:
        after[s.endpoint_key].append(s)

    now = cur.taken_at
    opened_or_changed: dict[int, list[Event]] = {}
    closed: dict[int, Event] = {}
    for endpoint in before.keys() | after.keys():
        olds, news = before.get(endpoint, []), after.get(endpoint, [])
        if len(olds) == 1 and len(news) == 1:  # the common case: one socket per endpoint
            pairs, gone, new = [(olds[0], news[0])], list[Sock](), list[Sock]()
        else:
            pairs, gone, new = _pair(olds, news)
        for old, sock in pairs:
            found: list[Event] = []
            key = cur_keys[id(sock)]
            if old.status != sock.status:
                found.append(
                    Event(EventKind.STATE_CHANGED, now, key, sock, cur.owner(sock), old, prev.owner(old))
                )
            if _owner_changed(_owner_identity(prev, old), _owner_identity(cur, sock)):
                found.append(
                    Event(EventKind.OWNER_CHANGED, now, key, sock, cur.owner(sock), old, prev.owner(old))
                )
            if found:
                opened_or_changed[id(sock)] = found
        for sock in new:
            opened_or_changed[id(sock)] = [
                Event(EventKind.OPENED, now, cur_keys[id(sock)], sock, cur.owner(sock))
            ]
        for sock in gone:
            closed[id(sock)] = Event(EventKind.CLOSED, now, prev_keys[id(sock)], sock, prev.owner(sock))

    events: list[Event] = []
    for s in cur.sockets:
        events.extend(opened_or_changed.get(id(s), ()))
    events.extend(closed[id(s)] for s in prev.sockets if id(s) in closed)
    return events


NEW_LISTENER_KINDS = (EventKind.OPENED, EventKind.OWNER_CHANGED)


def exposed_openings(events: Iterable[Event], exposure: ExposureMap) -> list[Event]:
    """The new listeners reachable beyond loopback, for ``--alert-exposed``.

    A new listener is an ``opened`` listening socket, or a listening socket that another process
    now holds (``owner-changed``: a different program answers on that port). Reachable beyond
    loopback means bound to all interfaces or to a non-loopback interface's address.
    """
    return [
        e
        for e in events
        if e.kind in NEW_LISTENER_KINDS
        and e.sock.listening
        and exposure.classify(e.sock.laddr.ip).beyond_loopback
    ]


def changed_keys(events: Sequence[Event]) -> dict[str, EventKind]:
    """Row key -> the most notable event kind on it (for the dashboard's highlighting)."""
    rank = {
        EventKind.QUEUE_OVERFLOW: 0,
        EventKind.CLOSED: 1,
        EventKind.STATE_CHANGED: 2,
        EventKind.OWNER_CHANGED: 3,
        EventKind.OPENED: 4,
    }
    out: dict[str, EventKind] = {}
    for e in events:
        if e.key not in out or rank[e.kind] > rank[out[e.key]]:
            out[e.key] = e.kind
    return out
