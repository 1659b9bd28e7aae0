"""Every key of the dashboard, in one table (the help screen and the README come from here)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# (keys, what it does, where)
KEYS: tuple[tuple[str, str, str], ...] = (
    ("↑ ↓  j k", "move the cursor", "tables"),
    ("g G  Home End", "first / last row", "tables"),
    ("PgUp PgDn", "page up / down", "tables"),
    ("← →  h l", "collapse / expand the range group", "listening"),
    ("Enter", "detail pane for the row (on a group header: collapse/expand)", "tables"),
    ("mouse", "click a row to select, a header to sort, a group to fold", "tables"),
    ("Tab  Shift+Tab", "next / previous view", "all"),
    ("1 2 3", "listening / connections / interfaces view", "all"),
    ("/", "filter (Enter to apply, Esc to clear)", "all"),
    ("Esc", "clear the filter, close the detail pane", "all"),
    ("s  S", "sort by the next column / reverse the order", "tables"),
    ("[ ]", "select the previous / next range (all, well-known, …)", "listening"),
    ("c", "cycle the state filter (e.g. only CLOSE_WAIT)", "connections"),
    ("d", "reverse DNS of remote addresses on/off", "connections"),
    ("K", "kill the owner of the row (a dialog shows what will be signalled; asks first)", "tables"),
    ("t", "test the row's port: connect, latency, banner, HTTP, TLS, UDP", "tables"),
    ("p", "scan a port range on a host", "all"),
    ("f", "find a free port and copy it", "all"),
    ("e  4", "show / hide this session's events (opened, closed, changed)", "all"),
    ("space", "pause / resume live refresh", "all"),
    ("r", "refresh now", "all"),
    ("Ctrl+P", "command palette (every action)", "all"),
    ("?", "this help", "all"),
    ("q", "quit", "all"),
)

FILTER_TERMS: tuple[tuple[str, str], ...] = (
    ("word", "process, user, command line, address or port contains it"),
    (":8080  port:8080", "local or remote port (port:8000-8100 for a range)"),
    ("pid:123", "owned by that pid"),
    ("user:root", "owner's user name contains it"),
    ("proc:nginx", "process name or command line contains it"),
    ("range:dynamic", "local port in well-known / registered / dynamic"),
    ("state:close_wait", "that state (listen, established, time_wait, bound…)"),
    ("tcp  udp", "that protocol"),
    ("exposed", "reachable beyond loopback"),
    ("new", "appeared recently (green)"),
    ("-TERM", "negation of any term"),
)

__all__ = ["FILTER_TERMS", "KEYS", "HelpScreen", "help_text"]


def help_table() -> Table:
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=False)
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("does")
    table.add_column("in", style="dim", no_wrap=True)
    for keys, what, where in KEYS:
        table.add_row(Text(keys), Text(what), Text(where))
    return table


def filter_table() -> Table:
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=False)
    table.add_column("filter term", style="bold cyan", no_wrap=True)
    table.add_column("matches")
    for term, what in FILTER_TERMS:
        table.add_row(Text(term), Text(what))
    return table


def help_text() -> str:
    """Plain text of the help (for tests)."""
    lines = [f"{k}  {w}  ({where})" for k, w, where in KEYS]
    lines += [f"{t}  {w}" for t, w in FILTER_TERMS]
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    """Every key and filter term."""

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss_help", "Close", show=True),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    HelpScreen .title { text-style: bold; color: $accent; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("portscope keys  (Esc, q or ? to close)", classes="title")
            yield Static(help_table())
            yield Static("")
            yield Static(filter_table())

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
