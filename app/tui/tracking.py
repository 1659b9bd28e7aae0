"""Successive snapshots followed by what changed, for the dashboard's poll thread.

:func:`app.events.diff` and :meth:`Snapshot.keyed` look at every socket of both snapshots, in
Python, on every poll: at 20k sockets that is most of a poll's work, for the 1% that changed.
:class:`SnapshotTracker` gives the same events (equal, in the same order) and the same row keys
(those of :func:`app.model.row_keys`) by looking only at what changed.

It relies on what the Linux collector does: a socket whose record did not change is the *same*
``Sock`` object in the next snapshot (a socket that changed state or owner is a new object). The
sockets that are new objects ("fresh") and the ones no longer there ("stale") are what the
snapshot's :class:`~app.model.SocketChange` names when it follows the previous snapshot from the
same collector, else found with one dictionary of the previous snapshot's object ids made and
dropped in the step; only their endpoints (``Sock.endpoint_key``) are diffed again,
with the same per-endpoint pairing as ``diff``, and only their endpoints' keys are worked out
again. A collector that builds new objects every time (psutil) simply makes every socket fresh:
the results are the same, at the old cost.

Besides the events it reports which rows changed *key* while their socket stayed (a sibling on
the same endpoint came or went, so the keys of that endpoint are numbered again): the table moves
such a row instead of leaving the old one behind.

Keeps the previous snapshot alive between polls, so object ids stay unique while they are compared.
Memory (at 100k sockets every byte a socket is 100 kB): what it keeps between polls is the
previous snapshot and its row keys; an endpoint with one socket (nearly all) needs nothing more,
its key being the endpoint itself. Only endpoints with several sockets keep their sockets' list
and each socket's key; no set of ids is kept from one poll to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import count, pairwise
from typing import Protocol

from app.backends.base import sort_key
from app.churn import Churned
from app.events import Event, EventKind, _owner_changed, _owner_identity, _pair
from app.model import ProcessInfo, Snapshot, Sock, SocketChange, empty_snapshot


@dataclass(slots=True)
class Step:
    """What one snapshot changed against the one before it."""

    events: list[Event]  # as app.events.diff(prev, cur) gives them
    # row key -> socket of the current snapshot: the tracker's own dict, as it is until the next
    # step (not a copy per poll: nothing reads it after that)
    keyed: dict[str, Sock]
    # (key, socket) of the current snapshot whose row shows another socket than last poll's row of
    # that key (opened, changed state or owner, or now the row of a sibling): to be built again
    rebuilt: list[tuple[str, Sock]] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # old key -> new key of a continuing row
    fresh: list[Sock] = field(default_factory=list)  # sockets that are new objects
    stale: list[Sock] = field(default_factory=list)  # sockets of the previous snapshot now gone
    # keys of the previous snapshot no longer used (closed, or moved to another key)
    dropped: list[str] = field(default_factory=list)


def identity_changed(before: Mapping[int, ProcessInfo], now: Mapping[int, ProcessInfo]) -> set[int]:
    """Pids whose process is another one now (the same pid, another start time): the sockets they
    hold are owned by someone else even though their records did not change."""
    out: set[int] = set()
    for pid, info in now.items():
        old = before.get(pid)
        if old is None or old is info:
            continue
        if _owner_changed(old.identity, info.identity):
            out.add(pid)
    return out


def endpoint_keys(ep: str, group: list[Sock], position: Callable[[], Index]) -> tuple[list[str], bool]:
    """The row keys of the sockets of one endpoint, in snapshot order, as
    :func:`app.model.row_keys` numbers them (``position()``: the index of each socket in the
    snapshot, asked only for an ownerless duplicate). Also whether a key depends on it."""
    if len(group) == 1:
        return [ep], False
    keys: list[str] = []
    seen: set[str] = set()
    by_position = False
    for s in group:
        key = f"{ep}#{s.pid if s.pid is not None else '-'}"
        if key in seen:
            if s.inode:
                key = f"{key}.{s.inode}"
            else:
                key = f"{key}.{position().index(s)}"
                by_position = True
        while key in seen:
            key += "'"
        seen.add(key)
        keys.append(key)
    return keys, by_position


def _follows(prev: Snapshot, cur: Snapshot) -> SocketChange | None:
    """``cur.change`` if it describes ``cur`` against ``prev`` (the same collector's snapshot
    just before it, both with the sockets the collector gave them), else None."""
    now, before = cur.change, prev.change
    if (
        now is None
        or before is None
        or now.chain != before.chain
        or now.seq != before.seq + 1
        or now.sockets is not cur.sockets
        or before.sockets is not prev.sockets
    ):
        return None
    return now


class Index(Protocol):
    """Where sockets are in one snapshot's order."""

    def index(self, sock: Sock) -> int: ...

    def get(self, sock: Sock) -> int:
        """The index, -1 when ``sock`` is not in the snapshot."""
        ...


class Indexed:
    """Any snapshot: one dictionary of every socket's index, made once."""

    __slots__ = ("_at",)

    def __init__(self, socks: tuple[Sock, ...]) -> None:
        self._at = dict(zip(map(id, socks), count()))

    def index(self, sock: Sock) -> int:
        return self._at[id(sock)]

    def get(self, sock: Sock) -> int:
        return self._at.get(id(sock), -1)


class Bisected:
    """A snapshot in sort_key order (one a :class:`~app.model.SocketChange` vouches for): each
    socket's index found by bisection, a few sockets' without a dictionary of every socket."""

    __slots__ = ("_socks",)

    def __init__(self, socks: tuple[Sock, ...]) -> None:
        self._socks = socks

    def get(self, sock: Sock) -> int:
        try:
            return self.index(sock)
        except KeyError:
            return -1

    def index(self, sock: Sock) -> int:
        from bisect import bisect_left

        socks = self._socks
        i = bisect_left(socks, sort_key(sock), key=sort_key)
        n = len(socks)
        while i < n and socks[i] is not sock:  # (ties: side by side)
            i += 1
        if i == n:
            raise KeyError(id(sock))
        return i


def _in_order(group: list[Sock], position: Callable[[], Index], by_key: bool) -> None:
    """Sort ``group`` (sockets of one snapshot) in the snapshot's order, in place. ``by_key``: the
    snapshot is in sort_key order, so the keys sort them, and only when two keys tie are they
    placed by their indexes."""
    if not by_key:
        pos = position()
        group.sort(key=pos.index)
        return
    keyed = [(sort_key(s), s) for s in group]
    keyed.sort(key=lambda pair: pair[0])
    if any(a[0] == b[0] for a, b in pairwise(keyed)):
        at = position()
        keyed.sort(key=lambda pair: at.index(pair[1]))
    group[:] = [s for _k, s in keyed]


class SnapshotTracker:
    """``step(snapshot)`` for each poll, in order."""

    def __init__(self) -> None:
        self.snap: Snapshot | None = None
        # Of the previous snapshot: its row keys, and for the endpoints with more than one socket
        # (a socket of any other endpoint is keyed by its endpoint) their sockets in snapshot
        # order and id(sock) -> row key.
        self._keyed: dict[str, Sock] = {}
        self._by_ep: dict[str, list[Sock]] = {}
        self._key_of: dict[int, str] = {}
        self._by_position: set[str] = set()  # endpoints whose keys depend on positions
        # endpoints with several sockets two of which tie in sort_key (their order is not fixed)
        self._tied: set[str] = set()
        self._churn = Churned(lambda: (self._keyed, self._by_ep, self._key_of))  # (app.churn)

    def _group(self, ep: str) -> list[Sock]:
        """The previous snapshot's sockets of endpoint ``ep``, in snapshot order."""
        group = self._by_ep.get(ep)
        if group is not None:
            return group
        only = self._keyed.get(ep)
        return [only] if only is not None else []

    def step(self, cur: Snapshot) -> Step:
        prev = self.snap if self.snap is not None else empty_snapshot()
        socks = cur.sockets
        told = _follows(prev, cur)
        if told is not None:  # the collector says what is new and gone: no pass over the others
            fresh, stale = list(told.fresh), list(told.gone)
        else:
            # new objects, and the previous ones not seen again (in their order): one dictionary
            # (a snapshot lists an object once)
            left = dict(zip(map(id, prev.sockets), prev.sockets, strict=True))
            take = left.pop
            fresh = [s for s in socks if take(id(s), None) is None]
            stale = list(left.values())
            del left, take
        eps = {s.endpoint_key for s in fresh}
        eps.update(s.endpoint_key for s in stale)
        eps.update(self._by_position)
        moved_pids = identity_changed(prev.processes, cur.processes) if prev.processes else set()
        if moved_pids:  # rare: a recycled pid; the one pass over every socket it costs is fine
            eps.update(s.endpoint_key for s in socks if s.pid in moved_pids)

        positions: Index | None = None

        def position() -> Index:
            nonlocal positions
            if positions is None:
                positions = Bisected(socks) if told is not None else Indexed(socks)
            return positions

        by_ep = self._by_ep
        if told is not None:
            # sockets in sort_key order: siblings that stayed keep their order, unless their keys
            # tie (then the collector may have ordered them anew): only those are looked at again
            eps.update(self._tied)
        else:
            siblings = by_ep.keys() - eps
            if siblings:  # endpoints with several sockets: numbered by their order, which may change
                pos = position()
                for ep in siblings:
                    at = [pos.get(s) for s in by_ep[ep]]
                    if any(a > b for a, b in pairwise(at)):
                        eps.add(ep)

        stale_ids = {id(s) for s in stale}
        groups: dict[str, list[Sock]] = {}
        olds: dict[str, list[Sock]] = {}
        for ep in eps:
            old = self._group(ep)
            olds[ep] = old
            groups[ep] = [s for s in old if id(s) not in stale_ids]
        for s in fresh:
            groups[s.endpoint_key].append(s)
        for group in groups.values():
            if len(group) > 1:  # in the order of this snapshot, which numbers their keys
                _in_order(group, position, told is not None)

        now = cur.taken_at
        key_of = self._key_of
        keyed = self._keyed  # updated in place, endpoint by endpoint (keys never span two)
        new_key: dict[int, str] = {}
        changed: dict[int, list[Event]] = {}
        closed: list[tuple[Sock, Event]] = []
        rebuilt: list[tuple[str, Sock]] = []
        renamed: dict[str, str] = {}
        dropped: list[str] = []
        by_position: set[str] = set()
        tied = self._tied
        for ep in eps:
            group = groups[ep]
            old = olds[ep]
            keys, positional = endpoint_keys(ep, group, position)
            if positional:
                by_position.add(ep)
            prior = [keyed.get(k) for k in keys]
            # last poll's key of each of its sockets (an endpoint's only socket is keyed by it)
            key_was = (
                {id(s): key_of.get(id(s), ep) for s in old}
                if len(old) > 1
                else dict.fromkeys(map(id, old), ep)
            )
            old_keys = list(key_was.values())
            for k in old_keys:
                keyed.pop(k, None)
            for s, k, shown in zip(group, keys, prior, strict=True):
                new_key[id(s)] = k
                keyed[k] = s
                if shown is not s:
                    rebuilt.append((k, s))
            # the events of this endpoint, exactly as app.events.diff finds them
            if len(old) == 1 and len(group) == 1:
                pairs, gone, new = [(old[0], group[0])], [], []
            elif not old or not group:
                pairs, gone, new = [], list(old), list(group)
            else:
                pairs, gone, new = _pair(old, group)
            moves: dict[str, str] = {}
            for before, sock in pairs:
                k = new_key[id(sock)]
                was = key_was[id(before)]
                if was != k:
                    moves[was] = k
                if before is sock and not moved_pids:
                    continue
                found: list[Event] = []
                if before.status != sock.status:
                    owner, before_owner = cur.owner(sock), prev.owner(before)
                    found.append(Event(EventKind.STATE_CHANGED, now, k, sock, owner, before, before_owner))
                if _owner_changed(_owner_identity(prev, before), _owner_identity(cur, sock)):
                    owner, before_owner = cur.owner(sock), prev.owner(before)
                    found.append(Event(EventKind.OWNER_CHANGED, now, k, sock, owner, before, before_owner))
                if found:
                    changed[id(sock)] = found
            for sock in new:
                changed[id(sock)] = [Event(EventKind.OPENED, now, new_key[id(sock)], sock, cur.owner(sock))]
            for sock in gone:
                was = key_was[id(sock)]
                closed.append((sock, Event(EventKind.CLOSED, now, was, sock, prev.owner(sock))))
            # a continuing socket's row moves to its new key, unless a row keeps either key
            current, before_keys = set(keys), set(old_keys)
            for was, k in moves.items():
                if k not in before_keys and was not in current:
                    renamed[was] = k
            dropped.extend(k for k in old_keys if k not in current and k not in renamed)
            for s in old:
                key_of.pop(id(s), None)
            if len(group) > 1:
                by_ep[ep] = group
                key_of.update(zip(map(id, group), keys, strict=True))
                sort_keys = [sort_key(s) for s in group]
                if len(set(sort_keys)) < len(sort_keys):
                    tied.add(ep)
                else:
                    tied.discard(ep)
            else:
                by_ep.pop(ep, None)
                tied.discard(ep)

        events: list[Event] = []
        if changed:
            order = [found[0].sock for found in changed.values()]
            if len(order) > 1:
                _in_order(order, position, told is not None)
            for s in order:
                events.extend(changed[id(s)])
        if closed:
            if len(closed) > 1:
                gone_socks = [s for s, _e in closed]
                by_sock = {id(s): e for s, e in closed}
                was_at: Index = Bisected(prev.sockets) if told is not None else Indexed(prev.sockets)
                _in_order(gone_socks, lambda: was_at, told is not None)
                events.extend(by_sock[id(s)] for s in gone_socks)
            else:
                events.append(closed[0][1])

        self._by_position = by_position
        self.snap = cur
        self._churn.check()
        return Step(events, keyed, rebuilt, renamed, fresh, stale, dropped)
