"""Everything portscope reads from /proc about processes, in one place (Linux).

Used by the Linux backend's owner map, by the process cache's identity checks and by the kill flow.
Functions return ``None`` (or an empty result) for a process that is gone or unreadable instead of
raising: a process can exit between any two reads.

A thread-group leader that called ``pthread_exit`` while other threads run is a zombie *task*, but
its process lives on: its fd table belongs to the remaining threads, so /proc/PID/fd reads empty
while /proc/PID/task/TID/fd still lists every socket. :func:`socket_inodes` looks there when the
leader's own table is empty, and :func:`read_stat` reports the live thread count, so such a
process is neither taken for dead nor left without its sockets.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # on the CLI's start-up path: no typing at run time
if TYPE_CHECKING:
    from collections.abc import Container, Iterable, Mapping
    from typing import NamedTuple
else:
    from app.lite import NamedTuple

PROC = "/proc"
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def list_pids(proc: str = PROC) -> set[int]:
    try:
        names = os.listdir(proc)
    except OSError:
        return set()
    return {int(n) for n in names if n.isdigit()}


def _read_links(dfd: int, names: list[str]) -> tuple[list[str], list[str]] | None:
    """The link targets of the fds ``names`` of the fd directory ``dfd``, with the names they
    belong to (an fd that closed meanwhile is skipped); ``None`` when no link is readable (listed
    but no ptrace access: none will be, so not one failing readlink per fd)."""
    readlink = os.readlink
    try:
        return names, [readlink(name, dir_fd=dfd) for name in names]
    except PermissionError:
        return None
    except OSError:  # an fd closed meanwhile: go one by one, skipping the ones that vanish
        read: list[str] = []
        links: list[str] = []
        for name in names:
            try:
                links.append(readlink(name, dir_fd=dfd))
            except OSError:
                continue
            read.append(name)
        return read, links


def _fd_links(path: str) -> tuple[list[str], list[str]] | None:
    """The fds ``path`` (a /proc fd directory) lists, and the link targets of those whose link is
    readable; ``None`` if the directory is unreadable."""
    try:
        dfd = os.open(path, _DIR_FLAGS)
    except OSError:
        return None
    try:
        names = os.listdir(dfd)
        got = _read_links(dfd, names)
    except OSError:
        return None
    finally:
        os.close(dfd)
    return names, [] if got is None else got[1]  # no link readable: an empty table


def socket_inodes(pid: int, proc: str = PROC) -> list[int] | None:
    """The inodes of every socket ``pid`` holds open; ``None`` if it is gone or unreadable.

    The fd table is the whole process's, but reading it goes through one thread, with that
    thread's credentials. When the leader's table lists no fd (a zombie leader whose threads live
    on) or lists fds whose links it may not read (ptrace access: the leader has capabilities the
    reader lacks, which another thread may have dropped), another thread's table is read. Which
    thread lets the reader in is tried with one ``readlink`` each, not a listing of the table per
    thread (pid 1 here has 15 threads of 260 fds). A process with a single task (every kernel
    thread) costs one listdir."""
    got = _fd_links(f"{proc}/{pid}/fd")
    if got is None:
        return None
    names, links = got
    if not links:
        try:
            tasks = os.listdir(f"{proc}/{pid}/task")
        except OSError:
            tasks = []
        for tid in tasks if len(tasks) > 1 else ():
            if tid == str(pid):
                continue
            fd_dir = f"{proc}/{pid}/task/{tid}/fd"
            if names:  # the same table: one link says whether this thread lets us read it
                try:
                    os.readlink(f"{fd_dir}/{names[0]}")
                except PermissionError:
                    continue
                except OSError:
                    pass  # (that fd closed meanwhile: read the table)
            again = _fd_links(fd_dir)
            if again is not None and again[1]:
                links = again[1]
                break
    return [int(link[8:-1]) for link in links if link[:8] == "socket:["]


def socket_fd_map(
    pid: int,
    proc: str = PROC,
    known: dict[str, int] | None = None,
    recheck: Container[int] = (),
    fresh: Container[str] = (),
    reuse: Mapping[str, int] | None = None,
) -> tuple[dict[str, int], int] | None:
    """``pid``'s fd table as fd -> socket inode (0: not a socket), and how many links were read;
    ``None`` if it is gone or unreadable (an empty map when the links cannot be read).

    With ``known`` (the map of an earlier read) the fds known as sockets not in ``recheck``
    (sockets that closed, or that another holder keeps: their numbers are the ones reused) keep
    what ``known`` says; every other fd's link is read again (new fds, files: a process with
    many sockets has few of those). The listing is always read, so closed fds always go. A socket
    fd closed and its number reused for another socket while the first stays open (and not
    known to be shared) is missed: callers read the table in full when a socket cannot be found
    that way, and now and then anyway. ``fresh``: fds of ``known`` whose links were just read
    (by :func:`probe_fd_map`), kept as they are, sockets or not. Unlike :func:`socket_inodes`
    this reads the leader's table only. ``reuse``: an earlier map of the table whose inode numbers
    are handed back (the same objects) where an fd still names the same socket: the map of a
    full read would otherwise keep a second copy of every number while the callers' maps keep
    the first (some 3 MB at 100k sockets, read again every minute)."""
    try:
        dfd = os.open(f"{proc}/{pid}/fd", _DIR_FLAGS)
    except OSError:
        return None
    try:
        try:
            names = os.listdir(dfd)
        except OSError:
            return None
        kept: dict[str, int] = {}
        if known is None:
            todo = names
        else:  # trusted: fds known as sockets that did not close (a file's number may be reused)
            get = known.get
            kept = {n: ino for n in names if (ino := get(n)) and ino not in recheck}
            if fresh:
                kept.update({n: known[n] for n in names if n in fresh and n in known})
            todo = [n for n in names if n not in kept]
        links = _read_links(dfd, todo)
        if links is None:
            return {}, 0
        got = {n: int(link[8:-1]) if link[:8] == "socket:[" else 0 for n, link in zip(*links, strict=True)}
        if reuse:
            same = reuse.get
            got = {n: old if (old := same(n)) == ino else ino for n, ino in got.items()}
        if kept:
            got.update(kept)  # (an fd whose link could not be read has closed: it is not kept)
        return got, len(todo)
    finally:
        os.close(dfd)


PROBE_SPARE = 2  # unused fd numbers above the highest known a probe may find before it stops
PROBE_NEW = 64  # at most this many new fds (and unused numbers below the highest) are probed


def probe_fd_map(
    pid: int,
    count: int,
    known: dict[str, int],
    reused: Container[int] = (),
    watch: Container[int] = (),
    proc: str = PROC,
) -> tuple[dict[str, int], int, set[str], bool] | None:
    """``known`` (``pid``'s fd table as :func:`socket_fd_map` read it before) brought up to date
    by ``readlink`` of the fds likely to have changed, without listing the table: its fds that
    are not sockets, those of the sockets of ``reused`` (they closed: their numbers are the ones
    a new fd takes) and of ``watch`` (another process holds them too), then, when fewer fds are
    known open than ``count`` (the fd count, :func:`fd_count`, read before) says, the numbers
    not in ``known`` in turn (Linux gives a new fd the lowest free number): every one below the
    highest known fd, and above it until :data:`PROBE_SPARE` are found unused or one more new fd
    than the count explains is found.

    Returns the map, the number of links read, the fds whose entries the probe read (the only
    ones that may differ from ``known``, apart from those it found closed), and whether the
    probe is trusted: it explains ``count`` exactly (what was there, minus what it found
    closed, plus what it found new) and no fd of a ``watch`` socket changed (a process that let
    a shared socket go may hold it at another number: only a listing tells). When it is not,
    pass the fds read as ``fresh`` to :func:`socket_fd_map`, which lists the table and reads
    only the rest. ``None`` if a link cannot be read for lack of permission (ptrace access) or
    the count is unknown.

    What no probe sees: a socket fd not in ``reused`` or ``watch`` that closed while an fd
    opened at a number the probe did not read (``dup2``, ``F_DUPFD``, or that very number), the
    count kept. A new socket there is searched for by the caller (it is wanted and has no
    owner); an existing socket gained that way is seen at the next listing or sweep."""
    if count < 0:
        return None
    base = f"{proc}/{pid}/fd/"
    readlink = os.readlink
    got = dict(known)
    read = 0
    trusted = True
    probed: list[str] = []
    for name, ino in known.items():
        if ino and ino not in reused and ino not in watch:
            continue
        read += 1
        try:
            link = readlink(base + name)
        except FileNotFoundError:
            del got[name]
            if ino and ino in watch:
                trusted = False
            continue
        except OSError:  # EACCES (no ptrace access), ESRCH, ...
            return None
        now = int(link[8:-1]) if link[:8] == "socket:[" else 0
        got[name] = now
        probed.append(name)
        if now != ino and ino and ino in watch:
            trusted = False
    need = count - len(got)
    if 0 < need <= PROBE_NEW:
        # Every unused number below the highest known fd, and above it until PROBE_SPARE are
        # found unused, not only until ``need`` are found: finding more new fds than the count
        # explains means a socket fd not in ``reused``/``watch`` closed (the socket went on in
        # another process: handed over SCM_RIGHTS), so the map would keep it here. Stopping at
        # ``need`` trusted such a table (files opened above the socket's fd before it closed).
        used = {int(n) for n in known}
        top = max(used, default=-1)
        spare = PROBE_SPARE
        holes = 0
        fd = -1
        while need >= 0:  # (one more than explained: not trusted below)
            fd += 1
            if fd in used:
                continue
            name = str(fd)
            read += 1
            try:
                link = readlink(base + name)
            except FileNotFoundError:
                if fd > top:
                    spare -= 1
                    if spare < 0:
                        break
                else:
                    holes += 1
                    if holes > PROBE_NEW:  # too many to read: list the table instead
                        trusted = False
                        break
                continue
            except OSError:
                return None
            got[name] = int(link[8:-1]) if link[:8] == "socket:[" else 0
            probed.append(name)
            need -= 1
    return got, read, set(probed), trusted and len(got) == count


def fd_count(pid: int, proc: str = PROC) -> int:
    """How many fds ``pid`` has open (Linux >= 6.2 reports it as the size of /proc/PID/fd), or -1."""
    try:
        return os.stat(f"{proc}/{pid}/fd").st_size
    except OSError:
        return -1


class Stat(NamedTuple):
    """The fields of /proc/PID/stat portscope uses."""

    state: str  # R, S, D, Z, T, t, X, I, ...
    ppid: int
    threads: int  # live threads in the thread group (a zombie leader with live threads has > 0)
    start_ticks: int  # start time in clock ticks since boot: with the pid, the process's identity

    @property
    def alive(self) -> bool:
        """Not exited: a zombie leader counts as alive while another thread of it runs."""
        return self.state not in ("Z", "X") or self.threads > 1


def read_stat(pid: int, proc: str = PROC) -> Stat | None:
    """Parse /proc/PID/stat; ``None`` if the process is gone (or the file is unreadable)."""
    try:
        fd = os.open(f"{proc}/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields follow the last ')'.
    rest = raw[raw.rfind(b")") + 2 :].split()
    try:
        return Stat(rest[0].decode("ascii", "replace"), int(rest[1]), int(rest[17]), int(rest[19]))
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int, proc: str = PROC) -> int | None:
    """A cheap identity for ``pid``: its start time in clock ticks since boot; ``None`` if gone."""
    st = read_stat(pid, proc)
    return None if st is None else st.start_ticks


def proc_net_inodes(port: int, protos: Iterable[str] = ("tcp", "udp"), proc: str = PROC) -> set[int]:
    """Inodes of the sockets whose *local* port is ``port``, from /proc/net (for a backend that
    reports no inodes). Sockets without one (TIME_WAIT, orphans: inode 0) are left out."""
    out: set[int] = set()
    for name in (p + v for p in protos for v in ("", "6")):
        try:
            with open(f"{proc}/net/{name}", encoding="ascii", errors="replace") as f:
                next(f, None)  # the header
                for line in f:
                    fields = line.split()
                    if len(fields) < 10:
                        continue
                    try:
                        local_port = int(fields[1].rpartition(":")[2], 16)
                        inode = int(fields[9])
                    except ValueError:
                        continue
                    if local_port == port and inode:
                        out.add(inode)
        except OSError:
            continue
    return out


def inode_holders(inodes: Iterable[int], proc: str = PROC) -> dict[int, set[int]]:
    """Every pid holding each socket inode (a socket is shared by a pre-fork master and its
    workers, or passed over SCM_RIGHTS). Processes that cannot be read (other users' processes,
    without root) are skipped."""
    wanted = {i for i in inodes if i}
    out: dict[int, set[int]] = {}
    if not wanted:
        return out
    for pid in list_pids(proc):
        for ino in socket_inodes(pid, proc) or ():
            if ino in wanted:
                out.setdefault(ino, set()).add(pid)
    return out


def netns_inode(pid: int | str = "self", proc: str = PROC) -> int | None:
    """The inode of ``pid``'s network namespace (``net:[4026531840]``); ``None`` if unreadable."""
    try:
        link = os.readlink(f"{proc}/{pid}/ns/net")
    except OSError:
        return None
    if link.startswith("net:[") and link.endswith("]") and link[5:-1].isdigit():
        return int(link[5:-1])
    return None


def read_cmdline(pid: int, proc: str = PROC) -> tuple[str, ...] | None:
    """The arguments of ``pid`` exactly as the kernel holds them (Linux ``/proc/PID/cmdline``);
    ``None`` when unreadable (then psutil's answer is used).

    psutil reads the file as text with universal newlines, so an argument ``c\rd`` came back as
    ``c\nd``: here the bytes are split on NUL and decoded with surrogateescape (invalid UTF-8
    stays visible as ``\xff`` when escaped). A process that rewrote its argv (nginx's
    ``nginx: worker process``, setproctitle) leaves the rest of the old argument area as NUL
    padding, which reads as trailing empty arguments: they are dropped.
    """
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return None
    if not data:
        return ()  # a kernel thread or a zombie
    parts = data.split(b"\0")
    while len(parts) > 1 and not parts[-1]:
        parts.pop()  # the terminating NUL, and an argv rewrite's padding
    return tuple(os.fsdecode(p) for p in parts)


_BOOT: list[float] = []  # /proc/stat btime, read once per process
_CLK_TCK: list[int] = []


def boot_time(proc: str = PROC) -> float:
    """The system boot time (seconds since the epoch) as psutil computes it (/proc/stat btime)."""
    if not _BOOT:
        value = 0.0
        try:
            with open(f"{proc}/stat", "rb") as f:
                for line in f:
                    if line.startswith(b"btime"):
                        value = float(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            pass
        _BOOT.append(value)
    return _BOOT[0]


def clock_ticks() -> int:
    if not _CLK_TCK:
        try:
            _CLK_TCK.append(os.sysconf("SC_CLK_TCK"))
        except (ValueError, OSError):
            _CLK_TCK.append(100)
    return _CLK_TCK[0]


def create_time(st: Stat, proc: str = PROC) -> float:
    """A process's start time in seconds since the epoch, computed exactly as psutil does, so the
    two never disagree about a process's identity."""
    return (float(st.start_ticks) / clock_ticks()) + boot_time(proc)


def comm(pid: int, proc: str = PROC) -> str | None:
    """The process name the kernel keeps (/proc/PID/stat's comm, at most 15 bytes)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            raw = f.read(4096)
    except OSError:
        return None
    start, end = raw.find(b"("), raw.rfind(b")")
    return os.fsdecode(raw[start + 1 : end]) if 0 <= start < end else None


def real_uid(pid: int, proc: str = PROC) -> int | None:
    try:
        with open(f"{proc}/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def exe_path(pid: int, proc: str = PROC) -> str:
    """The executable's path ("" when unreadable); a deleted binary's " (deleted)" suffix is kept
    only while a file of that exact name exists (as psutil does)."""
    try:
        path = os.readlink(f"{proc}/{pid}/exe")
    except OSError:
        return ""
    path = path.split("\x00")[0]
    if path.endswith(" (deleted)") and not os.path.exists(path):
        path = path[:-10]
    return path


def children_of(pid: int, proc: str = PROC) -> list[int] | None:
    """The child processes of ``pid``, from each of its threads' ``children`` file; ``[]`` when it
    is gone, ``None`` when the kernel has no such files (CONFIG_PROC_CHILDREN off)."""
    try:
        tasks = os.listdir(f"{proc}/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tasks:
        try:
            with open(f"{proc}/{pid}/task/{tid}/children", "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if tid == str(pid) and os.path.isdir(f"{proc}/{pid}/task/{tid}"):
                return None  # the thread is there, its children file is not: not in this kernel
            continue
        except OSError:
            continue
        out.extend(int(x) for x in data.split())
    return out
