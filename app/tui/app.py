"""The portscope dashboard: a live, keyboard-driven view over every socket.

The app is the composition root: it owns the data (collector, :class:`~app.tui.state.Dashboard`,
reverse DNS, interface rates) and the poll cycle, and shows them on its one screen,
:class:`~app.tui.main_screen.MainScreen`, which owns the layout and the view keys.

Polling (:class:`app.tui.poller.Poller`): one background thread at a time runs
``collector.collect()`` and prepares the row deltas (pure data, no widgets: the owners' services
and forwards, TCP health and rates are worked out there too), then posts one
:class:`SnapshotReady` message; its handler hands the result to the poller, which applies it to
the tables (or keeps it while paused or while a dialog is open) and schedules the next poll.

The collector reads TCP stats (queues, tcp_info) on every poll, whichever view is shown: both
socket views show them (Queue; Rx/s, Tx/s, RTT, Retrans), rates need two consecutive polls (a
switch would blank them for a poll each time), and their cost is the poll thread's, which the
keys never wait for.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from textual import events
from textual.app import App, SystemCommand
from textual.message import Message
from textual.screen import Screen

from app.collector import Collector, PsutilCollector, default_collector
from app.config import Config, check_theme, config_path
from app.events import exposed_openings
from app.exposure import ExposureMap
from app.filtering import Filter
from app.interfaces import Interface, list_interfaces
from app.memtune import return_freed_memory
from app.model import Snapshot, Sock, format_endpoint
from app.procdetail import ProcessDetail, process_detail
from app.rdns import Resolver, ReverseDNS, system_resolver
from app.textsafe import printable
from app.tui import actions as act
from app.tui.actions import ACTIONS, TABLES, VIEW_TITLES
from app.tui.help import HelpScreen
from app.tui.main_screen import MainScreen
from app.tui.poller import Poller
from app.tui.rows import Classifier, Facts, IfaceTracker
from app.tui.state import Dashboard, Prepared
from app.tui.theme import readable
from widgets.close_modal import Closer, close_connection
from widgets.events_view import EventsView
from widgets.table_model import TableModel
from widgets.vtable import VTable


def dashboard_collector() -> Collector:
    """The dashboard's collector: the Linux fast path reading TCP stats too (queues and tcp_info,
    for the Queue, Rx/s, Tx/s, RTT and Retrans columns), else the platform's default."""
    if os.environ.get("PORTSCOPE_COLLECTOR", "").strip().lower() != "psutil" and sys.platform.startswith(
        "linux"
    ):
        try:
            from app.fast.collector import FastCollector

            return FastCollector(stats=True, fallback=PsutilCollector)
        except Exception:  # any failure to set up the fast path: the default chain decides
            pass
    return default_collector()


def owner_facts() -> Facts:
    from app.owners import OwnerFacts

    return OwnerFacts()


class SnapshotReady(Message):
    def __init__(self, prepared: Prepared) -> None:
        super().__init__()
        self.prepared = prepared


class PollFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class DnsResolved(Message):
    pass


class PortscopeApp(App[None]):
    """``PortscopeApp(collector=..., interval=2.0)``; clock, hostname, exposure, interface and
    process-detail sources are injectable so tests can hand it fixed data."""

    CSS_PATH = "app.tcss"
    TITLE = "portscope"
    BINDINGS = act.bindings("app")
    # Each applied poll freezes what is alive (see _apply). What was frozen and later dies inside
    # a reference cycle (Textual's rendered lines cache themselves) is freed only by a collection
    # of everything, made after this many polls once no key or click came for IDLE_SECONDS, and
    # after COLLECT_AT_MOST polls whatever the user does (at 100k sockets it stops the keys for
    # about half a second).
    COLLECT_AFTER = 30
    COLLECT_AT_MOST = 300
    IDLE_SECONDS = 5.0

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
        facts: Facts | None = None,
        closer: Closer = close_connection,
        config: Config | None = None,
    ) -> None:
        super().__init__()
        self._theme_saved: str | None = None
        # the settings file (the CLI passes the one it read; None: every default, no file read)
        self.config = config if config is not None else Config(config_path())
        self.config_notices: list[str] = list(self.config.warnings)  # shown once, at start
        self.kill_timeout = self.config.kill_timeout
        self._apply_config_theme()
        self.collector: Collector = collector if collector is not None else dashboard_collector()
        self.interval = interval
        self.clock = clock
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.exposure: Classifier = exposure or ExposureMap()
        self._interfaces = interfaces
        self.process_detail_source = process_detail_source
        self.blink = blink
        self.alert_exposed = alert_exposed
        self.exposed_alerts = 0  # new listeners beyond loopback announced (--alert-exposed)
        self.dns = self.config.dns
        self.dashboard = Dashboard(
            self.exposure,
            clock,
            self._remote_text,
            facts=facts if facts is not None else owner_facts(),
            hidden_columns=self.config.hidden_columns,
        )
        self.closer = closer  # X: closes one connection (tests inject faults here)
        self.netns_all = False  # every network namespace is read (key n); the poll thread switches
        self._netns_read = False  # what the collector reads now (poll thread)
        self._ifaces = IfaceTracker()
        self.rdns = ReverseDNS(resolver, on_resolved=lambda _ip: self._post(DnsResolved()))
        self.poll_errors: list[str] = []
        self.poller: Poller[Prepared] = Poller(
            interval=interval,
            schedule=self.set_timer,
            body=self._poll_body,
            apply=self._apply,
            can_apply=lambda: not self._modal_open(),
        )
        self.main = MainScreen(self)
        self._last_input = time.monotonic()  # the last key or click (the idle test of _apply)
        self._polls_frozen = 0  # polls applied since the last collection of everything
        self.full_collections = 0

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)):
            self._last_input = time.monotonic()
        await super().on_event(event)

    def get_default_screen(self) -> Screen[Any]:
        return self.main

    def on_mount(self) -> None:
        self._theme_saved = self.theme  # from now on a change of theme is the user's: saved
        if self.config_notices:
            self.call_after_refresh(self._config_notice)  # once the screen (and its toasts) is up
        return_freed_memory()  # before the poll thread's first allocation (see app.memtune)
        self.poller.start()

    def _config_notice(self) -> None:
        """The config file's problems, one notification (also printed on stderr by the CLI)."""
        self.notify(
            "\n".join(self.config_notices), title="config", severity="warning", timeout=12, markup=False
        )

    # ----------------------------------------------------------------------------- theme

    def _apply_config_theme(self) -> None:
        """The configured theme, or the default and a notice when the app has no such theme."""
        self._theme_saved = None  # None until mounted: the start-up theme is not saved
        problem = check_theme(self.config, list(self.available_themes))
        if problem is not None:
            self.config_notices.append(problem)
            return
        self.theme = self.config.theme

    def get_css_variables(self) -> dict[str, str]:
        """The theme's variables, with the text colours made readable on its backgrounds."""
        variables = readable(super().get_css_variables())
        self.theme_variables = variables
        return variables

    def watch_theme(self, theme: str) -> None:
        """The command palette's theme switcher (or anything else) chose ``theme``: store it in
        the config file, keeping the user's other lines; a failure is a notification."""
        saved = getattr(self, "_theme_saved", None)  # (App.__init__ sets the theme before ours runs)
        if saved is None or theme == saved:
            return
        from app.config import save_setting
        from app.errors import PortscopeError

        try:
            path = save_setting("theme", theme, self.config.path)
        except PortscopeError as exc:
            self.notify(str(exc), title="theme not saved", severity="error", timeout=10, markup=False)
            return
        except OSError as exc:
            self.notify(
                f"cannot save the theme: {printable(str(exc), 200)}",
                title="theme not saved",
                severity="error",
                timeout=10,
                markup=False,
            )
            return
        self._theme_saved = theme
        self.config.override("theme", theme, "file")
        self.notify(f"theme {printable(theme, 64)} saved in {printable(path, 200)}", timeout=4, markup=False)

    # ------------------------------------------------------------- the main screen's state

    @property
    def view(self) -> str:
        return self.main.view

    @property
    def filter(self) -> Filter | None:
        return self.main.filter

    @property
    def range_choice(self) -> str:
        return self.main.range_choice

    @property
    def state_choice(self) -> str | None:
        return self.main.state_choice

    @property
    def events_view(self) -> EventsView:
        return self.main.events_view

    def table(self, view: str | None = None) -> VTable:
        return self.main.table(view)

    def model(self, view: str | None = None) -> TableModel:
        return self.main.model(view)

    def selected_socket(self) -> tuple[Sock, Snapshot] | None:
        return self.main.selected_socket()

    def set_filter_text(self, text: str) -> bool:
        return self.main.set_filter_text(text)

    def action_view(self, view: str) -> None:
        self.main.action_view(view)

    def action_select_range(self, name: str) -> None:
        self.main.action_select_range(name)

    def _modal_open(self) -> bool:
        return len(self.screen_stack) > 1

    # --------------------------------------------------------------------------- polling

    def _post(self, message: Message) -> None:
        """post_message from a background thread, tolerating an app that has shut down."""
        try:
            self.post_message(message)
        except RuntimeError:  # the event loop is closed
            pass

    @property
    def can_switch_netns(self) -> bool:
        return callable(getattr(self.collector, "set_netns", None))

    def _switch_netns(self) -> str | None:
        """(poll thread) Follow ``netns_all`` (key n): "all" / "current" when it switched now."""
        wanted = self.netns_all
        if wanted == self._netns_read:
            return None
        self.collector.set_netns("all" if wanted else "current")  # type: ignore[attr-defined]
        self._netns_read = wanted
        preparer = self.dashboard.preparer
        preparer.netns_rows = wanted
        return "all" if wanted else "current"

    def _poll_body(self) -> None:
        """Runs in the poll thread: no widget is touched here."""
        try:
            switched = self._switch_netns() if self.can_switch_netns else None
            snap = self.collector.collect()
            prepared = self.dashboard.preparer.prepare(snap)
            prepared.netns_switched = switched
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
        self.notify(printable(message.error, 300), title="poll failed", severity="error", markup=False)
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
        switched = prepared.netns_switched
        self.dashboard.apply(prepared)
        # What a poll leaves alive (the snapshot, the rows: several objects per socket) stays for
        # a while and holds no reference cycles; moved out of the collector's sight, a full
        # collection no longer walks all of it (at 100k sockets that walk stopped every key for
        # most of a second). What dies later is still freed, by reference counting, and what dies
        # in a cycle by the collection of everything now and then (COLLECT_AFTER).
        self._polls_frozen += 1
        if self._polls_frozen >= self.COLLECT_AFTER and (
            self._polls_frozen >= self.COLLECT_AT_MOST
            or time.monotonic() - self._last_input >= self.IDLE_SECONDS
        ):
            gc.unfreeze()
            gc.collect()
            self._polls_frozen = 0
            self.full_collections += 1
        gc.freeze()
        if prepared.first or switched is not None:
            for warning in prepared.snapshot.warnings:
                self.notify(printable(warning, 300), severity="warning", timeout=8, markup=False)
        if switched is not None:
            self._netns_notice(prepared, switched)
        self.main.after_poll(prepared)
        if prepared.events and self.alert_exposed:
            self._alert_exposed(prepared)

    def _netns_notice(self, prepared: Prepared, switched: str) -> None:
        if switched != "all":
            self.notify("only this network namespace", title="namespaces", markup=False)
            return
        spaces = prepared.snapshot.namespaces
        others = sum(1 for info in spaces.values() if not info.current)
        socks = sum(1 for s in prepared.snapshot.sockets if s.netns)
        self.notify(
            f"every network namespace: {others} besides this one, {socks} sockets in them",
            title="namespaces",
            markup=False,
        )

    def toggle_netns(self) -> None:
        """Key n: read every network namespace, or only this one again (from the next poll)."""
        self.netns_all = not self.netns_all
        self.poller.refresh_now()
        self.main.update_chrome()

    def _alert_exposed(self, prepared: Prepared) -> None:
        """--alert-exposed: ring the bell and notify for each new listener beyond loopback."""
        found = exposed_openings(prepared.events, self.exposure)  # type: ignore[arg-type]
        for event in found[:5]:
            sock, owner = event.sock, event.owner
            who = f"pid {sock.pid} {printable(owner.name, 40)}" if owner else "owner not visible"
            where = self.exposure.classify(sock.laddr.ip).label
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

    def action_toggle_pause(self) -> None:
        self.poller.toggle_pause()
        self.main.update_chrome()

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

    def on_dns_resolved(self, _message: DnsResolved) -> None:
        if self.dns:
            self.table("connections").refresh()

    # ----------------------------------------------------------------------------- misc

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's commands, then every action of the table (each with its key), then "sort by"
        each column of the current table."""
        yield from super().get_system_commands(screen)
        for a in ACTIONS:
            if not a.command:
                continue
            yield SystemCommand(a.command, f"{act.keys_label(a)}  ·  {a.does}", partial(self._run_command, a))
        view = self.main.view
        if view in TABLES:
            model = self.main.model()
            for index, col in enumerate(model.columns):
                if col.label and col.key not in model.hidden:
                    yield SystemCommand(
                        f"Sort by {col.label}",
                        f"{VIEW_TITLES[view]}: sort by {col.label} (s next column, S reverses)",
                        partial(self.main.sort_by_column, view, index),
                    )

    async def _run_command(self, a: act.Action) -> None:
        await self.run_action(a.action, self if a.bound_by == "app" else self.main)
