"""The scan panel: host, port spec, a progress bar and the open ports with their local owners.

``start_scan(app, host, ports)`` is the one entry point. The scan runs in a thread worker (its own
asyncio loop, bounded concurrency, see app/scan.py); progress updates are throttled. Esc closes
the panel and cancels the scan. Bad input is a notification, never an exception. Tab and Shift+Tab
move between the host, the ports, the button and the log; focusing a field does not select its text,
so the first key typed (a Space too) edits it instead of wiping it.
"""

from __future__ import annotations

import threading
import time

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, ProgressBar

from app.errors import UsageError
from app.outcome import ConnectState, format_counts
from app.parsing import check_hostname, parse_port_spec
from app.scan import ScanResult, scan
from app.textsafe import printable
from widgets.log_panel import PANEL_CSS, LogPanel, log_widget
from widgets.palette import ALERT, OK, WARN

HINT = "Enter scans · Tab moves between host and ports · Esc closes"


class ScanPanel(LogPanel):
    DEFAULT_CSS = PANEL_CSS

    def __init__(
        self, host: str = "127.0.0.1", ports: str = "1-1024", timeout: float = 1.0, concurrency: int = 200
    ) -> None:
        super().__init__()
        self.host = host
        self.ports = ports
        self.timeout = timeout
        self.concurrency = concurrency
        self.result: ScanResult | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Scan ports", style="bold"))
            with Horizontal(classes="row"):
                yield Input(self.host, placeholder="host", id="host", select_on_focus=False)
                yield Input(self.ports, placeholder="22,80,8000-8100", id="ports", select_on_focus=False)
                yield Button("Scan", id="scan", variant="primary")
            yield Label(
                Text("Enter scans · Tab moves between host and ports · Esc closes", style="dim"),
                classes="hint",
            )
            yield ProgressBar(total=None, id="progress", show_eta=False)
            yield log_widget(5000)

    def on_mount(self) -> None:
        self.query_one("#ports", Input).focus()

    def start(self) -> None:
        self.action_scan()

    def _error(self, message: str) -> None:
        self.app.notify(message, title="scan", severity="error", markup=False)
        self.write(message, ALERT)

    def action_scan(self) -> None:
        host = self.query_one("#host", Input).value.strip()
        spec = self.query_one("#ports", Input).value
        try:
            check_hostname(host)
            ports = parse_port_spec(spec)
        except UsageError as exc:
            self._error(str(exc))
            return
        cancel = self.new_run()
        self.result = None
        self.query_one("#progress", ProgressBar).update(total=len(ports), progress=0)
        self.write(f"── scanning {len(ports)} port(s) on {host}", "bold")
        self.run_worker(
            lambda: self._work(host, ports, cancel),
            name="scan",
            group="scan",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def _progress(self, done: int) -> None:
        if self.is_attached:
            try:
                self.query_one("#progress", ProgressBar).update(progress=done)
            except Exception:
                pass

    def _work(self, host: str, ports: list[int], cancel: threading.Event) -> None:
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] >= 0.1:
                last[0] = now
                self.call(self._progress, done)

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
            self.call(self._error, str(exc))
            self.finished.set()
            return
        except Exception as exc:  # never raise into the app
            self.call(self._error, f"scan failed: {exc}")
            self.finished.set()
            return
        self.result = result
        for r in result.results:
            if r.state not in (ConnectState.OPEN, ConnectState.OPEN_FILTERED):
                continue
            line = f"{r.port}/{result.proto}  {r.state}"
            if r.owner:
                line += f"  pid {r.owner['pid']} {printable(r.owner['name'], 40)}"
            self.call(self.write, line, OK if r.state == ConnectState.OPEN else WARN)
        for reason, n in sorted(result.error_reasons().items()):
            self.call(self.write, f"{n} port(s) could not be probed: {reason}", ALERT)
        summary = f"{printable(result.ip)}: {len(result.results)} scanned: {format_counts(result.counts())}"
        if result.cancelled:
            summary += " (cancelled)"
        self.call(self.write, summary, "bold")
        self.call(self.app.notify, summary, title="scan", markup=False)
        self.finished.set()


def start_scan(app: App, host: str = "127.0.0.1", ports: str = "1-1024") -> None:
    """Open the scan panel prefilled with ``host`` and ``ports``; Enter starts the scan."""
    try:
        app.push_screen(ScanPanel(host, ports))
    except Exception as exc:
        app.notify(f"cannot open the scan panel: {exc}", severity="error", markup=False)
