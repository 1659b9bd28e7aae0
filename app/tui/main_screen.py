"""The dashboard's main screen: its layout, views, filter line, bars, footer and row actions.

Layout, top to bottom: the tab strip (with host and time on its right), the bar of the current
view (ranges in Listening, states in Connections), the view (a table or the events) beside the
detail pane, the filter line (the box and its error), the status line and the footer.

The screen's keys come from the action table (:mod:`app.tui.actions`). They are the screen's, not
the app's: while a dialog is open none of them is active, so the dialog owns Tab, the arrows and
every letter. A key that does not apply in the current view says so in a short notice.

Data and polling belong to the app (:class:`app.tui.app.PortscopeApp`); after each applied poll
the app calls :meth:`MainScreen.after_poll`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Input, Static

from app.errors import UsageError
from app.events import Event, EventKind
from app.filtering import Filter, Filterable, parse_filter
from app.model import Proto, Snapshot, Sock
from app.textsafe import printable
from app.tui import actions as act
from app.tui.actions import BY_ID, EVENTS, INTERFACES, LISTENING, SOCKETS, TABLES, VIEW_TITLES, VIEWS
from app.tui.detail import DetailPane, Selected
from app.tui.rows import Prepared, SockRow
from app.tui.state import RANGE_CHOICES, narrows, text_predicate
from widgets.bars import RangeBar, StateBar, StatusLine, TopBar
from widgets.close_modal import CloseRequest, start_close
from widgets.events_view import EventsView
from widgets.explain_panel import start_explain
from widgets.free_port import start_free_port
from widgets.keybar import KeyBar, KeyItem
from widgets.kill_modal import start_port_kill
from widgets.palette import OK, WARN
from widgets.probe_panel import start_probe
from widgets.scan_panel import start_scan
from widgets.table_model import TableModel
from widgets.tabstrip import Tab, TabStrip
from widgets.vtable import VTable

if TYPE_CHECKING:
    from app.tui.app import PortscopeApp

TABLE_IDS = {LISTENING: "listen-table", "connections": "conn-table", INTERFACES: "iface-table"}
PANE_IDS = {**TABLE_IDS, EVENTS: "events-pane"}
SHORT_TITLES = {LISTENING: "Listen", "connections": "Conns", INTERFACES: "Ifaces", EVENTS: "Events"}
RANGE_LABELS = {"ephemeral": "in ephemeral"}
FILTER_PLACEHOLDER = "filter: text, :8080, pid:1, user:, proc:, range:, state:, exposed, new"
BOX_ACTIONS = {"filter", "clear", "scroll_detail"}  # their keys belong to the box while it has the focus


class FilterBox(Input):
    """The filter box. Enter and Esc act at once, in the order the keys were typed, and a key that
    reaches the box after it handed the focus back (typed right after Enter or Esc, on its way
    meanwhile) is handed on to the app, to go where the focus is now, instead of being typed in."""

    async def _on_key(self, event: events.Key) -> None:
        screen = self.screen
        if screen.focused is not self:  # (has_focus follows only when the Blur event is handled)
            event.stop()
            event.prevent_default()
            self.app.post_message(events.Key(event.key, event.character))
            return
        if isinstance(screen, MainScreen) and event.key in ("enter", "escape"):
            event.stop()
            event.prevent_default()
            if event.key == "enter":
                screen.submit_filter(self.value)
            else:
                screen.action_clear()
            return
        await super()._on_key(event)


class MainScreen(Screen[None]):
    """The dashboard's only screen; dialogs and the help open above it."""

    BINDINGS = act.bindings("screen")

    def __init__(self, portscope: PortscopeApp) -> None:
        super().__init__(id="main")
        self.portscope = portscope
        d = portscope.dashboard
        clock = portscope.clock
        self.view = LISTENING
        self._previous_view = LISTENING
        self.filter: Filter | None = None  # applied (the live preview while typing)
        self.submitted: Filter | None = None  # the last filter submitted with Enter
        # what each socket table was last filtered with: the one on screen follows the filter at
        # once, the other when it is shown (a key typed in the box filters one table, not two)
        self._filtered: dict[str, Filter | None] = {LISTENING: None, "connections": None}
        self.range_choice = "all"
        self.state_choice: str | None = None
        self.tables = {
            LISTENING: VTable(d.listening, clock=clock, id="listen-table", empty_text="no listeners"),
            "connections": VTable(
                d.connections, clock=clock, id="conn-table", empty_text="no connections (yet)"
            ),
            INTERFACES: VTable(d.interfaces, clock=clock, id="iface-table", empty_text="no interfaces"),
        }
        self.events_view = EventsView(id="events-pane")
        self.detail = DetailPane(portscope.process_detail_source, id="detail")
        self.tabs = TabStrip(
            [
                Tab(v, str(n), VIEW_TITLES[v], SHORT_TITLES[v], f"screen.view('{v}')")
                for n, v in enumerate(VIEWS, 1)
            ],
            id="tabs",
        )
        self.topbar = TopBar(id="topbar")
        self.rangebar = RangeBar(id="ranges")
        self.statebar = StateBar(id="states")
        self.filter_input = FilterBox(placeholder=FILTER_PLACEHOLDER, id="filter", select_on_focus=False)
        self.filter_error = Static(id="filter-error", markup=False)
        self._error_shown = False
        self.status = StatusLine(id="status")
        self.keys = KeyBar(id="keys")
        self._chrome_pending = False
        self.chrome_updates = 0  # times the bars, status line and footer were brought up to date

    # ---------------------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="header"):
            yield self.tabs
            yield self.topbar
        yield self.rangebar
        yield self.statebar
        with Horizontal(id="body"):
            with ContentSwitcher(initial=PANE_IDS[LISTENING], id="views"):
                yield from self.tables.values()
                yield self.events_view
            yield self.detail
        with Horizontal(id="filter-line"):
            yield self.filter_input
            yield self.filter_error
        yield self.status
        yield self.keys

    def on_mount(self) -> None:
        self.filter_input.cursor_blink = self.portscope.blink
        self.filter_input.compact = True
        for table in self.tables.values():
            table.model.add_listener(self._model_changed)
        self.set_focus(self.table())
        self._show_view_chrome()
        self.update_chrome()
        start = self.portscope.config.start_view
        if start != self.view and start in VIEWS:
            self.action_view(start)

    def on_unmount(self) -> None:
        for table in self.tables.values():
            table.model.remove_listener(self._model_changed)

    def _model_changed(self, _anchor: bool) -> None:
        """The bars and the status line count the models' rows: follow them, once per refresh."""
        if not self._chrome_pending:
            self._chrome_pending = True
            self.call_after_refresh(self._flush_chrome)

    def _flush_chrome(self) -> None:
        if self._chrome_pending:  # (not when update_chrome ran since: after a poll it does)
            self.update_chrome()

    # ------------------------------------------------------------------------- accessors

    def table(self, view: str | None = None) -> VTable:
        """The table of ``view`` (the current one by default; the listening table in Events)."""
        view = view or self.view
        return self.tables.get(view, self.tables[LISTENING])

    def model(self, view: str | None = None) -> TableModel:
        return self.table(view).model

    def selected_socket(self) -> tuple[Sock, Snapshot] | None:
        """The socket under the cursor and the snapshot it came from (None on a group header,
        an empty table, or a view without sockets)."""
        if self.view not in SOCKETS:
            return None
        model = self.model()
        row = model.cursor_row()
        if row is None:
            return None
        return self.portscope.dashboard.socket_for(model, row.key)

    def selected_row(self) -> SockRow | None:
        """The payload of the socket row under the cursor (None where :meth:`selected_socket` is)."""
        if self.view not in SOCKETS:
            return None
        row = self.model().cursor_row()
        return row.payload if row is not None and isinstance(row.payload, SockRow) else None

    def _detail_target(self) -> Selected | None:
        sel = self.selected_socket()
        if sel is None:
            return None
        return Selected(sel[0], sel[1], self.selected_row(), self.portscope.dashboard.health)

    def _applies(self, action_id: str) -> bool:
        """True if the action applies in the current view; else a short notice says where it does."""
        a = BY_ID[action_id]
        if a.applies(self.view):
            return True
        key = act.keys_label(a).split()[0]
        name = a.command or a.title or a.does
        if set(a.views) == set(SOCKETS):
            where = "acts on a socket row: switch to Listening (1) or Connections (2)"
        else:
            places = [f"{VIEW_TITLES[v]} ({VIEWS.index(v) + 1})" for v in a.views]
            listed = places[0] if len(places) == 1 else ", ".join(places[:-1]) + " and " + places[-1]
            where = f"works in the {listed} view" + ("s" if len(places) > 1 else "")
        self.app.notify(f"{key} ({name}) {where}", timeout=3, markup=False)
        return False

    # --------------------------------------------------------------------------- polling

    def after_poll(self, prepared: Prepared) -> None:
        """A poll was applied to the tables: the bars, the status line and the detail follow."""
        if prepared.events:
            self.events_view.add_events(prepared.events, self.portscope.exposure, self._event_filter_row)  # type: ignore[arg-type]
        if self.detail.shown:
            self.detail.show_socket(self._detail_target())
        self.update_chrome()

    def _event_filter_row(self, event: Event) -> Filterable | None:
        """What the filter looks at for an event: its row's (service, forward, namespace too)."""
        d = self.portscope.dashboard
        model = d.listening if event.sock.listening else d.connections
        row = model.rows.get(event.key)
        if row is None or not isinstance(row.payload, SockRow) or row.payload.sock.pid != event.sock.pid:
            return None
        return row.payload.filter_row(new=event.kind is EventKind.OPENED)

    # ------------------------------------------------------------------------- the chrome

    def update_chrome(self) -> None:
        """Bars, status line and footer, from the current state."""
        self._chrome_pending = False
        self.chrome_updates += 1
        p = self.portscope
        d = p.dashboard
        self.topbar.show(
            host=printable(p.hostname, 64),
            clock_text=time.strftime("%H:%M:%S", time.localtime(p.clock())),
        )
        filtered = self.filter is not None
        if self.view == LISTENING:
            self.rangebar.show(
                d.listening,
                choices=RANGE_CHOICES,
                selected=self.range_choice,
                filtered=filtered,
                labels=RANGE_LABELS,
                action="screen.select_range",
            )
        elif self.view == "connections":
            self.statebar.show(
                d.connections, self.state_choice, filtered=filtered, action="screen.select_state"
            )
        self.status.show(self.status_parts())
        self.keys.show(self.footer_items())
        self.tabs.show(self.view)

    def status_parts(self) -> list[tuple[str, str]]:
        p = self.portscope
        parts: list[tuple[str, str]] = []
        if self.filter is not None:
            parts.append(("filter: " + printable(self.filter.text, 60), "bold"))
        if self.view in TABLES:
            model = self.model()
            noun = {LISTENING: "listeners", "connections": "connections", INTERFACES: "interfaces"}[self.view]
            parts.append((f"{model.row_count} of {len(model.rows)} {noun}", ""))
            col = model.columns[model.sort_column]
            parts.append((f"sort {col.label or col.key} {'▼' if model.sort_reverse else '▲'}", ""))
        else:
            ev = self.events_view
            parts.append((f"{ev.visible_count} of {ev.event_count} events", ""))
        if self.view == LISTENING and self.range_choice != "all":
            parts.append((f"range {RANGE_LABELS.get(self.range_choice, self.range_choice)}", "bold"))
        if self.view == "connections" and self.state_choice is not None:
            parts.append((f"state {self.state_choice.lower()}", "bold"))
        parts.append(("paused", f"bold {WARN}") if p.paused else (f"live every {p.interval:g}s", OK))
        if p.dns:
            parts.append(("dns on", ""))
        if p.netns_all:
            parts.append(("every netns", "bold"))
        snap = p.dashboard.snapshot
        if snap is not None and snap.hidden_owners:
            if snap.privileged:
                parts.append((f"{snap.hidden_owners} without visible owner", "dim"))
            else:
                parts.append((f"run as root to see all owners ({snap.hidden_owners} hidden)", WARN))
        return parts

    def footer_items(self) -> list[KeyItem]:
        items = []
        for a in act.footer_actions(self.view):
            title = a.toggled if a.toggled and a.id == "pause" and self.portscope.paused else a.title
            namespace = "app." if a.bound_by == "app" else "screen."
            action = a.action if "." in a.action else namespace + a.action
            items.append(KeyItem(act.footer_key(a), title, action, a.footer))
        return items

    def _show_view_chrome(self) -> None:
        self.rangebar.display = self.view == LISTENING
        self.statebar.display = self.view == "connections"
        self.set_class(self.view == EVENTS, "-events")

    # --------------------------------------------------------------------------- filter

    def _filter_table(self, view: str) -> None:
        if view not in self._filtered or self._filtered[view] is self.filter:
            return
        before = self._filtered[view]
        self._filtered[view] = self.filter
        narrowing = before is not None and self.filter is not None and narrows(before.text, self.filter.text)
        self.model(view).set_filter(text_predicate(self.filter), narrowing=narrowing)

    def _filter_shown_table(self) -> None:
        """The filter on the socket table on screen (the other one catches up when shown)."""
        self._filter_table(self.view)

    def _apply_filters(self, every: bool = True) -> None:
        """The filter and the selections on the tables: on both socket tables, or (``every``
        false: a key typed in the box) on the one on screen only, the other when it is shown."""
        d = self.portscope.dashboard
        self._filter_shown_table()
        if every:
            for view in self._filtered:
                self._filter_table(view)
        d.listening.set_selection(None if self.range_choice == "all" else self.range_choice)
        d.connections.set_selection(self.state_choice)
        self.events_view.set_filter(self.filter or parse_filter(""))
        self._update_empty_texts()
        self.update_chrome()

    def _update_empty_texts(self) -> None:
        if self.filter is not None:
            text = f"No sockets match '{printable(self.filter.text, 40)}': Esc clears the filter"
            self.table(LISTENING).no_match_text = text
            self.table("connections").no_match_text = text
            return
        rng = RANGE_LABELS.get(self.range_choice, self.range_choice)
        self.table(LISTENING).no_match_text = f"No listeners in '{rng}': Esc clears the selection"
        state = (self.state_choice or "").lower()
        self.table("connections").no_match_text = f"No connections in state {state}: Esc clears the selection"

    def _show_filter_error(self, message: str) -> None:
        self._error_shown = True
        self.filter_error.update(message)
        self.filter_input.add_class("-invalid")
        self.query_one("#filter-line").add_class("-invalid")

    def _clear_filter_error(self) -> None:
        if not self._error_shown:
            return  # (at every key typed: nothing to redraw)
        self._error_shown = False
        self.filter_error.update("")
        self.filter_input.remove_class("-invalid")
        self.query_one("#filter-line").remove_class("-invalid")

    def set_filter_text(self, text: str) -> bool:
        """Parse, apply and submit a filter; on a bad term notify and keep the old filter."""
        try:
            flt = parse_filter(text)
        except UsageError as exc:
            self.app.notify(str(exc), title="filter", severity="error", markup=False)
            return False
        self.filter = self.submitted = None if flt.is_empty else flt
        inp = self.filter_input
        if inp.value != text:
            with inp.prevent(Input.Changed):
                inp.value = text
        self._clear_filter_error()
        self.query_one("#filter-line").set_class(bool(text.strip()), "shown")
        self._apply_filters()
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # the box's own keys while it has the focus: `/` is text there (a path in a command line),
        # Esc and Ctrl+U are its editing keys, handled in order with the keys typed before them
        return not (action in BOX_ACTIONS and self.focused is self.filter_input)

    def action_filter(self) -> None:
        """``/``: open the filter line and focus its box *now*, not after a refresh: it is a
        priority key, run as the app reads it, so the keys typed right after it go to the box."""
        self.query_one("#filter-line").add_class("shown")
        inp = self.filter_input
        self.set_focus(inp)
        inp.cursor_position = len(inp.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        """A live preview while typing; a text that does not parse leaves the tables as they are
        and says why in the filter line. The box's text *now* counts, not the event's: a change
        still on its way after Enter or Esc must not bring an old text back."""
        if event.input is not self.filter_input or not self.query_one("#filter-line").has_class("shown"):
            return
        text = self.filter_input.value
        if not self._error_shown and text == (self.filter.text if self.filter is not None else ""):
            return  # (a change still on its way whose text is already applied: keys typed fast)
        try:
            flt = parse_filter(text)
        except UsageError as exc:
            self._show_filter_error(str(exc))
            return
        self._clear_filter_error()
        self.filter = None if flt.is_empty else flt
        self._apply_filters(every=False)

    def submit_filter(self, text: str) -> None:
        """Enter in the box: apply and keep ``text``, or keep the last submitted filter and show
        why ``text`` does not parse."""
        try:
            flt = parse_filter(text)
        except UsageError as exc:
            # back to the last submitted filter (not the prefix the preview showed); the box keeps
            # the text and the focus, the error stays beside it
            self.filter = self.submitted
            self._apply_filters()
            self._show_filter_error(str(exc))
            self.app.notify(str(exc), title="filter", severity="error", markup=False)
            return
        self.filter = self.submitted = None if flt.is_empty else flt
        self._clear_filter_error()
        self._apply_filters()
        if not text.strip():
            self.query_one("#filter-line").remove_class("shown")
        self.set_focus(self._pane_focus())

    def action_clear(self) -> None:
        inp = self.filter_input
        line = self.query_one("#filter-line")
        if inp.value or self.filter is not None or line.has_class("shown"):
            with inp.prevent(Input.Changed):
                inp.value = ""
            line.remove_class("shown")
            self._clear_filter_error()
            self.filter = self.submitted = None
            self._apply_filters()
            self.set_focus(self._pane_focus())
            return
        if self.detail.shown:
            self._show_detail(False)
            return
        if self.range_choice != "all" or self.state_choice is not None:
            self.range_choice = "all"
            self.state_choice = None
            self._apply_filters()

    # ------------------------------------------------------------------------- selections

    def action_select_range(self, name: str) -> None:
        if name not in RANGE_CHOICES:
            return
        self.range_choice = name
        if self.view != LISTENING:
            self.action_view(LISTENING)
        self._apply_filters()

    def action_range_step(self, step: int) -> None:
        if not self._applies("range_next" if step > 0 else "range_prev"):
            return
        i = RANGE_CHOICES.index(self.range_choice)
        self.action_select_range(RANGE_CHOICES[(i + step) % len(RANGE_CHOICES)])

    def action_select_state(self, state: str) -> None:
        self.state_choice = state or None
        if self.view != "connections":
            self.action_view("connections")
        self._apply_filters()

    def action_cycle_state(self) -> None:
        if not self._applies("state"):
            return
        totals = self.portscope.dashboard.connections.facet_totals
        states = sorted((s for s, n in totals.items() if n > 0), key=lambda s: (-totals[s], s))
        choices: list[str | None] = [None, *states]
        if self.state_choice not in choices:
            choices.append(self.state_choice)
        i = choices.index(self.state_choice)
        nxt = choices[(i + 1) % len(choices)]
        self.action_select_state(nxt or "")

    # ---------------------------------------------------------------------------- views

    def _pane_focus(self) -> Any:
        return self.events_view.table if self.view == EVENTS else self.table()

    def action_view(self, view: str) -> None:
        if view not in VIEWS:
            return
        if view != self.view:
            self._previous_view = self.view
        self.view = view
        self._filter_shown_table()
        self.query_one("#views", ContentSwitcher).current = PANE_IDS[view]
        self._show_view_chrome()
        if self.focused is not self.filter_input:
            # the box keeps the focus: a view key typed just before `/` may be handled after it
            self.set_focus(self._pane_focus())
        if view in TABLES:
            table = self.table()
            self.call_after_refresh(table.model_changed, False)  # its size is known after the switch
        if self.detail.shown:
            self.detail.show_socket(self._detail_target())
        self.update_chrome()

    def action_next_view(self) -> None:
        self.action_view(VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)])

    def action_prev_view(self) -> None:
        self.action_view(VIEWS[(VIEWS.index(self.view) - 1) % len(VIEWS)])

    def action_toggle_events(self) -> None:
        """``e`` / ``4``: the Events view, or back to the view before it."""
        if self.view == EVENTS:
            self.action_view(self._previous_view if self._previous_view != EVENTS else LISTENING)
        else:
            self.action_view(EVENTS)

    # ----------------------------------------------------------------------------- sort

    def action_sort_next(self) -> None:
        if not self._applies("sort_next"):
            return
        table = self.table()
        model = table.model
        shown = model.shown_columns()
        later = [i for i in shown if i > model.sort_column]
        column = later[0] if later else shown[0]
        table.sort_by(column, reverse=model.columns[column].reverse_first)

    def action_sort_reverse(self) -> None:
        if not self._applies("sort_reverse"):
            return
        table = self.table()
        table.sort_by(table.model.sort_column, reverse=not table.model.sort_reverse)

    def sort_by_column(self, view: str, column: int) -> None:
        """The palette's "sort by <column>"."""
        if view != self.view:
            self.action_view(view)
        table = self.table()
        table.sort_by(column, reverse=table.model.columns[column].reverse_first)

    # ------------------------------------------------------------------------------- dns

    def action_toggle_dns(self) -> None:
        if not self._applies("dns"):
            return
        p = self.portscope
        p.dns = not p.dns
        self.app.notify("reverse DNS on: names appear as they resolve" if p.dns else "reverse DNS off")
        self.table("connections").refresh()
        self.update_chrome()

    # ---------------------------------------------------------------------------- detail

    def _show_detail(self, show: bool) -> None:
        self.detail.set_class(show, "shown")
        if show:
            self.detail.show_socket(self._detail_target(), now=True)

    def action_detail(self) -> None:
        if not self._applies("detail"):
            return
        self._show_detail(not self.detail.shown)

    def action_scroll_detail(self, direction: int) -> None:
        if not self.detail.shown:
            self.app.notify("the detail pane is closed: Enter on a socket row opens it", timeout=3)
            return
        self.detail.scroll_page(direction)

    def on_vtable_selected(self, message: VTable.Selected) -> None:
        if message.table is self.tables[INTERFACES]:
            self._applies("detail")  # the notice
            return
        self.action_detail()

    def on_vtable_cursor_moved(self, message: VTable.CursorMoved) -> None:
        if self.detail.shown and message.table is self.table():
            self.detail.show_socket(self._detail_target())

    # --------------------------------------------------------------------------- actions

    def _selected_or_tell(self) -> tuple[Sock, Snapshot] | None:
        sel = self.selected_socket()
        if sel is None:
            self.app.notify("select a socket row first", severity="warning")
        return sel

    def action_kill(self) -> None:
        """K: the kill dialog for what holds the selected row's port (nothing is sent before you
        confirm); it plans exactly what ``portscope kill PORT --proto P`` would signal."""
        if not self._applies("kill"):
            return
        sel = self._selected_or_tell()
        if sel is None:
            return
        sock, snap = sel
        start_port_kill(self.app, snap, sock, timeout=self.portscope.kill_timeout)

    def action_test_port(self) -> None:
        """t: test the selected row's service. A listener tests its own address; a connection tests
        the server end: its local endpoint when it was accepted by one of our listeners, else the peer."""
        if not self._applies("test"):
            return
        sel = self._selected_or_tell()
        if sel is None:
            return
        sock, snap = sel
        host, port = sock.laddr.ip, sock.laddr.port
        if sock.raddr is not None:
            port_no = sock.laddr.port
            served_here = any(
                s.listening and s.proto == sock.proto and s.laddr.port == port_no for s in snap.sockets
            )
            if not served_here:
                host, port = sock.raddr.ip, sock.raddr.port
        start_probe(self.app, host, port, sock.proto.value)

    def action_explain(self) -> None:
        """x: why the selected row's port can or cannot be reached, in a panel (it runs in a worker)."""
        if not self._applies("explain"):
            return
        sel = self._selected_or_tell()
        if sel is None:
            return
        sock, _snap = sel
        start_explain(self.app, sock.laddr.port, sock.proto.value, events=self.events_view.events)

    def action_close_connection(self) -> None:
        """X: close the selected TCP connection after a confirm (its process keeps running)."""
        if not self._applies("close"):
            return
        sel = self._selected_or_tell()
        if sel is None:
            return
        sock, snap = sel
        if sock.proto is not Proto.TCP or sock.raddr is None:
            self.app.notify(
                "only a TCP connection can be closed (UDP has none)", severity="warning", markup=False
            )
            return
        row = self.selected_row()
        owner = snap.owner(sock)
        if owner is not None:
            who = (
                f"pid {owner.pid} ({printable(owner.name, 40)}), user {printable(owner.username, 32) or '?'}"
            )
        elif sock.pid is not None:
            who = f"pid {sock.pid}"
        else:
            who = "no visible owner"
        if row is not None and row.holders > 1:
            who += f" and {row.holders - 1} more holder{'s' if row.holders > 2 else ''}"
        request = CloseRequest(sock.laddr, sock.raddr, sock.status, sock.inode, who, sock.netns)
        start_close(self.app, request, self.portscope.closer)

    def action_toggle_netns(self) -> None:
        """n: every network namespace, or only this one again."""
        if not self._applies("netns"):
            return
        if not self.portscope.can_switch_netns:
            self.app.notify(
                "every network namespace needs the Linux netlink collector", severity="warning", markup=False
            )
            return
        self.portscope.toggle_netns()

    def action_scan(self) -> None:
        start_scan(self.app)

    def action_free_port(self) -> None:
        start_free_port(self.app)

    def on_resize(self, event: events.Resize) -> None:
        self.topbar.display = event.size.width >= 60  # narrow: the tabs need the whole line
        self.update_chrome()
