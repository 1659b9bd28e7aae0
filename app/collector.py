"""The factory: :func:`default_collector` picks the best socket backend for this platform.

It sits above the backends as psutil's facade sits above its platform modules: the Linux backend
(:mod:`app.fast`: netlink sock_diag, else /proc/net) with the portable psutil backend
(:mod:`app.backends.portable`) as its last fallback, or the portable one alone elsewhere. The
names most callers need are re-exported here.
"""

from __future__ import annotations

import os
import sys

from app.backends.base import (
    Collector,
    Kind,
    filter_kind,
    finish_snapshot,
    hidden_owner_count,
    owner_warning,
    sort_key,
    sort_sockets,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    from app.backends.portable import PsutilCollector, sock_from_psutil

__all__ = [
    "Collector",
    "Kind",
    "PsutilCollector",
    "default_collector",
    "filter_kind",
    "finish_snapshot",
    "hidden_owner_count",
    "owner_warning",
    "sock_from_psutil",
    "sort_key",
    "sort_sockets",
]


def __getattr__(name: str) -> object:
    """The portable backend is imported on first use only (psutil costs ~10 ms of start-up that
    the Linux backend does not need)."""
    if name in ("PsutilCollector", "sock_from_psutil"):
        from app.backends import portable

        return getattr(portable, name)
    raise AttributeError(name)


def _portable() -> Collector:
    from app.backends.portable import PsutilCollector

    return PsutilCollector()


def default_collector(
    *, stats: bool = False, netns: Literal["current", "all"] = "current", search: bool = False
) -> Collector:
    """The best collector for this platform: the netlink fast path on Linux when available.

    ``stats``: also read TCP info, queues and the host's listen counters (:mod:`app.health`);
    ``netns="all"``: also every other network namespace. Only the Linux backend can: the portable
    one ignores both (its snapshots have ``stats`` None and one namespace), and the command says
    what is missing. ``PORTSCOPE_COLLECTOR=psutil`` forces the portable collector (to compare, or
    to work around a problem in the fast path).

    ``search``: for a one-shot look at one port (``who``): the Linux backend finds that port's
    holders by a search that stops early, helped by the owner cache (app/fast/ownercache.py),
    instead of reading every process's fd table (see OwnerMap.search for what it can miss)."""
    if os.environ.get("PORTSCOPE_COLLECTOR", "").strip().lower() == "psutil":
        return _portable()
    if sys.platform.startswith("linux"):
        try:
            from app.fast.collector import FastCollector
        except ImportError:
            pass
        else:
            try:
                hints = None
                if search:
                    from app.fast.ownercache import OwnerCache

                    hints = OwnerCache.default()
                return FastCollector(fallback=_portable, stats=stats, netns=netns, search=search, hints=hints)
            except Exception:  # any failure to set up the fast path: use the portable one
                pass
    return _portable()
