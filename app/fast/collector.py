"""The fast Linux collector: sock_diag (or /proc/net) + an incremental inode->pid map + caches.

Per poll, in the steady state: four netlink dumps parsed with ``struct`` (records already seen are
looked up by their raw bytes, not decoded), one ``poll()`` over the owners' pidfds to learn which
exited, and no /proc/PID/fd walk at all. The sorted socket list is kept between polls and only
patched for the sockets that opened, closed or changed owner.

Fallback chain: netlink -> /proc/net -> the ``fallback`` collector the factory hands in (the
portable psutil backend; this backend never imports it), chosen at construction (``path="auto"``)
and again at run time if the current path fails (e.g. netlink denied later by a policy).
"""

from __future__ import annotations

import time
from _collections_abc import Mapping  # (loaded at start-up: collections.abc is not)
from _operator import attrgetter  # (operator.py only re-exports it, and costs start-up)
from itertools import count

from app.backends.base import base_key, finish_snapshot, hidden_owner_count
from app.churn import Churned
from app.errors import CollectorUnavailable
from app.fast.netlink import NetlinkReader
from app.fast.owners import OwnerMap
from app.fast.procfs import netns_inode
from app.fast.records import ReadResult, Record
from app.model import NetnsInfo, Snapshot, Sock, SocketChange
from app.processes import ProcessCache

TYPE_CHECKING = False  # on the CLI's start-up path: no typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, KeysView
    from typing import Literal, Protocol

    from app.backends.base import Collector
    from app.fast.ownercache import OwnerCache

    Path = Literal["auto", "netlink", "procnet", "psutil"]
else:
    Protocol = object
# "psutil" stands for the fallback collector given to FastCollector (the portable backend).
PATHS: tuple[str, ...] = ("netlink", "procnet", "psutil")
_SKEY = attrgetter("skey")
_RESORT_ABOVE = 64  # more changed sockets than this (and than an eighth): sort everything again
_CHAINS = count(1)  # SocketChange.chain: one per unbroken run of patched polls, in this process


class Reader(Protocol):
    source: str

    def read(self, port: int | None = None) -> ReadResult: ...

    def close(self) -> None: ...


def open_reader(path: str, stats: bool = False) -> Reader:
    if path == "netlink":
        return NetlinkReader(stats=stats)
    if path == "procnet":
        from app.fast.procnet import ProcNetReader

        return ProcNetReader()
    raise ValueError(f"unknown socket source {path!r}")


NETNS_RELIST = 2.0  # seconds between two looks for network namespaces that came or went


def _merge(main: ReadResult, extra: list[ReadResult], gone: list[Record]) -> ReadResult:
    """One result from the current namespace's and the other namespaces' reads."""
    records = list(main.records)
    fresh = list(main.fresh)
    closed = None if main.closed is None else [*main.closed, *gone]
    stats = main.stats  # (this read's own: added to in place)
    for res in extra:
        records.extend(res.records)
        fresh.extend(res.fresh)
        if closed is not None and res.closed is not None:
            closed.extend(res.closed)
        else:
            closed = None
        if stats is not None and res.stats:
            stats.update(res.stats)
    return ReadResult(records, fresh, closed, stats)


class Namespaces:
    """Readers for every other network namespace (``netns="all"``): one sock_diag socket opened
    inside each (:func:`app.netns.opener`), kept while the namespace lives. The list of namespaces
    is looked at again every :data:`NETNS_RELIST` seconds."""

    def __init__(self, stats: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.stats = stats
        self.clock = clock
        self.readers: dict[int, NetlinkReader] = {}
        self.info: dict[int, NetnsInfo] = {}
        self.current: NetnsInfo | None = None
        self.notes: list[str] = []
        self._listed_at = float("-inf")

    def _relist(self) -> list[Record]:
        """Look for namespaces that came or went; returns the records of those that went."""
        from app.netns import list_namespaces, opener

        self._listed_at = self.clock()
        found = list_namespaces()
        note = found.warning()
        self.notes = [note] if note else []
        live = {ns.inode: ns for ns in found.namespaces if not ns.current}
        cur = found.current
        if cur is not None:
            self.current = NetnsInfo(cur.inode, cur.label, cur.name, True)
        gone: list[Record] = []
        for inode in [i for i in self.readers if i not in live]:
            reader = self.readers.pop(inode)
            gone.extend(reader.cached())
            reader.close()
            self.info.pop(inode, None)
        for inode, ns in live.items():
            if inode in self.readers:
                continue
            try:
                self.readers[inode] = NetlinkReader(opener=opener(ns), stats=self.stats)
            except OSError as exc:  # gone meanwhile, or not ours to enter
                self.notes.append(f"cannot read network namespace {ns.label}: {exc.strerror or exc}")
                continue
            self.info[inode] = NetnsInfo(inode, ns.label, ns.name, False)
        return gone

    def read(self, port: int | None) -> tuple[list[ReadResult], list[Record]]:
        gone = self._relist() if self.clock() - self._listed_at >= NETNS_RELIST else []
        results = []
        for inode, reader in list(self.readers.items()):
            try:
                res = reader.read(port)
            except OSError:  # the namespace went away between two looks
                gone.extend(reader.cached())
                reader.close()
                del self.readers[inode]
                self.info.pop(inode, None)
                continue
            for r in res.fresh:
                r.netns = inode
            results.append(res)
        return results, gone

    def labels(self) -> dict[int, NetnsInfo]:
        out = {0: self.current} if self.current is not None else {}
        out.update(self.info)
        return out

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        self.readers.clear()


class FastCollector:
    """Snapshots via netlink sock_diag (else /proc/net, else ``fallback``) with incremental owners.

    ``path`` forces one source ("netlink", "procnet", or "psutil" for the fallback; construction
    raises if it is unavailable); "auto" takes the first that works. ``fallback`` makes the last
    resort collector (the factory passes the portable backend); without one, a host where neither
    netlink nor /proc/net works raises :class:`~app.errors.CollectorUnavailable`. ``source`` names
    the path in use."""

    def __init__(
        self,
        *,
        path: Path = "auto",
        fallback: Callable[[], Collector] | None = None,
        stats: bool = False,
        netns: Literal["current", "all"] = "current",
        search: bool = False,
        hints: OwnerCache | None = None,
    ) -> None:
        self.stats = stats  # also read queues, tcp_info and the host's listen counters (netlink only)
        # netns="all": also every other network namespace (root: all; unprivileged: the user's own)
        self.namespaces = Namespaces(stats) if netns == "all" else None
        self._here: dict[int, NetnsInfo] | None = None  # the current namespace, read once
        # a one-shot look (search) reads each owner once: no pidfds to watch it with
        self.processes = ProcessCache(use_pidfd=False if search else None)
        self.owners = OwnerMap(track_holders=True)
        # search: a port-filtered collect finds holders with OwnerMap.search (stops early, then
        # the holders' process trees) instead of reading every fd table: for one-shot looks
        # (``who``) that never poll again. ``hints``: the verified owner cache it walks first.
        self.search = search
        self.hints = hints
        # one_shot: a look that never polls again (``list``; set by :meth:`for_one_shot`)
        self.one_shot = False
        self._reader: Reader | None = None
        self._fallback = fallback
        self._psutil: Collector | None = None
        self._notes: list[str] = []
        # State of the last full poll, patched by the next one: its records in _sort_key order,
        # their Socks, how many have no visible owner, and inode -> local port / record.
        self._sorted: list[Record] | None = None
        self._socks: list[Sock] = []
        self._hidden = 0
        self._by_inode: dict[int, Record] = {}
        self._wanted = _PortsOf(self._by_inode)  # (a view of it: no second map per socket)
        # the maps by inode that sockets opening and closing churn, kept at their size (app.churn)
        self._churn = Churned(
            lambda: (self._by_inode, self.owners.owner, self.owners.holders, self.owners.negative)
        )
        # the chain (SocketChange) of the last snapshot, None: the next one starts another
        self._chain: int | None = None
        self._seq = 0
        if path not in ("auto", *PATHS):
            raise ValueError(f"unknown socket source {path!r}")
        candidates = PATHS if path == "auto" else (path,)
        self._open(candidates, strict=path != "auto")

    @property
    def source(self) -> str:
        return self._reader.source if self._reader is not None else "psutil"

    def _open(self, candidates: tuple[str, ...], *, strict: bool) -> None:
        failures: list[str] = []
        for name in candidates:
            if name == "psutil":
                if self._fallback is None:
                    if strict:
                        raise ValueError("path 'psutil' needs a fallback collector")
                    break
                self._reader = None
                self._psutil = self._fallback()
                shared = getattr(self._psutil, "processes", None)
                if isinstance(shared, ProcessCache):  # one process cache (and pidfd set) for both
                    self._psutil.processes = self.processes  # type: ignore[attr-defined]
                return
            try:
                self._reader = open_reader(name, self.stats)
                return
            except OSError as exc:
                if strict:
                    raise
                failures.append(f"{name} {exc.strerror or exc}")
                self._notes.append(f"{name} unavailable ({exc.strerror or exc}): falling back")
        self._reader = None
        raise CollectorUnavailable("cannot list sockets: " + ("; ".join(failures) or "no socket source"))

    def for_one_shot(self) -> None:
        """Make each collect a fresh full read for a look that never polls again (``list``):
        every process's socket table read once with :meth:`OwnerMap.read_once` (no incremental
        fd maps, no holder set per socket), and nothing kept for a next poll to patch."""
        self.one_shot = True

    def set_netns(self, netns: Literal["current", "all"]) -> None:
        """Switch between this namespace only and every namespace (the dashboard's ``n``): the next
        poll lists the other namespaces' sockets as opened, or as closed when switching back."""
        if netns == "all" and self.namespaces is None:
            self.namespaces = Namespaces(self.stats)
        elif netns == "current" and self.namespaces is not None:
            self.namespaces.close()
            self.namespaces = None
            self._sorted = None  # their records must go: rebuild from this namespace's read

    def _current_ns(self) -> dict[int, NetnsInfo] | None:
        if self._here is None:
            inode = netns_inode()
            self._here = {0: NetnsInfo(inode, "current", None, True)} if inode is not None else {}
        return self._here

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self.namespaces is not None:
            self.namespaces.close()
        self.processes.clear()

    def _read(self, port: int | None, warnings: list[str]) -> ReadResult | None:
        """Read with the current source; on failure, move down the chain (None: use psutil)."""
        while self._reader is not None:
            try:
                return self._reader.read(port)
            except OSError as exc:
                failed = self._reader.source
                self._reader.close()
                self._reader = None
                self._sorted = None
                rest = PATHS[PATHS.index(failed) + 1 :]
                self._open(rest, strict=False)  # CollectorUnavailable when nothing is left
                warnings.append(f"{failed} failed ({exc.strerror or exc}): using {self.source}")
        return None

    def collect(self, *, port: int | None = None) -> Snapshot:
        taken = time.time()
        warnings, self._notes = self._notes, []
        result = self._read(port, warnings)
        if result is None:
            assert self._psutil is not None
            snap = self._psutil.collect(port=port)
            if warnings:
                snap = Snapshot(
                    taken_at=snap.taken_at,
                    sockets=snap.sockets,
                    processes=snap.processes,
                    hidden_owners=snap.hidden_owners,
                    warnings=(*snap.warnings, *warnings),
                    ephemeral=snap.ephemeral,
                    source=snap.source,
                    privileged=snap.privileged,
                )
            return snap

        ns = self.namespaces
        if ns is not None and self._reader is not None and self._reader.source == "netlink":
            extra, went = ns.read(port)
            result = _merge(result, extra, went)
            warnings.extend(ns.notes)
        gone = self.processes.reap()
        if gone:
            self.owners.forget_pids(gone)
        change: tuple[tuple[Sock, ...], tuple[Sock, ...]] | None = None
        if port is None and self._sorted is not None and result.closed is not None:
            socks, pids, hidden, change = self._patch(result)
            self._churn.check()
        else:
            socks, pids, hidden = self._rebuild(result, port)
        counters = None
        if self.stats:
            from app.fast.tcpinfo import read_listen_counters

            counters = read_listen_counters()
        shared = self.owners.shared_holders(None if port is None else {r.inode for r in result.records})
        if shared:
            pids = pids | {p for held in shared.values() for p in held}
        snap = finish_snapshot(
            taken,
            socks,
            self.processes,
            warnings,
            self.source,
            pids=pids,
            presorted=True,
            hidden=hidden,
            stats=result.stats,
            listen_counters=counters,
            holders=shared,
            namespaces=ns.labels() if ns is not None else self._current_ns(),
        )
        return self._chained(snap, change, pids, port)

    def _chained(
        self,
        snap: Snapshot,
        change: tuple[tuple[Sock, ...], tuple[Sock, ...]] | None,
        pids: set[int],
        port: int | None,
    ) -> Snapshot:
        """``snap`` naming what changed since this collector's last snapshot
        (:class:`~app.model.SocketChange`), when that is known: after a patched poll whose
        snapshot has the collector's own sockets. An owner that exited meanwhile (the snapshot's
        sockets are then copies without it), a port-filtered or one-shot look break the chain:
        the next full poll starts another one."""
        if port is not None or self.one_shot or pids - snap.processes.keys():
            self._chain = None  # (finish_snapshot replaced the sockets of vanished owners)
            return snap
        if change is None or self._chain is None:
            self._chain, self._seq = next(_CHAINS), 0
            fresh: tuple[Sock, ...] = ()
            gone: tuple[Sock, ...] = ()
        else:
            self._seq += 1
            fresh, gone = change
        # (set on the snapshot just made, which nothing else holds yet: no copy, and no
        # dataclasses import on the CLI's start-up path)
        object.__setattr__(snap, "change", SocketChange(self._chain, self._seq, fresh, gone, snap.sockets))
        return snap

    def _rebuild(self, result: ReadResult, port: int | None) -> tuple[list[Sock], set[int], int]:
        """Cold, port-filtered or after a change of source: resolve and sort everything."""
        records = result.records
        wanted = {r.inode: r.laddr[1] for r in records if r.inode}
        if self.one_shot:
            self.owners = OwnerMap(track_holders=True)  # (what a previous collect kept goes)
            owner = self.owners.read_once(wanted)
        elif port is not None and self.search:
            hints = self.hints
            owner = self.owners.search(wanted, hints.hints(wanted) if hints is not None and wanted else ())
            if hints is not None:
                hints.remember(wanted, owner)
        else:
            owner = self.owners.resolve(wanted, prune=port is None)
        self.owners.take_changed()
        get = owner.get
        for r in records:  # _build, inlined: on a cold poll this runs for every socket
            pid = get(r.inode)
            if r.sock is None or r.pid != pid:
                base = _base_key(r) if r.sock is None else _owner_free(r)
                r.pid = pid
                r.sock = Sock(r.proto, r.family, r.laddr, r.raddr, r.status, pid, r.inode, r.netns)
                r.skey = base | (pid + 1) if pid is not None else base
        ordered, socks = _sorted(records)
        hidden = hidden_owner_count(socks)
        if self.one_shot:
            pids = {r.pid for r in records if r.pid is not None}  # (read_once keeps no owner_pids)
            self._sorted = None  # the next collect reads everything again
        elif port is None:
            pids = self.owners.owner_pids()
            self._sorted, self._socks, self._hidden = ordered, socks, hidden
            self._by_inode = {r.inode: r for r in records if r.inode}
            self._wanted = _PortsOf(self._by_inode)
        else:
            pids = {owner[i] for i in wanted if i in owner}
            self._sorted = None  # the reader's cache now holds more than the last full poll
        return socks, pids, hidden

    def _patch(
        self, result: ReadResult
    ) -> tuple[list[Sock], set[int], int, tuple[tuple[Sock, ...], tuple[Sock, ...]]]:
        """A full poll after a full poll: only the sockets that opened, closed or changed owner
        are touched; in the steady state, nothing is."""
        assert result.closed is not None and self._sorted is not None
        wanted, by_inode, owners = self._wanted, self._by_inode, self.owners
        closed, fresh = result.closed, result.fresh
        hidden = self._hidden
        if closed:
            gone_inodes = []
            for r in closed:
                hidden -= _is_hidden(r)
                if r.inode and by_inode.get(r.inode) is r:
                    del by_inode[r.inode]
                    gone_inodes.append(r.inode)
            owners.drop_inodes(gone_inodes)
        for r in fresh:
            if r.inode:
                by_inode[r.inode] = r
        owner = owners.resolve(wanted, prune=False)
        get = owner.get
        for r in fresh:
            _build(r, get(r.inode))
            hidden += _is_hidden(r)
        moved: list[Record] = []
        # what leaves the sorted list: each record with the sort key it has there
        drop = [(r.skey, r) for r in closed if r.sock is not None]
        gone = [r.sock for _k, r in drop]
        for ino in owners.take_changed():
            rec = by_inode.get(ino)
            if rec is not None and rec.sock is not None and rec.pid != get(ino):
                drop.append((rec.skey, rec))
                gone.append(rec.sock)
                hidden -= _is_hidden(rec)
                _build(rec, get(ino))
                hidden += _is_hidden(rec)
                moved.append(rec)
        added = [*fresh, *moved]
        if added or drop:
            self._sorted, self._socks = _reorder(self._sorted, self._socks, result, drop, added)
            self._hidden = hidden
        return (
            self._socks,
            owners.owner_pids(),
            self._hidden,
            (tuple(r.sock for r in added), tuple(gone)),  # type: ignore[arg-type, misc]
        )


class _PortsOf(Mapping[int, int]):
    """inode -> local port of the records by inode (what OwnerMap.resolve is handed), read from
    the records themselves: at 100k sockets a second map was some 40 bytes a socket."""

    __slots__ = ("_by",)

    def __init__(self, by_inode: dict[int, Record]) -> None:
        self._by = by_inode

    def __getitem__(self, inode: int) -> int:
        return self._by[inode].laddr[1]

    def __iter__(self) -> Iterator[int]:
        return iter(self._by)

    def __len__(self) -> int:
        return len(self._by)

    def __contains__(self, inode: object) -> bool:
        return inode in self._by

    def keys(self) -> KeysView[int]:  # (the dict's own: set operations run in C)
        return self._by.keys()


def _sorted(records: list[Record]) -> tuple[list[Record], list[Sock]]:
    """Built ``records`` in sort key order, and their Socks."""
    ordered = sorted(records, key=_SKEY)
    return ordered, [r.sock for r in ordered]  # type: ignore[misc]


def _reorder(
    prev: list[Record],
    prev_socks: list[Sock],
    result: ReadResult,
    drop: list[tuple[int, Record]],
    added: list[Record],
) -> tuple[list[Record], list[Sock]]:
    """The sorted records (and their Socks) without ``drop`` (each with the sort key it was sorted
    by) and with ``added``: each found or placed by bisection (in C), the lists then copied by
    slices, not a pass in Python over every record. Many changes: everything sorted again."""
    if len(drop) + len(added) > max(_RESORT_ABOVE, len(prev) >> 3):
        return _sorted(result.records)
    from bisect import bisect_left, bisect_right  # (a C extension: a steady poll's, not a one-shot look's)

    n = len(prev)
    cuts: list[int] = []
    for key, r in drop:
        i = bisect_left(prev, key, key=_SKEY)
        while i < n and prev[i] is not r:  # (records with the same key: side by side)
            i += 1
        if i == n:  # not there (never expected): sort everything
            return _sorted(result.records)
        cuts.append(i)
    if cuts:
        cuts.sort()
        kept: list[Record] = []
        kept_socks: list[Sock] = []
        start = 0
        for i in cuts:
            kept += prev[start:i]
            kept_socks += prev_socks[start:i]
            start = i + 1
        kept += prev[start:]
        kept_socks += prev_socks[start:]
    else:
        kept, kept_socks = prev, prev_socks
    if not added:
        return kept, kept_socks
    added = sorted(added, key=_SKEY)  # (stable: as insort one by one would place them)
    ordered: list[Record] = []
    socks: list[Sock] = []
    start = 0
    for r in added:
        i = bisect_right(kept, r.skey, lo=start, key=_SKEY)
        ordered += kept[start:i]
        socks += kept_socks[start:i]
        ordered.append(r)
        socks.append(r.sock)  # type: ignore[arg-type]
        start = i
    ordered += kept[start:]
    socks += kept_socks[start:]
    return ordered, socks


def _build(r: Record, pid: int | None) -> None:
    base = _base_key(r) if r.sock is None else _owner_free(r)
    r.pid = pid
    r.sock = Sock(r.proto, r.family, r.laddr, r.raddr, r.status, pid, r.inode, r.netns)
    r.skey = base | (pid + 1) if pid is not None else base


def _owner_free(r: Record) -> int:
    """The part of a built record's sort key that does not depend on its owner (``skey`` is it
    ``| (pid + 1)``): worked out again, not kept (a second int of ~70 bytes a socket)."""
    return r.skey - (r.pid + 1) if r.pid is not None else r.skey


def _base_key(r: Record) -> int:
    return base_key(r.proto, r.laddr, r.raddr, r.status)


def _is_hidden(r: Record) -> int:
    """1 if this socket counts as having no visible owner (see hidden_owner_count)."""
    return 1 if r.pid is None and r.sock is not None and not r.sock.ownerless else 0
