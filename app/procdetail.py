"""Process details for the dashboard's detail pane (psutil; blocking: call it off the UI thread).

Every field the OS refuses is left empty and noted, a process that exits mid-read gives what
was read so far, and strings stay raw (escape them before showing them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psutil

from app.model import Snapshot, Sock

T = TypeVar("T")

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)


@dataclass(frozen=True, slots=True)
class ProcessDetail:
    pid: int
    name: str = ""
    username: str = ""
    exe: str = ""
    cwd: str = ""
    cmdline: tuple[str, ...] = ()
    create_time: float | None = None
    cpu_percent: float | None = None
    memory_rss: int | None = None
    parents: tuple[tuple[int, str], ...] = ()  # (pid, name) from the parent up to pid 1
    children: tuple[tuple[int, int, str], ...] = ()  # (depth, pid, name) of descendants, depth first
    more_children: int = 0  # descendants beyond the ones listed
    denied: tuple[str, ...] = ()  # fields the OS refused
    gone: bool = False  # the process exited (before or while reading)


def _read(getter: Callable[[], T], name: str, denied: list[str], default: T) -> T:
    try:
        return getter()
    except psutil.AccessDenied:
        denied.append(name)
        return default
    except OSError:
        return default


def parent_chain(proc: Any, limit: int = 64) -> tuple[tuple[int, str], ...]:
    """(pid, name) of each ancestor, nearest first, ending at pid 1 (or where reading stops)."""
    out: list[tuple[int, str]] = []
    seen = {proc.pid}
    current = proc
    for _ in range(limit):
        try:
            parent = current.parent()
        except (psutil.Error, OSError):
            break
        if parent is None or parent.pid in seen:
            break
        seen.add(parent.pid)
        try:
            name = parent.name()
        except (psutil.Error, OSError):
            name = "?"
        out.append((parent.pid, name))
        if parent.pid <= 1:
            break
        current = parent
    return tuple(out)


def descendants(pid: int, limit: int = 64) -> tuple[tuple[tuple[int, int, str], ...], int]:
    """The process tree below ``pid`` (a postmaster's backends, nginx's workers): ``(depth, pid,
    name)`` depth first, children in pid order, at most ``limit``; and how many more there are.
    One pass over the process table (not one per process)."""
    kids: dict[int, list[tuple[int, str]]] = {}
    for proc in psutil.process_iter(["ppid", "name"]):
        ppid = proc.info.get("ppid")
        if ppid is not None and proc.pid != ppid:
            kids.setdefault(ppid, []).append((proc.pid, proc.info.get("name") or "?"))
    out: list[tuple[int, int, str]] = []
    total = 0
    stack = [(1, child) for child in sorted(kids.get(pid, ()), reverse=True)]
    seen = {pid}
    while stack:
        depth, (child, name) = stack.pop()
        if child in seen:
            continue
        seen.add(child)
        total += 1
        if len(out) < limit:
            out.append((depth, child, name))
        stack.extend((depth + 1, c) for c in sorted(kids.get(child, ()), reverse=True))
    return tuple(out), total - len(out)


def process_detail(pid: int, cpu_interval: float = 0.1) -> ProcessDetail:
    """Everything the detail pane shows about ``pid``. Blocks for about ``cpu_interval`` seconds
    (CPU % needs two samples)."""
    try:
        proc = psutil.Process(pid)
    except _GONE:
        return ProcessDetail(pid, gone=True)
    except (psutil.Error, OSError):
        return ProcessDetail(pid, denied=("all",))
    denied: list[str] = []
    try:
        with proc.oneshot():
            name = _read(proc.name, "name", denied, "")
            username = _read(proc.username, "user", denied, "")
            exe = _read(proc.exe, "exe", denied, "")
            cwd = _read(proc.cwd, "cwd", denied, "")
            no_args: list[str] = []
            cmdline = tuple(_read(proc.cmdline, "cmdline", denied, no_args) or ())
            created: float | None = _read(proc.create_time, "start time", denied, None)
            mem = _read(proc.memory_info, "memory", denied, None)
        cpu: float | None = _read(lambda: proc.cpu_percent(interval=cpu_interval), "cpu", denied, None)
        parents = parent_chain(proc)
    except _GONE:
        return ProcessDetail(pid, gone=True)
    try:
        children, more = descendants(pid)
    except (psutil.Error, OSError):
        children, more = (), 0
    return ProcessDetail(
        pid=pid,
        name=name,
        username=username,
        exe=exe,
        cwd=cwd,
        cmdline=cmdline,
        create_time=created,
        cpu_percent=cpu,
        memory_rss=int(mem.rss) if mem is not None else None,
        parents=parents,
        children=children,
        more_children=more,
        denied=tuple(denied),
    )


@dataclass(frozen=True, slots=True)
class SocketsOf:
    pid: int
    listening: tuple[Sock, ...] = field(default_factory=tuple)
    connections: tuple[Sock, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        return len(self.listening) + len(self.connections)


def sockets_of(snapshot: Snapshot, pid: int) -> SocketsOf:
    """Every socket ``pid`` holds in ``snapshot``, listeners first."""
    mine = [s for s in snapshot.sockets if s.pid == pid]
    return SocketsOf(
        pid,
        tuple(s for s in mine if s.listening),
        tuple(s for s in mine if not s.listening),
    )


def scaled(value: float, units: tuple[str, ...]) -> str:
    """``value`` in the largest of ``units`` (each 1024 of the one before) that keeps it under
    1024 (the last one whatever its size): whole numbers in the first unit, one decimal after."""
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == units[0] else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {units[-1]}"  # (not reached: the last unit always answers)


def format_bytes(n: int | None) -> str:
    return "?" if n is None else scaled(float(n), ("B", "KiB", "MiB", "GiB"))
