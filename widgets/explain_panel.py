"""The explain panel: ``portscope explain PORT`` in the dashboard (the logic is app/explain.py).

``start_explain(app, port, proto, events=None)`` is the one entry point: it opens the panel and runs
the explanation in a thread worker, so the UI never waits for the live tests or the firewall read.
The verdict, findings and suggested commands are written into a log as rich Text (escaped, never
parsed as markup). The log has the focus: arrows, PageUp/PageDown, Home/End scroll it; ``r`` runs
again; Esc closes (a run still going is abandoned: each of its steps is bounded in time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Label, RichLog

from app.errors import UsageError
from app.textsafe import printable
from widgets.log_panel import LogPanel, log_widget
from widgets.palette import ALERT

EXPLAIN_CSS = """
ExplainPanel {
    align: center middle;
}
ExplainPanel > Vertical {
    width: 95%;
    max-width: 140;
    height: 90%;
    border: thick $accent;
    background: $surface;
    padding: 0 1;
}
ExplainPanel RichLog {
    height: 1fr;
    border: round $primary;
}
ExplainPanel #status {
    height: 1;
}
"""


class ExplainPanel(LogPanel):
    DEFAULT_CSS = EXPLAIN_CSS
    BINDINGS = [Binding("r", "run", "Run again")]

    def __init__(self, port: int, proto: str = "tcp", events: Sequence[Any] | None = None) -> None:
        super().__init__()
        self.port = port
        self.proto = proto
        self.events = list(events) if events is not None else None
        self.explanation: Any = None  # the last app.explain.Explanation, once a run has finished

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Explain {self.port}/{self.proto}  (r: run again, Esc: close)", style="bold"))
            yield Label(Text("explaining…", style="dim"), id="status")
            yield log_widget(5000)

    def on_mount(self) -> None:
        self.query_one("#log", RichLog).focus()
        self.start()

    def start(self) -> None:
        self.action_run()

    def action_run(self) -> None:
        cancel = self.new_run()
        self.query_one("#log", RichLog).clear()
        self.query_one("#status", Label).update(Text("explaining…", style="dim"))
        self.run_worker(
            lambda: self._work(cancel),
            name="explain",
            group="explain",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def _work(self, cancel: Any) -> None:
        from app.explain import explain

        try:
            ex = explain(self.port, self.proto, events=self.events)
        except UsageError as exc:
            if not cancel.is_set():
                self.call(self._failed, str(exc))
                self.call(self.app.notify, str(exc), title="explain", severity="error", markup=False)
        except Exception as exc:  # never raise into the app
            if not cancel.is_set():
                self.call(self._failed, f"explain failed: {exc}")
        else:
            if not cancel.is_set():
                self.call(self._show, ex)
        finally:
            self.finished.set()

    def _failed(self, message: str) -> None:
        self.write(message, ALERT)
        self.query_one("#status", Label).update(Content.styled(printable(message, 200), ALERT))

    def _show(self, ex: Any) -> None:
        self.explanation = ex
        for text, style in ex.lines():
            self.write(text, style)
        self.query_one("#log", RichLog).scroll_home(animate=False)
        counts = {s: sum(1 for f in ex.findings if f.severity == s) for s in ("problem", "warning", "info")}
        summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n)
        self.query_one("#status", Label).update(Text(f"done: {summary or 'no findings'}", style="dim"))


def start_explain(app: App, port: int, proto: str = "tcp", events: Iterable[Any] | None = None) -> None:
    """Open the explain panel for ``port``/``proto`` and run it at once. ``events``: the dashboard's
    app.events.Event objects, so the panel can say who held the port last."""
    if not isinstance(port, int) or not 1 <= port <= 65535 or proto not in ("tcp", "udp"):
        app.notify(
            f"cannot explain {printable(str(port), 20)}/{printable(str(proto), 10)}: "
            "expected a port from 1 to 65535 and tcp or udp",
            title="explain",
            severity="error",
            markup=False,
        )
        return
    try:
        app.push_screen(ExplainPanel(port, proto, list(events) if events is not None else None))
    except Exception as exc:
        app.notify(f"cannot open the explain panel: {exc}", severity="error", markup=False)
