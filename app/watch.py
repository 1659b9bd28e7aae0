"""``portscope watch``: a headless monitor printing one line per socket event until stopped.

The loop is here (no argparse, no signals) so it can be driven in-process: :class:`Watch` polls a
collector, diffs consecutive snapshots with :func:`app.events.diff` and writes each batch of
events as human lines or NDJSON, flushed per batch; with a log file, every batch is appended as
NDJSON and fsync'ed before the next poll, so a crash loses at most the last poll.

Event JSON shape (schema 1), one object per line::

    {"schema": 1, "event": "opened" | "closed" | "owner-changed" | "state-changed",
     "time": <float, epoch seconds of the poll that saw it>,
     "iso_time": "<the same, ISO 8601 UTC>",
     "socket": <the socket, the shape of ``list --json``'s sockets; for "closed" as last seen>,
     "before": null | {"state": str, "pid": int | null, "process": <process object> | null}}

``before`` is set for ``owner-changed`` and ``state-changed`` (the socket as it was).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import stat
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from app.backends.base import Collector
from app.events import Event, EventKind, Scope, diff, restrict
from app.exposure import ExposureMap
from app.fileout import is_regular
from app.model import ProcessInfo, Snapshot, Sock
from app.serialize import SCHEMA_VERSION, process_dict, sock_dict
from app.textsafe import printable, quoted

EVENT_KEYS = ("schema", "event", "time", "iso_time", "socket", "before")


def event_dict(event: Event, snapshot: Snapshot, exposure: ExposureMap) -> dict[str, Any]:
    """The JSON object of one event. ``snapshot`` is the one the event was computed for (it gives
    the ephemeral range); the owner comes from the event itself (for ``closed``: as last seen)."""
    sock = sock_dict(event.sock, snapshot, exposure, event.key)
    sock["process"] = process_dict(event.owner)
    before = None
    if event.before is not None:
        before = {
            "state": event.before.status,
            "pid": event.before.pid,
            "process": process_dict(event.before_owner),
        }
    return {
        "schema": SCHEMA_VERSION,
        "event": event.kind.value,
        "time": event.time,
        "iso_time": dt.datetime.fromtimestamp(event.time, dt.UTC).isoformat(),
        "socket": sock,
        "before": before,
    }


def event_json(event: Event, snapshot: Snapshot, exposure: ExposureMap) -> str:
    """One NDJSON line (no newline). ASCII-only, so any process name (even invalid UTF-8) fits."""
    return json.dumps(event_dict(event, snapshot, exposure), separators=(",", ":"))


def _owner_text(sock: Sock, owner: ProcessInfo | None) -> str:
    if owner is not None:
        user = f" ({printable(owner.username, 24)})" if owner.username else ""
        return f"pid {owner.pid} {printable(owner.name, 40) or '?'}{user}"
    if sock.pid is not None:
        return f"pid {sock.pid}"
    return "-"


def event_line(event: Event, exposure: ExposureMap) -> str:
    """A human line: local time, event, protocol, local and remote address, state, exposure
    (listeners) and owner. Untrusted text is escaped."""
    sock = event.sock
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.time))
    proto = sock.proto.value + ("6" if sock.family.value == "ipv6" else "")
    state = sock.status
    owner = _owner_text(sock, event.owner)
    if event.kind is EventKind.STATE_CHANGED and event.before is not None:
        state = f"{event.before.status}->{sock.status}"
    if event.kind is EventKind.OWNER_CHANGED and event.before is not None:
        owner = f"{_owner_text(event.before, event.before_owner)} -> {owner}"
    parts = [
        stamp,
        f"{event.kind.value:<13}",
        f"{proto:<4}",
        f"{printable(str(sock.laddr)):<21}",  # a scope id (fe80::1%eth0) is an interface name
        f"{(printable(str(sock.raddr)) if sock.raddr else '*'):<21}",
        f"{state:<11}",
    ]
    if sock.listening:
        parts.append(exposure.classify(sock.laddr.ip).label)
    parts.append(owner)
    return " ".join(parts)


def reader_gone(stream: IO[str]) -> bool:
    """True when ``stream`` is a pipe whose reader has gone away (``| head`` finished), found
    without writing to it, so an idle watch still ends when its reader does."""
    poll = getattr(select, "poll", None)
    if poll is None:
        return False
    try:
        fd = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = poll()
        poller.register(fd, 0)  # POLLERR / POLLHUP are always reported
        return any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


class Watch:
    """Poll ``collector`` every ``interval`` seconds and report what changed in ``scope``."""

    def __init__(
        self,
        collector: Collector,
        *,
        scope: Scope = "listening",
        interval: float = 2.0,
        out: IO[str],
        as_json: bool = False,
        log: IO[str] | None = None,
        log_name: str = "",
        warn: Callable[[str], None] = lambda _msg: None,
        exposure: ExposureMap | None = None,
    ) -> None:
        self.collector = collector
        self.scope = scope
        self.interval = interval
        self.out = out
        self.as_json = as_json
        self.log = log
        self.log_name = log_name
        self.log_error = ""  # why the log failed (then it is closed and events go to ``out`` only)
        self._fsync_log = log is not None and is_regular(log)  # a device refuses fsync
        self.warn = warn
        self.exposure = exposure or ExposureMap()
        self.stop = threading.Event()
        self.events_seen = 0
        self._warned: set[str] = set()
        self._prev: Snapshot | None = None

    def _collect(self) -> Snapshot:
        snap = self.collector.collect()
        for line in snap.warnings:
            if line not in self._warned:  # each distinct diagnostic once, not every poll
                self._warned.add(line)
                self.warn(line)
        return restrict(snap, self.scope)

    def start(self) -> Snapshot:
        """Take the first snapshot: what is already there is the starting point, not an event."""
        self._prev = self._collect()
        return self._prev

    def poll(self) -> list[Event]:
        """Take a snapshot, write the events since the last one, return them."""
        if self._prev is None:
            self.start()
            return []
        cur = self._collect()
        assert self._prev is not None
        events = diff(self._prev, cur)
        self._prev = cur
        if events:
            self.emit(events, cur)
        return events

    def emit(self, events: Sequence[Event], snapshot: Snapshot) -> None:
        """Write one batch: to the log first (fsync'ed), then to ``out``, flushed once."""
        lines = [event_json(e, snapshot, self.exposure) for e in events]
        if self.log is not None:
            self._append_log("".join(line + "\n" for line in lines))
        if self.as_json:
            self.out.write("".join(line + "\n" for line in lines))
        else:
            self.out.write("".join(event_line(e, self.exposure) + "\n" for e in events))
        self.out.flush()
        self.events_seen += len(events)

    def _append_log(self, text: str) -> None:
        """Append one batch to the log. If that fails (a full disk, an I/O error), say so once,
        close the log and go on: the events still reach ``out``. A half-written line may end the
        log; nothing is appended after it."""
        assert self.log is not None
        try:
            self.log.write(text)
            self.log.flush()
            if self._fsync_log:
                os.fsync(self.log.fileno())
        except OSError as exc:
            self.log_error = exc.strerror or str(exc)
            log, self.log = self.log, None
            try:
                log.close()
            except OSError:
                pass
            self.warn(
                f"cannot write the log {quoted(self.log_name, 80)}: {self.log_error}; events go to "
                "standard output only from now on"
            )

    def run(self) -> None:
        """Poll until :attr:`stop` is set. Raises BrokenPipeError when the reader of ``out`` left."""
        if self._prev is None:
            self.start()
        while not self.stop.wait(self.interval):
            if reader_gone(self.out):
                raise BrokenPipeError("the reader of standard output went away")
            self.poll()
