"""SVG snapshots of the owners and TCP health columns (#12, #15) at 120x32 and 80x24, the detail
pane's "belongs to" and health, and the close dialog at 80x24, from fixed snapshots with stats.

Regenerate after an intended visual change with:
    .venv/bin/python -m pytest tests/tui/test_health_snapshots.py --snapshot-update
and look at the SVGs in tests/tui/__snapshots__/ before committing them.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.health import STALL_POLLS
from tests.tui.fixtures import SequenceCollector, health_snapshots, make_app, until
from widgets.close_modal import CloseModal

pytestmark = pytest.mark.usefixtures("utc")
POLLS = STALL_POLLS + 4  # rates, a storm, a stall, and the new rows' green faded


def health_app() -> Any:
    return make_app(SequenceCollector(*health_snapshots(POLLS)))


async def poll_once(pilot: Any) -> None:
    app = pilot.app
    n = app.poll_count
    await pilot.press("r")
    await until(pilot, lambda: app.poll_count > n)


async def after_polls(pilot: Any, *keys: str) -> None:
    app = pilot.app
    await until(pilot, lambda: app.poll_count >= 1)
    while app.poll_count < POLLS:
        await poll_once(pilot)
    if keys:
        await pilot.press(*keys)
    await pilot.pause()


@pytest.mark.parametrize("size", [(120, 32), (80, 24)], ids=["120x32", "80x24"])
def test_connections_with_rates_rtt_retransmits_and_marks(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run(pilot: Any) -> None:
        await after_polls(pilot, "2")

    assert snap_compare(health_app(), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", [(120, 32), (80, 24)], ids=["120x32", "80x24"])
def test_listening_with_holders_service_forward_and_queue(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run(pilot: Any) -> None:
        await after_polls(pilot)

    assert snap_compare(health_app(), terminal_size=size, run_before=run)


def test_connections_sorted_by_tx_top_talkers_first(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await after_polls(pilot, "2")
        app = pilot.app
        model = app.model("connections")
        app.main.sort_by_column("connections", next(i for i, c in enumerate(model.columns) if c.key == "tx"))
        await pilot.pause()

    assert snap_compare(health_app(), terminal_size=(120, 32), run_before=run)


def test_detail_pane_belongs_to_and_health(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await after_polls(pilot, "2")
        app = pilot.app
        key = next(k for k, r in app.model().rows.items() if r.payload.sock.laddr.port == 42000)
        app.model().select_key(key)
        await pilot.press("enter")
        await until(pilot, lambda: "sockets held" in str(app.query_one("#detail-text").render()))
        await pilot.pause()

    assert snap_compare(health_app(), terminal_size=(130, 40), run_before=run)


def test_close_dialog_80x24(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await after_polls(pilot, "2")
        app = pilot.app
        key = next(k for k, r in app.model().rows.items() if r.payload.sock.laddr.port == 42000)
        app.model().select_key(key)
        await pilot.press("X")
        await until(pilot, lambda: isinstance(app.screen, CloseModal))
        await pilot.pause()

    assert snap_compare(health_app(), terminal_size=(80, 24), run_before=run)
