"""The portscope dashboard: a live, keyboard-driven view over every socket.

Polling (:class:`app.tui.poller.Poller`): one background thread at a time runs
``collector.collect()`` and prepares the row deltas (pure data, no widgets), then posts one
:class:`SnapshotReady` message; its handler hands the result to the poller, which applies it to
the tables (or keeps it while paused or while a dialog is open) and schedules the next poll.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Footer, Input, Static

from app.collector import Collector, default_collector
from app.errors import PortscopeError, UsageError
from app.events import exposed_openings
from app.exposure import ExposureMap
from app.filtering import Filter, parse_filter
from app.interfaces import Interface, list_interfaces
from app.kill import KillTarget
from app.model import Snapshot, Sock, format_endpoint
from app.procdetail import ProcessDetail, SocketsOf, process_detail, sockets_of
from app.rdns import Resolver, ReverseDNS, system_resolver
from app.textsafe import printable
from app.tui.detail import render_detail
from app.tui.help import HelpScreen
from app.tui.poller import Poller
from app.tui.rows import Classifier, IfaceTracker
from app.tui.state import RANGE_CHOICES, Dashboard, Prepared, text_predicate
from widgets.bars import RangeBar, StateBar, TopBar
from widgets.events_view import EventsView
from widgets.free_port import start_free_port
from widgets.kill_modal import start_kill
from widgets.scan_panel import start_scan
from widgets.table_model import TableModel
from widgets.test_panel import start_port_test
from widgets.vtable import VTable

VIEWS = ("listening", "connections", "interfaces")
TABLE_IDS = {"listening": "listen-table", "connections": "conn-table", "interfaces": "iface-table"}


class SnapshotReady(Message):
    def __init__(self, prepared: Prepared) -> None:
        super().__init__()
        self.prepared = prepared


class PollFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class DetailReady(Message):
    def __init__(self, token: int, detail: ProcessDetail, others: SocketsOf) -> None:
        super().__init__()
        self.token = token
        self.detail = detail
        self.others = others


class DnsResolved(Message):
    pass


class PortscopeApp(App[None]):
    """``PortscopeApp(collector=..., interval=2.0)``; clock, hostname, exposure, interface and
    process-detail sources are injectable so tests can hand it fixed data."""

    CSS_PATH = "app.tcss"
    TITLE = "portscope"

    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear", "Clear", show=False),
        Binding("space", "toggle_pause", "Pause"),
        Binding("r", "refresh_now", "Refresh"),
        Binding("tab", "next_view", "Next view", priority=True, show=False),
        Binding("shift+tab", "prev_view", "Previous view", priority=True, show=False),
        Binding("1", "view('listening')", "Listening", show=False),
        Binding("2", "view('connections')", "Connections", show=False),
        Binding("3", "view('interfaces')", "Interfaces", show=False),
        Binding("s", "sort_next", "Sort"),
        Binding("S", "sort_reverse", "Reverse", show=False),
        Binding("left_square_bracket", "range_step(-1)", "Prev range", show=False),
        Binding("right_square_bracket", "range_step(1)", "Range"),
        Binding("c", "cycle_state", "State"),
        Binding("d", "toggle_dns", "DNS"),
        Binding("K", "kill", "Kill"),
        Binding("t", "test_port", "Test"),
        Binding("p", "scan", "Scan"),
        Binding("f", "free_port", "Free port"),
        Binding("e", "toggle_events", "Events"),
        Binding("4", "toggle_events", "Events", show=False),
    ]

    def __init__(
        self,
        collector: Collector | None = None,
        interval: float = 2.0,
        *,
        clock: Callable[[], float] = time.time,
        hostname: str | None = None,
        exposure: Classifier | None = None,
        interfaces: Callable[[], list[Interface]] | None = list_interfaces,
        process_detail_source: Callable[[int], ProcessDetail] = process_detail,
        resolver: Resolver = system_resolver,
        blink: bool = True,
        alert_exposed: bool = False,
    ) -> None:
        super().__init__()
        self.collector: Collector = collector if collector is not None else default_collector()
        self.interval = interval
        self.clock = clock
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self._interfaces = interfaces
        self._process_detail = process_detail_source
        self._blink = blink
        self.dashboard = Dashboard(exposure or ExposureMap(), clock, self._remote_text)
        self.exposed_alerts = 0  # new listeners beyond loopback announced (--alert-exposed)
        self._ifaces = IfaceTracker()
        self.rdns = ReverseDNS(resolver, on_resolved=lambda _ip: self._post(DnsResolved()))
        self.view = "listening"
        self.poller: Poller[Prepared] = Poller(
            interval=interval,
            schedule=self.set_timer,
            body=self._poll_body,
            apply=self._apply,
            can_apply=lambda: not self._modal_open(),
        )
        self.dns = False
        self.range_choice = "all"
        self.state_choice: str | None = None
        self.filter: Filter | None = None
        self._applied_filter: Filter | None = None
        self.poll_errors: list[str] = []
        self._detail_token = 0
        self._detail_sock: tuple[Sock, Snapshot] | None = None
        # widgets are kept by reference: handlers must work whichever screen is on top
        self._topbar = TopBar(id="topbar")
        self._rangebar = RangeBar(id="ranges")
        self._statebar = StateBar(id="states")
        d = self.dashboard
        self._tables = {
            "listening": VTable(d.listening, clock=clock, id="listen-table", empty_text="no listeners"),
            "connections": VTable(
                d.connections, clock=clock, id="conn-table", empty_text="no connections (yet)"
            ),
            "interfaces": VTable(d.interfaces, clock=clock, id="iface-table", empty_text="no interfaces"),
        }
        self._detail_text = Static(id="detail-text")
        self._filter_input = Input(
            placeholder="filter: text, :8080, pid:1, user:, proc:, range:, state:, exposed, new", id="filter"
        )
        self._detail_timer: Timer | None = None
        self._exposure = exposure or ExposureMap()
        self.alert_exposed = alert_exposed
        self.events_view = EventsView(id="events-pane")

    # ---------------------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield self._topbar
        yield self._rangebar
        with Horizontal(id="body"):
            with ContentSwitcher(initial="listen-table", id="views"):
                yield self._tables["listening"]
                with Vertical(id="connections", classes="view"):
                    yield self._statebar
                    yield self._tables["connections"]
                yield self._tables["interfaces"]
            with VerticalScroll(id="detail"):
                yield self._detail_text
        yield self.events_view
        yield self._filter_input
        yield Footer()

    def on_mount(self) -> None:
        inp = self._filter_input
        inp.cursor_blink = self._blink
        inp.compact = True
        self.table().focus()
        self._update_bars()
        self.poller.start()

    # ------------------------------------------------------------------------ accessors

    def table(self, view: str | None = None) -> VTable:
        return self._tables[view or self.view]

    def model(self, view: str | None = None) -> TableModel:
        return self.table(view).model

    def selected_socket(self) -> tuple[Sock, Snapshot] | None:
        """The socket under the cursor and the snapshot it came from (None on a group header,
        an empty table or the interfaces view)."""
        if self.view == "interfaces":
            return None
        model = self.model()
        row = model.cursor_row()
        if row is None:
            return None
        return self.dashboard.socket_for(model, row.key)

    def _modal_open(self) -> bool:
        return len(self.screen_stack) > 1

    # --------------------------------------------------------------------------- polling

    def _post(self, message: Message) -> None:
        """post_message from a background thread, tolerating an app that has shut down."""
        try:
            self.post_message(message)
        except RuntimeError:  # the event loop is closed
            pass

    def _poll_body(self) -> None:
        """Runs in the poll thread: no widget is touched here."""
        try:
            snap = self.collector.collect()
            prepared = self.dashboard.preparer.prepare(snap)
        except Exception as exc:
            self._post(PollFailed(f"{type(exc).__name__}: {exc}"))
            return
        if self._interfaces is not None:
            try:
                prepared.interfaces = self._ifaces.update(self._interfaces(), time.monotonic())
            except Exception:  # interfaces are a side view: a failure there must not stop polling
                prepared.interfaces = None
        self._post(SnapshotReady(prepared))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.poller.finished(message.prepared)

    def on_poll_failed(self, message: PollFailed) -> None:
        self.poll_errors.append(message.error)
        self.notify(printable(message.error, 300), title="poll failed", severity="error")
        self.poller.failed()

    @property
    def poll_count(self) -> int:
        """Snapshots applied so far."""
        return self.poller.applied

    @property
    def polling(self) -> bool:
        return self.poller.polling

    @property
    def paused(self) -> bool:
        return self.poller.paused

    def _apply(self, prepared: Prepared) -> None:
        self.dashboard.apply(prepared)
        if prepared.first:
            for warning in prepared.snapshot.warnings:
                self.notify(printable(warning, 300), severity="warning", timeout=6)
        self._update_bars()
        if self._detail_shown():
            self._schedule_detail()
        if prepared.events:
            self.events_view.add_events(prepared.events, self._exposure)  # type: ignore[arg-type]
            if self.alert_exposed:
                self._alert_exposed(prepared)

    def _alert_exposed(self, prepared: Prepared) -> None:
        """--alert-exposed: ring the bell and notify for each new listener beyond loopback."""
        found = exposed_openings(prepared.events, self._exposure)  # type: ignore[arg-type]
        for event in found[:5]:
            sock, owner = event.sock, event.owner
            who = f"pid {sock.pid} {printable(owner.name, 40)}" if owner else "owner not visible"
            where = self._exposure.classify(sock.laddr.ip).label
            self.notify(
                f"{sock.proto.value} {sock.laddr} ({where}) by {who}",
                title=f"new listener beyond loopback ({event.kind.value})",
                severity="warning",
                timeout=10,
                markup=False,
            )
        if len(found) > 5:
            self.notify(f"and {len(found) - 5} more exposed listeners", severity="warning", markup=False)
        if found:
            self.exposed_alerts += len(found)
            self.bell()

    # ------------------------------------------------------------------------------ bars

    def _state_text(self) -> str:
        if self.paused:
            return "paused"
        interval = f"{self.interval:g}"
        return f"live every {interval}s"

    def _update_bars(self) -> None:
        d = self.dashboard
        snap = d.snapshot
        self._topbar.show(
            host=printable(self.hostname, 64),
            clock_text=time.strftime("%H:%M:%S", time.localtime(self.clock())),
            state=self._state_text(),
            hidden_owners=snap.hidden_owners if snap else 0,
            privileged=snap.privileged if snap else True,
        )
        filtered = self.filter is not None
        self._rangebar.show(
            d.listening,
            choices=RANGE_CHOICES,
            selected=self.range_choice,
            filtered=filtered,
            labels={"ephemeral": "in ephemeral"},
        )
        self._statebar.show(d.connections, self.state_choice, filtered=filtered)

    # ------------------------------------------------------------------------ filtering

    def _apply_filters(self) -> None:
        d = self.dashboard
        predicate = text_predicate(self.filter)
        if self.filter is not self._applied_filter:
            self._applied_filter = self.filter
            d.listening.set_filter(predicate)
            d.connections.set_filter(predicate)
        d.listening.set_selection(None if self.range_choice == "all" else self.range_choice)
        d.connections.set_selection(self.state_choice)
        self.events_view.set_filter(self.filter or parse_filter(""))
        self._update_bars()

    def set_filter_text(self, text: str) -> bool:
        """Parse and apply a filter; on a bad term notify and keep the old filter."""
        try:
            flt = parse_filter(text)
        except UsageError as exc:
            self.notify(str(exc), title="filter", severity="error")
            return False
        self.filter = None if flt.is_empty else flt
        inp = self._filter_input
        if inp.value != text:
            with inp.prevent(Input.Changed):
                inp.value = text
        inp.set_class(bool(text.strip()), "shown")
        self._apply_filters()
        return True

    def action_filter(self) -> None:
        inp = self._filter_input
        inp.add_class("shown")
        inp.focus()
        inp.cursor_position = len(inp.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        try:
            flt = parse_filter(event.value)
        except UsageError:
            event.input.add_class("-invalid")
            return
        event.input.remove_class("-invalid")
        self.filter = None if flt.is_empty else flt
        self._apply_filters()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        if self.set_filter_text(event.value):
            event.input.remove_class("-invalid")
            if not event.value.strip():
                event.input.remove_class("shown")
            self.table().focus()

    def action_clear(self) -> None:
        inp = self._filter_input
        if inp.value or self.filter is not None or inp.has_class("shown"):
            inp.value = ""
            inp.remove_class("shown", "-invalid")
            self.filter = None
            self._apply_filters()
            self.table().focus()
            return
        if self._detail_shown():
            self._show_detail(False)
            return
        if self.range_choice != "all" or self.state_choice is not None:
            self.range_choice = "all"
            self.state_choice = None
            self._apply_filters()

    def action_select_range(self, name: str) -> None:
        if name not in RANGE_CHOICES:
            return
        self.range_choice = name
        if self.view != "listening":
            self.action_view("listening")
        self._apply_filters()

    def action_range_step(self, step: int) -> None:
        i = RANGE_CHOICES.index(self.range_choice)
        self.action_select_range(RANGE_CHOICES[(i + step) % len(RANGE_CHOICES)])

    def action_select_state(self, state: str) -> None:
        self.state_choice = state or None
        if self.view != "connections":
            self.action_view("connections")
        self._apply_filters()

    def action_cycle_state(self) -> None:
        totals = self.dashboard.connections.facet_totals
        states = sorted((s for s, n in totals.items() if n > 0), key=lambda s: (-totals[s], s))
        choices: list[str | None] = [None, *states]
        if self.state_choice not in choices:
            choices.append(self.state_choice)
        i = choices.index(self.state_choice)
        nxt = choices[(i + 1) % len(choices)]
        self.action_select_state(nxt or "")

    # ---------------------------------------------------------------------------- views

    def action_view(self, view: str) -> None:
        if view not in VIEWS:
            return
        self.view = view
        switcher = self._tables["listening"].parent
        if isinstance(switcher, ContentSwitcher):
            switcher.current = "connections" if view == "connections" else TABLE_IDS[view]
        table = self.table()
        table.focus()
        self.call_after_refresh(table.model_changed, False)  # its size is known after the switch
        self.refresh_bindings()
        if self._detail_shown():
            self._schedule_detail()

    def action_next_view(self) -> None:
        self.action_view(VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)])

    def action_prev_view(self) -> None:
        self.action_view(VIEWS[(VIEWS.index(self.view) - 1) % len(VIEWS)])

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next_view", "prev_view") and self._modal_open():
            return False  # Tab belongs to the dialog on top: let it move the focus there
        if action in ("toggle_dns", "cycle_state"):
            return self.view == "connections"
        if action in ("range_step",):
            return self.view == "listening"
        if action in ("kill", "test_port"):
            return self.view != "interfaces"
        return True

    # ----------------------------------------------------------------------------- sort

    def action_sort_next(self) -> None:
        table = self.table()
        model = table.model
        table.sort_by((model.sort_column + 1) % len(model.columns), reverse=False)

    def action_sort_reverse(self) -> None:
        table = self.table()
        table.sort_by(table.model.sort_column, reverse=not table.model.sort_reverse)

    # --------------------------------------------------------------------------- refresh

    def action_toggle_pause(self) -> None:
        self.poller.toggle_pause()
        self._update_bars()

    def action_refresh_now(self) -> None:
        self.poller.refresh_now()

    # ------------------------------------------------------------------------------- dns

    def _remote_text(self, value: Any, _now: float) -> str:
        if not value:
            return "-"
        ip, port = value[0], value[1]
        if self.dns:
            name = self.rdns.name(ip)
            if name:
                return f"{printable(name, 80)}:{port}"
        return format_endpoint(ip, port)

    def action_toggle_dns(self) -> None:
        self.dns = not self.dns
        self.notify("reverse DNS on: names appear as they resolve" if self.dns else "reverse DNS off")
        self.table("connections").refresh()

    def on_dns_resolved(self, _message: DnsResolved) -> None:
        if self.dns:
            self.table("connections").refresh()

    # ---------------------------------------------------------------------------- detail

    def _detail_shown(self) -> bool:
        return self._detail_text.parent is not None and self._detail_text.parent.has_class("shown")

    def _show_detail(self, show: bool) -> None:
        pane = self._detail_text.parent
        if pane is None:
            return
        pane.set_class(show, "shown")
        if show:
            self._load_detail()

    def action_detail(self) -> None:
        self._show_detail(not self._detail_shown())

    def on_vtable_selected(self, message: VTable.Selected) -> None:
        if message.table.id == "iface-table":
            return
        self.action_detail()

    def on_vtable_cursor_moved(self, message: VTable.CursorMoved) -> None:
        if self._detail_shown() and message.table is self.table():
            self._schedule_detail()

    def _schedule_detail(self) -> None:
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_timer = self.set_timer(0.15, self._load_detail)

    def _load_detail(self) -> None:
        self._detail_timer = None
        self._detail_token += 1
        token = self._detail_token
        out = self._detail_text
        sel = self.selected_socket()
        if sel is None:
            out.update("select a socket row to see its owner")
            return
        sock, snap = sel
        out.update(render_detail(sock, snap, None, None, loading=sock.pid is not None))
        if sock.pid is None:
            return
        pid = sock.pid
        self._detail_sock = (sock, snap)

        def work() -> None:
            try:
                detail = self._process_detail(pid)
                others = sockets_of(snap, pid)
            except Exception as exc:  # never let the pane's thread die silently
                detail = ProcessDetail(pid, denied=(f"error: {exc}",))
                others = SocketsOf(pid)
            self._post(DetailReady(token, detail, others))

        threading.Thread(target=work, name="portscope-detail", daemon=True).start()

    def on_detail_ready(self, message: DetailReady) -> None:
        if message.token != self._detail_token or not self._detail_shown() or self._detail_sock is None:
            return
        sock, snap = self._detail_sock
        self._detail_text.update(render_detail(sock, snap, message.detail, message.others))

    # ----------------------------------------------------------------------------- misc

    # --------------------------------------------------------------------------- actions

    def _selected_or_tell(self) -> tuple[Sock, Snapshot] | None:
        sel = self.selected_socket()
        if sel is None:
            self.notify("select a socket row first", severity="warning")
        return sel

    def action_kill(self) -> None:
        """K: the kill dialog for the owner of the selected socket (nothing is sent before you confirm)."""
        sel = self._selected_or_tell()
        if sel is None:
            return
        sock, snap = sel
        try:
            target = KillTarget.from_snapshot(snap, sock)
        except PortscopeError as exc:
            self.notify(str(exc), title="kill", severity="error", markup=False)
            return
        start_kill(self, target)

    def action_test_port(self) -> None:
        """t: test the selected row's service. A listener tests its own address; a connection tests
        the server end: its local endpoint when it was accepted by one of our listeners, else the peer."""
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
        start_port_test(self, host, port, sock.proto.value)

    def action_scan(self) -> None:
        start_scan(self)

    def action_free_port(self) -> None:
        start_free_port(self)

    def action_toggle_events(self) -> None:
        pane = self.events_view
        pane.set_class(not pane.has_class("shown"), "shown")
        if pane.has_class("shown"):
            pane.table.focus()
        else:
            self.table().focus()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands = (
            ("Listening view", "Show listeners grouped by range", "view('listening')"),
            ("Connections view", "Show every connection", "view('connections')"),
            ("Interfaces view", "Show interfaces, addresses and rates", "view('interfaces')"),
            (
                "Filter",
                "Filter rows (text, :port, pid:, user:, proc:, range:, state:, exposed, new)",
                "filter",
            ),
            ("Clear filter", "Clear the filter and selections", "clear"),
            ("Pause / resume", "Pause or resume live refresh", "toggle_pause"),
            ("Refresh now", "Poll the sockets now", "refresh_now"),
            ("Sort by next column", "Cycle the sort column", "sort_next"),
            ("Reverse sort", "Reverse the sort order", "sort_reverse"),
            ("Detail pane", "Show or hide the owner of the selected row", "detail"),
            ("Next range", "Select the next port range", "range_step(1)"),
            ("Cycle state filter", "Connections: show only one state", "cycle_state"),
            ("Reverse DNS", "Connections: resolve remote addresses", "toggle_dns"),
            ("Kill owner", "Signal the owner of the selected socket (asks first)", "kill"),
            ("Test port", "Connect / banner / HTTP / TLS / UDP test of the selected row", "test_port"),
            ("Scan ports", "Scan a port range on a host", "scan"),
            ("Free port", "Find a free port and copy it", "free_port"),
            ("Events", "Show or hide this session's events", "toggle_events"),
            ("Help", "Every key", "help"),
        )
        for title, help_, action in commands:
            yield SystemCommand(title, help_, partial(self.run_action, action))
