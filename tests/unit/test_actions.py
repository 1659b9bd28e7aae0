"""The action table is the one source of the dashboard's keys: bindings, footer, help, palette,
README. These checks need no running app."""

from __future__ import annotations

from collections import Counter

from app.tui.actions import (
    ACTIONS,
    BY_ID,
    INTERFACES,
    LISTENING,
    VIEWS,
    actions_for,
    bindings,
    footer_actions,
    key_label,
    readme_key_table,
)
from app.tui.app import PortscopeApp
from app.tui.help import help_text
from app.tui.main_screen import MainScreen
from widgets.vtable import VTable


def _method(action: str) -> str:
    name = action.split(".", 1)[1] if action.startswith(("app.", "screen.")) else action
    return "action_" + name.split("(", 1)[0]


def test_the_table_widget_binds_exactly_the_keys_the_table_gives_it() -> None:
    widget_keys = {k.strip() for b in VTable.BINDINGS for k in b.key.split(",")}  # type: ignore[union-attr]
    table_keys = {k for a in actions_for("table") for k in a.keys}
    assert widget_keys == table_keys


def test_every_bound_action_has_its_method_where_it_is_bound() -> None:
    for a in ACTIONS:
        if a.bound_by == "screen":
            owner = PortscopeApp if a.action.startswith("app.") else MainScreen
        elif a.bound_by == "app":
            owner = PortscopeApp
        elif a.action:  # a table key with a palette action: the screen runs it
            owner = MainScreen
        else:
            continue
        assert hasattr(owner, _method(a.action)), (a.id, owner.__name__)


def test_no_key_is_bound_twice_and_ids_are_unique() -> None:
    keys = Counter(k for a in ACTIONS for k in a.keys)
    assert [k for k, n in keys.items() if n > 1] == []
    assert len(BY_ID) == len(ACTIONS)
    generated = bindings("screen") + bindings("app")
    assert {b.id for b in generated} == {a.id for a in ACTIONS if a.bound_by in ("screen", "app")}  # type: ignore[union-attr]


def test_the_footer_offers_only_what_applies() -> None:
    here = {a.id for a in footer_actions(INTERFACES)}
    assert not here & {"detail", "kill", "test", "range_next", "state", "dns"}
    assert {"filter", "help", "quit", "pause", "sort_next"} <= here
    listening = {a.id for a in footer_actions(LISTENING)}
    assert {"detail", "kill", "test", "free", "range_next"} <= listening
    for view in VIEWS:
        assert all(a.title for a in footer_actions(view))


def test_help_and_readme_list_every_action() -> None:
    text = help_text()
    table = readme_key_table().splitlines()
    assert len(table) == len(ACTIONS) + 2
    for a in ACTIONS:
        assert a.does in text, a.id
        assert all(f"`{key_label(k)}`" in readme_key_table() for k in a.keys)


def test_key_labels() -> None:
    assert key_label("question_mark") == "?"
    assert key_label("ctrl+p") == "Ctrl+P"
    assert key_label("left_square_bracket") == "["
    assert key_label("K") == "K"
