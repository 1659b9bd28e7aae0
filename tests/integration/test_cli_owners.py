"""The CLI side of owners (#12) with real processes and kernel objects: every holder of a pre-fork
listener, the service of a listener in a real cgroup, the network namespace of a listener inside
``unshare --net``, the label of a real ``ssh -L`` tunnel, and the services in ``watch``'s events."""

from __future__ import annotations

import csv
import io
import json
import os
import pwd
import re
import shutil
import subprocess
import sys

import pytest

from app.cli.color import STYLES
from app.cli.table import CSV_COLUMNS, CSV_NETNS_COLUMNS, SOCKET_COLUMNS
from tests.cgroups import MOUNTS, moved_into, needs_root
from tests.helpers import (
    child_listener,
    echo,
    free_port,
    growing_listener,
    listening_ports,
    more,
    netns_listener,
    prefork_listener,
    run_cli,
    ssh_client,
    stop_process,
    table_cell,
    table_columns,
    tcp_server,
    wait_for,
    watching,
)
from tests.unprivileged import unprivileged_runner, why_not

USER = pwd.getpwuid(os.getuid()).pw_name
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux backend")

HIERARCHY = next((k for k in ("v2", "v1-systemd") if k in MOUNTS), None)
needs_cgroups = pytest.mark.skipif(HIERARCHY is None, reason="no cgroup v2 or v1 name=systemd mount")
needs_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
    reason="needs root, unshare and ip (a listener in a private network namespace)",
)


OURS = re.compile("|".join(re.escape(f"\x1b[{code}m") for code in [*STYLES.values(), "0"]))


def strip_ours(text: str) -> str:
    """``text`` without the colour sequences portscope writes (anything else stays)."""
    return OURS.sub("", text)


def rows_on_port(table: str, port: int) -> tuple[dict[str, int], list[str]]:
    lines = table.splitlines()
    return table_columns(lines[0]), [line for line in lines[1:] if f":{port} " in line]


def csv_records(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- every holder -------------------------------------------------------------------------------


def test_a_prefork_listener_shows_its_master_plus_n_and_who_lists_every_holder() -> None:
    with prefork_listener(3) as (master, port, kids):
        res = run_cli("list", "--port", str(port))
        assert res.returncode == 0, res.stderr
        cols, [row] = rows_on_port(res.stdout, port)
        assert tuple(res.stdout.splitlines()[0].split()) == SOCKET_COLUMNS
        assert table_cell(row, cols, "PID") == str(master.pid)  # the master, not a worker
        assert re.fullmatch(r"\S+ \+3", table_cell(row, cols, "PROCESS")), row
        [rec] = csv_records(run_cli("list", "--port", str(port), "--csv").stdout)
        assert rec["holders"] == " ".join(map(str, [master.pid, *kids])) and rec["pid"] == str(master.pid)

        who = run_cli("who", str(port))
        assert who.returncode == 0, who.stderr
        lines = who.stdout.splitlines()
        at = next(i for i, line in enumerate(lines) if f"127.0.0.1:{port}" in line and "LISTEN" in line)
        holders = lines[at + 1 : at + 5]
        assert [int(re.search(r"pid (\d+)", h).group(1)) for h in holders] == [master.pid, *kids]  # type: ignore[union-attr]
        assert holders[0].rstrip().endswith("primary") and "├─" in holders[0] and "└─" in holders[-1]
        assert all(f"({USER})" in h for h in holders)
        assert all("primary" not in h for h in holders[1:])


# --- services -----------------------------------------------------------------------------------


@needs_root
@needs_cgroups
def test_service_column_and_csv_name_the_unit_of_a_listener_in_a_unit_cgroup() -> None:
    assert HIERARCHY is not None
    with (
        child_listener("tcp", "127.0.0.1", name="ps-cli-unit") as child,
        moved_into(child, HIERARCHY, "ps-cli-demo.service"),
    ):
        res = run_cli("list", "--port", str(child.port))
        cols, [row] = rows_on_port(res.stdout, child.port)
        assert table_cell(row, cols, "SERVICE") == "ps-cli-demo.service"
        assert table_cell(row, cols, "PROCESS") == "ps-cli-unit"  # not shared, no forward: the name alone
        [rec] = csv_records(run_cli("list", "--port", str(child.port), "--csv").stdout)
        assert rec["service"] == "ps-cli-demo.service" and rec["holders"] == str(child.pid)
        assert rec["forward"] == ""
        assert tuple(rec) == CSV_COLUMNS  # without --netns all / --stats: the base columns


@needs_root
@needs_cgroups
def test_a_hostile_unit_name_is_escaped_in_the_table_and_csv() -> None:
    assert HIERARCHY is not None
    evil = "ps-\x1b]0;pwned\x07\x1b[31mred.service"
    with child_listener("tcp", "127.0.0.1", name="ps-cli-evil") as child, moved_into(child, HIERARCHY, evil):
        res = run_cli("list", "--port", str(child.port), "--color", "always")
        assert "\x07" not in res.stdout and "\x1b]" not in res.stdout
        assert "ps-\\x1b]0;pwned\\x07\\x1b[31mred.service" in res.stdout
        # the only escape sequences are ours (SGR around whole cells), none from the unit name
        assert "\x1b" not in strip_ours(res.stdout) and "\x1b[" in res.stdout
        out = run_cli("list", "--port", str(child.port), "--csv").stdout
        assert "\x1b" not in out and "\\x1b]0;pwned" in out


# --- namespaces ---------------------------------------------------------------------------------


@needs_unshare
def test_netns_all_lists_a_listener_inside_unshare_net_with_its_namespace() -> None:
    with netns_listener("unshare", "--net") as (proc, port):
        plain = run_cli("list", "--port", str(port))
        assert plain.stdout == "" and "no sockets match" in plain.stderr  # not in our namespace

        res = run_cli("list", "--netns", "all", "--port", str(port))
        assert res.returncode == 0, res.stderr
        cols, rows = rows_on_port(res.stdout, port)
        [row] = [r for r in rows if table_cell(r, cols, "PID") == str(proc.pid)]
        assert "NETNS" in cols and cols["NETNS"] < cols["LOCAL"]
        label = table_cell(row, cols, "NETNS")
        assert label and label != "current"

        data = json.loads(run_cli("list", "--netns", "all", "--port", str(port), "--json").stdout)
        [sock] = [s for s in data["sockets"] if s["pid"] == proc.pid]
        assert sock["netns"]["current"] is False and sock["key"].startswith(f"@{sock['netns']['inode']}/")
        assert sock["netns"]["label"] == label

        recs = csv_records(run_cli("list", "--netns", "all", "--port", str(port), "--csv").stdout)
        [rec] = [r for r in recs if r["pid"] == str(proc.pid)]
        assert tuple(rec) == CSV_COLUMNS + CSV_NETNS_COLUMNS
        assert rec["netns"] == str(sock["netns"]["inode"]) and rec["netns_label"] == label

        who = run_cli("who", str(port), "--netns", "all")
        assert who.returncode == 0 and str(proc.pid) in who.stdout and "NETNS" in who.stdout
        assert run_cli("who", str(port)).returncode == 1  # nothing on that port in our namespace


@needs_unshare
def test_watch_netns_all_reports_a_new_listener_in_another_namespace() -> None:
    with netns_listener("unshare", "--net") as (proc, _port), watching("--netns", "all", "--json") as live:
        port = more(proc)

        def opened(line: str) -> bool:
            ev = json.loads(line)
            return bool(ev["event"] == "opened" and ev["socket"]["local"]["port"] == port)

        ev = json.loads(live.stdout_until(opened))
        assert ev["socket"]["netns"]["current"] is False and ev["socket"]["pid"] == proc.pid


@pytest.mark.skipif(why_not() is not None, reason=why_not() or "")
@needs_unshare
def test_netns_all_unprivileged_reads_its_own_and_says_what_it_skipped() -> None:
    with netns_listener("unshare", "--net") as (_proc, port), unprivileged_runner() as prefix:
        res = subprocess.run(
            [*prefix, "list", "--netns", "all", "--json"], capture_output=True, text=True, timeout=60, cwd="/"
        )
    assert res.returncode == 0, res.stderr
    assert "portscope: skipped " in res.stderr  # root's namespaces: counted, with why
    data = json.loads(res.stdout)
    assert not [s for s in data["sockets"] if s["local"]["port"] == port and not s["netns"]["current"]]


def test_netns_all_on_the_psutil_backend_says_it_lists_this_namespace_only() -> None:
    res = run_cli("list", "--netns", "all", env={**os.environ, "PORTSCOPE_COLLECTOR": "psutil"})
    assert res.returncode == 0
    assert "--netns all needs the Linux netlink backend: only this network namespace is listed" in res.stderr
    assert "Traceback" not in res.stderr


# --- forwarders ---------------------------------------------------------------------------------


def test_an_ssh_tunnel_shows_its_target_beside_the_process(sshd: tuple[int, str]) -> None:
    with tcp_server(echo) as target:
        local = free_port()
        client = ssh_client(sshd, "-N", "-L", f"127.0.0.1:{local}:127.0.0.1:{target}")
        try:
            wait_for(lambda: client.poll() is not None or local in listening_ports(client.pid), timeout=20)
            assert client.poll() is None
            label = f"ssh tunnel → 127.0.0.1:{target} via root@127.0.0.1 port {sshd[0]}"
            res = run_cli("list", "--port", str(local))
            cols, [row] = rows_on_port(res.stdout, local)
            assert table_cell(row, cols, "PROCESS") == f"ssh ({label})"
            [rec] = csv_records(run_cli("list", "--port", str(local), "--csv").stdout)
            assert rec["forward"] == label and rec["process"] == "ssh"
            who = run_cli("who", str(local))
            assert f"ssh ({label})" in who.stdout
        finally:
            stop_process(client)  # type: ignore[arg-type]


# --- watch names the service --------------------------------------------------------------------


@needs_root
@needs_cgroups
def test_watch_events_carry_the_service_in_text_and_json() -> None:
    assert HIERARCHY is not None
    with (
        growing_listener("ps-watch-svc") as child,
        moved_into(child, HIERARCHY, "ps-watch-demo.service"),
        watching("--json") as live,
        watching() as text,
    ):
        port = more(child.proc)
        ev = json.loads(live.stdout_until(lambda line: json.loads(line)["socket"]["local"]["port"] == port))
        assert ev["event"] == "opened"
        assert ev["socket"]["service"]["name"] == "ps-watch-demo.service"
        line = text.stdout_until(lambda line: f"127.0.0.1:{port}" in line)
        assert line.split()[2] == "opened" and "[ps-watch-demo.service]" in line
        child.proc.kill()
        child.proc.wait(timeout=10)
        # the closed socket is shown as last seen: still with its service
        closed = json.loads(
            live.stdout_until(
                lambda line: (
                    (e := json.loads(line))["event"] == "closed" and e["socket"]["local"]["port"] == port
                )
            )
        )
        assert closed["socket"]["service"]["name"] == "ps-watch-demo.service"
        [owner] = closed["socket"]["owners"]
        assert owner["pid"] == child.pid == closed["socket"]["pid"]
