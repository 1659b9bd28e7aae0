"""portscope's own exceptions. Process-related ones carry the pid and the process name."""

from __future__ import annotations


class PortscopeError(Exception):
    """Base class: anything portscope raises on purpose. ``str()`` is a user-facing line."""


class UsageError(PortscopeError):
    """Bad user input (a port, a host:port, a range, a filter term, a file)."""


class ProcessError(PortscopeError):
    """Something about one process went wrong."""

    def __init__(self, pid: int, name: str | None, message: str) -> None:
        super().__init__(message)
        self.pid = pid
        self.name = name or "?"

    @property
    def who(self) -> str:
        return f"pid {self.pid} ({self.name})"


class ProcessGone(ProcessError):
    """The process exited (or never existed)."""


class ProcessDenied(ProcessError):
    """The OS refused access to the process."""


class ProcessChanged(ProcessError):
    """The pid now belongs to a different process (pid reuse)."""


class CollectorUnavailable(PortscopeError):
    """A socket source cannot run here (no netlink, no /proc, ...)."""


class OutputError(PortscopeError):
    """Output could not be written: standard output closed, a full disk, an I/O error. Raised for
    standard output by the CLI's guard (app/cli/main.py) and for files by app/fileout.py."""


class Terminated(BaseException):
    """SIGTERM arrived before the command installed its own handling (see app/cli/main.py).
    A BaseException, like KeyboardInterrupt, so ``except Exception`` does not swallow it."""
