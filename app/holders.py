"""Every process that holds a socket, and which of them is the one to stop.

A socket is a kernel object that any number of processes can hold: a pre-fork server (nginx,
postgres, gunicorn) binds in the master and forks workers that keep the listener; a socket can be
passed over SCM_RIGHTS. ``ss -p`` lists them all; so does :func:`socket_holders`, from
``/proc/PID/fd``.

One trap: when a thread-group leader calls the thread-exit syscall while other threads go on, the
leader stays a zombie whose ``/proc/PID/fd`` is empty, yet the process still holds every fd (the
table is shared by the live threads). Then ``/proc/PID/task/TID/fd`` of a live thread is read.

:func:`primary_owner` picks the master: the holder whose parent does not hold the socket (its
workers' parent does), ties to the lowest pid. Signalling it lets the master stop its own
workers; signalling a worker only makes the master start another.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

PROC = "/proc"
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _fd_links(path: str) -> list[str] | None:
    """Every link target under an fd directory; ``None`` if it cannot be read (gone, denied)."""
    try:
        dfd = os.open(path, _DIR_FLAGS)
    except OSError:
        return None
    try:
        out = []
        for name in os.listdir(dfd):
            try:
                out.append(os.readlink(name, dir_fd=dfd))
            except OSError:  # closed meanwhile
                continue
        return out
    except OSError:
        return None
    finally:
        os.close(dfd)


def _sockets(links: Iterable[str]) -> set[int]:
    out = set()
    for link in links:
        if link.startswith("socket:[") and link.endswith("]"):
            try:
                out.add(int(link[8:-1]))
            except ValueError:
                continue
    return out


def process_sockets(pid: int, proc: str = PROC) -> set[int] | None:
    """The socket inodes ``pid`` holds; ``None`` if it is gone or unreadable. A zombie leader's
    empty fd table is looked through to its live threads' (the table they share)."""
    links = _fd_links(f"{proc}/{pid}/fd")
    if links is None:
        return None  # gone, or another user's (a zombie leader's table reads as empty, not denied)
    if links:
        return _sockets(links)
    try:
        tids = [t for t in os.listdir(f"{proc}/{pid}/task") if t.isdigit() and t != str(pid)]
    except OSError:
        return set()
    for tid in sorted(tids, key=int):
        task_links = _fd_links(f"{proc}/{pid}/task/{tid}/fd")
        if task_links:
            return _sockets(task_links)
    return set()


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
    if pids is None:
        try:
            candidates = sorted(int(n) for n in os.listdir(proc) if n.isdigit())
        except OSError:
            return out
    else:
        candidates = sorted(set(pids))
    for pid in candidates:
        held = process_sockets(pid, proc)
        if not held:
            continue
        for inode in held & wanted:
            out.setdefault(inode, []).append(pid)
    return out


def read_ppid(pid: int, proc: str = PROC) -> int | None:
    """The parent pid from /proc/PID/stat (``None`` if gone). The comm field may hold spaces and
    parentheses, so the fields are counted from the last ``)``."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read(4096)
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def primary_owner(holders: Iterable[int], ppid_of: Callable[[int], int | None] = read_ppid) -> int | None:
    """The master among a socket's holders: the one whose parent does not hold it; ties (several
    unrelated holders) go to the lowest pid. ``None`` for no holders."""
    pids = sorted(set(holders))
    if not pids:
        return None
    held = set(pids)
    for pid in pids:
        if ppid_of(pid) not in held:
            return pid
    return pids[0]  # every parent holds it too (only with pid reuse races): the lowest


def ordered_holders(holders: Iterable[int], ppid_of: Callable[[int], int | None] = read_ppid) -> list[int]:
    """The holders with the primary owner first, then the others by pid (the order to show)."""
    pids = sorted(set(holders))
    first = primary_owner(pids, ppid_of)
    return [first, *(p for p in pids if p != first)] if first is not None else []
