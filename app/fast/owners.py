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
from itertools import repeat

from app.fast.procfs import (
    PROC,
    children_of,
    fd_count,
    list_pids,
    probe_fd_map,
    read_stat,
    socket_fd_map,
    socket_inodes,
)
from app.holders import primary_holder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from collections.abc import Set as AbstractSet
    from typing import Any

__all__ = [
    "PROC",
    "SWEEP_EVERY",
    "OwnerMap",
    "WalkStats",
    "fd_count",
    "list_pids",
    "primary_holder",
    "socket_inodes",
]

SWEEP_EVERY = 60.0  # seconds between full walks while some socket has no visible owner


class WalkStats:
    """What the last :meth:`OwnerMap.resolve` did (for tests and the benchmark)."""

    __slots__ = (
        "links_read",
        "listed",
        "missed",
        "pids_walked",
        "probed",
        "sought",
        "swept",
        "unknown",
    )

    def __init__(self) -> None:
        self.unknown = 0
        self.pids_walked = 0
        self.swept = False
        self.links_read = 0  # fd links read (readlink calls) by the tables read with track_holders
        self.listed: set[int] = set()  # pids whose fd tables were listed (os.listdir of /proc/PID/fd)
        self.probed: set[int] = set()  # pids whose tables a probe alone brought up to date (no listing)
        self.missed: set[int] = set()  # pids whose probe did not explain the fd count: listed
        self.sought: set[int] = set()  # wanted inodes no table read by the poll's tracking held


class OwnerMap:
    """inode -> pid for inet sockets, updated incrementally. One instance per collector.

    With ``track_holders`` it also knows *every* process holding each socket (a pre-fork master and
    its workers share the listener; a socket passed over SCM_RIGHTS has two holders): each
    process's socket table is read once and read again when the process's open-fd count changes
    (one ``stat`` per process per poll; Linux >= 6.2 reports the count), or when it held a
    socket that closed (its fd number is the one a new socket gets), and at a sweep every
    :data:`SWEEP_EVERY` seconds. Read again, a table is usually not listed at all: a *probe*
    (:func:`probe_fd_map`) reads the links of its fds that are not sockets or held a closed or
    shared socket, then of the fd numbers not in use below its highest and a few above (Linux
    gives a new fd the lowest free one), and is trusted only when that explains the new fd count
    exactly (no more new fds than it explains either) and no shared socket's fd changed;
    otherwise the table is listed, with one ``readlink`` per fd that is new or was not probed
    and is not a socket known to stay, not one per socket fd. Under churn the
    work follows what changed. A wanted socket that no table read this way holds is looked for
    in the same poll: searched for with full reads, the tables probed in this poll first.
    A shared socket that gains a holder has its other holders' fds of it read again (it may
    have left one of them). What reading only changed tables misses until the sweep reads every
    table in full: a process whose fd count is kept while none of its sockets closed for good
    (a socket fd let go and another existing socket received, or a unix socket's number reused)
    holds what it held at its last read; a *new* socket there is still searched for at once.
    A pid whose start time changed is read in full (another process).
    A shared socket's owner is its *primary* holder,
    the one whose parent does not hold it (the master), ties to the lowest pid
    (:func:`primary_holder`)."""

    def __init__(
        self, proc: str = PROC, clock: Callable[[], float] = time.monotonic, *, track_holders: bool = False
    ) -> None:
        self.proc = proc
        self.clock = clock
        self.track_holders = track_holders
        self._tables: dict[int, tuple[int, frozenset[int]]] = {}  # pid -> (fd count when read, inodes)
        # inode -> every pid whose table holds it: the pid itself when there is one (nearly every
        # socket: a set each would cost about 200 bytes a socket), a set of two or more when shared
        self.holders: dict[int, int | set[int]] = {}
        self.shared: set[int] = set()  # inodes held by more than one pid
        self._ppid: dict[int, int] = {}  # pid -> parent pid, read when its table was read
        self._fdmaps: dict[int, dict[str, int]] = {}  # pid -> fd -> socket inode (0: other), as read
        self._started: dict[int, int] = {}  # pid -> its start time (clock ticks) when its map was read
        self._newly_shared: set[int] = set()  # shared inodes that gained a holder in this poll
        self._suspects: dict[int, set[int]] = {}  # pid -> sockets it held that closed since its read
        self._probed: set[int] = set()  # pids whose table a probe alone brought up to date in this poll
        self._lingering: set[int] = set()  # closed sockets kept suspects in this poll (fds still open)
        self._lingered: set[int] = set()  # those of the poll before (not kept again)
        self._last_table_sweep = float("-inf")
        self.owner: dict[int, int] = {}  # inode -> pid
        self.negative: dict[int, float] = {}  # inode -> when it was first missed
        # pid -> how many sockets of ``owner`` it owns (never 0): counts, not a set of inodes per
        # pid (some 40 bytes a socket at 100k); what an exited pid owned is found from its table
        self._owns: dict[int, int] = {}
        self._seen: set[int] = set()  # pids at the last /proc listing
        self._fds: dict[int, int] = {}  # pid -> open fd count at the last stat pass
        self._port_hint: dict[int, int] = {}  # local port -> last pid found owning a socket on it
        self._active: dict[int, float] = {}  # pid -> when it last gained a socket
        self._last_sweep = float("-inf")
        self.stats = WalkStats()
        self.changed: set[int] = set()  # inodes whose owner was set or dropped since take_changed()

    def churned(self) -> tuple[dict[int, Any], ...]:
        """The maps by inode that sockets opening and closing churn (for :class:`app.churn.Churned`)."""
        return (self.owner, self.holders, self.negative)

    def take_changed(self) -> set[int]:
        changed, self.changed = self.changed, set()
        return changed

    def owner_pids(self) -> set[int]:
        """Every pid that owns at least one known socket."""
        return set(self._owns)

    # -- bookkeeping -------------------------------------------------------------------------

    def forget_pids(self, pids: Iterable[int]) -> None:
        """These processes exited (or their pid now names another process): forget what they held."""
        owner = self.owner
        pids = list(pids)
        for pid in pids:
            self._seen.discard(pid)  # if the number comes back it is a new process
            self._fds.pop(pid, None)
            self._active.pop(pid, None)
            table = self._tables.pop(pid, None)
            if table is not None:
                owns = pid in self._owns
                for ino in table[1]:
                    self._unhold(ino, pid)
                    if owns and owner.get(ino) == pid:  # (an owner's sockets are in its table)
                        self._disown(ino)
            self._ppid.pop(pid, None)
            self._fdmaps.pop(pid, None)
            self._started.pop(pid, None)
            self._suspects.pop(pid, None)
        # what no table listed (an owner found another way, no tables kept): one pass for all
        left = {pid for pid in pids if pid in self._owns}
        if left:
            for ino in [i for i, p in owner.items() if p in left]:
                self._disown(ino)

    def _disown(self, ino: int, changed: bool = True) -> None:
        """``ino`` has no owner now; ``changed``: report it (a socket that is still there)."""
        pid = self.owner.pop(ino, None)
        if pid is not None:
            if changed:
                self.changed.add(ino)
            n = self._owns[pid] - 1
            if n:
                self._owns[pid] = n
            else:
                del self._owns[pid]

    def _assign(self, ino: int, pid: int, port: int, now: float | None) -> None:
        old = self.owner.get(ino)
        if old != pid:
            if old is not None:
                self._disown(ino)
            self._owns[pid] = self._owns.get(pid, 0) + 1
        self.owner[ino] = pid
        self.changed.add(ino)
        self._port_hint[port] = pid
        if now is not None:
            self._active[pid] = now
        self.negative.pop(ino, None)

    def _take(self, pid: int, new: list[int], wanted: Mapping[int, int], now: float) -> None:
        """:meth:`_assign` of each of ``new`` (wanted inodes without an owner) to ``pid``, in bulk:
        on a cold walk this runs for every socket."""
        owner = self.owner
        before = len(owner)
        owner.update(dict.fromkeys(new, pid))  # (none of them had an owner)
        self._owns[pid] = self._owns.get(pid, 0) + len(owner) - before
        self.changed.update(new)
        self._port_hint.update(zip(map(wanted.__getitem__, new), repeat(pid)))
        self._active[pid] = now
        negative = self.negative
        if negative:
            for ino in new:
                negative.pop(ino, None)

    def _prune(self, wanted: Mapping[int, int]) -> None:
        self.drop_inodes(self.owner.keys() - wanted.keys())
        if self.negative:
            for ino in self.negative.keys() - wanted.keys():
                del self.negative[ino]

    def drop_inodes(self, inodes: Iterable[int]) -> None:
        """These sockets closed."""
        holders = self.holders
        for ino in inodes:
            self._disown(ino, changed=False)
            self.negative.pop(ino, None)
            if holders:
                pids = holders.pop(ino, None)
                if pids:
                    for holder in _pids(pids):  # its fd there is the likeliest to be reused
                        self._suspects.setdefault(holder, set()).add(ino)
                self.shared.discard(ino)

    # -- every holder ------------------------------------------------------------------------

    def _hold(self, ino: int, pid: int) -> None:
        pids = self.holders.get(ino)
        if pids is None:
            self.holders[ino] = pid
        elif isinstance(pids, int):
            if pids != pid:
                self.holders[ino] = {pids, pid}
                self.shared.add(ino)
                self._newly_shared.add(ino)
        elif pid not in pids:
            pids.add(pid)
            if len(pids) >= 2:
                self.shared.add(ino)
                self._newly_shared.add(ino)  # (a third holder too: it may have left another)

    def _unhold(self, ino: int, pid: int) -> None:
        pids = self.holders.get(ino)
        if pids is None:
            return
        if isinstance(pids, int):
            if pids == pid:
                del self.holders[ino]
            return
        pids.discard(pid)
        if len(pids) < 2:
            self.shared.discard(ino)
            if pids:
                self.holders[ino] = next(iter(pids))
            else:
                del self.holders[ino]

    def _read_table(
        self,
        pid: int,
        count: int,
        recheck: set[int] | None = None,
        watch: AbstractSet[int] = frozenset(),
        probe: bool = False,
    ) -> list[int] | None:
        """Read ``pid``'s socket table (``count``: its fd count, read *before*, so a change made
        while reading shows as a changed count next time) and record every socket it holds.
        With ``recheck`` (track_holders: the sockets it held that closed) the table read before
        is updated instead: its fds known as sockets not in ``recheck`` or ``watch`` (shared
        sockets) are not read again (:func:`socket_fd_map`). With ``probe`` too, it is updated
        without listing it when :func:`probe_fd_map` explains ``count``; otherwise it is listed
        (reading no link the probe read)."""
        st = None
        inodes: list[int] | None = None
        stats = self.stats
        if self.track_holders:
            st = read_stat(pid, self.proc)
            if recheck is not None and (st is None or self._started.get(pid) != st.start_ticks):
                # The pid names another process now (the old one held no socket we watched, so
                # nothing said it exited): what the old one held is not this one's. A full read.
                self.forget_pids([pid])
                self._seen.add(pid)
                recheck = None
            previous = self._fdmaps.get(pid) if recheck is not None else None
            got: tuple[dict[str, int], int] | None = None
            touched: set[int] | None = None  # after a trusted probe: the sockets of the fds it read
            fresh: set[str] | None = None
            if probe and previous is not None and recheck is not None:
                probed = probe_fd_map(pid, count, previous, recheck, watch, self.proc)
                if probed is not None:
                    fdmap, read, fresh, trusted = probed
                    stats.links_read += read
                    if trusted:
                        stats.probed.add(pid)
                        self._probed.add(pid)
                        got = fdmap, 0
                        # only the fds it read can hold a socket this table did not hold
                        touched = {fdmap[name] for name in fresh}
                        touched.discard(0)
                    else:  # not explained: list it, with what the probe read
                        stats.missed.add(pid)
                        previous = fdmap
            if got is None:
                stats.listed.add(pid)
                again = (recheck | watch) if recheck else watch
                got = socket_fd_map(pid, self.proc, previous, again, fresh or (), self._fdmaps.get(pid))
                self._probed.discard(pid)
            if got is None:
                self._fdmaps.pop(pid, None)
                return None
            fdmap, read = got
            stats.links_read += read
            if fdmap and st is not None:
                self._fdmaps[pid] = fdmap
                self._started[pid] = st.start_ticks
                inodes = [ino for ino in fdmap.values() if ino] if touched is None else list(touched)
            else:  # empty or unreadable: maybe a zombie leader whose threads hold the table
                touched = None
                self._fdmaps.pop(pid, None)
                self._started.pop(pid, None)
        if inodes is None:
            stats.listed.add(pid)
            inodes = socket_inodes(pid, self.proc)
            if inodes is None:
                return None
        if self.track_holders:
            if touched is None:
                new = frozenset(inodes)
            else:  # (a probe: the whole table's sockets, but only the fds it read looked at)
                new = frozenset(self._fdmaps[pid].values()) - _NOT_A_SOCKET
            if recheck:
                # A socket that closed but whose fd is still open here (a connection reset by
                # its peer, not yet closed by this process): its number is still the likeliest
                # to be reused, so it stays a suspect for one more poll (not for ever: a process
                # that never closes it would be probed every poll).
                still = recheck.intersection(new)
                again = still - self._lingered if still else still
                if again:
                    self._suspects.setdefault(pid, set()).update(again)
                    self._lingering.update(again)
            old = self._tables.get(pid)
            self._tables[pid] = (count, new)
            if old is not None:
                for ino in old[1] - new:  # closed here (maybe still open in another process)
                    self._unhold(ino, pid)
                    if self.owner.get(ino) == pid:
                        self._disown(ino)
                holders = self.holders
                # (not only new - old: a socket dropped while held may be back; after a probe,
                # the sockets of the fds it read, closed sockets' among them)
                for ino in new if touched is None else touched:
                    pids = holders.get(ino)
                    if pids is None or (pids != pid if isinstance(pids, int) else pid not in pids):
                        self._hold(ino, pid)
            else:  # a table read for the first time (all of them, on a cold poll): in bulk
                holders = self.holders
                known = holders.keys() & new
                for ino in known:  # held by another process too
                    self._hold(ino, pid)
                if len(known) < len(new):
                    holders.update(dict.fromkeys([ino for ino in new if ino not in known], pid))
            if st is None:
                st = read_stat(pid, self.proc)
            if st is not None:
                self._ppid[pid] = st.ppid
        return inodes

    def holders_of(self, ino: int) -> tuple[int, ...]:
        """Every pid holding ``ino``, the primary holder first, the others by pid."""
        pids = self.holders.get(ino)
        if not pids:
            pid = self.owner.get(ino)
            return () if pid is None else (pid,)
        if isinstance(pids, int):
            return (pids,)
        first = primary_holder(pids, self._ppid)
        return (first, *sorted(p for p in pids if p != first))

    def shared_holders(self, wanted: Iterable[int] | None = None) -> dict[int, tuple[int, ...]]:
        """inode -> every holder (primary first), for the sockets held by more than one process."""
        inodes = self.shared if wanted is None else self.shared.intersection(wanted)
        return {ino: self.holders_of(ino) for ino in inodes}

    def _track(self, wanted: Mapping[int, int], pids: set[int], now: float) -> None:
        """Bring every readable process's socket table up to date: read the tables of new
        processes, of those whose fd count changed and of those that held a socket that closed
        (only what changed in those, by a probe where it explains the count: :meth:`_read_table`);
        assign owners found on the way, and make each shared socket's owner its primary holder."""
        tables = self._tables
        owner = self.owner
        has = wanted.keys()  # (membership in C, for a view of the records too)
        stats = self.stats
        # Where the kernel reports no fd count (before Linux 6.2, or a process without fds) a
        # table is read again only at a sweep.
        sweep = now - self._last_table_sweep >= SWEEP_EVERY
        suspects, self._suspects = self._suspects, {}
        self._newly_shared = set()
        self._probed = set()
        self._lingered, self._lingering = self._lingering, set()
        read_in_full: set[int] = set()
        for pid in pids:
            n = fd_count(pid, self.proc)
            table = tables.get(pid)
            closed = suspects.get(pid)
            if table is None or sweep:
                inodes = self._read_table(pid, n)
                read_in_full.add(pid)
            elif closed is not None or (n > 0 and n != table[0]):
                # Its fds of closed sockets (the numbers reused first) and of shared ones (a copy
                # closed here while another holder keeps the socket: the number may now be a file),
                # probed when the kernel reports the count.
                watch = self.shared.intersection(table[1]) if self.shared else frozenset()
                inodes = self._read_table(pid, n, closed or set(), watch, n > 0)
            else:
                continue
            stats.pids_walked += 1
            if not inodes:
                continue
            new = [ino for ino in inodes if ino in has and ino not in owner]
            if new:
                self._take(pid, new, wanted, now)
        if sweep:
            self._last_table_sweep = now
        # A socket that gained a holder in this poll (a fork, SCM_RIGHTS) may have left another
        # whose table was trusted earlier in the loop (or not read: its count kept): read their fds
        # of it again.
        # Those reads may find more (a process that let one socket go and received another, its
        # count kept): a few rounds, each only for what the one before found.
        done: set[tuple[int, int]] = set()
        for _ in range(4):
            newly, self._newly_shared = self._newly_shared, set()
            again: dict[int, set[int]] = {}
            for ino in newly:
                for pid in _pids(self.holders.get(ino)):
                    if pid not in read_in_full and pid in tables and (pid, ino) not in done:
                        done.add((pid, ino))
                        again.setdefault(pid, set()).add(ino)
            if not again:
                break
            for pid, inodes_again in again.items():
                count = tables[pid][0]
                self._read_table(pid, count, set(), inodes_again, count > 0)
                stats.pids_walked += 1
        self._settle(wanted, now)

    def _settle(self, wanted: Mapping[int, int], now: float) -> None:
        """Owners from the holders: a wanted socket in a table read earlier gets its primary
        holder, and each shared socket's owner is its primary holder."""
        owner = self.owner
        for ino in wanted.keys() - owner.keys():  # in a table read earlier (made before the dump)
            holding = self.holders.get(ino)
            if holding:
                first = holding if isinstance(holding, int) else primary_holder(holding, self._ppid)
                self._assign(ino, first, wanted[ino], now)
        for ino in self.shared.intersection(wanted):
            first = primary_holder(_pids(self.holders[ino]), self._ppid)
            if owner.get(ino) != first:
                self._assign(ino, first, wanted[ino], None)

    # -- a one-shot full read (list) ---------------------------------------------------------

    def read_once(self, wanted: dict[int, int]) -> dict[int, int]:
        """The owner of every socket of ``wanted`` (inode -> local port) and every holder of the
        shared ones, from one read of every process's socket table: for a one-shot look
        (``list``) that never polls again. Owners and holders are what a first :meth:`resolve`
        with ``track_holders`` finds (a shared socket's owner its primary holder; :attr:`holders`
        and :attr:`shared` for the shared sockets; the holders' parents), without what only later
        polls use: no fd maps, start times, tables, fd counts, negative entries, a holder set per
        socket or an owner's set of sockets, and a parent read only for a shared socket's holders.

        Returns (and keeps as :attr:`owner`) inode -> owner for the sockets of ``wanted`` that
        have a visible owner, and also for other sockets the tables hold (unix, netlink: each
        table is taken in bulk, not looked at inode by inode): look it up by the inodes asked
        about. :meth:`owner_pids` is not kept. Call it on a new map: the one-shot collector
        makes one per collect."""
        self.stats = stats = WalkStats()
        proc = self.proc
        owner: dict[int, int] = {}  # socket inode -> the first pid found holding it
        shared: dict[int, set[int]] = {}  # a wanted inode held by several pids -> all of them
        for pid in list_pids(proc):
            inodes = socket_inodes(pid, proc)
            stats.pids_walked += 1
            if not inodes:
                continue
            mine = dict.fromkeys(inodes, pid)  # (a dup()ed fd counts once)
            if not owner.keys().isdisjoint(mine.keys()):  # held by a process read before too
                for ino in mine.keys() & owner.keys():
                    if ino in wanted:
                        holding = shared.get(ino)
                        if holding is None:
                            shared[ino] = {owner[ino], pid}
                        else:
                            holding.add(pid)
                    del mine[ino]  # (the first holder keeps it until the primary is known)
            owner.update(mine)
        ppid = self._ppid
        for pid in {p for pids in shared.values() for p in pids}:
            st = read_stat(pid, proc)
            if st is not None:
                ppid[pid] = st.ppid
        for ino, pids in shared.items():
            owner[ino] = primary_holder(pids, ppid)
        self.owner = owner
        self.holders = dict(shared)  # (only shared sockets: each a set, as holders keeps them)
        self.shared = set(shared)
        return owner

    # -- a one-shot search (who PORT) ---------------------------------------------------------

    def search(self, wanted: dict[int, int], first: Iterable[int] = ()) -> dict[int, int]:
        """Every holder of the few sockets of ``wanted`` (inode -> local port) without reading
        every process's fd table: for a one-shot look (``who PORT``) that never polls again.

        1. Walk processes, ``first`` (hints: the verified owner cache) then newest first, and stop
           as soon as every inode has a holder (each table read once; a table that holds none
           of them costs no bookkeeping).
        2. Complete the holders from the finders' process trees, where the other holders of a
           shared socket live (a pre-fork server's workers, a child that inherited it, a parent
           that handed it over): read the finder's ancestors' tables, take as root the highest
           ancestor that holds one of the sockets (else the finder), and read the tables of all
           the roots' descendants (``/proc/PID/task/*/children``, else every process's parent).
        A holder outside those trees is not found: a process that received the socket over
        SCM_RIGHTS from an unrelated one, or one reparented away from the tree (its
        intermediate parent exited). :meth:`resolve`'s full walk finds those too.

        Fills :attr:`owner` (the primary holder, as the full walk picks it), :attr:`holders`,
        :attr:`shared` for these inodes; returns :attr:`owner`."""
        self.stats = stats = WalkStats()
        proc = self.proc
        pids = list_pids(proc)
        targets = set(wanted)
        stats.unknown = len(targets)
        held: dict[int, set[int]] = {}  # pid -> the wanted inodes its table holds
        walked: set[int] = set()

        def read(pid: int) -> set[int]:
            walked.add(pid)
            inodes = socket_inodes(pid, proc)
            hit = targets.intersection(inodes) if inodes else set()
            if hit:
                held[pid] = hit
            return hit

        hints = [p for p in dict.fromkeys(first) if p in pids]
        remaining = set(targets)
        for pid in (*hints, *sorted(pids.difference(hints), reverse=True)):
            if not remaining:
                break
            remaining.difference_update(read(pid))
        ppid: dict[int, int] = {}
        if held:
            roots = set()
            for finder in list(held):
                root = cur = finder
                chain = {finder}
                while True:  # every ancestor: the highest one that holds a socket is the root
                    if cur not in ppid:
                        st = read_stat(cur, proc)
                        if st is None:
                            break
                        ppid[cur] = st.ppid
                    parent = ppid[cur]
                    if parent <= 0 or parent in chain or parent not in pids:
                        break
                    chain.add(parent)
                    if held.get(parent) if parent in walked else read(parent):
                        root = parent
                    cur = parent
                roots.add(root)
            for pid in _descendants(roots, pids, proc):
                if pid not in walked:
                    read(pid)
            for pid in held:
                if pid not in ppid:
                    st = read_stat(pid, proc)
                    if st is not None:
                        ppid[pid] = st.ppid
        stats.pids_walked = len(walked)
        by_inode: dict[int, set[int]] = {}
        for pid, inodes in held.items():
            for ino in inodes:
                by_inode.setdefault(ino, set()).add(pid)
        self._ppid.update(ppid)
        for ino, holders in by_inode.items():
            self.holders[ino] = holders if len(holders) > 1 else next(iter(holders))
            if len(holders) > 1:
                self.shared.add(ino)
            self._assign(ino, primary_holder(holders, ppid), wanted[ino], None)
        return self.owner

    # -- the walk ----------------------------------------------------------------------------

    def resolve(self, wanted: Mapping[int, int], *, prune: bool = True) -> dict[int, int]:
        """Make sure every inode of ``wanted`` (inode -> local port) that has a visible owner is in
        the returned map. ``prune``: ``wanted`` is every socket on the host, so inodes not in it
        have closed and are dropped (False for a port-filtered look, or when the caller already
        reported closed sockets with :meth:`drop_inodes`)."""
        self.stats = stats = WalkStats()
        if prune:
            self._prune(wanted)
        if self.track_holders:
            now = self.clock()
            pids = list_pids(self.proc)
            cold = not self._seen
            self.forget_pids(self._seen - pids)
            self._seen = pids
            self._track(wanted, pids, now)
            unknown = wanted.keys() - self.owner.keys()
            stats.unknown = len(unknown)
            fresh = unknown - self.negative.keys()
            if fresh and not cold:
                # A new socket in a process whose fd count did not change (it closed one fd and
                # opened another between two polls), or at a number no probe read: search with
                # full reads, likeliest owners first, then the tables probes brought up to date.
                stats.sought = fresh
                order = self._order(fresh, wanted, pids, set(), False)
                if self._probed:
                    hints = {self._port_hint.get(wanted[ino]) for ino in fresh}
                    probed = sorted(self._probed, key=lambda pid: pid not in hints)
                    order = list(dict.fromkeys([*(p for p in order if p in hints), *probed, *order]))
                self._walk(order, set(fresh), set(), wanted, now)
                self._settle(wanted, now)  # (a full read may have taken an owner's socket away)
            for ino in wanted.keys() - self.owner.keys():  # in no readable table: hidden
                self.negative.setdefault(ino, now)
            if cold:
                self._last_sweep = now
            return self.owner
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
        self, fresh: set[int], wanted: Mapping[int, int], pids: set[int], new_pids: set[int], cold: bool
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
        self, order: list[int], target: set[int], must: set[int], wanted: Mapping[int, int], now: float
    ) -> bool:
        """Walk ``order`` until every ``target`` inode is found and every ``must`` pid is walked.
        Every wanted inode met on the way is assigned. Returns whether every pid was walked."""
        owner = self.owner
        has = wanted.keys()
        walked = 0
        for pid in order:
            if not target and not must:
                break
            must.discard(pid)
            walked += 1
            inodes = self._read_table(pid, self._fds.get(pid, -1))
            if not inodes:
                continue
            # The usual case (cold walk): most of a process's sockets are wanted and unassigned.
            new = [ino for ino in inodes if ino in has and ino not in owner]
            if not new:
                continue
            self._take(pid, new, wanted, now)
            target.difference_update(new)
        self.stats.pids_walked += walked
        return walked == len(order)

    def _sweep(self, wanted: Mapping[int, int], pids: set[int], now: float) -> None:
        """Walk every process: re-check every known owner and retry every hidden one."""
        self.stats.swept = True
        first: dict[int, int] = {}
        confirmed: set[int] = set()
        owner = self.owner
        has = wanted.keys()
        for pid in sorted(pids, reverse=True):
            self.stats.pids_walked += 1
            for ino in self._read_table(pid, self._fds.get(pid, -1)) or ():
                if ino in has:
                    first.setdefault(ino, pid)
                    if owner.get(ino) == pid:
                        confirmed.add(ino)
        kept = {ino: owner[ino] for ino in confirmed}
        self.changed.update(owner.keys() - kept.keys())
        self.owner = {}
        self._owns = {}
        for ino, pid in first.items():
            self._assign(ino, kept.get(ino, pid), wanted[ino], None)
        self._active = {pid: t for pid, t in self._active.items() if pid in pids}
        for ino in wanted.keys() - self.owner.keys():
            self.negative.setdefault(ino, now)
        self._last_sweep = now


_NOT_A_SOCKET = frozenset((0,))


def _pids(held: int | set[int] | None) -> Iterable[int]:
    """The pids of a :attr:`OwnerMap.holders` value (one pid, or a set of them when shared)."""
    if held is None:
        return ()
    return (held,) if isinstance(held, int) else held


def _descendants(roots: set[int], pids: set[int], proc: str = PROC) -> list[int]:
    """Every descendant of ``roots`` (not the roots), from each task's ``children`` file; where
    the kernel has none (CONFIG_PROC_CHILDREN off) from every process's parent pid."""
    out: list[int] = []
    seen = set(roots)
    todo = list(roots)
    while todo:
        pid = todo.pop()
        kids = children_of(pid, proc)
        if kids is None:
            return _descendants_by_parent(roots, pids, proc)
        for kid in kids:
            if kid not in seen:
                seen.add(kid)
                out.append(kid)
                todo.append(kid)
    return out


def _descendants_by_parent(roots: set[int], pids: set[int], proc: str = PROC) -> list[int]:
    kids: dict[int, list[int]] = {}
    for pid in pids:
        st = read_stat(pid, proc)
        if st is not None:
            kids.setdefault(st.ppid, []).append(pid)
    out: list[int] = []
    seen = set(roots)
    todo = list(roots)
    while todo:
        for kid in kids.get(todo.pop(), ()):
            if kid not in seen:
                seen.add(kid)
                out.append(kid)
                todo.append(kid)
    return out
