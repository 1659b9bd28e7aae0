"""Killing a port's owner: real child processes on loopback, real signals."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys

import psutil
import pytest

from app import kill, killplan, pidguard
from app.collector import PsutilCollector
from app.errors import KillRefused, ProcessChanged, ProcessGone, UsageError
from app.model import Proto
from tests.helpers import child_listener, kill_quietly, run_cli, spawn_listener, wait_for
from tests.unprivileged import unprivileged_runner, why_not

# A parent that listens and starts two children (which start a grandchild each), then prints its port
# and the pids of all descendants.
_TREE = r"""
import socket, subprocess, sys, time
leaf = "import time\nfor _ in range(3000): time.sleep(0.1)"
mid = ("import subprocess, sys, time\n"
       "p = subprocess.Popen([sys.executable, '-c', %r])\n"
       "print(p.pid, flush=True)\n"
       "for _ in range(3000): time.sleep(0.1)\n") % leaf
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
pids = []
for _ in range(2):
    c = subprocess.Popen([sys.executable, "-c", mid], stdout=subprocess.PIPE, text=True)
    pids += [c.pid, int(c.stdout.readline())]
print(s.getsockname()[1], *pids, flush=True)
for _ in range(3000): time.sleep(0.1)
"""


def target_for(port: int, proto: Proto = Proto.TCP) -> killplan.KillTarget:
    """The owner of the listener (or bound UDP socket) on ``port``. Ephemeral ports: on a shared
    machine another process may hold an unrelated connected socket with the same number."""
    snap = PsutilCollector().collect()
    [target] = [
        t
        for t in killplan.owners_on_port(snap, port, proto)
        if t.ports and t.ports[0].split(" ")[1].endswith(f":{port}") and not t.ports[0].count(" -> ")
    ]
    return target


def test_target_is_a_frozen_copy_of_the_owner_with_its_ports() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-kill-copy") as child:
        t = target_for(child.port)
        assert t.pid == child.pid and t.name == "ps-kill-copy"
        assert t.create_time == psutil.Process(child.pid).create_time()
        assert t.ports == (f"tcp 127.0.0.1:{child.port} LISTEN",)
        assert ("tcp", child.port) in t.port_numbers
        with pytest.raises(dataclasses.FrozenInstanceError):
            t.pid = 1  # type: ignore[misc]
        assert any(line.startswith("started ") for line in t.details())


def test_sigterm_kills_the_owner_and_frees_the_port() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        collector = PsutilCollector()
        result = kill.kill(target_for(child.port), timeout=3, collector=collector)
        assert result.exited and not result.alive
        assert result.holders == []
        assert child.proc.wait(timeout=5) == -signal.SIGTERM
        # (an ephemeral port: another process on this shared box may reuse it at once, so only ask
        # that the child no longer holds it)
        assert not any(s.pid == child.pid for s in collector.collect(port=child.port).on_port(child.port))


def test_ignored_sigterm_is_reported_and_escalation_kills() -> None:
    with child_listener("tcp", "127.0.0.1", ignore_term=True) as child:
        target = target_for(child.port)
        with kill.KillFlow(killplan.KillPlan.of(target), timeout=0.3) as flow:
            survivors = flow.signal()
            assert [p.pid for p in survivors] == [child.pid]
            assert child.proc.poll() is None
            flow.escalate()
            result = flow.finish()
        assert result.escalated and result.exited
        assert child.proc.wait(timeout=5) == -signal.SIGKILL


def test_escalate_flag_does_it_in_one_call() -> None:
    with child_listener("udp", "127.0.0.1", ignore_term=True) as child:
        result = kill.kill(target_for(child.port, Proto.UDP), timeout=0.3, escalate=True)
        assert result.escalated and result.exited
        assert any("SIGKILL" in line for line in result.lines())


def test_tree_signals_children_first_then_the_parent() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port, *descendants = (int(x) for x in proc.stdout.readline().split())
        assert len(descendants) == 4
        result = kill.kill(target_for(port), tree=True, timeout=3)
        signalled = [p.pid for p in result.signalled]
        assert sorted(signalled) == sorted([*descendants, proc.pid])
        assert signalled[-1] == proc.pid  # the parent last
        assert result.exited
        proc.wait(timeout=5)
        wait_for(lambda: all(_gone(p) for p in descendants), timeout=5)
    finally:
        for pid in [proc.pid]:
            kill_quietly(pid)
        proc.wait(timeout=5)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_without_tree_only_the_parent_is_signalled() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port, *descendants = (int(x) for x in proc.stdout.readline().split())
    try:
        result = kill.kill(target_for(port), timeout=3)
        assert [p.pid for p in result.signalled] == [proc.pid]
        assert all(psutil.pid_exists(p) and not _gone(p) for p in descendants)
    finally:
        for pid in descendants:
            kill_quietly(pid)
        kill_quietly(proc.pid)
        proc.wait(timeout=5)


def test_stale_create_time_is_refused_and_nothing_is_signalled() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        stale = dataclasses.replace(target_for(child.port), create_time=12345.0)
        with pytest.raises(ProcessChanged, match=f"pid {child.pid} is now a different process"):
            kill.kill(stale, timeout=0.3)
        assert child.proc.poll() is None


def test_an_exited_pid_is_reported_as_gone() -> None:
    child = spawn_listener("tcp", "127.0.0.1")
    target = target_for(child.port)
    child.stop()
    with pytest.raises(ProcessGone, match=f"pid {child.pid} already exited"):
        kill.kill(target, timeout=0)


@pytest.mark.parametrize("pid", [1, os.getpid(), os.getppid()])
def test_init_portscope_and_its_ancestors_are_refused(pid: int) -> None:
    target = killplan.KillTarget.from_pid(pid)
    with pytest.raises(KillRefused, match="refusing to signal"):
        kill.kill(target, signal.SIGTERM, timeout=0)
    assert psutil.pid_exists(pid)


def test_signal_names_parse() -> None:
    assert kill.parse_signal("term") is signal.SIGTERM
    assert kill.parse_signal("SIGKILL") is signal.SIGKILL
    assert kill.parse_signal("1") is signal.SIGHUP
    with pytest.raises(UsageError):
        kill.parse_signal("STOP")


def test_owners_on_port_skip_a_client_whose_peer_is_on_that_port() -> None:
    import socket

    with child_listener("tcp", "127.0.0.1") as child, socket.create_connection(("127.0.0.1", child.port)):
        snap = PsutilCollector().collect()
        owners = killplan.owners_on_port(snap, child.port, Proto.TCP)
        assert [t.pid for t in owners] == [child.pid]  # never this test process (the client)


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_without_terminal_or_yes_refuses_with_2_and_prints_the_command() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        res = run_cli("kill", str(child.port), stdin=subprocess.DEVNULL)
        assert res.returncode == 2
        assert f"portscope kill {child.port} --yes" in res.stderr
        assert child.proc.poll() is None
        assert "Traceback" not in res.stderr


def test_cli_kill_port_yes_frees_it() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        res = run_cli("kill", str(child.port), "--yes")
        assert res.returncode == 0, res.stderr
        assert f"port {child.port} is free" in res.stdout
        assert child.proc.wait(timeout=5) == -signal.SIGTERM


def test_cli_ignored_term_exits_1_then_escalate_exits_0() -> None:
    with child_listener("tcp", "127.0.0.1", ignore_term=True) as child:
        res = run_cli("kill", str(child.port), "--yes", "--timeout", "0.3")
        assert res.returncode == 1
        assert "still running" in res.stderr and "--escalate" in res.stderr
        assert f"held by pid {child.pid}" in res.stderr
        res = run_cli("kill", str(child.port), "--yes", "--timeout", "0.5", "--escalate")
        assert res.returncode == 0, res.stderr
        assert child.proc.wait(timeout=5) == -signal.SIGKILL


def test_cli_kill_pid_and_refusals() -> None:
    res = run_cli("kill", "--pid", "1", "--yes")
    assert res.returncode == 1 and "refusing to signal pid 1" in res.stderr
    res = run_cli("kill", "--pid", str(os.getpid()), "--yes")  # an ancestor of the CLI
    assert res.returncode == 1 and "ancestor" in res.stderr
    with child_listener("tcp", "127.0.0.1") as child:
        res = run_cli("kill", "--pid", str(child.pid), "--yes", "--signal", "INT")
        assert res.returncode == 0, res.stderr
        assert child.proc.wait(timeout=5) != 0


def test_cli_bad_input_is_one_line_and_exit_2() -> None:
    for args in (
        ["kill"],
        ["kill", "80", "--pid", "5"],
        ["kill", "99999"],
        ["kill", "80", "--signal", "STOP"],
    ):
        res = run_cli(*args, "--yes")
        assert res.returncode == 2, args
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_cli_free_port_is_ok() -> None:
    from tests.helpers import free_port

    res = run_cli("kill", str(free_port()), "--yes")
    assert res.returncode == 0 and "nothing holds" in res.stderr


@pytest.mark.skipif(why_not() is not None, reason=why_not() or "")
def test_cli_as_nobody_cannot_kill_roots_process() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-root-kill") as child, unprivileged_runner() as prefix:
        res = subprocess.run(
            [*prefix, "kill", "--pid", str(child.pid), "--yes"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
        )
        assert res.returncode == 1, res.stderr
        assert f"permission denied: pid {child.pid} (ps-root-kill) belongs to root; try sudo" in res.stderr
        assert child.proc.poll() is None
        res = subprocess.run(
            [*prefix, "kill", str(child.port), "--yes"], capture_output=True, text=True, timeout=60, cwd="/"
        )
        assert res.returncode == 1 and "try sudo" in res.stderr
        assert child.proc.poll() is None


_FORKED = r"""
import os, socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
pid = os.fork()
if pid == 0:
    for _ in range(3000): time.sleep(0.1)
    os._exit(0)
print(s.getsockname()[1], pid, flush=True)
for _ in range(3000): time.sleep(0.1)
"""


def test_a_forked_worker_still_holding_the_port_is_named() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _FORKED], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port, worker = (int(x) for x in proc.stdout.readline().split())
    try:
        snap = PsutilCollector().collect()
        # the socket is shared: the socket list may name either process (psutil names one per socket)
        first = killplan.owners_on_port(snap, port)[0]
        assert first.pid in (proc.pid, worker)
        other = worker if first.pid == proc.pid else proc.pid
        result = kill.kill(first, timeout=3, collector=PsutilCollector())
        assert result.exited
        assert [h.pid for h in result.holders] == [other], result.lines()
        assert any(f"held by pid {other}" in line for line in result.lines())
        res = run_cli("kill", str(port), "--yes")  # now the worker is the owner: it goes too
        assert res.returncode == 0, res.stderr
        assert f"port {port} is free" in res.stdout
    finally:
        kill_quietly(worker)
        kill_quietly(proc.pid)
        proc.wait(timeout=5)


# --- review: adversarial cases ------------------------------------------------------------------


def test_a_stopped_owner_is_continued_so_that_sigterm_lands() -> None:
    """A server suspended with Ctrl-Z (SIGSTOP) only acts on SIGTERM once continued."""
    with child_listener("tcp", "127.0.0.1") as child:
        os.kill(child.pid, signal.SIGSTOP)
        wait_for(lambda: psutil.Process(child.pid).status() == psutil.STATUS_STOPPED)
        result = kill.kill(target_for(child.port), timeout=5)
        assert result.exited, result.lines()
        assert child.proc.wait(timeout=5) == -signal.SIGTERM


def test_a_stopped_child_in_a_tree_is_continued_too() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port, *descendants = (int(x) for x in proc.stdout.readline().split())
    try:
        os.kill(descendants[0], signal.SIGSTOP)
        wait_for(lambda: psutil.Process(descendants[0]).status() == psutil.STATUS_STOPPED)
        result = kill.kill(target_for(port), tree=True, timeout=5)
        assert result.exited, result.lines()
    finally:
        for pid in [*descendants, proc.pid]:
            kill_quietly(pid)
        proc.wait(timeout=5)


@pytest.mark.parametrize("pid", ["2147483648", "4294967296", "9999999999"])
def test_cli_pid_beyond_the_kernel_range_is_bad_input_not_a_traceback(pid: str) -> None:
    res = run_cli("kill", "--pid", pid, "--yes")
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert f"invalid pid {pid}" in res.stderr


def test_from_pid_rejects_out_of_range_pids() -> None:
    with pytest.raises(UsageError, match="invalid pid"):
        killplan.KillTarget.from_pid(2**31)


def _ownerless_listener() -> tuple[int, list[object]]:
    """A TCP listener on loopback that no process holds: its only descriptor is in flight inside a
    unix socket pair (sent with SCM_RIGHTS, never received). Returns its port and what keeps it."""
    import socket

    a, b = socket.socketpair()
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    port = lst.getsockname()[1]
    socket.send_fds(a, [b"x"], [lst.fileno()])
    lst.close()
    return port, [a, b]


def test_cli_ownerless_listener_is_named_clearly_and_nothing_is_signalled() -> None:
    port, keep = _ownerless_listener()
    try:
        snap = PsutilCollector().collect()
        socks = [s for s in snap.on_port(port) if s.listening]
        assert socks and all(s.pid is None for s in socks)
        assert killplan.owners_on_port(snap, port) == []
        with pytest.raises(UsageError, match="no visible owner"):
            killplan.KillTarget.from_snapshot(snap, socks[0])
        res = run_cli("kill", str(port), "--yes")
        assert res.returncode == 1, res.stderr
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
        assert f"port {port} is in use" in res.stderr
        if os.geteuid() == 0:  # root sees every process: "try sudo" would be wrong advice
            assert "sudo" not in res.stderr and "no process" in res.stderr
        else:
            assert "sudo" in res.stderr
    finally:
        for s in keep:
            s.close()  # type: ignore[attr-defined]


_NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def _respawn_on_pid(pid: int) -> object | None:
    """A new listener that gets ``pid`` again (a real pid reuse, via ns_last_pid); None if it never lands."""
    for _ in range(30):
        try:
            with open(_NS_LAST_PID, "w") as f:
                f.write(str(pid - 1))
        except OSError:
            return None
        child = spawn_listener("tcp", "127.0.0.1", name="ps-new-owner")
        if child.pid == pid:
            return child
        child.stop()
    return None


@pytest.mark.skipif(
    not (os.geteuid() == 0 and os.path.exists(_NS_LAST_PID)), reason="needs root and ns_last_pid"
)
@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "psutil"])
def test_a_recycled_pid_is_never_signalled(pidfd: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pid of a survivor is recycled while "send SIGKILL?" is asked: nothing is sent to the
    newcomer, and the report does not claim a SIGKILL was sent."""
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)  # the non-Linux path: psutil's check
    old = spawn_listener("tcp", "127.0.0.1", name="ps-old-owner", ignore_term=True)
    try:
        target = target_for(old.port)
        flow = kill.KillFlow(killplan.KillPlan.of(target), timeout=0.3)
        assert [p.pid for p in flow.signal()] == [old.pid]  # it ignores SIGTERM: "send SIGKILL?"
    finally:
        old.stop()  # ... and at the question it dies, and its pid goes to a new process
    new = _respawn_on_pid(old.pid)
    if new is None:
        flow.close()
        pytest.skip("could not get the same pid again (busy machine)")
    assert isinstance(new, type(old))
    try:
        with pytest.raises(ProcessChanged):
            kill.kill(target, signal.SIGKILL, timeout=0.3)
        with pytest.raises(ProcessChanged):
            pidguard.signal_exact(target.pid, target.create_time, signal.SIGKILL, target.name, None)
        assert flow.escalate() == []  # the SIGKILL step skips the newcomer too
        report = flow.finish()
        assert [s.signal for s in report.sent] == [signal.SIGTERM]
        assert [i.pid for i in report.skipped] == [old.pid]
        assert not any("sent SIGKILL" in line for line in report.lines()), report.lines()
        assert any("exited before SIGKILL was sent" in line for line in report.lines())
        assert new.proc.poll() is None and psutil.Process(new.pid).name() == "ps-new-owner"
    finally:
        flow.close()
        new.stop()


# Two processes sharing one listening socket (fork), both ignoring SIGTERM. On SIGTERM each writes
# whether the other is still alive (a zombie counts as dead) to the file argv[1].
_PAIR = r"""
import os, signal, socket, sys, time
out = sys.argv[1]
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
other = 0
def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
def on_term(signum, frame):
    with open(out, "a") as f:
        f.write("%d %s\n" % (os.getpid(), "alive" if alive(other) else "dead"))
signal.signal(signal.SIGTERM, on_term)
parent = os.getpid()
child = os.fork()
other = parent if child == 0 else child
if child == 0:
    with open(out + ".ready", "w") as f:
        f.write("ready")
    for _ in range(3000): time.sleep(0.1)
    os._exit(0)
print(s.getsockname()[1], child, flush=True)
for _ in range(3000): time.sleep(0.1)
"""


def test_cli_signals_every_owner_before_waiting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A master and its forked worker share the listener and both ignore SIGTERM: the master gets
    SIGTERM first, the worker only once the wait is over (each got it while the other still ran),
    and one SIGKILL round ends both."""
    out = tmp_path / "terms"
    proc = subprocess.Popen([sys.executable, "-c", _PAIR, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port, worker = (int(x) for x in proc.stdout.readline().split())
    try:
        wait_for(lambda: (tmp_path / "terms.ready").exists())
        res = run_cli("kill", str(port), "--yes", "--timeout", "1", "--escalate")
        assert res.returncode == 0, res.stderr
        assert f"port {port} is free" in res.stdout
        lines = sorted(out.read_text().split("\n")[:-1])
        assert lines == sorted([f"{proc.pid} alive", f"{worker} alive"]), lines
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        kill_quietly(worker)
        kill_quietly(proc.pid)
        proc.wait(timeout=5)


def test_every_process_sharing_the_listener_is_an_owner() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _FORKED], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port, worker = (int(x) for x in proc.stdout.readline().split())
    try:
        snap = PsutilCollector().collect()
        assert len(killplan.owners_on_port(snap, port)) == 1  # the socket list names one pid per socket
        owners = killplan.owners_on_port(snap, port, shared=True)
        assert sorted(t.pid for t in owners) == sorted([proc.pid, worker])
        assert all(f"tcp 127.0.0.1:{port} LISTEN" in t.ports for t in owners)
        assert all(("tcp", port) in t.port_numbers for t in owners)
    finally:
        kill_quietly(worker)
        kill_quietly(proc.pid)
        proc.wait(timeout=5)


def test_cli_refuses_a_port_shared_with_its_own_ancestor() -> None:
    """This test process (an ancestor of the CLI) shares a listener with a child: the child is not
    signalled either (killing half of it would not free the port, and the other half is the shell)."""
    import socket

    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(4)
        port = lst.getsockname()[1]
        code = "import time\nfor _ in range(3000): time.sleep(0.1)"
        child = subprocess.Popen([sys.executable, "-c", code], pass_fds=[lst.fileno()])
        try:
            wait_for(lambda: killplan.inode_holders([_inode(lst)]).get(_inode(lst), set()) >= {child.pid})
            res = run_cli("kill", str(port), "--yes")
            assert res.returncode == 1, res.stderr
            assert "ancestor" in res.stderr
            assert child.poll() is None
        finally:
            kill_quietly(child.pid)
            child.wait(timeout=5)


def _inode(s: object) -> int:
    return os.fstat(s.fileno()).st_ino  # type: ignore[attr-defined]
