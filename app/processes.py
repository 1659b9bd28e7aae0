"""Owner details, cached per (pid, create_time) so a recycled pid is never the old process.

Exits are detected cheaply: on Linux the cache holds a pidfd for each cached process and one
``poll()`` over all of them says which have exited, so a pid that exits and is reused can never be
taken for the old process. Where pidfds are unavailable (or past a small fd budget) each cached
entry is re-validated by its start time, read straight from ``/proc/PID/stat`` on Linux.
"""

from __future__ import annotations

import os
import sys

from app.fast import procfs
from app.finalizers import finalize
from app.model import ProcessInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    import select
    from collections.abc import Iterable
    from typing import Any

_LINUX = sys.platform.startswith("linux")
_POLLIN = 1  # select.POLLIN (the same on every platform with poll)
# At most this many pidfds (never more than a quarter of the soft fd limit); beyond, start times.
PIDFD_BUDGET = 1024


def read_process(pid: int) -> ProcessInfo | None:
    """Read one process's details; ``None`` if it is gone. Fields the OS refuses are left blank.

    On Linux straight from /proc (no psutil import on the CLI's path; the values are those psutil
    would give: name extended from argv[0] when comm is cut at 15 bytes, the real uid's user,
    create_time from the start ticks and the boot time); elsewhere through psutil."""
    if _LINUX:
        return _read_linux(pid)
    import psutil

    gone = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            create_time = proc.create_time()
            name = _field(proc.name, "")
            ppid = _field(proc.ppid, None)
            exe = _field(proc.exe, "")
            cmdline = tuple(_field(proc.cmdline, []) or ())
            username = _field(proc.username, "")
    except gone:
        return None
    return ProcessInfo(
        pid=pid, ppid=ppid, name=name, exe=exe, cmdline=cmdline, username=username, create_time=create_time
    )


def _read_linux(pid: int) -> ProcessInfo | None:
    st = procfs.read_stat(pid)
    name = procfs.comm(pid)
    if st is None or name is None:
        return None
    cmdline = procfs.read_cmdline(pid) or ()
    if len(name) >= 15 and cmdline:
        extended = os.path.basename(cmdline[0])
        if extended.startswith(name):
            name = extended
    uid = procfs.real_uid(pid)
    return ProcessInfo(
        pid=pid,
        ppid=st.ppid,
        name=name,
        exe=procfs.exe_path(pid),
        cmdline=cmdline,
        username=_user_name(uid) if uid is not None else "",
        create_time=procfs.create_time(st),
    )


_USERS: dict[int, str] = {}


def _user_name(uid: int) -> str:
    name = _USERS.get(uid)
    if name is None:
        import pwd

        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        _USERS[uid] = name
    return name


def _field(getter: Any, default: Any) -> Any:
    import psutil

    try:
        return getter()
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return default


def create_time(pid: int) -> float | None:
    """The start time of ``pid`` (identity check); ``None`` if it is gone or unreadable."""
    if _LINUX:
        st = procfs.read_stat(pid)
        return None if st is None else procfs.create_time(st)
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def start_ticks(pid: int) -> int | None:
    """A cheap identity for ``pid``: its start time in clock ticks since boot (Linux, from
    /proc/PID/stat), else psutil's create_time scaled; ``None`` if the process is gone."""
    if _LINUX:
        return procfs.start_ticks(pid)
    started = create_time(pid)
    return None if started is None else round(started * 100)


def pidfds_supported() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        fd = os.pidfd_open(os.getpid())
    except OSError:
        return False
    os.close(fd)
    return True


def _pidfd_budget() -> int:
    try:
        import resource
    except ImportError:
        return 0
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return PIDFD_BUDGET if soft == resource.RLIM_INFINITY else min(PIDFD_BUDGET, soft // 4)


class _Entry:
    __slots__ = ("info", "pidfd", "ticks")

    def __init__(self, info: ProcessInfo, pidfd: int, ticks: int | None) -> None:
        self.info = info
        self.pidfd = pidfd  # -1: none, validate by start ticks
        self.ticks = ticks


class ProcessCache:
    """Remembers ProcessInfo by pid, dropping an entry as soon as its process has exited."""

    def __init__(self, *, use_pidfd: bool | None = None) -> None:
        self._by_pid: dict[int, _Entry] = {}
        self._fd_pid: dict[int, int] = {}
        self.failures = 0  # lookups that found the process gone or unreadable
        self._use_pidfd = pidfds_supported() if use_pidfd is None else use_pidfd
        self._poll: select.poll | None = None
        if self._use_pidfd:
            import select

            self._poll = select.poll() if hasattr(select, "poll") else None
        if self._poll is None:
            self._use_pidfd = False
        self._budget = _pidfd_budget() if self._use_pidfd else 0

    def reap(self) -> set[int]:
        """Drop (and return) the cached pids whose process has exited or been replaced."""
        gone: set[int] = set()
        if self._poll is not None and self._fd_pid:
            for fd, _events in self._poll.poll(0):
                pid = self._fd_pid.get(fd)
                if pid is not None:
                    gone.add(pid)
        for pid, entry in self._by_pid.items():
            if entry.pidfd < 0 and pid not in gone:
                now = start_ticks(pid)
                if now is None or now != entry.ticks:
                    gone.add(pid)
        for pid in gone:
            self._drop(pid)
        return gone

    def lookup(self, pids: Iterable[int]) -> dict[int, ProcessInfo]:
        """Details for each pid that still exists; vanished pids are left out and counted."""
        self.reap()
        out: dict[int, ProcessInfo] = {}
        for pid in set(pids):
            entry = self._by_pid.get(pid)
            if entry is None:
                entry = self._read(pid)
                if entry is None:
                    self.failures += 1
                    continue
            out[pid] = entry.info
        return out

    def _read(self, pid: int) -> _Entry | None:
        # Pin the process first (pidfd, or its start time), then read it: if it is replaced in
        # between, the pin says so on the next reap() and the entry is dropped then.
        pidfd = -1
        if self._use_pidfd and len(self._fd_pid) < self._budget:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                pidfd = -1
        ticks = start_ticks(pid) if pidfd < 0 else None
        info = read_process(pid)
        if info is None or (pidfd < 0 and ticks is None):
            if pidfd >= 0:
                os.close(pidfd)
            return None
        entry = _Entry(info, pidfd, ticks)
        self._by_pid[pid] = entry
        if pidfd >= 0:
            assert self._poll is not None
            self._fd_pid[pidfd] = pid
            self._poll.register(pidfd, _POLLIN)
        return entry

    def _drop(self, pid: int) -> None:
        entry = self._by_pid.pop(pid, None)
        if entry is not None and entry.pidfd >= 0:
            assert self._poll is not None
            self._poll.unregister(entry.pidfd)
            del self._fd_pid[entry.pidfd]
            os.close(entry.pidfd)

    def forget_except(self, alive: Iterable[int]) -> None:
        keep = set(alive)
        for pid in [p for p in self._by_pid if p not in keep]:
            self._drop(pid)

    def clear(self) -> None:
        for pid in list(self._by_pid):
            self._drop(pid)

    def __del__(self) -> None:
        finalize(self.clear)

    def __contains__(self, pid: object) -> bool:
        return pid in self._by_pid

    def __len__(self) -> int:
        return len(self._by_pid)


def is_privileged() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return bool(geteuid and geteuid() == 0)
