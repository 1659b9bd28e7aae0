"""Killing what holds a port, as one flow that ``portscope kill`` and the dashboard's dialog both
drive: plan -> confirm -> signal -> wait -> escalate -> re-check.

1. **plan** (:mod:`app.killplan`): every process holding the port's sockets, primary owners first,
   each a frozen copy (pid + start time); protected pids refuse the whole plan unless forced.
2. **confirm**: the caller's part, and the only one that differs (the CLI asks on the terminal, the
   dashboard shows a modal dialog).
3. **signal** (:meth:`KillFlow.signal`): every planned process is pinned first (the same-process
   guard of :mod:`app.pidguard`), then the signal goes to the primary owners only (with ``tree``
   their descendants first, deepest first), and the flow waits up to ``timeout`` for *every* planned
   process: a master stops its own workers. Holders still alive then are signalled next and waited
   for once more. A stopped (Ctrl-Z) process is also sent SIGCONT so the signal can act.
4. **escalate** (:meth:`KillFlow.escalate`), when the caller says so: SIGKILL to what survived, each
   through its pin, so a process that exited at the question is never hit in its successor.
5. **re-check** (:meth:`KillFlow.finish`): who holds the ports now. If they were free and a *new*
   process binds them within the watch (a supervisor restarting what was killed), that is a respawn:
   "respawned as pid N by PARENT", with the command that stops it for good when known.

The flow never raises for one process's trouble: exits, pid reuse and permission errors are
recorded in the :class:`KillReport`, whose lines say only what happened (no "sent SIGKILL" when
none was sent). Progress goes to ``on_event`` as :class:`KillEvent` (the dialog's countdown).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from signal import Signals

import psutil

from app import killplan
from app.backends.base import Collector
from app.errors import KillRefused, ProcessChanged, ProcessDenied, ProcessError, ProcessGone, UsageError
from app.killplan import Holder, KillPlan, KillTarget, describe_sock, port_holders
from app.pidguard import Identity, Pinned, create_time_now, pin, wait_exit
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
RESPAWN_WATCH = 1.0  # seconds (at most the timeout) to watch a freed port for a restarted owner
_WATCH_STEP = 0.1
_SHOWN = 5  # processes named in one summary line, then "+N more"


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


# --- what the flow says ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceHint:
    """The unit or container a process belongs to, and the command that stops it for good."""

    label: str  # "nginx.service", "container web"
    stop: str | None = None  # "systemctl stop nginx.service"


ServiceDescriber = Callable[[int], ServiceHint | None]


def describe_service(pid: int) -> ServiceHint | None:
    """The service ``pid`` belongs to (a systemd unit, a container: :func:`app.service.service_of`),
    for the respawn message: its name and the command that stops it for good."""
    from app.service import service_of

    svc = service_of(pid)
    if svc is None:
        return None
    return ServiceHint(svc.label(), svc.stop_command())


@dataclass(frozen=True, slots=True)
class KillEvent:
    """One step of the flow, for a progress line: ``text`` says it in a sentence."""

    kind: str  # "waiting", "exited", "checking", "respawned"
    text: str
    pids: tuple[int, ...] = ()
    until: float | None = None  # "waiting": the flow clock's time when the wait ends (countdown)


@dataclass(frozen=True, slots=True)
class Sent:
    """A signal that was really sent."""

    ident: Identity
    signal: signal.Signals
    phase: str  # "primary", "tree" (a descendant), "workers", "escalate"


@dataclass(frozen=True, slots=True)
class Respawn:
    """A new process that bound the port again after the kill (a supervisor restarted it)."""

    sock: str  # describe_sock of what it holds
    pid: int
    name: str
    ppid: int | None
    parent: str
    service: ServiceHint | None = None

    def describe(self, what: str) -> str:
        by = f"{printable(self.parent, 40) or '?'} (pid {self.ppid}" if self.ppid else "? (pid ?"
        if self.service is not None:
            by += f"; {printable(self.service.label, 80)}"
        return f"{what} respawned as pid {self.pid} ({printable(self.name, 40) or '?'}) by {by})"

    @property
    def stop_hint(self) -> str | None:
        """The command that stops it for good, when known: the service's, else its parent's tree."""
        if self.service is not None and self.service.stop:
            return printable(self.service.stop, 200)
        if self.ppid and self.ppid not in killplan.protected_pids():
            return f"portscope kill --pid {self.ppid} --tree"
        return None


def _whos(idents: Sequence[Identity]) -> str:
    names = [i.who for i in idents]
    if len(names) > _SHOWN:
        names = [*names[: _SHOWN - 1], f"+{len(names) - _SHOWN + 1} more"]
    return ", ".join(names)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else ('es' if word.endswith('s') else 's')}"


@dataclass
class KillReport:
    """What happened, in facts (the lines are derived from them, never the other way round)."""

    plan: KillPlan
    signal: signal.Signals
    tree: bool = False
    timeout: float = DEFAULT_TIMEOUT
    sent: list[Sent] = field(default_factory=list)
    exits: list[Identity] = field(default_factory=list)  # seen exiting (signalled or not)
    alive: list[Identity] = field(default_factory=list)  # signalled, still running
    gone: list[ProcessGone] = field(default_factory=list)  # exited before anything reached them
    skipped: list[Identity] = field(default_factory=list)  # survivors gone at the SIGKILL: none sent
    errors: list[ProcessError] = field(default_factory=list)  # changed, denied: not signalled
    escalated: bool = False
    checked: bool = False  # the ports were re-checked
    holders: list[Holder] = field(default_factory=list)  # what holds the ports afterwards (not new)
    respawns: list[Respawn] = field(default_factory=list)

    @property
    def target(self) -> KillTarget:
        """The first primary owner (the one target of a ``--pid`` plan)."""
        return self.plan.targets[0]

    @property
    def signalled(self) -> list[Identity]:
        """Everything the first signal reached, in the order sent (tree descendants before their root)."""
        return [s.ident for s in self.sent if s.phase != "escalate"]

    @property
    def exited(self) -> bool:
        """Everything that was signalled has exited."""
        return not self.alive

    @property
    def port_free(self) -> bool | None:
        """After the re-check: nothing holds the ports (``None`` when they were not checked)."""
        return None if not self.checked else not (self.holders or self.respawns)

    def lines(self) -> list[str]:
        """A human summary, one fact a line, each name escaped."""
        sig = signal_name(self.signal)
        out: list[str] = []
        first = [s.ident for s in self.sent if s.phase == "primary"]
        tree = sum(1 for s in self.sent if s.phase == "tree")
        if first or tree:
            out.append(
                f"sent {sig} to {_whos(first) or 'no primary owner'}"
                + (f" and {tree} descendant(s)" if tree else "")
            )
        workers = [s.ident for s in self.sent if s.phase == "workers"]
        if workers:
            out.append(
                f"sent {sig} to {_plural(len(workers), 'worker')} still running after "
                f"{self.timeout:g}s: {_whos(workers)}"
            )
        killed = [s.ident for s in self.sent if s.phase == "escalate"]
        if killed:
            out.append(f"still running after {sig}: sent SIGKILL to {_whos(killed)}")
        for ident in self.skipped:
            out.append(f"{ident.who} exited before SIGKILL was sent (none sent to its pid)")
        if self.sent:
            if self.alive:
                out.append(f"still running: {_whos(self.alive)}")
            else:
                primary = {t.pid for t in self.plan.primary}
                named = [i for i in self.exits if i.pid in primary] or self.exits[:1]
                others = len(self.exits) - len(named)
                if named:
                    out.append(
                        f"{_whos(named)} exited"
                        + (f" (and {_plural(others, 'other process')})" if others else "")
                    )
        out.extend(h.describe() for h in self.holders)
        for r in self.respawns:
            out.append(r.describe(self.plan.what))
            hint = r.stop_hint
            if hint:
                out.append(f"to stop it for good: {hint}")
        return out

    def as_dict(self) -> dict[str, object]:
        """The ``--json`` shape (documented in README, pinned by a test). Strings are raw, as in
        ``list --json`` (JSON escapes control characters itself)."""

        def proc(t: KillTarget) -> dict[str, object]:
            return {
                "pid": t.pid,
                "name": t.name,
                "user": t.user,
                "command": t.command,
                "started": t.create_time,
                "ports": list(t.ports),
            }

        def ident(i: Identity) -> dict[str, object]:
            return {"pid": i.pid, "name": i.name}

        return {
            "target": self.plan.what,
            "port": self.plan.port,
            "proto": self.plan.proto.value if self.plan.proto else None,
            "signal": signal_name(self.signal),
            "plan": {
                "primary": [proc(t) for t in self.plan.primary],
                "workers": [proc(t) for t in self.plan.workers],
            },
            "sent": [
                {**ident(s.ident), "signal": signal_name(s.signal), "phase": s.phase} for s in self.sent
            ],
            "exited": [ident(i) for i in self.exits],
            "alive": [ident(i) for i in self.alive],
            "errors": [
                {"pid": e.pid, "kind": _error_kind(e), "message": str(e)} for e in [*self.gone, *self.errors]
            ],
            "holders": [
                {"socket": describe_sock(h.sock), "pid": h.pid, "name": h.name, "user": h.user}
                for h in self.holders
            ],
            "respawned": [
                {
                    "pid": r.pid,
                    "name": r.name,
                    "parent_pid": r.ppid,
                    "parent": r.parent,
                    "service": r.service.label if r.service else None,
                    "stop": r.service.stop if r.service and r.service.stop else r.stop_hint,
                }
                for r in self.respawns
            ],
            "port_free": self.port_free,
        }


def _error_kind(e: ProcessError) -> str:
    for cls, kind in ((ProcessGone, "gone"), (ProcessChanged, "changed"), (ProcessDenied, "denied")):
        if isinstance(e, cls):
            return kind
    return "refused" if isinstance(e, KillRefused) else "error"


# --- the flow ----------------------------------------------------------------------------------


class KillFlow:
    """One kill, step by step: :meth:`signal`, then (if the caller confirms) :meth:`escalate`, then
    :meth:`finish`. Holds a pidfd per process between the steps; use it as a context manager (or
    call :meth:`close`) so they are released on every path."""

    def __init__(
        self,
        plan: KillPlan,
        sig: signal.Signals = signal.SIGTERM,
        *,
        tree: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        force: bool = False,
        on_event: Callable[[KillEvent], None] | None = None,
        describe: ServiceDescriber = describe_service,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.sig = sig
        self.tree = tree
        self.timeout = max(0.0, timeout)
        self.force = force
        self.report = KillReport(plan, sig, tree=tree, timeout=self.timeout)
        self._on_event = on_event
        self._describe = describe
        self._clock = clock
        self._pins: dict[int, Pinned] = {}  # every process held: planned ones and tree descendants
        self._signalled: dict[int, Pinned] = {}  # those a signal reached, in order
        self._began: float | None = None  # when the first signal went out (create_time's clock)
        self._step = "planned"

    def __enter__(self) -> KillFlow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for p in self._pins.values():
            p.close()

    def _emit(self, kind: str, text: str, pids: Sequence[int] = (), until: float | None = None) -> None:
        if self._on_event is not None:
            self._on_event(KillEvent(kind, text, tuple(pids), until))

    # --- step 3: signal and wait

    def signal(self) -> list[Identity]:
        """Signal the primary owners, wait; signal the holders still alive, wait. Returns the
        processes still running (signalled and alive). Raises KillRefused (nothing sent) when the
        plan holds a protected pid and ``force`` is not given."""
        if self._step != "planned":
            raise RuntimeError("KillFlow.signal() runs once")
        self._step = "signalled"
        if not self.force:
            for target, reason in self.plan.protected():
                raise KillRefused(target.pid, target.name, reason=reason)
        primary = {t.pid for t in self.plan.primary}
        for t in self.plan.targets:  # pin all first: the wait watches workers too
            try:
                self._pins[t.pid] = pin(t.identity)
            except ProcessGone as exc:
                if t.pid in primary:
                    self.report.gone.append(exc)
                else:  # a worker that ended since the plan (a master recycling its workers)
                    self.report.exits.append(t.identity)
            except ProcessError as exc:
                self.report.errors.append(exc)
        self._began = create_time_now()
        first = [self._pins[t.pid] for t in self.plan.primary if t.pid in self._pins]
        sent = self._round(first, "primary")
        if sent:
            self._wait(f"{self._sig} sent to {_whos([p.ident for p in sent])}, waiting {self.timeout:g} s")
        rest = [self._pins[t.pid] for t in self.plan.workers if t.pid in self._pins]
        rest = [p for p in rest if p.pid not in self._signalled and not p.exited()]
        if rest:
            later = self._round(rest, "workers")
            if later:
                self._wait(
                    f"{_plural(len(later), 'worker')} still running: {self._sig} sent to "
                    f"{_whos([p.ident for p in later])}, waiting {self.timeout:g} s"
                )
        return self._survivors()

    @property
    def _sig(self) -> str:
        return signal_name(self.sig)

    @property
    def survivors(self) -> list[Identity]:
        return self._survivors()

    def _survivors(self) -> list[Identity]:
        alive = [p.ident for p in self._signalled.values() if not p.exited()]
        self.report.alive = alive
        return alive

    def _round(self, pins: list[Pinned], phase: str) -> list[Pinned]:
        """Send the signal to ``pins`` (with ``tree`` each one's descendants first). Returns the
        pins it reached."""
        reached: list[Pinned] = []
        guard = killplan.protected_pids() if self.tree else {}
        for p in pins:
            if self.tree:
                for child in self._descendants(p):
                    if (child.pid in guard and not self.force) or child.pid in self._signalled:
                        continue
                    held = self._pins.get(child.pid)
                    if held is None:
                        try:
                            held = pin(child)
                        except (ProcessGone, ProcessChanged):
                            continue  # exited or replaced since it was listed: not what was meant
                        except ProcessError as exc:
                            self.report.errors.append(exc)
                            continue
                        self._pins[child.pid] = held
                    if self._send(held, self.sig, "tree"):
                        reached.append(held)
            if self._send(p, self.sig, phase):
                reached.append(p)
        if self.sig not in (signal.SIGKILL, signal.SIGCONT):
            for p in reached:  # a stopped process only acts on the signal once continued
                if p.stopped():
                    try:
                        p.send(signal.SIGCONT)
                    except ProcessError:
                        pass
        return reached

    def _descendants(self, p: Pinned) -> list[Identity]:
        """``p``'s descendants as they are now, deepest first (listed before any is signalled)."""
        try:
            children = psutil.Process(p.pid).children(recursive=True)  # parents before children
        except psutil.Error:
            return []
        out: list[Identity] = []
        for c in children:
            try:
                with c.oneshot():
                    ident = Identity(c.pid, c.create_time(), c.name(), _user(c))
            except psutil.Error:
                continue
            out.append(ident)
        out.reverse()
        return out

    def _send(self, p: Pinned, sig: Signals, phase: str) -> bool:
        try:
            p.send(sig)
        except ProcessGone as exc:
            if phase == "escalate":
                self.report.skipped.append(p.ident)
            else:
                self.report.gone.append(exc)
            return False
        except ProcessError as exc:
            if phase == "escalate" and isinstance(exc, ProcessChanged):
                self.report.skipped.append(p.ident)
            else:
                self.report.errors.append(exc)
            return False
        self.report.sent.append(Sent(p.ident, sig, phase))
        self._signalled.setdefault(p.pid, p)
        return True

    def _wait(self, text: str) -> None:
        waiting = [p for p in self._pins.values() if not p.exited()]
        self._emit("waiting", text, [p.pid for p in waiting], until=self._clock() + self.timeout)
        wait_exit(waiting, self.timeout, on_exit=self._exited, clock=self._clock)

    def _exited(self, p: Pinned) -> None:
        if p.ident not in self.report.exits:
            self.report.exits.append(p.ident)
            self._emit("exited", f"{p.ident.who} exited", [p.pid])

    # --- step 4: escalate

    def escalate(self) -> list[Identity]:
        """SIGKILL every survivor that is still the process signalled (its pin), then wait.
        Survivors that exited (or whose pid was recycled) meanwhile are skipped and reported so.
        Returns those still running."""
        if self._step != "signalled":
            raise RuntimeError("KillFlow.escalate() comes after signal()")
        self._step = "escalated"
        self.report.escalated = True
        guard = killplan.protected_pids()
        reached = []
        asked = {i.pid for i in self.report.alive}  # what the caller was told is still running
        for p in list(self._signalled.values()):
            if p.exited():
                if p.pid in asked:  # it exited (or its pid was recycled) at the question
                    self.report.skipped.append(p.ident)
                self._exited(p)
                continue
            if p.pid in guard and not self.force:
                continue
            if self._send(p, signal.SIGKILL, "escalate"):
                reached.append(p)
        if reached:
            self._wait(f"SIGKILL sent to {_whos([p.ident for p in reached])}, waiting {self.timeout:g} s")
        return self._survivors()

    # --- step 5: re-check

    def finish(self, collector: Collector | None = None, *, watch: float = RESPAWN_WATCH) -> KillReport:
        """Re-check the plan's ports with ``collector`` (none: skip) and release every pin.

        When the ports are free, they are watched up to ``watch`` seconds (at most the timeout)
        for a new process binding them again: a respawn."""
        self._step = "finished"
        try:
            for p in self._signalled.values():
                if p.exited():
                    self._exited(p)
            self._survivors()
            if collector is not None and self.plan.ports:
                self._recheck(collector, min(watch, self.timeout))
        finally:
            self.close()
        return self.report

    def _recheck(self, collector: Collector, watch: float) -> None:
        ports = sorted({port for _, port in self.plan.ports})
        label = ", ".join(map(str, ports[:3])) + (" ..." if len(ports) > 3 else "")
        self._emit(
            "checking",
            f"checking port {label}" + (f" (watching {watch:g} s for a restart)" if watch else ""),
            until=self._clock() + watch,
        )
        deadline = self._clock() + watch
        while True:
            holders = port_holders(self.plan.ports, collector)
            new = [h for h in holders if self._is_new(h)]
            if self.report.alive or self._clock() >= deadline:
                break
            # A holder whose owner the look did not see is looked at again within the watch: a
            # process that bound the port after the look listed the processes (a restart at
            # that moment) is seen by the next look.
            if new or (holders and all(h.pid is not None for h in holders)):
                break
            time.sleep(min(_WATCH_STEP, max(0.0, deadline - self._clock())))
        self.report.checked = True
        self.report.holders = [h for h in holders if h not in new]
        seen: set[int] = set()
        for h in new:
            assert h.pid is not None
            if h.pid in seen:
                continue
            seen.add(h.pid)
            respawn = self._respawn(h)
            self.report.respawns.append(respawn)
            self._emit("respawned", respawn.describe(self.plan.what), [h.pid])

    def _is_new(self, h: Holder) -> bool:
        """A restart of what was killed: a listener whose process started after the signal went
        out, is none of the processes planned, and is their kin (the same parent, as a supervisor's
        next child, or the same name). A client connection that happens to get the port number as
        its local port, or an unrelated program binding it, is a holder, not a respawn."""
        if not h.sock.listening or h.pid is None or h.create_time is None or self._began is None:
            return False
        known = self._pins.get(h.pid)
        if known is not None and abs(known.ident.create_time - h.create_time) < 0.01:
            return False
        if h.create_time < self._began - 0.02:  # start times are cut to clock ticks
            return False
        targets = self.plan.targets
        return h.ppid in {t.ppid for t in targets if t.ppid} or h.name in {t.name for t in targets}

    def _respawn(self, h: Holder) -> Respawn:
        assert h.pid is not None
        ppid = h.ppid
        parent = read_process(ppid) if ppid else None
        try:
            service = self._describe(h.pid)
        except Exception:  # a describer must never break the report
            service = None
        return Respawn(describe_sock(h.sock), h.pid, h.name, ppid, parent.name if parent else "", service)


def _user(proc: psutil.Process) -> str:
    try:
        return proc.username()
    except (psutil.Error, KeyError):  # KeyError: a uid with no passwd entry
        return ""


def kill(
    what: KillTarget | KillPlan,
    sig: signal.Signals = signal.SIGTERM,
    *,
    tree: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    force: bool = False,
    escalate: bool = False,
    collector: Collector | None = None,
    on_event: Callable[[KillEvent], None] | None = None,
) -> KillReport:
    """The whole flow with nothing asked: signal, wait, optionally escalate, re-check.

    Raises the first error (ProcessGone, ProcessChanged, ProcessDenied, KillRefused) when nothing
    at all could be signalled."""
    plan = what if isinstance(what, KillPlan) else KillPlan.of(what)
    with KillFlow(plan, sig, tree=tree, timeout=timeout, force=force, on_event=on_event) as flow:
        survivors = flow.signal()
        report = flow.report
        if not report.sent and (report.errors or report.gone):
            raise (report.errors or report.gone)[0]
        if survivors and escalate and sig != signal.SIGKILL:
            flow.escalate()
        return flow.finish(collector)
