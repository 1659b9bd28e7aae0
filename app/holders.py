"""Every process that holds a socket, and which of them is the one to stop.

A socket is a kernel object that any number of processes can hold: a pre-fork server (nginx,
postgres, gunicorn) binds in the master and forks workers that keep the listener; a socket can be
passed over SCM_RIGHTS. ``ss -p`` lists them all; so does :func:`socket_holders`, from
``/proc/PID/fd`` (read by :mod:`app.fast.procfs`, the one place portscope parses /proc, which
also looks through a zombie thread-group leader's empty table to its live threads').

:func:`primary_owner` picks the master: the holder whose parent does not hold the socket (its
workers' parent does), ties to the lowest pid. Signalling it lets the master stop its own
workers; signalling a worker only makes the master start another. The Linux collector uses the
same rule (:func:`primary_holder`) for every shared socket it lists.
"""

from __future__ import annotations

from app.fast import procfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

PROC = procfs.PROC


def process_sockets(pid: int, proc: str = PROC) -> set[int] | None:
    """The socket inodes ``pid`` holds; ``None`` if it is gone or unreadable."""
    inodes = procfs.socket_inodes(pid, proc)
    return None if inodes is None else set(inodes)


def socket_holders(
    inodes: Iterable[int], proc: str = PROC, pids: Iterable[int] | None = None
) -> dict[int, list[int]]:
    """Every pid holding each socket inode: ``{inode: [pid, ...]}`` (pids ascending; inodes held by
    no visible process are absent). Reads every process's fd table (or only ``pids`` when given);
    processes that cannot be read (other users', without root) are skipped."""
    wanted = {i for i in inodes if i}
    out: dict[int, list[int]] = {}
    if not wanted:
        return out
    candidates = sorted(procfs.list_pids(proc) if pids is None else set(pids))
    for pid in candidates:
        for inode in set(procfs.socket_inodes(pid, proc) or ()) & wanted:
            out.setdefault(inode, []).append(pid)
    return out


def read_ppid(pid: int, proc: str = PROC) -> int | None:
    """The parent pid (``None`` if gone)."""
    st = procfs.read_stat(pid, proc)
    return None if st is None else st.ppid


def primary_holder(pids: Iterable[int], ppid: Mapping[int, int]) -> int:
    """The primary holder of a shared socket: a holder whose parent does not hold it (a pre-fork
    master, not its workers); ties (several such, or a cycle) go to the lowest pid."""
    held = set(pids)
    roots = [p for p in held if ppid.get(p) not in held]
    return min(roots) if roots else min(held)


def primary_owner(holders: Iterable[int], ppid_of: Callable[[int], int | None] = read_ppid) -> int | None:
    """:func:`primary_holder`, reading each holder's parent; ``None`` for no holders."""
    held = set(holders)
    if not held:
        return None
    parents = {p: parent for p in held if (parent := ppid_of(p)) is not None}
    return primary_holder(held, parents)


def ordered_holders(holders: Iterable[int], ppid_of: Callable[[int], int | None] = read_ppid) -> list[int]:
    """The holders with the primary owner first, then the others by pid (the order to show)."""
    pids = sorted(set(holders))
    first = primary_owner(pids, ppid_of)
    return [first, *(p for p in pids if p != first)] if first is not None else []
