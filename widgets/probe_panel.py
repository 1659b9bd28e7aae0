"""The port-test panel: edit the target(s), choose tests, results stream into a log.

``start_probe(app, host, port, proto, v6only)`` is the one entry point. A wildcard bind is prefilled
with what it covers (:func:`app.probe.local_targets`: ``0.0.0.0`` -> 127.0.0.1; ``::`` -> 127.0.0.1
and ::1, or ::1 alone for an IPv6-only socket). The tests run in a thread worker owned by the panel;
Esc closes the panel and cancels the run (between steps; each step is bounded by its timeout).
Results are shown as rich Text (escaped, never parsed as markup).

Keys (the panel owns them while open): Enter or Ctrl+R runs; Alt+N/H/S/U toggle banner, HTTP, TLS and
UDP from anywhere, and the plain letters do the same when the focus is not in the text field (there
they are typed); Tab and Shift+Tab move the focus; Left/Right move along the options row, Up/Down
between the target, the options and the log; Space ticks the focused option.
"""

from __future__ import annotations

import threading

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, RichLog
from textual.worker import get_current_worker

from app.errors import UsageError
from app.model import format_endpoint
from app.outcome import ConnectState
from app.parsing import parse_host_port
from app.probe import Cancelled, ProbeOutcome, ProbePlan, local_targets, run_plan
from widgets.log_panel import PANEL_CSS, LogPanel, log_widget
from widgets.palette import ALERT, OK, WARN

# (id, label, the letter of its key: underlined in the label)
# (not Alt+B for Banner: a terminal sends it as ESC b, which Textual reads as ctrl+left)
OPTIONS = (("banner", "Banner", "n"), ("http", "HTTP", "h"), ("tls", "TLS", "s"), ("udp", "UDP", "u"))
HINT = "Alt+N/H/S/U ticks Banner/HTTP/TLS/UDP · Enter runs · Esc closes"


def prefill(host: str, port: int, v6only: bool | None = None, proto: str = "tcp") -> str:
    """The target text for a socket bound to ``host:port`` (see :func:`app.probe.local_targets`)."""
    return ", ".join(local_targets(host, port, v6only, proto))


def parse_targets(text: str) -> list[tuple[str, int]]:
    """Comma- or space-separated HOST:PORT items; UsageError for the first bad one."""
    items = [t for t in text.replace(",", " ").split() if t]
    if not items:
        raise UsageError("nothing to test: enter HOST:PORT, [IPv6]:PORT or PORT")
    if len(items) > 16:
        raise UsageError("too many targets: at most 16")
    return [parse_host_port(t) for t in items]


def _mnemonic(label: str, key: str) -> Content:
    """``label`` with the letter of its key underlined (the first match, case-insensitive)."""
    at = label.lower().find(key)
    if at < 0:
        return Content(label)
    return Content.assemble(label[:at], (label[at], "bold underline"), label[at + 1 :])


class ProbePanel(LogPanel):
    DEFAULT_CSS = PANEL_CSS
    BINDINGS = [
        Binding("ctrl+r", "run", "Run again"),
        # Enter runs wherever the focus is (a checkbox would take it as a toggle)
        Binding("enter", "run", "Run", show=False, priority=True),
        # a terminal sends Alt+H as ESC h, read as alt+h with the character h, which the focused
        # field would type: the Alt bindings come first (priority), the plain letters only where
        # no field takes them (the options row, the log)
        *(
            Binding(f"alt+{key}", f"toggle_option('{oid}')", f"{label}", show=False, priority=True)
            for oid, label, key in OPTIONS
        ),
        *(Binding(key, f"toggle_option('{oid}')", f"{label}", show=False) for oid, label, key in OPTIONS),
        Binding("left", "along(-1)", show=False),
        Binding("right", "along(1)", show=False),
        Binding("up", "across(-1)", show=False),
        Binding("down", "across(1)", show=False),
    ]

    def __init__(self, targets: str, udp: bool = False, timeout: float = 1.0, count: int = 3) -> None:
        super().__init__()
        self.targets = targets
        self.udp = udp
        self.timeout = timeout
        self.count = count
        self.outcomes: list[ProbeOutcome] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Test a port", style="bold"))
            with Horizontal(classes="row"):
                # no select-all on focus: a Space (or any key) typed first must not wipe the target
                yield Input(
                    self.targets,
                    placeholder="HOST:PORT, [::1]:PORT or PORT",
                    id="target",
                    select_on_focus=False,
                )
                yield Button("Run", id="run", variant="primary")
            with Horizontal(classes="row options"):
                for oid, label, key in OPTIONS:
                    yield Checkbox(_mnemonic(label, key), value=oid == "udp" and self.udp, id=oid)
            yield Label(Text(HINT, style="dim"), id="hint", classes="hint")
            yield log_widget(2000)

    def on_mount(self) -> None:
        self.query_one("#target", Input).focus()
        self.action_run()

    def start(self) -> None:
        self.action_run()

    # -- keys --------------------------------------------------------------------------------------

    def action_toggle_option(self, oid: str) -> None:
        box = self.query_one(f"#{oid}", Checkbox)
        box.value = not box.value

    def _row(self) -> list[Widget]:
        return [self.query_one(f"#{oid}", Checkbox) for oid, _label, _key in OPTIONS]

    def action_along(self, delta: int) -> None:
        """Left/Right: the previous/next option (the text field and the log keep their arrows)."""
        row = self._row()
        if self.focused in row:
            row[(row.index(self.focused) + delta) % len(row)].focus()

    def action_across(self, delta: int) -> None:
        """Up/Down: the target field <-> the options row (and Run) <-> the log."""
        stops: list[Widget] = [
            self.query_one("#target", Input),
            self._row()[0],
            self.query_one("#log", RichLog),
        ]
        focused = self.focused
        if focused is stops[0]:
            at = 0
        elif focused in self._row() or focused is self.query_one("#run", Button):
            at = 1
        else:
            return  # the log scrolls with its arrows
        to = at + delta
        if 0 <= to < len(stops):
            stops[to].focus()

    # -- running -----------------------------------------------------------------------------------

    def action_run(self) -> None:
        text = self.query_one("#target", Input).value
        try:
            targets = parse_targets(text)
        except UsageError as exc:
            self.app.notify(str(exc), title="test", severity="error", markup=False)
            self.write(str(exc), ALERT)
            return
        opts = {oid: self.query_one(f"#{oid}", Checkbox).value for oid, _l, _k in OPTIONS}
        if opts["udp"] and (opts["banner"] or opts["http"] or opts["tls"]):
            msg = "banner, HTTP and TLS are TCP tests: untick UDP"
            self.app.notify(msg, title="test", severity="error", markup=False)
            self.write(msg, ALERT)
            return
        plans = [
            ProbePlan(
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

    def _work(self, plans: list[ProbePlan], cancel: threading.Event) -> None:
        worker = get_current_worker()

        def stop() -> bool:
            return cancel.is_set() or worker.is_cancelled

        try:
            for plan in plans:
                proto = "udp" if plan.udp else "tcp"
                self._emit(f"── {proto} {format_endpoint(plan.host, plan.port)}", "bold")
                try:
                    for item in run_plan(plan, cancel=stop):
                        if isinstance(item, ProbeOutcome):
                            self.outcomes.append(item)
                            style = OK if item.state == ConnectState.OPEN else WARN
                            self._emit(f"=> {item.state}", style)
                        else:
                            self._emit(item.summary())
                except UsageError as exc:
                    self._emit(str(exc), ALERT)
                    self.call(self.app.notify, str(exc), title="test", severity="error", markup=False)
        except Cancelled:
            self._emit("cancelled", WARN)
        except Exception as exc:  # never raise into the app
            self._emit(f"test failed: {exc}", ALERT)
        finally:
            self.finished.set()


def start_probe(app: App, host: str, port: int, proto: str = "tcp", v6only: bool | None = None) -> None:
    """Open the test panel for a socket bound to ``host:port`` and run the default tests at once.

    ``v6only`` (for ``::``) when the caller knows it; None asks the kernel."""
    try:
        app.push_screen(ProbePanel(prefill(host, port, v6only, proto), udp=proto == "udp"))
    except Exception as exc:
        app.notify(f"cannot open the test panel: {exc}", severity="error", markup=False)
