"""portscope benchmark: the fast collector against psutil, ss and lsof on the same live load,
the dashboard's table update per poll, and the dashboard's memory over 100 polls.

    python bench/run.py            # (200, 20), (5k, 50), (20k, 100), (50k, 200) where limits allow
    python bench/run.py --quick    # (200, 20) and (5k, 50), fewer rounds, 20 memory polls at 5k
    python bench/run.py --sizes 20000x100 --rounds 9 --memory-polls 0

Run it with the project's interpreter (``.venv/bin/python bench/run.py``). For each size it starts
its own load (bench/load.py: N loopback sockets across P child processes), measures everything in
the same run, interleaved round by round, prints medians with ratios, writes
bench/results/latest.json, and kills its children (by pid) on the way out, also on Ctrl-C.
Nothing but loopback is touched.

Dashboard: each round replaces 1% of the load's sockets (real connections closed and opened),
takes a real snapshot and times ``Dashboard.preparer.prepare`` (the poll thread's part) and
``Dashboard.apply`` (the UI thread's part) separately.
Start-up: bench/startup.py times `portscope who PORT` on the idle machine (one listener of
its own) against a bare `python -c pass` and `ss -tlnp 'sport = :PORT'`, before any load
starts. `who` runs with the benchmark's own owner cache (warm after the first run) and, in
the "no owner cache" rows, with an empty one. Memory: bench/dashmem.py runs the real
PortscopeApp headless against the load (at 20k sockets by default) for 100 polls with 1% churn
before each, and reports its resident size after polls 1, 10, 50 and 100. Scan: bench/scanbench.py
times ``portscope scan 127.0.0.1 1-65535`` against ``nmap -sT -p- -n 127.0.0.1`` (whole processes,
interleaved, medians; before any load is started, and skipped where nmap is absent) and checks that
the open set is what ``ss -tln`` reports.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import psutil  # noqa: E402
from dashmem import measure_memory  # noqa: E402
from load import Load, count_sockets, fits, raise_nofile  # noqa: E402
from scanbench import measure_scan, print_scan, run_blocking  # noqa: E402
from startup import measure_startup, print_startup  # noqa: E402

from app.exposure import ExposureMap  # noqa: E402
from app.fast.collector import FastCollector  # noqa: E402
from app.tui.state import Dashboard  # noqa: E402

FULL_SIZES = ((200, 20), (5000, 50), (20000, 100), (50000, 200))
QUICK_SIZES = ((200, 20), (5000, 50))
RESULTS = HERE / "results" / "latest.json"
CHURN = 0.01  # the dashboard's per-poll churn: this share of the sockets replaced before each poll
MEMORY_TIMEOUT = 165.0
MEMORY_AT = 20000  # the load size the memory run uses (or the largest size run, if absent)

# Each measure: (name, what it is). Ratios are "how many times slower than the fast steady poll"
# for the in-process polls, and "how many times slower than portscope" for whole processes.
POLL_MEASURES = ("cold", "steady", "churn", "psutil", "ss", "lsof")
PROC_MEASURES = (
    "who",
    "who_cold",
    "ss_tlnp_port",
    "ss_port",
    "lsof_port",
    "list_table",
    "list_json",
    "ss_all",
    "lsof_all",
)
DASH_MEASURES = ("dash_first_prepare", "dash_first_apply", "dash_prepare", "dash_apply")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


# Whole-process runs get compiled bytecode as an installed tool would (this checkout may run with
# PYTHONDONTWRITEBYTECODE): cached under a private prefix, never written into the checkout.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CHILD_ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "portscope-bench-pycache")
# `who` keeps owner hints in $XDG_CACHE_HOME/portscope: the benchmark's own (warm after the first
# run: someone asking about a port again), never the user's. The "no cache" rows get an empty one.
BENCH_CACHE = tempfile.mkdtemp(prefix="portscope-bench-cache-")
CHILD_ENV["XDG_CACHE_HOME"] = BENCH_CACHE


def run_quiet(args: list[str], timeout: float = 60, env: dict[str, str] | None = None) -> None:
    run_blocking(args, CHILD_ENV if env is None else env, timeout)


def portscope_cmd() -> list[str]:
    script = Path(sys.executable).with_name("portscope")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app"]


class Bench:
    def __init__(self, n: int, p: int, rounds: int, load: Load) -> None:
        self.n, self.p, self.rounds, self.load = n, p, rounds, load
        self.samples: dict[str, list[float]] = {}
        self.have_lsof = shutil.which("lsof") is not None
        self.have_ss = shutil.which("ss") is not None
        self.port = load.a_port()
        self.cli = portscope_cmd()
        self.dashboard = Dashboard(ExposureMap())
        self.dash_changes: list[int] = []
        self.dash_rows = 0

    def add(self, name: str, ms: float) -> None:
        self.samples.setdefault(name, []).append(ms)

    def run(self) -> None:
        run_quiet([*self.cli, "who", str(self.port)])  # warm-up: compiles the bytecode once
        steady = FastCollector()
        steady.collect()
        stats = FastCollector(stats=True)  # the same poll with tcp_info, queues and listen counters
        stats.collect()
        churn = FastCollector()
        churn.collect()
        dash = FastCollector()
        self.dash_first(dash)
        for _ in range(self.rounds):
            self.one_round(steady, stats, churn, dash)
        steady.close()
        stats.close()
        churn.close()
        dash.close()

    def dash_first(self, collector: FastCollector) -> None:
        """The dashboard's first poll: every row built (one sample)."""
        snap = collector.collect()
        gc.collect()
        prepared = None

        def prepare() -> None:
            nonlocal prepared
            prepared = self.dashboard.preparer.prepare(snap)

        self.add("dash_first_prepare", timed(prepare))
        assert prepared is not None
        first = prepared
        self.add("dash_first_apply", timed(lambda: self.dashboard.apply(first)))

    def dash_round(self, collector: FastCollector) -> None:
        """1% of the sockets replaced by the load, one real snapshot, then prepare and apply."""
        self.load.churn_fraction(CHURN)
        snap = collector.collect()
        prepared = None

        def prepare() -> None:
            nonlocal prepared
            prepared = self.dashboard.preparer.prepare(snap)

        self.add("dash_prepare", timed(prepare))
        assert prepared is not None
        done = prepared
        self.add("dash_apply", timed(lambda: self.dashboard.apply(done)))
        self.dash_changes.append(len(done.events))
        self.dash_rows = len(self.dashboard.listening.rows) + len(self.dashboard.connections.rows)

    def one_round(
        self, steady: FastCollector, stats: FastCollector, churn: FastCollector, dash: FastCollector
    ) -> None:
        gc.collect()

        def cold() -> None:
            c = FastCollector()
            c.collect()
            c.close()

        self.add("cold", timed(cold))
        steady.collect()  # absorbs the previous round's churn connection: the next poll is steady
        self.add("steady", timed(steady.collect))
        stats.collect()
        self.add("steady_stats", timed(stats.collect))
        self.load.churn()  # a new connection in a random process, then one poll
        self.add("churn", timed(churn.collect))
        self.add("psutil", timed(lambda: psutil.net_connections("inet")))
        if self.have_ss:
            self.add("ss", timed(lambda: run_quiet(["ss", "-tunap"])))
        if self.have_lsof:
            self.add("lsof", timed(lambda: run_quiet(["lsof", "-nP", "-i"])))
        port = str(self.port)
        self.add("who", timed(lambda: run_quiet([*self.cli, "who", port])))  # the cache knows the owner
        empty = tempfile.mkdtemp(prefix="portscope-bench-nocache-")
        cold_env = {**CHILD_ENV, "XDG_CACHE_HOME": empty}
        self.add("who_cold", timed(lambda: run_quiet([*self.cli, "who", port], env=cold_env)))
        shutil.rmtree(empty, ignore_errors=True)
        if self.have_ss:
            self.add("ss_tlnp_port", timed(lambda: run_quiet(["ss", "-tlnp", f"sport = :{port}"])))
            self.add("ss_port", timed(lambda: run_quiet(["ss", "-tunap", f"( sport = :{port} )"])))
        if self.have_lsof:
            self.add("lsof_port", timed(lambda: run_quiet(["lsof", "-nP", f"-i:{port}"])))
        self.add("list_table", timed(lambda: run_quiet([*self.cli, "list", "--all"])))
        self.add("list_json", timed(lambda: run_quiet([*self.cli, "list", "--all", "--json"])))
        if self.have_ss:
            self.add("ss_all", timed(lambda: run_quiet(["ss", "-tunap"])))
        if self.have_lsof:
            self.add("lsof_all", timed(lambda: run_quiet(["lsof", "-nP", "-i"])))
        gc.collect()
        self.dash_round(dash)
        churn.collect()  # absorbs the dashboard's 1%: next round's churn poll sees one new connection

    def medians(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.samples.items()}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def summarize(
    n: int, p: int, sockets: int, med: dict[str, float], dash_changes: list[int], dash_rows: int
) -> dict[str, object]:
    steady, cold, churn = med.get("steady"), med.get("cold"), med.get("churn")
    ratios = {
        "psutil_over_steady": ratio(med.get("psutil"), steady),
        "ss_over_steady": ratio(med.get("ss"), steady),
        "lsof_over_steady": ratio(med.get("lsof"), steady),
        "churn_over_steady": ratio(churn, steady),
        "stats_over_steady": ratio(med.get("steady_stats"), steady),
        "cold_over_psutil": ratio(cold, med.get("psutil")),
        "lsof_port_over_who": ratio(med.get("lsof_port"), med.get("who")),
        "ss_port_over_who": ratio(med.get("ss_port"), med.get("who")),
        "who_over_ss_tlnp": ratio(med.get("who"), med.get("ss_tlnp_port")),
        "who_cold_over_ss_tlnp": ratio(med.get("who_cold"), med.get("ss_tlnp_port")),
        "list_table_over_ss_all": ratio(med.get("list_table"), med.get("ss_all")),
        "list_json_over_ss_all": ratio(med.get("list_json"), med.get("ss_all")),
        "ss_all_over_list_json": ratio(med.get("ss_all"), med.get("list_json")),
        "lsof_all_over_list_json": ratio(med.get("lsof_all"), med.get("list_json")),
        "ss_over_dash_apply": ratio(med.get("ss"), med.get("dash_apply")),
        "ss_over_dash_prepare": ratio(med.get("ss"), med.get("dash_prepare")),
    }
    dashboard = {
        "rows": dash_rows,
        "churn": CHURN,
        "changes_per_poll_median": statistics.median(dash_changes) if dash_changes else None,
        # the target: the UI-side table update at 1% churn takes at most half of one `ss -tunap`
        "apply_within_half_ss": None
        if ratios["ss_over_dash_apply"] is None
        else ratios["ss_over_dash_apply"] >= 2,
    }
    return {
        "sockets": n,
        "procs": p,
        "host_sockets": sockets,
        "median_ms": med,
        "ratios": ratios,
        "dashboard": dashboard,
    }


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:.1f}" if v < 100 else f"{v:.0f}")


def fmt_x(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}x" if v < 1 else f"{v:.1f}x"


def print_table(results: list[dict[str, object]]) -> None:
    rows = [
        ("portscope cold poll", "cold", None),
        ("portscope steady poll", "steady", None),
        ("portscope steady poll with tcp_info", "steady_stats", "stats_over_steady"),
        ("portscope poll with churn", "churn", "churn_over_steady"),
        ("psutil.net_connections", "psutil", "psutil_over_steady"),
        ("ss -tunap", "ss", "ss_over_steady"),
        ("lsof -nP -i", "lsof", "lsof_over_steady"),
        ("`portscope who PORT` (process; owner cache warm)", "who", "who_over_ss_tlnp"),
        ("`portscope who PORT` (process; no owner cache)", "who_cold", "who_cold_over_ss_tlnp"),
        ("ss -tlnp sport = :PORT", "ss_tlnp_port", None),
        ("ss -tunap sport = :PORT", "ss_port", "ss_port_over_who"),
        ("lsof -nP -i:PORT", "lsof_port", "lsof_port_over_who"),
        ("`portscope list --all` (table)", "list_table", "list_table_over_ss_all"),
        ("`portscope list --all --json`", "list_json", "list_json_over_ss_all"),
        ("ss -tunap (process)", "ss_all", "ss_all_over_list_json"),
        ("lsof -nP -i (process)", "lsof_all", "lsof_all_over_list_json"),
        ("dashboard 1st poll: prepare (poll thread)", "dash_first_prepare", None),
        ("dashboard 1st poll: apply (UI thread)", "dash_first_apply", None),
        ("dashboard 1% churn: prepare (poll thread)", "dash_prepare", "ss_over_dash_prepare"),
        ("dashboard 1% churn: apply (UI thread)", "dash_apply", "ss_over_dash_apply"),
    ]
    head = ["median ms (ratio)"] + [f"{r['sockets']}/{r['procs']}" for r in results]
    lines = [head]
    for label, key, rkey in rows:
        line = [label]
        for r in results:
            med = r["median_ms"]
            ratios = r["ratios"]
            assert isinstance(med, dict) and isinstance(ratios, dict)
            cell = fmt_ms(med.get(key))
            if rkey is not None and ratios.get(rkey) is not None:
                cell += f" ({fmt_x(ratios[rkey])})"
            line.append(cell)
        lines.append(line)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    for i, row in enumerate(lines):
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(
        "ratios: (x) = that tool's time / portscope steady poll; for churn and tcp_info, that poll /\n"
        "steady (target for tcp_info: <= 1.5x); for `who PORT`, who / `ss -tlnp sport = :PORT`\n"
        "(target <= 0.5x); for `list`, list / `ss -tunap` (target <= 1.0x); for the other\n"
        "whole-process rows, that tool / the portscope command above it; for the dashboard rows,\n"
        "`ss -tunap` / that step (target for apply: >= 2x, i.e. at most half an ss run)."
    )
    for r in results:
        ratios = r["ratios"]
        assert isinstance(ratios, dict)
        checks = [
            ("who (cache warm) <= 0.5x ss -tlnp", ratios.get("who_over_ss_tlnp"), 0.5),
            ("who (no cache) <= 0.5x ss -tlnp", ratios.get("who_cold_over_ss_tlnp"), 0.5),
            ("list --all <= 1.0x ss -tunap", ratios.get("list_table_over_ss_all"), 1.0),
            ("list --all --json <= 1.0x ss -tunap", ratios.get("list_json_over_ss_all"), 1.0),
        ]
        verdicts = [
            f"{name}: {'-' if v is None else ('met' if v <= limit else 'NOT met')} ({fmt_x(v)})"
            for name, v, limit in checks
        ]
        print(f"targets at {r['sockets']}/{r['procs']}: " + "; ".join(verdicts))
    for r in results:
        dash = r["dashboard"]
        assert isinstance(dash, dict)
        verdict = {True: "met", False: "NOT met", None: "not measured"}[dash["apply_within_half_ss"]]
        print(
            f"dashboard at {r['sockets']}/{r['procs']}: {dash['rows']} rows, "
            f"{fmt_num(dash['changes_per_poll_median'])} sockets changed per poll; "
            f"apply <= 1/2 ss: {verdict}"
        )


def fmt_num(v: object, digits: int | None = None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if digits is not None else f"{v:g}"
    return str(v)


def print_memory(mem: dict[str, object]) -> None:
    rss = mem["rss_mb"]
    assert isinstance(rss, dict)
    marks = ", ".join(f"poll {k}: {v:.0f} MB" for k, v in rss.items())
    parts = mem.get("ui_apply_parts_ms_median") or {}
    assert isinstance(parts, dict)
    print(
        f"dashboard memory (PortscopeApp headless, {mem['sockets']} sockets, "
        f"{fmt_num(mem['changes_median'])} sockets changed per poll, {mem['polls']} polls):\n"
        f"  RSS after {marks}\n"
        f"  UI-side apply per poll (app._apply, median): {fmt_num(mem['ui_apply_ms_median'], 1)} ms "
        f"(Dashboard.apply {fmt_num(parts.get('dashboard'), 1)} ms, "
        f"events pane {fmt_num(parts.get('events'), 1)} ms); "
        f"poll to poll {fmt_num(mem['poll_to_poll_s_median'])} s"
    )
    if mem.get("error"):
        print(f"  incomplete: {mem['error']}")
    print(f"  target: below 250 MB and stable: {mem['verdict']}")


def memory_verdict(mem: dict[str, object], limit_mb: float = 250) -> str:
    """Below ``limit_mb`` at every mark, and stable: at most 10% growth from poll 50 (or 10) to the end."""
    rss = mem.get("rss_mb")
    last = mem.get("rss_mb_last")
    if not isinstance(rss, dict) or not rss or not isinstance(last, float):
        return "not measured"
    top = max([*rss.values(), last])
    base_mark = "50" if "50" in rss else "10" if "10" in rss else "1"
    base = rss[base_mark]
    growth = last - base
    below = top < limit_mb
    stable = growth <= 0.10 * base
    sign = "<" if below else ">="
    return (
        f"{'met' if below and stable else 'NOT met'} (peak {top:.0f} MB {sign} {limit_mb:.0f} MB; "
        f"poll {base_mark} -> {mem.get('polls')}: {growth:+.0f} MB, {'stable' if stable else 'growing'})"
    )


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        n, _, p = part.lower().partition("x")
        out.append((int(n), int(p)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only (200,20) and (5k,50), 5 rounds")
    ap.add_argument("--sizes", help="comma-separated NxP, e.g. 5000x50,20000x100")
    ap.add_argument("--rounds", type=int, help="rounds per size (default 9, quick 5)")
    ap.add_argument("--out", default=str(RESULTS), help=f"JSON results file (default {RESULTS})")
    ap.add_argument(
        "--memory-polls", type=int, help="dashboard memory run: polls (default 100, quick 20; 0 = skip)"
    )
    ap.add_argument(
        "--scan-rounds",
        type=int,
        help="full loopback scan against nmap: interleaved rounds (default: --rounds; 0 = skip)",
    )
    ap.add_argument(
        "--startup-rounds",
        type=int,
        default=15,
        help="`who PORT` on the idle machine against a bare Python and ss: interleaved rounds (0 = skip)",
    )
    ap.add_argument(
        "--memory-at",
        type=int,
        help=f"the load size (sockets) of the memory run (default {MEMORY_AT}, else the largest run)",
    )
    ap.add_argument(
        "--memory-timeout",
        type=float,
        default=MEMORY_TIMEOUT,
        help=f"stop the memory run after this many seconds (default {MEMORY_TIMEOUT:g}, which keeps the "
        "full run under 5 minutes); the report then says at which poll it stopped",
    )
    args = ap.parse_args(argv)
    sizes = parse_sizes(args.sizes) if args.sizes else list(QUICK_SIZES if args.quick else FULL_SIZES)
    rounds = args.rounds or 5
    memory_polls = args.memory_polls if args.memory_polls is not None else (20 if args.quick else 100)
    memory_at = args.memory_at or (MEMORY_AT if any(n == MEMORY_AT for n, _ in sizes) else max(sizes)[0])
    memory: dict[str, object] | None = None
    scan: dict[str, object] | None = None
    startup: dict[str, object] | None = None

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    raise_nofile()
    results: list[dict[str, object]] = []
    skipped: list[dict[str, object]] = []
    started = time.time()
    try:
        # on the idle machine, before any load starts: the load's listeners are not its subject
        if args.startup_rounds > 0:
            print(f"`who PORT` start-up, {args.startup_rounds} rounds ...", file=sys.stderr)
            startup = measure_startup(args.startup_rounds, CHILD_ENV)
        scan_rounds = rounds if args.scan_rounds is None else args.scan_rounds
        if scan_rounds > 0:
            print(f"scan of 127.0.0.1 1-65535 against nmap, {scan_rounds} rounds ...", file=sys.stderr)
            scan = measure_scan(scan_rounds, env=CHILD_ENV)
        for n, p in sizes:
            ok, why = fits(n, p)
            if not ok:
                print(f"skipping {n}/{p}: {why}", file=sys.stderr)
                skipped.append({"sockets": n, "procs": p, "reason": why})
                continue
            t0 = time.perf_counter()
            with Load(n, p) as load:
                host = count_sockets()
                print(
                    f"{n}/{p}: {load.total} sockets in {p} processes ({host} on the host), "
                    f"set up in {time.perf_counter() - t0:.1f}s; {rounds} rounds ...",
                    file=sys.stderr,
                )
                bench = Bench(n, p, rounds, load)
                bench.run()
                results.append(summarize(n, p, host, bench.medians(), bench.dash_changes, bench.dash_rows))
                if memory_polls > 0 and n == memory_at:
                    print(f"{n}/{p}: dashboard memory over {memory_polls} polls ...", file=sys.stderr)
                    memory = {
                        "sockets": n,
                        "procs": p,
                        **measure_memory(load, memory_polls, churn=CHURN, timeout=args.memory_timeout),
                    }
                    memory["verdict"] = memory_verdict(memory)
    except KeyboardInterrupt:
        print("interrupted: children killed; partial results follow", file=sys.stderr)
    if not results and scan is None and startup is None:
        return 1
    if startup is not None:
        print_startup(startup)
    if results:
        print_table(results)
    if memory is not None:
        print_memory(memory)
    if scan is not None:
        print_scan(scan)
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "host": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "psutil": psutil.__version__,
            "lsof": shutil.which("lsof") is not None,
            "ss": shutil.which("ss") is not None,
            "nmap": shutil.which("nmap") is not None,
        },
        "rounds": rounds,
        "results": results,
        "skipped": skipped,
        "memory": memory,
        "scan": scan,
        "startup": startup,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    finally:
        shutil.rmtree(BENCH_CACHE, ignore_errors=True)
