"""The dashboard fixes glibc's trim threshold when it starts (app.memtune), before its poll thread."""

from __future__ import annotations

import pytest

from app import memtune
from tests.helpers import glibc_only
from tests.tui.fixtures import make_app


@glibc_only
async def test_the_dashboard_tunes_the_allocator_when_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memtune, "_done", None)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert memtune._done is True
