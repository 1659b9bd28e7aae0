"""The dashboard fixtures are what the tests built on them assume."""

from __future__ import annotations

from tests.tui.fixtures import second_snapshot, snapshot


def test_fixture_snapshots_differ_as_documented() -> None:
    from app.events import EventKind, diff

    kinds = sorted(e.kind.value for e in diff(snapshot(), second_snapshot()))
    assert kinds == sorted([EventKind.OPENED, EventKind.CLOSED, EventKind.STATE_CHANGED])
