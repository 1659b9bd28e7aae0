"""Reverse DNS in the background, cached: ``name(ip)`` never blocks.

The first ask for an address queues a lookup on a daemon thread and returns ``None``; when the
lookup finishes ``on_resolved(ip)`` is called (from that thread) so the caller can redraw. Failures
are cached too (as "no name"), and the cache is bounded.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable

Resolver = Callable[[str], str | None]


def system_resolver(ip: str) -> str | None:
    """The system's reverse lookup (PTR / hosts file); ``None`` when there is no name."""
    try:
        name = socket.gethostbyaddr(ip.split("%", 1)[0])[0]
    except (OSError, UnicodeError, ValueError):
        return None
    return name or None


class ReverseDNS:
    def __init__(
        self,
        resolver: Resolver = system_resolver,
        on_resolved: Callable[[str], None] | None = None,
        *,
        max_entries: int = 4096,
        workers: int = 2,
    ) -> None:
        self.resolver = resolver
        self.on_resolved = on_resolved
        self.max_entries = max_entries
        self._cache: OrderedDict[str, str | None] = OrderedDict()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._queue: queue.Queue[str] = queue.Queue()
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self.lookups = 0  # lookups actually performed

    def _start(self) -> None:
        while len(self._threads) < self._workers:
            t = threading.Thread(target=self._run, name="portscope-rdns", daemon=True)
            t.start()
            self._threads.append(t)

    def name(self, ip: str) -> str | None:
        """The cached name of ``ip``; ``None`` if unknown yet (a lookup is queued) or nameless."""
        with self._lock:
            if ip in self._cache:
                self._cache.move_to_end(ip)
                return self._cache[ip]
            if ip in self._pending:
                return None
            self._pending.add(ip)
        self._start()
        self._queue.put(ip)
        return None

    def state(self, ip: str) -> str:
        """One of ``resolved``, ``pending`` or ``unknown``."""
        with self._lock:
            if ip in self._cache:
                return "resolved"
            return "pending" if ip in self._pending else "unknown"

    def _run(self) -> None:
        while True:
            ip = self._queue.get()
            try:
                result = self.resolver(ip)
            except Exception:
                result = None
            with self._lock:
                self.lookups += 1
                self._pending.discard(ip)
                self._cache[ip] = result
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
            if self.on_resolved is not None:
                try:
                    self.on_resolved(ip)
                except Exception:
                    pass
