"""How the dashboard shows values: ages, pids, rates, sparklines, owner names and commands.

Every string that comes from the system goes through :func:`app.textsafe.printable` here, once,
when its row is built; the table then draws it as literal text.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from rich.cells import cell_len, set_cell_size

from app.model import ProcessInfo, Sock, format_endpoint
from app.procdetail import scaled
from app.textsafe import printable

NAME_LIMIT = 64
CMD_LIMIT = 400
SPARK = "▁▂▃▄▅▆▇█"


def fmt_age(born: Any, now: float) -> str:
    if born is None:
        return ""
    secs = max(0, int(now - float(born)))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s" if secs < 600 else f"{secs // 60}m"
    if secs < 86400:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 86400}d{secs % 86400 // 3600}h"


def fmt_pid(pid: Any, _now: float = 0.0) -> str:
    return "-" if pid is None else str(pid)


def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else scaled(float(rate), ("B/s", "KB/s", "MB/s", "GB/s"))


def fmt_rate_cell(rate: Any, _now: float = 0.0) -> str:
    """A rate in at most 6 cells for the tables' Rx/s and Tx/s: ``0``, ``850B``, ``12.3K``,
    ``512K``, ``1.2M``, ``3.4G`` (bytes per second; ``-`` when not known)."""
    if rate is None:
        return "-"
    value = float(rate)
    if value < 0.5:
        return "0"
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            if unit == "B":
                return f"{value:.0f}B"
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
        value /= 1024
    return f"{value:.0f}G"  # (not reached)


def fmt_rtt(ms: Any, _now: float = 0.0) -> str:
    """A round-trip time: ``40µs``, ``2.5ms``, ``12ms``, ``1.2s`` (``-`` when not known)."""
    if ms is None:
        return "-"
    value = float(ms)
    if value < 1:
        return f"{value * 1000:.0f}µs"
    if value < 10:
        return f"{value:.1f}ms"
    if value < 1000:
        return f"{value:.0f}ms"
    return f"{value / 1000:.1f}s"


def fmt_count(value: Any, _now: float = 0.0) -> str:
    return "-" if value is None else str(value)


def fmt_remote(value: Any, _now: float) -> str:
    """A remote endpoint cell: ``(ip, port)`` or None."""
    if not value:
        return "-"
    return format_endpoint(value[0], value[1])


def sparkline(values: Sequence[float], width: int = 10) -> str:
    """A one-line bar chart of the last ``width`` values (scaled to their maximum)."""
    data = list(values)[-width:]
    if not data:
        return ""
    top = max(data)
    if top <= 0:
        return SPARK[0] * len(data)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in data)


def owner_cells(owner: ProcessInfo | None, sock: Sock) -> tuple[str, str]:
    """(process name, user) cells: ``?`` for an owner that exists but cannot be read."""
    if owner is not None:
        return printable(owner.name, NAME_LIMIT) or "?", printable(owner.username, 32)
    if sock.pid is not None:
        return "?", ""
    return "", ""


@lru_cache(maxsize=8192)
def command_text(cmdline: tuple[str, ...]) -> str:
    """A command line cell (cached: every listener row is rebuilt on each poll, commands rarely
    change)."""
    return printable(" ".join(cmdline), CMD_LIMIT)


def wrap(value: str, width: int) -> list[str]:
    """``value`` in lines of at most ``width`` cells, broken at spaces where it can be."""
    width = max(1, width)
    lines: list[str] = []
    rest = value
    while cell_len(rest) > width:
        head = set_cell_size(rest, width)
        cut = head.rfind(" ")
        if cut > width // 3:
            head = head[:cut].rstrip(" ")
            rest = rest[cut + 1 :].lstrip(" ")
        else:
            rest = rest[len(head) :]
        lines.append(head)
    lines.append(rest)
    return lines
