"""The dashboard's close dialog (``X``): close one TCP connection, as ``portscope close`` does.

``start_close(app, request)`` opens :class:`CloseModal`, which names both endpoints, the state and
the owner, and says what happens (the peer sees a reset, the process keeps running). It owns its
keys while open (the buttons stay on screen; the text scrolls on a small one): ``y`` confirms;
``Enter`` presses the focused button (it starts on "Close", so ``Enter`` confirms only on that
explicit button; on "Cancel" it cancels); ``Tab`` and the arrows move between the buttons; ``Esc``
and ``n`` cancel. It dismisses with True (close) or False.

On a confirm the closer runs in a thread worker: by default :func:`close_connection`, the same
domain functions as the CLI (:func:`app.close.find`, then :func:`app.close.destroy`, which raises
:class:`~app.close.CloseFailed` with one line: needs root, the kernel cannot, gone). The socket
found must be the row's (same inode), or nothing is closed. The result, or that one line, comes
as a markup-free notification; nothing here raises into the app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from app import close
from app.errors import PortscopeError
from app.model import Endpoint, format_endpoint
from app.textsafe import printable
from widgets.dialog_css import dialog_css

CLOSE_CSS = (
    dialog_css("CloseModal", "#close-dialog", 100)
    + """
CloseModal #title {
    width: 1fr;
    height: auto;
    text-style: bold;
}
CloseModal #close-body {
    height: auto;
    max-height: 100%;
}
"""
)


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """The connection the row shows: its endpoints, state, kernel inode (0/None: not known) and
    owner (``owner`` is escaped text: "pid 812 (postgres), user postgres")."""

    local: Endpoint
    remote: Endpoint
    state: str
    inode: int | None
    owner: str
    netns: int = 0  # the namespace's inode; 0: the one portscope runs in

    @property
    def what(self) -> str:
        return f"tcp {format_endpoint(*self.local)} -> {format_endpoint(*self.remote)}"

    def cli(self) -> str:
        return f"portscope close {format_endpoint(*self.local)} {format_endpoint(*self.remote)}"


Closer = Callable[[CloseRequest], str]  # closes it and says so in one line; raises PortscopeError


def close_connection(request: CloseRequest) -> str:
    """Find the row's connection and destroy exactly it (the CLI's functions). One line back."""
    if request.netns:
        raise close.CloseFailed(
            "closing a connection of another network namespace is not supported: stop the process instead"
        )
    if not close.supported():
        raise close.CloseFailed("closing one connection needs Linux (netlink SOCK_DESTROY)")
    conn = close.find(request.local, request.remote)
    if conn is None or (request.inode and conn.inode and conn.inode != request.inode):
        raise close.NoSuchConnection(f"{request.what} is gone: nothing was closed")
    close.destroy(conn)
    return f"closed {conn.describe()}; {request.owner} keeps running"


class CloseModal(ModalScreen[bool]):
    """Close this connection? (see the module doc)"""

    DEFAULT_CSS = CLOSE_CSS
    BINDINGS = [
        Binding("y", "answer(True)", "Close", priority=True),
        Binding("n", "answer(False)", "Cancel", priority=True),
        Binding("escape", "answer(False)", "Cancel", priority=True),
        Binding("left,up", "focus_button(-1)", "Previous button", show=False, priority=True),
        Binding("right,down", "focus_button(1)", "Next button", show=False, priority=True),
    ]

    def __init__(self, request: CloseRequest) -> None:
        super().__init__()
        self.request = request

    def compose(self) -> ComposeResult:
        r = self.request
        with Vertical(id="close-dialog"):
            yield Label(Text("Close this TCP connection?"), id="title")
            with VerticalScroll(id="close-body"):
                lines = [
                    f"local    {format_endpoint(*r.local)}",
                    f"remote   {format_endpoint(*r.remote)}",
                    f"state    {printable(r.state, 20)}",
                    f"owner    {r.owner}",
                    "",
                    "The kernel destroys this one socket (SOCK_DESTROY, as ss -K): the peer sees a "
                    "reset, the process keeps running and keeps its other connections.",
                    f"same as: {r.cli()}",
                ]
                yield Static(Text("\n".join(lines)), id="details")
            with Horizontal(classes="buttons"):
                yield Button("Close connection (y)", id="close", variant="error", compact=True)
                yield Button("Cancel (Esc/n)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def action_focus_button(self, step: int) -> None:
        buttons = list(self.query(Button))
        current = self.focused
        i = buttons.index(current) if current in buttons else 0
        buttons[(i + step) % len(buttons)].focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "close")


def notify(app: App, message: str, severity: SeverityLevel = "information") -> None:
    app.notify(message, title="close", severity=severity, markup=False)


def start_close(app: App, request: CloseRequest, closer: Closer = close_connection) -> None:
    """Open the dialog; on a confirm run ``closer`` in a thread worker and notify its outcome."""

    def work() -> None:
        try:
            line = closer(request)
        except PortscopeError as exc:
            app.call_from_thread(notify, app, printable(str(exc), 300, backslashes=False), "error")
            return
        except Exception as exc:  # never raise into the app
            app.call_from_thread(notify, app, f"close failed: {printable(str(exc), 200)}", "error")
            return
        app.call_from_thread(notify, app, line)

    def answered(ok: bool | None) -> None:
        if not ok:
            notify(app, "nothing was closed")
            return
        app.run_worker(
            work, name=f"close {request.what}", group="portscope-close", thread=True, exit_on_error=False
        )

    if isinstance(app.screen, CloseModal):
        return  # X pressed twice: one dialog is enough
    try:
        app.push_screen(CloseModal(request), answered)
    except Exception as exc:  # e.g. the app is shutting down
        notify(app, f"cannot open the close dialog: {printable(str(exc), 200)}", "error")
