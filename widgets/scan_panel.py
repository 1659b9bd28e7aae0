"""The scan panel: host, port spec, a progress bar and the open ports with their local owners.

``start_scan(app, host, ports)`` is the one entry point. The scan runs in a thread worker (its own
asyncio loop, bounded concurrency, see app/scan.py); progress updates are throttled. Esc closes
the panel and cancels the scan. Bad input is a notification, never an exception.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, RichLog

from app.errors import UsageError
from app.parsing import check_hostname, parse_port_spec
from app.probe import OPEN, OPEN_FILTERED
from app.scan import ScanResult, scan
from app.textsafe import printable
from widgets.test_panel import PANEL_CSS, safe_line


class ScanPanel(ModalScreen[None]):
    DEFAULT_CSS = PANEL_CSS
    BINDINGS = [Binding("escape", "close", "Close", priority=True)]

    def __init__(
        self, host: str = "127.0.0.1", ports: str = "1-1024", timeout: float = 1.0, concurrency: int = 200
    ) -> None:
        super().__init__()
        self.host = host
        self.ports = ports
        self.timeout = timeout
        self.concurrency = concurrency
        self._cancel = threading.Event()
        self.finished = threading.Event()
        self.result: ScanResult | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Scan ports  (Enter scans, Esc closes)", style="bold"))
            with Horizontal(classes="row"):
                yield Input(self.host, placeholder="host", id="host")
                yield Input(self.ports, placeholder="22,80,8000-8100", id="ports")
                yield Button("Scan", id="scan", variant="primary")
            yield ProgressBar(total=None, id="progress", show_eta=False)
            yield RichLog(id="log", markup=False, highlight=False, wrap=True, max_lines=5000)

    def on_mount(self) -> None:
        self.query_one("#ports", Input).focus()

    def action_close(self) -> None:
        self._cancel.set()
        self.dismiss(None)

    def on_unmount(self) -> None:
        """Closed in any way (Esc, or the app quitting): stop a scan still going."""
        self._cancel.set()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_scan()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_scan()

    def _error(self, message: str) -> None:
        self.app.notify(message, title="scan", severity="error", markup=False)
        self.write(message, "red")

    def action_scan(self) -> None:
        host = self.query_one("#host", Input).value.strip()
        spec = self.query_one("#ports", Input).value
        try:
            check_hostname(host)
            ports = parse_port_spec(spec)
        except UsageError as exc:
            self._error(str(exc))
            return
        self._cancel.set()
        self._cancel = threading.Event()
        self.finished.clear()
        self.result = None
        self.query_one("#progress", ProgressBar).update(total=len(ports), progress=0)
        self.write(f"── scanning {len(ports)} port(s) on {host}", "bold")
        cancel = self._cancel
        self.run_worker(
            lambda: self._work(host, ports, cancel),
            name="scan",
            group="scan",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def write(self, line: str, style: str = "") -> None:
        if not self.is_attached:
            return
        try:
            self.query_one("#log", RichLog).write(Text(safe_line(line), style=style))
        except Exception:
            pass

    def _progress(self, done: int) -> None:
        if self.is_attached:
            try:
                self.query_one("#progress", ProgressBar).update(progress=done)
            except Exception:
                pass

    def _call(self, fn: Callable[..., object], *args: object, **kwargs: object) -> None:
        try:
            self.app.call_from_thread(fn, *args, **kwargs)
        except RuntimeError:
            pass

    def _work(self, host: str, ports: list[int], cancel: threading.Event) -> None:
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] >= 0.1:
                last[0] = now
                self._call(self._progress, done)

        try:
            result = scan(
                host,
                ports,
                concurrency=self.concurrency,
                timeout=self.timeout,
                progress=progress,
                cancel=cancel,
            )
        except UsageError as exc:
            self._call(self._error, str(exc))
            self.finished.set()
            return
        except Exception as exc:  # never raise into the app
            self._call(self._error, f"scan failed: {exc}")
            self.finished.set()
            return
        self.result = result
        for r in result.results:
            if r.state not in (OPEN, OPEN_FILTERED):
                continue
            line = f"{r.port}/{result.proto}  {r.state}"
            if r.owner:
                line += f"  pid {r.owner['pid']} {printable(r.owner['name'], 40)}"
            self._call(self.write, line, "green" if r.state == OPEN else "yellow")
        counts = ", ".join(
            f"{n} {s}"
            for s in ("open", "open|filtered", "closed", "filtered", "unreachable", "error")
            if (n := result.count(s))
        )
        summary = f"{result.ip}: {len(result.results)} scanned: {counts or 'nothing'}"
        if result.cancelled:
            summary += " (cancelled)"
        self._call(self.write, summary, "bold")
        self._call(self.app.notify, summary, title="scan", markup=False)
        self.finished.set()


def start_scan(app: App, host: str = "127.0.0.1", ports: str = "1-1024") -> None:
    """Open the scan panel prefilled with ``host`` and ``ports``; Enter starts the scan."""
    try:
        app.push_screen(ScanPanel(host, ports))
    except Exception as exc:
        app.notify(f"cannot open the scan panel: {exc}", severity="error", markup=False)
