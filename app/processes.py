"""Owner details, cached per (pid, create_time) so a recycled pid is never the old process."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import psutil

from app.model import ProcessInfo

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)


def read_process(pid: int) -> ProcessInfo | None:
    """Read one process's details; ``None`` if it is gone. Fields the OS refuses are left blank."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            create_time = proc.create_time()
            name = _field(proc.name, "")
            ppid = _field(proc.ppid, None)
            exe = _field(proc.exe, "")
            cmdline = tuple(_field(proc.cmdline, []) or ())
            username = _field(proc.username, "")
    except _GONE:
        return None
    except psutil.AccessDenied:
        return None
    return ProcessInfo(
        pid=pid, ppid=ppid, name=name, exe=exe, cmdline=cmdline, username=username, create_time=create_time
    )


def _field(getter: Any, default: Any) -> Any:
    try:
        return getter()
    except psutil.AccessDenied:
        return default
    except psutil.ZombieProcess:
        return default


def create_time(pid: int) -> float | None:
    """The start time of ``pid`` (identity check); ``None`` if it is gone or unreadable."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


class ProcessCache:
    """Remembers ProcessInfo by pid, re-validated against the start time on every lookup."""

    def __init__(self) -> None:
        self._by_pid: dict[int, ProcessInfo] = {}
        self.failures = 0  # lookups that found the process gone or unreadable

    def lookup(self, pids: Iterable[int]) -> dict[int, ProcessInfo]:
        """Details for each pid that still exists; vanished pids are left out and counted."""
        out: dict[int, ProcessInfo] = {}
        for pid in set(pids):
            cached = self._by_pid.get(pid)
            if cached is not None:
                started = create_time(pid)
                if started is not None and abs(started - cached.create_time) < 0.01:
                    out[pid] = cached
                    continue
                self._by_pid.pop(pid, None)
            info = read_process(pid)
            if info is None:
                self.failures += 1
                continue
            self._by_pid[pid] = info
            out[pid] = info
        return out

    def forget_except(self, alive: Iterable[int]) -> None:
        keep = set(alive)
        for pid in [p for p in self._by_pid if p not in keep]:
            del self._by_pid[pid]

    def __len__(self) -> int:
        return len(self._by_pid)


def is_privileged() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return bool(geteuid and geteuid() == 0)
