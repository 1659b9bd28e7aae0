"""Socket inode -> owning pid, kept between polls and updated incrementally.

The slow way (psutil, lsof, ``ss -p``) reads every /proc/PID/fd link on every look. Here the map is
kept; a poll walks /proc/PID/fd only when some socket's inode is not known yet, and then walks the
likeliest owners first and stops as soon as every unknown inode is found:

1. the process that owns another socket on the same local port (accepted connections, reuseport);
2. processes that did not exist at the last look (a new server);
3. processes whose number of open fds changed since the last look (``stat /proc/PID/fd`` reports
   the count on Linux >= 6.2: a cheap "who opened something" signal; elsewhere it is just 0);
4. processes that gained a socket recently, most recent first;
5. everyone else.

A socket whose owner cannot be seen (another pid namespace, another user's process when
unprivileged) is cached as such: it is retried only against new processes, and against everything
once a minute (a sweep, which also re-checks every known owner), so one hidden owner cannot make
every poll slow. Exited owners are dropped by :meth:`OwnerMap.forget_pids` (the collector learns of
exits from the process cache's pidfds) or when their pid disappears from /proc.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from app.fast.procfs import PROC, fd_count, list_pids, socket_inodes

__all__ = ["PROC", "SWEEP_EVERY", "OwnerMap", "WalkStats", "fd_count", "list_pids", "socket_inodes"]

SWEEP_EVERY = 60.0  # seconds between full walks while some socket has no visible owner


class WalkStats:
    """What the last :meth:`OwnerMap.resolve` did (for tests and the benchmark)."""

    __slots__ = ("pids_walked", "swept", "unknown")

    def __init__(self) -> None:
        self.unknown = 0
        self.pids_walked = 0
        self.swept = False


class OwnerMap:
    """inode -> pid for inet sockets, updated incrementally. One instance per collector."""

    def __init__(self, proc: str = PROC, clock: Callable[[], float] = time.monotonic) -> None:
        self.proc = proc
        self.clock = clock
        self.owner: dict[int, int] = {}  # inode -> pid
        self.negative: dict[int, float] = {}  # inode -> when it was first missed
        self._held: dict[int, set[int]] = {}  # pid -> the inodes assigned to it
        self._seen: set[int] = set()  # pids at the last /proc listing
        self._fds: dict[int, int] = {}  # pid -> open fd count at the last stat pass
        self._port_hint: dict[int, int] = {}  # local port -> last pid found owning a socket on it
        self._active: dict[int, float] = {}  # pid -> when it last gained a socket
        self._last_sweep = float("-inf")
        self.stats = WalkStats()
        self.changed: set[int] = set()  # inodes whose owner was set or dropped since take_changed()

    def take_changed(self) -> set[int]:
        changed, self.changed = self.changed, set()
        return changed

    def owner_pids(self) -> set[int]:
        """Every pid that owns at least one known socket."""
        return {pid for pid, held in self._held.items() if held}

    # -- bookkeeping -------------------------------------------------------------------------

    def forget_pids(self, pids: Iterable[int]) -> None:
        """These processes exited (or their pid now names another process): forget what they held."""
        owner = self.owner
        for pid in pids:
            for ino in self._held.pop(pid, ()):
                if owner.get(ino) == pid:
                    del owner[ino]
                    self.changed.add(ino)
            self._seen.discard(pid)  # if the number comes back it is a new process
            self._fds.pop(pid, None)
            self._active.pop(pid, None)

    def _assign(self, ino: int, pid: int, port: int, now: float | None) -> None:
        self.owner[ino] = pid
        self.changed.add(ino)
        self._held.setdefault(pid, set()).add(ino)
        self._port_hint[port] = pid
        if now is not None:
            self._active[pid] = now
        self.negative.pop(ino, None)

    def _prune(self, wanted: dict[int, int]) -> None:
        self.drop_inodes(self.owner.keys() - wanted.keys())
        if self.negative:
            for ino in self.negative.keys() - wanted.keys():
                del self.negative[ino]

    def drop_inodes(self, inodes: Iterable[int]) -> None:
        """These sockets closed."""
        owner = self.owner
        for ino in inodes:
            pid = owner.pop(ino, None)
            self.negative.pop(ino, None)
            if pid is not None:
                held = self._held.get(pid)
                if held is not None:
                    held.discard(ino)

    # -- the walk ----------------------------------------------------------------------------

    def resolve(self, wanted: dict[int, int], *, prune: bool = True) -> dict[int, int]:
        """Make sure every inode of ``wanted`` (inode -> local port) that has a visible owner is in
        the returned map. ``prune``: ``wanted`` is every socket on the host, so inodes not in it
        have closed and are dropped (False for a port-filtered look, or when the caller already
        reported closed sockets with :meth:`drop_inodes`)."""
        self.stats = stats = WalkStats()
        if prune:
            self._prune(wanted)
        unknown = wanted.keys() - self.owner.keys()
        stats.unknown = len(unknown)
        if not unknown:
            return self.owner
        now = self.clock()
        pids = list_pids(self.proc)
        cold = not self._seen
        new_pids = pids - self._seen
        self.forget_pids(self._seen - pids)
        self._seen = pids
        fresh = unknown - self.negative.keys()
        if not cold and self.negative and now - self._last_sweep >= SWEEP_EVERY:
            self._sweep(wanted, pids, now)
            return self.owner
        if not fresh:
            # Only owners known to be hidden are missing: try just the processes that are new.
            self._walk(sorted(new_pids, reverse=True), set(unknown), set(), wanted, now)
            return self.owner
        order = self._order(fresh, wanted, pids, new_pids, cold)
        walked_all = self._walk(order, set(fresh), set(new_pids) if self.negative else set(), wanted, now)
        for ino in fresh:
            if ino not in self.owner:
                self.negative.setdefault(ino, now)
        if walked_all:
            self._last_sweep = now
        return self.owner

    def _order(
        self, fresh: set[int], wanted: dict[int, int], pids: set[int], new_pids: set[int], cold: bool
    ) -> list[int]:
        if cold:
            counts = {pid: fd_count(pid, self.proc) for pid in pids}
            self._fds = counts
            return sorted(pids, reverse=True)  # newest first; shared sockets go to the newest, as psutil
        hints = [self._port_hint[p] for p in {wanted[i] for i in fresh} if p in self._port_hint]
        changed: list[int] = []
        counts = {}
        for pid in pids:
            n = fd_count(pid, self.proc)
            counts[pid] = n
            if n != self._fds.get(pid, n):
                changed.append(pid)
        self._fds = counts
        active = sorted(self._active, key=self._active.__getitem__, reverse=True)
        order = dict.fromkeys(hints)
        order.update(dict.fromkeys(sorted(new_pids, reverse=True)))
        order.update(dict.fromkeys(changed))
        order.update(dict.fromkeys(active))
        order.update(dict.fromkeys(sorted(pids, reverse=True)))
        return [pid for pid in order if pid in pids]

    def _walk(
        self, order: list[int], target: set[int], must: set[int], wanted: dict[int, int], now: float
    ) -> bool:
        """Walk ``order`` until every ``target`` inode is found and every ``must`` pid is walked.
        Every wanted inode met on the way is assigned. Returns whether every pid was walked."""
        owner = self.owner
        held = self._held
        negative = self.negative
        port_hint = self._port_hint
        walked = 0
        for pid in order:
            if not target and not must:
                break
            must.discard(pid)
            walked += 1
            inodes = socket_inodes(pid, self.proc)
            if not inodes:
                continue
            # The usual case (cold walk): most of a process's sockets are wanted and unassigned.
            new = [ino for ino in inodes if ino in wanted and ino not in owner]
            if not new:
                continue
            owner.update(dict.fromkeys(new, pid))
            self.changed.update(new)
            mine = held.get(pid)
            if mine is None:
                held[pid] = set(new)
            else:
                mine.update(new)
            port_hint.update((wanted[ino], pid) for ino in new)
            self._active[pid] = now
            if negative:
                for ino in new:
                    negative.pop(ino, None)
            target.difference_update(new)
        self.stats.pids_walked += walked
        return walked == len(order)

    def _sweep(self, wanted: dict[int, int], pids: set[int], now: float) -> None:
        """Walk every process: re-check every known owner and retry every hidden one."""
        self.stats.swept = True
        first: dict[int, int] = {}
        confirmed: set[int] = set()
        owner = self.owner
        for pid in sorted(pids, reverse=True):
            self.stats.pids_walked += 1
            for ino in socket_inodes(pid, self.proc) or ():
                if ino in wanted:
                    first.setdefault(ino, pid)
                    if owner.get(ino) == pid:
                        confirmed.add(ino)
        kept = {ino: owner[ino] for ino in confirmed}
        self.changed.update(owner.keys() - kept.keys())
        self.owner = {}
        self._held = {}
        for ino, pid in first.items():
            self._assign(ino, kept.get(ino, pid), wanted[ino], None)
        self._active = {pid: t for pid, t in self._active.items() if pid in pids}
        for ino in wanted.keys() - self.owner.keys():
            self.negative.setdefault(ino, now)
        self._last_sweep = now
