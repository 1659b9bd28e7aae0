"""What a kill will signal, decided before anything is sent (the first step of the kill flow).

A :class:`KillPlan` names every process holding the port's sockets (``ss -p`` lists them all: a
pre-fork master and its workers share the listener; a socket passed over SCM_RIGHTS has several
holders), split into

- the **primary owners**: holders whose parent does not hold any of the port's sockets (the master;
  among unrelated holders of one socket, the lowest pid), signalled first, so a master can stop its
  own workers (a postgres "smart" or "fast" shutdown stays one);
- the **workers**: every other holder, signalled only if still alive after the wait.

Each target is a frozen copy (:class:`KillTarget`) of what was shown, pid *and* start time: the
guard in :mod:`app.pidguard` refuses to signal a pid that now belongs to another process. pid 0 and
1, portscope itself and its ancestors are protected (:func:`protected_pids`): a plan that contains
one is refused whole unless forced. The CLI's ``portscope kill PORT`` and the dashboard's ``K`` build
their plans here, so they target the same set.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import psutil

from app.backends.base import Collector
from app.errors import NoSuchPid, NoVisibleOwner, ProcessError, UsageError
from app.fast import procfs
from app.fast.procfs import inode_holders, proc_net_inodes
from app.holders import primary_owner as holders_primary
from app.model import TIME_WAIT, ProcessInfo, Proto, Snapshot, Sock
from app.pidguard import PID_LIMIT, Identity, denied, kernel_has
from app.processes import read_process
from app.textsafe import printable

LIST_CAP = 6  # the dialog shows at most this many ports / workers, then "+N more"


@dataclass(frozen=True, slots=True)
class KillTarget:
    """A frozen copy of one process, as a snapshot (or /proc) showed it: exactly what is signalled."""

    pid: int
    name: str
    user: str
    cmdline: tuple[str, ...]
    create_time: float
    ports: tuple[str, ...] = ()  # e.g. "tcp 127.0.0.1:8080 LISTEN", every socket it held
    port_numbers: tuple[tuple[str, int], ...] = ()  # (proto, local port) of those sockets
    ppid: int | None = None

    @property
    def who(self) -> str:
        return f"pid {self.pid} ({printable(self.name, 40) or '?'})"

    @property
    def identity(self) -> Identity:
        return Identity(self.pid, self.create_time, self.name, self.user)

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
            raise NoSuchPid(sock.pid, None, f"pid {sock.pid} already exited")
        return cls.of(owner, _held(snapshot, owner.pid))

    @classmethod
    def from_pid(cls, pid: int, snapshot: Snapshot | None = None) -> KillTarget:
        """The process ``pid`` now (its sockets from ``snapshot`` when given).

        Raises NoSuchPid when the kernel has no such process (``kill(pid, 0)`` is ESRCH) and
        ProcessDenied when it exists but cannot be read (another user's process under hidepid)."""
        if not 0 < pid <= PID_LIMIT:
            raise UsageError(f"invalid pid {pid}: out of range (1 to {PID_LIMIT})")
        info = read_process(pid)
        if info is None:
            if not kernel_has(pid):
                raise NoSuchPid(pid)
            raise denied(pid, None)
        return cls.of(info, _held(snapshot, pid))

    @classmethod
    def of(cls, info: ProcessInfo, held: list[Sock]) -> KillTarget:
        """The copy of ``info`` holding the sockets ``held``."""
        return cls(
            pid=info.pid,
            name=info.name,
            user=info.username,
            cmdline=info.cmdline,
            create_time=info.create_time,
            ports=tuple(describe_sock(s) for s in held),
            port_numbers=tuple(dict.fromkeys((s.proto.value, s.laddr.port) for s in held)),
            ppid=info.ppid,
        )

    def details(self, limit: int | None = None) -> list[str]:
        """Escaped lines describing the target, for a confirmation; ``limit`` caps the ports."""
        lines = [
            f"pid      {self.pid}",
            f"name     {printable(self.name, 80)}",
            f"user     {printable(self.user, 80) or '?'}",
            f"started  {self.started}",
            f"command  {printable(self.command, 400)}",
        ]
        ports = list(self.ports)
        if limit is not None and len(ports) > limit:
            ports = [*ports[: limit - 1], f"+{len(self.ports) - limit + 1} more"]
        if ports:
            lines.append("ports    " + ports[0])
            lines.extend("         " + p for p in ports[1:])
        else:
            lines.append("ports    (none seen)")
        return lines


def _held(snapshot: Snapshot | None, pid: int) -> list[Sock]:
    """Every socket ``pid`` holds in ``snapshot``, listeners first."""
    if snapshot is None:
        return []
    held = [s for s in snapshot.sockets if s.pid == pid]
    held.sort(key=lambda s: (not s.listening, s.laddr.port, s.proto.value, s.laddr.ip))
    return held


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


def capped(items: list[str], limit: int | None) -> list[str]:
    """``items``, at most ``limit`` of them: the last one becomes "+N more" when cut."""
    if limit is None or len(items) <= limit:
        return items
    return [*items[: limit - 1], f"+{len(items) - limit + 1} more"]


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


# --- who holds a port -------------------------------------------------------------------------


def holds_port(s: Sock) -> bool:
    """A socket that keeps its local port in use: a listener, or one with a live owner.

    Closing connections the kernel keeps (TIME_WAIT, and ownerless FIN states) do not count."""
    if s.status == TIME_WAIT:
        return False
    return s.listening or s.pid is not None


def port_free(snapshot: Snapshot, port: int, proto: Proto | None = None) -> bool:
    return not any(holds_port(s) for s in snapshot.on_port(port, proto))


def _ppid(pid: int) -> int | None:
    st = procfs.read_stat(pid)
    if st is not None:
        return st.ppid
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return None


def primary_owner(holders: Iterable[int], ppid_of: Callable[[int], int | None] = _ppid) -> int | None:
    """The master among one socket's holders (the one rule, :func:`app.holders.primary_owner`),
    reading parents from /proc (psutil elsewhere)."""
    return holders_primary(holders, ppid_of)


def primaries(
    holders_by_socket: Mapping[int, Iterable[int]], ppid_of: Callable[[int], int | None] = _ppid
) -> set[int]:
    """The primary owners of a port: each socket's :func:`primary_owner`, except where that
    holder's parent holds another of the port's sockets (a worker's accepted connection belongs to
    the master that holds the listener)."""
    everyone = {p for pids in holders_by_socket.values() for p in pids}
    out: set[int] = set()
    for pids in holders_by_socket.values():
        first = primary_owner(pids, ppid_of)
        if first is not None and ppid_of(first) not in everyone:
            out.add(first)
    if everyone and not out:  # every holder's parent holds a socket too (only with pid reuse races)
        out.add(min(everyone))
    return out


def socket_holders(
    snapshot: Snapshot,
    socks: list[Sock],
    proto: Proto | None,
    holders_of: Callable[[Iterable[int]], dict[int, set[int]]] = inode_holders,
) -> dict[int, set[int]]:
    """Every pid holding each of ``socks`` (index into ``socks`` -> pids): the owner the socket list
    names plus every process found holding the same socket inode in /proc."""
    out: dict[int, set[int]] = {i: ({s.pid} if s.pid is not None else set()) for i, s in enumerate(socks)}
    by_inode: dict[int, int] = {}
    for i, s in sorted(enumerate(socks), key=lambda x: not x[1].listening):
        if s.inode:
            by_inode.setdefault(s.inode, i)
    if socks and any(not s.inode for s in socks):  # a collector without inodes (psutil)
        first = min(range(len(socks)), key=lambda i: not socks[i].listening)
        port = socks[first].laddr.port
        for inode in proc_net_inodes(port, [proto.value] if proto else [p.value for p in Proto]):
            by_inode.setdefault(inode, first)
    for inode, pids in holders_of(by_inode).items():
        out[by_inode[inode]].update(pids)
    return out


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KillPlan:
    """What one kill will signal: primary owners first, then the workers (if still alive after the
    wait). ``ports`` are the (proto, port) pairs to re-check afterwards."""

    what: str  # "port 8080/tcp", "pid 4242"
    primary: tuple[KillTarget, ...] = ()
    workers: tuple[KillTarget, ...] = ()
    port: int | None = None
    proto: Proto | None = None
    ports: tuple[tuple[str, int], ...] = ()
    free: bool = False  # the port was free when planned: nothing to signal

    @property
    def targets(self) -> tuple[KillTarget, ...]:
        return (*self.primary, *self.workers)

    @property
    def pids(self) -> list[int]:
        return [t.pid for t in self.targets]

    def protected(self) -> list[tuple[KillTarget, str]]:
        """The targets that are protected, with the reason (a plan with any is refused unless forced)."""
        guard = protected_pids()
        return [(t, guard[t.pid]) for t in self.targets if t.pid in guard]

    def summary(self) -> str:
        """``pid 812 (nginx) + 4 workers``: the primary owners, then how many workers."""
        out = ", ".join(t.who for t in self.primary) or "nothing"
        n = len(self.workers)
        return out + (f" + {n} worker{'s' if n != 1 else ''}" if n else "")

    def question(self, signal_name: str, tree: bool = False) -> str:
        return f"Send {signal_name} to {self.summary()}" + (" and their children" if tree else "") + "?"

    def details(self, limit: int | None = None) -> list[str]:
        """Escaped lines: each primary owner in full, then the workers one a line (capped with
        "+N more" when ``limit`` is given), for the confirmation."""
        lines: list[str] = []
        for t in self.primary:
            if lines:
                lines.append("")
            lines.extend(t.details(limit))
        if self.workers:
            lines.append("")
            n = len(self.workers)
            lines.append(
                f"workers  {n} more process{'es share' if n != 1 else ' shares'} the socket "
                "(signalled if still running after the wait)"
            )
            rows = [f"{t.who} user {printable(t.user, 40) or '?'}" for t in self.workers]
            lines.extend("         " + r for r in capped(rows, limit))
        return lines

    @classmethod
    def of(cls, target: KillTarget) -> KillPlan:
        """A plan for one process (``kill --pid``): it is the only primary owner."""
        return cls(what=f"pid {target.pid}", primary=(target,), ports=target.port_numbers)


def plan_pid(pid: int, snapshot: Snapshot | None = None) -> KillPlan:
    """``portscope kill --pid PID``: that process alone (its sockets from ``snapshot``)."""
    return KillPlan.of(KillTarget.from_pid(pid, snapshot))


def plan_port(
    snapshot: Snapshot,
    port: int,
    proto: Proto | None = None,
    *,
    holders_of: Callable[[Iterable[int]], dict[int, set[int]]] = inode_holders,
    ppid_of: Callable[[int], int | None] = _ppid,
) -> KillPlan:
    """``portscope kill PORT`` and the dashboard's ``K``: every process holding a *local* socket on
    ``port`` (never a peer that merely connects to it), primary owners first.

    Returns a plan with ``free`` set when nothing holds the port; raises NoVisibleOwner when
    something does but no holder can be seen."""
    what = f"port {port}" + (f"/{proto.value}" if proto else "")
    protos = [proto] if proto else list(Proto)
    ports = tuple((p.value, port) for p in protos)
    socks = [s for s in snapshot.on_port(port, proto) if holds_port(s)]
    socks.sort(key=lambda s: (not s.listening, s.pid or 0, s.proto.value, s.laddr.ip))
    if not socks:
        return KillPlan(what=what, port=port, proto=proto, ports=ports, free=True)
    holders = socket_holders(snapshot, socks, proto, holders_of)
    targets: dict[int, KillTarget] = {}
    for i in range(len(socks)):
        for pid in sorted(holders[i]):
            if pid in targets:
                continue
            target = _target(snapshot, pid)
            if target is not None:
                targets[pid] = target
    if not targets:
        raise NoVisibleOwner(what, unseen_owner_hint())
    live = {i: {p for p in pids if p in targets} for i, pids in holders.items()}

    def parent(pid: int) -> int | None:
        now = ppid_of(pid)  # live: a worker whose master died was re-parented
        return now if now is not None else targets[pid].ppid

    first = primaries(live, parent)
    # each target also lists the sockets on this port it holds (found in /proc, not named by the list)
    for pid, t in targets.items():
        mine = [s for i, s in enumerate(socks) if pid in live[i]]
        extra = tuple(d for d in (describe_sock(s) for s in mine) if d not in t.ports)
        if extra:
            targets[pid] = _with_ports(t, extra, [(s.proto.value, s.laddr.port) for s in mine])
    order = list(targets)  # listeners' holders first (socks are sorted so), then by pid
    return KillPlan(
        what=what,
        primary=tuple(targets[p] for p in order if p in first),
        workers=tuple(sorted((targets[p] for p in order if p not in first), key=lambda t: t.pid)),
        port=port,
        proto=proto,
        ports=ports,
    )


def plan_socket(snapshot: Snapshot, sock: Sock) -> KillPlan:
    """The dashboard's ``K`` on a row: the plan of ``portscope kill PORT --proto PROTO`` for the
    row's local port. Raises UsageError for a row that holds no port (TIME_WAIT) and NoVisibleOwner
    when nobody visible holds it."""
    if not holds_port(sock):
        raise UsageError(f"{describe_sock(sock)} has no owner: the kernel keeps it until it times out")
    plan = plan_port(snapshot, sock.laddr.port, sock.proto)
    if plan.free:  # the row is from an older poll than the one that planned
        raise NoVisibleOwner(plan.what, unseen_owner_hint())
    return plan


def _with_ports(t: KillTarget, extra: tuple[str, ...], numbers: list[tuple[str, int]]) -> KillTarget:
    return dataclasses.replace(
        t, ports=(*t.ports, *extra), port_numbers=tuple(dict.fromkeys([*t.port_numbers, *numbers]))
    )


def _target(snapshot: Snapshot, pid: int) -> KillTarget | None:
    """The frozen copy of ``pid``: from the snapshot when it has the process, else read now."""
    info = snapshot.processes.get(pid)
    if info is not None:
        return KillTarget.of(info, _held(snapshot, pid))
    try:
        return KillTarget.from_pid(pid, snapshot)
    except (ProcessError, UsageError):
        return None  # exited meanwhile, or unreadable: nothing that could be confirmed


def owners_on_port(
    snapshot: Snapshot, port: int, proto: Proto | None = None, *, shared: bool = False
) -> list[KillTarget]:
    """The owners of *local* sockets on ``port`` that the socket list names (listeners' owners
    first); with ``shared`` every process holding one of those sockets (the plan's targets)."""
    if shared:
        try:
            return list(plan_port(snapshot, port, proto).targets)
        except NoVisibleOwner:
            return []
    socks = [s for s in snapshot.on_port(port, proto) if holds_port(s) and s.pid is not None]
    socks.sort(key=lambda s: (not s.listening, s.pid or 0))
    out: dict[int, KillTarget] = {}
    for s in socks:
        assert s.pid is not None
        if s.pid in out or snapshot.owner(s) is None:
            continue
        out[s.pid] = KillTarget.from_snapshot(snapshot, s)
    return list(out.values())


# --- after the kill: who holds the ports now ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holder:
    """A socket on a port after the kill, and who owns it."""

    sock: Sock
    pid: int | None
    name: str
    user: str
    create_time: float | None = None
    ppid: int | None = None

    def describe(self) -> str:
        who = f"pid {self.pid} ({printable(self.name, 40) or '?'})" if self.pid else "an unseen owner"
        if self.user:
            who += f", user {printable(self.user, 40)}"
        return f"{describe_sock(self.sock)} is held by {who}"


def port_holders(ports: Iterable[tuple[str, int]], collector: Collector) -> list[Holder]:
    """Sockets that hold any of ``ports`` (proto, local port) now: listeners and owned sockets."""
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
        out.append(
            Holder(
                s,
                s.pid,
                owner.name if owner else "",
                owner.username if owner else "",
                owner.create_time if owner else None,
                owner.ppid if owner else None,
            )
        )
    out.sort(key=lambda h: (not h.sock.listening, h.sock.laddr.port))
    return out
