"""Plain-text tables for the terminal: aligned columns, untrusted text escaped, grouped by range."""

from __future__ import annotations

import csv
import io
import shutil
import sys
from collections.abc import Sequence

from app.exposure import ExposureMap
from app.model import Snapshot, Sock
from app.ports import PortRange
from app.textsafe import csv_cell, printable

SOCKET_COLUMNS = (
    "PROTO",
    "LOCAL",
    "REMOTE",
    "STATE",
    "EXPOSURE",
    "PID",
    "PROCESS",
    "USER",
    "NOTE",
    "COMMAND",
)


def socket_row(sock: Sock, snapshot: Snapshot, exposure: ExposureMap) -> list[str]:
    owner = snapshot.owner(sock)
    proto = sock.proto.value + ("6" if sock.family.value == "ipv6" else "")
    note = "ephemeral" if sock.listening and snapshot.in_ephemeral(sock) else ""
    return [
        proto,
        str(sock.laddr),
        str(sock.raddr) if sock.raddr else "*",
        sock.status,
        exposure.classify(sock.laddr.ip).label,
        str(sock.pid) if sock.pid is not None else "-",
        printable(owner.name, 40) if owner else ("?" if sock.pid is None else "-"),
        printable(owner.username, 24) if owner else "",
        note,
        printable(owner.command) if owner else "",
    ]


def render(rows: Sequence[Sequence[str]], headers: Sequence[str], width: int | None = None) -> list[str]:
    """Align ``rows`` under ``headers``; the last column is cut to ``width`` when given."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        line = "  ".join([*parts, row[-1]]).rstrip()
        if width is not None and len(line) > width:
            line = line[: max(0, width - 1)] + "…"
        lines.append(line)
    return lines


def terminal_width() -> int | None:
    return shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else None


def grouped_socket_table(socks: list[Sock], snapshot: Snapshot, exposure: ExposureMap) -> list[str]:
    """Sockets as one aligned table with a heading line per IANA range."""
    rows = [socket_row(s, snapshot, exposure) for s in socks]
    lines = render(rows, SOCKET_COLUMNS, terminal_width())
    header, body = lines[0], lines[1:]
    out = [header]
    current: PortRange | None = None
    counts: dict[PortRange, int] = {}
    for s in socks:
        counts[s.range] = counts.get(s.range, 0) + 1
    for sock, line in zip(socks, body, strict=True):
        if sock.range is not current:
            current = sock.range
            n = counts[current]
            out.append(f"── {current.heading} ({n} socket{'s' if n != 1 else ''})")
        out.append(line)
    return out


def socket_table(socks: list[Sock], snapshot: Snapshot, exposure: ExposureMap) -> list[str]:
    return render([socket_row(s, snapshot, exposure) for s in socks], SOCKET_COLUMNS, terminal_width())


def to_csv(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([csv_cell(c) for c in row])
    return buf.getvalue()
