"""Killing a port's owner, safely. All kill logic lives here (the CLI and the dashboard only ask).

The rules, in the order they are checked before any signal is sent:

1. The target is a frozen copy (:class:`KillTarget`) of what a snapshot showed: pid *and* start time.
   Before each signal the pid's current start time is compared with it; a different one means the
   pid was reused and nothing is sent (:class:`~app.errors.ProcessChanged`).
2. pid 0 and 1, portscope itself and its ancestors (the shell, the terminal) are refused
   (:class:`KillRefused`) unless ``force`` is given.
3. Permission and "already exited" errors become :class:`~app.errors.ProcessDenied` and
   :class:`~app.errors.ProcessGone` with one-line messages.

Every signal goes through :func:`signal_exact`: on Linux it opens a pidfd *first*, then checks the
start time, then signals through the pidfd, so the process checked is the process signalled (no
window for pid reuse at all); elsewhere psutil re-checks the identity right before ``kill()``.
A stopped process (Ctrl-Z) is sent SIGCONT after SIGTERM/INT/HUP, or the signal would stay pending.

After a signal, :func:`wait_gone` polls at growing intervals up to a timeout; :func:`kill` can then
escalate to SIGKILL, and :func:`port_holders` re-checks the ports to say who still holds them.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psutil

from app.backends.base import Collector
from app.errors import ProcessChanged, ProcessDenied, ProcessError, ProcessGone, UsageError
from app.fast.procfs import inode_holders, proc_net_inodes
from app.model import TIME_WAIT, Proto, Snapshot, Sock
from app.processes import read_process
from app.textsafe import printable

# The signals offered, by the names the CLI accepts. SIGTERM is the default.
SIGNALS: dict[str, signal.Signals] = {
    "TERM": signal.SIGTERM,
    "INT": signal.SIGINT,
    "HUP": signal.SIGHUP,
    "KILL": signal.SIGKILL,
}
DEFAULT_SIGNAL = "TERM"
DEFAULT_TIMEOUT = 3.0
_SAME_START = 0.01  # seconds: start times closer than this are the same process
PID_LIMIT = 2**31 - 1  # no pid is above this (kill() takes a signed 32-bit pid)


class KillRefused(ProcessError):
    """The target is protected (pid 0/1, portscope itself or an ancestor); ``force`` overrides."""


def parse_signal(name: str) -> signal.Signals:
    """``TERM``, ``SIGTERM``, ``term`` or ``15`` -> the signal; anything else is a UsageError."""
    raw = str(name).strip().upper().removeprefix("SIG")
    if raw in SIGNALS:
        return SIGNALS[raw]
    for sig in SIGNALS.values():
        if raw == str(int(sig)):
            return sig
    raise UsageError(f"invalid signal {name!r}: expected one of {', '.join(SIGNALS)}")


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


@dataclass(frozen=True, slots=True)
class KillTarget:
    """A frozen copy of one owner, as a snapshot showed it: exactly what will be signalled."""

    pid: int
    name: str
    user: str
    cmdline: tuple[str, ...]
    create_time: float
    ports: tuple[str, ...] = ()  # e.g. "tcp 127.0.0.1:8080 LISTEN", every socket it held
    port_numbers: tuple[tuple[str, int], ...] = ()  # (proto, local port) of those sockets

    @property
    def who(self) -> str:
        return f"pid {self.pid} ({printable(self.name, 40) or '?'})"

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) if self.cmdline else self.name

    @property
    def started(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.create_time))

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, sock: Sock) -> KillTarget:
        """The owner of ``sock`` as ``snapshot`` saw it, with every socket it held there.

        Raises UsageError when the socket has no visible owner."""
        if sock.pid is None:
            raise UsageError(f"{sock.proto.value} {sock.laddr} has no visible owner: {unseen_owner_hint()}")
        owner = snapshot.owner(sock)
        if owner is None:
            raise ProcessGone(sock.pid, None, f"pid {sock.pid} already exited")
        held = [s for s in snapshot.sockets if s.pid == sock.pid]
        held.sort(key=lambda s: (not s.listening, s.laddr.port, s.proto.value, s.laddr.ip))
        return cls(
            pid=owner.pid,
            name=owner.name,
            user=owner.username,
            cmdline=owner.cmdline,
            create_time=owner.create_time,
            ports=tuple(describe_sock(s) for s in held),
            port_numbers=tuple(dict.fromkeys((s.proto.value, s.laddr.port) for s in held)),
        )

    @classmethod
    def from_pid(cls, pid: int, snapshot: Snapshot | None = None) -> KillTarget:
        """The process ``pid`` now (its sockets from ``snapshot`` when given)."""
        if not 0 < pid <= PID_LIMIT:
            raise UsageError(f"invalid pid {pid}: out of range (1 to {PID_LIMIT})")
        info = read_process(pid)
        if info is None:
            if not psutil.pid_exists(pid):
                raise ProcessGone(pid, None, f"pid {pid} does not exist")
            raise ProcessDenied(pid, None, f"permission denied: cannot read pid {pid}; try sudo")
        held = [s for s in snapshot.sockets if s.pid == pid] if snapshot is not None else []
        held.sort(key=lambda s: (not s.listening, s.laddr.port, s.proto.value, s.laddr.ip))
        return cls(
            pid=pid,
            name=info.name,
            user=info.username,
            cmdline=info.cmdline,
            create_time=info.create_time,
            ports=tuple(describe_sock(s) for s in held),
            port_numbers=tuple(dict.fromkeys((s.proto.value, s.laddr.port) for s in held)),
        )

    def details(self) -> list[str]:
        """Escaped lines describing the target, for a confirmation prompt."""
        lines = [
            f"pid      {self.pid}",
            f"name     {printable(self.name, 80)}",
            f"user     {printable(self.user, 80) or '?'}",
            f"started  {self.started}",
            f"command  {printable(self.command, 400)}",
        ]
        if self.ports:
            lines.append("ports    " + self.ports[0])
            lines.extend("         " + p for p in self.ports[1:])
        else:
            lines.append("ports    (none seen)")
        return lines


def unseen_owner_hint() -> str:
    """Why a socket can have no visible owner, for this user."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root sees every process of this PID namespace: "try sudo" would be wrong advice
        return (
            "no process holds it (a kernel socket, a socket in flight between processes, "
            "or a process outside this PID namespace)"
        )
    return "it belongs to another user; try sudo"


def describe_sock(s: Sock) -> str:
    out = f"{s.proto.value}{'6' if s.family.value == 'ipv6' else ''} {s.laddr}"
    if s.raddr is not None:
        out += f" -> {s.raddr}"
    return f"{out} {s.status}"


# --- protection -------------------------------------------------------------------------------


def protected_pids() -> dict[int, str]:
    """pids that are never signalled without ``force``, with the reason."""
    out: dict[int, str] = {0: "the kernel scheduler", 1: "init"}
    me = os.getpid()
    out[me] = "portscope itself"
    try:
        for parent in psutil.Process(me).parents():
            out.setdefault(parent.pid, "an ancestor of portscope (the shell or terminal running it)")
    except psutil.Error:
        pass
    return out


def protection_reason(pid: int) -> str | None:
    return protected_pids().get(pid)


def check_allowed(target: KillTarget, force: bool = False) -> None:
    """Raise :class:`KillRefused` for a protected pid (unless ``force``)."""
    reason = protection_reason(target.pid)
    if reason and not force:
        raise KillRefused(
            target.pid, target.name, f"refusing to signal {target.who}: it is {reason} (use --force)"
        )


# --- identity and signals ---------------------------------------------------------------------


def verify(target: KillTarget) -> psutil.Process:
    """The live process for ``target``, or ProcessGone / ProcessChanged (pid reuse guard)."""
    try:
        proc = psutil.Process(target.pid)
        started = proc.create_time()
    except psutil.NoSuchProcess:
        raise ProcessGone(target.pid, target.name, f"pid {target.pid} already exited") from None
    except psutil.AccessDenied:
        raise _denied(target.pid, target.name, target.user) from None
    if abs(started - target.create_time) >= _SAME_START:
        raise ProcessChanged(target.pid, target.name, f"pid {target.pid} is now a different process")
    if _is_zombie(proc):
        raise ProcessGone(target.pid, target.name, f"pid {target.pid} already exited")
    return proc


def _is_zombie(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _denied(pid: int, name: str | None, user: str | None) -> ProcessDenied:
    who = f"pid {pid} ({printable(name or '?', 40)})"
    owner = f" belongs to {printable(user, 40)};" if user else ";"
    return ProcessDenied(pid, name, f"permission denied: {who}{owner} try sudo")


def signal_exact(pid: int, create_time: float, sig: int, name: str | None, user: str | None) -> None:
    """Send ``sig`` to ``pid`` only if it is still the process that started at ``create_time``.

    Linux: a pidfd is opened first, the start time checked, and the signal sent through the pidfd:
    the pidfd pins the process, so nothing can be signalled but the process that was checked.
    Elsewhere (or without pidfds) psutil re-checks the identity right before ``kill()``.
    Raises ProcessGone, ProcessChanged or ProcessDenied; nothing is sent then."""
    if not 0 < pid <= PID_LIMIT:
        raise ProcessGone(pid, name, f"pid {pid} does not exist")
    pidfd = _pidfd_open(pid, name)
    try:
        try:
            proc = psutil.Process(pid)
            started = proc.create_time()
        except psutil.NoSuchProcess:
            raise ProcessGone(pid, name, f"pid {pid} already exited") from None
        except psutil.AccessDenied:
            raise _denied(pid, name, user) from None
        if abs(started - create_time) >= _SAME_START:
            raise ProcessChanged(pid, name, f"pid {pid} is now a different process")
        try:
            if pidfd >= 0:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                proc.send_signal(sig)  # psutil: identity (pid + start time) re-checked right before
        except (ProcessLookupError, psutil.NoSuchProcess):
            raise ProcessGone(pid, name, f"pid {pid} already exited") from None
        except (PermissionError, psutil.AccessDenied):
            raise _denied(pid, name, user) from None
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _pidfd_open(pid: int, name: str | None) -> int:
    """A pidfd for ``pid`` (-1 where pidfds are not available); ProcessGone if there is no such pid."""
    if not (hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")):
        return -1
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise ProcessGone(pid, name, f"pid {pid} already exited") from None
    except OSError:  # ENOSYS (old kernel), EMFILE, a seccomp filter...: psutil's check instead
        return -1


def continue_if_stopped(pid: int, create_time: float) -> bool:
    """SIGCONT ``pid`` if it is stopped (Ctrl-Z, SIGSTOP), so a pending SIGTERM can act. Best effort."""
    try:
        if psutil.Process(pid).status() != psutil.STATUS_STOPPED:
            return False
        signal_exact(pid, create_time, signal.SIGCONT, None, None)
    except (psutil.Error, ProcessError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Signalled:
    """One process that was sent a signal: pid and start time (to tell it from a successor)."""

    pid: int
    create_time: float
    name: str


def send(
    target: KillTarget,
    sig: signal.Signals = signal.SIGTERM,
    *,
    tree: bool = False,
    force: bool = False,
) -> list[Signalled]:
    """Signal ``target`` (and with ``tree`` its descendants first, deepest first).

    Checks protection and identity first; raises ProcessGone/ProcessChanged/ProcessDenied/KillRefused.
    The descendants are listed before anything is signalled; each is signalled only if it is still
    the process listed (start time). A descendant that vanished or changed meanwhile is skipped; a
    protected descendant is skipped unless ``force``. Stopped processes are continued (SIGCONT)."""
    check_allowed(target, force)
    proc = verify(target)
    done: list[Signalled] = []
    if tree:
        protected = protected_pids()
        family: list[Signalled] = []
        try:
            children = proc.children(recursive=True)  # psutil lists parents before their children
        except psutil.Error:
            children = []
        for child in children:
            try:
                family.append(Signalled(child.pid, child.create_time(), child.name()))
            except psutil.Error:
                continue
        for c in reversed(family):
            if c.pid in protected and not force:
                continue
            try:
                signal_exact(c.pid, c.create_time, sig, c.name, None)
            except (ProcessGone, ProcessChanged):
                continue
            done.append(c)
    signal_exact(target.pid, target.create_time, sig, target.name, target.user)
    done.append(Signalled(target.pid, target.create_time, target.name))
    if sig != signal.SIGKILL:
        for p in done:
            continue_if_stopped(p.pid, p.create_time)
    return done


def is_gone(pid: int, create_time: float) -> bool:
    """True when ``pid`` exited (a zombie counts as exited) or now belongs to another process."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) >= _SAME_START:
            return True
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def wait_gone(procs: Sequence[Signalled], timeout: float = DEFAULT_TIMEOUT) -> list[Signalled]:
    """Poll at growing intervals (20 ms doubling to 250 ms) until all exited or ``timeout`` passed.

    Returns those still alive. A zombie counts as exited; it is left for its parent to reap."""
    deadline = time.monotonic() + max(0.0, timeout)
    delay = 0.02
    alive = list(procs)
    while True:
        alive = [p for p in alive if not is_gone(p.pid, p.create_time)]
        now = time.monotonic()
        if not alive or now >= deadline:
            return alive
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.25)


# --- the whole flow ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holder:
    """A socket still on a port after the kill, and who owns it."""

    sock: Sock
    pid: int | None
    name: str
    user: str

    def describe(self) -> str:
        who = f"pid {self.pid} ({printable(self.name, 40) or '?'})" if self.pid else "an unseen owner"
        if self.user:
            who += f", user {printable(self.user, 40)}"
        return f"{describe_sock(self.sock)} is held by {who}"


@dataclass
class KillResult:
    target: KillTarget
    signal: signal.Signals
    signalled: list[Signalled] = field(default_factory=list)
    alive: list[Signalled] = field(default_factory=list)  # still running after the wait
    escalated: bool = False
    holders: list[Holder] = field(default_factory=list)  # who holds the target's ports afterwards

    @property
    def exited(self) -> bool:
        return not self.alive

    def lines(self) -> list[str]:
        """A human summary, one fact a line."""
        sig = signal_name(self.signal)
        n = len(self.signalled)
        out = [f"sent {sig} to {self.target.who}" + (f" and {n - 1} descendant(s)" if n > 1 else "")]
        if self.escalated:
            out.append(f"still running after {sig}: sent SIGKILL")
        if self.alive:
            names = ", ".join(f"pid {p.pid} ({printable(p.name, 40)})" for p in self.alive)
            out.append(f"still running: {names}")
        else:
            out.append(f"{self.target.who} exited")
        out.extend(h.describe() for h in self.holders)
        return out


def kill(
    target: KillTarget,
    sig: signal.Signals = signal.SIGTERM,
    *,
    tree: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    force: bool = False,
    escalate: bool = False,
    collector: Collector | None = None,
) -> KillResult:
    """Signal, wait up to ``timeout``, optionally escalate to SIGKILL, then re-check the ports.

    Raises the ProcessError subclasses of :func:`send` when nothing could be signalled."""
    result = KillResult(target, sig)
    result.signalled = send(target, sig, tree=tree, force=force)
    result.alive = wait_gone(result.signalled, timeout)
    if result.alive and escalate and sig != signal.SIGKILL:
        escalate_kill(result, timeout=timeout, force=force)
    if collector is not None:
        result.holders = port_holders(target.port_numbers, collector)
    return result


def escalate_kill(result: KillResult, *, timeout: float = DEFAULT_TIMEOUT, force: bool = False) -> None:
    """Send SIGKILL to whatever of ``result`` is still alive (each re-verified) and wait again."""
    escalate_all([result], timeout=timeout, force=force)


def escalate_all(
    results: Sequence[KillResult], *, timeout: float = DEFAULT_TIMEOUT, force: bool = False
) -> None:
    """SIGKILL what is still alive in every result (each only if it is still the same process: start
    time), then one wait for all of them (not one per result)."""
    killed: list[Signalled] = []
    for result in results:
        for p in result.alive:
            if is_gone(p.pid, p.create_time):
                continue
            if protection_reason(p.pid) and not force:
                continue
            try:
                signal_exact(p.pid, p.create_time, signal.SIGKILL, p.name, result.target.user)
            except (ProcessGone, ProcessChanged):
                continue  # exited, or the pid was reused meanwhile: never signal it
            killed.append(p)
        result.escalated = True
    still = set(wait_gone(killed, timeout))
    for result in results:
        result.alive = [p for p in result.alive if p in still]


def wait_all(results: Sequence[KillResult], timeout: float = DEFAULT_TIMEOUT) -> None:
    """One wait (up to ``timeout``) for everything the results signalled; sets each ``alive``."""
    everyone = list(dict.fromkeys(p for r in results for p in r.signalled))
    still = set(wait_gone(everyone, timeout))
    for r in results:
        r.alive = [p for p in r.signalled if p in still]


def port_holders(ports: Iterable[tuple[str, int]], collector: Collector) -> list[Holder]:
    """Sockets that still hold any of ``ports`` (proto, local port): listeners and owned sockets.

    Closing connections the kernel keeps (TIME_WAIT, and ownerless FIN states) do not count."""
    wanted = set(ports)
    if not wanted:
        return []
    only = {p for _, p in wanted}
    snapshot = collector.collect(port=next(iter(only))) if len(only) == 1 else collector.collect()
    out: list[Holder] = []
    for s in snapshot.sockets:
        if (s.proto.value, s.laddr.port) not in wanted or not holds_port(s):
            continue
        owner = snapshot.owner(s)
        out.append(Holder(s, s.pid, owner.name if owner else "", owner.username if owner else ""))
    out.sort(key=lambda h: (not h.sock.listening, h.sock.laddr.port))
    return out


def holds_port(s: Sock) -> bool:
    """A socket that keeps its local port in use: a listener, or one with a live owner."""
    if s.status == TIME_WAIT:
        return False
    return s.listening or s.pid is not None


def owners_on_port(
    snapshot: Snapshot, port: int, proto: Proto | None = None, *, shared: bool = False
) -> list[KillTarget]:
    """The owners of *local* sockets on ``port`` (never a peer that merely connects to it),
    listeners' owners first. Sockets without a visible owner are skipped.

    A socket list names one pid per socket, but a socket can be held by several processes (a
    pre-fork server's master and workers share the listener). With ``shared`` (Linux), every
    process holding one of those sockets is found in /proc and added after the named owners."""
    on_port = [s for s in snapshot.on_port(port, proto) if holds_port(s)]
    socks = [s for s in on_port if s.pid is not None]
    socks.sort(key=lambda s: (not s.listening, s.pid or 0))
    out: dict[int, KillTarget] = {}
    for s in socks:
        assert s.pid is not None
        if s.pid in out or snapshot.owner(s) is None:
            continue
        out[s.pid] = KillTarget.from_snapshot(snapshot, s)
    if shared:
        by_inode = {s.inode: s for s in sorted(on_port, key=lambda s: not s.listening) if s.inode}
        if on_port and any(not s.inode for s in on_port):  # a collector without inodes (psutil)
            first = min(on_port, key=lambda s: not s.listening)
            for inode in proc_net_inodes(port, [proto.value] if proto else [p.value for p in Proto]):
                by_inode.setdefault(inode, first)
        holders = inode_holders(by_inode)
        for inode, sock in by_inode.items():
            for pid in sorted(holders.get(inode, ())):
                if pid in out:
                    continue
                try:
                    t = KillTarget.from_pid(pid, snapshot)
                except ProcessError:
                    continue
                held = [x for x in on_port if x.inode and pid in holders.get(x.inode, ())] or [sock]
                out[pid] = dataclasses.replace(
                    t,
                    ports=tuple(dict.fromkeys([*t.ports, *(describe_sock(x) for x in held)])),
                    port_numbers=tuple(
                        dict.fromkeys([*t.port_numbers, *((x.proto.value, x.laddr.port) for x in held)])
                    ),
                )
    return list(out.values())


def port_free(snapshot: Snapshot, port: int, proto: Proto | None = None) -> bool:
    return not any(holds_port(s) for s in snapshot.on_port(port, proto))
