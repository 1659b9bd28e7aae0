"""``portscope explain`` on this machine's loopback: real listeners, a real TIME_WAIT, a real
``watch --log`` file, bad input. (Firewall and wildcard binds: test_explain_firewall.py and
test_explain_binds.py, inside namespaces.) No assertion here depends on the host's firewall."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.explain import SEVERITIES
from app.freeport import can_bind, find_free
from app.ports import ephemeral_range, in_ephemeral
from tests.helpers import child_listener, free_port, needs_ipv6, portscope_cmd, run_cli, wait_for


def explain(*args: str) -> tuple[int, dict]:
    res = run_cli("explain", *args, "--json")
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, json.loads(res.stdout)


def kinds(data: dict, kind: str) -> list[dict]:
    return [f for f in data["findings"] if f["kind"] == kind]


def test_json_shape_is_pinned_and_listeners_are_list_json_sockets() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-explain-srv") as child:
        rc, data = explain(str(child.port))
        listed = json.loads(run_cli("list", "--port", str(child.port), "--json").stdout)["sockets"]
    assert rc == 0
    assert list(data) == ["port", "proto", "verdict", "listeners", "findings", "suggestions"]
    assert (data["port"], data["proto"]) == (child.port, "tcp")
    assert isinstance(data["verdict"], str) and "\n" not in data["verdict"]
    for f in data["findings"]:
        assert list(f) == ["kind", "severity", "text", "detail"]
        assert f["severity"] in SEVERITIES and isinstance(f["detail"], dict) and isinstance(f["text"], str)
    for s in data["suggestions"]:
        assert list(s) == ["command", "why"]
    mine = [s for s in listed if s["pid"] == child.pid and s["listening"]]
    assert data["listeners"] == mine  # exactly the socket objects of list --json


def test_loopback_listener_its_holder_and_the_command_that_frees_it() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-explain-srv") as child:
        res = run_cli("explain", str(child.port))
        rc, data = explain(str(child.port))
    assert res.returncode == 0 and rc == 0
    lines = res.stdout.splitlines()
    assert (
        lines[0]
        == f"{child.port}/tcp: open on loopback only: reachable from this machine, not from the network"
    )
    assert data["verdict"] == lines[0]
    [holder] = [h for h in kinds(data, "holder") if h["detail"]["pid"] == child.pid]
    assert holder["detail"]["name"] == "ps-explain-srv"
    assert f"tcp 127.0.0.1:{child.port} LISTEN" in holder["detail"]["sockets"]
    [bind] = kinds(data, "bind")
    assert bind["detail"]["scope"] == "loopback"
    [test] = kinds(data, "test")
    assert test["detail"]["address"] == "127.0.0.1" and test["detail"]["state"] == "open"
    assert isinstance(test["detail"]["latency_ms"], float)
    [in_use] = kinds(data, "in-use")
    free = in_use["detail"]["free_ports"]
    assert len(free) == 3 and child.port not in free and all(can_bind(p) for p in free)
    assert f"portscope kill {child.port}" in [s["command"] for s in data["suggestions"]]
    assert "suggested commands (not run):" in lines
    assert f"  $ portscope kill {child.port}" in lines


@needs_ipv6
def test_ipv6_loopback_listener_is_ipv6_only() -> None:
    with child_listener("tcp", "::1", name="ps-explain-v6") as child:
        rc, data = explain(str(child.port))
    assert rc == 0
    [stack] = kinds(data, "stack")
    assert stack["detail"] == {**stack["detail"], "ipv4": False, "ipv6": True}
    assert [t["detail"]["address"] for t in kinds(data, "test")] == ["::1"]


def test_udp_listener() -> None:
    with child_listener("udp", "127.0.0.1", name="ps-explain-udp") as child:
        rc, data = explain(str(child.port), "--proto", "udp")
    assert rc == 0, data
    assert data["proto"] == "udp" and data["listeners"][0]["state"] == "BOUND"
    [test] = kinds(data, "test")
    # silent but not refused, and a socket here is bound there: open (the one rule, app/outcome.py)
    assert test["detail"]["state"] == "open"


def test_free_port_outside_the_ephemeral_range() -> None:
    lo, _hi = ephemeral_range()
    [port] = find_free(1024, lo - 1, count=1)
    rc, data = explain(str(port))
    assert rc == 1
    assert data["verdict"] == f"{port}/tcp: nothing listens; the port is free to bind"
    assert data["listeners"] == []
    [bindable] = kinds(data, "bindable")
    assert bindable["detail"]["results"] == {"0.0.0.0": None, "::": None}
    [eph] = kinds(data, "ephemeral")
    assert eph["severity"] == "info" and "outside" in eph["text"]
    [free] = kinds(data, "free-ports")
    assert len(free["detail"]["ports"]) == 3 and port not in free["detail"]["ports"]
    assert all(abs(p - port) <= 50 for p in free["detail"]["ports"])
    assert not kinds(data, "test")  # nothing to connect to


def test_port_in_the_ephemeral_range_is_warned_with_the_range() -> None:
    port = free_port()  # the kernel picks it from the ephemeral range
    assert in_ephemeral(port)
    rc, data = explain(str(port))
    assert rc == 1
    [eph] = kinds(data, "ephemeral")
    lo, hi = ephemeral_range()
    assert eph["severity"] == "warning" and eph["detail"]["range"] == [lo, hi]
    assert f"ephemeral range {lo}-{hi}" in eph["text"]
    assert data["verdict"].endswith("(inside the ephemeral range)")
    assert any("ip_local_reserved_ports" in s["command"] for s in data["suggestions"])


def make_time_wait(reuse: bool) -> tuple[int, list[socket.socket]]:
    """A real TIME_WAIT on 127.0.0.1: the server side closes first, then everything is closed."""
    srv = socket.socket()
    if reuse:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    conn.close()  # active close: the server's end goes to TIME_WAIT
    client.recv(1)
    client.close()
    srv.close()
    return port, []


@pytest.mark.parametrize("reuse", [True, False])
def test_time_wait_blocks_a_plain_bind(reuse: bool) -> None:
    port, _ = make_time_wait(reuse)
    rc, data = explain(str(port))
    assert rc == 1
    [tw] = kinds(data, "time-wait")
    assert tw["severity"] == "warning" and tw["detail"]["count"] >= 1
    assert tw["detail"]["bind_without_reuseaddr"] == "Address already in use"
    if reuse:  # the old socket set SO_REUSEADDR: a new one with it binds
        assert tw["detail"]["bind_with_reuseaddr"] is None
        assert "with SO_REUSEADDR it binds" in tw["text"]
    else:
        assert tw["detail"]["bind_with_reuseaddr"] == "Address already in use"
        assert "even with SO_REUSEADDR" in tw["text"]
    assert data["verdict"].startswith(
        f"{port}/tcp: nothing listens, but TIME_WAIT sockets make a plain bind fail"
    )
    [other] = kinds(data, "other-sockets")
    assert other["detail"]["states"]["TIME_WAIT"] >= 1


def logged(log: Path, kind: str, port: int) -> bool:
    if not log.exists():
        return False
    for line in log.read_text().splitlines():
        e = json.loads(line)
        if e["event"] == kind and e["socket"]["local"]["port"] == port and e["socket"]["proto"] == "tcp":
            return True
    return False


@pytest.mark.slow
def test_history_from_a_watch_log_names_the_last_holder(tmp_path: Path) -> None:
    log = tmp_path / "events.ndjson"
    watch = subprocess.Popen(
        [*portscope_cmd(), "watch", "--interval", "0.2", "--log", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.8)  # the first poll is the starting point
        with child_listener("tcp", "127.0.0.1", name="ps-hist-srv") as child:
            port, pid = child.port, child.pid
            wait_for(lambda: logged(log, "opened", port), timeout=15)
        wait_for(lambda: logged(log, "closed", port), timeout=15)
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=10)
    with open(log, "a") as f:
        f.write("not json\n")
    rc, data = explain(str(port), "--history", str(log))
    assert rc == 1  # nothing listens any more
    found = kinds(data, "history")
    last = [h for h in found if h["detail"].get("event")]
    assert last and last[0]["detail"]["pid"] == pid and last[0]["detail"]["name"] == "ps-hist-srv"
    assert last[0]["detail"]["event"] == "closed" and "ps-hist-srv" in last[0]["text"]
    assert any(h["detail"].get("skipped") == 1 for h in found)  # the bad line is counted, not fatal


@pytest.mark.parametrize(
    "args, needle",
    [
        (["abc"], "invalid port 'abc'"),
        (["70000"], "invalid port '70000'"),
        (["80", "--proto", "sctp"], "invalid choice: 'sctp'"),
        (["80", "--history", "/nonexistent/log"], "cannot read history file"),
        (["80", "--history", "/"], "not a regular file"),
        (["80", "--timeout", "99"], "at most 10"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    res = run_cli("explain", *args)
    assert res.returncode == 2, res
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_hostile_command_line_is_escaped() -> None:
    from tests.helpers import spawn_listener_with_args

    child = spawn_listener_with_args(["\x1b[2J[red]boom\n"], name="ps-explain-evil")
    try:
        res = run_cli("explain", str(child.port))
    finally:
        child.stop()
    assert res.returncode == 0
    assert "\x1b" not in res.stdout
    assert "\\x1b[2J[red]boom\\n" in res.stdout
    assert all(line.isprintable() for line in res.stdout.splitlines())


def test_nft_is_found_without_sbin_in_path() -> None:
    """A user's PATH often lacks /usr/sbin: nft is looked for there too."""
    from app.firewall import find_tool

    if not os.path.exists("/usr/sbin/nft"):
        pytest.skip("nft is not installed in /usr/sbin")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    code = "import shutil; from app.firewall import find_tool; print(shutil.which('nft'), find_tool('nft'))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert res.stdout.split() == ["None", "/usr/sbin/nft"], res.stderr
    assert find_tool("no-such-tool-portscope") is None


def test_explain_does_not_import_textual() -> None:
    from tests.integration.test_no_textual import probe

    with child_listener("tcp", "127.0.0.1") as child:
        rc, loaded = probe("explain", str(child.port))
    assert rc == 0 and loaded == []


UNIFIED = Path("/sys/fs/cgroup/unified")


@pytest.mark.skipif(
    not (UNIFIED / "cgroup.procs").exists() or os.geteuid() != 0,
    reason="needs root and a cgroup v2 hierarchy at /sys/fs/cgroup/unified",
)
def test_holder_in_a_service_cgroup_gets_the_stop_command() -> None:
    unit = f"ps-explain-{os.getpid()}.service"
    group = UNIFIED / unit
    group.mkdir()
    try:
        with child_listener("tcp", "127.0.0.1", name="ps-unit-srv") as child:
            (group / "cgroup.procs").write_text(str(child.pid))
            rc, data = explain(str(child.port))
        assert rc == 0
        [holder] = [h for h in kinds(data, "holder") if h["detail"]["pid"] == child.pid]
        service = holder["detail"]["service"]
        assert (service["kind"], service["name"]) == ("unit", unit)
        assert f"({unit})" in holder["text"]
        commands = [s["command"] for s in data["suggestions"]]
        assert commands[:2] == [f"systemctl stop {unit}", f"portscope kill {child.port}"]
    finally:
        wait_for(lambda: not (group / "cgroup.procs").read_text().strip(), timeout=10)
        group.rmdir()
