"""The action modals driven with Pilot on a tiny host App, against real children and servers."""

from __future__ import annotations

import dataclasses
import http.server
import os
import signal
import socket
import threading
from typing import Any

import psutil
import pytest
from textual.app import App, ComposeResult
from textual.widgets import Label, Static

from app import killplan
from app.collector import PsutilCollector
from app.model import Proto
from tests.helpers import child_listener, free_port, needs_ipv6, tcp_server
from tests.tui.fixtures import until
from widgets.kill_modal import ConfirmScreen, KillModal, start_kill


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("host")


def messages(app: App) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def settle(app: App, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.workers.wait_for_complete()
    await pilot.pause()


def target_for(port: int) -> killplan.KillTarget:
    """The owner of the TCP listener on ``port`` (an ephemeral port: on a shared machine another
    process may hold an unrelated socket with the same number, which is not the one wanted)."""
    snap = PsutilCollector().collect()
    owners = killplan.owners_on_port(snap, port, Proto.TCP)
    [t] = [t for t in owners if t.ports[0].endswith(f":{port} LISTEN")]
    return t


# --- kill ---------------------------------------------------------------------------------------


async def test_kill_modal_shows_the_target_and_enter_sends_sigterm() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-modal-kill") as child:
        app = Host()
        async with app.run_test() as pilot:
            start_kill(app, target_for(child.port), collector_factory=PsutilCollector)
            await pilot.pause()
            assert isinstance(app.screen, KillModal)
            details = str(app.screen.query_one("#details").render())
            assert f"pid      {child.pid}" in details and "ps-modal-kill" in details
            assert f"tcp 127.0.0.1:{child.port} LISTEN" in details
            await pilot.press("enter")
            await settle(app, pilot)
            assert not isinstance(app.screen, KillModal)
            assert child.proc.wait(timeout=5) == -signal.SIGTERM
            assert any("exited" in m for m in messages(app)), messages(app)


async def test_escape_cancels_and_nothing_is_signalled() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        app = Host()
        async with app.run_test() as pilot:
            start_kill(app, target_for(child.port))
            await pilot.pause()
            await pilot.press("escape")
            await settle(app, pilot)
            assert not isinstance(app.screen, KillModal)
            assert child.proc.poll() is None
            assert "kill cancelled" in messages(app)


async def test_ignored_term_offers_sigkill_on_a_second_confirm() -> None:
    with child_listener("tcp", "127.0.0.1", ignore_term=True) as child:
        app = Host()
        async with app.run_test() as pilot:
            start_kill(app, target_for(child.port), timeout=0.3, collector_factory=PsutilCollector)
            await pilot.pause()
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, ConfirmScreen)
            assert "still running" in app.screen.message
            assert child.proc.poll() is None
            await pilot.press("y")
            await settle(app, pilot)
            assert child.proc.wait(timeout=5) == -signal.SIGKILL
            assert any("SIGKILL" in m for m in messages(app)), messages(app)


async def test_choosing_sigint_and_tree_in_the_modal() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        app = Host()
        async with app.run_test() as pilot:
            start_kill(app, target_for(child.port))
            await pilot.pause()
            await pilot.click("#sig-INT")
            await pilot.press("t")
            modal = app.screen
            assert isinstance(modal, KillModal)
            assert modal.choice.signal is signal.SIGINT and modal.choice.tree
            await pilot.press("y")
            await settle(app, pilot)
            assert child.proc.wait(timeout=5) != 0
            assert any("SIGINT" in m for m in messages(app)), messages(app)


async def test_stale_target_is_refused_with_a_notification() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        stale = dataclasses.replace(target_for(child.port), create_time=12345.0)
        app = Host()
        async with app.run_test() as pilot:
            start_kill(app, stale)
            await pilot.pause()
            await pilot.press("enter")
            await settle(app, pilot)
            assert child.proc.poll() is None
            assert f"pid {child.pid} is now a different process" in messages(app)
            severities = [n.severity for n in app._notifications]
            assert "error" in severities


async def test_protected_target_needs_an_explicit_second_confirm() -> None:
    me = killplan.KillTarget.from_pid(os.getpid())
    app = Host()
    async with app.run_test() as pilot:
        start_kill(app, me)
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "portscope itself" in app.screen.message
        await pilot.press("n")
        await settle(app, pilot)
        assert "kill cancelled" in messages(app)
    assert psutil.pid_exists(os.getpid())


async def test_enter_on_the_sigkill_confirm_does_not_escalate() -> None:
    """The second confirm needs y (or a click on its button): Enter presses the focused "No"."""
    with child_listener("tcp", "127.0.0.1", ignore_term=True) as child:
        app = Host()
        async with app.run_test() as pilot:
            start_kill(app, target_for(child.port), timeout=0.3, collector_factory=PsutilCollector)
            await pilot.pause()
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("enter")  # a second Enter (key repeat, impatience) must not send SIGKILL
            await settle(app, pilot)
            assert not isinstance(app.screen, ConfirmScreen)
            assert child.proc.poll() is None
            assert any("still running" in m for m in messages(app)), messages(app)


async def test_enter_twice_on_a_protected_target_signals_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        real = killplan.protected_pids
        # the child stands in for the shell running portscope (signalling the real one would end the run)
        monkeypatch.setattr(
            killplan, "protected_pids", lambda: {**real(), child.pid: "an ancestor of portscope"}
        )
        app = Host()
        async with app.run_test() as pilot:
            start_kill(app, target_for(child.port))
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen) and "ancestor" in app.screen.message
            await pilot.press("enter")
            await settle(app, pilot)
            assert child.proc.poll() is None
            assert "kill cancelled" in messages(app)
            # and y on the second confirm does send it
            start_kill(app, target_for(child.port))
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            await pilot.press("y")
            await settle(app, pilot)
            assert child.proc.wait(timeout=5) == -signal.SIGTERM


async def test_escape_on_the_protected_confirm_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        real = killplan.protected_pids
        monkeypatch.setattr(killplan, "protected_pids", lambda: {**real(), child.pid: "init"})
        app = Host()
        async with app.run_test() as pilot:
            start_kill(app, target_for(child.port))
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen) and "init" in app.screen.message
            await pilot.press("escape")
            await settle(app, pilot)
            assert not isinstance(app.screen, (ConfirmScreen, KillModal))
            assert "kill cancelled" in messages(app)
            assert child.proc.poll() is None


# --- test panel ---------------------------------------------------------------------------------


def greet(conn: socket.socket) -> None:
    """A server that says something with markup and an escape in it, then hangs up."""
    conn.sendall(b"[red]hi\x1b[0m\r\n")


def log_text(screen) -> str:  # type: ignore[no-untyped-def]
    from textual.widgets import RichLog

    return "\n".join(strip.text for strip in screen.query_one("#log", RichLog).lines)


async def wait_event(pilot, event: threading.Event) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        if event.is_set():
            break
        await pilot.pause(0.05)
    assert event.is_set(), "the worker did not finish"
    await pilot.pause()


@pytest.mark.parametrize("size", [(140, 40), (80, 24)])
async def test_port_test_panel_streams_results_for_a_real_server(size: tuple[int, int]) -> None:
    from textual.widgets import RichLog

    from widgets.probe_panel import ProbePanel, start_probe

    with tcp_server(greet) as port:
        app = Host()
        async with app.run_test(size=size) as pilot:
            start_probe(app, "127.0.0.1", port)
            await pilot.pause()
            panel = app.screen
            assert isinstance(panel, ProbePanel)
            await wait_event(pilot, panel.finished)
            assert [o.state for o in panel.outcomes] == ["open"]
            text = log_text(panel)
            assert f"tcp 127.0.0.1:{port}  open" in text and "=> open" in text
            assert "latency" in text and "max" in text
            # wrapped at the log's width (RichLog's default min_width of 78 cut lines at 80x24)
            log = panel.query_one("#log", RichLog)
            assert log.max_scroll_x == 0
            assert max(strip.cell_length for strip in log.lines) <= log.scrollable_content_region.width
            # with the banner test: the bytes are shown escaped, not interpreted
            await pilot.click("#banner")
            await pilot.click("#run")
            await pilot.pause()
            await wait_event(pilot, panel.finished)
            assert "[red]hi\\x1b[0m\\r\\n" in log_text(panel)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, ProbePanel)


async def test_port_test_panel_prefills_only_what_a_wildcard_bind_covers() -> None:
    """0.0.0.0 is reached through 127.0.0.1 only (::1 cannot succeed); a dual-stack :: through both;
    an IPv6-only :: through ::1 alone."""
    from widgets.probe_panel import ProbePanel, start_probe

    port = free_port()
    app = Host()
    async with app.run_test(size=(140, 40)) as pilot:
        start_probe(app, "0.0.0.0", port)
        await pilot.pause()
        panel = app.screen
        assert isinstance(panel, ProbePanel)
        assert panel.query_one("#target").value == f"127.0.0.1:{port}"
        await wait_event(pilot, panel.finished)
        assert [o.state for o in panel.outcomes] == ["closed"]
        await pilot.press("escape")
        start_probe(app, "::", port, v6only=False)
        await pilot.pause()
        assert app.screen.query_one("#target").value == f"127.0.0.1:{port}, [::1]:{port}"
        await wait_event(pilot, app.screen.finished)
        await pilot.press("escape")
        start_probe(app, "::", port, v6only=True)
        await pilot.pause()
        assert app.screen.query_one("#target").value == f"[::1]:{port}"
        await wait_event(pilot, app.screen.finished)


@needs_ipv6
async def test_port_test_panel_asks_the_kernel_whether_a_wildcard_v6_listener_is_v6_only() -> None:
    from widgets.probe_panel import ProbePanel, start_probe

    for v6only, want in ((1, "[::1]:{p}"), (0, "127.0.0.1:{p}, [::1]:{p}")):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            s.bind(("::", 0))
            s.listen(8)
            port = s.getsockname()[1]
            app = Host()
            async with app.run_test(size=(140, 40)) as pilot:
                start_probe(app, "::", port)  # v6only unknown: the panel asks sock_diag
                await pilot.pause()
                panel = app.screen
                assert isinstance(panel, ProbePanel)
                assert panel.query_one("#target").value == want.format(p=port)
                await wait_event(pilot, panel.finished)
                assert all(o.state == "open" for o in panel.outcomes)


async def test_port_test_panel_bad_input_notifies_and_keeps_running() -> None:
    from textual.widgets import Input

    from widgets.probe_panel import ProbePanel, start_probe

    app = Host()
    async with app.run_test(size=(140, 40)) as pilot:
        start_probe(app, "127.0.0.1", free_port())
        await pilot.pause()
        panel = app.screen
        assert isinstance(panel, ProbePanel)
        await wait_event(pilot, panel.finished)
        panel.query_one("#target", Input).value = "127.0.0.1:99999"
        await pilot.press("enter")
        await pilot.pause()
        assert any("invalid port" in m for m in messages(app))
        panel.query_one("#target", Input).value = "nohost.invalid:80"
        await pilot.press("enter")
        await wait_event(pilot, panel.finished)
        assert any("cannot resolve host" in m for m in messages(app))
        assert app.screen is panel and app.is_running


async def test_port_test_panel_udp() -> None:
    from widgets.probe_panel import ProbePanel, start_probe

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        app = Host()
        async with app.run_test(size=(140, 40)) as pilot:
            start_probe(app, "127.0.0.1", port, proto="udp")
            await pilot.pause()
            panel = app.screen
            assert isinstance(panel, ProbePanel)
            await wait_event(pilot, panel.finished)
            assert [o.state for o in panel.outcomes] == ["closed"]
            assert "ICMP port unreachable" in log_text(panel)


# --- test panel: keyboard (issue 13) --------------------------------------------------------


async def test_space_in_the_target_field_does_not_wipe_it() -> None:
    """Focusing the field does not select its text, so the first key typed edits it."""
    from textual.widgets import Input

    from widgets.probe_panel import ProbePanel, start_probe

    port = free_port()
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        start_probe(app, "127.0.0.1", port)
        await pilot.pause()
        panel = app.screen
        assert isinstance(panel, ProbePanel)
        await wait_event(pilot, panel.finished)
        field = panel.query_one("#target", Input)
        assert app.focused is field
        await pilot.press("space")
        assert field.value == f"127.0.0.1:{port} "
        await pilot.press(*"[::1]:1")
        assert field.value == f"127.0.0.1:{port} [::1]:1"


async def closed_port_panel(app: App, pilot) -> Any:  # type: ignore[no-untyped-def]
    """The test dialog opened on a closed loopback port, its first run finished."""
    from widgets.probe_panel import ProbePanel, start_probe

    start_probe(app, "127.0.0.1", free_port())
    await pilot.pause()
    panel = app.screen
    assert isinstance(panel, ProbePanel)
    await wait_event(pilot, panel.finished)
    return panel


def terminal_keys(raw: str) -> list[object]:
    """The key events Textual's own terminal parser makes of what a terminal sends (an Alt+letter
    is ESC and the letter: alt+h *with* the character h, where Pilot's press gives none; ESC b
    is ctrl+left)."""
    import time

    from textual import constants
    from textual._xterm_parser import XTermParser

    parser = XTermParser(debug=False)
    events = list(parser.feed(raw))
    time.sleep(constants.ESCAPE_DELAY + 0.02)
    return [*events, *parser.tick()]


async def test_alt_letters_from_a_terminal_tick_options_while_the_field_has_focus() -> None:
    """What a terminal sends for the hint's Alt+N/H/S/U ticks the options and types nothing into
    the focused field; Enter then runs, also from a focused checkbox."""
    from textual.widgets import Checkbox, Input

    from widgets.probe_panel import HINT, OPTIONS

    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        panel = await closed_port_panel(app, pilot)
        field = panel.query_one("#target", Input)
        before = field.value
        assert "Alt+" + "/".join(key.upper() for _oid, _label, key in OPTIONS) in HINT
        for _oid, _label, key in OPTIONS:
            for event in terminal_keys("\x1b" + key):
                app.post_message(event)  # (as the terminal driver posts them)
        await pilot.pause()
        assert field.value == before and app.focused is field
        boxes = [panel.query_one(f"#{oid}", Checkbox) for oid, _label, _key in OPTIONS]
        assert all(box.value for box in boxes)
        shown = len(log_text(panel).splitlines())
        boxes[0].focus()
        await pilot.pause()
        await pilot.press("enter")
        await wait_event(pilot, panel.finished)
        assert boxes[0].value  # (Enter ran the test: it did not untick the focused box)
        assert len(log_text(panel).splitlines()) > shown  # (what the run says of these options)


async def test_option_keys_tick_options_but_letters_typed_in_the_field_stay_text() -> None:
    from textual.widgets import Checkbox, Input

    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        panel = await closed_port_panel(app, pilot)
        field = panel.query_one("#target", Input)
        boxes = {oid: panel.query_one(f"#{oid}", Checkbox) for oid in ("banner", "http", "tls", "udp")}
        before = field.value
        await pilot.press("n", "h", "s", "u")  # typing in the field: text, not options
        assert field.value == before + "nhsu" and not any(b.value for b in boxes.values())
        await pilot.press(*["backspace"] * 4)
        await pilot.press("alt+n", "alt+h", "alt+s")  # alt+letter works while typing
        assert [b.value for b in boxes.values()] == [True, True, True, False]
        assert field.value == before and app.focused is field
        await pilot.press("down")  # to the options row: plain letters toggle there
        assert app.focused is boxes["banner"]
        await pilot.press("n", "right", "right", "right")
        assert not boxes["banner"].value and app.focused is boxes["udp"]
        await pilot.press("space")
        assert boxes["udp"].value
        await pilot.press("left", "space", "up")
        assert not boxes["tls"].value and app.focused is field
        hint = str(panel.query_one("#hint", Label).render())
        assert "Alt+N/H/S/U ticks Banner/HTTP/TLS/UDP" in hint and "Enter" in hint and "Esc" in hint


async def test_every_option_is_reachable_with_tab() -> None:
    from widgets.probe_panel import ProbePanel, start_probe

    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        start_probe(app, "127.0.0.1", free_port())
        await pilot.pause()
        panel = app.screen
        assert isinstance(panel, ProbePanel)
        seen = []
        for _ in range(8):
            await pilot.press("tab")
            seen.append(app.focused.id if app.focused is not None else None)
        assert {"run", "banner", "http", "tls", "udp", "log", "target"} <= set(seen)


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_the_test_panel_fits_small_terminals(size: tuple[int, int]) -> None:
    from widgets.probe_panel import ProbePanel, start_probe

    app = Host()
    async with app.run_test(size=size) as pilot:
        start_probe(app, "127.0.0.1", free_port())
        await pilot.pause()
        panel = app.screen
        assert isinstance(panel, ProbePanel)
        await wait_event(pilot, panel.finished)
        screen = panel.region
        for wid in ("target", "run", "banner", "http", "tls", "udp", "hint", "log"):
            region = panel.query_one(f"#{wid}").region
            assert region.width > 0 and region.height > 0, wid
            assert screen.contains_region(region), (wid, region, screen)
        regions = [panel.query_one(f"#{w}").region for w in ("banner", "http", "tls", "udp")]
        assert all(not a.overlaps(b) for i, a in enumerate(regions) for b in regions[i + 1 :])


async def test_an_http_test_runs_from_the_dashboard_by_keyboard_alone() -> None:
    """t on the listener, alt+h, Enter: the HTTP result shows in the panel. No mouse, no API call."""
    from tests.tui.test_tui_actions import live_app, select_port
    from widgets.probe_panel import ProbePanel

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    srv.block_on_close = False
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    port = srv.server_address[1]
    try:
        app = live_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await select_port(app, pilot, port)
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, ProbePanel))
            panel = app.screen
            assert isinstance(panel, ProbePanel)
            await wait_event(pilot, panel.finished)
            await pilot.press("alt+h", "enter")
            await pilot.pause()
            await wait_event(pilot, panel.finished)
            [out] = panel.outcomes
            assert out.http is not None and out.http.status == 200, out.http
            assert "HTTP/1.0 200" in log_text(panel) and "ps-hello" in log_text(panel)
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


class _Hello(http.server.BaseHTTPRequestHandler):
    server_version = "ps-hello/1.0"

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


# --- scan panel ---------------------------------------------------------------------------------


async def test_scan_panel_finds_the_listener_with_its_owner() -> None:
    from textual.widgets import ProgressBar

    from widgets.scan_panel import ScanPanel, start_scan

    with child_listener("tcp", "127.0.0.1", name="ps-scan-panel") as child:
        lo = max(1, child.port - 10)
        app = Host()
        async with app.run_test(size=(140, 40)) as pilot:
            start_scan(app, "127.0.0.1", f"{lo}-{child.port + 5 if child.port < 65530 else 65535}")
            await pilot.pause()
            panel = app.screen
            assert isinstance(panel, ScanPanel)
            await pilot.press("enter")
            await wait_event(pilot, panel.finished)
            assert panel.result is not None and child.port in panel.result.open_ports
            bar = panel.query_one("#progress", ProgressBar)
            assert bar.total == len(panel.result.results) and bar.progress == bar.total
            assert f"{child.port}/tcp  open  pid {child.pid} ps-scan-panel" in log_text(panel)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, ScanPanel)


async def test_scan_panel_bad_spec_is_a_notification() -> None:
    from widgets.scan_panel import ScanPanel, start_scan

    app = Host()
    async with app.run_test(size=(140, 40)) as pilot:
        start_scan(app, "127.0.0.1", "100-50")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ScanPanel) and app.is_running
        assert any("100 is above 50" in m for m in messages(app))
        assert [n.severity for n in app._notifications] == ["error"]


@needs_ipv6
async def test_scan_panel_ipv6() -> None:
    from widgets.scan_panel import ScanPanel, start_scan

    with child_listener("tcp", "::1") as child:
        app = Host()
        async with app.run_test(size=(140, 40)) as pilot:
            start_scan(app, "::1", str(child.port))
            await pilot.pause()
            panel = app.screen
            assert isinstance(panel, ScanPanel)
            await pilot.click("#scan")
            await wait_event(pilot, panel.finished)
            assert panel.result is not None and panel.result.open_ports == [child.port]


async def test_scan_panel_host_is_reachable_and_space_does_not_wipe_a_field() -> None:
    from textual.widgets import Input

    from widgets.scan_panel import ScanPanel, start_scan

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        start_scan(app, "127.0.0.1", "1-1024")
        await pilot.pause()
        panel = app.screen
        assert isinstance(panel, ScanPanel)
        ports, host = panel.query_one("#ports", Input), panel.query_one("#host", Input)
        assert app.focused is ports
        await pilot.press("space", *",2000")
        assert ports.value == "1-1024 ,2000"
        await pilot.press("shift+tab")
        assert app.focused is host
        await pilot.press("backspace", "2")  # 127.0.0.1 -> 127.0.0.2: edited, not replaced
        assert host.value == "127.0.0.2"
        await pilot.press("tab", "tab")
        assert app.focused is panel.query_one("#scan")


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_the_scan_panel_fits_small_terminals(size: tuple[int, int]) -> None:
    from widgets.scan_panel import ScanPanel, start_scan

    app = Host()
    async with app.run_test(size=size) as pilot:
        start_scan(app, "127.0.0.1", "1-10")
        await pilot.pause()
        panel = app.screen
        assert isinstance(panel, ScanPanel)
        for wid in ("host", "ports", "scan", "progress", "log"):
            region = panel.query_one(f"#{wid}").region
            assert region.width > 0 and region.height > 0, wid
            assert panel.region.contains_region(region), (wid, region)


# --- free port ----------------------------------------------------------------------------------


async def test_free_port_is_shown_copied_and_binds() -> None:
    from widgets.free_port import FreePortScreen, start_free_port

    app = Host()
    async with app.run_test() as pilot:
        start_free_port(app)
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FreePortScreen)
        await wait_event(pilot, screen.finished)
        port = screen.port
        assert port is not None
        assert app.clipboard == str(port)
        assert any(f"port {port} (copied" in m for m in messages(app))
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
        await pilot.press("r")
        await pilot.pause()
        await wait_event(pilot, screen.finished)
        assert screen.port is not None and screen.port != port
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, FreePortScreen)
