"""Listener baselines: save what listens now, later report what drifted from it.

Identity rules (documented in the README):

* A baseline holds *listeners* only: TCP sockets in LISTEN and UDP sockets bound without a peer.
  Connections come and go and are never part of it.
* A listener is identified by ``(proto, address, port)``; the address is canonicalised
  (``0:0::0`` is ``::``), and ``0.0.0.0`` and ``::`` are different listeners.
* Pids are not recorded: a restarted service (new pid, same program) is not drift, nor is a
  container restarted with a new pid (same name, same image).
* ``changed`` = the same endpoint held by another process name or user, or by another service
  (the systemd unit or container name) or container image. Several processes on one endpoint
  (SO_REUSEPORT workers) are recorded as their sorted, comma-joined distinct names (services and
  images too). A value that is unknown on either side (empty: not visible without root, not
  recorded by a version 1 file, no engine API to name the image) is not compared, and neither is
  a login session's scope (``session-3.scope``: a new one on every login, not a service).
* Version 2 files add ``service`` and ``image`` to each listener; version 1 files (without them)
  are still read.
* Unconnected UDP sockets on a port in the OS ephemeral range (``/proc/sys/net/ipv4/
  ip_local_port_range`` on Linux) are left out by default: they are almost always clients (DNS
  resolvers, NTP, mDNS queries) whose port changes on every restart and would make a baseline
  flap. ``--include-ephemeral-udp`` keeps them; the choice is stored in the file and used by
  ``diff``. TCP listeners are always kept, whatever their port.

:func:`parse_baseline` turns any bytes into a :class:`Baseline` or raises
:class:`~app.errors.UsageError` with one line naming the problem (property-tested).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.errors import UsageError
from app.fileout import describe, write_atomic
from app.model import UDP_BOUND, Proto, Snapshot, Sock, format_endpoint
from app.textsafe import printable

if TYPE_CHECKING:
    from app.owners import OwnerFacts

FORMAT = "portscope-baseline"
VERSION = 2
READS = (1, 2)  # the versions this code reads
MAX_BYTES = 32 * 1024 * 1024

Identity = tuple[str, str, int]


@dataclass(frozen=True, slots=True, order=True)
class Entry:
    """One listener in a baseline. ``process``, ``user``, ``service`` (unit or container name) and
    ``image`` (a container's) are "" when unknown or none."""

    proto: str
    address: str
    port: int
    process: str = ""
    user: str = ""
    service: str = ""
    image: str = ""

    @property
    def identity(self) -> Identity:
        return (self.proto, self.address, self.port)

    @property
    def endpoint(self) -> str:
        return f"{self.proto} {format_endpoint(self.address, self.port)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "proto": self.proto,
            "address": self.address,
            "port": self.port,
            "process": self.process,
            "user": self.user,
            "service": self.service,
            "image": self.image,
        }

    def owner_dict(self) -> dict[str, str]:
        """Who holds it: the ``before`` / ``after`` of a change."""
        return {"process": self.process, "user": self.user, "service": self.service, "image": self.image}


@dataclass(frozen=True)
class Baseline:
    listeners: tuple[Entry, ...]
    include_ephemeral_udp: bool = False
    created: str = ""
    host: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "host": self.host,
            "include_ephemeral_udp": self.include_ephemeral_udp,
            "listeners": [e.as_dict() for e in sorted(self.listeners, key=_order)],
        }


def _order(e: Entry) -> tuple[int, str, str]:
    return (e.port, e.proto, e.address)


def canonical_address(text: str) -> str:
    """``0:0::0`` -> ``::``; a scope (``fe80::1%eth0``) is kept. Raises ValueError if not an IP."""
    bare, sep, scope = text.partition("%")
    return str(ipaddress.ip_address(bare)) + (sep + scope if sep else "")


def _joined(values: Iterable[str]) -> str:
    return ",".join(sorted({v for v in values if v}))


def _service_of(snapshot: Snapshot, sock: Sock, facts: OwnerFacts | None) -> tuple[str, str]:
    """(service name, image) of the listener's owner, raw; ("", "") when none or not known."""
    if facts is None:
        return "", ""
    svc = facts.service(snapshot, sock)
    if svc is None:
        return "", ""
    name = (svc.unit or "") if svc.kind == "socket" else svc.name
    return name, svc.image or ""


def entries_from_snapshot(
    snapshot: Snapshot, include_ephemeral_udp: bool = False, facts: OwnerFacts | None = None
) -> list[Entry]:
    """The listeners of ``snapshot`` as baseline entries, one per (proto, address, port); with
    ``facts`` (prepared for the snapshot) their services and images too."""
    names: dict[Identity, list[str]] = {}
    users: dict[Identity, list[str]] = {}
    services: dict[Identity, list[str]] = {}
    images: dict[Identity, list[str]] = {}
    for sock in snapshot.listeners:
        if (
            not include_ephemeral_udp
            and sock.proto is Proto.UDP
            and sock.status == UDP_BOUND
            and snapshot.in_ephemeral(sock)
        ):
            continue
        try:
            address = canonical_address(sock.laddr.ip)
        except ValueError:
            address = sock.laddr.ip
        ident = (sock.proto.value, address, sock.laddr.port)
        owner = snapshot.owner(sock)
        names.setdefault(ident, []).append(owner.name if owner else "")
        users.setdefault(ident, []).append(owner.username if owner else "")
        service, image = _service_of(snapshot, sock, facts)
        services.setdefault(ident, []).append(service)
        images.setdefault(ident, []).append(image)
    return sorted(
        (
            Entry(
                p,
                a,
                port,
                _joined(names[(p, a, port)]),
                _joined(users[(p, a, port)]),
                _joined(services[(p, a, port)]),
                _joined(images[(p, a, port)]),
            )
            for p, a, port in names
        ),
        key=_order,
    )


def make_baseline(
    snapshot: Snapshot, include_ephemeral_udp: bool = False, facts: OwnerFacts | None = None
) -> Baseline:
    created = dt.datetime.fromtimestamp(snapshot.taken_at, dt.UTC).isoformat(timespec="seconds")
    return Baseline(
        listeners=tuple(entries_from_snapshot(snapshot, include_ephemeral_udp, facts)),
        include_ephemeral_udp=include_ephemeral_udp,
        created=created,
        host=socket.gethostname(),
    )


def dumps(baseline: Baseline) -> str:
    return json.dumps(baseline.as_dict(), indent=2) + "\n"


def save(baseline: Baseline, path: str) -> None:
    """Write ``baseline`` to ``path`` by app/fileout.py's rule: a regular file or a new one
    atomically (a reader never sees half a file), ``-`` and character devices in place, a symlink
    followed; anything else is a UsageError."""
    write_atomic(path, dumps(baseline), what="baseline")


# --- loading ----------------------------------------------------------------------------------


class _Shape(Exception):
    pass


def _field(obj: Mapping[str, Any], key: str, where: str, kind: type, default: Any = None) -> Any:
    if key not in obj:
        if default is not None:
            return default
        raise _Shape(f"{where} has no {key!r}")
    value = obj[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _Shape(f"{where}.{key} must be a whole number, not {_kind(value)}")
    if not isinstance(value, kind):
        raise _Shape(f"{where}.{key} must be {_KIND_NAMES[kind]}, not {_kind(value)}")
    return value


_KIND_NAMES: dict[type, str] = {str: "a string", bool: "true or false", list: "a list", int: "a number"}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _entry(raw: object, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise _Shape(f"{where} must be an object, not {_kind(raw)}")
    proto = _field(raw, "proto", where, str)
    if proto.lower() not in ("tcp", "udp"):
        raise _Shape(f"{where}.proto must be tcp or udp, not {printable(proto, 20)!r}")
    address = _field(raw, "address", where, str)
    try:
        address = canonical_address(address)
    except ValueError:
        raise _Shape(f"{where}.address {printable(address, 60)!r} is not an IP address") from None
    port = _field(raw, "port", where, int)
    if not 1 <= port <= 65535:
        raise _Shape(f"{where}.port must be from 1 to 65535, not {port if abs(port) < 10**9 else '…'}")
    process = _field(raw, "process", where, str, "")
    user = _field(raw, "user", where, str, "")
    service = _field(raw, "service", where, str, "")
    image = _field(raw, "image", where, str, "")
    return Entry(proto.lower(), address, port, process, user, service, image)


def parse_baseline(data: bytes, name: str = "baseline") -> Baseline:
    """Any bytes -> a Baseline, or UsageError with one line naming the problem."""
    label = printable(name, 200)
    if not data.strip():
        raise UsageError(f"baseline {label!r} is empty: make one with 'portscope baseline save FILE'")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"baseline {label!r} is not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "truncated JSON" if exc.pos >= len(text.rstrip()) else "not valid JSON"
        raise UsageError(
            f"baseline {label!r} is {hint} (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    except (ValueError, RecursionError) as exc:
        msg = "nested too deeply" if isinstance(exc, RecursionError) else printable(str(exc), 80)
        raise UsageError(f"baseline {label!r} is not valid JSON ({msg})") from None
    try:
        return _from_doc(doc)
    except _Shape as exc:
        raise UsageError(f"baseline {label!r} has the wrong shape: {exc}") from None


def _from_doc(doc: object) -> Baseline:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _Shape(
            f'not a portscope baseline (expected an object with "format": "{FORMAT}"; '
            "make one with 'portscope baseline save FILE')"
        )
    version = _field(doc, "version", "baseline", int)
    if version not in READS:
        shown = version if abs(version) < 10**9 else "…"
        raise _Shape(f"version {shown} is not supported (this reads {', '.join(map(str, READS))})")
    include = _field(doc, "include_ephemeral_udp", "baseline", bool, False)
    raw_list = _field(doc, "listeners", "baseline", list)
    entries: dict[Identity, Entry] = {}
    for i, raw in enumerate(raw_list):
        entry = _entry(raw, f"listeners[{i}]")
        if entry.identity in entries:
            raise _Shape(f"listeners[{i}] repeats {entry.endpoint}")
        entries[entry.identity] = entry
    created = doc.get("created")
    host = doc.get("host")
    return Baseline(
        listeners=tuple(entries.values()),
        include_ephemeral_udp=include,
        created=created if isinstance(created, str) else "",
        host=host if isinstance(host, str) else "",
    )


def load_baseline(path: str) -> Baseline:
    """Read and parse a baseline file; UsageError (one line) if missing, unreadable, not a regular
    file or malformed. Opened non-blocking and checked before reading: a FIFO would otherwise
    block in ``open()`` until something writes to it."""
    label = printable(path, 200)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"cannot read baseline {label!r}: {exc.strerror or exc}") from None
    try:
        kind = describe(os.fstat(fd).st_mode)
        if kind is not None:
            raise UsageError(f"cannot read baseline {label!r}: it is {kind}, not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read baseline {label!r}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise UsageError(f"baseline {label!r} is too large (over {MAX_BYTES // (1024 * 1024)} MiB)")
    return parse_baseline(data, path)


# --- drift ------------------------------------------------------------------------------------


@dataclass
class Drift:
    added: list[Entry] = field(default_factory=list)
    removed: list[Entry] = field(default_factory=list)
    changed: list[tuple[Entry, Entry]] = field(default_factory=list)  # (baseline, now)

    @property
    def drifted(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def _differs(a: str, b: str) -> bool:
    return bool(a and b and a != b)


_SESSION_SCOPE = re.compile(r"session-[^,]*\.scope")


def _service_differs(a: str, b: str) -> bool:
    """Services differ when both are known and neither is a login session's scope (a shell's
    program lands in a new ``session-N.scope`` on every login)."""
    if _SESSION_SCOPE.fullmatch(a) or _SESSION_SCOPE.fullmatch(b):
        return False
    return _differs(a, b)


def _owner_differs(old: Entry, now: Entry) -> bool:
    return (
        _differs(old.process, now.process)
        or _differs(old.user, now.user)
        or _service_differs(old.service, now.service)
        or _differs(old.image, now.image)
    )


def compare(baseline: Iterable[Entry], current: Iterable[Entry]) -> Drift:
    """What changed from ``baseline`` to ``current`` under the identity rules above."""
    before = {e.identity: e for e in baseline}
    after = {e.identity: e for e in current}
    drift = Drift()
    for ident, now in after.items():
        old = before.get(ident)
        if old is None:
            drift.added.append(now)
        elif _owner_differs(old, now):
            drift.changed.append((old, now))
    drift.removed = [e for ident, e in before.items() if ident not in after]
    drift.added.sort(key=_order)
    drift.removed.sort(key=_order)
    drift.changed.sort(key=lambda pair: _order(pair[0]))
    return drift


DRIFT_SCHEMA = 2  # 2: entries and before/after have service and image


def drift_dict(drift: Drift, path: str) -> dict[str, Any]:
    return {
        "schema": DRIFT_SCHEMA,
        "baseline": path,
        "drift": drift.drifted,
        "added": [e.as_dict() for e in drift.added],
        "removed": [e.as_dict() for e in drift.removed],
        "changed": [
            {
                "proto": old.proto,
                "address": old.address,
                "port": old.port,
                "before": old.owner_dict(),
                "after": new.owner_dict(),
            }
            for old, new in drift.changed
        ],
    }


def _who(e: Entry) -> str:
    name = printable(e.process, 60) or "?"
    text = f"{name} ({printable(e.user, 24)})" if e.user else name
    service = [printable(e.service, 60)] if e.service else []
    if e.image:
        service.append(f"image {printable(e.image, 80)}")
    return f"{text} [{', '.join(service)}]" if service else text


def drift_lines(drift: Drift) -> list[str]:
    """Human lines: ``added``/``removed``/``changed``, endpoint, owner; untrusted text escaped."""
    rows: list[tuple[str, str, str]] = []
    # the address comes from the file (a scope id is free text: fe80::1%<anything>): escaped too
    rows += [("added", printable(e.endpoint), _who(e)) for e in drift.added]
    rows += [("removed", printable(e.endpoint), _who(e)) for e in drift.removed]
    rows += [
        ("changed", printable(old.endpoint), f"{_who(old)} -> {_who(new)}") for old, new in drift.changed
    ]
    width = max((len(r[1]) for r in rows), default=0)
    return [f"{what:<8} {endpoint:<{width}}  {who}" for what, endpoint, who in rows]
