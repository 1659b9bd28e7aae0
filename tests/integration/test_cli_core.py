"""`portscope list`, `who` and `ifaces` run as the installed command against real loopback sockets."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import netifaces
import pytest

from app import __version__
from app.cli.table import CSV_COLUMNS, SOCKET_COLUMNS
from app.ports import port_range
from tests.helpers import (
    Child,
    child_listener,
    free_port,
    listening_socket,
    needs_ipv6,
    portscope_cmd,
    run_cli,
    spawn_listener_with_args,
)

ENDPOINTS = [
    pytest.param("tcp", "127.0.0.1", id="tcp4"),
    pytest.param("udp", "127.0.0.1", id="udp4"),
    pytest.param("tcp", "::1", id="tcp6", marks=needs_ipv6),
    pytest.param("udp", "::1", id="udp6", marks=needs_ipv6),
]
# Every CLI test runs with whatever collector the platform picks; the main ones also with psutil's.
COLLECTORS = [pytest.param("", id="default"), pytest.param("psutil", id="psutil")]


def cli(*args: str, collector: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PORTSCOPE_COLLECTOR": collector}
    res = run_cli(*args, env=env)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def stderr_lines(res: subprocess.CompletedProcess[str]) -> list[str]:
    return res.stderr.splitlines()


# -- who ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("collector", COLLECTORS)
@pytest.mark.parametrize(("proto", "host"), ENDPOINTS)
def test_who_json_reports_the_owner(proto: str, host: str, collector: str) -> None:
    with child_listener(proto, host, name="ps-who-child") as child:
        res = cli("who", str(child.port), "--json", collector=collector)
        assert res.returncode == 0, res.stderr
        data = json.loads(res.stdout)
        assert data["port"] == child.port
        [s] = [s for s in data["sockets"] if s["proto"] == proto]
        assert s["pid"] == child.pid
        assert s["process"]["pid"] == child.pid and s["process"]["name"] == "ps-who-child"
        assert s["local"] == {"ip": host, "port": child.port}
        assert s["remote"] is None
        assert s["state"] == ("LISTEN" if proto == "tcp" else "BOUND") and s["listening"] is True
        assert s["family"] == ("ipv6" if ":" in host else "ipv4")
        assert s["range"] == port_range(child.port).value
        assert s["exposure"] == {"kind": "loopback", "interfaces": [], "label": "loopback"}


def test_who_table_lists_listener_then_connections() -> None:
    with ExitStack() as stack:
        srv = stack.enter_context(listening_socket("tcp", "127.0.0.1"))
        port = srv.getsockname()[1]
        client = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        stack.enter_context(srv.accept()[0])
        res = cli("who", str(port))
        assert res.returncode == 0, res.stderr
        header, heading, *rows = res.stdout.splitlines()
        assert header.split() == list(SOCKET_COLUMNS)
        assert heading.startswith(f"── port {port}: {port_range(port).heading}")  # the range, as in JSON
        assert heading.endswith("(2 sockets)")
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        assert (f", in the OS ephemeral range {lo}-{hi} " in heading) == (lo <= port <= hi)
        assert [r.split()[3] for r in rows] == ["LISTEN", "ESTABLISHED"]
        assert rows[1].split()[2] == f"127.0.0.1:{client.getsockname()[1]}"
        assert all(r.split()[5] == str(os.getpid()) for r in rows)

        data = json.loads(cli("who", str(port), "--json").stdout)
        assert [s["state"] for s in data["sockets"]] == ["LISTEN", "ESTABLISHED"]


def test_who_free_port_exits_1() -> None:
    port = free_port()
    res = cli("who", str(port))
    assert res.returncode == 1
    assert res.stdout == ""
    assert f"nothing uses port {port} ({port_range(port).heading}" in res.stderr
    res = cli("who", str(port), "--json")
    assert res.returncode == 1
    assert json.loads(res.stdout)["sockets"] == []


def test_who_proto_filter() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        assert cli("who", str(child.port), "--proto", "tcp").returncode == 0
        res = cli("who", str(child.port), "--proto", "udp")
        assert res.returncode == 1 and f"port {child.port}/udp" in res.stderr


# -- list --------------------------------------------------------------------------------------------


@pytest.fixture
def tcp_child() -> Iterator[Child]:
    with child_listener("tcp", "127.0.0.1", name="ps-list-child") as child:
        yield child


@pytest.mark.parametrize("collector", COLLECTORS)
def test_list_json_has_the_child_with_owner(tcp_child: Child, collector: str) -> None:
    child = tcp_child
    res = cli("list", "--json", collector=collector)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert all(s["listening"] for s in data["sockets"])  # listeners by default
    [s] = [s for s in data["sockets"] if s["local"]["port"] == child.port]
    assert s["pid"] == child.pid and s["process"]["name"] == "ps-list-child"
    assert s["range"] == port_range(s["local"]["port"]).value
    assert s["exposure"]["kind"] == "loopback"
    assert isinstance(s["in_ephemeral"], bool)


def test_list_filters(tcp_child: Child) -> None:
    child = tcp_child
    port, pid = child.port, child.pid

    def ports(*args: str) -> set[int]:
        res = cli("list", "--json", *args)
        assert res.returncode == 0, res.stderr
        return {s["local"]["port"] for s in json.loads(res.stdout)["sockets"]}

    assert ports("--port", str(port)) == {port}
    assert ports("--pid", str(pid)) == {port}
    assert port not in ports("--proto", "udp")
    assert port in ports("--proto", "tcp")
    rng = port_range(port).value
    assert port in ports("--range", rng)
    other = "well-known" if rng != "well-known" else "dynamic"
    assert port not in ports("--range", other)
    assert port not in ports("--exposed")  # bound to loopback only
    assert port not in ports("--connections")
    assert port in ports("--all")


def test_list_connections_and_all() -> None:
    with ExitStack() as stack:
        srv = stack.enter_context(listening_socket("tcp", "127.0.0.1"))
        port = srv.getsockname()[1]
        client = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        stack.enter_context(srv.accept()[0])
        cport = client.getsockname()[1]
        mypid = str(os.getpid())

        def states(*args: str) -> set[tuple[int, str]]:
            res = cli("list", "--json", "--pid", mypid, *args)
            assert res.returncode == 0, res.stderr
            return {(s["local"]["port"], s["state"]) for s in json.loads(res.stdout)["sockets"]}

        listening, connections, everything = states(), states("--connections"), states("--all")
        assert (port, "LISTEN") in listening and not {st for _, st in listening} - {"LISTEN", "BOUND"}
        assert {(port, "ESTABLISHED"), (cport, "ESTABLISHED")} <= connections
        assert (port, "LISTEN") not in connections
        assert listening | connections == everything


def test_list_table_is_grouped_by_range_and_aligned(tcp_child: Child) -> None:
    child = tcp_child
    res = cli("list")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = lines[0]
    assert header.split() == list(SOCKET_COLUMNS)
    headings = [ln for ln in lines if ln.startswith("── ")]
    order = ["well-known", "registered", "dynamic"]
    names = [h.split()[1] for h in headings]
    assert names == sorted(set(names), key=order.index)  # each range once, in order
    [row] = [ln for ln in lines if f"127.0.0.1:{child.port} " in ln]
    idx = lines.index(row)
    heading = next(ln for ln in reversed(lines[:idx]) if ln.startswith("── "))
    assert heading.split()[1] == port_range(child.port).value
    # columns line up under their headers
    for col, value in (("PID", str(child.pid)), ("PROCESS", "ps-list-child")):
        assert row[header.index(col) :].startswith(value)


def test_list_csv(tcp_child: Child) -> None:
    child = tcp_child
    res = cli("list", "--csv", "--port", str(child.port))
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(io.StringIO(res.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    [rec] = [dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]]
    assert rec["local_ip"] == "127.0.0.1" and rec["local_port"] == str(child.port)
    assert rec["pid"] == str(child.pid) and rec["process"] == "ps-list-child"
    assert rec["state"] == "LISTEN" and rec["listening"] == "yes" and rec["exposure"] == "loopback"


def test_csv_neutralises_a_formula_process_name() -> None:
    with child_listener("tcp", "127.0.0.1", name="=HYPERLINK(1)") as child:
        res = cli("list", "--csv", "--pid", str(child.pid))
        [rec] = list(csv.DictReader(io.StringIO(res.stdout)))
        assert rec["process"] == "'=HYPERLINK(1)"


# -- hostile process names and command lines ----------------------------------------------------------

HOSTILE_ARGS = ["[bold]boom[/bold]", "\x1b[31mred", "\x1b]0;title\x07", "ctl\x01\x7f", "A" * 10_000]
HOSTILE_NAME = "ps-\x1b[31mevil"  # 12 bytes: fits the kernel's 15-byte comm


@pytest.fixture(scope="module")
def hostile() -> Iterator[Child]:
    child = spawn_listener_with_args(HOSTILE_ARGS, name=HOSTILE_NAME)
    try:
        yield child
    finally:
        child.stop()


def assert_no_raw_control(text: str) -> None:
    bad = [c for c in text if (ord(c) < 0x20 and c not in "\n") or 0x7F <= ord(c) < 0xA0]
    assert not bad, bad[:5]


def test_hostile_text_is_escaped_in_the_table(hostile: Child) -> None:
    res = cli("list", "--pid", str(hostile.pid))
    assert res.returncode == 0, res.stderr
    assert_no_raw_control(res.stdout)
    [row] = res.stdout.splitlines()[2:]
    assert "ps-\\x1b[31mevil" in row
    assert "[bold]boom[/bold]" in row and "\\x1b[31mred" in row and "\\x1b]0;title\\x07" in row
    assert "ctl\\x01\\x7f" in row
    assert "A" * 100 in row and "A" * 10_000 not in row and row.endswith("…")  # the command is cut
    assert len(row) < 1000


def test_hostile_text_is_escaped_in_csv_and_kept_whole_in_json(hostile: Child) -> None:
    pid = str(hostile.pid)
    res = cli("list", "--csv", "--pid", pid)
    assert_no_raw_control(res.stdout)
    [rec] = list(csv.DictReader(io.StringIO(res.stdout)))
    assert rec["process"] == "ps-\\x1b[31mevil"
    assert "\\x1b]0;title\\x07" in rec["command"] and "ctl\\x01\\x7f" in rec["command"]
    assert rec["command"].endswith("A" * 10_000)  # CSV is not cut short

    res = cli("list", "--json", "--pid", pid)
    assert_no_raw_control(res.stdout)
    [s] = json.loads(res.stdout)["sockets"]
    assert s["process"]["name"] == HOSTILE_NAME
    assert s["process"]["cmdline"][-len(HOSTILE_ARGS) :] == HOSTILE_ARGS


def test_hostile_who_table(hostile: Child) -> None:
    res = cli("who", str(hostile.port))
    assert res.returncode == 0
    assert_no_raw_control(res.stdout)
    assert "ps-\\x1b[31mevil" in res.stdout


# -- bad input: one line on stderr, exit 2 -----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["who", "abc"],
        ["who", "70000"],
        ["who", "-1"],
        ["who", "0"],
        ["who", ""],
        ["who"],
        ["who", "80", "81"],
        ["who", "80", "--proto", "sctp"],
        ["list", "--port", "abc"],
        ["list", "--port", "-1"],
        ["list", "--port", "0"],
        ["list", "--port", "70000"],
        ["list", "--port", ""],
        ["list", "--range", "foo"],
        ["list", "--range", ""],
        ["list", "--pid", "x"],
        ["list", "--pid", "0"],
        ["list", "--json", "--csv"],
        ["list", "--listening", "--all"],
        ["list", "unexpected\nsecond line\x1b[2J"],
        ["no-such-command"],
        ["--interval", "0"],
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str]) -> None:
    res = cli(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert len(stderr_lines(res)) == 1, res.stderr
    assert res.stdout == ""
    assert "\x1b" not in res.stderr


def test_who_minus_one_is_an_invalid_port_not_an_option() -> None:
    res = cli("who", "-1")
    assert res.returncode == 2
    [line] = stderr_lines(res)
    assert "invalid port '-1'" in line and "1 to 65535" in line


def test_unknown_range_names_the_choices() -> None:
    [line] = stderr_lines(cli("list", "--range", "foo"))
    assert "unknown range 'foo'" in line and "well-known, registered or dynamic" in line


@pytest.mark.parametrize("command", [[], ["list"], ["who"], ["ifaces"]])
def test_help_and_version_everywhere(command: list[str]) -> None:
    res = cli(*command, "--help")
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout.startswith(f"usage: portscope {' '.join(command)}".rstrip())
    res = cli(*command, "--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"portscope {__version__}"


def test_top_level_help_lists_the_core_commands() -> None:
    out = cli("--help").stdout
    for name in ("list", "who", "ifaces"):
        assert f"    {name} " in out


# -- output plumbing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["list", "--all"], ["list", "--all", "--json"], ["list", "--csv"], ["ifaces"]]
)
def test_closed_stdout_pipe_is_quiet(args: list[str]) -> None:
    """`portscope list | head -1` where head has gone: no traceback, no 'Exception ignored'."""
    with listening_socket("tcp", "127.0.0.1"):  # at least one row
        r, w = os.pipe()
        os.close(r)
        try:
            res = subprocess.run(
                [*portscope_cmd(), *args], stdout=w, stderr=subprocess.PIPE, text=True, timeout=60
            )
        finally:
            os.close(w)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr
    assert all(ln.startswith("portscope: ") for ln in res.stderr.splitlines()), res.stderr


def test_pipe_into_head() -> None:
    with listening_socket("tcp", "127.0.0.1"):
        producer = subprocess.Popen([*portscope_cmd(), "list", "--all"], stdout=subprocess.PIPE)
        assert producer.stdout is not None
        head = subprocess.run(["head", "-1"], stdin=producer.stdout, capture_output=True, timeout=60)
        producer.stdout.close()
        assert producer.wait(timeout=60) == 0
    assert head.stdout.decode().split() == list(SOCKET_COLUMNS)


def test_warnings_go_to_stderr_data_to_stdout(tcp_child: Child) -> None:
    res = cli("list", "--json")
    json.loads(res.stdout)  # nothing else on stdout
    for line in stderr_lines(res):
        assert line.startswith("portscope: ")
    data = json.loads(res.stdout)
    for warning in data["warnings"]:
        assert f"portscope: {warning}" in res.stderr


def test_no_match_says_so_on_stderr() -> None:
    res = cli("list", "--port", str(free_port()))
    assert res.returncode == 0 and res.stdout == ""
    assert "portscope: no sockets match" in res.stderr


def test_ascii_only_output_encoding_does_not_crash(tcp_child: Child) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    res = run_cli("list", env=env)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "\\u2500" in res.stdout  # the heading's box-drawing line, escaped


# -- ifaces ------------------------------------------------------------------------------------------


def test_ifaces_json_and_table() -> None:
    res = cli("ifaces", "--json")
    assert res.returncode == 0, res.stderr
    ifaces = {i["name"]: i for i in json.loads(res.stdout)["interfaces"]}
    assert set(netifaces.interfaces()) <= set(ifaces)
    [lo] = [i for i in ifaces.values() if any(a["address"] == "127.0.0.1" for a in i["addresses"])]
    assert lo["up"] is True and lo["loopback"] is True and lo["mtu"] > 0
    v4 = next(a for a in lo["addresses"] if a["address"] == "127.0.0.1")
    assert v4["family"] == "ipv4" and v4["prefixlen"] == 8
    default: Any = netifaces.gateways().get("default", {})
    for fam, (gw, name, *_) in default.items():
        assert gw in ifaces[name]["default_gateways"], fam

    res = cli("ifaces")
    assert res.returncode == 0
    header, *rows = res.stdout.splitlines()
    assert header.split() == ["NAME", "STATE", "MTU", "SPEED", "GATEWAY", "RX", "TX", "ADDRESSES"]
    assert any(r.startswith(lo["name"] + " ") and "127.0.0.1/8" in r for r in rows)
    assert len(rows) == len(ifaces)
