"""The view tabs: ``1 Listening  2 Connections  3 Interfaces  4 Events``, the active one marked.

When the full labels do not fit, the strip shortens the inactive ones first, then shows only
their keys, so the active view's name stays readable at any width. Each tab is clickable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widget import Widget


@dataclass(frozen=True, slots=True)
class Tab:
    id: str
    key: str
    label: str
    short: str
    action: str


class TabStrip(Widget):
    COMPONENT_CLASSES = {"tabstrip--active", "tabstrip--tab", "tabstrip--key"}

    DEFAULT_CSS = """
    TabStrip { height: 1; width: 1fr; background: $panel; }
    TabStrip > .tabstrip--tab { color: $text-muted; }
    TabStrip > .tabstrip--key { color: $text-accent; text-style: bold; }
    TabStrip > .tabstrip--active { background: $primary; color: $text; text-style: bold; }
    """

    def __init__(self, tabs: Sequence[Tab], *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.auto_links = False  # clickable, but drawn in the strip's own colours
        self.tabs = tuple(tabs)
        self.active = self.tabs[0].id if self.tabs else ""

    def show(self, active: str) -> None:
        if active != self.active:
            self.active = active
            self.refresh()

    def labels(self, width: int) -> list[str]:
        """Each tab's text at ``width``: full, then shortened, then keys only (the active one
        keeps the longest form that fits)."""
        full = lambda t: f" {t.key} {t.label} "  # noqa: E731
        short = lambda t: f" {t.key} {t.short} "  # noqa: E731
        bare = lambda t: f" {t.key} "  # noqa: E731
        for active, inactive in ((full, full), (full, short), (full, bare), (short, bare), (bare, bare)):
            texts = [(active if t.id == self.active else inactive)(t) for t in self.tabs]
            if sum(len(s) for s in texts) <= width:
                return texts
        return [t.key for t in self.tabs]

    def render(self) -> Text:
        active_style = self.get_component_rich_style("tabstrip--active")
        tab_style = self.get_component_rich_style("tabstrip--tab")
        key_style = self.get_component_rich_style("tabstrip--key")
        text = Text(no_wrap=True, overflow="crop")
        for tab, label in zip(self.tabs, self.labels(self.size.width), strict=True):
            click = Style.from_meta({"@click": tab.action})
            if tab.id == self.active:
                text.append(label, active_style + click)
                continue
            head, _, rest = label.partition(tab.key)
            text.append(head, tab_style + click)
            text.append(tab.key, key_style + click)
            text.append(rest, tab_style + click)
        return text
