"""Plain-text tables for the terminal: aligned columns, untrusted text escaped, grouped by range."""

from __future__ import annotations

import csv
import io
import shutil
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence

from app.exposure import ExposureMap
from app.model import Family, Snapshot, Sock
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

# CSV is for spreadsheets and scripts: addresses split into ip and port, nothing cut short.
CSV_COLUMNS = (
    "proto",
    "family",
    "local_ip",
    "local_port",
    "remote_ip",
    "remote_port",
    "state",
    "listening",
    "range",
    "in_ephemeral",
    "exposure",
    "pid",
    "process",
    "user",
    "command",
)

NAME_LIMIT = 40
USER_LIMIT = 24
# A command line can be megabytes (or a hostile 10,000-character argument); the table shows the
# start of it. `list --json` has the whole thing.
COMMAND_LIMIT = 400

_ORDER = {r: i for i, r in enumerate(PortRange)}


# A process owns many sockets (20k sockets may belong to 100 processes) and escaping a long
# command line is the costly part of a row: each owner's cells are escaped once per table.
OwnerCells = dict[int | None, tuple[str, str, str]]


def _owner_cells(sock: Sock, snapshot: Snapshot, cache: OwnerCells | None) -> tuple[str, str, str]:
    """(process, user, command) cells of ``sock``'s owner, escaped and cut."""
    if cache is not None:
        hit = cache.get(sock.pid)
        if hit is not None:
            return hit
    owner = snapshot.owner(sock)
    if owner is not None:
        name = printable(owner.name, NAME_LIMIT) or "-"
        cells = (name, printable(owner.username, USER_LIMIT), printable(owner.command, COMMAND_LIMIT))
    elif sock.pid is None:
        # ownerless: "?" unless the state explains it; depends on the socket, so never cached
        return ("-" if sock.ownerless else "?", "", "")
    else:
        cells = ("-", "", "")
    if cache is not None:
        cache[sock.pid] = cells
    return cells


def socket_row(
    sock: Sock, snapshot: Snapshot, exposure: ExposureMap, cache: OwnerCells | None = None
) -> list[str]:
    """One table row; every untrusted string escaped and cut to its column's limit. Pass the
    same ``cache`` for the rows of one snapshot to escape each owner's strings once."""
    proto = sock.proto.value + ("6" if sock.family is Family.IPV6 else "")
    note = "ephemeral" if sock.listening and snapshot.in_ephemeral(sock) else ""
    name, user, command = _owner_cells(sock, snapshot, cache)
    return [
        proto,
        printable(str(sock.laddr)),  # an IPv6 scope id is an interface name: untrusted
        printable(str(sock.raddr)) if sock.raddr else "*",
        sock.status,
        exposure.classify(sock.laddr.ip).label,
        str(sock.pid) if sock.pid is not None else "-",
        name,
        user,
        note,
        command,
    ]


def csv_row(sock: Sock, snapshot: Snapshot, exposure: ExposureMap) -> list[object]:
    """One CSV record of raw values (:func:`to_csv` escapes and neutralises them once)."""
    owner = snapshot.owner(sock)
    return [
        sock.proto.value,
        sock.family.value,
        sock.laddr.ip,
        sock.laddr.port,
        sock.raddr.ip if sock.raddr else "",
        sock.raddr.port if sock.raddr else "",
        sock.status,
        "yes" if sock.listening else "no",
        sock.range.value,
        "yes" if snapshot.in_ephemeral(sock) else "no",
        exposure.classify(sock.laddr.ip).raw_label,  # escaped once, by csv_cell
        sock.pid if sock.pid is not None else "",
        owner.name if owner else "",
        owner.username if owner else "",
        owner.command if owner else "",
    ]


def cell_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide (CJK, emoji) characters count 2, combining marks 0."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - cell_width(text))


def _cut(line: str, width: int) -> str:
    if cell_width(line) <= width:
        return line
    out: list[str] = []
    used = 0
    for ch in line:
        w = cell_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def render(rows: Sequence[Sequence[str]], headers: Sequence[str], width: int | None = None) -> list[str]:
    """Align ``rows`` under ``headers``; each line is cut to ``width`` columns when given."""
    widths = [cell_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], cell_width(cell))
    lines = []
    for row in [list(headers), *rows]:
        parts = [_pad(cell, widths[i]) for i, cell in enumerate(row[:-1])]
        line = "  ".join([*parts, row[-1]]).rstrip()
        if width is not None:
            line = _cut(line, width)
        lines.append(line)
    return lines


def terminal_width() -> int | None:
    return shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else None


def grouped_socket_table(socks: list[Sock], snapshot: Snapshot, exposure: ExposureMap) -> list[str]:
    """Sockets as one aligned table with a heading line per IANA range (in range order)."""
    socks = sorted(socks, key=lambda s: _ORDER[s.range])  # stable: keeps the order within a range
    cache: OwnerCells = {}
    rows = [socket_row(s, snapshot, exposure, cache) for s in socks]
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
    cache: OwnerCells = {}
    rows = [socket_row(s, snapshot, exposure, cache) for s in socks]
    return render(rows, SOCKET_COLUMNS, terminal_width())


def _csv_field(text: str) -> str:
    """One field as csv.writer (QUOTE_MINIMAL, lineterminator "\\n") writes it inside a row."""
    if not text:
        return ""  # alone in a row, csv writes "" for it; inside a row, nothing
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([text])
    return buf.getvalue()[:-1]


def iter_csv(rows: Iterable[Sequence[object]], headers: Sequence[str], chunk: int = 500) -> Iterator[str]:
    """The text of :func:`to_csv` in pieces of ``chunk`` rows. Each distinct str or int value is
    escaped, neutralised and quoted once (an owner's command line repeats on each of its rows)."""
    memo: dict[tuple[type, object], str] = {}

    def field(value: object) -> str:
        kind = type(value)
        if kind is not str and kind is not int:
            return _csv_field(csv_cell(value))
        key = (kind, value)  # 1 and True must not share a slot
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = _csv_field(csv_cell(value))
        return hit

    out = [",".join(_csv_field(h) for h in headers) if len(headers) != 1 else _one_field_row(headers[0])]
    for row in rows:
        out.append(",".join([field(c) for c in row]) if len(row) != 1 else _one_field_row(csv_cell(row[0])))
        if len(out) >= chunk:
            yield "\n".join(out) + "\n"
            out = []
    if out:
        yield "\n".join(out) + "\n"


def _one_field_row(text: str) -> str:
    return _csv_field(text) or '""'  # csv writes a row of one empty field as ""


def to_csv(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """CSV text: every cell escaped (:func:`~app.textsafe.printable`) and formula-neutralised."""
    return "".join(iter_csv(rows, headers))
