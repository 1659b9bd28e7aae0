"""The kill flow for the dashboard: a modal showing exactly what will be signalled, then a worker.

``start_kill(app, target)`` is the one entry point. The modal gets a frozen
:class:`~app.kill.KillTarget` (a copy of the row, never live data). Everything that can block
(signalling, waiting for the exit, re-checking the port) runs in a thread worker; results are
reported with ``app.notify``. Protected targets and "still running after SIGTERM" each ask a second,
explicit confirmation. Nothing here raises into the app.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Label, RadioButton, RadioSet, Static

from app import kill
from app.collector import Collector, default_collector
from app.errors import ProcessError
from app.textsafe import printable

MODAL_CSS = """
KillModal, ConfirmScreen {
    align: center middle;
}
KillModal > Vertical, ConfirmScreen > Vertical {
    width: 90%;
    max-width: 110;
    height: auto;
    max-height: 90%;
    border: thick $error;
    background: $surface;
    padding: 1 2;
}
KillModal #details {
    height: auto;
    max-height: 16;
    overflow-y: auto;
    margin-bottom: 1;
}
KillModal RadioSet {
    layout: horizontal;
    width: auto;
    height: auto;
}
KillModal .buttons, ConfirmScreen .buttons {
    height: auto;
    margin-top: 1;
    align: right middle;
}
KillModal .buttons Button, ConfirmScreen .buttons Button {
    margin-left: 2;
}
"""

SIGNAL_CHOICES = ("TERM", "INT", "HUP", "KILL")


@dataclass(frozen=True, slots=True)
class KillChoice:
    """What the user confirmed in the modal."""

    signal: signal.Signals
    tree: bool


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y (or a click on the yes button) confirms; Esc/n cancel. Enter presses
    the focused button, which starts as "No": a second Enter never confirms by accident (this screen
    guards protected pids and SIGKILL). ``message`` is shown as plain text."""

    DEFAULT_CSS = MODAL_CSS
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
            yield Static(Text(self.message), id="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button("No (Esc)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")


class KillModal(ModalScreen[KillChoice | None]):
    """Shows pid, name, user, command line, start time and every port; choose signal and tree."""

    DEFAULT_CSS = MODAL_CSS
    BINDINGS = [
        Binding("enter", "confirm", "Send", priority=True),
        Binding("y", "confirm", "Send", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
        Binding("n", "cancel", "Cancel", priority=True),
        Binding("t", "toggle_tree", "Whole tree", show=False),
    ]

    def __init__(self, target: kill.KillTarget) -> None:
        super().__init__()
        self.target = target

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Signal {self.target.who}?", style="bold"))
            yield Static(Text("\n".join(self.target.details())), id="details")
            with RadioSet(id="signal"):
                for i, name in enumerate(SIGNAL_CHOICES):
                    yield RadioButton(f"SIG{name}", value=i == 0, id=f"sig-{name}")
            yield Checkbox("whole process tree (children first)", id="tree")
            with Horizontal(classes="buttons"):
                yield Button("Send (Enter/y)", id="send", variant="error")
                yield Button("Cancel (Esc/n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @property
    def choice(self) -> KillChoice:
        index = self.query_one("#signal", RadioSet).pressed_index
        name = SIGNAL_CHOICES[index if index >= 0 else 0]
        return KillChoice(kill.SIGNALS[name], self.query_one("#tree", Checkbox).value)

    def action_confirm(self) -> None:
        self.dismiss(self.choice)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_toggle_tree(self) -> None:
        box = self.query_one("#tree", Checkbox)
        box.value = not box.value

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "send":
            self.action_confirm()
        else:
            self.action_cancel()


def start_kill(
    app: App,
    target: kill.KillTarget,
    *,
    timeout: float = kill.DEFAULT_TIMEOUT,
    collector_factory: Callable[[], Collector] = default_collector,
) -> None:
    """Open the kill modal for ``target``; on confirmation signal it in a thread worker."""

    def notify(message: str, severity: SeverityLevel = "information") -> None:
        app.notify(message, title="kill", severity=severity, markup=False)

    def chosen(choice: KillChoice | None) -> None:
        if choice is None:
            notify("kill cancelled")
            return
        reason = kill.protection_reason(target.pid)
        if reason:
            question = f"{target.who} is {reason}. Signalling it may end this session. Send it anyway?"

            def second(ok: bool | None) -> None:
                if ok:
                    launch(choice, force=True)
                else:
                    notify("kill cancelled")

            app.push_screen(ConfirmScreen(question, yes="Send anyway"), second)
            return
        launch(choice, force=False)

    def launch(choice: KillChoice, force: bool) -> None:
        app.run_worker(
            lambda: work(choice, force),
            name=f"kill {target.pid}",
            group="portscope-kill",
            thread=True,
            exit_on_error=False,
        )

    def work(choice: KillChoice, force: bool) -> None:
        try:
            result = kill.kill(
                target, choice.signal, tree=choice.tree, timeout=timeout, force=force, collector=None
            )
        except ProcessError as exc:
            app.call_from_thread(notify, str(exc), "error")
            return
        except Exception as exc:  # never raise into the app
            app.call_from_thread(notify, f"kill failed: {printable(str(exc), 200)}", "error")
            return
        if result.alive and choice.signal != signal.SIGKILL:
            app.call_from_thread(offer_sigkill, result, force)
            return
        finish(result)

    def offer_sigkill(result: kill.KillResult, force: bool) -> None:
        question = (
            f"{target.who} is still running {timeout:g}s after {kill.signal_name(result.signal)}. "
            "Send SIGKILL?"
        )

        def answered(ok: bool | None) -> None:
            if not ok:
                notify(f"{target.who} is still running", "warning")
                return
            app.run_worker(
                lambda: escalate(result, force),
                name=f"kill -9 {target.pid}",
                group="portscope-kill",
                thread=True,
                exit_on_error=False,
            )

        app.push_screen(ConfirmScreen(question, yes="SIGKILL"), answered)

    def escalate(result: kill.KillResult, force: bool) -> None:
        try:
            kill.escalate_kill(result, timeout=timeout, force=force)
        except ProcessError as exc:
            app.call_from_thread(notify, str(exc), "error")
            return
        except Exception as exc:
            app.call_from_thread(notify, f"kill failed: {printable(str(exc), 200)}", "error")
            return
        finish(result)

    def finish(result: kill.KillResult) -> None:
        """(worker thread) Re-check the ports, then report."""
        try:
            result.holders = kill.port_holders(target.port_numbers, collector_factory())
        except Exception:  # the re-check is a courtesy: the kill itself is done
            result.holders = []
        severity = "information" if result.exited and not result.holders else "warning"
        app.call_from_thread(notify, "\n".join(result.lines()), severity)

    try:
        app.push_screen(KillModal(target), chosen)
    except Exception as exc:  # e.g. the app is shutting down
        notify(f"cannot open the kill dialog: {printable(str(exc), 200)}", "error")
