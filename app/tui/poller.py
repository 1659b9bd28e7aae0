"""The dashboard's poll cycle as a small state machine, with no Textual in it.

One poll at a time: :meth:`Poller.start` spawns ``body`` (by default in a daemon thread), which
must end by handing its outcome back on the UI thread, as :meth:`Poller.finished` or
:meth:`Poller.failed`. The next poll is scheduled ``interval`` seconds after the last one
*finished*, so a slow collector never stacks polls and the refresh rate adapts to the load.

A finished poll is applied at once unless the dashboard is paused (it waits as ``pending`` for
resume or "refresh now") or cannot take it now (``can_apply`` is false while a dialog is open:
retried every ``retry`` seconds, so the rows behind a dialog do not move under the user).
"refresh now" during a poll forces that poll's result to be applied even when paused.

Time comes from ``schedule(delay, callback) -> handle`` (Textual's ``App.set_timer`` fits; the
tests pass a fake clock), so every transition can be tested without a UI.

The thread is a plain daemon thread rather than a Textual thread worker: those run on the event
loop's default executor, which is joined at exit, so quitting would wait for a slow poll.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Stoppable(Protocol):
    def stop(self) -> None: ...


Schedule = Callable[[float, Callable[[], None]], Stoppable]


def spawn_thread(body: Callable[[], None]) -> None:
    threading.Thread(target=body, name="portscope-poll", daemon=True).start()


class Poller(Generic[T]):
    """Poll state: ``polling`` (a poll is under way), ``paused``, ``pending`` (a result waiting to
    be applied) and ``applied`` (results applied so far)."""

    def __init__(
        self,
        *,
        interval: float,
        schedule: Schedule,
        body: Callable[[], None],
        apply: Callable[[T], None],
        can_apply: Callable[[], bool] = lambda: True,
        spawn: Callable[[Callable[[], None]], None] = spawn_thread,
        retry: float = 0.25,
    ) -> None:
        self.interval = interval
        self.retry = retry
        self._schedule = schedule
        self._body = body
        self._apply = apply
        self._can_apply = can_apply
        self._spawn = spawn
        self.paused = False
        self.polling = False
        self.applied = 0
        self.pending: T | None = None
        self._force = False
        self._next: Stoppable | None = None
        self._retrying: Stoppable | None = None

    # ------------------------------------------------------------------------ transitions

    def start(self) -> None:
        """Poll now, unless a poll is already under way."""
        self._cancel_next()
        if self.polling:
            return
        self.polling = True
        self._spawn(self._body)

    def finished(self, result: T) -> None:
        """A poll's result, on the UI thread."""
        self.polling = False
        if self.paused and not self._force:
            self.pending = result  # applied on resume or on "refresh now"
            return
        if not self._can_apply():
            self.pending = result
            self._retry_later()
            return
        self._apply_now(result)
        self._schedule_next()

    def failed(self) -> None:
        """A poll raised (the caller reports the error); polling goes on."""
        self.polling = False
        self._force = False
        self._schedule_next()

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            self._cancel_next()
            return
        if self.pending is not None:
            self._apply_pending_or_retry()
        if not self.polling:
            self.start()

    def refresh_now(self) -> None:
        """Poll now and apply the result even when paused; during a poll: apply that one."""
        if self.polling:
            self._force = True
            return
        if self.pending is not None and self._can_apply():
            self._take_pending()
        self._force = True
        self.start()

    # ---------------------------------------------------------------------------- helpers

    def _apply_now(self, result: T) -> None:
        self._force = False
        self.applied += 1  # counted first: the apply hook sees its own poll's number
        self._apply(result)

    def _take_pending(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            self._apply_now(pending)

    def _apply_pending_or_retry(self) -> None:
        if self._can_apply():
            self._take_pending()
        else:
            self._retry_later()

    def _retry_later(self) -> None:
        if self._retrying is None:
            self._retrying = self._schedule(self.retry, self._retry)

    def _retry(self) -> None:
        self._retrying = None
        if self.pending is None or (self.paused and not self._force):
            return
        if not self._can_apply():
            self._retry_later()
            return
        self._take_pending()
        self._schedule_next()

    def _schedule_next(self) -> None:
        self._cancel_next()
        if not self.paused:
            self._next = self._schedule(self.interval, self.start)

    def _cancel_next(self) -> None:
        if self._next is not None:
            self._next.stop()
            self._next = None
