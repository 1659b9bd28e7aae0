"""Helpers shared by the subcommands: argument types and stderr diagnostics.

On every command's start-up path (``who`` reads its command line without argparse): argparse and
re are imported only where an argument is checked or an option added."""

from __future__ import annotations

import sys

from app.errors import CollectorUnavailable, UsageError
from app.textsafe import diagnostic, quoted

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import re
    from collections.abc import Callable

    from app.backends.base import Collector
    from app.model import Snapshot
    from app.ports import PortRange


def _bad_argument(message: str) -> Exception:
    """argparse's ArgumentTypeError (argparse is imported by whoever parses with these types)."""
    import argparse

    return argparse.ArgumentTypeError(message)


def port_arg(text: str) -> int:
    if text.isdigit() and text.isascii() and len(text) <= 5 and 0 < int(text) <= 65535:
        return int(text)  # what parse_port gives a plain number (app.parsing is not needed then)
    from app.parsing import parse_port

    try:
        return parse_port(text)
    except UsageError as exc:
        raise _bad_argument(str(exc)) from None


def pid_arg(text: str) -> int:
    raw = text.strip(" \t")
    if not raw.isdigit() or not raw.isascii() or len(raw) > 10 or int(raw) < 1:
        raise _bad_argument(f"invalid pid {quoted(text)}: expected a positive number")
    return int(raw)


def range_arg(text: str) -> PortRange:
    from app.parsing import parse_range_name

    try:
        return parse_range_name(text)
    except UsageError as exc:
        raise _bad_argument(str(exc)) from None


# ASCII digits only: float() also takes "1_0", fullwidth and Arabic-Indic digits, "1e3", "inf"
# and "nan", none of which anybody means as a number of seconds.
_DECIMAL: list[re.Pattern[str]] = []  # compiled on first use


def _decimal() -> re.Pattern[str]:
    if not _DECIMAL:
        import re

        _DECIMAL.append(re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"))
    return _DECIMAL[0]


def decimal_number(text: str) -> float | None:
    """``"2"``, ``"0.5"``, ``".5"`` -> a float; anything else (signs, exponents, underscores,
    non-ASCII digits, inf/nan, more than 20 characters) -> ``None``."""
    raw = text.strip(" \t")
    if len(raw) > 20 or not _decimal().fullmatch(raw):
        return None
    return float(raw)


def number_arg(what: str, low: float, high: float, *, above: bool = False) -> Callable[[str], float]:
    """An argparse ``type=`` for a number of seconds from ``low`` (exclusive with ``above``) to
    ``high``, written in ASCII decimal. Every numeric option uses one of these."""

    def parse(text: str) -> float:
        value = decimal_number(text)
        if value is None:
            raise _bad_argument(f"invalid {what} {quoted(text)}: expected seconds, e.g. 2")
        if (value <= low if above else value < low) or value > high:
            bound = f"above {low:g} and at most {high:g}" if above else f"from {low:g} to {high:g}"
            raise _bad_argument(f"invalid {what} {quoted(text)}: must be {bound} seconds")
        return value

    parse.__name__ = what
    return parse


interval_arg = number_arg("interval", 0.2, 3600)
positive_float = number_arg("timeout", 0, 86400, above=True)  # every --timeout


def positive_int(text: str) -> int:
    raw = text.strip(" \t")
    if not raw.isdigit() or not raw.isascii() or len(raw) > 9 or int(raw) < 1:
        raise _bad_argument(f"invalid count {quoted(text)}: expected a whole number from 1")
    return int(raw)


def one_shot() -> None:
    """For a command that collects once, prints and exits: turn off the cyclic garbage collector.
    A snapshot of 20k sockets is ~100k objects without cycles; each collection the allocations
    trigger would walk them all again (about 10% of ``list --all`` at 20k). Memory is still freed
    by reference counting, and the process ends right after."""
    import gc

    gc.disable()


def write_lines(lines: list[str], chunk: int = 2000) -> None:
    """``lines`` to standard output, a newline after each, in pieces (the text of 20k rows is
    not joined into one string of megabytes first)."""
    write = sys.stdout.write
    for i in range(0, len(lines), chunk):
        write("\n".join(lines[i : i + chunk]) + "\n")


def warn(message: str) -> None:
    """A diagnostic line on stderr (never stdout: stdout is for data), escaped and cut."""
    try:
        sys.stderr.write(f"portscope: {diagnostic(message)}\n")
    except (OSError, ValueError):  # stderr full or closed: the data on stdout still counts
        pass


# --- options several commands share: --netns, --stats, --color --------------------------------


def add_netns_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--netns",
        choices=("current", "all"),
        default="current",
        help="network namespaces to read: the one portscope runs in (default) or all (as root: every "
        "namespace; otherwise your own); Linux netlink only",
    )


def add_stats_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--stats", action="store_true", help=what)


STATS_NEED = "--stats needs the Linux netlink backend (sock_diag)"
NETNS_NEED = "--netns all needs the Linux netlink backend: only this network namespace is listed"


def open_collector(args: argparse.Namespace, *, search: bool = False) -> Collector:
    """The collector for ``args.stats`` / ``args.netns`` (``search``: see default_collector).
    ``--stats`` where only the portable backend runs is :class:`~app.errors.CollectorUnavailable`
    (one line, exit 69) before anything is read."""
    from app.collector import default_collector

    stats = bool(getattr(args, "stats", False))
    collector = default_collector(stats=stats, netns=getattr(args, "netns", "current"), search=search)
    source = getattr(collector, "source", "psutil")
    if stats and source != "netlink":
        _close(collector)
        raise CollectorUnavailable(f"{STATS_NEED}; this one reads {source}")
    return collector


def _close(collector: Collector) -> None:
    close = getattr(collector, "close", None)
    if close is not None:
        close()


def check_snapshot(snapshot: Snapshot, args: argparse.Namespace) -> None:
    """What the snapshot lacks of what ``args`` asked for: stats (an error: the numbers asked for
    are not there) or other namespaces (a warning: the listing is right for this namespace)."""
    if getattr(args, "stats", False) and snapshot.stats is None:
        raise CollectorUnavailable(f"{STATS_NEED}; this one reads {snapshot.source}")
    if getattr(args, "netns", "current") == "all" and snapshot.source != "netlink":
        warn(NETNS_NEED)


def color_on(args: argparse.Namespace) -> bool:
    """Colour for standard output, by ``--color``, ``NO_COLOR`` and whether it is a terminal."""
    from app.cli.color import wants_color

    return wants_color(getattr(args, "color", "auto"), sys.stdout)


def ask(question: str) -> bool:
    """Ask on the terminal (the question on stderr); only ``y`` or ``yes`` is a yes."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        return False
    return answer.strip().lower() in ("y", "yes")
