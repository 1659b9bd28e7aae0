"""``portscope config path|show|set|unset``: where the settings file is, what is in force (and where
each value came from), and changing one key. Also :func:`apply_config`, the one place the file
reaches the command line: build_parser calls it, so the file's values become the parser's defaults
and a flag given on the command line still wins.

Exit codes: ``path`` 0; ``show`` 0, or 2 when the file has a problem (it prints what is in force
all the same: the defaults where the file could not be used); ``set``/``unset`` 0, 2 for an unknown
key, a bad value or a file that cannot be rewritten safely, 74 when the write fails.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

from app import exitcodes
from app.cli.common import decimal_number, warn
from app.config import SETTINGS, Config

TYPE_CHECKING = False  # not typing's: this module is on every command's start-up path
if TYPE_CHECKING:
    from typing import Any

# (command, dest, setting): the options whose default comes from the config file. ``None`` is
# the top-level parser (the dashboard's --interval).
BINDINGS = (
    (None, "interval", "interval"),
    ("watch", "watch_interval", "interval"),
    ("kill", "timeout", "kill_timeout"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="the settings file: where it is, what is in force, set a key",
        description="portscope reads $XDG_CONFIG_HOME/portscope/config.toml (~/.config/portscope/"
        "config.toml): refresh interval, start view, hidden columns, theme, DNS, kill timeout. "
        "Command line flags win over the file. 'show' exits 2 when the file has a problem.",
    )
    actions = p.add_subparsers(dest="config_action", metavar="ACTION", parser_class=type(p), required=True)
    path = actions.add_parser("path", help="print where the config file is (whether or not it exists)")
    path.add_argument("--json", action="store_true", help='{"path": ..., "exists": ...}')
    path.set_defaults(func=run_path)
    show = actions.add_parser("show", help="print every setting in force and where it came from")
    show.add_argument("--json", action="store_true", help="JSON (see README)")
    show.set_defaults(func=run_show)
    set_ = actions.add_parser("set", help="set KEY to VALUE in the config file (keeps the rest)")
    set_.add_argument("key", choices=tuple(SETTINGS), metavar="KEY")
    set_.add_argument("value", metavar="VALUE", help="hidden_columns: comma-separated; dns: true/false")
    set_.set_defaults(func=run_set)
    unset = actions.add_parser("unset", help="remove KEY from the config file (back to its default)")
    unset.add_argument("key", choices=tuple(SETTINGS), metavar="KEY")
    unset.set_defaults(func=run_unset)


# ---------------------------------------------------------------------------- the parser's defaults


def _noting(type_func: Callable[[str], Any], dest: str, given: set[str]) -> Callable[[str], Any]:
    """``type_func`` that also records that ``dest`` was given on the command line (argparse calls
    an option's type only for what the user typed: the defaults here are not strings)."""

    @functools.wraps(type_func)
    def parse(text: str) -> Any:
        given.add(dest)
        return type_func(text)

    return parse


def apply_config(parser: argparse.ArgumentParser, sub: argparse._SubParsersAction) -> Config:
    """Load the config file, print its warnings on stderr (one line each), and make its values the
    defaults of the options in :data:`BINDINGS`. Every command's namespace gets ``config`` (the
    :class:`~app.config.Config`, for the dashboard) and ``config_flags`` (the dests given as flags)."""
    from app.config import load_config

    config = load_config()
    for warning in config.warnings:
        warn(warning)
    given: set[str] = set()
    for command, dest, key in BINDINGS:
        target = parser if command is None else sub.choices.get(command)
        if target is None:
            continue
        for action in target._actions:
            if action.dest == dest and callable(action.type):
                action.type = _noting(action.type, dest, given)
        if config.source(key) != "default":
            target.set_defaults(**{dest: config.get(key)})
    parser.set_defaults(config=config, config_flags=set())
    parser.noted = given  # type: ignore[attr-defined]  # per parse: see parser._parser_class
    return config


# ------------------------------------------------------------------------------------- commands


def config_in_force(args: argparse.Namespace) -> Config:
    """``args.config`` with the values given as flags on the top-level parser marked as such
    (``portscope --interval 5 config show``; the dashboard can use it the same way)."""
    config: Config = args.config
    if "interval" in args.config_flags:
        config.override("interval", args.interval)
    return config


def run_path(args: argparse.Namespace) -> int:
    config = config_in_force(args)
    if args.json:
        import json

        print(json.dumps({"path": config.path, "exists": config.exists}))
    else:
        from app.textsafe import printable

        print(printable(config.path))
    return exitcodes.OK


def show_json(config: Config) -> dict[str, Any]:
    """``config show --json``: the shape pinned in README and tests/integration/test_config.py."""
    return {
        "path": config.path,
        "exists": config.exists,
        "settings": {
            key: {"value": list(value) if isinstance(value, tuple) else value, "source": source}
            for key, value, source in config.items()
        },
        "warnings": list(config.warnings),
    }


def show_text(config: Config) -> str:
    """What is in force as TOML that could be pasted into the file, each line saying its source."""
    from app.config import toml_value
    from app.textsafe import printable

    state = "" if config.exists else " (no such file: every value is a default)"
    lines = [f"# {printable(config.path)}{state}"]
    body = [
        (f"{key} = {printable(toml_value(value), backslashes=False)}", source)
        for key, value, source in config.items()
    ]
    width = max(len(text) for text, _ in body)
    lines += [f"{text.ljust(width)}  # {source}" for text, source in body]
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    config = config_in_force(args)
    if args.json:
        import json

        print(json.dumps(show_json(config)))
    else:
        print(show_text(config))
    return exitcodes.USAGE if config.warnings else exitcodes.OK


def parse_value(key: str, text: str) -> Any:
    """``config set``'s VALUE, from the command line to the setting's TOML type (the setting's own
    check then decides whether it is valid)."""
    default = SETTINGS[key].default
    if isinstance(default, bool):
        word = text.strip().lower()
        truth = {"true": True, "on": True, "yes": True, "1": True}
        falsity = {"false": False, "off": False, "no": False, "0": False}
        return truth.get(word, falsity.get(word, text))
    if isinstance(default, float):
        number = decimal_number(text)
        return text if number is None else number
    if isinstance(default, tuple):
        return [part.strip() for part in text.split(",") if part.strip()]
    return text.strip()


def run_set(args: argparse.Namespace) -> int:
    from app.config import save_setting
    from app.textsafe import printable

    path = save_setting(args.key, parse_value(args.key, args.value), args.config.path)
    warn(f"set {args.key} in {printable(path)}")
    return exitcodes.OK


def run_unset(args: argparse.Namespace) -> int:
    from app.config import unset_setting
    from app.textsafe import printable

    path = unset_setting(args.key, args.config.path)
    warn(f"{args.key} is back to its default in {printable(path)}")
    return exitcodes.OK
