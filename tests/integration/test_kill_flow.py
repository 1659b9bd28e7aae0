"""The kill flow against real process shapes: pre-fork servers, supervisors that restart their child,
zombie thread-group leaders, trees, hidepid and other users' processes."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from app import kill, killplan
from app.collector import PsutilCollector
from app.model import Snapshot, Sock
from tests.cgroups import HIERARCHIES, MOUNTS, moved_into, needs_root
from tests.helpers import (
    Child,
    kill_quietly,
    prefork_server,
    run_cli,
    spawn_zombie_leader,
    supervised_listener,
    wait_for,
)
from tests.unprivileged import NOBODY, unprivileged_runner, why_not

# --- the plan ------------------------------------------------------------------------------------


def test_plan_of_a_prefork_server_puts_the_master_first_and_counts_the_workers(tmp_path: Path) -> None:
    with prefork_server(str(tmp_path), workers=3) as srv:
        plan = killplan.plan_port(PsutilCollector().collect(), srv.port)
        assert [t.pid for t in plan.primary] == [srv.pid]
        assert sorted(t.pid for t in plan.workers) == sorted(srv.workers)
        assert plan.summary() == f"pid {srv.pid} (ps-prefork) + 3 workers"
        assert all(f"tcp 127.0.0.1:{srv.port} LISTEN" in t.ports for t in plan.targets)
        res = run_cli("kill", str(srv.port), "--dry-run")
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(f"port {srv.port}: pid {srv.pid} (ps-prefork) + 3 workers\n")
        assert srv.proc.poll() is None and srv.signals(srv.pid) == []  # a dry run sends nothing


def test_primary_owner_rule() -> None:
    """The master is the holder whose parent does not hold the socket; unrelated holders of one
    socket tie to the lowest pid; a worker's own connection belongs to the master's plan."""
    parents = {10: 1, 11: 10, 12: 10, 20: 1, 30: 5, 31: 1}
    assert killplan.primary_owner([12, 11, 10], parents.get) == 10
    assert killplan.primary_owner([31, 30], parents.get) == 30  # unrelated: the lowest pid
    assert killplan.primary_owner([], parents.get) is None
    # listener held by master 10 and workers 11, 12; a connection held by worker 11 only
    assert killplan.primaries({0: {10, 11, 12}, 1: {11}}, parents.get) == {10}
    # two unrelated servers on one port (IPv4 and IPv6 listeners): both are primary owners
    assert killplan.primaries({0: {10, 11}, 1: {20}}, parents.get) == {10, 20}


# --- pre-fork: the master first, the workers only after the wait ----------------------------------


def test_cli_kill_of_a_prefork_port_signals_the_master_only(tmp_path: Path) -> None:
    with prefork_server(str(tmp_path), workers=2) as srv:
        res = run_cli("kill", str(srv.port), "--yes")
        assert res.returncode == 0, res.stderr
        assert f"port {srv.port} is free" in res.stdout
        assert f"sent SIGTERM to pid {srv.pid} (ps-prefork)\n" in res.stdout
        assert "worker" not in res.stdout.split("\n")[0]
        assert [s[0] for s in srv.signals(srv.pid)] == [signal.SIGTERM]
        for w in srv.workers:  # each worker was stopped by its master (SIGUSR1), never by us
            assert [(signo, sender) for signo, sender, _ in srv.signals(w)] == [(signal.SIGUSR1, srv.pid)]
        assert srv.proc.wait(timeout=5) == 0


def test_workers_of_a_master_that_ignores_term_are_signalled_only_after_the_timeout(tmp_path: Path) -> None:
    with prefork_server(str(tmp_path), workers=2, mode="ignore-term") as srv:
        res = run_cli("kill", str(srv.port), "--yes", "--timeout", "1")
        assert res.returncode == 1, res.stderr  # the master still holds the port
        [(_, _, master_got_term)] = srv.signals(srv.pid)
        for w in srv.workers:
            [(signo, sender, when)] = srv.signals(w)
            assert signo == signal.SIGTERM and sender not in (0, srv.pid)  # from portscope
            assert when - master_got_term >= 0.9  # not before the master's wait ran out
        assert "sent SIGTERM to 2 workers still running after 1s" in res.stdout
        assert f"pid {srv.pid} (ps-prefork) is still running after 1s" in res.stderr
        assert srv.proc.poll() is None
        # and --escalate ends the master with SIGKILL, once the wait is over
        res = run_cli("kill", str(srv.port), "--yes", "--timeout", "0.5", "--escalate")
        assert res.returncode == 0, res.stderr
        assert srv.proc.wait(timeout=5) == -signal.SIGKILL
        assert f"port {srv.port} is free" in res.stdout


# --- respawns ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_reports_a_supervisor_that_restarts_the_killed_child() -> None:
    with supervised_listener() as sup:
        first = sup.children[0]
        wait_for(lambda: killplan.plan_port(PsutilCollector().collect(), sup.port).pids == [first])
        res = run_cli("kill", str(sup.port), "--yes")
        assert res.returncode == 1, (res.stdout, res.stderr)
        again = sup.next_child()
        assert again != first
        assert f"sent SIGTERM to pid {first} (python" in res.stdout
        line = next(x for x in res.stderr.splitlines() if "respawned" in x)
        assert f"port {sup.port} respawned as pid {again} (python" in line
        assert ") by python" in line and f"(pid {sup.pid})" in line
        assert f"to stop it for good: portscope kill --pid {sup.pid} --tree" in res.stderr
        assert "is free" not in res.stdout
        # the JSON says the same
        res = run_cli("kill", str(sup.port), "--yes", "--json")
        assert res.returncode == 1
        doc = json.loads(res.stdout)
        assert doc["ok"] is False and doc["port_free"] is False
        [respawn] = doc["respawned"]
        assert respawn["pid"] == sup.next_child() and respawn["parent_pid"] == sup.pid
        assert respawn["stop"] == f"portscope kill --pid {sup.pid} --tree"


class _OwnerUnseenAtFirst:
    """Fault injection: the first look that finds a listener on ``port`` names no owner for it, as
    a look does when the process bound the port after the look listed the processes (a supervisor
    restarting its child at that moment). Every later look is the real collector's."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inner = PsutilCollector()
        self.hidden = 0

    def collect(self, *, port: int | None = None) -> Snapshot:
        snap = self.inner.collect(port=port)
        mine = [s for s in snap.sockets if s.laddr.port == self.port and s.listening]
        if self.hidden or not mine:
            return snap
        self.hidden += 1
        socks = tuple(
            Sock(s.proto, s.family, s.laddr, s.raddr, s.status, None, s.inode, s.netns) if s in mine else s
            for s in snap.sockets
        )
        return dataclasses.replace(snap, sockets=socks)


def test_a_respawn_whose_owner_a_look_missed_is_still_named() -> None:
    """The freed port is watched for a restart: a look that sees the restarted listener before it
    can see its process ("an unseen owner") looks again within the watch, instead of reporting
    the port held by nobody known."""
    with supervised_listener() as sup:
        first = sup.children[0]
        plan = killplan.plan_port(PsutilCollector().collect(), sup.port)
        assert plan.pids == [first]
        looks = _OwnerUnseenAtFirst(sup.port)
        with kill.KillFlow(plan, timeout=3) as flow:
            flow.signal()
            report = flow.finish(looks)
        again = sup.next_child()
        assert looks.hidden == 1  # the fault was injected
        assert [r.pid for r in report.respawns] == [again]
        assert report.holders == []


def test_a_service_describer_names_the_unit_and_its_stop_command() -> None:
    with supervised_listener() as sup:
        first = sup.children[0]
        plan = killplan.plan_port(PsutilCollector().collect(), sup.port)
        assert plan.pids == [first]
        hint = kill.ServiceHint("demo.service", "systemctl stop demo.service")
        with kill.KillFlow(plan, timeout=3, describe=lambda pid: hint) as flow:
            flow.signal()
            report = flow.finish(PsutilCollector())
        again = sup.next_child()
        [r] = report.respawns
        assert r.pid == again and r.ppid == sup.pid
        assert r.parent and r.name
        assert r.describe(plan.what) == (
            f"port {sup.port} respawned as pid {again} ({r.name}) by {r.parent} (pid {sup.pid}; demo.service)"
        )
        assert "to stop it for good: systemctl stop demo.service" in report.lines()


# --- #10: gone means the kernel says so -----------------------------------------------------------


def test_cli_kill_pid_of_a_zombie_leader_signals_it_and_waits_for_the_real_exit() -> None:
    child = spawn_zombie_leader()
    try:
        res = run_cli("kill", "--pid", str(child.pid), "--yes")
        assert res.returncode == 0, res.stderr
        assert "already exited" not in res.stderr + res.stdout
        assert f"sent SIGTERM to pid {child.pid}" in res.stdout
        assert child.proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        child.stop()


def test_cli_kill_port_of_a_zombie_leader_frees_it() -> None:
    child = spawn_zombie_leader()
    try:
        res = run_cli("kill", str(child.port), "--yes")
        assert res.returncode == 0, res.stderr
        assert f"sent SIGTERM to pid {child.pid}" in res.stdout
        assert f"port {child.port} is free" in res.stdout
        assert child.proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        child.stop()


_HIDEPID = why_not() or (None if shutil.which("unshare") else "unshare (util-linux) is not installed")


@pytest.mark.slow
@pytest.mark.skipif(_HIDEPID is not None, reason=_HIDEPID or "")
def test_under_hidepid_another_users_pid_is_denied_not_gone() -> None:
    """/proc mounted with hidepid=2 hides root's process from nobody: it still exists (kill(pid, 0)
    is EPERM), so `kill --pid` says permission denied and exits 1, never "does not exist", exit 0."""
    from tests.helpers import child_listener

    with child_listener("tcp", "127.0.0.1", name="ps-hidden") as child, unprivileged_runner() as prefix:

        def hidden(*args: str) -> subprocess.CompletedProcess[str]:
            script = "mount -t proc -o hidepid=2 proc /proc && exec " + shlex.join([*prefix, *args])
            return subprocess.run(
                ["unshare", "--mount", "sh", "-c", script],
                capture_output=True,
                text=True,
                timeout=60,
                cwd="/",
            )

        res = hidden("kill", "--pid", str(child.pid), "--yes")
        assert res.returncode == 1, (res.stdout, res.stderr)
        assert "does not exist" not in res.stderr and "Traceback" not in res.stderr
        assert f"permission denied: pid {child.pid} belongs to another user" in res.stderr
        assert "hidepid" in res.stderr and "try sudo" in res.stderr
        res = hidden("kill", str(child.port), "--yes")
        assert res.returncode == 1, (res.stdout, res.stderr)
        assert "no visible owner" in res.stderr and "try sudo" in res.stderr
        assert child.proc.poll() is None


def _dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- #10: messages that say what happened ----------------------------------------------------------

# A parent with one child that ignores SIGTERM (and one that does not); prints the parent's pid line:
# "child_ignoring child_plain".
_STUBBORN_TREE = r"""
import signal, subprocess, sys, time
idle = "print(1, flush=True)\nfor _ in range(3000): time.sleep(0.1)"
stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + idle
plain = "import time\n" + idle
a = subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE, text=True)
b = subprocess.Popen([sys.executable, "-c", plain], stdout=subprocess.PIPE, text=True)
a.stdout.readline(); b.stdout.readline()
print(a.pid, b.pid, flush=True)
for _ in range(3000): time.sleep(0.1)
"""


def test_tree_survivor_is_reported_under_its_own_pid() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _STUBBORN_TREE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    stubborn, plain = (int(x) for x in proc.stdout.readline().split())
    try:
        res = run_cli("kill", "--pid", str(proc.pid), "--tree", "--yes", "--timeout", "0.5")
        assert res.returncode == 1, res.stderr
        assert f"pid {stubborn} (" in res.stderr and "is still running after 0.5s" in res.stderr
        assert f"pid {proc.pid} (" not in res.stderr  # the parent exited: it is not the survivor
        assert f"still running: pid {stubborn} (" in res.stdout
        assert proc.wait(timeout=5) == -signal.SIGTERM
        wait_for(lambda: _dead(plain))
        assert psutil.Process(stubborn).status() != "zombie"
    finally:
        for pid in (stubborn, plain, proc.pid):
            kill_quietly(pid)
        proc.wait(timeout=5)


# Run as root: forks a child that stays root, then becomes nobody and forks a child of its own.
# Prints "root_child nobody_child".
_MIXED_TREE = r"""
import os, sys, time
def idle():
    for _ in range(3000): time.sleep(0.1)
    os._exit(0)
r, w = os.pipe()
root_child = os.fork()
if root_child == 0:
    idle()
os.setgid(NOBODY); os.setuid(NOBODY)
nobody_child = os.fork()
if nobody_child == 0:
    idle()
print(root_child, nobody_child, flush=True)
for _ in range(3000): time.sleep(0.1)
""".replace("NOBODY", str(NOBODY))


@pytest.mark.slow
@pytest.mark.skipif(why_not() is not None, reason=why_not() or "")
def test_tree_permission_error_on_one_child_is_reported_with_what_was_signalled() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _MIXED_TREE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    root_child, nobody_child = (int(x) for x in proc.stdout.readline().split())
    try:
        with unprivileged_runner() as prefix:
            res = subprocess.run(
                [*prefix, "kill", "--pid", str(proc.pid), "--tree", "--yes", "--timeout", "2"],
                capture_output=True,
                text=True,
                timeout=60,
                cwd="/",
            )
        assert res.returncode == 1, (res.stdout, res.stderr)
        assert f"permission denied: pid {root_child} (" in res.stderr and "belongs to root" in res.stderr
        assert f"sent SIGTERM to pid {proc.pid} (" in res.stdout and "and 1 descendant(s)" in res.stdout
        assert proc.wait(timeout=5) == -signal.SIGTERM  # the parent was signalled after the error
        wait_for(
            lambda: not psutil.pid_exists(nobody_child) or psutil.Process(nobody_child).status() == "zombie"
        )
        assert psutil.Process(root_child).status() != "zombie"
    finally:
        for pid in (root_child, nobody_child, proc.pid):
            kill_quietly(pid)
        proc.wait(timeout=5)


# --- --json ----------------------------------------------------------------------------------------

_KEYS = {
    "target",
    "port",
    "proto",
    "signal",
    "plan",
    "sent",
    "exited",
    "alive",
    "errors",
    "holders",
    "respawned",
    "port_free",
    "dry_run",
    "ok",
}


def test_cli_kill_json_shape(tmp_path: Path) -> None:
    with prefork_server(str(tmp_path), workers=1) as srv:
        res = run_cli("kill", str(srv.port), "--proto", "tcp", "--dry-run", "--json")
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        assert set(doc) == _KEYS
        assert doc["dry_run"] is True and doc["sent"] == [] and doc["port_free"] is None
        assert (doc["target"], doc["port"], doc["proto"], doc["signal"]) == (
            f"port {srv.port}/tcp",
            srv.port,
            "tcp",
            "SIGTERM",
        )
        [primary] = doc["plan"]["primary"]
        assert set(primary) == {"pid", "name", "user", "command", "started", "ports"}
        assert primary["pid"] == srv.pid and primary["name"] == "ps-prefork"
        assert [w["pid"] for w in doc["plan"]["workers"]] == srv.workers
        res = run_cli("kill", str(srv.port), "--yes", "--json")
        assert res.returncode == 0, (res.stdout, res.stderr)
        doc = json.loads(res.stdout)
        assert set(doc) == _KEYS
        assert doc["ok"] is True and doc["port_free"] is True and doc["dry_run"] is False, doc
        assert doc["sent"] == [
            {"pid": srv.pid, "name": "ps-prefork", "signal": "SIGTERM", "phase": "primary"}
        ]
        assert {e["pid"] for e in doc["exited"]} == {srv.pid, *srv.workers}, doc
        assert doc["alive"] == [] and doc["errors"] == [] and doc["holders"] == [] and doc["respawned"] == []


def test_cli_kill_json_of_a_free_port() -> None:
    from tests.helpers import free_port

    res = run_cli("kill", str(free_port()), "--json")
    assert res.returncode == 0
    doc = json.loads(res.stdout)
    assert doc["ok"] is True and doc["port_free"] is True and doc["plan"] == {"primary": [], "workers": []}


def test_progress_events_say_what_is_being_waited_for(tmp_path: Path) -> None:
    with prefork_server(str(tmp_path), workers=1, mode="ignore-term") as srv:
        plan = killplan.plan_port(PsutilCollector().collect(), srv.port)
        events: list[kill.KillEvent] = []
        with kill.KillFlow(plan, timeout=0.3, on_event=events.append) as flow:
            flow.signal()
            flow.escalate()
            flow.finish(PsutilCollector())
        texts = [e.text for e in events]
        assert texts[0] == f"SIGTERM sent to pid {srv.pid} (ps-prefork), waiting 0.3 s"
        assert events[0].until is not None and events[0].kind == "waiting"
        assert (
            f"1 worker still running: SIGTERM sent to pid {srv.workers[0]} (ps-prefork), waiting 0.3 s"
            in texts
        )
        assert f"SIGKILL sent to pid {srv.pid} (ps-prefork), waiting 0.3 s" in texts
        assert f"pid {srv.pid} (ps-prefork) exited" in texts
        assert any(t.startswith(f"checking port {srv.port}") for t in texts)
        assert os.path.exists(tmp_path)


# --- the terminal's questions ----------------------------------------------------------------------


@pytest.mark.skipif(
    not (os.geteuid() == 0 and os.path.exists("/proc/sys/kernel/ns_last_pid")),
    reason="needs root and ns_last_pid",
)
def test_cli_pid_recycled_at_the_sigkill_question_is_not_signalled_nor_claimed() -> None:
    """On a terminal: y to the plan, SIGTERM is ignored, "Send SIGKILL?" is asked; meanwhile the
    process dies and a new one gets its pid; y. Nothing reaches the newcomer and the output does
    not say "sent SIGKILL"."""
    import pty
    import threading

    from tests.helpers import spawn_listener
    from tests.integration.test_kill import _respawn_on_pid

    old = spawn_listener("tcp", "127.0.0.1", name="ps-old-owner", ignore_term=True)
    master, slave = pty.openpty()
    cmd = [*_portscope(), "kill", "--pid", str(old.pid), "--timeout", "0.3"]
    cli = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(slave)
    asked: list[str] = []

    def read_stderr() -> None:
        assert cli.stderr is not None
        while ch := cli.stderr.read(1):
            asked.append(ch)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    new = None
    try:
        wait_for(lambda: "? [y/N] " in "".join(asked), timeout=30)
        assert "Send SIGTERM to pid" in "".join(asked)
        os.write(master, b"y\n")
        wait_for(lambda: "Send SIGKILL to pid" in "".join(asked), timeout=30)
        old.stop()  # it dies at the question ...
        new = _respawn_on_pid(old.pid)  # ... and its pid goes to a new process
        if new is None:
            pytest.skip("could not get the same pid again (busy machine)")
        os.write(master, b"y\n")
        out, _ = cli.communicate(timeout=30)
        reader.join(5)
        assert "sent SIGKILL" not in out, out
        assert f"pid {old.pid} (ps-old-owner) exited before SIGKILL was sent" in out
        assert new.proc.poll() is None and psutil.Process(new.pid).name() == "ps-new-owner"
    finally:
        os.close(master)
        if cli.poll() is None:
            cli.kill()
        cli.wait(timeout=10)
        old.stop()
        if new is not None:
            new.stop()


def _portscope() -> list[str]:
    from tests.helpers import portscope_cmd

    return portscope_cmd()


def test_hostile_process_names_are_escaped_in_every_kill_output() -> None:
    from tests.helpers import child_listener

    hostile = "\x1b]0;pwn\x07\u202e"  # an OSC title escape and a bidi override
    with child_listener("tcp", "127.0.0.1", name=hostile) as child:
        for args in (["--dry-run"], ["--dry-run", "--json"]):
            res = run_cli("kill", str(child.port), *args)
            assert res.returncode == 0, res.stderr
            assert "\x1b" not in res.stdout + res.stderr and "\u202e" not in res.stdout + res.stderr
        assert "\\x1b]0;pwn\\x07" in run_cli("kill", str(child.port), "--dry-run").stdout
        res = run_cli("kill", str(child.port), "--yes")
        assert res.returncode == 0, res.stderr
        assert "\x1b" not in res.stdout + res.stderr and "\\x1b]0;pwn" in res.stdout


def test_an_unrelated_program_binding_the_freed_port_is_a_holder_not_a_respawn() -> None:
    """A respawn is kin of what was killed (same parent or same name); another program that binds
    the port in the watch is named as what holds it, without a "respawned" claim."""
    from tests.helpers import child_script, quiet_port, spawn_listener

    port = quiet_port()
    first = spawn_listener("tcp", "127.0.0.1", port=port, name="ps-first")
    plan = killplan.plan_port(PsutilCollector().collect(), port)
    assert plan.pids == [first.pid]
    flow = kill.KillFlow(plan, timeout=3)
    other = None
    try:
        flow.signal()
        assert first.proc.wait(timeout=5) == -signal.SIGTERM
        # another program (its own parent, its own name) takes the port before the re-check
        wrapper = "import subprocess, sys\nsubprocess.run(sys.argv[1:])"
        argv = [sys.executable, "-c", wrapper, sys.executable, child_script(), "tcp", "127.0.0.1", str(port)]
        other = subprocess.Popen([*argv, "ps-other"], stdout=subprocess.PIPE, text=True)
        assert other.stdout is not None and other.stdout.readline().strip() == str(port)
        report = flow.finish(PsutilCollector())
        assert report.respawns == []
        assert [h.name for h in report.holders] == ["ps-other"]
        assert report.port_free is False
    finally:
        flow.close()
        first.stop()
        if other is not None:
            for p in psutil.Process(other.pid).children():
                kill_quietly(p.pid)
            kill_quietly(other.pid)
            other.wait(timeout=5)


@pytest.mark.slow
@needs_root
@pytest.mark.parametrize("kind", HIERARCHIES)
def test_a_respawn_by_a_supervisor_in_a_unit_names_the_unit_and_how_to_stop_it(kind: str) -> None:
    """The real describer (app.service): the supervisor lives in a cgroup named like a unit, so the
    restarted child does too, and the message says which unit and how to stop it for good."""
    with supervised_listener() as sup:
        holder = Child(sup.proc, sup.port, "tcp", "127.0.0.1", "supervisor")
        with moved_into(holder, kind, "ps-respawn-demo.service") as where:
            first = sup.children[0]
            wait_for(lambda: killplan.plan_port(PsutilCollector().collect(), sup.port).pids == [first])
            res = run_cli("kill", str(sup.port), "--yes")
            assert res.returncode == 1, (res.stdout, res.stderr)
            line = next(x for x in res.stderr.splitlines() if "respawned" in x)
            assert "ps-respawn-demo.service" in line
            assert "to stop it for good: systemctl stop ps-respawn-demo.service" in res.stderr
            sup.stop()  # before the cgroup goes: its children must be gone too
            procs = Path(MOUNTS[kind] + where) / "cgroup.procs"
            wait_for(lambda: not procs.read_text().strip(), timeout=10)
