"""Dashboard memory under load: the real PortscopeApp, headless, polling the real collector.

The parent (:func:`measure_memory`) starts this file as a child process and steers it through two
pipes: before each poll the child waits for "go"; after each poll is applied and the screen
refreshed, it reports its resident size. Between polls the parent replaces ``churn`` of the load's
sockets, so every poll sees ~1% real churn. The child is killed by pid if it overruns.

    python bench/dashmem.py --polls 100 --interval 0.05 --go-fd R --report-fd W   (the child)
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

MB = 1_000_000  # RSS is reported in MB (10^6 bytes): stricter than MiB against a "250 MB" target
MARKS = (1, 10, 50, 100)


# ------------------------------------------------------------------------------------ child


def child_main(polls: int, interval: float, go_fd: int, report_fd: int, view: str) -> int:
    sys.path.insert(0, str(ROOT))
    import asyncio

    import psutil

    from app.tui.app import PortscopeApp
    from app.tui.state import Prepared

    go = os.fdopen(go_fd, "r")
    report = os.fdopen(report_fd, "w", buffering=1)
    me = psutil.Process()

    class Measured(PortscopeApp):
        """The real app; polls wait for the parent's go and report after the screen refreshed."""

        stopped = False
        # Textual reads CSS_PATH beside the file that defines the class: point it back at the app's
        CSS_PATH = str(Path(inspect.getfile(PortscopeApp)).parent / str(PortscopeApp.CSS_PATH))

        def _poll_body(self) -> None:
            if not go.readline():  # the parent is done (or gone): no more polls
                self.stopped = True
                return
            super()._poll_body()

        def on_mount(self) -> None:
            self.parts_ms: dict[str, float] = {}
            self._time_part("dashboard", self.dashboard, "apply")
            self._time_part("events", self.events_view, "add_events")
            super().on_mount()

        def _time_part(self, name: str, obj: object, method: str) -> None:
            """Time ``obj.method`` calls (the real method runs): the apply's breakdown."""
            real = getattr(obj, method)

            def timed(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return real(*args, **kwargs)
                finally:
                    self.parts_ms[name] = self.parts_ms.get(name, 0.0) + (time.perf_counter() - start) * 1000

            setattr(obj, method, timed)

        def _apply(self, prepared: Prepared) -> None:
            self.parts_ms = {}
            start = time.perf_counter()
            super()._apply(prepared)
            ms = (time.perf_counter() - start) * 1000
            parts = dict(self.parts_ms)
            n = self.poll_count
            rows = len(self.dashboard.listening.rows) + len(self.dashboard.connections.rows)
            changes = len(prepared.events)  # sockets opened, closed or changed since the last poll

            def send() -> None:
                line: dict[str, object] = {
                    "poll": n,
                    "rss": me.memory_info().rss,
                    "apply_ms": ms,
                    "rows": rows,
                }
                line |= {"changes": changes, "parts_ms": parts, "t": time.perf_counter()}
                report.write(json.dumps(line) + "\n")

            self.call_after_refresh(send)

    async def run() -> None:
        app = Measured(interval=interval, blink=False)
        async with app.run_test(size=(160, 48)) as pilot:
            app.action_view(view)
            while app.poll_count < polls and not app.stopped:
                await pilot.pause(0.01)
            await pilot.pause(0.05)  # let the last report go out

    asyncio.run(run())
    report.close()
    return 0


# ----------------------------------------------------------------------------------- parent


class _LineReader:
    """Lines from a pipe with a timeout (a hung child must not hang the benchmark)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def readline(self, timeout: float) -> str | None:
        """A line ("" at end of file), or None if none came within ``timeout`` seconds."""
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return ""
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode() + "\n"

    def close(self) -> None:
        os.close(self.fd)


def measure_memory(
    load: Any, polls: int = 100, interval: float = 0.05, churn: float = 0.01, timeout: float = 180
) -> dict[str, Any]:
    """Run the dashboard child against ``load`` (a bench.load.Load) for ``polls`` polls with
    ``churn`` of the sockets replaced before each poll after the first. Returns RSS per poll."""
    go_r, go_w = os.pipe()
    rep_r, rep_w = os.pipe()
    args = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--polls",
        str(polls),
        "--interval",
        str(interval),
        "--go-fd",
        str(go_r),
        "--report-fd",
        str(rep_w),
    ]
    proc = subprocess.Popen(
        args,
        pass_fds=(go_r, rep_w),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(go_r)
    os.close(rep_w)
    go = os.fdopen(go_w, "w", buffering=1)
    reports = _LineReader(rep_r)
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    started = time.perf_counter()
    error = None
    try:
        go.write("go\n")  # the first poll
        while len(samples) < polls:
            if time.monotonic() > deadline:
                error = f"stopped at the {timeout:g} s time cap after poll {len(samples)} of {polls}"
                break
            line = reports.readline(deadline - time.monotonic())
            if line is None:
                continue  # the deadline check above ends it
            if not line:
                error = f"dashboard child exited at poll {len(samples)}"
                break
            samples.append(json.loads(line))
            if len(samples) < polls:
                load.churn_fraction(churn)
                go.write("go\n")
    except (BrokenPipeError, OSError) as exc:
        error = f"dashboard child: {exc}"
    finally:
        for stream in (go, reports):
            try:
                stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    if error and stderr.strip():
        error += ": " + stderr.strip().splitlines()[-1]
    rss = {s["poll"]: s["rss"] for s in samples}
    marks = sorted({*(m for m in MARKS if m in rss), *([samples[-1]["poll"]] if samples else [])})
    applies = [s["apply_ms"] for s in samples[1:]]
    parts = sorted({k for s in samples[1:] for k in s["parts_ms"]})
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(samples)]
    return {
        "polls": len(samples),
        "interval_s": interval,
        "churn": churn,
        "rows": samples[-1]["rows"] if samples else None,
        "rss_mb": {str(m): round(rss[m] / MB, 1) for m in marks},
        "rss_mb_last": round(samples[-1]["rss"] / MB, 1) if samples else None,
        "ui_apply_ms_median": statistics.median(applies) if applies else None,
        "ui_apply_ms_at": {str(s["poll"]): round(s["apply_ms"], 1) for s in samples if s["poll"] in marks},
        "events_ms_at": {
            str(s["poll"]): round(s["parts_ms"].get("events", 0.0), 1) for s in samples if s["poll"] in marks
        },
        "ui_apply_parts_ms_median": {
            k: statistics.median(s["parts_ms"].get(k, 0.0) for s in samples[1:]) for k in parts
        },
        "poll_to_poll_s_median": round(statistics.median(gaps), 3) if gaps else None,
        "changes_median": statistics.median(s["changes"] for s in samples[1:]) if len(samples) > 1 else None,
        "wall_s": round(time.perf_counter() - started, 1),
        "child_pid": proc.pid,
        "error": error,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--polls", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--go-fd", type=int, required=True)
    ap.add_argument("--report-fd", type=int, required=True)
    ap.add_argument("--view", default="connections", choices=("listening", "connections", "interfaces"))
    args = ap.parse_args(argv)
    return child_main(args.polls, args.interval, args.go_fd, args.report_fd, args.view)


if __name__ == "__main__":
    raise SystemExit(main())
