"""portscope where the kernel's sources are refused: netlink blocked by a seccomp filter
(tests/seccomp.py), and /proc/net hidden too (a tmpfs over /proc/PID/net in a private mount
namespace, where PID is the process that then execs portscope: /proc/net is a symlink to
self/net). Every command either works from what is left or says in one line what is missing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from app import exitcodes
from tests import seccomp
from tests.helpers import free_port, listening_socket, needs_mount_ns, portscope_cmd, run_cli

_REASON = seccomp.unavailable()
needs_seccomp = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def no_netlink(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        seccomp.command(*portscope_cmd(), *args), capture_output=True, text=True, timeout=60, env=env
    )


def no_source(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """netlink refused and /proc/net empty: the shell mounts a tmpfs over its own /proc/$$/net,
    then execs (same pid) the seccomp helper, which execs portscope (same pid again)."""
    script = 'mount -t tmpfs portscope-test "/proc/$$/net" || exit 99; exec "$@"'
    res = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", *seccomp.command(*portscope_cmd(), *args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert res.returncode != 99, res.stderr
    return res


def _warnings(res: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.splitlines()
    assert all(ln.startswith("portscope: ") for ln in lines), res.stderr
    return lines


# -- netlink refused ------------------------------------------------------------------------------


@needs_seccomp
def test_the_filter_refuses_netlink_and_nothing_else() -> None:
    code = (
        "import socket\n"
        "socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()\n"
        "try:\n    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)\n"
        "except PermissionError:\n    print('refused')\n"
    )
    res = subprocess.run(seccomp.command("python3", "-c", code), capture_output=True, text=True, timeout=30)
    assert res.stdout.strip() == "refused", res.stderr


@needs_seccomp
def test_ifaces_without_netlink_reads_the_kernel_another_way_and_says_so() -> None:
    normal = json.loads(run_cli("ifaces", "--json").stdout)["interfaces"]
    res = no_netlink("ifaces", "--json")
    assert res.returncode == 0, res.stderr
    [warning] = _warnings(res)
    assert "interface addresses read from /proc/net and ioctl" in warning
    assert "Operation not permitted" in warning
    restricted = {i["name"]: i for i in json.loads(res.stdout)["interfaces"]}
    assert set(restricted) == {i["name"] for i in normal}
    for i in normal:
        r = restricted[i["name"]]
        assert (r["up"], r["loopback"], r["mtu"], r["mac"]) == (i["up"], i["loopback"], i["mtu"], i["mac"])
        assert {a["address"] for a in r["addresses"]} <= {a["address"] for a in i["addresses"]}
        v6 = {a["address"] for a in i["addresses"] if a["family"] == "ipv6"}
        assert v6 == {a["address"] for a in r["addresses"] if a["family"] == "ipv6"}
        assert r["default_gateways"] == i["default_gateways"]
    lo = restricted["lo"]
    assert {"127.0.0.1"} <= {a["address"] for a in lo["addresses"]} and lo["loopback"]
    table = no_netlink("ifaces")
    assert table.returncode == 0 and "127.0.0.1/8" in table.stdout


@needs_seccomp
@pytest.mark.parametrize("collector", ["", "psutil"])
def test_list_without_netlink_still_classifies_exposure(collector: str) -> None:
    env = {**os.environ, "PORTSCOPE_COLLECTOR": collector}
    with listening_socket("tcp", "127.0.0.1") as s:
        port = s.getsockname()[1]
        res = no_netlink("list", "--port", str(port), "--json", env=env)
    assert res.returncode == 0, res.stderr
    _warnings(res)
    [sock] = json.loads(res.stdout)["sockets"]
    assert sock["exposure"]["kind"] == "loopback" and sock["pid"] == os.getpid()


# -- no socket source at all ----------------------------------------------------------------------


def _baseline(tmp_path: Path) -> str:
    path = tmp_path / "base.json"
    path.write_text(run_cli("baseline", "save", "-").stdout)
    return str(path)


SOCKET_COMMANDS = {
    "list": ["list"],
    "list-json": ["list", "--json"],
    "list-csv": ["list", "--csv"],
    "who": ["who", "22"],
    "watch": ["watch", "--interval", "0.2"],
    "baseline-save": ["baseline", "save", "-"],
    "baseline-diff": ["baseline", "diff", "{baseline}"],
    "kill": ["kill", "{free_port}", "--yes"],
}


@needs_seccomp
@needs_mount_ns
@pytest.mark.parametrize("collector", ["", "psutil"])
@pytest.mark.parametrize("name", list(SOCKET_COMMANDS))
def test_no_socket_source_is_one_line_and_exit_69(name: str, collector: str, tmp_path: Path) -> None:
    """Needs app/collector.py (and app/fast) to raise CollectorUnavailable when neither netlink nor
    /proc/net works: "cannot list sockets: ..." (the lead's side of issue 10)."""
    fill = {"baseline": _baseline(tmp_path), "free_port": str(free_port())}
    args = [a.format(**fill) for a in SOCKET_COMMANDS[name]]
    res = no_source(*args, env={**os.environ, "PORTSCOPE_COLLECTOR": collector})
    lines = _warnings(res)
    assert res.returncode == exitcodes.UNAVAILABLE, (res.returncode, res.stderr)
    assert len(lines) == 1 and "socket" in lines[0], res.stderr
    assert res.stdout == ""


@needs_seccomp
@needs_mount_ns
def test_ifaces_with_no_source_says_what_is_missing_in_one_line() -> None:
    res = no_source("ifaces")
    [line] = _warnings(res)
    assert res.returncode == exitcodes.UNAVAILABLE
    assert line.startswith("portscope: cannot read the network interfaces here: ")
    assert "Operation not permitted" in line and "/proc/net" in line
