"""The dashboard's actions wired end to end: kill, test, scan, free port, events, --alert-exposed."""

from __future__ import annotations

import signal

from app.collector import PsutilCollector
from app.tui.app import PortscopeApp
from tests.helpers import child_listener, spawn_listener, tcp_server
from tests.tui.fixtures import SequenceCollector, fixed_interfaces, make_app, snapshot, tcp, until
from widgets.free_port import FreePortScreen
from widgets.kill_modal import KillModal
from widgets.probe_panel import ProbePanel
from widgets.scan_panel import ScanPanel


def live_app() -> PortscopeApp:
    return PortscopeApp(collector=PsutilCollector(), interval=0.2, interfaces=fixed_interfaces, blink=False)


def messages(app: PortscopeApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def select_port(app: PortscopeApp, pilot: object, port: int) -> None:
    def find() -> str | None:
        for key, row in app.model().rows.items():
            if row.payload.sock.laddr.port == port:
                return key
        return None

    await until(pilot, lambda: find() is not None, timeout=30)
    key = find()
    assert key is not None and app.model().select_key(key)
    sel = app.selected_socket()
    assert sel is not None and sel[0].laddr.port == port


async def test_capital_k_kills_the_selected_owner_after_confirm() -> None:
    child = spawn_listener("tcp", "127.0.0.1", name="ps-dash-kill")
    try:
        app = live_app()
        async with app.run_test(size=(120, 36)) as pilot:
            await select_port(app, pilot, child.port)
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, KillModal))
            assert child.proc.poll() is None  # nothing is sent before the confirm
            details = str(app.screen.query_one("#details").render())
            assert str(child.pid) in details and "ps-dash-kill" in details
            await pilot.press("enter")
            assert child.proc.wait(timeout=10) == -signal.SIGTERM
            await until(pilot, lambda: any("exited" in m for m in messages(app)), timeout=30)
    finally:
        child.stop()


async def test_capital_k_then_escape_signals_nothing() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-dash-keep") as child:
        app = live_app()
        async with app.run_test(size=(120, 36)) as pilot:
            await select_port(app, pilot, child.port)
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, KillModal))
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, KillModal))
            await pilot.pause(0.3)
            assert child.proc.poll() is None


async def test_kill_on_an_ownerless_row_explains_instead_of_opening_the_dialog() -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        key = next(k for k, r in app.model().rows.items() if r.payload.sock.laddr.port == 40000)
        assert app.model().select_key(key)
        await pilot.press("K")
        await until(pilot, lambda: any("no visible owner" in m for m in messages(app)))
        await pilot.pause()
        assert not isinstance(app.screen, KillModal)


async def test_t_opens_the_test_panel_on_the_selected_listener() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-dash-test") as child:
        app = live_app()
        async with app.run_test(size=(120, 36)) as pilot:
            await select_port(app, pilot, child.port)
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, ProbePanel))
            panel = app.screen

            def log() -> str:
                return "\n".join(str(line) for line in panel.query_one("#log").lines)

            await until(pilot, lambda: "open" in log(), timeout=30)
            assert f"127.0.0.1:{child.port}" in log()
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, ProbePanel))


async def test_scan_and_free_port_keys_open_their_panels() -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ScanPanel))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ScanPanel))
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FreePortScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, FreePortScreen))


async def test_events_pane_lists_changes_and_follows_the_filter() -> None:
    later = snapshot([*snapshot().sockets, tcp("127.0.0.1", 9999, pid=101), tcp("0.0.0.0", 7000, pid=202)])
    collector = SequenceCollector(snapshot(), later)
    app = make_app(collector, interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        pane = app.events_view
        assert app.view != "events" and not pane.display
        await pilot.press("e")
        assert app.view == "events" and pane.display
        await until(pilot, lambda: len(pane.events) == 2)
        assert {e.sock.laddr.port for e in pane.events} == {9999, 7000}
        assert all(e.kind.value == "opened" for e in pane.events)
        app.set_filter_text("proc:postgres")
        await pilot.pause()
        assert [e.sock.laddr.port for e in pane.visible_events] == [7000]
        await pilot.press("4")
        assert app.view == "listening" and not pane.display  # back to the view before


async def test_first_poll_is_the_starting_point_not_events() -> None:
    app = make_app(SequenceCollector(snapshot()), interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.poll_count >= 3)
        assert app.events_view.events == []


async def test_alert_exposed_rings_for_a_new_listener_beyond_loopback_only() -> None:
    later = snapshot([*snapshot().sockets, tcp("127.0.0.1", 9999, pid=101), tcp("0.0.0.0", 7000, pid=202)])
    app = make_app(SequenceCollector(snapshot(), later), interval=0.1, alert_exposed=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.exposed_alerts >= 1)
        await pilot.pause(0.3)
        assert app.exposed_alerts == 1  # 0.0.0.0:7000 only; the loopback one is not an alert
        assert any("0.0.0.0:7000" in m and "postgres" in m for m in messages(app))


async def test_without_alert_exposed_nothing_rings() -> None:
    later = snapshot([*snapshot().sockets, tcp("0.0.0.0", 7000, pid=202)])
    app = make_app(SequenceCollector(snapshot(), later), interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: len(app.events_view.events) == 1)
        assert app.exposed_alerts == 0


async def test_every_action_is_in_the_command_palette() -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in (
            "Kill what holds the port",
            "Test port",
            "Scan ports",
            "Free port",
            "Events",
            "Filter",
            "Help",
        ):
            assert title in titles


async def test_quitting_while_a_probe_runs_cancels_it_and_exits() -> None:
    """A listener whose accept queue is full makes connect() hang (the kernel drops the SYN): the
    probe would take count x timeout. Quitting mid-probe cancels it after the current attempt."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    try:
        app = make_app()
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: app.poll_count >= 1)
            panel = ProbePanel(f"127.0.0.1:{port}", timeout=1.0, count=5)
            app.push_screen(panel)

            def started() -> bool:
                logs = panel.query("#log") if panel.is_mounted else []
                return any("── tcp" in str(line) for log in logs for line in log.lines)

            await until(pilot, started)
            app.exit()
        assert panel.finished.wait(5)
        assert panel.outcomes == []  # cut short: a full run (5 x 1 s) would have produced an outcome
    finally:
        for c in fillers:
            c.close()
        srv.close()


async def test_events_arriving_while_the_pane_is_hidden_show_when_it_opens() -> None:
    later = snapshot([*snapshot().sockets, tcp("127.0.0.1", 9999, pid=101)])
    app = make_app(SequenceCollector(snapshot(), later), interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        pane = app.events_view
        await until(pilot, lambda: len(pane.events) == 1)
        assert pane.table.row_count == 0  # hidden: the table is not touched
        await pilot.press("e")
        await until(pilot, lambda: pane.table.row_count == 1)


async def test_a_hostile_banner_shows_literally_in_the_test_panel() -> None:
    """A server whose banner holds Rich markup, a clear-screen escape and invalid UTF-8: the panel
    shows it escaped, as text (the log never parses markup)."""
    import socket

    from textual.widgets import Checkbox

    def hostile(conn: socket.socket) -> None:
        conn.sendall(b"[bold red]pwn[/]\x1b[2J\xff\n")

    with tcp_server(hostile) as port:
        app = make_app()
        async with app.run_test(size=(120, 36)) as pilot:
            panel = ProbePanel(f"127.0.0.1:{port}", timeout=1.0, count=1)
            app.push_screen(panel)
            await until(pilot, lambda: panel.is_mounted and panel.finished.is_set())
            panel.query_one("#banner", Checkbox).value = True
            panel.action_run()
            await until(
                pilot, lambda: panel.finished.is_set() and panel.outcomes != [] and panel.outcomes[-1].banner
            )
            await pilot.pause()
            lines = [line.text for line in panel.query_one("#log").lines]
            banner = next(line for line in lines if line.startswith("banner"))
            assert "[bold red]pwn[/]\\x1b[2J\\xff" in banner
            assert "\x1b" not in "".join(lines)


async def test_tab_in_a_dialog_moves_its_focus_and_leaves_the_view_alone() -> None:
    with tcp_server(lambda conn: conn.close()) as port:
        app = live_app()
        async with app.run_test(size=(120, 36)) as pilot:
            await select_port(app, pilot, port)
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, ProbePanel))
            panel = app.screen
            first = app.focused
            await pilot.press("tab")
            await pilot.pause()
            assert app.view == "listening"  # the view behind the dialog did not switch
            assert app.focused is not first and app.focused in panel.query("*")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, ProbePanel))
            await pilot.press("tab")
            await until(pilot, lambda: app.view == "connections")
