"""The action modals driven with Pilot on a tiny host App, against real children and servers."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading

import psutil
import pytest
from textual.app import App, ComposeResult
from textual.widgets import Static

from app import killplan
from app.collector import PsutilCollector
from app.model import Proto
from tests.helpers import child_listener, free_port, needs_ipv6, tcp_server
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


async def test_port_test_panel_streams_results_for_a_real_server() -> None:
    from widgets.test_panel import PortTestPanel, start_port_test

    with tcp_server(greet) as port:
        app = Host()
        async with app.run_test(size=(140, 40)) as pilot:
            start_port_test(app, "127.0.0.1", port)
            await pilot.pause()
            panel = app.screen
            assert isinstance(panel, PortTestPanel)
            await wait_event(pilot, panel.finished)
            assert [o.state for o in panel.outcomes] == ["open"]
            text = log_text(panel)
            assert f"tcp 127.0.0.1:{port}  open" in text and "=> open" in text
            # with the banner test: the bytes are shown escaped, not interpreted
            await pilot.click("#banner")
            await pilot.click("#run")
            await pilot.pause()
            await wait_event(pilot, panel.finished)
            assert "[red]hi\\x1b[0m\\r\\n" in log_text(panel)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, PortTestPanel)


async def test_port_test_panel_wildcard_prefills_both_loopbacks_and_reports_closed() -> None:
    from widgets.test_panel import PortTestPanel, start_port_test

    port = free_port()
    app = Host()
    async with app.run_test(size=(140, 40)) as pilot:
        start_port_test(app, "0.0.0.0", port)
        await pilot.pause()
        panel = app.screen
        assert isinstance(panel, PortTestPanel)
        assert panel.query_one("#target").value == f"127.0.0.1:{port}, [::1]:{port}"
        await wait_event(pilot, panel.finished)
        assert [o.state for o in panel.outcomes] == ["closed", "closed"]


async def test_port_test_panel_bad_input_notifies_and_keeps_running() -> None:
    from textual.widgets import Input

    from widgets.test_panel import PortTestPanel, start_port_test

    app = Host()
    async with app.run_test(size=(140, 40)) as pilot:
        start_port_test(app, "127.0.0.1", free_port())
        await pilot.pause()
        panel = app.screen
        assert isinstance(panel, PortTestPanel)
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
    from widgets.test_panel import PortTestPanel, start_port_test

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        app = Host()
        async with app.run_test(size=(140, 40)) as pilot:
            start_port_test(app, "127.0.0.1", port, proto="udp")
            await pilot.pause()
            panel = app.screen
            assert isinstance(panel, PortTestPanel)
            await wait_event(pilot, panel.finished)
            assert [o.state for o in panel.outcomes] == ["closed"]
            assert "ICMP port unreachable" in log_text(panel)


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
