"""What the one-shot commands import, as ``python -X importtime`` reports it: ``who`` (free port,
a listener on loopback, ``--json``) and ``list --json`` never load a heavy module they do not
need. Start-up is most of what ``who`` costs (bench/run.py measures it against a bare Python);
a module that sneaks in here shows up in that ratio."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import child_listener, free_port, has_ipv6

# Heavy for every command below: the dashboard's stack, psutil (the Linux backend does not need
# it), the exporter, and the standard modules the CLI's path avoids (dataclasses, typing and enum
# through app.lite; socket through _socket; subprocess, threading, ... where they are used).
ALWAYS_HEAVY = {
    "textual",
    "rich",
    "psutil",
    "prometheus_client",
    "dataclasses",
    "inspect",
    "typing",
    "subprocess",
    "socket",
    "selectors",
    "threading",
    "asyncio",
    "pathlib",
    "tomllib",
    "email",
    "http",
    "urllib",
}
# ``who`` also without these: its command line is read without argparse, no JSON unless --json,
# no regular expressions, and loopback addresses are classified without ipaddress or netifaces.
WHO_HEAVY = ALWAYS_HEAVY | {
    "argparse",
    "json",
    "re",
    "enum",
    "ipaddress",
    "netifaces",
    "shutil",
    "csv",
    "gettext",
}


LAUNCHER = "from app.cli.main import run; raise SystemExit(run())"


def imported(*args: str, launcher: bool = False) -> tuple[int, set[str], str]:
    """(exit code, every module imported, the command's own stderr) of ``python -X importtime -m
    app ARGS`` (bytecode caching as installed: compiled files in a private prefix); with
    ``launcher``, of a console script's call of main() instead (runpy imports modules of its own)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(os.environ.get("XDG_CACHE_HOME", "/tmp"), "pyc")
    res = subprocess.run(
        [sys.executable, "-X", "importtime", *(("-c", LAUNCHER) if launcher else ("-m", "app")), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    mods: set[str] = set()
    other: list[str] = []
    for line in res.stderr.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[-1].strip()
            if name and name != "imported package":
                mods.add(name)
        else:
            other.append(line)
    return res.returncode, mods, "\n".join(other)


def heavy_in(mods: set[str], heavy: set[str]) -> list[str]:
    return sorted(m for m in mods if m in heavy or m.split(".", 1)[0] in heavy)


def test_the_probe_sees_what_is_imported() -> None:
    """The check would notice: the dashboard's and argparse's imports show up the same way."""
    code, mods, _err = imported("--help")
    assert code == 0
    assert "argparse" in mods and "app.cli.parser" in mods


def test_who_of_a_free_port_imports_nothing_heavy() -> None:
    code, mods, err = imported("who", str(free_port()))
    assert code == 1, err  # free: really ran
    assert heavy_in(mods, WHO_HEAVY) == []
    assert "app.cli.table" not in mods and "app.service" not in mods  # nothing to show: not loaded


def test_who_through_a_launcher_imports_not_even_collections() -> None:
    """What a console script runs: besides the above, not collections (runpy imports it for
    ``-m``; the code on who's path imports collections.abc only for type checkers)."""
    with child_listener("tcp", "127.0.0.1") as child:
        code, mods, err = imported("who", str(child.port), launcher=True)
    assert code == 0, err
    assert "app.cli.table" in mods
    assert heavy_in(mods, WHO_HEAVY | {"collections"}) == []
    # a python owner forwards nothing: the argv parsers (app.forwarders) are not loaded
    assert "app.forwardprogs" in mods and "app.forwarders" not in mods


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0"])
def test_who_of_a_listener_imports_nothing_heavy(host: str) -> None:
    if ":" in host and not has_ipv6():
        pytest.skip("no IPv6")
    with child_listener("tcp", host) as child:
        code, mods, err = imported("who", str(child.port))
    assert code == 0, err
    assert "app.cli.table" in mods and "app.service" in mods  # the table and its SERVICE column ran
    assert heavy_in(mods, WHO_HEAVY) == []


def test_who_json_imports_json_and_nothing_else_heavy() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        code, mods, err = imported("who", str(child.port), "--json")
    assert code == 0, err
    assert "json" in mods
    assert heavy_in(mods, WHO_HEAVY - {"json", "re", "enum"}) == []  # (json's decoder imports re)


def test_list_json_imports_nothing_heavy() -> None:
    with child_listener("tcp", "127.0.0.1"):
        code, mods, err = imported("list", "--all", "--json")
    assert code == 0, err
    assert heavy_in(mods, ALWAYS_HEAVY) == []


def test_list_table_imports_nothing_heavy() -> None:
    with child_listener("tcp", "127.0.0.1"):
        code, mods, err = imported("list", "--all")
    assert code == 0, err
    assert heavy_in(mods, ALWAYS_HEAVY | {"json", "csv"}) == []
