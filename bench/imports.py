"""What it costs to import a container-engine client: the official ``docker`` SDK against
app.containers (a stdlib HTTP-over-unix-socket client), measured in the same run.

Both on top of the stdlib modules the CLI imports anyway (``BASELINE``), with bytecode caching
on. Two measures, each the median of ``--rounds`` fresh interpreters:
- ``python -X importtime``'s cumulative time of the module's import (what start-up pays);
- the wall time of ``python -c "import X"`` against ``python -c pass``.

The SDK is not a dependency of portscope; point ``--sdk-python`` at an interpreter that has it
(``python3 -m venv /tmp/sdk && /tmp/sdk/bin/pip install docker``). Without it only app.containers
is measured.

    .venv/bin/python bench/imports.py --sdk-python /tmp/sdk/bin/python
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Bytecode caching on (pip compiled the SDK's .pyc files at install; ours must be cached too), and
# app importable from the SDK's interpreter.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)
# Modules the CLI has loaded anyway when a command runs: the cost that matters is on top of them.
BASELINE = "import json, re, socket, subprocess, threading, dataclasses, shlex"


def importtime_ms(python: str, module: str) -> float:
    """The cumulative import time of ``module`` as ``-X importtime`` reports it, in ms."""
    res = subprocess.run(
        [python, "-X", "importtime", "-c", f"{BASELINE}; import {module}"],
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
    raise RuntimeError(f"no importtime line for {module}")


def wall_ms(python: str, code: str) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", code], check=True, cwd=ROOT, capture_output=True, env=ENV)
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--sdk-python", help="an interpreter with the docker SDK installed")
    args = ap.parse_args(argv)
    rows: dict[str, list[float]] = {}
    runs = [("app.containers importtime", lambda: importtime_ms(sys.executable, "app.containers"))]
    runs.append(("python -c BASELINE", lambda: wall_ms(sys.executable, BASELINE)))
    ours = f"{BASELINE}; import app.containers"
    runs.append(("python -c 'BASELINE; import app.containers'", lambda: wall_ms(sys.executable, ours)))
    if args.sdk_python:
        sdk = args.sdk_python
        runs.append(("docker SDK importtime", lambda: importtime_ms(sdk, "docker")))
        runs.append(("sdk python -c BASELINE", lambda: wall_ms(sdk, BASELINE)))
        theirs = f"{BASELINE}; import docker"
        runs.append(("sdk python -c 'BASELINE; import docker'", lambda: wall_ms(sdk, theirs)))
    for _name, fn in runs:  # warm-up: writes our .pyc files, warms the page cache
        fn()
    for _ in range(args.rounds):  # interleaved, so background load hits every row alike
        for name, fn in runs:
            rows.setdefault(name, []).append(fn())
    med = {name: statistics.median(v) for name, v in rows.items()}
    for name, value in med.items():
        print(f"{name:40s} {value:8.1f} ms")
    ours = med["app.containers importtime"]
    if "docker SDK importtime" in med:
        print(f"docker SDK / app.containers (importtime): {med['docker SDK importtime'] / ours:.0f}x")
        extra_ours = med["python -c 'BASELINE; import app.containers'"] - med["python -c BASELINE"]
        extra_sdk = med["sdk python -c 'BASELINE; import docker'"] - med["sdk python -c BASELINE"]
        print(f"added wall time: app.containers {extra_ours:.1f} ms, docker SDK {extra_sdk:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
