"""``portscope watch``: a headless monitor printing one line per socket event until stopped.

The loop is here (no argparse, no signals) so it can be driven in-process: :class:`Watch` polls a
collector, diffs consecutive snapshots with :func:`app.events.diff` and writes each batch of
events as human lines or NDJSON, flushed per batch; with a log file, every batch is appended as
NDJSON and fsync'ed before the next poll, so a crash loses at most the last poll.

Event JSON shape (schema 2, the sockets' schema), one object per line::

    {"schema": 2, "event": "opened" | "closed" | "owner-changed" | "state-changed" | "queue-overflow",
     "time": <float, epoch seconds of the poll that saw it>,
     "iso_time": "<the same, ISO 8601 UTC>",
     "socket": <the socket, the shape of ``list --json``'s sockets (with --stats: its tcp_info and
                queue too); for "closed" as last seen>,
     "before": null | {"state": str, "pid": int | null, "process": <process object> | null}}

``before`` is set for ``owner-changed`` and ``state-changed`` (the socket as it was).
``queue-overflow`` (with stats only) adds ``"overflows"``: connections the host dropped from full
accept queues since the previous poll; its ``socket`` is the listener (``null`` when the host
counted overflows but no listener had connections waiting).
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
from app.events import (
    Event,
    EventKind,
    QueueOverflow,
    Scope,
    diff,
    full_queues,
    queue_overflows,
    restrict,
)
from app.exposure import ExposureMap
from app.fileout import is_regular
from app.model import ProcessInfo, Snapshot, Sock
from app.owners import OwnerFacts, service_name
from app.serialize import SCHEMA_VERSION, process_dict, sock_dict
from app.textsafe import printable, quoted

EVENT_KEYS = ("schema", "event", "time", "iso_time", "socket", "before")
OVERFLOW_KEYS = (*EVENT_KEYS, "overflows")  # a queue-overflow event's

AnyEvent = Event | QueueOverflow


def event_dict(
    event: AnyEvent,
    snapshot: Snapshot,
    exposure: ExposureMap,
    facts: OwnerFacts | None = None,
    *,
    stats: bool = False,
) -> dict[str, Any]:
    """The JSON object of one event. ``snapshot`` is the one the socket was seen in (for ``closed``:
    the previous poll's, where it was last seen), for its holders, service, stats and the
    ephemeral range; the owner comes from the event itself."""
    sock = None
    if event.sock is not None:
        sock = sock_dict(event.sock, snapshot, exposure, event.key, facts, stats=stats)
        sock["process"] = process_dict(event.owner)
    before = None
    if isinstance(event, Event) and event.before is not None:
        before = {
            "state": event.before.status,
            "pid": event.before.pid,
            "process": process_dict(event.before_owner),
        }
    out = {
        "schema": SCHEMA_VERSION,
        "event": event.kind.value,
        "time": event.time,
        "iso_time": dt.datetime.fromtimestamp(event.time, dt.UTC).isoformat(),
        "socket": sock,
        "before": before,
    }
    if isinstance(event, QueueOverflow):
        out["overflows"] = event.overflows
    return out


def event_json(
    event: AnyEvent,
    snapshot: Snapshot,
    exposure: ExposureMap,
    facts: OwnerFacts | None = None,
    *,
    stats: bool = False,
) -> str:
    """One NDJSON line (no newline). ASCII-only, so any process name (even invalid UTF-8) fits."""
    return json.dumps(event_dict(event, snapshot, exposure, facts, stats=stats), separators=(",", ":"))


def _owner_text(sock: Sock, owner: ProcessInfo | None) -> str:
    if owner is not None:
        user = f" ({printable(owner.username, 24)})" if owner.username else ""
        return f"pid {owner.pid} {printable(owner.name, 40) or '?'}{user}"
    if sock.pid is not None:
        return f"pid {sock.pid}"
    return "-"


def _service_text(event: AnyEvent, sock: Sock, facts: OwnerFacts | None, snapshot: Snapshot | None) -> str:
    """`` [nginx.service]``: the unit or container of the socket's owner, when known."""
    if facts is None or sock.pid is None:
        return ""
    svc = facts.service(snapshot, sock) if snapshot is not None else facts.process_service(event.owner)
    if svc is None:
        return ""
    return f" [{service_name(svc)}]"


def event_line(
    event: AnyEvent,
    exposure: ExposureMap,
    facts: OwnerFacts | None = None,
    snapshot: Snapshot | None = None,
) -> str:
    """A human line: local time, event, protocol, local and remote address, state, exposure
    (listeners), owner and its service (with ``facts``). Untrusted text is escaped."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.time))
    sock = event.sock
    if sock is None:  # a host-wide queue-overflow
        n = event.overflows if isinstance(event, QueueOverflow) else 0
        return (
            f"{stamp} {event.kind.value:<13} host: {n} connection{'s' if n != 1 else ''} dropped from "
            "full accept queues since the last poll (TcpExt ListenOverflows)"
        )
    proto = sock.proto.value + ("6" if sock.family.value == "ipv6" else "")
    state = sock.status
    owner = _owner_text(sock, event.owner) + _service_text(event, sock, facts, snapshot)
    if isinstance(event, Event):
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
    if isinstance(event, QueueOverflow):
        parts.append(f"queue {event.current}/{event.max}")
        if event.overflows:
            parts.append(f"({event.overflows} dropped on the host since the last poll)")
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
    """Poll ``collector`` every ``interval`` seconds and report what changed in ``scope``.

    ``facts`` names each event's service (unit, container) and forwards; ``stats`` (a collector
    made with stats) adds the sockets' tcp_info and queue to the JSON and ``queue-overflow``
    events."""

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
        facts: OwnerFacts | None = None,
        stats: bool = False,
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
        self.facts = facts
        self.stats = stats
        self.stop = threading.Event()
        self.events_seen = 0
        self._warned: set[str] = set()
        self._prev: Snapshot | None = None
        self._full: set[str] = set()  # listeners whose accept queue was full at the last poll
        self._counters: tuple[int, int] | None = None  # the host's ListenOverflows, ListenDrops

    def _collect(self) -> tuple[Snapshot, Snapshot]:
        """(its listeners, the part in scope): the queue checks need only the listeners (their row
        keys are the same in any part that holds them)."""
        snap = self.collector.collect()
        for line in snap.warnings:
            if line not in self._warned:  # each distinct diagnostic once, not every poll
                self._warned.add(line)
                self.warn(line)
        part = restrict(snap, self.scope)
        if self.facts is not None:
            # engines' APIs and systemd, at most once per their caches' lifetime; caches every
            # owner's service, so a closed socket's event still names it
            self.facts.prepare(snap, part.sockets)
        listeners = part if self.scope == "listening" or not self.stats else restrict(snap, "listening")
        return listeners, part

    def start(self) -> Snapshot:
        """Take the first snapshot: what is already there is the starting point, not an event
        (also a queue that is full already; its overflows from now on are events)."""
        listeners, self._prev = self._collect()
        if self.stats:
            self._full = full_queues(listeners)
            self._counters = listeners.listen_counters
        return self._prev

    def _overflow_events(self, listeners: Snapshot) -> list[QueueOverflow]:
        counters = listeners.listen_counters
        rose = 0
        if counters is not None and self._counters is not None:
            rose = max(0, counters[0] - self._counters[0])
        if counters is not None:
            self._counters = counters
        found = queue_overflows(listeners, self._full, rose)
        self._full = full_queues(listeners)
        return found

    def poll(self) -> list[AnyEvent]:
        """Take a snapshot, write the events since the last one, return them."""
        if self._prev is None:
            self.start()
            return []
        listeners, cur = self._collect()
        prev = self._prev
        assert prev is not None
        events: list[AnyEvent] = list(diff(prev, cur))
        if self.stats:
            events.extend(self._overflow_events(listeners))
        self._prev = cur
        if events:
            self.emit(events, cur, prev)
        return events

    def emit(self, events: Sequence[AnyEvent], snapshot: Snapshot, previous: Snapshot | None = None) -> None:
        """Write one batch: to the log first (fsync'ed), then to ``out``, flushed once. A closed
        socket is shown from ``previous`` (where it was last seen) when given."""
        seen_in = [
            previous if previous is not None and e.kind is EventKind.CLOSED else snapshot for e in events
        ]
        lines = [
            event_json(e, snap, self.exposure, self.facts, stats=self.stats)
            for e, snap in zip(events, seen_in, strict=True)
        ]
        if self.log is not None:
            self._append_log("".join(line + "\n" for line in lines))
        if self.as_json:
            self.out.write("".join(line + "\n" for line in lines))
        else:
            self.out.write(
                "".join(
                    event_line(e, self.exposure, self.facts, snap) + "\n"
                    for e, snap in zip(events, seen_in, strict=True)
                )
            )
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
