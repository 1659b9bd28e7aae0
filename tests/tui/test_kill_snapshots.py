"""SVG snapshot of the kill dialog at 80x24: a pre-fork server's master with many sockets and its
workers, from a fixed plan (nothing is signalled: the snapshot is taken before any key).

Regenerate after an intended visual change with:
    .venv/bin/python -m pytest tests/tui/test_kill_snapshots.py --snapshot-update
and look at the SVG in tests/tui/__snapshots__/ before committing it.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Static

from app.killplan import KillPlan, KillTarget
from app.model import Proto
from widgets.kill_modal import KillModal, start_kill

STARTED = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


pytestmark = pytest.mark.usefixtures("utc")  # the dialog shows the start time in local time


def nginx_plan() -> KillPlan:
    ports = (
        "tcp 0.0.0.0:80 LISTEN",
        "tcp6 [::]:80 LISTEN",
        *(f"tcp 10.0.0.5:80 -> 10.0.0.{i}:5{i:04d} ESTABLISHED" for i in range(9, 21)),
    )
    master = KillTarget(
        pid=4242,
        name="nginx",
        user="root",
        cmdline=("nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",),
        create_time=STARTED,
        ports=ports,
        port_numbers=(("tcp", 80),),
        ppid=1,
    )
    workers = tuple(
        KillTarget(
            pid=4243 + i,
            name="nginx",
            user="www-data",
            cmdline=("nginx: worker process",),
            create_time=STARTED + 1,
            ports=("tcp 0.0.0.0:80 LISTEN",),
            port_numbers=(("tcp", 80),),
            ppid=4242,
        )
        for i in range(9)
    )
    return KillPlan(
        what="port 80/tcp", primary=(master,), workers=workers, port=80, proto=Proto.TCP, ports=(("tcp", 80),)
    )


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("dashboard behind the dialog")


def test_kill_dialog_80x24(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        start_kill(pilot.app, nginx_plan())
        await pilot.pause()
        assert isinstance(pilot.app.screen, KillModal)
        await pilot.pause()

    assert snap_compare(Host(), terminal_size=(80, 24), run_before=run)
