"""The CLI never imports Textual: `portscope list`/`who`/`ifaces` must start fast and run headless."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import child_listener

PROBE = r"""
import sys
from app.cli.main import main
rc = main(sys.argv[1:])
sys.stdout.flush()
loaded = sorted(m for m in sys.modules if m == "textual" or m.startswith(("textual.", "app.tui", "widgets")))
sys.stderr.write("LOADED=" + ",".join(loaded) + "\n")
sys.stderr.write("RC=%d\n" % rc)
"""


def probe(*args: str) -> tuple[int, list[str]]:
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.splitlines()
    loaded = next(ln for ln in lines if ln.startswith("LOADED=")).removeprefix("LOADED=")
    rc = int(next(ln for ln in lines if ln.startswith("RC=")).removeprefix("RC="))
    return rc, [m for m in loaded.split(",") if m]


@pytest.mark.parametrize(
    "args",
    [["list"], ["list", "--all", "--json"], ["list", "--csv"], ["ifaces"], ["ifaces", "--json"]],
)
def test_commands_do_not_import_textual(args: list[str]) -> None:
    rc, loaded = probe(*args)
    assert rc == 0
    assert loaded == []


def test_who_does_not_import_textual() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        rc, loaded = probe("who", str(child.port))
        assert rc == 0  # the port is in use: who really ran
        assert loaded == []


def test_the_probe_can_see_textual() -> None:
    """The check above would notice: importing textual shows up the same way."""
    res = subprocess.run(
        [sys.executable, "-c", "import sys, textual; print('textual' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.stdout.strip() == "True"


def test_domain_modules_do_not_import_textual() -> None:
    """Every module under app/ except app.tui imports without pulling in textual."""
    code = r"""
import importlib, pkgutil, sys
import app

def walk(path, prefix):
    for info in pkgutil.iter_modules(path, prefix):
        if info.name in ("app.tui", "app.__main__"):
            continue  # the dashboard may import textual; __main__ runs the CLI
        module = importlib.import_module(info.name)
        if "textual" in sys.modules:
            print(info.name)
            raise SystemExit(0)
        if info.ispkg:
            walk(module.__path__, info.name + ".")

walk(app.__path__, "app.")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"imports textual: {res.stdout.strip()}"
