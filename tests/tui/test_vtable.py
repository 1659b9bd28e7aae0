"""The virtual table follows its model by itself: no caller has to tell it to redraw."""

from __future__ import annotations

from textual.app import App, ComposeResult

from widgets.table_model import Column, Group, RowSpec, TableModel
from widgets.vtable import VTable

COLS = (Column("name", "Name", 8), Column("n", "N", 4, align="right", badge=("odd", "◦")))


def spec(name: str, n: int) -> RowSpec:
    return RowSpec(name, (name, n), "g", None, ("odd",) if n % 2 else ())


class Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.model = TableModel(COLS, (Group("g", "group"),), sort_column=1)
        self.moves: list[str | None] = []

    def compose(self) -> ComposeResult:
        yield VTable(self.model, id="t")

    def on_vtable_cursor_moved(self, message: VTable.CursorMoved) -> None:
        self.moves.append(message.key)


async def test_the_table_redraws_when_its_model_changes() -> None:
    app = Host()
    async with app.run_test(size=(30, 12)) as pilot:
        table = app.query_one(VTable)
        app.model.apply(added=[spec("alpha", 1), spec("beta", 2)], mark_new=False)
        await pilot.pause()
        text = table.visible_text()
        assert "alpha" in text[2] and "◦1" in text[2] and "beta" in text[3] and "◦" not in text[3]
        assert table.virtual_size.height == len(app.model.lines) + 1
        app.model.set_filter(lambda r: r.key == "beta")
        await pilot.pause()
        assert not any("alpha" in line for line in table.visible_text())
        assert app.model.cursor_key == "beta"  # the first match, not the group header
        app.model.set_filter(None)
        app.model.move_cursor_to(1)
        await pilot.pause()
        assert app.moves[-1] == "alpha"  # the table announced the move the model made
        for i in range(20):
            app.model.apply(added=[spec(f"r{i:02}", 10 + i)], mark_new=False)
        app.model.move_cursor_to(len(app.model.lines) - 1)
        await pilot.pause()
        assert "r19" in "\n".join(table.visible_text())  # scrolled to show the cursor
