"""Entry point: argument parsing, dispatch, and the one place that turns errors into exit codes.

Each subcommand lives in its own module ``app/cli/cmd_<name>.py`` exposing
``register(subparsers)`` (adds its parser, sets ``func``) and keeps heavy imports inside its
handler so ``portscope --help`` and ``portscope who`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from app import __version__, exitcodes
from app.errors import PortscopeError, UsageError

# The order of subcommands in --help; any other app/cli/cmd_*.py module is listed after these.
ORDER = ("list", "who", "ifaces", "kill", "test", "scan", "free", "watch", "baseline")


def command_names() -> list[str]:
    here = Path(__file__).parent
    found = {p.stem.removeprefix("cmd_") for p in here.glob("cmd_*.py")}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


class Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse quotes what the user typed ("unrecognized arguments: ..."): escape it, so a
        # newline or a terminal escape in an argument cannot split the line or reach the terminal.
        from app.textsafe import printable

        sys.stderr.write(f"{self.prog}: error: {printable(message)} (see '{self.prog} --help')\n")
        raise SystemExit(exitcodes.USAGE)


def interval_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: expected seconds, e.g. 2") from None
    if not 0.2 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: must be from 0.2 to 3600 seconds")
    return value


def build_parser() -> Parser:
    parser = Parser(
        prog="portscope",
        description="Who owns this port, and what do I do about it? "
        "Run with no command for the live dashboard.",
    )
    parser.add_argument("--version", action="version", version=f"portscope {__version__}")
    parser.add_argument(
        "--interval",
        type=interval_arg,
        default=2.0,
        metavar="S",
        help="dashboard refresh interval (default 2)",
    )
    parser.add_argument(
        "--alert-exposed",
        action="store_true",
        help="dashboard: bell and notification when a new listener is reachable beyond loopback",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in command_names():
        module = importlib.import_module(f"app.cli.cmd_{name}")
        module.register(sub)
    for command in sub.choices.values():  # `portscope who --version` works too
        if "--version" not in command._option_string_actions:
            command.add_argument("--version", action="version", version=f"portscope {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_stdout()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return launch_dashboard(args)
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler, not at exit
        return code
    except UsageError as exc:
        sys.stderr.write(f"portscope: {exc}\n")
        return exitcodes.USAGE
    except PortscopeError as exc:
        sys.stderr.write(f"portscope: {exc}\n")
        return exitcodes.NEGATIVE
    except KeyboardInterrupt:
        sys.stderr.write("portscope: interrupted\n")
        return exitcodes.INTERRUPT
    except BrokenPipeError:
        _silence_stdout()
        return exitcodes.OK


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
    """After the reader went away (``| head``), stop Python from complaining at exit."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def launch_dashboard(args: argparse.Namespace) -> int:
    """Bare ``portscope``: the live dashboard (Textual is imported here only)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        sys.stderr.write("portscope: the dashboard needs a terminal; try 'portscope list' for a table\n")
        return exitcodes.USAGE
    from app.tui.app import PortscopeApp

    PortscopeApp(interval=args.interval, alert_exposed=args.alert_exposed).run()
    return exitcodes.OK
