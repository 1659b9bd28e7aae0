"""The dashboard freezes what is alive after each poll (a full collection would walk every row of
100k sockets and stop the keys); what was frozen and later dies inside a reference cycle must
still be freed: by a collection of everything once the user is idle, and at the latest after
COLLECT_AT_MOST polls. (Textual's rendered lines are such cycles: without this the dashboard grew
by about 60 KB a poll at 100k sockets, some 2.6 GB a day.)"""

from __future__ import annotations

import gc
import weakref
from typing import Any

from tests.tui.fixtures import make_app, until


class Node:
    me: Any = None


def frozen_cycle(app: Any) -> weakref.ref[Node]:
    node = Node()
    node.me = node  # a cycle: reference counting alone never frees it
    app.held = node
    return weakref.ref(node)


async def test_a_cycle_frozen_by_a_poll_is_freed_once_the_user_is_idle() -> None:
    app = make_app(interval=0.05)
    app.COLLECT_AFTER, app.IDLE_SECONDS = 3, 0.0
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        ref = frozen_cycle(app)
        polled = app.poll_count
        await until(pilot, lambda: app.poll_count > polled)  # that poll froze it
        del app.held
        gc.collect()  # an ordinary collection does not look at frozen objects
        assert ref() is not None
        await until(pilot, lambda: ref() is None)
        assert app.full_collections >= 1


async def test_keys_put_the_collection_off_but_only_up_to_collect_at_most_polls() -> None:
    app = make_app(interval=0.05)
    app.COLLECT_AFTER, app.COLLECT_AT_MOST, app.IDLE_SECONDS = 2, 1000, 3600.0
    async with app.run_test(size=(80, 24)) as pilot:
        before = app._last_input
        await pilot.press("down")  # the user is busy: no collection
        assert app._last_input > before
        await until(pilot, lambda: app.poll_count >= 6)
        assert app.full_collections == 0
        app.COLLECT_AT_MOST = app._polls_frozen + 2  # ... until the cap
        ref = frozen_cycle(app)
        polled = app.poll_count
        await until(pilot, lambda: app.poll_count > polled)
        del app.held
        await until(pilot, lambda: ref() is None)
        assert app.full_collections == 1
