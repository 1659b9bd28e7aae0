"""What the ecosystem pieces would add to the CLI's start-up if they were imported there: shtab
(completion), platformdirs (the config path), tomllib (reading the config), against the start-up
itself (``app.cli.parser`` with every command registered) and ``app.config`` (what every command
does load), measured in the same run.

The start-up row is every import of ``build_parser()`` (all commands registered, the config file
looked for); ``app.config`` is its own part of that (on top of app.cli.common, which every
command module imports); the others are measured on top of the start-up, so what it loads anyway
costs nothing. Each is the median over ``--rounds`` fresh interpreters of ``python -X
importtime``'s cumulative time, with its ratio to the start-up row.

    .venv/bin/python bench/startup_deps.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)
# The CLI's start-up: every command's module imported and registered, the config file looked for.
START = "from app.cli.parser import build_parser; build_parser()"
MODULES = ("shtab", "platformdirs", "tomllib")


def startup_ms() -> float:
    """The start-up's imports: the sum of the top-level cumulative times ``-X importtime`` reports."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", START],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env=ENV,
    )
    total = 0
    for line in res.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and not parts[2].startswith("  ") and parts[1].strip().isdigit():
            total += int(parts[1])
    return total / 1000


def importtime_ms(module: str, before: str = "") -> float:
    """``module``'s cumulative import time in ms, after ``before`` was imported (0 if it already was)."""
    code = f"{before}; import {module}" if before else f"import {module}"
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env=ENV,
    )
    for line in reversed(res.stderr.splitlines()):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1000
    return 0.0  # imported by ``before`` already


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    runs = [
        ("start-up", startup_ms),
        ("app.config", lambda: importtime_ms("app.config", "import app.cli.common")),
    ]
    for module in MODULES:
        runs.append((module, lambda m=module: importtime_ms(m, START)))  # type: ignore[misc]
    for _name, fn in runs:  # warm-up: .pyc files, page cache
        fn()
    rows: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # interleaved: background load hits every row alike
        for name, fn in runs:
            rows.setdefault(name, []).append(fn())
    med = {name: statistics.median(v) for name, v in rows.items()}
    base = med["start-up"]
    print(f"{'import':<16} {'ms':>7} {'x start-up':>11}")
    for name, value in med.items():
        print(f"{name:<16} {value:7.1f} {value / base:11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
