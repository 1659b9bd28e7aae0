"""The Events view: this session's socket events, newest first, filterable like the tables.

Self-contained: the dashboard mounts an :class:`EventsView`, hands it each poll's events with
:meth:`EventsView.add_events` and forwards the filter box with :meth:`EventsView.set_filter`.
Untrusted text (process names, users) is escaped with :func:`app.textsafe.printable` and shown as
``rich.text.Text``, never parsed as markup.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.widgets.data_table import CellDoesNotExist

from app.events import Event, EventKind
from app.exposure import ExposureMap
from app.filtering import Filter, Filterable, parse_filter, row_for
from app.model import ProcessInfo, Sock
from app.textsafe import printable
from widgets.palette import ALERT, KEY, OK, WARN, rich_style

COLUMNS = ("time", "event", "proto", "local", "remote", "state", "pid", "process", "user")
MAX_EVENTS = 5000
SHOWN_MAX = 500  # rows in the table: the newest matching events (all MAX_EVENTS count for the filter)
KIND_STYLES = {  # theme variables (widgets.palette): the view follows the theme
    EventKind.OPENED: f"bold {OK}",
    EventKind.CLOSED: ALERT,
    EventKind.OWNER_CHANGED: f"bold {WARN}",
    EventKind.STATE_CHANGED: KEY,
}


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    event: Event
    row: Filterable  # what the filter looks at
    cells: list[tuple[Text, ...]]  # made when first shown (most events never are)

    def row_cells(self) -> tuple[Text, ...]:
        if not self.cells:
            self.cells.append(event_cells(self.event))
        return self.cells[0]


def _name(sock: Sock, owner: ProcessInfo | None) -> str:
    if owner is not None:
        return printable(owner.name, 40) or "?"
    return "?" if sock.pid is not None else "-"


def _pid(sock: Sock) -> str:
    return str(sock.pid) if sock.pid is not None else "-"


def event_cells(event: Event) -> tuple[Text, ...]:
    """The row of one event, one ``Text`` per column in :data:`COLUMNS` (the kind unstyled: its
    colour is the theme's, given when the row is drawn, :meth:`EventsView.kind_cell`)."""
    sock = event.sock
    proto = sock.proto.value + ("6" if sock.family.value == "ipv6" else "")
    state, pid = sock.status, _pid(sock)
    process = _name(sock, event.owner)
    user = printable(event.owner.username, 24) if event.owner else ""
    before = event.before
    if event.kind is EventKind.STATE_CHANGED and before is not None:
        state = f"{before.status}→{sock.status}"
    if event.kind is EventKind.OWNER_CHANGED and before is not None:
        pid = f"{_pid(before)}→{pid}"
        process = f"{_name(before, event.before_owner)}→{process}"
        old_user = printable(event.before_owner.username, 24) if event.before_owner else ""
        if old_user != user:
            user = f"{old_user or '?'}→{user or '?'}"
    return (
        Text(time.strftime("%H:%M:%S", time.localtime(event.time))),
        Text(event.kind.value),
        Text(proto),
        Text(str(sock.laddr)),
        Text(str(sock.raddr) if sock.raddr else "*"),
        Text(state),
        Text(pid, justify="right"),
        Text(process),
        Text(user),
    )


class EventsView(Widget):
    """This session's events (newest first, at most ``max_events``) in a table, with a status line.

    ``set_filter`` takes the same :class:`~app.filtering.Filter` as the dashboard's tables; the
    ``new`` term matches ``opened`` events, ``exposed`` events on sockets reachable beyond loopback.
    """

    DEFAULT_CSS = """
    EventsView {
        height: 1fr;
    }
    EventsView > #events-status {
        height: 1;
        color: $text-muted;
    }
    EventsView > DataTable {
        height: 1fr;
    }
    """

    def __init__(
        self,
        *,
        max_events: int = MAX_EVENTS,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.max_events = max_events
        self._entries: deque[_Entry] = deque(maxlen=max_events)  # newest first
        # the kept entries the filter lets through, newest first: a poll's events are filtered
        # once, as they arrive (the whole list again only when the filter changes, and then only
        # once asked for: None while the view is hidden, each key typed into the filter box
        # would otherwise look at every kept event again)
        self._matched: deque[_Entry] | None = deque()
        self.filter_checks = 0  # events looked at by the filter (for tests: work follows changes)
        self._filter: Filter = parse_filter("")
        self._seq = itertools.count()
        self.total_seen = 0  # events ever added this session, including those dropped off the end
        self._dirty = False  # events arrived while hidden: rebuild when shown

    def compose(self) -> ComposeResult:
        yield Static(id="events-status")
        yield DataTable(id="events-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.table.add_columns(*COLUMNS)
        self._rebuild()
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, _theme: object) -> None:
        self._rebuild(force=True)  # the kinds' colours are the new theme's

    def kind_cell(self, kind: EventKind) -> Text:
        """The event-kind cell in the current theme's colour for that kind."""
        return Text(kind.value, style=rich_style(self, KIND_STYLES[kind]))

    @property
    def table(self) -> DataTable[Text]:
        return self.query_one("#events-table", DataTable)

    @property
    def events(self) -> list[Event]:
        """Every kept event, newest first."""
        return [e.event for e in self._entries]

    @property
    def _matching(self) -> deque[_Entry]:
        matched = self._matched
        if matched is None:
            matched = self._matched = deque(e for e in self._entries if self._matches(e))
        return matched

    @property
    def visible_events(self) -> list[Event]:
        """The kept events the current filter lets through, newest first (as shown)."""
        return [e.event for e in self._matching]

    @property
    def event_count(self) -> int:
        """How many events are kept."""
        return len(self._entries)

    @property
    def visible_count(self) -> int:
        """How many kept events the current filter lets through."""
        return len(self._matching)

    def _matches(self, entry: _Entry) -> bool:
        self.filter_checks += 1
        return self._filter.matches(entry.row)

    @property
    def filter(self) -> Filter:
        return self._filter

    def add_events(
        self,
        events: Sequence[Event],
        exposure: ExposureMap,
        describe: Callable[[Event], Filterable | None] | None = None,
    ) -> None:
        """Add one poll's events (in diff order); they appear above the older ones. ``describe``
        gives what the filter looks at for an event when the caller knows more (its row's service,
        forward and namespace, for ``unit:``, ``container:``, ``netns:`` and ``tunnel``)."""
        if not events:
            return
        for event in reversed(events):  # the batch keeps its own order, above the older ones
            row = describe(event) if describe is not None else None
            if row is None:
                exposed = exposure.classify(event.sock.laddr.ip).beyond_loopback
                row = row_for(event.sock, event.owner, exposed, new=event.kind is EventKind.OPENED)
            entry = _Entry(next(self._seq), event, row, [])
            self._entries.appendleft(entry)
            if self._matched is not None and self._matches(entry):
                self._matched.appendleft(entry)
            self.total_seen += 1
        oldest = self._entries[-1].seq  # (entries pushed off the end of the kept ones)
        matching = self._matched
        while matching and matching[-1].seq < oldest:
            matching.pop()
        self._rebuild()

    def set_filter(self, flt: Filter) -> None:
        if flt.text != self._filter.text:  # (the same text filters alike: the dashboard hands
            self._filter = flt  # a new empty filter each time the tables' filters are applied)
            self._matched = None  # (looked for when shown or asked)
        self._rebuild()

    def clear_events(self) -> None:
        self._entries.clear()
        self._matched = deque()
        self._rebuild()

    def _status(self, shown: int) -> Text:
        n = len(self._entries)
        text = Text(f"{n} event{'s' if n != 1 else ''} this session")
        if self.total_seen > n:
            text.append(f" (oldest {self.total_seen - n} dropped)")
        if not self._filter.is_empty:
            text.append(f" · {shown} match ")
            text.append(printable(self._filter.text, 60), style="bold")
        if shown > SHOWN_MAX:
            text.append(f" · the newest {SHOWN_MAX} shown")
        return text

    def on_show(self) -> None:
        if self._dirty:
            self._rebuild(force=True)

    def _rebuild(self, force: bool = False) -> None:
        """Bring the table in line with the kept events and the filter: the newest
        :data:`SHOWN_MAX` matching events, newest first.

        Bounded work: the table never holds more than SHOWN_MAX rows (all kept events still count
        for the filter and :attr:`visible_events`), it is rebuilt in one batch only when what it
        should show changed, and not at all while the view is hidden (it catches up when shown).
        ``DataTable.remove_row`` is O(rows) per call, so rows are never removed one by one."""
        if not self.is_mounted:
            return
        if not self.display or (self.parent is not None and not self.parent.display):
            self._dirty = True
            return
        self._dirty = False
        table = self.table
        shown = list(itertools.islice(self._matching, SHOWN_MAX))
        keys = [str(e.seq) for e in shown]
        if force or [k.value for k in table.rows] != keys:
            keep_key: str | None = None
            if table.row_count and table.cursor_row > 0:  # at the top: keep following the newest
                try:
                    keep_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
                except CellDoesNotExist:
                    keep_key = None
            with self.app.batch_update():
                table.clear()
                kinds = {kind: self.kind_cell(kind) for kind in KIND_STYLES}
                for entry, key in zip(shown, keys, strict=True):
                    cells = entry.row_cells()
                    table.add_row(cells[0], kinds[entry.event.kind], *cells[2:], key=key)
            if keep_key is not None and keep_key in table.rows:
                table.move_cursor(row=table.get_row_index(keep_key), animate=False)
        self.query_one("#events-status", Static).update(self._status(len(self._matching)))
