"""Colours by what they mean, as theme variables (never colour names), for the widgets' text.

Textual resolves ``$name`` in a style when it draws, from the theme in force, so text built with
these styles (``Content.assemble((text, ALERT))``) follows a change of theme by itself. Widgets that
take Rich text instead (DataTable cells, RichLog lines) turn them into Rich styles with
:func:`rich_style` when they build the text, in the theme of that moment.
"""

from __future__ import annotations

from rich.style import Style as RichStyle
from textual.dom import DOMNode

OK = "$text-success"  # new rows, "live", an open port
WARN = "$text-warning"  # changed rows, exposure, "paused", a closed port
ALERT = "$text-error"  # closed rows, marks (stalled, storm, full queue), errors
KEY = "$text-accent"  # keys in the help


def rich_style(node: DOMNode, style: str) -> RichStyle:
    """``style`` (such as ``"bold " + ALERT``) as a Rich style in ``node``'s app's current theme."""
    return node.app.stylesheet.parse_style(style).rich_style


# Colour words the domain modules use for severities (app.explain's lines: "red" for a problem,
# "yellow" for a warning), drawn in the theme's colours of the same meaning.
_BY_WORD = {"red": ALERT, "yellow": WARN, "green": OK, "cyan": KEY}


def themed(style: str) -> str:
    """``style`` with colour words replaced by the theme variables of the same meaning."""
    return " ".join(_BY_WORD.get(word, word) for word in style.split())
