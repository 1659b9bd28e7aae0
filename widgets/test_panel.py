"""The port-test panel: edit the target(s), choose tests, results stream into a log.

``start_port_test(app, host, port, proto)`` is the one entry point. A wildcard bind (0.0.0.0, ::)
is prefilled as both 127.0.0.1 and ::1. The tests run in a thread worker owned by the panel; Esc
closes the panel and cancels the run (between steps; each step is bounded by its timeout).
Results are shown as rich Text (escaped, never parsed as markup).
"""

from __future__ import annotations

import threading

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, RichLog
from textual.worker import get_current_worker

from app.errors import UsageError
from app.model import format_endpoint
from app.parsing import parse_host_port
from app.probe import OPEN, Cancelled, TestOutcome, TestPlan, run_plan
from widgets.log_panel import PANEL_CSS, LogPanel

WILDCARDS = ("0.0.0.0", "::", "*", "")


def prefill(host: str, port: int) -> str:
    """The target text for a row: a wildcard bind becomes both loopback addresses."""
    if host in WILDCARDS:
        return f"127.0.0.1:{port}, [::1]:{port}"
    return format_endpoint(host, port)


def parse_targets(text: str) -> list[tuple[str, int]]:
    """Comma- or space-separated HOST:PORT items; UsageError for the first bad one."""
    items = [t for t in text.replace(",", " ").split() if t]
    if not items:
        raise UsageError("nothing to test: enter HOST:PORT, [IPv6]:PORT or PORT")
    if len(items) > 16:
        raise UsageError("too many targets: at most 16")
    return [parse_host_port(t) for t in items]


class PortTestPanel(LogPanel):
    DEFAULT_CSS = PANEL_CSS
    BINDINGS = [Binding("ctrl+r", "run", "Run again")]

    def __init__(self, targets: str, udp: bool = False, timeout: float = 1.0, count: int = 3) -> None:
        super().__init__()
        self.targets = targets
        self.udp = udp
        self.timeout = timeout
        self.count = count
        self.outcomes: list[TestOutcome] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Test a port  (Enter runs, Esc closes)", style="bold"))
            with Horizontal(classes="row"):
                yield Input(self.targets, placeholder="HOST:PORT, [::1]:PORT or PORT", id="target")
                yield Button("Run", id="run", variant="primary")
            with Horizontal(classes="row"):
                yield Checkbox("banner", id="banner")
                yield Checkbox("HTTP", id="http")
                yield Checkbox("TLS", id="tls")
                yield Checkbox("UDP", value=self.udp, id="udp")
            yield RichLog(id="log", markup=False, highlight=False, wrap=True, max_lines=2000)

    def on_mount(self) -> None:
        self.query_one("#target", Input).focus()
        self.action_run()

    def start(self) -> None:
        self.action_run()

    def action_run(self) -> None:
        text = self.query_one("#target", Input).value
        try:
            targets = parse_targets(text)
        except UsageError as exc:
            self.app.notify(str(exc), title="test", severity="error", markup=False)
            self.write(str(exc), "red")
            return
        opts = {k: self.query_one(f"#{k}", Checkbox).value for k in ("banner", "http", "tls", "udp")}
        if opts["udp"] and (opts["banner"] or opts["http"] or opts["tls"]):
            msg = "banner, HTTP and TLS are TCP tests: untick UDP"
            self.app.notify(msg, title="test", severity="error")
            self.write(msg, "red")
            return
        plans = [
            TestPlan(
                host=h,
                port=p,
                udp=opts["udp"],
                count=self.count,
                timeout=self.timeout,
                banner=opts["banner"],
                http=opts["http"],
                tls=opts["tls"],
            )
            for h, p in targets
        ]
        cancel = self.new_run()
        self.outcomes = []
        self.run_worker(
            lambda: self._work(plans, cancel),
            name="port test",
            group="port-test",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def _emit(self, line: str, style: str = "") -> None:
        self.call(self.write, line, style)

    def _work(self, plans: list[TestPlan], cancel: threading.Event) -> None:
        worker = get_current_worker()

        def stop() -> bool:
            return cancel.is_set() or worker.is_cancelled

        try:
            for plan in plans:
                proto = "udp" if plan.udp else "tcp"
                self._emit(f"── {proto} {format_endpoint(plan.host, plan.port)}", "bold")
                try:
                    for item in run_plan(plan, cancel=stop):
                        if isinstance(item, TestOutcome):
                            self.outcomes.append(item)
                            style = "green" if item.state == OPEN else "yellow"
                            self._emit(f"=> {item.state}", style)
                        else:
                            self._emit(item.summary())
                except UsageError as exc:
                    self._emit(str(exc), "red")
                    self.call(self.app.notify, str(exc), title="test", severity="error", markup=False)
        except Cancelled:
            self._emit("cancelled", "yellow")
        except Exception as exc:  # never raise into the app
            self._emit(f"test failed: {exc}", "red")
        finally:
            self.finished.set()


def start_port_test(app: App, host: str, port: int, proto: str = "tcp") -> None:
    """Open the test panel prefilled with ``host:port`` and run the default tests at once."""
    try:
        app.push_screen(PortTestPanel(prefill(host, port), udp=proto == "udp"))
    except Exception as exc:
        app.notify(f"cannot open the test panel: {exc}", severity="error", markup=False)
