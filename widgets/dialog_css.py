"""The look the confirmation dialogs share (kill, close, yes/no): one definition, each dialog adds
only its own rules."""

from __future__ import annotations


def dialog_css(screen: str, frame: str, max_width: int, *, docked_buttons: bool = True) -> str:
    """Centred ``frame`` (a selector under ``screen``) with a red border, at most ``max_width``
    cells wide and the screen's height, and a right-aligned ``.buttons`` row (docked at the bottom
    unless ``docked_buttons`` is false)."""
    dock = "\n    dock: bottom;\n    margin-top: 1;" if docked_buttons else ""
    return f"""
{screen} {{
    align: center middle;
}}
{screen} > {frame} {{
    width: 90%;
    max-width: {max_width};
    height: auto;
    max-height: 100%;
    border: thick $error;
    background: $surface;
    padding: 0 1;
}}
{screen} .buttons {{{dock}
    height: auto;
    align: right middle;
}}
{screen} .buttons Button {{
    margin-left: 2;
}}
"""
