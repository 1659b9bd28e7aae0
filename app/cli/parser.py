"""The argument parser: the top-level options and every discovered ``cmd_<name>.py`` subcommand.

Imported by :func:`app.cli.main.main` after its signal handling is in place. Start-up is most of
what a one-shot command costs, so :func:`parse_args` does as little as the command line needs:

- ``portscope who PORT`` and its plain options are read without argparse at all
  (:func:`fast_args`; importing argparse alone costs about 8 ms, most of what ``who`` may take).
  Anything it does not read exactly as argparse would (help, ``--version``, abbreviations, ``--``,
  a bad value, a missing or extra argument, ``--interval``) goes to argparse, which then reports
  it as always. tests/unit/test_cli_parser.py checks both give the same namespace.
- otherwise only the named command's parser is built (building all of them costs about 40 ms),
  unless the command line may need the others (no command, top-level help, anything unusual
  before the command name): then every one is, as before.
"""

from __future__ import annotations

import sys

from app import __version__, exitcodes

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any


def __getattr__(name: str) -> Any:
    """``Parser`` (an argparse class) is made on first use, so importing this module does not
    import argparse."""
    if name == "Parser":
        return _parser_class()
    raise AttributeError(name)


_PARSER: list[type] = []


def _parser_class() -> type[argparse.ArgumentParser]:
    if not _PARSER:
        import argparse

        from app.textsafe import diagnostic

        class Parser(argparse.ArgumentParser):
            """argparse that reports bad input as one line on stderr and exit code 2."""

            def error(self, message: str) -> None:  # type: ignore[override]
                # argparse quotes what the user typed ("unrecognized arguments: ..."): escape it,
                # so a newline or a terminal escape in an argument cannot split the line or reach
                # the terminal, and cut it, so a 10 KB argument does not become a 10 KB line.
                sys.stderr.write(f"{self.prog}: error: {diagnostic(message)} (see '{self.prog} --help')\n")
                raise SystemExit(exitcodes.USAGE)

            # The dests given as flags in this parse (cmd_config.apply_config sets it on the
            # top-level parser only): emptied before each parse, copied into its namespace after,
            # so a parser used twice never reports the first line's flags for the second.
            noted: set[str] | None = None

            def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
                if self.noted is None:
                    return super().parse_known_args(args, namespace)
                self.noted.clear()
                ns, rest = super().parse_known_args(args, namespace)
                ns.config_flags = set(self.noted)
                return ns, rest

        Parser.__module__ = __name__
        _PARSER.append(Parser)
    return _PARSER[0]


# The top-level options that take a value, and those that do not (see build_parser).
TOP_VALUE_OPTIONS = ("--interval", "--color", "--colour")
TOP_FLAG_OPTIONS = ("--alert-exposed",)


def command_named(argv: Sequence[str]) -> str | None:
    """The subcommand of ``argv`` when everything before it is a top-level option spelled out in
    full (``--color never who 22``); ``None`` when there is none or argparse may read the line
    otherwise (help, an abbreviation): then every command's parser must be there."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in TOP_VALUE_OPTIONS:
            i += 2
        elif arg in TOP_FLAG_OPTIONS or ("=" in arg and arg.split("=", 1)[0] in TOP_VALUE_OPTIONS):
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command`` (a known command name) only that subcommand is registered."""
    import argparse
    import importlib

    from app.cli.color import add_color_option
    from app.cli.common import interval_arg
    from app.cli.main import command_names

    parser_class = _parser_class()
    parser = parser_class(
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    names = command_names()
    for name in [command] if command in names else names:
        module = importlib.import_module(f"app.cli.cmd_{name}")
        module.register(sub)
    from app.cli.cmd_config import apply_config

    apply_config(parser, sub)  # the config file's values as defaults: flags still win
    for cmd in sub.choices.values():  # `portscope who --version` works too
        assert isinstance(cmd, argparse.ArgumentParser)
        if "--version" not in cmd._option_string_actions:
            cmd.add_argument("--version", action="version", version=f"portscope {__version__}")
        if "--color" not in cmd._option_string_actions:  # a global option, after the command too
            add_color_option(cmd, top=False)
    return parser


def parse_args(argv: Sequence[str]) -> Any:
    """The namespace for ``argv``: :func:`fast_args` where it can, else argparse (which exits 2
    with one line for bad input, 0 for help and --version)."""
    fast = fast_args(argv)
    if fast is not None:
        return fast
    return build_parser(command_named(argv)).parse_args(argv)


# ------------------------------------------------------------------------ who without argparse


class Args:
    """What argparse.Namespace is to the commands: attributes, compared by value."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        # The fast path runs only where there is no config file (fast_args checks): argparse's
        # namespace would then hold the defaults' Config, read here on first use only.
        if name == "config":
            from app.config import load_config

            self.config = load_config()
            return self.config
        if name == "config_flags":
            return set()
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return vars(self) == vars(other) if hasattr(other, "__dict__") else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Args(" + ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items())) + ")"


COLORS = ("auto", "always", "never")
# who's options that take a value (with their choices) and its flags, as cmd_who registers them.
WHO_CHOICES = {"--proto": ("proto", ("tcp", "udp")), "--netns": ("netns", ("current", "all"))}
WHO_FLAGS = {"--stats": "stats", "--json": "json"}


def fast_args(argv: Sequence[str]) -> Args | None:
    """``who`` command lines read without argparse: ``[--color W] [--alert-exposed] who PORT
    [--proto P] [--netns N] [--stats] [--json] [--color W]`` in any order, ``--opt=value`` too,
    each value one of its choices, one valid PORT. ``None`` for anything else (argparse reads it)."""
    import os

    from app.configpath import config_path

    if os.path.lexists(config_path()):
        return None  # a config file: argparse applies it (and says what is wrong with it)
    from app.cli.cmd_who import run

    top: dict[str, Any] = {"interval": 2.0, "alert_exposed": False, "color": "auto"}
    i, n = 0, len(argv)
    while i < n and argv[i] != "who":  # top-level options before the command
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg == "--alert-exposed":
            top["alert_exposed"] = True
            i += 1
            continue
        if name in ("--color", "--colour"):
            if not eq:
                if i + 1 >= n:
                    return None
                value = argv[i + 1]
                i += 1
            if value not in COLORS:
                return None
            top["color"] = value
            i += 1
            continue
        return None  # --interval (its number check), help, --version, another command, ...
    if i >= n:
        return None
    values: dict[str, Any] = {"proto": None, "netns": "current", "stats": False, "json": False}
    port: int | None = None
    i += 1
    while i < n:
        arg = argv[i]
        i += 1
        if not arg.startswith("-"):
            if port is not None:
                return None  # an extra argument: argparse's error
            port = _port(arg)
            if port is None:
                return None
            continue
        if arg in WHO_FLAGS:
            values[WHO_FLAGS[arg]] = True
            continue
        name, eq, value = arg.partition("=")
        if name in WHO_CHOICES or name in ("--color", "--colour"):
            if not eq:
                if i >= n:
                    return None
                value = argv[i]
                i += 1
            dest, choices = WHO_CHOICES.get(name, ("color", COLORS))
            if value not in choices:
                return None
            values[dest] = value
            continue
        return None  # -h, --help, --version, --, an abbreviation, a negative number, ...
    if port is None:
        return None
    return Args(**{**top, "command": "who", "port": port, **values, "func": run})


def _port(text: str) -> int | None:
    """What ``port_arg`` accepts; ``None`` otherwise (argparse then reports it)."""
    from app.cli.common import port_arg

    try:
        return port_arg(text)
    except Exception:  # argparse.ArgumentTypeError: not imported here
        return None
