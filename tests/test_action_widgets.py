"""The action modals driven with Pilot on a tiny host App, against real children and servers."""

from __future__ import annotations

import dataclasses
import os
import signal

import psutil
from textual.app import App, ComposeResult
from textual.widgets import Static

from app import kill
from app.collector import PsutilCollector
from tests.helpers import child_listener
from widgets.kill_modal import ConfirmScreen, KillModal, start_kill


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("host")


def messages(app: App) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def settle(app: App, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.workers.wait_for_complete()
    await pilot.pause()


def target_for(port: int) -> kill.KillTarget:
    snap = PsutilCollector().collect()
    [t] = kill.owners_on_port(snap, port)
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
    me = kill.KillTarget.from_pid(os.getpid())
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
