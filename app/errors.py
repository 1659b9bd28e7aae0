"""portscope's own exceptions. Process-related ones carry the pid and the process name."""

from __future__ import annotations

from app.textsafe import printable


class PortscopeError(Exception):
    """Base class: anything portscope raises on purpose. ``str()`` is a user-facing line."""


class UsageError(PortscopeError):
    """Bad user input (a port, a host:port, a range, a filter term, a file)."""


class ProcessError(PortscopeError):
    """Something about one process went wrong.

    Each subclass carries its default message (``default``, formatted with ``pid``, ``who`` and the
    subclass's own fields), so every raiser says the same thing; an explicit ``message`` overrides it."""

    default = "{who}: error"

    def __init__(self, pid: int, name: str | None = None, message: str | None = None) -> None:
        self.pid = pid
        self.name = name or "?"
        self._known = name is not None
        super().__init__(message if message is not None else self._default())

    def _default(self) -> str:
        return self.default.format(pid=self.pid, who=self.who)

    @property
    def who(self) -> str:
        """``pid 812 (nginx)`` (the name escaped), or ``pid 812`` when the name is not known."""
        return f"pid {self.pid} ({printable(self.name, 40)})" if self._known else f"pid {self.pid}"


class ProcessGone(ProcessError):
    """The process exited (or never existed)."""

    default = "pid {pid} already exited"


class NoSuchPid(ProcessGone):
    """No process has this pid (the kernel says so: ``kill(pid, 0)`` is ESRCH)."""

    default = "pid {pid} does not exist"


class ProcessDenied(ProcessError):
    """The OS refused access to the process. ``user``: whose it is; ``hidden``: it exists (the
    kernel says so) but /proc does not show it to this user (``hidepid``)."""

    default = "permission denied: {who}; try sudo"

    def __init__(
        self,
        pid: int,
        name: str | None = None,
        message: str | None = None,
        *,
        user: str | None = None,
        hidden: bool = False,
    ) -> None:
        self.user = user
        self.hidden = hidden
        super().__init__(pid, name, message)

    def _default(self) -> str:
        if self.hidden:
            return (
                f"permission denied: pid {self.pid} belongs to another user and /proc hides it "
                "(hidepid); try sudo"
            )
        if self.user:
            return f"permission denied: {self.who} belongs to {printable(self.user, 40)}; try sudo"
        return super()._default()


class ProcessChanged(ProcessError):
    """The pid now belongs to a different process (pid reuse)."""

    default = "pid {pid} is now a different process"


class KillRefused(ProcessError):
    """The target is protected (pid 0/1, portscope itself or an ancestor); ``force`` overrides.
    ``reason`` says what it is ("init", "portscope itself", ...)."""

    default = "refusing to signal {who} (use --force)"

    def __init__(
        self, pid: int, name: str | None = None, message: str | None = None, *, reason: str | None = None
    ) -> None:
        self.reason = reason
        super().__init__(pid, name, message)

    def _default(self) -> str:
        if self.reason:
            return f"refusing to signal {self.who}: it is {self.reason} (use --force)"
        return super()._default()


class NoVisibleOwner(PortscopeError):
    """Something holds a port (or a socket) but no process that holds it can be seen."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(f"{what} is in use but has no visible owner: {hint}")
        self.what = what
        self.hint = hint


class CollectorUnavailable(PortscopeError):
    """A socket source cannot run here (no netlink, no /proc, ...)."""


class OutputError(PortscopeError):
    """Output could not be written: standard output closed, a full disk, an I/O error. Raised for
    standard output by the CLI's guard (app/cli/main.py) and for files by app/fileout.py."""


class Terminated(BaseException):
    """SIGTERM arrived before the command installed its own handling (see app/cli/main.py).
    A BaseException, like KeyboardInterrupt, so ``except Exception`` does not swallow it."""
