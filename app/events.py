"""Events between two snapshots: what opened, closed, changed owner or changed state.

This one pure module is used by the dashboard's change highlighting, the events view,
``portscope watch`` and the baseline diff's notion of an endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.model import ProcessInfo, Snapshot, Sock


class EventKind(StrEnum):
    OPENED = "opened"
    CLOSED = "closed"
    OWNER_CHANGED = "owner-changed"
    STATE_CHANGED = "state-changed"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    time: float
    key: str
    sock: Sock  # the socket now (for CLOSED: as it was last seen)
    owner: ProcessInfo | None  # its owner now (for CLOSED: as last seen)
    before: Sock | None = None  # for OWNER_CHANGED / STATE_CHANGED: the socket as it was
    before_owner: ProcessInfo | None = None


def _owner_identity(snap: Snapshot, sock: Sock) -> tuple[int, float] | None:
    owner = snap.owner(sock)
    if owner is not None:
        return owner.identity
    return (sock.pid, 0.0) if sock.pid is not None else None


def diff(prev: Snapshot, cur: Snapshot) -> list[Event]:
    """Events that turn ``prev`` into ``cur``, keyed by :meth:`Snapshot.keyed` row keys.

    A socket is the same socket when its key is the same. ``owner-changed`` means the same
    endpoint is now held by another process (another pid, or the same pid with another start
    time); an owner that merely became visible or invisible is not a change.
    """
    before = prev.keyed()
    after = cur.keyed()
    now = cur.taken_at
    events: list[Event] = []
    for key, sock in after.items():
        old = before.get(key)
        if old is None:
            events.append(Event(EventKind.OPENED, now, key, sock, cur.owner(sock)))
            continue
        if old.status != sock.status:
            events.append(
                Event(EventKind.STATE_CHANGED, now, key, sock, cur.owner(sock), old, prev.owner(old))
            )
        old_id, new_id = _owner_identity(prev, old), _owner_identity(cur, sock)
        if (old_id is not None and new_id is not None and old_id[0] != new_id[0]) or (
            old_id is not None
            and new_id is not None
            and old_id[1]
            and new_id[1]
            and abs(old_id[1] - new_id[1]) > 0.01
        ):
            events.append(
                Event(EventKind.OWNER_CHANGED, now, key, sock, cur.owner(sock), old, prev.owner(old))
            )
    for key, sock in before.items():
        if key not in after:
            events.append(Event(EventKind.CLOSED, now, key, sock, prev.owner(sock)))
    return events
