"""Entry point: signal handling, standard streams, dispatch, and the one place that turns errors
into exit codes.

Each subcommand lives in its own module ``app/cli/cmd_<name>.py`` exposing
``register(subparsers)`` (adds its parser, sets ``func``) and keeps heavy imports inside its
handler so ``portscope --help`` and ``portscope who`` start fast.

This module imports only ``os``, ``sys`` and ``_signal`` at its top (nothing of ``app``): :func:`main`
installs the signal handlers first, so Ctrl-C or SIGTERM during start-up (even the import of
``app.errors``, argparse, the commands' imports) ends in one line and an exit code, never a
traceback or a death by signal.
"""

from __future__ import annotations

# signal without its enum wrappers: `import signal` costs 3 ms (enum, functools), a window in which
# Ctrl-C would still end in a traceback.
import _signal
import os
import sys

INTERRUPT = 130  # = app.exitcodes.INTERRUPT, known before anything is imported

TYPE_CHECKING = False  # not typing's: importing typing (contextlib, ...) is a window for Ctrl-C
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import FrameType
    from typing import IO, Any

# The order of subcommands in --help; any other app/cli/cmd_*.py module is listed after these.
ORDER = (
    "list",
    "who",
    "explain",
    "ifaces",
    "kill",
    "close",
    "test",
    "scan",
    "free",
    "watch",
    "baseline",
    "metrics",
    "serve",
    "config",
    "completion",
)
# Commands for which SIGTERM is the normal way to stop: exit 0 (``None`` is the dashboard).
STOPPED_BY_SIGTERM = (None, "watch")


def command_names() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    found = {n[4:-3] for n in os.listdir(here) if n.startswith("cmd_") and n.endswith(".py")}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def __getattr__(name: str) -> Any:
    """``app.cli.main.build_parser`` / ``Parser`` / ``interval_arg``, loaded on first use."""
    if name in ("build_parser", "Parser"):
        from app.cli import parser

        return getattr(parser, name)  # Parser: made on first use (argparse is imported then)
    if name == "interval_arg":
        from app.cli.common import interval_arg

        return interval_arg
    raise AttributeError(name)


# --------------------------------------------------------------------------------------- signals


class _EarlyTerm(BaseException):
    """SIGTERM before app.errors (and its Terminated) could be imported."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    errors = sys.modules.get("app.errors")
    terminated = getattr(errors, "Terminated", None)
    raise terminated() if terminated is not None else _EarlyTerm()


def _install_signals() -> Callable[[], None]:
    """SIGTERM raises Terminated (the command may install its own later), Ctrl-C raises
    KeyboardInterrupt. Returns a function that puts the previous handlers back."""
    try:
        old_term = _signal.signal(_signal.SIGTERM, _on_sigterm)
        old_int = _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    except ValueError:  # not the main thread (main() called from a test's worker thread)
        return lambda: None

    def restore() -> None:
        _signal.signal(_signal.SIGTERM, old_term)
        _signal.signal(_signal.SIGINT, old_int)

    return restore


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (before parsing: SIGTERM may arrive during it)."""
    args = iter(argv)
    for arg in args:
        if arg in ("--interval", "--color", "--colour"):  # the top-level options that take a value
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


# -------------------------------------------------------------------------------- standard streams


def _reopen_closed_stdio() -> None:
    """Put /dev/null on a closed fd 0, 1 or 2 (``portscope list >&-``), so no file or socket
    opened later lands there and receives our output. stdout's /dev/null is opened read-only:
    writing to it fails with EBADF, which the guard reports as "standard output is closed"."""
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            new = os.open(os.devnull, flags | os.O_CLOEXEC)
        except OSError:
            continue
        if new != fd:
            os.dup2(new, fd, inheritable=False)
            os.close(new)
    if sys.stdin is None:
        sys.stdin = open(0, errors="surrogateescape", closefd=False)  # noqa: SIM115
    if sys.stdout is None:
        sys.stdout = open(1, "w", errors="backslashreplace", closefd=False)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(2, "w", errors="backslashreplace", closefd=False)  # noqa: SIM115


def _output_error(exc: OSError) -> Exception:
    import errno

    from app.errors import OutputError

    reason = "it is closed" if exc.errno == errno.EBADF else exc.strerror or str(exc)
    return OutputError(f"cannot write to standard output: {reason}")


class GuardedOutput:
    """sys.stdout for the commands: a write or flush that fails (ENOSPC, EIO, EBADF) raises
    :class:`~app.errors.OutputError` (one line, exit 74) instead of an OSError that a command
    might take for something else. A reader that went away stays a BrokenPipeError (exit 0)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _output_error(exc) from None

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _output_error(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _tolerant_stdout() -> None:
    """Never fail on a character the output encoding lacks (PYTHONIOENCODING=ascii, LANG=C on an
    old Python): write it as a backslash escape instead."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


def _silence_stdout() -> None:
    """After the reader went away (``| head``) or stdout failed, point fd 1 at /dev/null so the
    interpreter's final flush of what is still buffered cannot fail ("Exception ignored ...")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _say(message: str) -> None:
    """The one diagnostic line of an error, escaped and cut."""
    try:
        from app.textsafe import diagnostic

        line = diagnostic(message)
    except BaseException:  # a second Ctrl-C while importing it: still no traceback
        line = message[:500].encode("ascii", "backslashreplace").decode()
    try:
        sys.stderr.write(f"portscope: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# ------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None, *, keep_signals: bool = False) -> int:
    """Run one command line; its exit code. ``keep_signals`` (:func:`run`, which ends the
    process): on return SIGTERM ends the process at once with this code, instead of the old
    handlers being put back."""
    restore_signals = _install_signals()  # first: before anything slow can be interrupted
    import gc  # (built in)

    collecting = gc.isenabled()  # a one-shot command turns the collector off (common.one_shot)
    saved_stdout = sys.stdout
    args = list(sys.argv[1:] if argv is None else argv)
    code = _terminated_code(args)  # what a SIGTERM now would mean
    try:
        try:
            from app import errors, exitcodes  # noqa: F401 - _main's except clauses need them
        except KeyboardInterrupt:
            os.write(2, b"portscope: interrupted\n")
            code = INTERRUPT
            return code
        except _EarlyTerm:
            return code
        code = _main(args)
        return code
    finally:
        if keep_signals:
            _exit_on_sigterm(code)
        else:
            restore_signals()
        if collecting:
            gc.enable()  # main() called in a process that goes on (tests, an embedding program)
        if isinstance(sys.stdout, GuardedOutput):
            sys.stdout = saved_stdout if saved_stdout is not None else sys.stdout.stream


def _terminated_code(argv: Sequence[str]) -> int:
    """The exit code of a command stopped by SIGTERM (= exitcodes.OK or TERMINATED)."""
    return 0 if _command_in(argv) in STOPPED_BY_SIGTERM else 143


# Commands that only read and print, which end without the interpreter's teardown (see run()).
QUICK_EXIT = ("who", "list")


def run() -> int:
    """The console script's entry (and ``python -m app``'s): :func:`main`, then the end of the
    process.

    After ``who`` or ``list`` nothing is left to do but exit, and the interpreter's teardown
    (freeing every module and object one by one) costs ``who`` on an idle machine about a
    third of a bare Python start: those two flush standard output and error and end with
    ``os._exit``, unless something still expects the teardown (an ``atexit`` handler, a thread
    other than this one) or a flush fails (the normal exit reports it). Anything else returns
    the code for ``SystemExit``.

    SIGTERM once the command is done (its output written, the process on its way out) ends the
    process with the command's own code, never as a death by signal."""
    args = sys.argv[1:]
    try:
        code = main(keep_signals=True)
    except KeyboardInterrupt:  # Ctrl-C in the instant between the command's end and its return
        return INTERRUPT
    except _EarlyTerm:
        return _terminated_code(args)
    except BaseException as exc:  # likewise SIGTERM (app.errors.Terminated)
        errors = sys.modules.get("app.errors")
        if errors is None or not isinstance(exc, errors.Terminated):
            raise
        return _terminated_code(args)
    try:
        if _command_in(args) in QUICK_EXIT and not _teardown_expected():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    except BaseException:  # a closed pipe, a full disk (the normal exit reports it), a late Ctrl-C
        pass
    return code


def _exit_on_sigterm(code: int) -> None:
    try:
        _signal.signal(_signal.SIGTERM, lambda _signum, _frame: _exit_now(code))
    except ValueError:  # not the main thread
        pass


def _exit_now(code: int) -> None:
    """SIGTERM once the command is done: what is buffered is written, then the process ends."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # a closed pipe, or a flush the signal interrupted
        pass
    os._exit(code)


def _teardown_expected() -> bool:
    """Whether something registered for the interpreter's exit: an ``atexit`` handler (logging,
    multiprocessing, a test's), or a thread other than the main one (exit waits for it)."""
    import atexit

    count = getattr(atexit, "_ncallbacks", None)  # (CPython; elsewhere: assume there are some)
    if count is None or count() > 0:
        return True
    threading = sys.modules.get("threading")
    return threading is not None and threading.active_count() > 1


def _main(argv: list[str]) -> int:
    from app import exitcodes
    from app.errors import PortscopeError, Terminated

    command = _command_in(argv)
    try:
        _reopen_closed_stdio()
        _tolerant_stdout()
        sys.stdout = GuardedOutput(sys.stdout)
        try:
            code = _dispatch(argv)
        except SystemExit as exc:  # --help, --version, a bad argument
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()  # a closed pipe or a full disk shows up here, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return exitcodes.OK
    except KeyboardInterrupt:
        _say("interrupted")
        return exitcodes.INTERRUPT
    except PortscopeError as exc:
        return _error_code(exc)
    except Terminated:
        return exitcodes.OK if command in STOPPED_BY_SIGTERM else exitcodes.TERMINATED


def _error_code(exc: Exception) -> int:
    """An error that reached the top: one line on stderr and its exit code."""
    from app import exitcodes
    from app.errors import CollectorUnavailable, OutputError, UsageError

    _say(str(exc))
    if isinstance(exc, OutputError):
        _silence_stdout()
        return exitcodes.OUTPUT
    if isinstance(exc, UsageError):
        return exitcodes.USAGE
    if isinstance(exc, CollectorUnavailable):
        return exitcodes.UNAVAILABLE
    return exitcodes.NEGATIVE


def _dispatch(argv: list[str]) -> int:
    from app.cli.parser import parse_args

    args = parse_args(argv)  # argparse only where the command line needs it
    if args.command is None:
        if isinstance(sys.stdout, GuardedOutput):
            sys.stdout = sys.stdout.stream  # the dashboard owns the terminal
        return launch_dashboard(args)
    return int(args.func(args))


def launch_dashboard(args: Any) -> int:
    """Bare ``portscope``: the live dashboard (Textual is imported here only)."""
    from app import exitcodes

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        sys.stderr.write("portscope: the dashboard needs a terminal; try 'portscope list' for a table\n")
        return exitcodes.USAGE
    from app.tui.app import PortscopeApp

    PortscopeApp(interval=args.interval, alert_exposed=args.alert_exposed, config=args.config).run()
    return exitcodes.OK
