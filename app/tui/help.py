"""The help screen: every key (from the action table, :mod:`app.tui.actions`) and filter term.

On a narrow screen the columns stack: each key on its own line, what it does indented below.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from app.tui.actions import ACTIONS, keys_label, where_label
from app.tui.columns import QUEUE_GLYPH, STALLED_GLYPH, STORM_GLYPH
from app.tui.formatting import wrap
from widgets.palette import KEY

FILTER_TERMS: tuple[tuple[str, str], ...] = (
    ("word", "process, user, command line, address or port contains it"),
    (":8080  port:8080", "local or remote port (port:8000-8100 for a range)"),
    ("pid:123", "owned by that pid"),
    ("user:root", "owner's user name contains it"),
    ("proc:nginx", "process name or command line contains it"),
    ("range:dynamic", "local port in well-known / registered / dynamic"),
    ("state:close_wait", "that state (listen, established, time_wait, bound…)"),
    ("tcp  udp", "that protocol"),
    ("unit:nginx", "the owner's systemd unit (or socket unit) contains it"),
    ("container:web", "the owner's container: name, id or image contains it"),
    ("netns:host", "the socket's network namespace contains it (with n: every namespace)"),
    ("tunnel", "the owner is a forwarder: ssh -L/-R/-D, kubectl port-forward, docker-proxy, socat…"),
    ("exposed", "reachable beyond loopback"),
    ("new", "appeared recently (in the theme's success colour: green by default)"),
    ("-TERM", "negation of any term"),
)

MARKS = (
    ("colours", "new / changed / closed rows in the theme's success / warning / error colours"),
    ("◦ before a port", "the port is in the ephemeral range (the kernel may hand it to a client)"),
    ("+2 after a process", "two more processes hold the socket (a pre-fork server's workers)"),
    (f"{STALLED_GLYPH} before a state", "stalled: unacked data and no progress for several polls"),
    (f"{STORM_GLYPH} before a state", "a retransmit storm since the last poll"),
    (
        f"{QUEUE_GLYPH} before a queue or port",
        "the accept queue is 80% full, or the host dropped connections",
    ),
    ("mouse", "click a row to select, a header to sort, a group to fold, a tab or bar item"),
)

STACK_BELOW = 72  # content width under which the columns stack

__all__ = ["FILTER_TERMS", "HelpScreen", "help_text"]


def key_rows() -> list[tuple[str, str, str]]:
    return [(keys_label(a), a.does, where_label(a.views)) for a in ACTIONS]


class _Text:
    """Literal text pieces and their styles (theme variables), made into one Content."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str]] = []

    def append(self, text: str, style: str = "") -> None:
        self.parts.append((text, style))


def _section(text: _Text, title: str, rows: list[tuple[str, str, str]], width: int) -> None:
    """Wide: key | what it does (where), wrapped under its own column. Narrow: the key on its
    own line, what it does indented below."""
    text.append(title + "\n", style="bold underline")
    stacked = width < STACK_BELOW
    indent = 4 if stacked else max(len(k) for k, _, _ in rows) + 2
    for key, does, where in rows:
        text.append(key if stacked else key.ljust(indent), style=f"bold {KEY}")
        if stacked:
            text.append("\n" + " " * indent)
        lines = wrap(does, width - indent)
        where_text = f"({where})" if where else ""
        if where_text and len(lines[-1]) + 2 + len(where_text) > width - indent:
            lines.append("")
        for n, line in enumerate(lines):
            if n:
                text.append(" " * indent)
            text.append(line)
            if where_text and n == len(lines) - 1:
                text.append(("  " if line else "") + where_text, style="dim")
            text.append("\n")


def render_help(width: int) -> Content:
    text = _Text()
    _section(text, "keys", key_rows(), width)
    text.append("\n")
    _section(
        text, "filter terms (combine them; all must match)", [(t, w, "") for t, w in FILTER_TERMS], width
    )
    text.append("\n")
    _section(text, "marks", [(m, w, "") for m, w in MARKS], width)
    return Content.assemble(*text.parts)


def help_text() -> str:
    """Plain text of the help, unwrapped (for tests)."""
    return render_help(10_000).plain


class HelpScreen(ModalScreen[None]):
    """Every key and filter term."""

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss_help", "Close", show=True),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 110; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    HelpScreen .title { text-style: bold; color: $accent; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("portscope keys  (Esc, q or ? to close)", classes="title")
            yield Static(id="help-body")

    def on_resize(self, _event: events.Resize) -> None:
        self.call_after_refresh(self._layout)

    def on_mount(self) -> None:
        self._layout()

    def _layout(self) -> None:
        scroll = self.query_one(VerticalScroll)
        width = scroll.content_region.width or min(106, self.size.width - 4)
        self.query_one("#help-body", Static).update(render_help(max(20, width - 1)))

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
