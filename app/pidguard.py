"""The same-process guard, written once: signal only the process that was shown, and call it gone
only when the kernel says so.

psutil guards every signal with ``_raise_if_pid_reused`` (pid and start time checked right before
``kill()``). :func:`pin` does that check once per process and keeps the proof: on Linux it opens a
pidfd *first* and then compares the start time, so the pidfd refers to exactly the process that was
checked. Every later signal goes through that pidfd: a pid that exits and is recycled while portscope
waits (or while a "send SIGKILL?" question is open) can never be hit, the kernel answers ESRCH.
Without pidfds each signal re-checks the start time right before ``kill()``, as psutil does.

"Gone" is the kernel's word, never "/proc could not be read":

- with a pidfd, the pidfd polls readable once the whole thread group has exited (a zombie that its
  parent has not reaped yet is dead; a zombie thread-group *leader* whose other threads still run is
  alive, and still holds its sockets);
- without one, ``kill(pid, 0)`` is ESRCH, or /proc/PID/stat shows a dead process, or the pid now
  belongs to a process with another start time.

Under ``hidepid=2`` another user's process has no /proc entry at all, yet ``kill(pid, 0)`` says EPERM:
it exists, and that is a permission problem (:class:`~app.errors.ProcessDenied`), not an exit.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psutil

from app.errors import NoSuchPid, ProcessChanged, ProcessDenied, ProcessError, ProcessGone
from app.fast import procfs
from app.textsafe import printable

SAME_START = 0.01  # seconds: start times closer than this are the same process
PID_LIMIT = 2**31 - 1  # no pid is above this (kill() takes a signed 32-bit pid)
_LINUX = sys.platform.startswith("linux")


@dataclass(frozen=True, slots=True)
class Identity:
    """One process as it was shown: pid *and* start time (together they never name another one)."""

    pid: int
    create_time: float
    name: str = ""
    user: str = ""

    @property
    def who(self) -> str:
        return f"pid {self.pid} ({printable(self.name, 40) or '?'})"


def create_time_now() -> float:
    """Now, on the clock of psutil's ``create_time`` (to tell a process that started after a moment).

    On Linux ``create_time`` is the boot time (whole seconds, from /proc/stat) plus the start in
    clock ticks since boot, up to a second away from ``time.time()``; the same sum for "now" is
    within a tick of it."""
    if _LINUX and hasattr(time, "CLOCK_BOOTTIME"):
        try:
            return psutil.boot_time() + time.clock_gettime(time.CLOCK_BOOTTIME)
        except (OSError, psutil.Error):
            pass
    return time.time()


def kernel_has(pid: int) -> bool:
    """Whether a process ``pid`` exists, asked of the kernel (``kill(pid, 0)``): another user's
    process (EPERM) and a zombie count; a missing /proc entry (hidepid) does not decide it."""
    if not 0 < pid <= PID_LIMIT:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, it is not ours
        return True
    return True


def denied(pid: int, name: str | None, user: str | None = None) -> ProcessDenied:
    """The one "permission denied" for a process, naming its owner when known: a process the kernel
    has but /proc does not show (hidepid) is another user's."""
    hidden = not name and _LINUX and not os.path.exists(f"/proc/{pid}")
    return ProcessDenied(pid, name or None, user=user or None, hidden=hidden)


def start_time(pid: int, name: str | None = None, user: str | None = None) -> float:
    """The start time of ``pid`` now (the same clock as psutil's ``create_time``).

    Raises ProcessGone when the kernel has no such process, ProcessDenied when it exists but cannot
    be read (hidepid, or an OS that hides other users' processes)."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.AccessDenied:
        raise denied(pid, name, user) from None
    except psutil.NoSuchProcess:  # psutil looks in /proc: ask the kernel before calling it gone
        if kernel_has(pid):
            raise denied(pid, name, user) from None
        raise ProcessGone(pid, name) from None


def _pidfd_open(pid: int, name: str | None) -> int:
    """A pidfd for ``pid`` (-1 where pidfds are not available); ProcessGone if there is no such pid."""
    if not (hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")):
        return -1
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise ProcessGone(pid, name) from None
    except OSError:  # ENOSYS (old kernel), EMFILE, a seccomp filter...: start-time checks instead
        return -1


def _poll_exited(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class Pinned:
    """A process checked once (pid + start time) and held for signalling: a pidfd on Linux.

    Make one with :func:`pin`; close it (or use it as a context manager) when done."""

    __slots__ = ("_exited", "fd", "ident")

    def __init__(self, ident: Identity, fd: int) -> None:
        self.ident = ident
        self.fd = fd  # -1: no pidfd, every check goes by the start time
        self._exited = False

    @property
    def pid(self) -> int:
        return self.ident.pid

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1  # from now on every check goes by the start time

    def exited(self) -> bool:
        """True once the kernel says this process has exited (an unreaped zombie has exited; a
        zombie leader whose threads run has not) or its pid belongs to another process now."""
        if self._exited:
            return True
        if self.fd >= 0:
            self._exited = _poll_exited(self.fd)
            return self._exited
        pid = self.ident.pid
        if not kernel_has(pid):
            self._exited = True
            return True
        st = procfs.read_stat(pid) if _LINUX else None
        if st is not None and not st.alive:
            self._exited = True
            return True
        try:
            now = start_time(pid)
        except ProcessGone:
            self._exited = True
            return True
        except ProcessError:  # exists but unreadable: the kernel said it exists
            return False
        self._exited = abs(now - self.ident.create_time) >= SAME_START
        return self._exited

    def send(self, sig: int) -> None:
        """Send ``sig`` to this process (never to a successor on the same pid).

        Raises ProcessGone (it exited), ProcessChanged (no pidfd, and the pid was recycled) or
        ProcessDenied; nothing is sent then."""
        ident = self.ident
        if self.exited():
            raise ProcessGone(ident.pid, ident.name)
        if self.fd < 0:
            _check_same(ident)  # no pidfd: psutil's guard, right before kill()
        try:
            if self.fd >= 0:
                signal.pidfd_send_signal(self.fd, sig)
            else:
                os.kill(ident.pid, sig)
        except ProcessLookupError:
            self._exited = True
            raise ProcessGone(ident.pid, ident.name) from None
        except PermissionError:
            raise denied(ident.pid, ident.name, ident.user) from None

    def stopped(self) -> bool:
        """Stopped by SIGSTOP / Ctrl-Z (a pending SIGTERM would wait for a SIGCONT)."""
        if _LINUX:
            st = procfs.read_stat(self.ident.pid)
            return st is not None and st.state in ("T", "t")
        try:
            return psutil.Process(self.ident.pid).status() == psutil.STATUS_STOPPED
        except psutil.Error:
            return False


def _check_same(ident: Identity) -> None:
    """The guard itself: ``ident.pid`` still runs the process that started at ``ident.create_time``."""
    now = start_time(ident.pid, ident.name, ident.user)
    if abs(now - ident.create_time) >= SAME_START:
        raise ProcessChanged(ident.pid, ident.name)


def pin(ident: Identity) -> Pinned:
    """Check that ``ident`` is still the live process that was shown and hold on to it.

    The pidfd is opened *before* the start time is compared, so what was checked is what is held.
    Raises ProcessGone (it exited: a dead zombie counts), ProcessChanged (the pid was
    recycled) or ProcessDenied (it exists but cannot be read); nothing is held then."""
    if not 0 < ident.pid <= PID_LIMIT:
        raise NoSuchPid(ident.pid, ident.name)
    fd = _pidfd_open(ident.pid, ident.name)
    held = Pinned(ident, fd)
    try:
        _check_same(ident)
        if held.exited():
            raise ProcessGone(ident.pid, ident.name)
    except BaseException:
        held.close()
        raise
    return held


def signal_exact(pid: int, create_time: float, sig: int, name: str | None, user: str | None) -> None:
    """Send ``sig`` to ``pid`` only if it is still the process that started at ``create_time``."""
    with pin(Identity(pid, create_time, name or "", user or "")) as held:
        held.send(sig)


def wait_exit(
    pins: Sequence[Pinned],
    timeout: float,
    *,
    on_exit: Callable[[Pinned], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[Pinned]:
    """Wait up to ``timeout`` seconds for every pinned process to exit; return those still alive.

    pidfds wake the wait as soon as one exits; otherwise it polls at growing intervals (20 ms
    doubling to 250 ms). ``on_exit`` is called once for each process seen exiting."""
    deadline = clock() + max(0.0, timeout)
    delay = 0.02
    alive = list(pins)
    while True:
        still = []
        for p in alive:
            if p.exited():
                if on_exit is not None:
                    on_exit(p)
            else:
                still.append(p)
        alive = still
        now = clock()
        if not alive or now >= deadline:
            return alive
        step = min(delay, deadline - now)
        delay = min(delay * 2, 0.25)
        fds = [p.fd for p in alive if p.fd >= 0]
        if fds and len(fds) == len(alive):
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            poller.poll(max(1, int(step * 1000)))
        else:
            time.sleep(step)


def close_all(pins: Iterable[Pinned]) -> None:
    for p in pins:
        p.close()
