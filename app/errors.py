"""portscope's own exceptions. Process-related ones carry the pid and the process name."""

from __future__ import annotations

from app.textsafe import printable


class PortscopeError(Exception):
    """Base class: anything portscope raises on purpose. ``str()`` is a user-facing line."""


class UsageError(PortscopeError):
    """Bad user input (a port, a host:port, a range, a filter term, a file)."""


class ProcessError(PortscopeError):
    """Something about one process went wrong.

    Each subclass carries its default message (``default``, formatted with ``pid``, ``name`` and
    ``who``), so every raiser says the same thing; an explicit ``message`` overrides it."""

    default = "pid {pid}: error"

    def __init__(self, pid: int, name: str | None = None, message: str | None = None) -> None:
        self.pid = pid
        self.name = name or "?"
        super().__init__(message if message is not None else self.default.format(pid=pid, who=self.who))

    @property
    def who(self) -> str:
        return f"pid {self.pid} ({printable(self.name, 40)})"


class ProcessGone(ProcessError):
    """The process exited (or never existed)."""

    default = "pid {pid} already exited"


class NoSuchPid(ProcessGone):
    """No process has this pid (the kernel says so: ``kill(pid, 0)`` is ESRCH)."""

    default = "pid {pid} does not exist"


class ProcessDenied(ProcessError):
    """The OS refused access to the process."""

    default = "permission denied: {who}; try sudo"


class ProcessChanged(ProcessError):
    """The pid now belongs to a different process (pid reuse)."""

    default = "pid {pid} is now a different process"


class KillRefused(ProcessError):
    """The target is protected (pid 0/1, portscope itself or an ancestor); ``force`` overrides."""

    default = "refusing to signal {who} (use --force)"


class NoVisibleOwner(PortscopeError):
    """Something holds a port (or a socket) but no process that holds it can be seen."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(f"{what} is in use but has no visible owner: {hint}")
        self.what = what
        self.hint = hint


class CollectorUnavailable(PortscopeError):
    """A socket source cannot run here (no netlink, no /proc, ...)."""
