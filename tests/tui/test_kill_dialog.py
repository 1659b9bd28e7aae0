"""The kill dialog with Pilot: its own keys, any terminal size, progress while waiting, the result it
returns, a respawn shown in place, and the same plan as the CLI's."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Button, RadioSet, Static

from app import kill, killplan
from app.collector import PsutilCollector
from app.model import Proto
from tests.helpers import child_listener, kill_quietly, prefork_server, run_cli, supervised_listener
from tests.tui.fixtures import until
from widgets.kill_modal import ConfirmScreen, KillModal, start_kill, start_port_kill


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("host")


def messages(app: App) -> list[str]:
    return [str(n.message) for n in app._notifications]


# A process holding many sockets: 30 TCP listeners on loopback. Prints the first one's port.
_MANY = r"""
import socket, time
held = []
for _ in range(30):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4); held.append(s)
print(held[0].getsockname()[1], flush=True)
for _ in range(3000): time.sleep(0.1)
"""


@contextmanager
def many_sockets() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([sys.executable, "-c", _MANY], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    try:
        yield proc, port
    finally:
        kill_quietly(proc.pid)
        proc.wait(timeout=5)


def plan_for(port: int) -> killplan.KillPlan:
    return killplan.plan_port(PsutilCollector().collect(), port, Proto.TCP)


def visible(app: App, selector: str) -> bool:
    """The widget is on screen, whole, inside the terminal."""
    widget = app.screen.query_one(selector)
    region = widget.region
    width, height = app.size
    return (
        widget.display
        and region.width > 0
        and region.height > 0
        and region.x >= 0
        and region.y >= 0
        and region.right <= width
        and region.bottom <= height
    )


def pressed(modal: KillModal) -> str:
    return modal.choice.signal.name


async def open_dialog(app: App, pilot: object, plan: killplan.KillPlan, **kwargs: object) -> KillModal:
    start_kill(app, plan, **kwargs)  # type: ignore[arg-type]
    await pilot.pause()  # type: ignore[attr-defined]
    modal = app.screen
    assert isinstance(modal, KillModal)
    return modal


# --- keys ----------------------------------------------------------------------------------------


async def test_dialog_owns_its_keys_arrows_digits_tab() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            modal = await open_dialog(app, pilot, plan_for(child.port))
            labels = [str(b.label) for b in modal.query("RadioButton").results()]
            assert labels == ["1 TERM", "2 INT", "3 HUP", "4 KILL"]  # the keys are shown
            assert pressed(modal) == "SIGTERM"
            await pilot.press("right")
            assert pressed(modal) == "SIGINT"
            await pilot.press("down")
            assert pressed(modal) == "SIGHUP"
            await pilot.press("left")
            assert pressed(modal) == "SIGINT"
            await pilot.press("up", "up")
            assert pressed(modal) == "SIGKILL"  # wraps around
            for key, name in (("1", "SIGTERM"), ("3", "SIGHUP"), ("4", "SIGKILL"), ("2", "SIGINT")):
                await pilot.press(key)
                assert pressed(modal) == name
            # Tab walks the dialog's own widgets
            seen = []
            for _ in range(5):
                seen.append(modal.focused.id if modal.focused else None)
                await pilot.press("tab")
            assert seen[0] == "signal" and {"signal", "tree", "send", "cancel"} <= set(seen), seen
            assert app.screen is modal
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, KillModal)
            assert child.proc.poll() is None
            assert "kill cancelled" in messages(app)


async def test_enter_on_a_focused_cancel_button_cancels() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            modal = await open_dialog(app, pilot, plan_for(child.port))
            modal.query_one("#cancel", Button).focus()
            await pilot.press("enter")
            await pilot.pause()
            assert not isinstance(app.screen, KillModal)
            assert child.proc.poll() is None


# --- any size ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_many_sockets_keep_the_choice_and_buttons_on_screen(size: tuple[int, int]) -> None:
    with many_sockets() as (proc, port):
        plan = plan_for(port)
        assert len(plan.primary[0].ports) == 30
        app = Host()
        async with app.run_test(size=size) as pilot:
            start_kill(app, plan)
            await pilot.pause()
            assert isinstance(app.screen, KillModal)
            for selector in ("#signal", "#tree", "#send", "#cancel", "#title"):
                assert visible(app, selector), (selector, app.screen.query_one(selector).region)
            details = str(app.screen.query_one("#details", Static).render())
            assert "+25 more" in details  # 30 ports, capped
            body = app.screen.query_one("#body", VerticalScroll)
            assert body.region.bottom <= app.screen.query_one("#controls").region.y
            if size == (60, 20):
                assert body.max_scroll_y > 0  # the rest is a scroll away
                body.scroll_end(animate=False)
                await pilot.pause()
                assert body.scroll_y == body.max_scroll_y
            await pilot.press("4")
            assert app.screen.query_one("#signal", RadioSet).pressed_index == 3
            await pilot.press("escape")
            await pilot.pause()
            assert proc.poll() is None


async def test_a_tiny_terminal_does_not_crash_and_can_cancel() -> None:
    with many_sockets() as (proc, port):
        app = Host()
        async with app.run_test(size=(40, 10)) as pilot:
            start_kill(app, plan_for(port))
            await pilot.pause()
            assert isinstance(app.screen, KillModal)
            await pilot.press("right", "t", "tab")
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, KillModal) and app.is_running
            assert proc.poll() is None


# --- progress, result ----------------------------------------------------------------------------


async def test_waiting_shows_what_was_sent_and_a_countdown() -> None:
    with child_listener("tcp", "127.0.0.1", ignore_term=True, name="ps-slow") as child:
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            plan = plan_for(child.port)
            modal = await open_dialog(app, pilot, plan, timeout=2.0, collector_factory=PsutilCollector)
            await pilot.press("enter")

            def status() -> str:
                return str(modal.query_one("#status", Static).render())

            want = f"SIGTERM sent to pid {child.pid} (ps-slow), waiting 2 s"
            await until(pilot, lambda: want in status(), timeout=10)
            first = status()
            assert "s left)" in first and visible(app, "#status")
            await until(pilot, lambda: status() != first and "s left)" in status(), timeout=5)
            assert modal.query_one("#signal", RadioSet).disabled  # no second choice mid-flight
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=10)
            await pilot.press("escape")  # no SIGKILL
            await until(pilot, lambda: modal.state == "done", timeout=10)
            assert child.proc.poll() is None
            assert f"still running: pid {child.pid} (ps-slow)" in str(modal.query_one("#details").render())


async def test_the_dialog_returns_its_report() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        app = Host()
        results: list[kill.KillReport | None] = []
        async with app.run_test(size=(80, 24)) as pilot:
            app.push_screen(
                KillModal(plan_for(child.port), collector_factory=PsutilCollector), results.append
            )
            await pilot.pause()
            await pilot.press("2")  # SIGINT
            await pilot.press("y")
            await until(pilot, lambda: bool(results), timeout=20)
            [report] = results
            assert report is not None
            assert [(s.ident.pid, s.signal) for s in report.sent] == [(child.pid, signal.SIGINT)]
            assert report.exited and report.port_free
            assert child.proc.wait(timeout=5) != 0
            # cancelled: None
            app.push_screen(KillModal(report.plan), results.append)
            await pilot.pause()
            await pilot.press("n")
            await until(pilot, lambda: len(results) == 2)
            assert results[1] is None


@pytest.mark.slow
async def test_a_respawn_is_shown_in_the_dialog() -> None:
    with supervised_listener() as sup:
        snap = PsutilCollector().collect()
        [sock] = [s for s in snap.on_port(sup.port) if s.listening]
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            start_port_kill(app, snap, sock, collector_factory=PsutilCollector)
            await until(pilot, lambda: isinstance(app.screen, KillModal), timeout=10)
            modal = app.screen
            assert isinstance(modal, KillModal)
            await pilot.press("enter")
            await until(pilot, lambda: modal.state == "done", timeout=20)
            again = sup.next_child()
            assert app.screen is modal  # not a clean result: it stays until closed
            shown = str(modal.query_one("#status").render()) + str(modal.query_one("#details").render())
            assert f"respawned as pid {again}" in shown and f"(pid {sup.pid})" in shown
            assert f"portscope kill --pid {sup.pid} --tree" in shown
            # (the toast is a message the app handles after the dialog's state changed: waited for,
            # as a slow run had not handled it yet when this was read)
            await until(pilot, lambda: any("respawned" in m for m in messages(app)), timeout=10)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, KillModal)


# --- the dashboard and the CLI plan the same targets ----------------------------------------------


async def test_dashboard_k_and_the_cli_plan_the_same_targets(tmp_path: Path) -> None:
    from app.tui.app import PortscopeApp
    from tests.tui.fixtures import fixed_interfaces
    from tests.tui.test_tui_actions import select_port

    with prefork_server(str(tmp_path), workers=3) as srv:
        res = run_cli("kill", str(srv.port), "--proto", "tcp", "--dry-run", "--json")
        assert res.returncode == 0, res.stderr
        cli = json.loads(res.stdout)["plan"]
        app = PortscopeApp(
            collector=PsutilCollector(), interval=0.2, interfaces=fixed_interfaces, blink=False
        )
        async with app.run_test(size=(120, 36)) as pilot:
            await select_port(app, pilot, srv.port)
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, KillModal), timeout=10)
            modal = app.screen
            assert isinstance(modal, KillModal)
            view = app.view
            await pilot.press("tab")  # the dialog's focus moves; the view behind it stays
            assert app.view == view and app.screen is modal and modal.focused is not None
            assert modal.focused.id != "signal"
            plan = modal.plan
            assert [t.pid for t in plan.primary] == [p["pid"] for p in cli["primary"]] == [srv.pid]
            assert [t.pid for t in plan.workers] == [w["pid"] for w in cli["workers"]]
            assert sorted(t.pid for t in plan.workers) == sorted(srv.workers)
            assert f"pid {srv.pid} (ps-prefork) + 3 workers" in str(modal.query_one("#title").render())
            assert f"same as: portscope kill {srv.port} --proto tcp" in str(
                modal.query_one("#details").render()
            )
            await pilot.press("escape")
            await pilot.pause()
        assert srv.proc.poll() is None and srv.signals(srv.pid) == []


async def test_dashboard_k_on_a_prefork_port_signals_the_master_only(tmp_path: Path) -> None:
    from app.tui.app import PortscopeApp
    from tests.tui.fixtures import fixed_interfaces
    from tests.tui.test_tui_actions import select_port

    with prefork_server(str(tmp_path), workers=2) as srv:
        app = PortscopeApp(
            collector=PsutilCollector(), interval=0.2, interfaces=fixed_interfaces, blink=False
        )
        async with app.run_test(size=(120, 36)) as pilot:
            await select_port(app, pilot, srv.port)
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, KillModal), timeout=10)
            await pilot.press("enter")
            assert srv.proc.wait(timeout=10) == 0
            await until(pilot, lambda: any("is free" in m for m in messages(app)), timeout=30)
        for w in srv.workers:
            assert [(signo, sender) for signo, sender, _ in srv.signals(w)] == [(signal.SIGUSR1, srv.pid)]


# A listener that takes a second to exit after SIGTERM (a graceful shutdown). Prints its port.
_SLOW_EXIT = r"""
import signal, socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
def on_term(signum, frame):
    time.sleep(1.0)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print(s.getsockname()[1], flush=True)
for _ in range(3000): time.sleep(0.1)
"""


async def test_closing_the_dialog_while_waiting_lets_the_kill_finish_and_report() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_EXIT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    try:
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            plan = plan_for(port)
            modal = await open_dialog(app, pilot, plan, timeout=5, collector_factory=PsutilCollector)
            await pilot.press("enter")
            await until(pilot, lambda: "waiting 5 s" in str(modal.query_one("#status").render()), timeout=10)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, KillModal)
            assert any("the kill goes on" in m for m in messages(app))
            assert "kill cancelled" not in messages(app)
            await until(pilot, lambda: any("exited" in m for m in messages(app)), timeout=20)
            assert proc.wait(timeout=5) == 0
            assert any(f"port {port}/tcp is free" in m for m in messages(app)), messages(app)
    finally:
        kill_quietly(proc.pid)
        proc.wait(timeout=5)


async def test_hostile_names_show_escaped_in_the_dialog() -> None:
    with child_listener("tcp", "127.0.0.1", name="[b]x\x1b]0;t\x07") as child:
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            modal = await open_dialog(app, pilot, plan_for(child.port))
            shown = str(modal.query_one("#title").render()) + str(modal.query_one("#details").render())
            assert "[b]x\\x1b]0;t\\x07" in shown and "\x1b" not in shown
            await pilot.press("escape")


class StyledHost(App[None]):
    """A host with the dashboard's own stylesheet: its rules must not reach into the dialogs."""

    CSS_PATH = str(Path(__file__).resolve().parents[2] / "app" / "tui" / "app.tcss")

    def compose(self) -> ComposeResult:
        yield Static("host")


async def test_the_dashboard_stylesheet_does_not_size_the_dialogs_body() -> None:
    # app.tcss once said `#body { height: 1fr }` for the main screen's body; app CSS outranks a
    # widget's DEFAULT_CSS, so the kill dialog's own `#body` (height: auto) became 1fr too.
    with child_listener("tcp", "127.0.0.1") as child:
        app = StyledHost()
        async with app.run_test(size=(80, 24)) as pilot:
            app.push_screen(KillModal(plan_for(child.port), collector_factory=PsutilCollector))
            await pilot.pause()
            body = app.screen.query_one("#body", VerticalScroll)
            assert str(body.styles.height) == "auto"
            dialog = app.screen.query_one("#dialog")
            assert dialog.region.height < 24  # sized to its content, not the whole screen
