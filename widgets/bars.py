"""One-line bars of the dashboard: the top bar, the range summary and the per-state counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.content import Content
from textual.widgets import Static


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


def _item(label: str, count: int, action: str, active: bool) -> str:
    style = "reverse bold" if active else "bold"
    return f"[@click={action}][{style}] {label} [b]{count}[/b] [/][/]"


class RangeBar(Static):
    """Listener counts per range; each item is clickable and selects that range."""

    DEFAULT_CSS = """
    RangeBar { height: 1; background: $boost; padding: 0 1; }
    """

    def show(
        self,
        *,
        total: int,
        per_range: Mapping[str, int],
        exposed: int,
        ephemeral: int,
        selected: str,
        ranges: Sequence[str],
    ) -> None:
        parts = [_item("all", total, "app.select_range('all')", selected == "all")]
        for name in ranges:
            parts.append(_item(name, per_range.get(name, 0), f"app.select_range('{name}')", selected == name))
        parts.append(_item("exposed", exposed, "app.select_range('exposed')", selected == "exposed"))
        parts.append(
            _item("in ephemeral", ephemeral, "app.select_range('ephemeral')", selected == "ephemeral")
        )
        self.update(Content.from_markup("listeners: " + " │".join(parts)))


class StateBar(Static):
    """Connection counts per state; each item is clickable and filters to that state."""

    DEFAULT_CSS = """
    StateBar { height: 1; background: $boost; padding: 0 1; }
    """

    def show(self, counts: Mapping[str, int], selected: str | None) -> None:
        total = sum(counts.values())
        parts = [_item("all", total, "app.select_state('')", selected is None)]
        for state, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if not state.replace("_", "").isalnum():
                continue  # states come from the kernel via psutil; never markup
            parts.append(_item(state.lower(), n, f"app.select_state('{state}')", selected == state))
        self.update(Content.from_markup("connections: " + " │".join(parts)))
