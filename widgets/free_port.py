"""Free port action: find a port nothing uses that really binds, show it and copy it.

``start_free_port(app)`` is the one entry point. The search (a socket list plus bind tests) runs in
a thread worker; the port found is shown, copied with ``app.copy_to_clipboard`` and notified.
``r`` finds another, Esc (or Enter) closes.
"""

from __future__ import annotations

import threading

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from app.freeport import DEFAULT_RANGE, find_free
from app.parsing import parse_range
from widgets.log_panel import PANEL_CSS
from widgets.palette import ALERT

FREE_CSS = (
    PANEL_CSS
    + """
FreePortScreen > Vertical {
    height: auto;
    max-width: 60;
    padding: 1 2;
}
FreePortScreen #port {
    text-style: bold;
    content-align: center middle;
    width: 100%;
    height: 3;
}
"""
)


class FreePortScreen(ModalScreen[int | None]):
    DEFAULT_CSS = FREE_CSS
    BINDINGS = [
        Binding("escape", "close", "Close", priority=True),
        Binding("enter", "close", "Close", show=False),
        Binding("r", "again", "Another"),
    ]

    def __init__(self, range_spec: str = DEFAULT_RANGE, proto: str = "tcp", host: str = "0.0.0.0") -> None:
        super().__init__()
        self.range_spec = range_spec
        self.proto = proto
        self.host = host
        self.port: int | None = None
        self.finished = threading.Event()
        self._avoid: set[int] = set()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Free {self.proto} port ({self.range_spec}, {self.host})", style="bold"))
            yield Static(Text("looking…"), id="port")
            yield Label(Text("r: another   Esc: close", style="dim"))

    def on_mount(self) -> None:
        self.action_again()

    def action_close(self) -> None:
        self.dismiss(self.port)

    def action_again(self) -> None:
        self.finished.clear()
        self.query_one("#port", Static).update(Text("looking…"))
        avoid = set(self._avoid)
        self.run_worker(
            lambda: self._work(avoid),
            name="free port",
            group="free-port",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def _show(self, port: int | None, error: str = "") -> None:
        self.port = port
        if port is not None:
            self._avoid.add(port)
        if self.is_attached:
            text = Content(str(port)) if port is not None else Content.styled(error or "none found", ALERT)
            self.query_one("#port", Static).update(text)
        if port is None:
            self.app.notify(error or "no free port found", title="free port", severity="error", markup=False)
            return
        self.app.copy_to_clipboard(str(port))
        self.app.notify(f"free {self.proto} port {port} (copied to the clipboard)", title="free port")

    def _work(self, avoid: set[int]) -> None:
        port: int | None = None
        error = ""
        try:
            lo, hi = parse_range(self.range_spec)
            found = find_free(lo, hi, count=1 + len(avoid), proto=self.proto, host=self.host)
            port = next((p for p in found if p not in avoid), None)
            if port is None:
                error = f"no free {self.proto} port in {lo}-{hi}"
        except Exception as exc:  # UsageError and anything else: a notification, never a crash
            error = str(exc)
        try:
            self.app.call_from_thread(self._show, port, error)
        except RuntimeError:
            pass
        self.finished.set()


def start_free_port(app: App) -> None:
    """Find a free TCP port (registered range, outside the ephemeral range first), show and copy it."""
    try:
        app.push_screen(FreePortScreen())
    except Exception as exc:
        app.notify(f"cannot look for a free port: {exc}", severity="error", markup=False)
