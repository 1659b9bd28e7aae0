"""Plain-text tables for the terminal: aligned columns, untrusted text escaped, grouped by range.

On ``who``'s start-up path: csv, unicodedata (text that is not ASCII) and shutil are not imported
unless needed."""

from __future__ import annotations

import os
import sys
from _operator import gt  # (operator.py only re-exports it, and costs start-up)
from itertools import islice

from app.cli.color import exposure_style, paint, state_style
from app.forwardprogs import might_forward
from app.model import LISTEN, UDP_BOUND, Family, Proto
from app.owners import OwnerFacts, forward_text, service_name
from app.ports import PortRange, port_range
from app.service import SOCKET
from app.textsafe import csv_cell, printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from dataclasses import dataclass

    from app.exposure import ExposureMap
    from app.health import Queue
    from app.model import Snapshot, Sock
    from app.service import Service
else:
    from app.lite import dataclass

SOCKET_COLUMNS = (
    "PROTO",
    "LOCAL",
    "REMOTE",
    "STATE",
    "EXPOSURE",
    "PID",
    "PROCESS",
    "USER",
    "SERVICE",
    "NOTE",
    "COMMAND",
)
# With sockets of other network namespaces in the table: their namespace, after PROTO.
NETNS_COLUMN = "NETNS"
# With --stats, after EXPOSURE: a connection's RTT, retransmissions and bytes; a listener's queue.
STATS_COLUMNS = ("RTT", "RETRANS", "RX", "TX", "QUEUE")

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
    "service",
    "holders",
    "forward",
)
CSV_NETNS_COLUMNS = ("netns", "netns_label")  # with --netns all
CSV_STATS_COLUMNS = ("rtt_ms", "retrans", "bytes_received", "bytes_sent", "queue_current", "queue_max")

NAME_LIMIT = 40
USER_LIMIT = 24
SERVICE_LIMIT = 40
FORWARD_LIMIT = 80
NETNS_LIMIT = 40
# A command line can be megabytes (or a hostile 10,000-character argument); the table shows the
# start of it. `list --json` has the whole thing.
COMMAND_LIMIT = 400

_ORDER = {r: i for i, r in enumerate(PortRange)}
_LISTEN_STATES = (LISTEN, UDP_BOUND)


@dataclass(frozen=True)
class Layout:
    """What a socket table shows beyond the base columns: owner facts (SERVICE, forwards; without
    them those cells are empty), the namespace column, the --stats columns, colour."""

    facts: OwnerFacts | None = None
    netns: bool = False
    stats: bool = False
    color: bool = False

    def headers(self) -> tuple[str, ...]:
        cols = list(SOCKET_COLUMNS)
        if self.stats:
            at = cols.index("EXPOSURE") + 1
            cols[at:at] = STATS_COLUMNS
        if self.netns:
            cols.insert(1, NETNS_COLUMN)
        return tuple(cols)

    def csv_headers(self) -> tuple[str, ...]:
        return (
            CSV_COLUMNS
            + (CSV_NETNS_COLUMNS if self.netns else ())
            + (CSV_STATS_COLUMNS if self.stats else ())
        )


PLAIN = Layout()


def needs_netns_column(socks: Iterable[Sock]) -> bool:
    """A NETNS column is shown when some socket is not in the namespace portscope runs in."""
    return any(s.netns for s in socks)


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


def service_cell(svc: Service | None) -> str:
    """The SERVICE cell: the unit or container name (a socket-activated listener: its .socket unit),
    escaped and cut."""
    return "" if svc is None else service_name(svc, SERVICE_LIMIT)


def extra_holders(sock: Sock, snapshot: Snapshot) -> int:
    """How many visible processes besides the primary owner hold ``sock`` (the "+N")."""
    if not sock.inode or sock.inode not in snapshot.holders:
        return 0
    return max(0, len(snapshot.holders_of(sock)) - 1)


def process_cell(name: str, sock: Sock, snapshot: Snapshot, facts: OwnerFacts | None) -> str:
    """The PROCESS cell: the primary owner's name, ``+N`` when N more processes hold the socket (a
    pre-fork server's workers), and a forwarder's label: ``ssh (ssh tunnel → 127.0.0.1:8088 via
    user@host)``."""
    n = extra_holders(sock, snapshot)
    if n:
        name = f"{name} +{n}"
    if facts is not None and sock.pid is not None:
        fwd = facts.forward(snapshot, sock)
        if fwd is not None:
            name = f"{name} ({fwd.label(FORWARD_LIMIT)})"
    return name


def format_bytes(n: int | None) -> str:
    """``512B``, ``1.5KiB``, ``2.0MiB``: ASCII, one decimal from KiB up."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n}B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f}{unit}"
    return f"{n}B"  # pragma: no cover


def format_rtt(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f}ms" if ms >= 10 else f"{ms:.2f}ms"


def queue_cell(q: Queue | None) -> tuple[str, bool]:
    """``3/128``, and whether it is marked (at least 80% of the backlog: ``4/4!``)."""
    if q is None:
        return "-", False
    from app.health import queue_marked  # --stats only

    marked = queue_marked(q)
    return f"{q.current}/{q.max}{'!' if marked else ''}", marked


def stats_cells(sock: Sock, snapshot: Snapshot) -> list[str]:
    """RTT, RETRANS, RX, TX, QUEUE of one socket: a TCP connection's numbers from its tcp_info,
    a TCP listener's accept queue; empty where a column does not apply, ``-`` where the kernel
    gave nothing (a socket without a file descriptor)."""
    from app.health import queue, tcp_info

    if sock.proto is not Proto.TCP:
        return ["", "", "", "", ""]
    if sock.listening:
        text, _marked = queue_cell(queue(snapshot.stats, sock.inode))
        return ["", "", "", "", text]
    info = tcp_info(snapshot.stats, sock.inode)
    if info is None:
        return ["-", "-", "-", "-", ""]
    retrans = "-" if info.total_retrans is None else str(info.total_retrans)
    return [
        format_rtt(info.rtt_ms),
        retrans,
        format_bytes(info.bytes_received),
        format_bytes(info.bytes_sent),
        "",
    ]


def socket_row(
    sock: Sock,
    snapshot: Snapshot,
    exposure: ExposureMap,
    cache: OwnerCells | None = None,
    layout: Layout = PLAIN,
    services: dict[int, str] | None = None,
) -> list[str]:
    """One table row; every untrusted string escaped and cut to its column's limit. Pass the
    same ``cache`` (and ``services``) for the rows of one snapshot to escape each owner's strings
    once."""
    proto = sock.proto.value + ("6" if sock.family is Family.IPV6 else "")
    note = "ephemeral" if sock.listening and snapshot.in_ephemeral(sock) else ""
    name, user, command = _owner_cells(sock, snapshot, cache)
    facts = layout.facts
    service = ""
    if facts is not None and sock.pid is not None:
        hit = services.get(sock.pid) if services is not None and sock.pid != 1 else None
        if hit is None:
            hit = service_cell(facts.service(snapshot, sock))
            if services is not None and sock.pid != 1:  # pid 1: socket activation, per socket
                services[sock.pid] = hit
        service = hit
    row = [
        proto,
        printable(str(sock.laddr)),  # an IPv6 scope id is an interface name: untrusted
        printable(str(sock.raddr)) if sock.raddr else "*",
        sock.status,
        exposure.classify(sock.laddr.ip).label,
        str(sock.pid) if sock.pid is not None else "-",
        process_cell(name, sock, snapshot, facts),
        user,
        service,
        note,
        command,
    ]
    if layout.stats:
        row[5:5] = stats_cells(sock, snapshot)
    if layout.netns:
        row.insert(1, netns_cell(sock, snapshot))
    return row


def socket_rows(
    socks: Sequence[Sock], snapshot: Snapshot, exposure: ExposureMap, layout: Layout = PLAIN
) -> list[list[str]]:
    """:func:`socket_row` of each socket (the same lists), for a whole table: what depends only on
    the owner (pid, name, user, command, service, whether it forwards), on the address (its
    escaped text, its exposure) or on the protocol is worked out once, so a row of 20k costs a
    few lookups. (With ``--stats`` or a NETNS column: :func:`socket_row` row by row.)"""
    if layout.stats or layout.netns:
        cache: OwnerCells = {}
        services: dict[int, str] = {}
        return [socket_row(s, snapshot, exposure, cache, layout, services) for s in socks]
    facts = layout.facts
    # pid -> (pid, name, user, command, service, whether it may forward): the owner's cells
    owners: dict[int, tuple[str, str, str, str, str, bool]] = {}
    # local address -> (its escaped text up to the port, its exposure); remote address -> the text
    places: dict[str, tuple[str, str]] = {}
    ips: dict[str, str] = {}  # (an IPv6 scope id is an interface name: untrusted)
    shared = snapshot.holders
    lo, hi = snapshot.ephemeral
    rows: list[list[str]] = []
    append = rows.append
    for s in socks:
        laddr, raddr, pid, status = s.laddr, s.raddr, s.pid, s.status
        lip, lport = laddr
        place = places.get(lip) or _place(places, lip, exposure)
        local = f"{place[0]}{lport}"
        if raddr is None:
            remote = "*"
        else:
            rip = raddr[0]
            remote = f"{ips.get(rip) or _address(ips, rip)}{raddr[1]}"
        note = "ephemeral" if lo <= lport <= hi and status in _LISTEN_STATES else ""
        proto = _PROTO_TEXT[s.proto, s.family]
        if pid is None:
            name = "-" if s.ownerless else "?"
            if s.inode in shared:
                name = process_cell(name, s, snapshot, facts)
            append([proto, local, remote, status, place[1], "-", name, "", "", note, ""])
            continue
        cells = owners.get(pid)
        if cells is None:
            cells = owners[pid] = _owner_row_cells(pid, s, snapshot, facts)
        pid_text, name, user, command, service, forwards = cells
        if pid == 1 and facts is not None:  # socket activation: a unit per listener
            service = service_cell(facts.service(snapshot, s))
        if forwards or s.inode in shared:
            name = process_cell(name, s, snapshot, facts)
        append([proto, local, remote, status, place[1], pid_text, name, user, service, note, command])
    return rows


def _before_port(ip: str) -> str:
    """An address's escaped text as an endpoint shows it before the port: ``[::1]:``, ``1.2.3.4:``."""
    text = printable(ip)
    return f"[{text}]:" if ":" in ip else f"{text}:"


def _address(cache: dict[str, str], ip: str) -> str:
    """:func:`_before_port`, kept in ``cache``."""
    text = cache[ip] = _before_port(ip)
    return text


def _place(cache: dict[str, tuple[str, str]], ip: str, exposure: ExposureMap) -> tuple[str, str]:
    """(:func:`_before_port`, the exposure's label) of a local address, kept in ``cache``."""
    hit = cache[ip] = (_before_port(ip), exposure.classify(ip).label)
    return hit


_PROTO_TEXT = {
    (proto, family): proto.value + ("6" if family is Family.IPV6 else "")
    for proto in Proto
    for family in Family
}


def _owner_row_cells(
    pid: int, sock: Sock, snapshot: Snapshot, facts: OwnerFacts | None
) -> tuple[str, str, str, str, str, bool]:
    """(pid, process, user, command, service, may forward) of ``pid``'s rows (see socket_rows)."""
    name, user, command = _owner_cells(sock, snapshot, None)
    service = service_cell(facts.service(snapshot, sock)) if facts is not None and pid != 1 else ""
    owner = snapshot.processes.get(pid)
    forwards = facts is not None and owner is not None and might_forward(owner.cmdline)
    return str(pid), name, user, command, service, forwards


def netns_cell(sock: Sock, snapshot: Snapshot) -> str:
    info = snapshot.namespaces.get(sock.netns)
    if info is None:
        return "current" if not sock.netns else f"netns {sock.netns}"
    label = info.label  # escaped text already
    return label if len(label) <= NETNS_LIMIT else label[: NETNS_LIMIT - 1] + "…"


def row_styles(
    sock: Sock, exposure: ExposureMap, row: Sequence[str], col: Mapping[str, int]
) -> list[str | None]:
    """The colour role of each cell of ``row`` (see app/cli/color.py): exposure beyond loopback,
    states, a marked queue, a hidden owner, the ephemeral note. ``col``: header -> index."""
    styles: list[str | None] = [None] * len(row)
    styles[col["STATE"]] = state_style(sock.status)
    place = exposure.classify(sock.laddr.ip)
    if place.beyond_loopback or place.kind.value == "unknown":
        styles[col["EXPOSURE"]] = exposure_style(place.kind.value)
    if "QUEUE" in col and row[col["QUEUE"]].endswith("!"):
        styles[col["QUEUE"]] = "trouble"
    if row[col["PROCESS"]] == "?":
        styles[col["PROCESS"]] = "dim"
    if row[col["NOTE"]]:
        styles[col["NOTE"]] = "note"
    return styles


def csv_row(sock: Sock, snapshot: Snapshot, exposure: ExposureMap, layout: Layout = PLAIN) -> list[object]:
    """One CSV record of raw values (:func:`to_csv` escapes and neutralises them once)."""
    owner = snapshot.owner(sock)
    facts = layout.facts
    svc = facts.service(snapshot, sock) if facts is not None else None
    fwd = facts.forward(snapshot, sock) if facts is not None else None
    holders = snapshot.holders_of(sock) if owner is not None else ()
    row: list[object] = [
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
        _raw_service(svc),
        " ".join(str(p) for p in holders),
        forward_text(fwd) if fwd is not None else "",
    ]
    if layout.netns:
        info = snapshot.namespaces.get(sock.netns)
        row += [info.inode if info else "", (info.name or info.label) if info else ""]
    if layout.stats:
        row += _csv_stats(sock, snapshot)
    return row


def _raw_service(svc: Service | None) -> str:
    if svc is None:
        return ""
    if svc.kind == SOCKET:
        return svc.unit or ""
    return svc.name


def _csv_stats(sock: Sock, snapshot: Snapshot) -> list[object]:
    from app.health import queue, tcp_info

    if sock.proto is not Proto.TCP:
        return ["", "", "", "", "", ""]
    if sock.listening:
        q = queue(snapshot.stats, sock.inode)
        return ["", "", "", "", *((q.current, q.max) if q else ("", ""))]
    info = tcp_info(snapshot.stats, sock.inode)
    if info is None:
        return ["", "", "", "", "", ""]
    return [
        "" if info.rtt_ms is None else info.rtt_ms,
        "" if info.total_retrans is None else info.total_retrans,
        "" if info.bytes_received is None else info.bytes_received,
        "" if info.bytes_sent is None else info.bytes_sent,
        "",
        "",
    ]


def cell_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide (CJK, emoji) characters count 2, combining marks 0."""
    if text.isascii():
        return len(text)
    import unicodedata

    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - cell_width(text))


def _fit(line: str, width: int | None) -> tuple[int, bool]:
    """How many characters of ``line`` fit in ``width`` columns, and whether it is cut (then the
    kept part leaves one column for an ellipsis)."""
    if width is None or cell_width(line) <= width:
        return len(line), False
    used = 0
    for i, ch in enumerate(line):
        w = cell_width(ch)
        if used + w > width - 1:
            return i, True
        used += w
    return len(line), False  # pragma: no cover: the whole line fits after all


def _cut(line: str, width: int) -> str:
    keep, cut = _fit(line, width)
    return line[:keep] + "…" if cut else line


if TYPE_CHECKING:
    Styles = Sequence[str | None]


def render(
    rows: Sequence[Sequence[str]],
    headers: Sequence[str],
    width: int | None = None,
    styles: Sequence[Styles] | None = None,
    color: bool = False,
) -> list[str]:
    """Align ``rows`` under ``headers``; each line is cut to ``width`` columns when given. With
    ``color``, each cell whose entry in ``styles`` (one list per row) names a role is wrapped in
    its escape sequence: widths and cuts are measured on the text alone, so the columns line up
    as without colour, and a sequence never lands inside a cell's text."""
    n_cols = len(headers)
    if not (color and styles) and all(len(row) == n_cols for row in rows):
        return _render_plain(rows, headers, width)
    widths = [cell_width(h) for h in headers]
    measured: list[list[int]] = []  # each row's cell widths, measured once
    measure = _width_memo()
    for row in rows:
        cws = [measure(cell) for cell in row]
        measured.append(cws)
        for i, w in enumerate(cws[:-1]):
            if w > widths[i]:
                widths[i] = w
    lines = [_plain_line(list(headers), [cell_width(h) for h in headers], widths, width)]
    for n, row in enumerate(rows):
        cws = measured[n]
        if not color or not styles:
            lines.append(_plain_line(row, cws, widths, width))
            continue
        row_styles = styles[n]
        line = _plain_line(row, cws, widths, None)
        cut = width is not None and cell_width(line) > width
        if cut or any(st and row[i][-1:].isspace() for i, st in enumerate(row_styles[: len(row)])):
            # cut, or a styled cell the line's rstrip may reach into: place each sequence by count
            lines.append(_painted(line, row, widths, row_styles, width))
            continue
        last = len(row) - 1
        parts = [
            paint(cell, row_styles[i] if i < len(row_styles) else None, True)
            + (" " * (widths[i] - cws[i]) if i < last else "")
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def _width_memo() -> Callable[[str], int]:
    """:func:`cell_width` remembering each non-ASCII text (an owner's command repeats per row)."""
    memo: dict[str, int] = {}

    def measure(text: str) -> int:
        if text.isascii():
            return len(text)
        w = memo.get(text)
        if w is None:
            w = memo[text] = cell_width(text)
        return w

    return measure


def _render_plain(rows: Sequence[Sequence[str]], headers: Sequence[str], width: int | None) -> list[str]:
    """:func:`render` without colour, column by column (each line is what :func:`_plain_line`
    makes of its row): a column of ASCII text is measured by ``len`` in C and padded by the
    line's ``%-Ns`` (one ``%`` per line), others cell by cell, each distinct text measured once.
    The last column is never padded, so its width is not needed."""
    widths = [cell_width(h) for h in headers]
    columns: list[Sequence[str]] = list(zip(*rows, strict=True)) if rows else []
    specs: list[str] = []
    padded = False  # some column is not ASCII: its cells are padded here, one by one
    measure = _width_memo()
    for i, col in enumerate(columns[:-1]):
        if "".join(col).isascii():  # (a joined str knows whether it is ASCII without a scan)
            widths[i] = max(widths[i], max(map(len, col)))
            specs.append(f"%-{widths[i]}s")
        else:
            cws = list(map(measure, col))
            widths[i] = max(widths[i], max(cws))
            w = widths[i]
            columns[i] = [cell + " " * (w - cw) for cell, cw in zip(col, cws, strict=True)]
            specs.append("%s")
            padded = True
    lines = [_plain_line(list(headers), [cell_width(h) for h in headers], widths, width)]
    if not rows:
        return lines
    specs.append("%s")
    fmt = "  ".join(specs)
    cells = zip(*columns, strict=True) if padded else map(tuple, rows)
    body = map(str.rstrip, map(fmt.__mod__, cells))
    lines.extend(body if width is None else (_cut(line, width) for line in body))
    return lines


def _plain_line(row: Sequence[str], cws: Sequence[int], widths: Sequence[int], width: int | None) -> str:
    last = len(row) - 1
    line = "  ".join(
        [cell + " " * (widths[i] - cws[i]) if i < last else cell for i, cell in enumerate(row)]
    ).rstrip()
    return _cut(line, width) if width is not None else line


def _painted(line: str, row: Sequence[str], widths: Sequence[int], styles: Styles, width: int | None) -> str:
    """``line`` (the aligned plain text of ``row``) with each styled cell's text wrapped in its
    sequence, cut to ``width`` exactly as the plain line would be."""
    keep, cut = _fit(line, width)
    out: list[str] = []
    pos = 0
    for i, cell in enumerate(row):
        if pos >= keep:
            break
        text = cell[: keep - pos]
        out.append(paint(text, styles[i] if i < len(styles) else None, True))
        pos += len(cell)
        if i < len(row) - 1:
            gap = " " * (widths[i] - cell_width(cell)) + "  "
            gap = gap[: max(0, keep - pos)]
            out.append(gap)
            pos += widths[i] - cell_width(cell) + 2
    return "".join(out) + ("…" if cut else "")


def terminal_width() -> int | None:
    """The terminal's width when standard output is one (``shutil.get_terminal_size``'s answer:
    ``$COLUMNS``, else the terminal's, else 200), else ``None``: nothing is cut."""
    if not sys.stdout.isatty():
        return None
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 200


def _table(
    socks: list[Sock], snapshot: Snapshot, exposure: ExposureMap, layout: Layout
) -> tuple[list[str], list[list[str]]]:
    headers = layout.headers()
    rows = socket_rows(socks, snapshot, exposure, layout)
    styles = None
    if layout.color:
        col = {h: i for i, h in enumerate(headers)}
        styles = [row_styles(s, exposure, r, col) for s, r in zip(socks, rows, strict=True)]
    lines = render(rows, headers, terminal_width(), styles, layout.color)
    return lines, rows


def heading(text: str, color: bool) -> str:
    """A heading line (``── registered 1024-49151 (3 sockets)``), cut to the terminal's width."""
    width = terminal_width()
    return paint(_cut(text, width) if width is not None else text, "heading", color)


def grouped_socket_table(
    socks: list[Sock], snapshot: Snapshot, exposure: ExposureMap, layout: Layout = PLAIN
) -> list[str]:
    """Sockets as one aligned table with a heading line per IANA range (in range order)."""
    rank = _ORDER
    ports = [s.laddr[1] for s in socks]
    if ports and min(ports) >= 0 and max(ports) <= 65535:  # port_range's ranks, without a call each
        wk, reg = PortRange.WELL_KNOWN.bounds[1], PortRange.REGISTERED.bounds[1]
        a, b, c = (rank[r] for r in (PortRange.WELL_KNOWN, PortRange.REGISTERED, PortRange.DYNAMIC))
        ranks = [a if p <= wk else b if p <= reg else c for p in ports]
    else:
        ranks = [rank[port_range(p)] for p in ports]  # (it says what is wrong with a port)
    if any(map(gt, ranks, islice(ranks, 1, None))):  # (a snapshot's order is already by port)
        order = sorted(range(len(socks)), key=ranks.__getitem__)  # stable: keeps each range's order
        socks = [socks[i] for i in order]
        ranks = [ranks[i] for i in order]
    lines, _rows = _table(socks, snapshot, exposure, layout)
    out = [lines[0]]
    start = 1
    for current in PortRange:  # one heading, then the range's lines
        count = ranks.count(rank[current])
        if count:
            out.append(
                heading(f"── {current.heading} ({count} socket{'s' if count != 1 else ''})", layout.color)
            )
            out.extend(lines[start : start + count])
            start += count
    return out


def socket_table(
    socks: list[Sock], snapshot: Snapshot, exposure: ExposureMap, layout: Layout = PLAIN
) -> list[str]:
    lines, _rows = _table(socks, snapshot, exposure, layout)
    return lines


def holder_lines(sock: Sock, snapshot: Snapshot, facts: OwnerFacts | None) -> list[str]:
    """One line per process holding ``sock`` (primary first) when more than one does: pid, name,
    user, service. For ``who``, under the socket's row."""
    holders = OwnerFacts.holders(snapshot, sock)
    if len(holders) < 2:
        return []
    out = []
    for i, info in enumerate(holders):
        branch = "└─" if i == len(holders) - 1 else "├─"
        user = f" ({printable(info.username, USER_LIMIT)})" if info.username else ""
        svc = service_cell(facts.process_service(info)) if facts is not None else ""
        parts = [f"    {branch} pid {info.pid} {printable(info.name, NAME_LIMIT) or '-'}{user}"]
        if svc:
            parts.append(svc)
        if i == 0:
            parts.append("primary")
        out.append("  ".join(parts))
    width = terminal_width()
    return [_cut(line, width) for line in out] if width is not None else out


def _csv_field(text: str) -> str:
    """One field as csv.writer (QUOTE_MINIMAL, lineterminator "\\n") writes it inside a row."""
    if not text:
        return ""  # alone in a row, csv writes "" for it; inside a row, nothing
    import csv
    import io

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
