"""The CLI run as an unprivileged user: it works, and says what it cannot see."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers import child_listener
from tests.unprivileged import unprivileged_runner, why_not

pytestmark = [pytest.mark.slow, pytest.mark.skipif(why_not() is not None, reason=why_not() or "")]


@pytest.fixture(scope="module")
def as_nobody():
    with unprivileged_runner() as prefix:
        yield prefix


def run(prefix: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60, cwd="/")


def test_who_as_nobody_hides_roots_owner_and_counts_it(as_nobody: list[str]) -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-root-srv") as child:
        res = run(as_nobody, "who", str(child.port), "--json")
        assert res.returncode == 0, res.stderr
        data = json.loads(res.stdout)
        assert data["privileged"] is False
        [sock] = data["sockets"]
        assert sock["pid"] is None and sock["process"] is None
        assert sock["local"] == {"ip": "127.0.0.1", "port": child.port}
        assert data["hidden_owners"] >= 1
        assert any("need root" in w for w in data["warnings"])
        assert "Traceback" not in res.stderr


def test_list_as_nobody_shows_unknown_owner_and_warns(as_nobody: list[str]) -> None:
    with child_listener("udp", "127.0.0.1", name="ps-root-udp") as child:
        res = run(as_nobody, "list", "--port", str(child.port))
        assert res.returncode == 0, res.stderr
        line = next(ln for ln in res.stdout.splitlines() if f"127.0.0.1:{child.port}" in ln)
        assert "ps-root-udp" not in line and "?" in line.split()
        assert "no visible owner" in res.stderr and "need root" in res.stderr
        assert "Traceback" not in res.stderr


def test_own_sockets_stay_visible_as_nobody(as_nobody: list[str]) -> None:
    """A process of the same unprivileged user is still seen with its owner."""
    code = (
        "import socket,subprocess,sys,json;"
        "s=socket.socket();s.bind(('127.0.0.1',0));s.listen();p=s.getsockname()[1];"
        "r=subprocess.run([sys.executable,'-s','-m','app','who',str(p),'--json'],capture_output=True,text=True);"
        "print(r.stdout)"
    )
    prefix = as_nobody[: as_nobody.index("-m")]
    res = run(prefix, "-c", code)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    [sock] = [s for s in data["sockets"] if s["listening"] and s["local"]["ip"] == "127.0.0.1"]
    assert sock["pid"] is not None
    assert sock["process"]["user"] == "nobody"
