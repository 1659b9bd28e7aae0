"""The dashboard's kill dialog: the kill flow of app/kill.py with a modal for a confirmation.

``start_port_kill(app, snapshot, sock)`` (the dashboard's ``K``) plans what ``portscope kill PORT
--proto PROTO`` would signal for the row's port, in a thread (planning reads /proc); ``start_kill(app,
target_or_plan)`` opens the dialog for a ready plan (one process: like ``kill --pid``).

The :class:`KillModal` shows the plan (primary owners in full, then "+N workers", long lists capped
with "+N more", the body scrolls while the signal choice and the buttons stay put down to 60x20),
owns its keys while open (1-4 pick SIGTERM/SIGINT/SIGHUP/SIGKILL, arrows move the choice, ``t`` the
whole tree, Tab moves the focus, Enter/y send, Esc/n cancel), then drives the flow in a thread
worker and shows its progress ("SIGTERM sent to pid N, waiting 3 s" and a countdown). Protected
targets and "still running: send SIGKILL?" each ask a second, explicit confirmation
(:class:`ConfirmScreen`: only ``y`` or a click says yes). A clean result closes the dialog with a
notification; anything else (still running, a respawn, an error) stays in the dialog until closed.
The dialog dismisses with the :class:`~app.kill.KillReport` (``None`` when cancelled before
anything was sent). Nothing here raises into the app.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Label, RadioButton, RadioSet, Static

from app import kill
from app.collector import Collector, default_collector
from app.errors import PortscopeError
from app.killplan import LIST_CAP, KillPlan, KillTarget, plan_socket
from app.model import Snapshot, Sock
from app.textsafe import printable
from widgets.dialog_css import dialog_css

CONFIRM_CSS = (
    dialog_css("ConfirmScreen", "Vertical", 100)
    + """
ConfirmScreen #question {
    height: auto;
    max-height: 100%;
}
"""
)

KILL_CSS = (
    dialog_css("KillModal", "#dialog", 110, docked_buttons=False)
    + """
KillModal #title {
    dock: top;
    width: 1fr;
    height: auto;
    text-style: bold;
}
KillModal #body {
    height: auto;
    max-height: 100%;
}
KillModal #controls {
    dock: bottom;
    height: auto;
}
KillModal #status {
    height: auto;
    margin-top: 1;
}
KillModal #signal-row {
    height: auto;
}
KillModal #signal-keys {
    width: 1fr;
    height: 1;
    margin-left: 1;
    color: $text-muted;
}
KillModal RadioSet {
    layout: horizontal;
    width: auto;
    height: auto;
}
KillModal RadioSet > RadioButton {
    width: auto;
    margin-right: 1;
}
"""
)

SIGNAL_CHOICES = ("TERM", "INT", "HUP", "KILL")


@dataclass(frozen=True, slots=True)
class KillChoice:
    """What the user picked in the dialog."""

    signal: signal.Signals
    tree: bool


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y (or a click on the yes button) confirms; Esc/n cancel. Enter presses
    the focused button, which starts as "No": a second Enter never confirms by accident (this screen
    guards protected pids and SIGKILL). ``message`` is shown as plain text."""

    DEFAULT_CSS = CONFIRM_CSS
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", priority=True),
        Binding("n", "answer(False)", "No", priority=True),
        Binding("escape", "answer(False)", "No", priority=True),
    ]

    def __init__(self, message: str, yes: str = "Yes") -> None:
        super().__init__()
        self.message = message
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error", compact=True)
                yield Button("No (Esc)", id="no", compact=True)
            with VerticalScroll(id="question"):
                yield Static(Text(self.message))

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")


def same_as(plan: KillPlan) -> str:
    """The CLI command that plans the same targets."""
    if plan.port is None:
        return f"portscope kill --pid {plan.primary[0].pid}" if plan.primary else "portscope kill"
    return f"portscope kill {plan.port}" + (f" --proto {plan.proto.value}" if plan.proto else "")


class KillModal(ModalScreen[kill.KillReport | None]):
    """The plan, the signal choice, then the flow's progress and result (see the module doc)."""

    DEFAULT_CSS = KILL_CSS
    BINDINGS = [
        Binding("enter", "confirm", "Send", priority=True),
        Binding("y", "confirm", "Send", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
        Binding("n", "cancel", "Cancel", priority=True),
        Binding("t", "toggle_tree", "Whole tree", show=False),
        Binding("right,down", "move_signal(1)", "Next signal", show=False, priority=True),
        Binding("left,up", "move_signal(-1)", "Previous signal", show=False, priority=True),
        *(
            Binding(str(i + 1), f"pick_signal({i})", f"SIG{name}", show=False, priority=True)
            for i, name in enumerate(SIGNAL_CHOICES)
        ),
    ]

    def __init__(
        self,
        plan: KillPlan,
        *,
        timeout: float = kill.DEFAULT_TIMEOUT,
        collector_factory: Callable[[], Collector] = default_collector,
        describe: kill.ServiceDescriber = kill.describe_service,
    ) -> None:
        super().__init__()
        self.plan = plan
        self.timeout = timeout
        self.collector_factory = collector_factory
        self.describe = describe
        self.state = "confirm"  # -> "working" -> "done"
        self.report: kill.KillReport | None = None
        self.detached = False  # closed while working: the result comes as a notification
        self._event: kill.KillEvent | None = None
        self._ticker: Timer | None = None
        self._host: App | None = None  # kept: a dismissed screen no longer finds its app

    @property
    def target(self) -> KillTarget:
        return self.plan.targets[0]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(f"Signal {self.plan.summary()}?"), id="title")
            with Vertical(id="controls"):
                yield Static("", id="status")
                with Horizontal(id="signal-row"):
                    with RadioSet(id="signal", compact=True):
                        for i, name in enumerate(SIGNAL_CHOICES):
                            label = f"{i + 1} {name}"  # the digit is the key that picks it
                            yield RadioButton(label, value=i == 0, id=f"sig-{name}", compact=True)
                    yield Label("signal: 1-4 or ←/→", id="signal-keys")
                yield Checkbox("t  whole process tree (children first)", id="tree", compact=True)
                with Horizontal(classes="buttons"):
                    yield Button("Send (Enter/y)", id="send", variant="error", compact=True)
                    yield Button("Cancel (Esc/n)", id="cancel", compact=True)
            with VerticalScroll(id="body"):
                lines = [*self.plan.details(LIST_CAP), "", f"same as: {same_as(self.plan)}"]
                yield Static(Text("\n".join(lines)), id="details")

    @property
    def host(self) -> App:
        return self._host if self._host is not None else self.app

    def on_mount(self) -> None:
        self._host = self.app
        self.query_one("#status", Static).display = False
        self.query_one("#signal", RadioSet).focus()

    # --- the choice

    @property
    def choice(self) -> KillChoice:
        index = self.query_one("#signal", RadioSet).pressed_index
        name = SIGNAL_CHOICES[index if index >= 0 else 0]
        return KillChoice(kill.SIGNALS[name], self.query_one("#tree", Checkbox).value)

    def action_pick_signal(self, index: int) -> None:
        if self.state == "confirm":
            self.query_one(f"#sig-{SIGNAL_CHOICES[index]}", RadioButton).value = True

    def action_move_signal(self, step: int) -> None:
        if self.state != "confirm":
            return
        index = self.query_one("#signal", RadioSet).pressed_index
        self.action_pick_signal(((index if index >= 0 else 0) + step) % len(SIGNAL_CHOICES))

    def action_toggle_tree(self) -> None:
        if self.state == "confirm":
            box = self.query_one("#tree", Checkbox)
            box.value = not box.value

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "send":
            self.action_confirm()
        else:
            self.action_cancel()

    def action_confirm(self) -> None:
        if self.state == "done":
            self._close()
            return
        if self.state != "confirm":
            return
        if self.focused is not None and self.focused.id == "cancel":
            self.action_cancel()  # Enter on a focused Cancel button cancels
            return
        choice = self.choice
        protected = self.plan.protected()
        if not protected:
            self._start(choice, force=False)
            return
        reasons = "; ".join(f"{t.who} is {reason}" for t, reason in protected)
        question = f"{reasons}. Signalling it may end this session. Send it anyway?"

        def second(ok: bool | None) -> None:
            if ok:
                self._start(choice, force=True)
            else:
                self.dismiss(None)

        self.app.push_screen(ConfirmScreen(question, yes="Send anyway"), second)

    def action_cancel(self) -> None:
        if self.state == "confirm":
            self.dismiss(None)
        elif self.state == "working":  # the signal is out: let the flow finish behind the dialog
            self.detached = True
            self.app.notify(
                "the kill goes on; its result comes as a notification", title="kill", markup=False
            )
            self.dismiss(None)
        else:
            self._close()

    def _close(self) -> None:
        self.dismiss(self.report)

    # --- the flow, in a thread worker

    def _start(self, choice: KillChoice, force: bool) -> None:
        self.state = "working"
        for widget in (self.query_one("#signal", RadioSet), self.query_one("#tree", Checkbox)):
            widget.disabled = True
        self.query_one("#send", Button).display = False
        self.query_one("#cancel", Button).label = "Close (Esc)"
        self._show(f"sending {kill.signal_name(choice.signal)} ...")
        flow = kill.KillFlow(
            self.plan,
            choice.signal,
            tree=choice.tree,
            timeout=self.timeout,
            force=force,
            on_event=self._from_thread(self.on_kill_event),
            describe=self.describe,
        )
        self._ticker = self.set_interval(0.1, self._tick)
        self.host.run_worker(
            lambda: self._signal(flow),
            name=f"kill {self.plan.what}",
            group="portscope-kill",
            thread=True,
            exit_on_error=False,
        )

    def _from_thread(self, fn: Callable[[kill.KillEvent], None]) -> Callable[[kill.KillEvent], None]:
        def post(event: kill.KillEvent) -> None:
            try:
                self.host.call_from_thread(fn, event)
            except RuntimeError:  # the app is gone
                pass

        return post

    def _signal(self, flow: kill.KillFlow) -> None:
        """(worker thread) Signal and wait; then ask about SIGKILL, or finish."""
        try:
            survivors = flow.signal()
        except PortscopeError as exc:  # KillRefused: nothing was sent
            flow.close()
            self.host.call_from_thread(self._failed, str(exc))
            return
        except Exception as exc:  # never raise into the app
            flow.close()
            self.host.call_from_thread(self._failed, f"kill failed: {printable(str(exc), 200)}")
            return
        if survivors and flow.sig != signal.SIGKILL:
            self.host.call_from_thread(self._offer_sigkill, flow, survivors)
            return
        self._finish(flow)

    def _offer_sigkill(self, flow: kill.KillFlow, survivors: list[kill.Identity]) -> None:
        who = ", ".join(i.who for i in survivors[:5]) + (" ..." if len(survivors) > 5 else "")
        question = (
            f"{who} {'is' if len(survivors) == 1 else 'are'} still running {self.timeout:g}s after "
            f"{kill.signal_name(flow.sig)}. Send SIGKILL?"
        )
        self._show(f"still running after {self.timeout:g} s: {who}")

        def answered(ok: bool | None) -> None:
            self.host.run_worker(
                lambda: self._escalate(flow) if ok else self._finish(flow),
                name=f"kill -9 {self.plan.what}",
                group="portscope-kill",
                thread=True,
                exit_on_error=False,
            )

        self.host.push_screen(ConfirmScreen(question, yes="SIGKILL"), answered)

    def _escalate(self, flow: kill.KillFlow) -> None:
        """(worker thread)"""
        try:
            flow.escalate()
        except Exception as exc:
            flow.close()
            self.host.call_from_thread(self._failed, f"kill failed: {printable(str(exc), 200)}")
            return
        self._finish(flow)

    def _finish(self, flow: kill.KillFlow) -> None:
        """(worker thread) Re-check the ports (a courtesy if it fails: the kill itself is done;
        pointless when nothing was sent)."""
        collector = None
        if flow.report.sent:
            try:
                collector = self.collector_factory()
            except Exception:
                collector = None
        try:
            report = flow.finish(collector)
        except Exception:
            report = flow.finish(None)
        self.host.call_from_thread(self._done, report)

    # --- what the dialog shows

    def on_kill_event(self, event: kill.KillEvent) -> None:
        self._event = event
        self._tick()

    def _tick(self) -> None:
        event = self._event
        if event is None:
            return
        text = event.text
        if event.until is not None:
            left = event.until - time.monotonic()
            if left > 0:
                text += f" ({left:.1f} s left)"
        self._show(text)

    def _show(self, text: str) -> None:
        if self.detached or not self.is_attached:  # closed while the flow went on
            return
        status = self.query_one("#status", Static)
        status.display = True
        status.update(Text(text))

    def _failed(self, message: str) -> None:
        notify(self.host, message, "error")
        if self.detached or not self.is_attached:
            return
        self._stop_ticker()
        self.state = "done"
        self._show(message)

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def _done(self, report: kill.KillReport) -> None:
        self.report = report
        self._stop_ticker()
        severity = outcome_severity(report)
        notify(self.host, "\n".join(summary_lines(report)), severity)
        if self.detached or not self.is_attached:
            return
        if severity == "information":
            self.dismiss(report)
            return
        self.state = "done"
        lines = summary_lines(report)
        self._show(lines[0] if report.respawns or report.errors else lines[-1])
        body = self.query_one("#details", Static)
        body.update(Text("\n".join([*lines, "", *self.plan.details(LIST_CAP)])))
        self.query_one("#title", Label).update(Text(f"Signalled {self.plan.summary()}", style="bold"))


def summary_lines(report: kill.KillReport) -> list[str]:
    """What the notification says: what went wrong first, then the facts."""
    problems = [str(e) for e in [*report.errors, *report.gone]]
    for r in report.respawns:
        problems.append(r.describe(report.plan.what))
        if r.stop_hint:
            problems.append(f"to stop it for good: {r.stop_hint}")
    facts = [line for line in report.lines() if line not in problems]
    if report.checked and report.port_free and report.plan.port is not None:
        facts.append(f"{report.plan.what} is free")
    return [*problems, *facts] or ["nothing was signalled"]


def outcome_severity(report: kill.KillReport) -> SeverityLevel:
    if report.errors and not report.sent:
        return "error"
    if report.errors or report.alive or report.respawns or report.holders or not report.sent:
        return "warning"
    return "information"


def notify(app: App, message: str, severity: SeverityLevel = "information") -> None:
    app.notify(message, title="kill", severity=severity, markup=False)


def start_kill(
    app: App,
    what: KillTarget | KillPlan,
    *,
    timeout: float = kill.DEFAULT_TIMEOUT,
    collector_factory: Callable[[], Collector] = default_collector,
    describe: kill.ServiceDescriber = kill.describe_service,
) -> None:
    """Open the kill dialog for a plan (a target alone: like ``kill --pid``)."""
    plan = what if isinstance(what, KillPlan) else KillPlan.of(what)
    modal = KillModal(plan, timeout=timeout, collector_factory=collector_factory, describe=describe)

    def closed(report: kill.KillReport | None) -> None:
        if report is None and not modal.detached and modal.state != "done":
            notify(app, "kill cancelled")

    try:
        app.push_screen(modal, closed)
    except Exception as exc:  # e.g. the app is shutting down
        notify(app, f"cannot open the kill dialog: {printable(str(exc), 200)}", "error")


def start_port_kill(
    app: App,
    snapshot: Snapshot,
    sock: Sock,
    *,
    timeout: float = kill.DEFAULT_TIMEOUT,
    collector_factory: Callable[[], Collector] = default_collector,
    describe: kill.ServiceDescriber = kill.describe_service,
) -> None:
    """The dashboard's ``K`` on a row: plan (in a thread) what ``portscope kill PORT --proto PROTO``
    would signal for the row's port, then open the dialog; a row nobody visible holds is a
    notification."""

    def plan() -> None:
        try:
            ready = plan_socket(snapshot, sock)
        except PortscopeError as exc:
            app.call_from_thread(notify, app, str(exc), "error")
            return
        except Exception as exc:
            app.call_from_thread(notify, app, f"kill failed: {printable(str(exc), 200)}", "error")
            return
        app.call_from_thread(open_dialog, ready)

    def open_dialog(ready: KillPlan) -> None:
        if isinstance(app.screen, (KillModal, ConfirmScreen)):
            return  # K pressed twice: one dialog is enough
        start_kill(app, ready, timeout=timeout, collector_factory=collector_factory, describe=describe)

    app.run_worker(plan, name="kill plan", group="portscope-kill", thread=True, exit_on_error=False)
