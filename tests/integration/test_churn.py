"""Churn: hundreds of listeners and short-lived processes come and go while collectors poll.

Bounded in time (a few seconds per collector). Checks: no exception, every poll completes, the
collector's caches track the live set instead of growing, and memory stays bounded.
"""

from __future__ import annotations

import gc
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil
import pytest

from app.collector import Collector, PsutilCollector, default_collector

pytestmark = pytest.mark.slow

_SHORT_LIVED = (
    "import socket,sys,time\n"
    "s=[socket.socket() for _ in range(5)]\n"
    "[x.bind(('127.0.0.1',0)) or x.listen() for x in s]\n"
    "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.bind(('127.0.0.1',0))\n"
    "time.sleep(float(sys.argv[1]))\n"
)


@contextmanager
def churn(seconds: float) -> Iterator[dict[str, int]]:
    """Open and close listeners in this process and start short-lived listening children."""
    stop = threading.Event()
    stats = {"opened": 0, "children": 0}
    rng = random.Random(7)
    children: list[subprocess.Popen[bytes]] = []

    def sockets() -> None:
        live: list[socket.socket] = []
        while not stop.is_set():
            for _ in range(rng.randint(1, 20)):
                kind = rng.choice((socket.SOCK_STREAM, socket.SOCK_DGRAM))
                fam, host = rng.choice(((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")))
                try:
                    s = socket.socket(fam, kind)
                    s.bind((host, 0))
                    if kind == socket.SOCK_STREAM:
                        s.listen()
                except OSError:
                    continue
                live.append(s)
                stats["opened"] += 1
            rng.shuffle(live)
            while len(live) > 150:
                live.pop().close()
            time.sleep(0.01)
        for s in live:
            s.close()

    def processes() -> None:
        while not stop.is_set():
            children[:] = [c for c in children if c.poll() is None]
            if len(children) < 12:
                life = f"{rng.uniform(0.05, 0.6):.2f}"
                children.append(subprocess.Popen([sys.executable, "-c", _SHORT_LIVED, life]))
                stats["children"] += 1
            time.sleep(0.02)

    threads = [threading.Thread(target=sockets), threading.Thread(target=processes)]
    for t in threads:
        t.start()
    try:
        yield stats
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        for c in children:
            if c.poll() is None:
                c.kill()
            c.wait(timeout=10)


def poll_during_churn(make: Callable[[], Collector], seconds: float) -> None:
    collector = make()
    polls = 0
    samples: list[int] = []
    me = psutil.Process()
    with churn(seconds) as stats:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            snap = collector.collect()
            # owners are consistent: every pid with a record is one the snapshot mentions (an
            # owner, or another holder of a shared socket)
            pids = {s.pid for s in snap.sockets if s.pid is not None}
            pids.update(p for held in snap.holders.values() for p in held)
            assert set(snap.processes) <= pids
            polls += 1
            gc.collect()
            samples.append(me.memory_info().rss)
    assert stats["opened"] > 200 and stats["children"] > 10, stats
    assert polls >= 5
    # Memory: resident size in the second half of the run is not far above the first half.
    half = len(samples) // 2
    if half >= 2:
        early, late = max(samples[:half]), max(samples[half:])
        assert late < early + 30_000_000, (early, late)
    # Caches follow the live set: after churn stops, one more poll forgets the dead.
    time.sleep(0.7)
    snap = collector.collect()
    cache = getattr(collector, "processes", None)
    if cache is not None and hasattr(cache, "__len__"):
        live_owners = {s.pid for s in snap.sockets if s.pid is not None}
        assert len(cache) <= len(live_owners) + 5


@pytest.mark.parametrize("make", [PsutilCollector, default_collector], ids=["psutil", "default"])
def test_collectors_survive_churn(make: Callable[[], Collector]) -> None:
    poll_during_churn(make, seconds=4.0)


async def test_dashboard_survives_churn() -> None:
    """The live dashboard (real collector, fast refresh) while sockets and processes churn: every
    poll completes, none fails, keys keep working, memory stays bounded."""
    from app.tui.app import PortscopeApp
    from tests.tui.fixtures import fixed_interfaces, until

    app = PortscopeApp(interval=0.1, interfaces=fixed_interfaces, blink=False)
    me = psutil.Process()
    rss: list[int] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1, timeout=30)
        with churn(8.0) as stats:
            deadline = time.monotonic() + 8.0
            keys = ["j", "k", "2", "1", "s", "G", "g", "e", "e"]
            i = 0
            while time.monotonic() < deadline:
                await pilot.press(keys[i % len(keys)])
                i += 1
                await pilot.pause(0.05)
                if i % 10 == 0:
                    rss.append(me.memory_info().rss)
        polls_during = app.poll_count
        await until(pilot, lambda: app.poll_count > polls_during, timeout=30)  # not stuck
        assert app.poll_errors == []
        assert app.is_running
    assert polls_during >= 5, polls_during
    assert stats["children"] > 5
    half = len(rss) // 2
    if half >= 2:
        assert max(rss[half:]) < max(rss[:half]) + 60_000_000, rss
