"""The dashboard's UI work per poll follows what changed (issue #14): counted, never timed."""

from __future__ import annotations

from tests.tui.fixtures import SequenceCollector, make_app, second_snapshot, snapshot, until


async def test_a_poll_repaints_the_changed_rows_and_brings_the_chrome_up_to_date_once() -> None:
    app = make_app(SequenceCollector(snapshot(), snapshot(), second_snapshot()))
    async with app.run_test(size=(140, 36)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        table = app.table("connections")
        app.action_view("connections")
        for _ in range(3):
            await pilot.pause()
        main = app.main
        # the same host again: no row changed, so no line of the table is built again
        built, chrome = table.lines_built, main.chrome_updates
        app.poller.refresh_now()
        await until(pilot, lambda: app.poll_count >= 2)
        for _ in range(3):
            await pilot.pause()
        assert table.lines_built == built
        assert main.chrome_updates - chrome == 1  # once a poll, not once more after the refresh
        # one connection changed state (listeners came and went, in the other table)
        built = table.lines_built
        app.poller.refresh_now()
        await until(pilot, lambda: app.poll_count >= 3)
        for _ in range(3):
            await pilot.pause()
        assert table.lines_built - built == 1  # the connection that changed state
        assert "LAST_ACK" in "\n".join(table.visible_text())
