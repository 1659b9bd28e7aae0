"""What a ``__del__`` runs its clean-up through (:func:`finalize`).

A Ctrl-C whose signal handler runs inside a finalizer raises KeyboardInterrupt there, and Python
drops an exception raised in ``__del__`` after printing ``Exception ignored in ...`` with a
traceback (a `portscope list` interrupted as it ended showed one). It cannot be handed on: the
interrupt would be raised again at once, still inside the finalizer.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (no typing import on the start-up path)
if TYPE_CHECKING:
    from collections.abc import Callable


def finalize(close: Callable[[], object]) -> None:
    """Run ``close`` from a finalizer: whatever it raises is dropped, as Python would drop it,
    but without a traceback on the user's terminal (the object is going away; a Ctrl-C that
    landed here is lost, as it would be anyway)."""
    try:
        close()
    except BaseException:  # (see the module docstring)
        pass
