"""The detail pane: a socket, its health, its owning process, what it belongs to, the process
tree around it and its sockets.

:class:`DetailPane` is a widget with its own worker: hand it the selected socket with
:meth:`DetailPane.show_socket` and it reads the process (blocking psutil calls) in a thread
worker, debounced while the cursor moves; a result for a row the cursor has left is dropped.
It scrolls (``Ctrl+D`` / ``Ctrl+U`` from the table, or the arrows when it has the focus) and
renders for its own width: long values wrap with a hanging indent under their label.

Everything from the process (name, exe, cwd, cmdline, user) is untrusted: escaped with
:func:`app.textsafe.printable` and appended as literal text, never markup; its styles name theme
variables (:mod:`widgets.palette`), so the pane follows the theme.

"belongs to" names the service (unit or container) and the command that stops it for good, every
process holding the socket (the primary owner first) and a forwarder's target; for a connection,
its rates, RTT and retransmits with a throughput sparkline, and the owner's totals (bytes/s and
connections over all of its sockets). These come from the row (prepared in the poll thread) and
the poll's :class:`~app.tui.rows.HealthView`; nothing here blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from textual import events
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from app.model import ProcessInfo, Snapshot, Sock
from app.owners import OwnerFacts
from app.procdetail import ProcessDetail, SocketsOf, format_bytes, sockets_of
from app.textsafe import printable
from app.tui.columns import QUEUE_GLYPH, STALLED_GLYPH, STORM_GLYPH
from app.tui.formatting import fmt_rate, fmt_rtt, sparkline, wrap
from app.tui.rows import HealthView, SockRow
from widgets.palette import ALERT, WARN

MAX_OTHER_SOCKETS = 200
MAX_HOLDERS = 20  # holders listed in "belongs to"; the rest are counted
SPARK_WIDTH = 30
LABEL = 9  # the label column; continuation lines are indented this far
DEBOUNCE = 0.15  # seconds the cursor must rest on a row before its process is read


def sock_line(sock: Sock) -> str:
    line = f"{sock.proto.value} {sock.laddr}"
    if sock.raddr is not None:
        line += f" -> {sock.raddr}"
    return f"{line}  {sock.status}"


def _cut(line: str, width: int) -> str:
    return line if cell_len(line) <= width else set_cell_size(line, max(0, width - 1)) + "…"


class _Parts:
    """Text pieces with their styles, made into one :class:`~textual.content.Content` at the end:
    the text is literal (never markup) and the styles name theme variables, so the pane follows
    the theme."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str]] = []

    def append(self, text: str, style: str = "") -> None:
        self.parts.append((text, style))

    def content(self) -> Content:
        return Content.assemble(*self.parts)


class _Writer:
    """Appends label/value fields, values wrapped under a hanging indent."""

    def __init__(self, width: int) -> None:
        self.text = _Parts()
        self.width = max(LABEL + 8, width)

    def field(self, label: str, value: str, style: str = "") -> None:
        self.text.append(f"{label:<{LABEL}}", style="bold")
        for n, line in enumerate(wrap(value, self.width - LABEL)):
            if n:
                self.text.append(" " * LABEL)
            self.text.append(line, style=style)
            self.text.append("\n")

    def line(self, value: str, style: str = "", indent: int = 0) -> None:
        self.text.append(" " * indent + _cut(value, self.width - indent) + "\n", style=style)


def _tree_lines(detail: ProcessDetail, ancestors: int = 2) -> list[tuple[str, bool]]:
    """The process tree as lines: pid 1, the nearest ``ancestors`` parents (``…`` for the ones
    between), the owner (marked) and its descendants. ``(line, is_owner)``."""
    chain = list(reversed(detail.parents))  # from pid 1 down
    if len(chain) > ancestors + 1:
        chain = [chain[0], (0, "…"), *chain[-ancestors:]]
    lines: list[tuple[str, bool]] = []
    for depth, (pid, name) in enumerate(chain):
        label = "…" if pid == 0 else f"{pid} {printable(name, 40)}"
        lines.append((("  " * (depth - 1) + "└ " if depth else "") + label, False))
    base = len(chain)
    owner = f"{detail.pid} {printable(detail.name, 40)}"
    lines.append((("  " * (base - 1) + "└ " if base else "") + owner, True))
    kids = detail.children
    for n, (depth, pid, name) in enumerate(kids):
        later = [d for d, _, _ in kids[n + 1 :] if d <= depth]
        last = not later or later[0] < depth
        prefix = ""
        for level in range(1, depth):
            # a vertical bar where an ancestor at that level still has siblings to come
            ancestor_open = any(d == level for d in _until_shallower(kids, n, level))
            prefix += "│ " if ancestor_open else "  "
        indent = "  " * base
        lines.append((indent + prefix + ("└ " if last else "├ ") + f"{pid} {printable(name, 40)}", False))
    return lines


def _until_shallower(kids: tuple[tuple[int, int, str], ...], n: int, level: int) -> list[int]:
    """Depths of the entries after ``n`` up to the first one shallower than ``level``."""
    out: list[int] = []
    for d, _, _ in kids[n + 1 :]:
        if d < level:
            break
        out.append(d)
    return out


@dataclass(frozen=True, slots=True)
class Selected:
    """What the pane shows: the socket, its snapshot, its row's payload and the poll's health."""

    sock: Sock
    snap: Snapshot
    row: SockRow | None = None
    health: HealthView | None = None


def _health(w: _Writer, row: SockRow, health: HealthView | None) -> None:
    """A connection's rates, RTT, retransmits and marks; a listener's accept queue."""
    sock = row.sock
    if row.queue is not None and row.queue_full:  # (a queue that is not is on the range line)
        q = row.queue
        text = f"{QUEUE_GLYPH} {q.current}/{q.max} waiting for accept(): 80% full or more"
        overflows = health.overflows if health is not None else 0
        if overflows:
            text += f"; the host counted {overflows} overflows since the last poll"
        w.field("queue", text, style=f"bold {ALERT}")
    if sock.listening or row.rx is None:
        return
    parts = [f"rx {fmt_rate(row.rx)}", f"tx {fmt_rate(row.tx)}"]
    if row.rtt is not None:
        parts.append(f"rtt {fmt_rtt(row.rtt)}")
    if row.retrans is not None:
        parts.append(f"retrans {row.retrans}")
    w.field("health", " · ".join(parts))
    if row.stalled:
        w.field(
            "", f"{STALLED_GLYPH} stalled: unacked data and no progress for several polls", f"bold {ALERT}"
        )
    if row.storm:
        w.field("", f"{STORM_GLYPH} retransmit storm since the last poll", f"bold {ALERT}")
    history = health.history(sock.inode) if health is not None else ()
    if history:
        w.field(
            "rx/s",
            sparkline([r.rx for r in history], SPARK_WIDTH) + f"  max {fmt_rate(max(r.rx for r in history))}",
        )
        w.field(
            "tx/s",
            sparkline([r.tx for r in history], SPARK_WIDTH) + f"  max {fmt_rate(max(r.tx for r in history))}",
        )


def _belongs_to(w: _Writer, row: SockRow, holders: list[ProcessInfo]) -> None:
    """The service and its stop command, every holder, the forward."""
    w.text.append("\nbelongs to\n", style="bold")
    svc = row.service
    if svc is not None:
        w.field("service", svc.label())
        stop = svc.stop_command()
        if stop:
            w.field("stop", stop)
    else:
        w.field("service", "no systemd unit or container", style="dim")
    if row.forward is not None:
        w.field("forward", row.forward.label())
    if row.netns:
        w.field("netns", row.netns)
    n = len(holders)
    w.field("holders", f"{n} process{'es' if n != 1 else ''}" + (" (primary owner first)" if n > 1 else ""))
    for i, info in enumerate(holders[:MAX_HOLDERS]):
        who = f"{info.pid} {printable(info.name, 40)} ({printable(info.username, 32) or '?'})"
        w.line(who + ("  primary" if i == 0 and n > 1 else ""), indent=2, style="bold" if i == 0 else "")
    if n > MAX_HOLDERS:
        w.line(f"+{n - MAX_HOLDERS} more", indent=2, style="dim")


def render_detail(
    sock: Sock,
    snapshot: Snapshot,
    detail: ProcessDetail | None,
    others: SocketsOf | None,
    *,
    loading: bool = False,
    width: int = 80,
    row: SockRow | None = None,
    health: HealthView | None = None,
) -> Content:
    w = _Writer(width)
    w.line(sock_line(sock), style="bold")
    where = f"{sock.range.value}" + ("  (in ephemeral)" if snapshot.in_ephemeral(sock) else "")
    if row is not None and row.queue is not None and not row.queue_full:
        where += f" · accept queue {row.queue.current}/{row.queue.max}"
    w.field("range", where)
    if row is not None:
        _health(w, row, health)
    if sock.pid is None:
        w.text.append("\nno visible owner", style=WARN)
        if not snapshot.privileged:
            w.text.append(" (run as root to see all owners)", style=WARN)
        w.text.append("\n")
        return w.text.content()
    owner = snapshot.owner(sock)
    w.text.append("\n")
    w.field("pid", str(sock.pid))
    if detail is None:
        if owner is not None:
            w.field("name", printable(owner.name, 200))
            w.field("user", printable(owner.username, 64))
        if loading:
            w.line("loading process details…", style="dim")
    else:
        if detail.gone:
            w.line("the process has exited", style=WARN)
        w.field("name", printable(detail.name or (owner.name if owner else ""), 200))
        w.field("user", printable(detail.username, 64))
        w.field("exe", printable(detail.exe, 400))
        w.field("cwd", printable(detail.cwd, 400))
        started = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(detail.create_time))
            if detail.create_time
            else "?"
        )
        w.field("started", started)
        w.field("cpu", f"{detail.cpu_percent:.1f} %" if detail.cpu_percent is not None else "?")
        w.field("memory", format_bytes(detail.memory_rss) + " resident")
        w.field("cmdline", printable(" ".join(detail.cmdline), 2000) or "-")
        if not detail.gone:
            n = len(detail.children) + detail.more_children
            w.text.append(f"\nprocess tree ({n} below it)\n", style="bold")
            for line, is_owner in _tree_lines(detail):
                w.line(line, style="bold" if is_owner else "", indent=2)
            if detail.more_children:
                w.line(f"… {detail.more_children} more", style="dim", indent=2)
        if detail.denied:
            w.field("denied", ", ".join(detail.denied), style="dim")
    if row is not None:
        _belongs_to(w, row, OwnerFacts.holders(snapshot, sock))
    if others is not None and health is not None:
        rx, tx, n = health.totals((*others.listening, *others.connections))
        w.field(
            "totals",
            f"pid {sock.pid}: rx {fmt_rate(rx)} · tx {fmt_rate(tx)} · {n} connection{'s' if n != 1 else ''}",
        )
    if others is not None:
        w.text.append(f"\nsockets held ({others.total})\n", style="bold")
        for shown, other in enumerate((*others.listening, *others.connections)):
            if shown >= MAX_OTHER_SOCKETS:
                w.line(f"… {others.total - shown} more", style="dim", indent=2)
                break
            mark = "*" if other == sock else " "
            w.line(f" {mark}{sock_line(other)}")
    return w.text.content()


@dataclass(slots=True)
class _Shown:
    sock: Sock
    snap: Snapshot
    row: SockRow | None = None
    health: HealthView | None = None
    detail: ProcessDetail | None = None
    others: SocketsOf | None = None
    loading: bool = False


class DetailPane(VerticalScroll, can_focus=True):
    """The selected socket's owner; ``show_socket(None)`` says what to select instead."""

    def __init__(
        self,
        process_detail: Callable[[int], ProcessDetail],
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._process_detail = process_detail
        self._shown: _Shown | None = None
        self._timer: Timer | None = None
        self._token = 0
        self._wanted: Selected | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="detail-text")

    @property
    def text_widget(self) -> Static:
        return self.query_one("#detail-text", Static)

    @property
    def shown(self) -> bool:
        return self.has_class("shown")

    def show_socket(self, selected: Selected | None, *, now: bool = False) -> None:
        """Show ``selected`` (the row's socket, its snapshot, its row and the poll's health);
        debounced unless ``now``."""
        self._wanted = selected
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if now:
            self._load()
        else:
            self._timer = self.set_timer(DEBOUNCE, self._load)

    def scroll_page(self, direction: int) -> None:
        """Half a page down (1) or up (-1): ``Ctrl+D`` / ``Ctrl+U``."""
        step = max(1, self.scrollable_content_region.height // 2)
        self.scroll_to(y=self.scroll_y + direction * step, animate=False)

    def _load(self) -> None:
        self._timer = None
        self._token += 1
        selected = self._wanted
        if selected is None:
            self._shown = None
            self.text_widget.update("select a socket row to see its owner")
            return
        sock, snap = selected.sock, selected.snap
        self._shown = _Shown(sock, snap, selected.row, selected.health, loading=sock.pid is not None)
        self._redraw()
        if sock.pid is None:
            return
        pid, token = sock.pid, self._token
        read = self._process_detail

        def work() -> tuple[int, ProcessDetail, SocketsOf]:
            try:
                return token, read(pid), sockets_of(snap, pid)
            except Exception as exc:  # never let the pane's worker die silently
                return token, ProcessDetail(pid, denied=(f"error: {exc}",)), SocketsOf(pid)

        self.run_worker(work, thread=True, exclusive=True, group="detail", exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "detail" or event.state is not WorkerState.SUCCESS:
            return
        result = event.worker.result
        if result is None:
            return
        token, detail, others = result
        if token != self._token or self._shown is None:
            return  # the cursor moved on meanwhile
        self._shown.detail, self._shown.others, self._shown.loading = detail, others, False
        self._redraw()

    def on_resize(self, _event: events.Resize) -> None:
        self._redraw()

    def _redraw(self) -> None:
        s = self._shown
        if s is None:
            return
        width = self.scrollable_content_region.width or 40
        self.text_widget.update(
            render_detail(
                s.sock, s.snap, s.detail, s.others, loading=s.loading, width=width, row=s.row, health=s.health
            )
        )
