"""``portscope who PORT`` on an idle machine against a bare ``python -c pass`` of the same
interpreter and ``ss -tlnp 'sport = :PORT'``: whole processes, interleaved round by round, medians.

The target (issue 14): ``who`` at most 2x a bare Python start. Measured before any load starts,
on one listener this run starts (a child process on 127.0.0.1, killed afterwards), so the search
finds its owner among the host's processes, and its tree completion reads the child's ancestors'
tables. Three ways to start the same code:

- ``portscope`` -- the console script pip (or uv, pipx) writes for ``[project.scripts]``: it
  imports ``re`` before calling portscope (about 6 ms, half a bare start);
- ``launcher`` -- the same call without that import (what a script that runs
  ``from app.cli.main import run; raise SystemExit(run())`` costs: written to a temp file here);
- ``python -m app`` -- through runpy (about 5 ms more).

Bytecode is cached as an installed tool's would be (a private prefix), and the owner cache is a
private temp dir (warm after the first run, as for someone asking about a port again).

    python bench/startup.py --rounds 15       (standalone; bench/run.py calls measure_startup)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scanbench import run_blocking

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

LISTENER = r"""
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
"""


def _timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    run_blocking(args, env)
    return (time.perf_counter() - start) * 1000


def measure_startup(rounds: int, env: dict[str, str]) -> dict[str, object]:
    """Medians (ms) of each command, and the ratios the targets are about."""
    py = sys.executable
    script = Path(py).with_name("portscope")
    tmp = Path(tempfile.mkdtemp(prefix="portscope-bench-startup-"))
    env = {**env, "XDG_CACHE_HOME": str(tmp / "cache")}
    launcher = tmp / "portscope-launcher"
    launcher.write_text(f"#!{py}\nfrom app.cli.main import run\nraise SystemExit(run())\n")
    launcher.chmod(0o755)
    child = subprocess.Popen([py, "-c", LISTENER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = child.stdout.readline().strip()
        runs: dict[str, list[str]] = {"python -c pass": [py, "-c", "pass"]}
        if script.exists():
            runs["portscope who PORT"] = [str(script), "who", port]
        runs["launcher who PORT"] = [str(launcher), "who", port]
        runs["python -m app who PORT"] = [py, "-m", "app", "who", port]
        if shutil.which("ss"):
            runs["ss -tlnp sport = :PORT"] = ["ss", "-tlnp", f"sport = :{port}"]
        for args in runs.values():  # warm-up: bytecode, page cache, the owner cache
            _timed(args, env)
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(rounds):
            order = list(runs.items())
            if r % 2:
                order.reverse()  # who goes first alternates
            for name, args in order:
                samples[name].append(_timed(args, env))
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {name: statistics.median(v) for name, v in samples.items()}
    bare = med["python -c pass"]
    ratios = {f"{name} / bare python": med[name] / bare for name in med if "who" in name}
    if "ss -tlnp sport = :PORT" in med:
        ratios.update(
            {f"{name} / ss": med[name] / med["ss -tlnp sport = :PORT"] for name in med if "who" in name}
        )
    return {"rounds": rounds, "median_ms": med, "ratios": ratios}


def print_startup(result: dict[str, object]) -> None:
    med = result["median_ms"]
    ratios = result["ratios"]
    assert isinstance(med, dict) and isinstance(ratios, dict)
    bare = med["python -c pass"]
    print(f"`who PORT` on the idle machine, {result['rounds']} interleaved rounds (median ms):")
    for name, ms in med.items():
        extra = f"  ({ms / bare:.2f}x bare python)" if "who" in name else ""
        print(f"  {name:28s} {ms:7.1f}{extra}")
    best = min((v for k, v in ratios.items() if k.endswith("/ bare python")), default=None)
    if best is not None:
        print(
            f"  target who <= 2x bare python: {'met' if best <= 2 else 'NOT met'} (best start: {best:.2f}x)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "portscope-bench-pycache")
    print_startup(measure_startup(args.rounds, env))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
