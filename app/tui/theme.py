"""The dashboard's colours come from the Textual theme in force, never from colour names.

What a colour means is a theme variable: ``$text-success`` for new rows and "live", ``$text-warning``
for changed rows, exposure and "paused", ``$text-error`` for closed rows and the marks (stalled,
retransmit storm, full queue), ``$text-accent`` for keys and group headers, ``$primary`` behind the
active tab. The command palette's theme switcher changes them all at once.

Textual derives the ``$text-*`` variables from the theme's success, warning, error and accent
colours, nudged towards the text colour; on some light themes that is still too faint to read
(textual-light's warning on its surface is 3.0:1). :func:`readable` nudges each of them further, in
the theme's own hue, until it reaches :data:`MIN_CONTRAST` (WCAG AA for text, 4.5:1) on every
background the dashboard draws it on. ANSI themes are left alone: there the terminal's palette
decides.
"""

from __future__ import annotations

from collections.abc import Mapping

from textual.color import Color

MIN_CONTRAST = 4.5
# the variables the dashboard draws text in, and the backgrounds it draws them on
TEXT_ROLES = ("text-success", "text-warning", "text-error", "text-accent", "text-primary")
BACKGROUNDS = ("surface", "panel", "background")


def luminance(color: Color) -> float:
    """Relative luminance (WCAG 2)."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def contrast(a: Color, b: Color) -> float:
    """WCAG contrast ratio of two opaque colours, 1 to 21."""
    la, lb = luminance(a), luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def _parse(value: str | None) -> Color | None:
    if not value:
        return None
    try:
        color = Color.parse(value)
    except Exception:  # "auto 60%", a variable reference: not a plain colour
        return None
    return None if color.ansi is not None else color


def readable(variables: Mapping[str, str], minimum: float = MIN_CONTRAST) -> dict[str, str]:
    """``variables`` (a theme's CSS variables) with each of :data:`TEXT_ROLES` moved towards
    black or white, whichever its backgrounds need, just far enough to read on all of them."""
    out = dict(variables)
    backgrounds = [c for c in (_parse(variables.get(name)) for name in BACKGROUNDS) if c is not None]
    if not backgrounds:
        return out
    backgrounds = [Color(c.r, c.g, c.b) if c.a >= 1 else backgrounds[0] + c for c in backgrounds]
    dark = sum(luminance(c) for c in backgrounds) / len(backgrounds) < 0.18
    target = Color(255, 255, 255) if dark else Color(0, 0, 0)
    for name in TEXT_ROLES:
        color = _parse(variables.get(name))
        if color is None:
            continue
        color = backgrounds[0] + color if color.a < 1 else color
        step = 0.0
        moved = color
        while step < 1.0 and min(contrast(moved, bg) for bg in backgrounds) < minimum:
            step = min(1.0, step + 0.05)
            moved = color.blend(target, step)
        if moved != color:
            out[name] = moved.hex
    return out
