"""The benchmark's machinery on a 200-socket load: churn really replaces connections, a tiny full
run measures every step (collector, dashboard, memory), writes its results and leaves no child
behind. Behaviour only: no timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psutil
import pytest

from app.events import EventKind, diff
from app.fast.collector import FastCollector
from app.model import Snapshot
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"portscope_bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_run() -> ModuleType:
    return _module("run")  # puts bench/ on sys.path for its own imports (load, dashmem)


@pytest.fixture
def no_new_children() -> Iterator[None]:
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    left = [p for p in me.children(recursive=True) if p.pid not in before]
    assert not left, f"benchmark children left running: {[p.pid for p in left]}"


def _load_events(before: Snapshot, after: Snapshot, ports: set[int]) -> dict[EventKind, int]:
    """Opened/closed sockets of the load's connections (either end on one of its listener ports)."""
    counts: dict[EventKind, int] = {}
    for ev in diff(before, after):
        s = ev.sock
        if s.listening or not (s.laddr.port in ports or (s.raddr is not None and s.raddr.port in ports)):
            continue
        counts[ev.kind] = counts.get(ev.kind, 0) + 1
    return counts


def test_churn_fraction_replaces_real_connections(bench_run: ModuleType, no_new_children: None) -> None:
    load_mod = sys.modules["load"]
    with load_mod.Load(200, 10) as load:
        ports = {port for child in load.children for _host, port in child.listeners}
        pids = {child.pid for child in load.children}
        collector = FastCollector()
        try:
            before = collector.collect()
            owned = sum(1 for s in before.sockets if s.pid in pids)
            assert owned >= 190
            k = load.churn_fraction(0.04)  # 4% of 200 sockets: 2 connections closed, 2 opened
            assert k == 2

            def settled() -> Snapshot | None:
                # (a new connection's server end has no owner until the load child accept()s it)
                snap = collector.collect()
                counts = _load_events(before, snap, ports)
                want = {EventKind.OPENED: 2 * k, EventKind.CLOSED: 2 * k}
                mine = sum(1 for s in snap.sockets if s.pid in pids)
                return snap if counts == want and mine >= owned else None

            after = wait_for(settled, timeout=10)
            assert sum(1 for s in after.sockets if s.pid in pids) == owned  # replaced, not added
        finally:
            collector.close()


def test_tiny_full_run_measures_everything(
    bench_run: ModuleType, no_new_children: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "latest.json"
    old_term = signal.getsignal(signal.SIGTERM)
    try:
        rc = bench_run.main(["--sizes", "200x10", "--rounds", "1", "--memory-polls", "3", "--out", str(out)])
    finally:
        signal.signal(signal.SIGTERM, old_term)
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dashboard 1% churn: apply (UI thread)" in printed
    assert "dashboard memory (PortscopeApp headless, 200 sockets" in printed

    doc = json.loads(out.read_text())
    (result,) = doc["results"]
    assert result["sockets"] == 200
    med = result["median_ms"]
    for name in (*bench_run.POLL_MEASURES[:4], "who", "who_cold", "list_table", "list_json"):
        assert med[name] > 0, name
    for name in bench_run.DASH_MEASURES:
        assert med[name] > 0, name
    startup = doc["startup"]  # who on the idle machine against a bare python (and ss)
    assert startup["median_ms"]["python -c pass"] > 0
    assert startup["median_ms"]["launcher who PORT"] > startup["median_ms"]["python -c pass"]
    assert "launcher who PORT / bare python" in startup["ratios"]
    assert "`who PORT` on the idle machine" in printed
    dash = result["dashboard"]
    assert dash["rows"] >= 200  # every load socket is a row
    assert dash["changes_per_poll_median"] >= 4  # 1% of 200 rounds up to one connection replaced
    assert isinstance(dash["apply_within_half_ss"], bool) or not doc["host"]["ss"]

    mem = doc["memory"]
    assert mem["error"] is None
    assert mem["polls"] == 3 and mem["sockets"] == 200
    assert set(mem["rss_mb"]) == {"1", "3"}
    assert all(v > 10 for v in mem["rss_mb"].values())  # a Textual app is tens of MB
    assert mem["rows"] >= 200
    assert mem["changes_median"] >= 4
    assert not psutil.pid_exists(mem["child_pid"]) or psutil.Process(mem["child_pid"]).status() == "zombie"
    assert "todo" not in doc
