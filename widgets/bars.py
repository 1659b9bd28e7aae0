"""One-line bars of the dashboard: the top bar, the range bar and the per-state bar.

The range and state bars count what the filter lets through (``exposed 1/3``: one of the three
exposed listeners matches the filter), read from the table model's facet counts, so their
numbers always agree with the table's rows and group headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.content import Content
from textual.widgets import Static

from widgets.table_model import TableModel


class TopBar(Static):
    """Host name, time, refresh state and privilege. Host names are shown literally."""

    DEFAULT_CSS = """
    TopBar { height: 1; background: $primary-background; color: $text; padding: 0 1; }
    """

    def show(
        self,
        *,
        host: str,
        clock_text: str,
        state: str,
        hidden_owners: int,
        privileged: bool,
        source: str = "",
    ) -> None:
        text = Text()
        text.append("portscope", style="bold")
        text.append(" on ")
        text.append(host, style="bold")
        text.append(f"  {clock_text}  ")
        text.append(state, style="bold green" if state.startswith("live") else "bold yellow")
        if hidden_owners and not privileged:
            text.append(f"  run as root to see all owners ({hidden_owners} hidden)", style="yellow")
        elif hidden_owners:
            text.append(f"  {hidden_owners} without visible owner", style="dim")
        if source:
            text.append(f"  [{source}]", style="dim")
        self.update(text)


def count_text(passing: int, total: int, filtered: bool) -> str:
    """``3`` without a filter, ``1/3`` with one (1 of the 3 match)."""
    return f"{passing}/{total}" if filtered else str(total)


def _item(label: str, count: str, action: str, active: bool) -> str:
    style = "reverse bold" if active else "bold"
    return f"[@click={action}][{style}] {label} [b]{count}[/b] [/][/]"


class RangeBar(Static):
    """Listener counts per range; each item is clickable and selects that range."""

    DEFAULT_CSS = """
    RangeBar { height: 1; background: $boost; padding: 0 1; }
    """

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
        parts = []
        for name in choices:
            if name == "all":
                passing, total = model.passing, len(model.rows)
            else:
                passing, total = model.facet_passing[name], model.facet_totals[name]
            text = count_text(passing, total, filtered)
            parts.append(_item(labels.get(name, name), text, f"{action}('{name}')", selected == name))
        self.update(Content.from_markup("listeners: " + " │".join(parts)))


class StateBar(Static):
    """Connection counts per state; each item is clickable and filters to that state."""

    DEFAULT_CSS = """
    StateBar { height: 1; background: $boost; padding: 0 1; }
    """

    def show(
        self, model: TableModel, selected: str | None, *, filtered: bool, action: str = "app.select_state"
    ) -> None:
        totals = model.facet_totals
        everything = count_text(model.passing, len(model.rows), filtered)
        parts = [_item("all", everything, f"{action}('')", selected is None)]
        for state, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
            if n <= 0 or not state.replace("_", "").isalnum():
                continue  # states come from the kernel via psutil; never markup
            text = count_text(model.facet_passing[state], n, filtered)
            parts.append(_item(state.lower(), text, f"{action}('{state}')", selected == state))
        self.update(Content.from_markup("connections: " + " │".join(parts)))
