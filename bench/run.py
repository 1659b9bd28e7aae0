"""portscope benchmark: the fast collector against psutil, ss and lsof on the same live load.

    python bench/run.py            # (200, 20), (5k, 50), (20k, 100), (50k, 200) where limits allow
    python bench/run.py --quick    # (200, 20) and (5k, 50), fewer rounds
    python bench/run.py --sizes 20000x100 --rounds 9

Run it with the project's interpreter (``.venv/bin/python bench/run.py``). For each size it starts
its own load (bench/load.py: N loopback sockets across P child processes), measures everything in
the same run, interleaved round by round, prints medians with ratios, writes
bench/results/latest.json, and kills its children (by pid) on the way out, also on Ctrl-C.
Nothing but loopback is touched.
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
import subprocess
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
from load import Load, count_sockets, fits, raise_nofile  # noqa: E402

from app.fast import FastCollector  # noqa: E402

FULL_SIZES = ((200, 20), (5000, 50), (20000, 100), (50000, 200))
QUICK_SIZES = ((200, 20), (5000, 50))
RESULTS = HERE / "results" / "latest.json"

# Each measure: (name, what it is). Ratios are "how many times slower than the fast steady poll"
# for the in-process polls, and "how many times slower than portscope" for whole processes.
POLL_MEASURES = ("cold", "steady", "churn", "psutil", "ss", "lsof")
PROC_MEASURES = ("who", "ss_port", "lsof_port", "list_json", "ss_all", "lsof_all")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


# Whole-process runs get compiled bytecode as an installed tool would (this checkout may run with
# PYTHONDONTWRITEBYTECODE): cached under a private prefix, never written into the checkout.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CHILD_ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "portscope-bench-pycache")


def run_quiet(args: list[str], timeout: float = 60) -> None:
    subprocess.run(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
        env=CHILD_ENV,
    )


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

    def add(self, name: str, ms: float) -> None:
        self.samples.setdefault(name, []).append(ms)

    def run(self) -> None:
        run_quiet([*self.cli, "who", str(self.port)])  # warm-up: compiles the bytecode once
        steady = FastCollector()
        steady.collect()
        churn = FastCollector()
        churn.collect()
        for _ in range(self.rounds):
            self.one_round(steady, churn)
        steady.close()
        churn.close()

    def one_round(self, steady: FastCollector, churn: FastCollector) -> None:
        gc.collect()

        def cold() -> None:
            c = FastCollector()
            c.collect()
            c.close()

        self.add("cold", timed(cold))
        steady.collect()  # absorbs the previous round's churn connection: the next poll is steady
        self.add("steady", timed(steady.collect))
        self.load.churn()  # a new connection in a random process, then one poll
        self.add("churn", timed(churn.collect))
        self.add("psutil", timed(lambda: psutil.net_connections("inet")))
        if self.have_ss:
            self.add("ss", timed(lambda: run_quiet(["ss", "-tunap"])))
        if self.have_lsof:
            self.add("lsof", timed(lambda: run_quiet(["lsof", "-nP", "-i"])))
        port = str(self.port)
        self.add("who", timed(lambda: run_quiet([*self.cli, "who", port])))
        if self.have_ss:
            self.add("ss_port", timed(lambda: run_quiet(["ss", "-tunap", f"( sport = :{port} )"])))
        if self.have_lsof:
            self.add("lsof_port", timed(lambda: run_quiet(["lsof", "-nP", f"-i:{port}"])))
        self.add("list_json", timed(lambda: run_quiet([*self.cli, "list", "--all", "--json"])))
        if self.have_ss:
            self.add("ss_all", timed(lambda: run_quiet(["ss", "-tunap"])))
        if self.have_lsof:
            self.add("lsof_all", timed(lambda: run_quiet(["lsof", "-nP", "-i"])))

    def medians(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.samples.items()}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def summarize(n: int, p: int, sockets: int, med: dict[str, float]) -> dict[str, object]:
    steady, cold, churn = med.get("steady"), med.get("cold"), med.get("churn")
    ratios = {
        "psutil_over_steady": ratio(med.get("psutil"), steady),
        "ss_over_steady": ratio(med.get("ss"), steady),
        "lsof_over_steady": ratio(med.get("lsof"), steady),
        "churn_over_steady": ratio(churn, steady),
        "cold_over_psutil": ratio(cold, med.get("psutil")),
        "lsof_port_over_who": ratio(med.get("lsof_port"), med.get("who")),
        "ss_port_over_who": ratio(med.get("ss_port"), med.get("who")),
        "ss_all_over_list_json": ratio(med.get("ss_all"), med.get("list_json")),
        "lsof_all_over_list_json": ratio(med.get("lsof_all"), med.get("list_json")),
    }
    return {"sockets": n, "procs": p, "host_sockets": sockets, "median_ms": med, "ratios": ratios}


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:.1f}" if v < 100 else f"{v:.0f}")


def fmt_x(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}x"


def print_table(results: list[dict[str, object]]) -> None:
    rows = [
        ("portscope cold poll", "cold", None),
        ("portscope steady poll", "steady", None),
        ("portscope poll with churn", "churn", "churn_over_steady"),
        ("psutil.net_connections", "psutil", "psutil_over_steady"),
        ("ss -tunap", "ss", "ss_over_steady"),
        ("lsof -nP -i", "lsof", "lsof_over_steady"),
        ("`portscope who PORT` (process)", "who", None),
        ("ss -tunap sport = :PORT", "ss_port", "ss_port_over_who"),
        ("lsof -nP -i:PORT", "lsof_port", "lsof_port_over_who"),
        ("`portscope list --all --json`", "list_json", None),
        ("ss -tunap (process)", "ss_all", "ss_all_over_list_json"),
        ("lsof -nP -i (process)", "lsof_all", "lsof_all_over_list_json"),
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
        "ratios: (x) = that tool's time / portscope steady poll; for churn, churn / steady; for the\n"
        "whole-process rows, that tool / the portscope command above it. Higher is better for portscope."
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
    args = ap.parse_args(argv)
    sizes = parse_sizes(args.sizes) if args.sizes else list(QUICK_SIZES if args.quick else FULL_SIZES)
    rounds = args.rounds or (5 if args.quick else 9)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    raise_nofile()
    results: list[dict[str, object]] = []
    skipped: list[dict[str, object]] = []
    started = time.time()
    try:
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
                results.append(summarize(n, p, host, bench.medians()))
    except KeyboardInterrupt:
        print("interrupted: children killed; partial results follow", file=sys.stderr)
    if not results:
        return 1
    print_table(results)
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
        },
        "rounds": rounds,
        "results": results,
        "skipped": skipped,
        "todo": ["dashboard table update and dashboard memory: not measured yet"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
