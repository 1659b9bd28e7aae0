"""The detail pane's text: a socket, its owning process and the other sockets it holds.

Everything from the process (name, exe, cwd, cmdline, user) is untrusted: escaped with
:func:`app.textsafe.printable` and appended to a rich ``Text`` as plain text, never markup.
"""

from __future__ import annotations

import time

from rich.text import Text

from app.model import Snapshot, Sock
from app.procdetail import ProcessDetail, SocketsOf, format_bytes
from app.textsafe import printable

MAX_OTHER_SOCKETS = 200


def _field(text: Text, label: str, value: str, style: str = "") -> None:
    text.append(f"{label:<9}", style="bold")
    text.append(value, style=style)
    text.append("\n")


def sock_line(sock: Sock) -> str:
    line = f"{sock.proto.value} {sock.laddr}"
    if sock.raddr is not None:
        line += f" -> {sock.raddr}"
    return f"{line}  {sock.status}"


def render_detail(
    sock: Sock,
    snapshot: Snapshot,
    detail: ProcessDetail | None,
    others: SocketsOf | None,
    *,
    loading: bool = False,
) -> Text:
    text = Text()
    text.append(sock_line(sock) + "\n", style="bold")
    _field(text, "range", f"{sock.range.value}" + ("  (in ephemeral)" if snapshot.in_ephemeral(sock) else ""))
    if sock.pid is None:
        text.append("\nno visible owner", style="yellow")
        if not snapshot.privileged:
            text.append(" (run as root to see all owners)", style="yellow")
        text.append("\n")
        return text
    owner = snapshot.owner(sock)
    text.append("\n")
    _field(text, "pid", str(sock.pid))
    if detail is None:
        if owner is not None:
            _field(text, "name", printable(owner.name, 200))
            _field(text, "user", printable(owner.username, 64))
        text.append("loading process details…\n" if loading else "", style="dim")
    else:
        if detail.gone:
            text.append("the process has exited\n", style="yellow")
        _field(text, "name", printable(detail.name or (owner.name if owner else ""), 200))
        _field(text, "user", printable(detail.username, 64))
        _field(text, "exe", printable(detail.exe, 400))
        _field(text, "cwd", printable(detail.cwd, 400))
        started = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(detail.create_time))
            if detail.create_time
            else "?"
        )
        _field(text, "started", started)
        cpu = f"{detail.cpu_percent:.1f} %" if detail.cpu_percent is not None else "?"
        _field(text, "cpu", cpu)
        _field(text, "memory", format_bytes(detail.memory_rss) + " resident")
        chain = " <- ".join(f"{pid} {printable(name, 40)}" for pid, name in detail.parents)
        _field(text, "parents", chain or "-")
        text.append("cmdline\n", style="bold")
        text.append("  " + (printable(" ".join(detail.cmdline), 2000) or "-") + "\n")
        if detail.denied:
            text.append(f"not readable: {', '.join(detail.denied)}\n", style="dim")
    if others is not None:
        text.append(f"\nsockets held ({others.total})\n", style="bold")
        for shown, other in enumerate((*others.listening, *others.connections)):
            if shown >= MAX_OTHER_SOCKETS:
                text.append(f"  … {others.total - shown} more\n", style="dim")
                break
            mark = "*" if other == sock else " "
            text.append(f" {mark}{sock_line(other)}\n")
    return text
