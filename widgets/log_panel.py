"""What the port-test and scan panels share: a modal with a log, a cancellable thread run, and
the same keys (Enter or the button starts a run, Esc closes and cancels)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from rich.text import Text
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Button, Input, RichLog

from app.textsafe import printable
from widgets.palette import rich_style, themed

PANEL_CSS = """
ProbePanel, ScanPanel, FreePortScreen {
    align: center middle;
}
ProbePanel > Vertical, ScanPanel > Vertical, FreePortScreen > Vertical {
    width: 95%;
    max-width: 140;
    height: 90%;
    border: thick $accent;
    background: $surface;
    padding: 0 1;
}
ProbePanel .row, ScanPanel .row {
    height: auto;
}
ProbePanel Input, ScanPanel Input {
    width: 1fr;
}
ProbePanel Checkbox {
    width: auto;
}
ProbePanel .hint, ScanPanel .hint {
    width: 100%;
    height: auto;
}
ProbePanel RichLog, ScanPanel RichLog {
    height: 1fr;
    min-height: 3;
    border: round $primary;
}
"""


def safe_line(line: str) -> str:
    """``line`` as is when it is printable (summaries are escaped already), else escaped."""
    return line if line.isprintable() else printable(line)


def log_widget(max_lines: int) -> RichLog:
    """A panel's log (id ``log``): escaped text, wrapped at the log's own width (RichLog's default
    min_width of 78 wraps wider than a panel at 80x24 and cuts the end of each long line)."""
    return RichLog(id="log", markup=False, highlight=False, wrap=True, max_lines=max_lines, min_width=20)


class LogPanel(ModalScreen[None]):
    """A modal whose runs happen in a thread and stream lines into ``#log``.

    Subclasses compose the log of :func:`log_widget` and implement :meth:`start`. ``finished`` is set
    when a run ends (tests wait on it); closing the panel in any way cancels a run still going
    (the work checks ``self._cancel`` between its bounded steps)."""

    # (each subclass sets DEFAULT_CSS = PANEL_CSS itself: Textual scopes a class's DEFAULT_CSS
    # to that class, so rules naming the subclasses would not match from here)
    BINDINGS = [Binding("escape", "close", "Close", priority=True)]

    def __init__(self) -> None:
        super().__init__()
        self._cancel = threading.Event()
        self.finished = threading.Event()

    def start(self) -> None:
        raise NotImplementedError

    def new_run(self) -> threading.Event:
        """Cancel the run still going, if any, and return the cancel flag of a new one."""
        self._cancel.set()
        self._cancel = threading.Event()
        self.finished.clear()
        return self._cancel

    def action_close(self) -> None:
        self._cancel.set()
        self.dismiss(None)

    def on_unmount(self) -> None:
        """Closed in any way (Esc, or the app quitting): stop a run still going."""
        self._cancel.set()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.start()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.start()

    def write(self, line: str, style: str = "") -> None:
        """Append one line (escaped, as Text) in ``style`` (theme variables, :mod:`widgets.palette`,
        resolved in the theme of the moment). Safe to call after the panel closed."""
        if not self.is_attached:
            return
        try:
            rich = rich_style(self, themed(style)) if style else ""
            self.query_one("#log", RichLog).write(Text(safe_line(line), style=rich))
        except Exception:  # the panel is being torn down
            pass

    def call(self, fn: Callable[..., object], *args: object, **kwargs: object) -> None:
        """(worker thread) Run ``fn`` on the UI thread; nothing if the app has stopped."""
        try:
            self.app.call_from_thread(fn, *args, **kwargs)
        except RuntimeError:
            pass
