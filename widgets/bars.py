"""One-line bars of the dashboard: host and time, the range bar, the per-state bar, the status line.

The range and state bars count what the filter lets through (``exposed 1/3``: one of the three
exposed listeners matches the filter), read from the table model's facet counts, so their
numbers always agree with the table's rows and group headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from widgets.table_model import TableModel


class TopBar(Static):
    """Host name and time, right of the tab strip. Host names are shown literally."""

    DEFAULT_CSS = """
    TopBar { height: 1; width: auto; background: $panel; color: $text-muted; padding: 0 1; }
    """

    _shown: tuple[str, str] = ("", "")

    def show(self, *, host: str, clock_text: str) -> None:
        """(Called after every change on screen: redraws only when the text changed, and lays
        the header out again only when its width did.)"""
        if (host, clock_text) == self._shown:
            return
        width = len(host) + len(clock_text)
        resized = width != len(self._shown[0]) + len(self._shown[1])
        self._shown = (host, clock_text)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append(host, style="bold")
        text.append(f"  {clock_text}")
        self.update(text, layout=resized)


def count_text(passing: int, total: int, filtered: bool) -> str:
    """``3`` without a filter, ``1/3`` with one (1 of the 3 match)."""
    return f"{passing}/{total}" if filtered else str(total)


@dataclass(frozen=True, slots=True)
class BarItem:
    label: str
    short: str
    count: str
    action: str
    active: bool


class _ItemsBar(Widget):
    """A one-line bar of clickable counted items; shortens its labels to fit its width."""

    COMPONENT_CLASSES = {"bar--active", "bar--item"}
    DEFAULT_CSS = """
    _ItemsBar { height: 1; background: $boost; padding: 0 1; }
    _ItemsBar > .bar--active { text-style: reverse bold; }
    _ItemsBar > .bar--item { text-style: bold; }
    """
    prefix = ""
    short_prefix = ""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.auto_links = False  # clickable, drawn in the bar's own styles
        self.items: tuple[BarItem, ...] = ()

    def set_items(self, items: Sequence[BarItem]) -> None:
        items = tuple(items)
        if items != self.items:
            self.items = items
            self.refresh()

    def text_at(self, width: int) -> tuple[str, list[str]]:
        """The prefix and the item texts that fit ``width``: full labels, then short ones."""
        for prefix, short in ((self.prefix, False), (self.short_prefix, True), ("", True)):
            texts = [f" {i.short if short else i.label} {i.count} " for i in self.items]
            if len(prefix) + sum(len(t) for t in texts) + 2 * max(0, len(texts) - 1) <= width:
                return prefix, texts
        return "", [f" {i.short} {i.count} " for i in self.items]

    def render(self) -> Text:
        active = self.get_component_rich_style("bar--active")
        plain = self.get_component_rich_style("bar--item")
        prefix, texts = self.text_at(self.content_region.width or self.size.width)
        text = Text(prefix, no_wrap=True, overflow="crop", end="")
        for n, (item, label) in enumerate(zip(self.items, texts, strict=True)):
            if n:
                text.append(" │")
            text.append(label, (active if item.active else plain) + Style.from_meta({"@click": item.action}))
        return text


class RangeBar(_ItemsBar):
    """Listener counts per range; each item is clickable and selects that range."""

    prefix = "listeners: "
    short_prefix = "ports: "

    def show(
        self,
        model: TableModel,
        *,
        choices: Sequence[str],
        selected: str,
        filtered: bool,
        labels: Mapping[str, str] | None = None,
        action: str = "app.select_range",
    ) -> None:
        """``choices`` are facets of the model's rows, and ``all``."""
        labels = labels or {}
        items = []
        for name in choices:
            if name == "all":
                passing, total = model.passing, len(model.rows)
            else:
                passing, total = model.facet_passing[name], model.facet_totals[name]
            items.append(
                BarItem(
                    labels.get(name, name),
                    SHORT.get(name, name[:5]),
                    count_text(passing, total, filtered),
                    f"{action}('{name}')",
                    selected == name,
                )
            )
        self.set_items(items)


class StateBar(_ItemsBar):
    """Connection counts per state; each item is clickable and filters to that state."""

    prefix = "connections: "
    short_prefix = "conns: "

    def show(
        self, model: TableModel, selected: str | None, *, filtered: bool, action: str = "app.select_state"
    ) -> None:
        everything = count_text(model.passing, len(model.rows), filtered)
        items = [BarItem("all", "all", everything, f"{action}('')", selected is None)]
        totals = model.facet_totals
        for state, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
            if n <= 0 or not state.replace("_", "").isalnum():
                continue  # states come from the kernel via psutil: never part of an action string
            text = count_text(model.facet_passing[state], n, filtered)
            label = state.lower()
            items.append(
                BarItem(label, SHORT.get(state, label[:5]), text, f"{action}('{state}')", selected == state)
            )
        self.set_items(items)


SHORT = {
    "well-known": "wk",
    "registered": "reg",
    "dynamic": "dyn",
    "exposed": "exp",
    "ephemeral": "eph",
    "ESTABLISHED": "est",
    "TIME_WAIT": "tw",
    "CLOSE_WAIT": "cw",
    "SYN_SENT": "syn",
    "SYN_RECV": "synr",
    "FIN_WAIT1": "fw1",
    "FIN_WAIT2": "fw2",
    "LAST_ACK": "lack",
    "CLOSING": "clsg",
    "CONNECTED": "conn",
    "BOUND": "bound",
}


class StatusLine(Static):
    """One line of state, as k9s and lazygit have: ``filter: exposed · 3 of 16032 · sort Port ▲ ·
    range exposed · paused · dns on``. Parts are plain text (already escaped), cut with an
    ellipsis when the line is too narrow."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1; background: $panel; color: $text-muted; padding: 0 1;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    """

    _parts: tuple[tuple[str, str], ...] = ()

    def show(self, parts: Sequence[tuple[str, str]]) -> None:
        """``parts``: (text, style) pairs, joined with `` · ``. The text is literal (never markup);
        a style names theme variables (``"bold $text-warning"``), so the line follows the theme."""
        parts = tuple(parts)
        if parts == self._parts:
            return
        self._parts = parts
        pieces: list[tuple[str, str] | str] = []
        for n, (part, style) in enumerate(parts):
            if n:
                pieces.append(" · ")
            pieces.append((part, style))
        self.update(Content.assemble(*pieces), layout=False)  # one line, the screen's width
