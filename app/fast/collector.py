"""The fast Linux collector: sock_diag (or /proc/net) + an incremental inode->pid map + caches.

Per poll, in the steady state: four netlink dumps parsed with ``struct`` (records already seen are
looked up by their raw bytes, not decoded), one ``poll()`` over the owners' pidfds to learn which
exited, and no /proc/PID/fd walk at all. The sorted socket list is kept between polls and only
patched for the sockets that opened, closed or changed owner.

Fallback chain: netlink -> /proc/net -> psutil, chosen at construction (``path="auto"``) and
again at run time if the current path fails (e.g. netlink denied later by a policy).
"""

from __future__ import annotations

import time
from bisect import insort
from operator import attrgetter
from typing import Literal, Protocol

from app.collector import PsutilCollector, _ip_order, finish_snapshot, hidden_owner_count
from app.fast.netlink import NetlinkReader
from app.fast.owners import OwnerMap
from app.fast.procnet import ProcNetReader
from app.fast.records import ReadResult, Record
from app.model import LISTEN, OWNERLESS_STATES, UDP_BOUND, Proto, Snapshot, Sock
from app.processes import ProcessCache

Path = Literal["auto", "netlink", "procnet", "psutil"]
PATHS: tuple[str, ...] = ("netlink", "procnet", "psutil")
_SKEY = attrgetter("skey")
_RESORT_ABOVE = 64  # more changed sockets than this: sort everything instead of inserting each


class Reader(Protocol):
    source: str

    def read(self, port: int | None = None) -> ReadResult: ...

    def close(self) -> None: ...


def open_reader(path: str) -> Reader:
    if path == "netlink":
        return NetlinkReader()
    if path == "procnet":
        return ProcNetReader()
    raise ValueError(f"unknown socket source {path!r}")


class FastCollector:
    """Snapshots via netlink sock_diag (else /proc/net, else psutil) with incremental owners.

    ``path`` forces one source ("netlink", "procnet" or "psutil"; construction raises if it is
    unavailable); "auto" takes the first that works. ``source`` names the path in use."""

    def __init__(self, *, path: Path = "auto") -> None:
        self.processes = ProcessCache()
        self.owners = OwnerMap()
        self._reader: Reader | None = None
        self._psutil: PsutilCollector | None = None
        self._notes: list[str] = []
        # State of the last full poll, patched by the next one: its records in _sort_key order,
        # their Socks, how many have no visible owner, and inode -> local port / record.
        self._sorted: list[Record] | None = None
        self._socks: list[Sock] = []
        self._hidden = 0
        self._wanted: dict[int, int] = {}
        self._by_inode: dict[int, Record] = {}
        if path not in ("auto", *PATHS):
            raise ValueError(f"unknown socket source {path!r}")
        candidates = PATHS if path == "auto" else (path,)
        self._open(candidates, strict=path != "auto")

    @property
    def source(self) -> str:
        return self._reader.source if self._reader is not None else "psutil"

    def _open(self, candidates: tuple[str, ...], *, strict: bool) -> None:
        for name in candidates:
            if name == "psutil":
                self._reader = None
                self._psutil = PsutilCollector()
                self._psutil.processes = self.processes
                return
            try:
                self._reader = open_reader(name)
                return
            except OSError as exc:
                if strict:
                    raise
                self._notes.append(f"{name} unavailable ({exc.strerror or exc}): falling back")
        raise OSError("no socket source available")  # pragma: no cover - psutil is always last

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self.processes.clear()

    def _read(self, port: int | None, warnings: list[str]) -> ReadResult | None:
        """Read with the current source; on failure, move down the chain (None: use psutil)."""
        while self._reader is not None:
            try:
                return self._reader.read(port)
            except OSError as exc:
                failed = self._reader.source
                self._reader.close()
                self._sorted = None
                rest = PATHS[PATHS.index(failed) + 1 :]
                self._open(rest, strict=False)
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

        gone = self.processes.reap()
        if gone:
            self.owners.forget_pids(gone)
        if port is None and self._sorted is not None and result.closed is not None:
            socks, pids, hidden = self._patch(result)
        else:
            socks, pids, hidden = self._rebuild(result, port)
        return finish_snapshot(
            taken, socks, self.processes, warnings, self.source, pids=pids, presorted=True, hidden=hidden
        )

    def _rebuild(self, result: ReadResult, port: int | None) -> tuple[list[Sock], set[int], int]:
        """Cold, port-filtered or after a change of source: resolve and sort everything."""
        records = result.records
        wanted = {r.inode: r.laddr[1] for r in records if r.inode}
        owner = self.owners.resolve(wanted, prune=port is None)
        self.owners.take_changed()
        get = owner.get
        for r in records:  # _build, inlined: on a cold poll this runs for every socket
            pid = get(r.inode)
            if r.sock is None or r.pid != pid:
                r.pid = pid
                r.sock = Sock(r.proto, r.family, r.laddr, r.raddr, r.status, pid, r.inode)
                base = r.base
                if base < 0:
                    r.base = base = _base_key(r)
                r.skey = base | (pid + 1) if pid is not None else base
        ordered = sorted(records, key=_SKEY)
        socks = [r.sock for r in ordered]
        hidden = hidden_owner_count(socks)  # type: ignore[arg-type]
        if port is None:
            pids = self.owners.owner_pids()
            self._sorted, self._socks, self._hidden = ordered, socks, hidden  # type: ignore[assignment]
            self._wanted = wanted
            self._by_inode = {r.inode: r for r in records if r.inode}
        else:
            pids = {owner[i] for i in wanted if i in owner}
            self._sorted = None  # the reader's cache now holds more than the last full poll
        return socks, pids, hidden  # type: ignore[return-value]

    def _patch(self, result: ReadResult) -> tuple[list[Sock], set[int], int]:
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
                    del wanted[r.inode]
                    gone_inodes.append(r.inode)
            owners.drop_inodes(gone_inodes)
        for r in fresh:
            if r.inode:
                by_inode[r.inode] = r
                wanted[r.inode] = r.laddr[1]
        owner = owners.resolve(wanted, prune=False)
        get = owner.get
        for r in fresh:
            _build(r, get(r.inode))
            hidden += _is_hidden(r)
        moved: list[Record] = []
        for ino in owners.take_changed():
            rec = by_inode.get(ino)
            if rec is not None and rec.sock is not None and rec.pid != get(ino):
                hidden -= _is_hidden(rec)
                _build(rec, get(ino))
                hidden += _is_hidden(rec)
                moved.append(rec)
        if fresh or closed or moved:
            self._sorted = self._reorder(self._sorted, result, moved)
            self._socks = [r.sock for r in self._sorted]  # type: ignore[misc]
            self._hidden = hidden
        return self._socks, owners.owner_pids(), self._hidden

    @staticmethod
    def _reorder(prev: list[Record], result: ReadResult, moved: list[Record]) -> list[Record]:
        fresh, closed = result.fresh, result.closed or []
        if len(fresh) + len(moved) > _RESORT_ABOVE:
            return sorted(result.records, key=_SKEY)
        if closed or moved:
            drop = {id(r) for r in closed}
            drop.update(id(r) for r in moved)
            ordered = [r for r in prev if id(r) not in drop]
        else:
            ordered = list(prev)
        for r in (*fresh, *moved):
            insort(ordered, r, key=_SKEY)
        return ordered


def _build(r: Record, pid: int | None) -> None:
    r.pid = pid
    r.sock = Sock(r.proto, r.family, r.laddr, r.raddr, r.status, pid, r.inode)
    base = r.base
    if base < 0:
        r.base = base = _base_key(r)
    r.skey = base | (pid + 1) if pid is not None else base


# The sort key as one int (no tuple per socket to allocate, track and compare), ordered exactly as
# app.collector._sort_key orders sockets. Bit fields, most significant first: local port (16),
# protocol (1: tcp, udp), not-listening (1), local address kind (2: unparsable, v4, v6, as
# _ip_order puts them) and value (128), remote address kind (2: none, unparsable, v4, v6) and
# value (128), remote port + 1 (17; 0: none), owner pid + 1 (32; 0: none). Addresses that do not
# parse (never produced by the kernel's readers) tie with each other instead of being ordered by
# their text.
_PID_BITS = 32
_ADDR_BITS = 130
_UDP = Proto.UDP
_LOCAL_ADDR: dict[str, int] = {}
_REMOTE_ADDR: dict[str, int] = {}


def _addr_bits(ip: str, remote: bool) -> int:
    cache = _REMOTE_ADDR if remote else _LOCAL_ADDR
    bits = cache.get(ip)
    if bits is None:
        version, value, _text = _ip_order(ip)
        rank = {2: 0, 4: 1, 6: 2}[version] + remote  # the remote field keeps 0 for "none"
        bits = rank << 128 | value
        if len(cache) < 65536:
            cache[ip] = bits
    return bits


def _base_key(r: Record) -> int:
    laddr, raddr = r.laddr, r.raddr
    listening = r.status == LISTEN or r.status == UDP_BOUND
    head = (laddr[1] << 2) | ((r.proto is _UDP) << 1) | (not listening)
    key = (head << _ADDR_BITS | _addr_bits(laddr[0], False)) << _ADDR_BITS
    if raddr is not None:
        key |= _addr_bits(raddr[0], True)
        return ((key << 17) | (raddr[1] + 1)) << _PID_BITS
    return key << (17 + _PID_BITS)


def _is_hidden(r: Record) -> int:
    """1 if this socket counts as having no visible owner (see hidden_owner_count)."""
    return 1 if r.pid is None and r.sock is not None and r.status not in OWNERLESS_STATES else 0
