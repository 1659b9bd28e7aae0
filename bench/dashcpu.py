"""The dashboard under load (#14): its CPU against ``ss -tunap`` at the same refresh, key-to-screen
latency, and resident memory, the real PortscopeApp running headless.

    .venv/bin/python bench/dashcpu.py                      # 20000x100: CPU, keys; 100000x500: keys, memory
    .venv/bin/python bench/dashcpu.py --sizes 20000x100 --polls 20
    .venv/bin/python bench/dashcpu.py --quick              # 5000x50, fewer polls

For each size it starts its own loopback load (bench/load.py: N sockets across P processes), plus
``--busy`` connections that carry data all the time (their rates, RTT and counters change every
poll), and starts the dashboard in a child process (this file with ``--child``): the real app,
headless at 160x48, reading the real collector, refreshing every ``--interval`` seconds. Before
each poll the parent replaces ``--churn`` of the load's sockets (real connections closed and
opened) and, while the dashboard waits for its next poll, runs ``ss -tunap`` once (output to
/dev/null); the CPU time of both (the dashboard process's user+system time over the polls after
``--warmup``; each ``ss``'s from wait4) gives the ratio, in the same run. The child also reports the
poll thread's own CPU (thread time) apart from the rest (the UI thread: applying rows, drawing).
Two floor rows are measured next to each ``ss -tunap`` run, interleaved with it: ``ss -tuna`` (C
ss without the process walk) and one full sock_diag dump received and not decoded (this process's
thread CPU): no poll that reads every socket once costs less than the dump.

Keys (after the CPU polls, with polls and churn going on): ``/`` then a word typed one key at a
time, each key's time until the screen shows it in the box and until it shows the filtered table;
cursor moves (``↓``) and view switches (``2`` / ``1``) until the screen shows them. "Shows" is the
first screen update (the compositor's, rendered to terminal bytes as a terminal would get them)
after the change reached the widgets.

Memory: resident size after polls 1, 10, 50, 100 and the last (``--memory-polls``), refreshing as fast as
the load allows. Every child is killed by pid on the way out (also on Ctrl-C); each size has a
time cap (``--timeout``). Results: bench/results/dashcpu.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import inspect
import json
import os
import resource
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "dashcpu.json"
MB = 1_000_000
MEMORY_MARKS = (1, 10, 50, 100)
FILTER_WORD = "5432"  # typed into the filter box, one key at a time (ports of the load contain it)


def cpu_now() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ------------------------------------------------------------------------- the dashboard child


def child_main(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    import cProfile

    import psutil
    from textual import events

    from app.tui.app import PortscopeApp
    from app.tui.state import Prepared

    # --profile FILE: the UI thread's and the poll thread's profiles over the measured polls
    ui_profile = cProfile.Profile() if args.profile else None
    poll_profile = cProfile.Profile() if args.profile else None
    go = os.fdopen(args.go_fd, "r")
    report = os.fdopen(args.report_fd, "w", buffering=1)
    me = psutil.Process()
    lock = threading.Lock()

    def send(line: dict[str, Any]) -> None:
        with lock:
            report.write(json.dumps(line) + "\n")

    class Measured(PortscopeApp):
        """The real app; polls wait for the parent's go, and report once the screen shows them."""

        CSS_PATH = str(Path(inspect.getfile(PortscopeApp)).parent / str(PortscopeApp.CSS_PATH))
        stopped = False
        poll_cpu = 0.0  # thread time spent in poll bodies (the poll thread)
        displays: list[float] = []
        gc_ms: list[float] = []
        counting_gc = False

        collect_cpu = 0.0  # of which in collector.collect()

        def _poll_body(self) -> None:
            if not go.readline():  # the parent is done (or gone)
                self.stopped = True
                return
            profiling = poll_profile is not None and args.warmup < self.poll_count <= args.polls
            start = time.thread_time()
            if profiling:
                poll_profile.enable()  # type: ignore[union-attr]
            try:
                super()._poll_body()
            finally:
                if profiling:
                    poll_profile.disable()  # type: ignore[union-attr]
                self.poll_cpu += time.thread_time() - start

        def on_mount(self) -> None:
            real = self.collector.collect

            def collect(*a: Any, **kw: Any) -> Any:
                start = time.thread_time()
                try:
                    return real(*a, **kw)
                finally:
                    self.collect_cpu += time.thread_time() - start

            self.collector.collect = collect  # type: ignore[method-assign]
            super().on_mount()

        probes: list[tuple[Any, list[float]]] = []  # (done, result): the screen shows it when done()

        def _display(self, screen: Any, renderable: Any) -> None:
            super()._display(screen, renderable)
            if renderable is None:
                return
            with contextlib.suppress(Exception):  # what a terminal would be sent
                renderable.render_segments(self.console)
            now = time.perf_counter()
            for probe in list(self.probes):
                done, result = probe
                if done():
                    result.append(now)
                    self.probes.remove(probe)

        def _apply(self, prepared: Prepared) -> None:
            start = time.perf_counter()
            super()._apply(prepared)
            apply_ms = (time.perf_counter() - start) * 1000
            n = self.poll_count
            if n >= args.warmup:
                Measured.counting_gc = True
            changes = len(prepared.events)
            built = sum(len(d.added) + len(d.updated) for d in (prepared.listen, prepared.conns))
            rows = len(self.dashboard.listening.rows) + len(self.dashboard.connections.rows)

            def sent() -> None:
                send(
                    {
                        "poll": n,
                        "cpu": cpu_now(),
                        "poll_cpu": self.poll_cpu,
                        "collect_cpu": self.collect_cpu,
                        "rss": me.memory_info().rss,
                        "apply_ms": apply_ms,
                        "changes": changes,
                        "built": built,
                        "rows": rows,
                        "sockets": len(prepared.snapshot.sockets),
                        "t": time.perf_counter(),
                    }
                )

            self.call_after_refresh(sent)
            if ui_profile is not None:
                if n == args.warmup:
                    ui_profile.enable()
                elif n == args.polls:
                    ui_profile.disable()
                    ui_profile.dump_stats(args.profile + ".ui")
                    poll_profile.dump_stats(args.profile + ".poll")  # type: ignore[union-attr]

    def on_gc(phase: str, info: dict[str, Any], _start: list[float] = [0.0]) -> None:  # noqa: B006
        if phase == "start":
            _start[0] = time.perf_counter()
        elif info.get("generation") == 2 and Measured.counting_gc:  # (after the warm-up polls)
            Measured.gc_ms.append((time.perf_counter() - _start[0]) * 1000)

    gc.callbacks.append(on_gc)

    async def shown(app: Measured, t0: float, done: Any) -> float | None:
        """ms from ``t0`` to the first screen update at which ``done()`` holds."""
        result: list[float] = []
        app.probes.append((done, result))
        while not result and time.perf_counter() - t0 < 10:
            await asyncio.sleep(0.001)
        if not result:
            app.probes.clear()
            return None
        return (result[0] - t0) * 1000

    async def key_latency(app: Measured, key: str, char: str | None, done: Any) -> float | None:
        t0 = time.perf_counter()
        waiting = asyncio.ensure_future(shown(app, t0, done))
        app.post_message(events.Key(key, char))
        return await waiting

    async def keys(app: Measured, pilot: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"box_ms": [], "table_ms": [], "cursor_ms": [], "view_ms": []}
        main = app.main
        box = main.filter_input
        applied: set[str] = set()  # the filter texts the table on screen was filtered with
        model = app.model(args.view)
        model.add_listener(lambda _anchor: applied.add(main.filter.text if main.filter else ""))
        await pilot.press("slash")
        await pilot.pause(0.2)
        typed = ""
        for ch in FILTER_WORD:
            typed += ch
            t0 = time.perf_counter()
            in_box = asyncio.ensure_future(shown(app, t0, lambda w=typed: box.value == w))  # type: ignore[misc]
            in_table = asyncio.ensure_future(shown(app, t0, lambda w=typed: w in applied))  # type: ignore[misc]
            app.post_message(events.Key(ch, ch))
            out["box_ms"].append(await in_box)
            out["table_ms"].append(await in_table)
            await asyncio.sleep(0.15)  # a person typing
        await pilot.press("escape")
        await pilot.pause(0.3)
        for _ in range(20):
            before = model.cursor_index
            moved = await key_latency(app, "down", None, lambda b=before: model.cursor_index != b)  # type: ignore[misc]
            out["cursor_ms"].append(moved)
            await asyncio.sleep(0.1)
        for view, key in (("listening", "1"), ("connections", "2")) * 5:
            out["view_ms"].append(await key_latency(app, key, key, lambda v=view: app.view == v))  # type: ignore[misc]
            await asyncio.sleep(0.2)
        app.action_view(args.view)
        return out

    async def run() -> None:
        app = Measured(interval=args.interval, blink=False)
        async with app.run_test(size=(160, 48)) as pilot:
            app.action_view(args.view)
            while app.poll_count < args.polls and not app.stopped:
                await asyncio.sleep(0.05)
            if args.keys and not app.stopped:
                send({"keys": await keys(app, pilot)})
            frozen = gc.get_freeze_count()
            gc.unfreeze()
            kept = gc.collect()  # cyclic garbage the freezing kept from the collector (a leak)
            send({"gc2_ms": Measured.gc_ms, "frozen": frozen, "cyclic_garbage": kept, "done": True})
            app.stopped = True

    asyncio.run(run())
    report.close()
    return 0


# ------------------------------------------------------------------------------ busy connections

_BUSY = r"""
import socket, sys, threading, time
n = int(sys.argv[1])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(n)
port = srv.getsockname()[1]
clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
servers = [srv.accept()[0] for _ in range(n)]
print(port, flush=True)
def drain(s):
    while True:
        if not s.recv(1 << 16):
            return
for s in servers:
    threading.Thread(target=drain, args=(s,), daemon=True).start()
chunk = b"x" * 8192
end = time.time() + float(sys.argv[2])
while time.time() < end:
    for c in clients:
        c.sendall(chunk)
    time.sleep(0.05)
"""


class Busy:
    """``n`` loopback connections that each send 8 KiB every 50 ms (their counters move every poll)."""

    def __init__(self, n: int, deadline: float) -> None:
        self.proc: subprocess.Popen[str] | None = None
        if n > 0:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BUSY, str(n), str(deadline)], stdout=subprocess.PIPE, text=True
            )
            assert self.proc.stdout is not None
            self.proc.stdout.readline()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


# ----------------------------------------------------------------------------------- the parent


class Lines:
    """Lines from a pipe with a timeout."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def readline(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return ""
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


def ss_cpu(flags: str = "-tunap") -> float:
    """CPU seconds (user + system) of one ``ss`` run (``-tunap``; ``-tuna``: no process walk),
    from wait4."""
    proc = subprocess.Popen(["ss", flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return usage.ru_utime + usage.ru_stime


def dump_cpu() -> float:
    """CPU seconds (this thread's user + system) of one full sock_diag dump as the dashboard asks
    for it (TCP with tcp_info, UDP; IPv4 and IPv6), received and not decoded: the floor under any
    poll that reads every socket once, however fast the decoding after it."""
    from app.fast import netlink

    t0 = time.thread_time()
    sock = netlink.open_socket()
    try:
        seq = 0
        for af in (socket.AF_INET, socket.AF_INET6):
            for ipproto, ext in ((socket.IPPROTO_TCP, netlink._EXT_INFO), (socket.IPPROTO_UDP, 0)):
                seq += 1
                sock.send(netlink.build_request(af, ipproto, seq, None, ext))
                while not _dump_done(sock.recv(65536), seq):
                    pass
    finally:
        sock.close()
    return time.thread_time() - t0


def _dump_done(data: bytes, seq: int) -> bool:
    """Whether this piece of a dump ends it (an NLMSG_DONE or an error for ``seq``)."""
    if not data:
        return True
    off = 0
    while off + 16 <= len(data):
        length, mtype, _flags, mseq = struct.unpack_from("=IHHI", data, off)
        if mseq == seq and mtype in (2, 3):  # NLMSG_ERROR, NLMSG_DONE
            return True
        off += max(16, (length + 3) & ~3)
    return False


def run_dashboard(
    load: Any,
    *,
    polls: int,
    interval: float,
    churn: float,
    view: str,
    keys: bool,
    with_ss: bool,
    timeout: float,
    profile: str | None = None,
    warmup: int = 0,
) -> dict[str, Any]:
    """One dashboard child against ``load``: per-poll reports, keys, and ``ss`` runs between polls."""
    go_r, go_w = os.pipe()
    rep_r, rep_w = os.pipe()
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--polls",
        str(polls),
        "--interval",
        str(interval),
        "--go-fd",
        str(go_r),
        "--report-fd",
        str(rep_w),
        "--view",
        view,
    ]
    if keys:
        cmd.append("--keys")
    if profile:
        cmd += ["--profile", profile, "--warmup", str(warmup)]
    proc = subprocess.Popen(
        cmd,
        pass_fds=(go_r, rep_w),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(go_r)
    os.close(rep_w)
    go = os.fdopen(go_w, "w", buffering=1)
    lines = Lines(rep_r)
    polls_seen: list[dict[str, Any]] = []
    ss: list[float] = []
    tuna: list[float] = []  # ss -tuna, and the dump alone: the floor rows
    dump: list[float] = []
    out: dict[str, Any] = {"error": None}
    deadline = time.monotonic() + timeout
    try:
        go.write("go\n")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                out["error"] = f"stopped at the {timeout:g} s time cap after poll {len(polls_seen)}"
                break
            line = lines.readline(left)
            if line is None:
                continue
            if line == "":
                out["error"] = f"the dashboard child exited after poll {len(polls_seen)}"
                break
            msg = json.loads(line)
            if "poll" in msg:
                polls_seen.append(msg)
                if with_ss and msg["poll"] <= polls:
                    ss.append(ss_cpu())  # while the dashboard waits for its next poll
                    tuna.append(ss_cpu("-tuna"))  # the floor rows, interleaved with it
                    dump.append(dump_cpu())
                if churn > 0:
                    load.churn_fraction(churn)
                go.write("go\n")
            elif "keys" in msg:
                out["keys"] = msg["keys"]
            elif msg.get("done"):
                out["gc2_ms"] = msg.get("gc2_ms", [])
                out["cyclic_garbage"] = msg.get("cyclic_garbage")
                out["frozen"] = msg.get("frozen")
                break
    except (BrokenPipeError, OSError) as exc:
        out["error"] = f"dashboard child: {exc}"
    finally:
        for stream in (go,):
            with contextlib.suppress(OSError):
                stream.close()
        os.close(rep_r)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        if out["error"] and err.strip():
            out["error"] += ": " + err.strip().splitlines()[-1]
    out["polls"] = polls_seen
    out["ss_cpu_s"] = ss
    out["ss_tuna_cpu_s"] = tuna
    out["dump_cpu_s"] = dump
    return out


def median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def worst(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def cpu_summary(run: dict[str, Any], warmup: int, polls: int) -> dict[str, Any]:
    seen = {p["poll"]: p for p in run["polls"]}
    first, last = seen.get(warmup), seen.get(polls)
    if first is None or last is None:
        return {"error": run["error"] or "not enough polls"}
    n = polls - warmup
    dash = (last["cpu"] - first["cpu"]) / n
    poll_thread = (last["poll_cpu"] - first["poll_cpu"]) / n
    collect = (last["collect_cpu"] - first["collect_cpu"]) / n
    wall = (last["t"] - first["t"]) / n
    ss = run["ss_cpu_s"][warmup:polls] or run["ss_cpu_s"]
    ss_mean = sum(ss) / len(ss) if ss else None
    floors: dict[str, float | None] = {}
    for name, runs in (("ss_tuna", run.get("ss_tuna_cpu_s")), ("dump", run.get("dump_cpu_s"))):
        runs = (runs or [])[warmup:polls] or runs or []
        mean = sum(runs) / len(runs) if runs else None
        floors[f"{name}_cpu_ms_per_run"] = round(mean * 1000, 1) if mean else None
        floors[f"ratio_{name}_over_ss"] = round(mean / ss_mean, 3) if mean and ss_mean else None
    window = [p for p in run["polls"] if warmup < p["poll"] <= polls]
    return {
        "polls": n,
        "dash_cpu_ms_per_poll": round(dash * 1000, 1),
        "poll_thread_ms_per_poll": round(poll_thread * 1000, 1),
        "collector_ms_per_poll": round(collect * 1000, 1),
        "prepare_ms_per_poll": round((poll_thread - collect) * 1000, 1),
        "ui_and_rest_ms_per_poll": round((dash - poll_thread) * 1000, 1),
        "poll_period_s": round(wall, 3),
        "dash_core_share": round(dash / wall, 4) if wall > 0 else None,
        "ss_cpu_ms_per_run": round(ss_mean * 1000, 1) if ss_mean else None,
        "ratio_dash_over_ss": round(dash / ss_mean, 3) if ss_mean else None,
        # floors, in the same run: C ss without the process walk, and the kernel's dump alone
        **floors,
        "changes_per_poll": median([p["changes"] for p in window]),
        "rows_built_per_poll": median([p["built"] for p in window]),
        "rows": window[-1]["rows"] if window else None,
        "sockets": window[-1]["sockets"] if window else None,
        "apply_ms_median": round(median([p["apply_ms"] for p in window]) or 0, 1),
    }


def keys_summary(keys: dict[str, Any] | None) -> dict[str, Any] | None:
    if not keys:
        return None
    return {
        name: {"median": round(median(vals) or 0, 1), "max": round(worst(vals) or 0, 1), "n": len(vals)}
        for name, vals in keys.items()
    }


def memory_summary(run: dict[str, Any]) -> dict[str, Any]:
    rss = {p["poll"]: p["rss"] for p in run["polls"]}
    marks = [m for m in MEMORY_MARKS if m in rss]
    if rss and max(rss) not in marks:  # (a longer run: its last poll too)
        marks.append(max(rss))
    return {
        "rss_mb": {str(m): round(rss[m] / MB, 1) for m in marks},
        "polls": len(run["polls"]),
        "rows": run["polls"][-1]["rows"] if run["polls"] else None,
        "cyclic_garbage": run.get("cyclic_garbage"),
        "gc2_ms_max": round(max(run.get("gc2_ms") or [0]), 1),
        "error": run["error"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--go-fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--report-fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--keys", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--profile", help="write the threads' profiles to FILE.ui / FILE.poll (one size)")
    ap.add_argument(
        "--sizes", help="NxP[:what],... what is cpu, keys, memory joined by + (default: see above)"
    )
    ap.add_argument("--quick", action="store_true", help="5000x50 only, 10 polls")
    ap.add_argument("--polls", type=int, default=20, help="polls measured for CPU (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="polls before the CPU window (default 3)")
    ap.add_argument("--interval", type=float, default=2.0, help="the dashboard's refresh (default 2)")
    ap.add_argument("--churn", type=float, default=0.01, help="share of sockets replaced per poll (0.01)")
    ap.add_argument("--busy", type=int, default=20, help="connections carrying data all the time (20)")
    ap.add_argument("--memory-polls", type=int, default=100, help="polls of the memory run (100; 0 skips)")
    ap.add_argument("--view", default="connections", choices=("listening", "connections"))
    ap.add_argument("--timeout", type=float, default=600, help="time cap per size, seconds (600)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)

    sys.path.insert(0, str(HERE))
    from load import Load, count_sockets, fits, raise_nofile

    if args.quick:
        plan = [(5000, 50, {"cpu", "keys"})]
        args.polls = 10
    elif args.sizes:
        plan = []
        for part in args.sizes.split(","):
            size, _, what = part.partition(":")
            n, p = (int(x) for x in size.lower().split("x"))
            plan.append((n, p, set(what.split("+")) if what else {"cpu", "keys"}))
    else:
        plan = [(20000, 100, {"cpu", "keys"}), (100000, 500, {"keys", "memory"})]
    if shutil.which("ss") is None:
        print("ss not found: the CPU ratio needs it (Debian package iproute2)", file=sys.stderr)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    raise_nofile()
    results: list[dict[str, Any]] = []
    started = time.time()
    try:
        for n, p, what in plan:
            ok, why = fits(n, p)
            if not ok:
                print(f"skipping {n}/{p}: {why}", file=sys.stderr)
                results.append({"sockets": n, "procs": p, "skipped": why})
                continue
            t0 = time.perf_counter()
            with Load(n, p, deadline=args.timeout + 600) as load:
                busy = Busy(args.busy, args.timeout + 600)
                try:
                    host = count_sockets()
                    print(
                        f"{n}/{p}: {load.total} sockets + {args.busy} busy connections ({host} on the host), "
                        f"set up in {time.perf_counter() - t0:.0f} s",
                        file=sys.stderr,
                    )
                    entry: dict[str, Any] = {
                        "sockets": n,
                        "procs": p,
                        "host_sockets": host,
                        "busy": args.busy,
                    }
                    if "cpu" in what or "keys" in what:
                        print(
                            f"{n}/{p}: {args.polls} polls every {args.interval:g} s, with ss ...",
                            file=sys.stderr,
                        )
                        run = run_dashboard(
                            load,
                            polls=args.polls + args.warmup if "cpu" in what else args.warmup + 2,
                            interval=args.interval,
                            churn=args.churn,
                            view=args.view,
                            keys="keys" in what,
                            with_ss="cpu" in what,
                            timeout=args.timeout,
                            profile=args.profile,
                            warmup=args.warmup,
                        )
                        if "cpu" in what:
                            entry["cpu"] = cpu_summary(run, args.warmup, args.polls + args.warmup)
                        entry["keys"] = keys_summary(run.get("keys"))
                        entry["gc2_ms_max"] = round(max(run.get("gc2_ms") or [0]), 1)
                        entry["cyclic_garbage"] = run.get("cyclic_garbage")
                        entry["error"] = run["error"]
                    if "memory" in what and args.memory_polls > 0:
                        print(f"{n}/{p}: memory over {args.memory_polls} polls ...", file=sys.stderr)
                        mem = run_dashboard(
                            load,
                            polls=args.memory_polls,
                            interval=0.05,
                            churn=args.churn,
                            view=args.view,
                            keys=False,
                            with_ss=False,
                            timeout=args.timeout,
                        )
                        entry["memory"] = memory_summary(mem)
                    results.append(entry)
                    print(json.dumps(entry), file=sys.stderr)
                finally:
                    busy.stop()
    except KeyboardInterrupt:
        print("interrupted: children killed; partial results follow", file=sys.stderr)
    print_results(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "cpus": os.cpu_count(),
        "args": {k: v for k, v in vars(args).items() if k not in ("child", "go_fd", "report_fd", "keys")},
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def print_results(results: list[dict[str, Any]]) -> None:
    for r in results:
        head = f"{r['sockets']}/{r['procs']}"
        if "skipped" in r:
            print(f"{head}: skipped ({r['skipped']})")
            continue
        cpu = r.get("cpu")
        if cpu and "error" not in cpu:
            print(
                f"{head}: dashboard {cpu['dash_cpu_ms_per_poll']} ms CPU per poll (poll thread "
                f"{cpu['poll_thread_ms_per_poll']}: collector {cpu['collector_ms_per_poll']}, rows "
                f"{cpu['prepare_ms_per_poll']}; UI and the rest {cpu['ui_and_rest_ms_per_poll']}), "
                f"{cpu['dash_core_share'] * 100:.1f}% of a core; ss -tunap {cpu['ss_cpu_ms_per_run']} ms CPU "
                f"per run: ratio {cpu['ratio_dash_over_ss']} (target <= 0.25); "
                f"{cpu['changes_per_poll']} changes and {cpu['rows_built_per_poll']} rows built per poll "
                f"of {cpu['rows']} rows"
            )
            print(
                f"{head}: floors per run: ss -tuna {cpu.get('ss_tuna_cpu_ms_per_run')} ms CPU "
                f"({cpu.get('ratio_ss_tuna_over_ss')}x ss -tunap), the sock_diag dump alone "
                f"{cpu.get('dump_cpu_ms_per_run')} ms ({cpu.get('ratio_dump_over_ss')}x)"
            )
        elif cpu:
            print(f"{head}: CPU run failed: {cpu['error']}")
        keys = r.get("keys")
        if keys:
            parts = [f"{k} median {v['median']} ms, max {v['max']} ms" for k, v in keys.items()]
            print(f"{head}: keys: " + "; ".join(parts) + f"; longest full GC {r.get('gc2_ms_max')} ms")
        mem = r.get("memory")
        if mem:
            marks = ", ".join(f"{k}: {v} MB" for k, v in mem["rss_mb"].items())
            problem = f"; {mem['error']}" if mem["error"] else ""
            print(f"{head}: RSS after poll {marks} ({mem['rows']} rows){problem}")
        if r.get("error"):
            print(f"{head}: {r['error']}")


if __name__ == "__main__":
    raise SystemExit(main())
