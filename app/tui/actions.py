"""Every key of the dashboard, in one table.

The table generates the main screen's and the app's key bindings, the help screen, the footer
(only the keys that apply in the current view, by priority), the command palette (each command
with its key) and README's key table (``scripts/readme_keys.py`` writes it, the README test
compares it). Adding a key is adding one :class:`Action` here and its ``action_*`` method.

``bound_by`` says who binds the keys: ``screen`` (the main screen: nothing of it is active while a
dialog is open, so dialogs own their keys), ``app`` (everywhere, dialogs included), ``table``
(the table widget binds them itself; a test checks it binds exactly these) or ``textual``
(Textual's own, the command palette).

Every screen key is a *priority* binding: Textual runs those as it reads each key, in order, with
the focus as it is then. An ordinary binding runs only when the key has bubbled up from the
focused widget, later, against the focus of that later moment: under load a view key typed just
before ``/`` would then be checked against the filter box and lost. (The box still gets the
printable keys while it has the focus: Textual leaves a key to a widget that consumes it.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from textual.binding import Binding, BindingType

LISTENING, CONNECTIONS, INTERFACES, EVENTS = "listening", "connections", "interfaces", "events"
VIEWS = (LISTENING, CONNECTIONS, INTERFACES, EVENTS)
VIEW_TITLES = {LISTENING: "Listening", CONNECTIONS: "Connections", INTERFACES: "Interfaces", EVENTS: "Events"}
TABLES = (LISTENING, CONNECTIONS, INTERFACES)
SOCKETS = (LISTENING, CONNECTIONS)

BoundBy = Literal["screen", "app", "table", "textual"]


@dataclass(frozen=True, slots=True)
class Action:
    id: str
    keys: tuple[str, ...]  # Textual key names; the first is the one the footer shows
    does: str  # for the help screen, the palette and README
    action: str = ""  # the Textual action ("" for keys bound by the table widget or Textual)
    title: str = ""  # the footer's label
    command: str = ""  # the command palette's title ("" : not in the palette)
    views: tuple[str, ...] = VIEWS  # where it applies
    footer: int = 0  # footer priority, 1 kept longest; 0: never in the footer
    bound_by: BoundBy = "screen"
    priority: bool = False  # an app key checked before the focused widget sees it (screen keys all are)
    toggled: str = ""  # the footer's label while what it toggles is on (Pause -> Resume)

    def applies(self, view: str) -> bool:
        return view in self.views


ACTIONS: tuple[Action, ...] = (
    # the table widget's own keys
    Action("cursor", ("up", "down", "j", "k"), "move the cursor", views=TABLES, bound_by="table"),
    Action("ends", ("home", "end", "g", "G"), "first / last row", views=TABLES, bound_by="table"),
    Action(
        "page",
        ("pageup", "pagedown", "ctrl+b", "ctrl+f"),
        "page up / down",
        views=TABLES,
        bound_by="table",
    ),
    Action(
        "fold",
        ("left", "right", "h", "l"),
        "collapse / expand the range group",
        views=(LISTENING,),
        bound_by="table",
    ),
    Action(
        "detail",
        ("enter",),
        "detail pane for the row: owner, its process tree, its sockets (on a group header: fold it)",
        action="detail",
        title="Detail",
        command="Detail pane",
        views=SOCKETS,
        footer=7,
        bound_by="table",
    ),
    # views
    Action("next_view", ("tab",), "next view", action="next_view"),
    Action("prev_view", ("shift+tab",), "previous view", action="prev_view"),
    Action(
        "listening",
        ("1",),
        "Listening view: listeners grouped by port range",
        action="view('listening')",
        command="Listening view",
    ),
    Action(
        "connections",
        ("2",),
        "Connections view: every connection, by state",
        action="view('connections')",
        command="Connections view",
    ),
    Action(
        "interfaces",
        ("3",),
        "Interfaces view: addresses, gateway, rates",
        action="view('interfaces')",
        command="Interfaces view",
    ),
    Action(
        "events",
        ("4", "e"),
        "Events view: this session's opened / closed / changed sockets (again: back)",
        action="toggle_events",
        title="Events",
        command="Events",
        footer=14,
    ),
    # narrowing
    Action(
        "filter",
        ("slash",),
        "filter (Enter applies, Esc clears; a bad term keeps the last filter)",
        action="filter",
        title="Filter",
        command="Filter",
        footer=3,
    ),
    Action(
        "clear",
        ("escape",),
        "clear the filter, close the detail pane, clear the range / state selection",
        action="clear",
        command="Clear filter",
    ),
    Action(
        "range_prev",
        ("left_square_bracket",),
        "previous range: all, well-known, registered, dynamic, exposed, in ephemeral",
        action="range_step(-1)",
        views=(LISTENING,),
    ),
    Action(
        "range_next",
        ("right_square_bracket",),
        "next range (the range bar is clickable too)",
        action="range_step(1)",
        title="Range",
        command="Next range",
        views=(LISTENING,),
        footer=10,
    ),
    Action(
        "state",
        ("c",),
        "cycle the state filter (e.g. only CLOSE_WAIT)",
        action="cycle_state",
        title="State",
        command="Cycle state filter",
        views=(CONNECTIONS,),
        footer=10,
    ),
    Action(
        "sort_next",
        ("s",),
        "sort by the next column (or click a column header)",
        action="sort_next",
        title="Sort",
        command="Sort by next column",
        views=TABLES,
        footer=9,
    ),
    Action(
        "sort_reverse",
        ("S",),
        "reverse the sort order",
        action="sort_reverse",
        command="Reverse sort",
        views=TABLES,
    ),
    Action(
        "dns",
        ("d",),
        "reverse DNS of remote addresses on / off",
        action="toggle_dns",
        title="DNS",
        command="Reverse DNS",
        views=(CONNECTIONS,),
        footer=11,
    ),
    # acting on a socket
    Action(
        "kill",
        ("K",),
        "kill what holds the row's port: every process, the master first (a dialog shows them; asks first)",
        action="kill",
        title="Kill",
        command="Kill what holds the port",
        views=SOCKETS,
        footer=4,
    ),
    Action(
        "close",
        ("X",),
        "close the row's TCP connection, keeping its process (as portscope close; asks first; needs root)",
        action="close_connection",
        title="Close conn",
        command="Close this connection",
        views=(CONNECTIONS,),
        footer=6,
    ),
    Action(
        "test",
        ("t",),
        "test the row's port: connect, latency, banner, HTTP, TLS, UDP",
        action="test_port",
        title="Test",
        command="Test port",
        views=SOCKETS,
        footer=5,
    ),
    Action(
        "explain",
        ("x",),
        "explain the row's port: who holds it, where it is bound, localhost, firewall, what to do",
        action="explain",
        title="Explain",
        command="Explain this port",
        views=SOCKETS,
        footer=7,
    ),
    Action(
        "netns",
        ("n",),
        "every network namespace on / off (containers' own sockets; a Netns column says where)",
        action="toggle_netns",
        title="Netns",
        command="Every network namespace",
        views=SOCKETS,
        footer=15,
    ),
    Action(
        "scan",
        ("p",),
        "scan a port range on a host",
        action="scan",
        title="Scan",
        command="Scan ports",
        footer=12,
    ),
    Action(
        "free",
        ("f",),
        "find a free port and copy it to the clipboard",
        action="free_port",
        title="Free port",
        command="Free port",
        footer=6,
    ),
    Action(
        "detail_down",
        ("ctrl+d",),
        "scroll the detail pane down",
        action="scroll_detail(1)",
        command="Scroll the detail pane down",
        views=TABLES,
    ),
    Action(
        "detail_up",
        ("ctrl+u",),
        "scroll the detail pane up",
        action="scroll_detail(-1)",
        command="Scroll the detail pane up",
        views=TABLES,
    ),
    # refresh
    Action(
        "pause",
        ("space",),
        "pause / resume live refresh",
        action="app.toggle_pause",
        title="Pause",
        command="Pause / resume",
        footer=8,
        toggled="Resume",
    ),
    Action(
        "refresh",
        ("r",),
        "refresh now (also while paused)",
        action="app.refresh_now",
        title="Refresh",
        command="Refresh now",
        footer=13,
    ),
    # everywhere
    Action("palette", ("ctrl+p",), "command palette (every action, with its key)", bound_by="textual"),
    Action(
        "help",
        ("question_mark",),
        "this help",
        action="help",
        title="Help",
        command="Help",
        footer=2,
        bound_by="app",
    ),
    Action("quit", ("q",), "quit", action="quit", title="Quit", footer=1, bound_by="app"),
    Action(
        "quit_now",
        ("ctrl+c",),
        "quit, from anywhere (the filter box and dialogs too)",
        action="quit",
        bound_by="app",
        priority=True,
    ),
)

BY_ID: Mapping[str, Action] = {a.id: a for a in ACTIONS}

_KEY_LABELS = {
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
    "home": "Home",
    "end": "End",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "enter": "Enter",
    "escape": "Esc",
    "tab": "Tab",
    "shift+tab": "Shift+Tab",
    "slash": "/",
    "question_mark": "?",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "space": "Space",
}


def key_label(key: str) -> str:
    """How a Textual key name reads on screen: ``question_mark`` -> ``?``, ``ctrl+p`` -> ``Ctrl+P``."""
    if key in _KEY_LABELS:
        return _KEY_LABELS[key]
    if key.startswith("ctrl+"):
        return "Ctrl+" + key[5:].upper()
    return key


def keys_label(action: Action) -> str:
    return " ".join(key_label(k) for k in action.keys)


def footer_key(action: Action) -> str:
    key = action.keys[0]
    return "⏎" if key == "enter" else key_label(key)


def where_label(views: tuple[str, ...]) -> str:
    if set(views) == set(VIEWS):
        return "everywhere"
    if set(views) == set(TABLES):
        return "tables"
    return ", ".join(VIEW_TITLES[v].lower() for v in views)


def actions_for(bound_by: BoundBy) -> list[Action]:
    return [a for a in ACTIONS if a.bound_by == bound_by]


def footer_actions(view: str) -> list[Action]:
    """The footer's actions in the given view, in table order."""
    return [a for a in ACTIONS if a.footer and a.applies(view)]


def readme_key_table(actions: Iterable[Action] = ACTIONS) -> str:
    """README's key table, exactly (``scripts/readme_keys.py`` writes it into README.md)."""
    lines = ["| key | does | where |", "|-----|------|-------|"]
    for a in actions:
        keys = " ".join(f"`{key_label(k)}`" for k in a.keys)
        lines.append(f"| {keys} | {a.does} | {where_label(a.views)} |")
    return "\n".join(lines)


def bindings(bound_by: BoundBy) -> list[BindingType]:
    """The Textual bindings of the actions bound by ``bound_by`` (``screen`` or ``app``). None is
    shown by Textual's footer: the dashboard draws its own (:func:`footer_actions`)."""
    return [
        Binding(
            ",".join(a.keys),
            a.action,
            a.title or a.does,
            show=False,
            priority=a.priority or bound_by == "screen",
            id=a.id,
        )
        for a in actions_for(bound_by)
    ]
