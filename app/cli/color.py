"""Colour in the CLI's tables, the way ``ls`` and ``git`` use it: on a terminal only, never when
``NO_COLOR`` is set, and as ``--color never|auto|always`` says.

Colour marks what deserves a second look: exposure beyond loopback, states that tell of trouble
(CLOSE_WAIT: the program did not close; SYN_SENT: the peer does not answer), a full accept queue.
Escape sequences go only around whole cells the table builds; a cell's text (which may quote a
process name, already escaped by :func:`app.textsafe.printable`) is never split by one, and
widths are measured on the text alone, so columns line up with or without colour.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import IO

CHOICES = ("auto", "always", "never")

# SGR sequences by role. Plain 16-colour codes: they follow the terminal's own palette (light or
# dark), as ls's and git's defaults do.
STYLES = {
    "exposed": "1;31",  # bound to every interface: reachable from the network
    "interface": "33",  # bound to one non-loopback address
    "unknown": "35",  # an address no interface has
    "listen": "32",
    "trouble": "31",  # CLOSE_WAIT, a full queue
    "pending": "33",  # SYN_SENT, SYN_RECV: a handshake that has not finished
    "closing": "2",  # TIME_WAIT, FIN_WAIT*, LAST_ACK, CLOSING: on the way out
    "dim": "2",  # unknown or not visible
    "note": "33",  # a listener inside the ephemeral range
    "heading": "1",
}
RESET = "\x1b[0m"

_STATE_STYLES = {
    "LISTEN": "listen",
    "BOUND": "listen",
    "CLOSE_WAIT": "trouble",
    "SYN_SENT": "pending",
    "SYN_RECV": "pending",
    "NEW_SYN_RECV": "pending",
    "TIME_WAIT": "closing",
    "FIN_WAIT1": "closing",
    "FIN_WAIT2": "closing",
    "LAST_ACK": "closing",
    "CLOSING": "closing",
    "CLOSE": "closing",
}
_EXPOSURE_STYLES = {"all interfaces": "exposed", "interface": "interface", "unknown": "unknown"}


def state_style(state: str) -> str | None:
    return _STATE_STYLES.get(state)


def exposure_style(kind: str) -> str | None:
    """The role of an exposure kind (``app.exposure.Exposure.kind``); loopback has none."""
    return _EXPOSURE_STYLES.get(kind)


def wants_color(choice: str, stream: IO[str]) -> bool:
    """``always`` and ``never`` say it; ``auto``: a terminal, ``NO_COLOR`` unset or empty (see
    no-color.org: any non-empty value turns colour off) and ``TERM`` not ``dumb``. An explicit
    ``--color always`` wins over ``NO_COLOR``, as a flag wins over the environment."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def paint(text: str, style: str | None, on: bool) -> str:
    """``text`` wrapped in its style's escape sequence when ``on`` (and the text not empty)."""
    if not on or not style or not text:
        return text
    return f"\x1b[{STYLES[style]}m{text}{RESET}"


def add_color_option(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--color WHEN``: on the top-level parser (default ``auto``) and again on each command, where
    it is left unset unless given (so ``portscope --color never list`` and ``portscope list --color
    never`` both work)."""
    import argparse

    parser.add_argument(
        "--color",
        "--colour",
        dest="color",
        choices=CHOICES,
        default="auto" if top else argparse.SUPPRESS,
        metavar="WHEN",
        help="colour in tables: auto (on a terminal, unless NO_COLOR is set; the default), always or never",
    )
