"""The footer: the keys that apply here, the most important first when the width runs out.

Unlike Textual's ``Footer`` (which shows every binding with ``show=True`` in binding order and cuts
the line at the right edge), this bar is handed its items by the screen, already limited to what
applies in the current view, each with a priority; when they do not all fit, the least important
are left out and the rest keep their order. Each item is clickable and runs its action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

GAP = 2  # cells between items


@dataclass(frozen=True, slots=True)
class KeyItem:
    key: str  # as shown, e.g. "K", "/", "⏎"
    title: str
    action: str  # a Textual action string, e.g. "screen.kill"
    priority: int  # 1 is kept longest

    @property
    def width(self) -> int:
        return len(self.key) + 1 + len(self.title)


def fit_items(items: Sequence[KeyItem], width: int) -> list[KeyItem]:
    """The items that fit in ``width`` cells, chosen by priority, shown in their given order."""
    chosen: set[int] = set()
    used = 0
    for i in sorted(range(len(items)), key=lambda n: (items[n].priority, n)):
        need = items[i].width + (GAP if chosen else 0)
        if used + need > width:
            continue
        chosen.add(i)
        used += need
    return [item for n, item in enumerate(items) if n in chosen]


class KeyBar(Widget):
    """``show(items)`` sets what the bar offers; it lays them out again on every resize."""

    COMPONENT_CLASSES = {"keybar--key", "keybar--title"}

    DEFAULT_CSS = """
    KeyBar { height: 1; background: $footer-background; color: $footer-foreground; padding: 0 1; }
    KeyBar > .keybar--key { color: $footer-key-foreground; text-style: bold; }
    KeyBar > .keybar--title { color: $footer-description-foreground; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.auto_links = False  # clickable, but drawn in the bar's own colours (no link underline)
        self.items: tuple[KeyItem, ...] = ()

    def show(self, items: Sequence[KeyItem]) -> None:
        items = tuple(items)
        if items != self.items:
            self.items = items
            self.refresh()

    def shown(self) -> list[KeyItem]:
        """The items on screen at the current width."""
        return fit_items(self.items, self.content_region.width or self.size.width)

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        title_style = self.get_component_rich_style("keybar--title")
        text = Text(no_wrap=True, overflow="crop")
        for n, item in enumerate(self.shown()):
            if n:
                text.append(" " * GAP)
            click = Style.from_meta({"@click": item.action})
            text.append(item.key, key_style + click)
            text.append(" " + item.title, title_style + click)
        return text
