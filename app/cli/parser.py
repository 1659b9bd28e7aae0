"""The argument parser: the top-level options and every discovered ``cmd_<name>.py`` subcommand.

Imported by :func:`app.cli.main.main` after its signal handling is in place."""

from __future__ import annotations

import argparse
import importlib
import sys

from app import __version__, exitcodes
from app.cli.color import add_color_option
from app.cli.common import interval_arg
from app.textsafe import diagnostic


class Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse quotes what the user typed ("unrecognized arguments: ..."): escape it, so a
        # newline or a terminal escape in an argument cannot split the line or reach the terminal,
        # and cut it, so a 10 KB argument does not become a 10 KB line.
        sys.stderr.write(f"{self.prog}: error: {diagnostic(message)} (see '{self.prog} --help')\n")
        raise SystemExit(exitcodes.USAGE)


def build_parser() -> Parser:
    from app.cli.main import command_names

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
    add_color_option(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in command_names():
        module = importlib.import_module(f"app.cli.cmd_{name}")
        module.register(sub)
    from app.cli.cmd_config import apply_config

    apply_config(parser, sub)  # the config file's values as defaults: flags still win
    for command in sub.choices.values():  # `portscope who --version` works too
        if "--version" not in command._option_string_actions:
            command.add_argument("--version", action="version", version=f"portscope {__version__}")
        if "--color" not in command._option_string_actions:  # a global option, after the command too
            add_color_option(command, top=False)
    return parser
