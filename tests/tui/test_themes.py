"""Themes (#18): every colour the dashboard draws comes from the theme in force, and reads on it.

In every built-in theme (the ANSI ones excepted: there the terminal's palette decides), new,
changed and closed rows, the exposure emphasis, the marks (stalled, storm, full queue), the status
line's state and the events' kinds are drawn in that theme's ``$text-success`` / ``$text-warning``
/ ``$text-error`` / ``$text-accent`` (as the dashboard makes them readable, app.tui.theme), with a
contrast of at least 4.5:1 against what is behind them. The source holds no colour names.
Snapshots of one light and one dark theme, listening and connections.

Regenerate the snapshots after an intended visual change with:
    .venv/bin/python -m pytest tests/tui/test_themes.py --snapshot-update
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from rich.color import ColorType
from rich.errors import StyleSyntaxError
from rich.style import Style
from textual.color import Color

from app.config import Config
from app.health import STALL_POLLS
from app.tui.theme import MIN_CONTRAST, contrast
from tests.tui.fixtures import SequenceCollector, health_snapshots, make_app, second_snapshot, snapshot, until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("utc")
HEALTH_POLLS = STALL_POLLS + 4


def themed_config(theme: str) -> Config:
    return Config("/nonexistent/portscope/config.toml", values={"theme": theme})


def two_polls_app(theme: str | None = None) -> Any:
    """After two polls: 8443 new, 40000 gone, the connection on 42000 changed state."""
    kwargs = {"config": themed_config(theme)} if theme else {}
    return make_app(SequenceCollector(snapshot(), second_snapshot()), **kwargs)


def health_app(theme: str | None = None) -> Any:
    kwargs = {"config": themed_config(theme)} if theme else {}
    return make_app(SequenceCollector(*health_snapshots(HEALTH_POLLS)), **kwargs)


async def poll(pilot: Any, count: int) -> None:
    app = pilot.app
    await until(pilot, lambda: app.poll_count >= 1)
    while app.poll_count < count:
        n = app.poll_count
        await pilot.press("r")
        await until(pilot, lambda n=n: app.poll_count > n)
    await pilot.pause()


def themes(app: Any) -> list[str]:
    """Every built-in theme but the ANSI ones (the terminal's palette decides there)."""
    return sorted(name for name, theme in app.available_themes.items() if not name.startswith("ansi"))


def rgb(color: Any) -> Color:
    triplet = color.get_truecolor()
    return Color(triplet.red, triplet.green, triplet.blue)


def row_segments(app: Any, view: str, port: int) -> list[Any]:
    """The drawn segments (text, style) of the row whose local port is ``port``."""
    table = app.table(view)
    model = table.model
    key = next(k for k, r in model.rows.items() if r.payload.sock.laddr.port == port)
    line = model.lines.index(key) - round(table.scroll_y) + 1
    return [s for s in table.render_line(line) if s.text.strip()]


def check(segment: Any, want: str, variables: dict[str, str], theme: str) -> None:
    """``segment`` is drawn in the theme's ``want`` variable and reads on its background."""
    style: Style = segment.style
    assert style.color is not None and style.bgcolor is not None, (theme, segment)
    fg, bg = rgb(style.color), rgb(style.bgcolor)
    assert fg == Color.parse(variables[want]), (theme, segment.text, want)
    assert contrast(fg, bg) >= MIN_CONTRAST, (theme, segment.text, round(contrast(fg, bg), 2))


async def test_rows_exposure_status_and_events_take_the_themes_colours_in_every_theme() -> None:
    app = two_polls_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await poll(pilot, 2)
        app.table().model.select_key(next(iter(app.table().model.lines)))  # the cursor on a header
        seen = []
        for theme in themes(app):
            app.theme = theme
            await pilot.pause()
            v = app.theme_variables
            assert app.action_view("listening") is None
            await pilot.pause()
            new = row_segments(app, "listening", 8443)
            gone = row_segments(app, "listening", 40000)
            check(new[0], "text-success", v, theme)
            check(gone[0], "text-error", v, theme)
            assert gone[0].style.strike  # closed: not by colour alone
            exposure = next(s for s in row_segments(app, "listening", 80) if "all interfaces" in s.text)
            check(exposure, "text-warning", v, theme)
            status = [s for s in app.main.status.render_line(0) if "live every" in s.text]
            check(status[0], "text-success", v, theme)
            app.action_view("connections")
            await pilot.pause()
            check(row_segments(app, "connections", 42000)[0], "text-warning", v, theme)
            seen.append(rgb(new[0].style.color))
        assert len(set(seen)) > len(seen) // 2  # the colour is each theme's own


async def test_marks_take_the_themes_error_colour_in_every_theme() -> None:
    app = health_app()
    async with app.run_test(size=(160, 32)) as pilot:
        await poll(pilot, HEALTH_POLLS)
        await pilot.press("2")
        await pilot.pause()
        model = app.model("connections")
        marked = [r for r in model.rows.values() if r.flags and r.key != model.cursor_key]  # not the cursor's
        assert marked, "the fixture has stalled / stormy connections"
        for theme in themes(app):
            app.theme = theme
            await pilot.pause()
            for row in marked:
                segs = row_segments(app, "connections", row.payload.sock.laddr.port)
                [mark] = [s for s in segs if s.text[:1] in "‖↻"]
                check(mark, "text-error", app.theme_variables, theme)
                assert mark.style.bold


async def test_the_events_kinds_follow_a_theme_change() -> None:
    app = two_polls_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await poll(pilot, 2)
        await pilot.press("4")
        await pilot.pause()
        table = app.events_view.table
        for theme in ("textual-dark", "textual-light", "nord"):
            app.theme = theme
            await pilot.pause()
            await pilot.pause()
            kinds = {str(table.get_row_at(i)[1]): table.get_row_at(i)[1] for i in range(table.row_count)}
            opened = kinds["opened"]
            want = Color.parse(app.theme_variables["text-success"])
            assert rgb(opened.style.color) == want, theme
            closed = kinds["closed"]
            assert rgb(closed.style.color) == Color.parse(app.theme_variables["text-error"]), theme


# ------------------------------------------------------------------------ no colour names


SOURCES = sorted([*(ROOT / "app" / "tui").glob("*.py"), *(ROOT / "widgets").glob("*.py")])
CSS_COLOUR = re.compile(
    r"(?:^|[;{\s])((?:color|background|border[a-z-]*|outline[a-z-]*|tint|scrollbar-(?:color|background)[a-z-]*)\s*:\s*([^;}\n]+))"
)
CSS_KEYWORDS = {
    "none",
    "transparent",
    "auto",
    "inherit",
    "initial",
    "hidden",
    "solid",
    "tall",
    "round",
    "wide",
    "thick",
    "blank",
    "heavy",
    "double",
    "dashed",
    "outer",
    "inner",
    "hkey",
    "vkey",
    "panel",
    "ascii",
}


def _colours_in_style(text: str) -> bool:
    """A string literal that is a Rich style naming a colour (``"bold red"``, ``"on blue"``)."""
    if not text or len(text) > 60 or "\n" in text:
        return False
    try:
        style = Style.parse(text)
    except (StyleSyntaxError, ValueError, KeyError):
        return False
    return any(c is not None and c.type is not ColorType.DEFAULT for c in (style.color, style.bgcolor))


def test_the_dashboard_source_names_no_colours() -> None:
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value
                if _colours_in_style(value) and path.name != "palette.py":
                    found.append(f"{path.name}:{node.lineno}: {value!r}")
                if "{" in value and ":" in value:  # CSS: every colour is a $variable
                    for decl, val in CSS_COLOUR.findall(value):
                        words = [w for w in re.split(r"\s+", val.strip()) if w]
                        for w in words:
                            if w.startswith("$") or w.lower() in CSS_KEYWORDS or re.fullmatch(r"[\d.]+%?", w):
                                continue
                            found.append(f"{path.name}:{node.lineno}: {decl.strip()!r}")
    tcss = ROOT / "app" / "tui" / "app.tcss"
    for decl, val in CSS_COLOUR.findall(tcss.read_text()):
        for w in val.split():
            if not (w.startswith("$") or w.lower() in CSS_KEYWORDS or re.fullmatch(r"[\d.]+%?", w)):
                found.append(f"app.tcss: {decl.strip()!r}")
    assert found == []


def test_the_scan_finds_a_colour_name() -> None:
    """(the scan above can fail)"""
    assert _colours_in_style("bold red") and _colours_in_style("on blue")
    assert (
        not _colours_in_style("bold")
        and not _colours_in_style("dim")
        and not _colours_in_style("bold $text-error")
    )
    assert not _colours_in_style("green / yellow / red")


# ------------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize("theme", ["textual-light", "gruvbox"])
def test_listening_view_in_a_theme(snap_compare: Any, theme: str) -> None:
    async def run(pilot: Any) -> None:
        await poll(pilot, 2)

    assert snap_compare(two_polls_app(theme), terminal_size=(120, 24), run_before=run)


@pytest.mark.parametrize("theme", ["textual-light", "gruvbox"])
def test_connections_view_in_a_theme(snap_compare: Any, theme: str) -> None:
    async def run(pilot: Any) -> None:
        await poll(pilot, HEALTH_POLLS)
        await pilot.press("2")
        await pilot.pause()

    assert snap_compare(health_app(theme), terminal_size=(120, 24), run_before=run)
