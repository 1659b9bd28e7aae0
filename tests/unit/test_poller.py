"""The dashboard's poll state machine, without a UI: a fake clock and a fake thread spawner."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from app.tui.poller import Poller


@dataclass
class Timer:
    due: float
    callback: Callable[[], None]
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeClock:
    now: float = 0.0
    timers: list[Timer] = field(default_factory=list)

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Run every timer that falls due, in order, as the event loop would."""
        end = self.now + seconds
        while True:
            live = [t for t in self.timers if not t.stopped and t.due <= end]
            if not live:
                break
            timer = min(live, key=lambda t: t.due)
            self.timers.remove(timer)
            self.now = timer.due
            timer.callback()
        self.now = end

    @property
    def live(self) -> list[Timer]:
        return [t for t in self.timers if not t.stopped]


class Rig:
    """A poller whose polls are started by hand-off: ``complete(result)`` finishes the one under way."""

    def __init__(self, interval: float = 2.0) -> None:
        self.clock = FakeClock()
        self.spawned = 0
        self.applied: list[str] = []
        self.modal = False
        self.poller: Poller[str] = Poller(
            interval=interval,
            schedule=self.clock.schedule,
            body=lambda: None,
            apply=self.applied.append,
            can_apply=lambda: not self.modal,
            spawn=self._spawn,
        )

    def _spawn(self, body: Callable[[], None]) -> None:
        self.spawned += 1
        body()

    def complete(self, result: str) -> None:
        assert self.poller.polling
        self.poller.finished(result)


def test_the_next_poll_is_scheduled_when_the_last_finished() -> None:
    rig = Rig(interval=2.0)
    p = rig.poller
    p.start()
    assert p.polling and rig.spawned == 1
    rig.clock.advance(10.0)  # a slow poll: nothing else starts meanwhile
    assert rig.spawned == 1 and rig.clock.live == []
    rig.complete("a")
    assert rig.applied == ["a"] and p.applied == 1 and not p.polling
    [timer] = rig.clock.live
    assert timer.due == 12.0  # interval after the finish, not after the start
    rig.clock.advance(1.9)
    assert rig.spawned == 1
    rig.clock.advance(0.1)
    assert rig.spawned == 2 and p.polling


def test_start_during_a_poll_does_not_start_another() -> None:
    rig = Rig()
    rig.poller.start()
    rig.poller.start()
    assert rig.spawned == 1


def test_a_failed_poll_schedules_the_next_one() -> None:
    rig = Rig(interval=1.0)
    p = rig.poller
    p.start()
    p.failed()
    assert not p.polling and rig.applied == []
    rig.clock.advance(1.0)
    assert rig.spawned == 2


def test_pause_keeps_the_result_pending_and_stops_the_timer() -> None:
    rig = Rig(interval=1.0)
    p = rig.poller
    p.start()
    rig.complete("a")
    p.toggle_pause()
    assert p.paused and rig.clock.live == []
    rig.clock.advance(60)
    assert rig.spawned == 1  # nothing polls while paused


def test_a_poll_that_finishes_while_paused_waits_for_resume() -> None:
    rig = Rig(interval=1.0)
    p = rig.poller
    p.start()
    p.toggle_pause()  # paused mid-poll
    rig.complete("late")
    assert rig.applied == [] and p.pending == "late" and rig.clock.live == []
    p.toggle_pause()  # resume: the pending result shows, and a fresh poll starts
    assert rig.applied == ["late"] and p.pending is None
    assert rig.spawned == 2 and p.polling


def test_refresh_now_while_paused_polls_once_and_applies() -> None:
    rig = Rig(interval=1.0)
    p = rig.poller
    p.start()
    rig.complete("a")
    p.toggle_pause()
    p.refresh_now()
    assert rig.spawned == 2
    rig.complete("b")
    assert rig.applied == ["a", "b"]
    assert rig.clock.live == []  # still paused: no next poll
    assert p.paused


def test_refresh_now_during_a_poll_forces_that_poll() -> None:
    rig = Rig(interval=1.0)
    p = rig.poller
    p.start()
    p.toggle_pause()
    p.refresh_now()
    assert rig.spawned == 1  # no second poll
    rig.complete("forced")
    assert rig.applied == ["forced"]
    p.start()
    rig.complete("not forced")
    assert rig.applied == ["forced"] and p.pending == "not forced"  # the force was used once


def test_refresh_now_cancels_the_timer_and_applies_a_pending_result_first() -> None:
    rig = Rig(interval=5.0)
    p = rig.poller
    p.start()
    p.toggle_pause()
    rig.complete("pending")
    p.refresh_now()
    assert rig.applied == ["pending"] and rig.spawned == 2
    rig.complete("fresh")
    assert rig.applied == ["pending", "fresh"]


def test_refresh_now_when_idle_restarts_the_cycle() -> None:
    rig = Rig(interval=5.0)
    p = rig.poller
    p.start()
    rig.complete("a")
    rig.clock.advance(1.0)
    p.refresh_now()
    assert rig.spawned == 2
    assert rig.clock.live == []  # the old timer was cancelled
    rig.complete("b")
    assert [t.due for t in rig.clock.live] == [6.0]


def test_a_result_waits_while_a_dialog_is_open_and_is_retried() -> None:
    rig = Rig(interval=2.0)
    p = rig.poller
    rig.modal = True
    p.start()
    rig.complete("a")
    assert rig.applied == [] and p.pending == "a"
    rig.clock.advance(1.0)  # retried every 0.25 s, no new poll meanwhile
    assert rig.applied == [] and rig.spawned == 1
    assert len(rig.clock.live) == 1  # one retry timer, not a pile of them
    rig.modal = False
    rig.clock.advance(0.25)
    assert rig.applied == ["a"] and p.pending is None
    rig.clock.advance(2.0)  # then the cycle goes on
    assert rig.spawned == 2


def test_resume_while_a_dialog_is_open_retries_instead_of_applying() -> None:
    rig = Rig(interval=2.0)
    p = rig.poller
    p.start()
    p.toggle_pause()
    rig.complete("a")
    rig.modal = True
    p.toggle_pause()
    assert rig.applied == []
    rig.modal = False
    rig.clock.advance(0.25)
    assert "a" in rig.applied


def test_the_apply_hook_sees_its_own_poll_number() -> None:
    seen: list[int] = []
    clock = FakeClock()
    poller: Poller[str] = Poller(
        interval=1.0, schedule=clock.schedule, body=lambda: None, apply=lambda _r: seen.append(poller.applied)
    )
    poller._spawn = lambda body: None  # type: ignore[method-assign]
    poller.start()
    poller.finished("x")
    assert seen == [1]


def test_the_default_spawn_runs_the_body_in_a_daemon_thread() -> None:
    ran = threading.Event()
    names: list[str] = []

    def body() -> None:
        names.append(threading.current_thread().name)
        assert threading.current_thread().daemon
        ran.set()

    clock = FakeClock()
    poller: Poller[str] = Poller(interval=1.0, schedule=clock.schedule, body=body, apply=lambda _r: None)
    poller.start()
    assert ran.wait(5)
    assert names == ["portscope-poll"]
