"""The stable JSON shape of sockets and snapshots (``list --json``, ``who --json``, events).

Version 1. Pinned by tests/test_json_shape.py: add keys only with a version bump.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from app import __version__
from app.exposure import ExposureMap
from app.model import ProcessInfo, Snapshot, Sock

SCHEMA_VERSION = 1


def process_dict(p: ProcessInfo | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "pid": p.pid,
        "ppid": p.ppid,
        "name": p.name,
        "exe": p.exe,
        "cmdline": list(p.cmdline),
        "user": p.username,
        "create_time": p.create_time,
    }


def sock_dict(
    sock: Sock, snapshot: Snapshot, exposure: ExposureMap, key: str | None = None
) -> dict[str, Any]:
    return {
        "key": key or sock.endpoint_key,
        "proto": sock.proto.value,
        "family": sock.family.value,
        "local": {"ip": sock.laddr.ip, "port": sock.laddr.port},
        "remote": {"ip": sock.raddr.ip, "port": sock.raddr.port} if sock.raddr else None,
        "state": sock.status,
        "listening": sock.listening,
        "range": sock.range.value,
        "in_ephemeral": snapshot.in_ephemeral(sock),
        "exposure": exposure.classify(sock.laddr.ip).as_dict(),
        "pid": sock.pid,
        "process": process_dict(snapshot.owner(sock)),
    }


def snapshot_dict(
    snapshot: Snapshot, socks: list[Sock], exposure: ExposureMap, **extra: Any
) -> dict[str, Any]:
    keys = snapshot.keyed()
    key_of = {id(s): k for k, s in keys.items()}
    return {
        "schema": SCHEMA_VERSION,
        "portscope": __version__,
        "taken_at": snapshot.taken_at,
        "source": snapshot.source,
        "privileged": snapshot.privileged,
        "hidden_owners": snapshot.hidden_owners,
        "warnings": list(snapshot.warnings),
        "ephemeral_range": list(snapshot.ephemeral),
        **extra,
        "sockets": [sock_dict(s, snapshot, exposure, key_of.get(id(s))) for s in socks],
    }


# ----------------------------------------------------------------------------- fast text
#
# ``json.dump(..., indent=2)`` runs CPython's pure-Python encoder (the C one is used only without
# indent, up to 3.13) and writes each of millions of fragments separately: 2.8 s for 20k sockets.
# :func:`iter_snapshot_json` produces exactly the same text from per-socket templates, C-encoded
# strings, and blocks cached per process and per address (a process's block repeats for each of
# its sockets). tests/test_json_fast.py checks it against json.dumps on real and odd snapshots.

_enc = json.encoder.encode_basestring_ascii
_SOCK_KEYS = (
    "key",
    "proto",
    "family",
    "local",
    "remote",
    "state",
    "listening",
    "range",
    "in_ephemeral",
    "exposure",
    "pid",
    "process",
)
_SOCK_INDENT = "    "  # sockets sit at depth 2 of the document
_INNER = "\n      "  # a socket's keys, and what a nested block is re-indented by


def _block(obj: Any) -> str:
    """``obj`` as json.dumps(indent=2) text, re-indented to sit at a socket key's depth.

    JSON text never holds a raw newline inside a string (it is escaped), so every newline is a
    line break of the layout and re-indenting is a plain replace."""
    return json.dumps(obj, indent=2).replace("\n", _INNER)


def _endpoint_block(ip: str, port: int) -> str:
    return (
        "{" + _INNER + '  "ip": ' + _enc(ip) + "," + _INNER + '  "port": ' + int.__repr__(port) + _INNER + "}"
    )


def iter_socket_json(
    socks: list[Sock], snapshot: Snapshot, exposure: ExposureMap, keys: list[str | None]
) -> Iterator[str]:
    """Each socket's text as ``json.dumps(sock_dict(...), indent=2)`` nested in the document.
    (Proto, Family and PortRange are StrEnums: their C-encoded text is their value's.)"""
    procs: dict[int | None, str] = {}
    places: dict[str, str] = {}
    in_eph = snapshot.in_ephemeral
    owner = snapshot.owner
    classify = exposure.classify
    for sock, key in zip(socks, keys, strict=True):
        laddr, raddr, pid = sock.laddr, sock.raddr, sock.pid
        proc = procs.get(pid)
        if proc is None:
            info = owner(sock)
            proc = procs[pid] = "null" if info is None else _block(process_dict(info))
        place = places.get(laddr.ip)
        if place is None:
            place = places[laddr.ip] = _block(classify(laddr.ip).as_dict())
        port = laddr.port
        yield (
            _SOCK_INDENT + "{" + _INNER + '"key": ' + _enc(key or sock.endpoint_key)
            + "," + _INNER + '"proto": ' + _enc(sock.proto)
            + "," + _INNER + '"family": ' + _enc(sock.family)
            + "," + _INNER + '"local": ' + _endpoint_block(laddr.ip, port)
            + "," + _INNER + '"remote": '
            + ("null" if raddr is None else _endpoint_block(raddr.ip, raddr.port))
            + "," + _INNER + '"state": ' + _enc(sock.status)
            + "," + _INNER + '"listening": ' + ("true" if sock.listening else "false")
            + "," + _INNER + '"range": ' + _enc(sock.range)
            + "," + _INNER + '"in_ephemeral": ' + ("true" if in_eph(sock) else "false")
            + "," + _INNER + '"exposure": ' + place
            + "," + _INNER + '"pid": ' + ("null" if pid is None else int.__repr__(pid))
            + "," + _INNER + '"process": ' + proc
            + "\n" + _SOCK_INDENT + "}"
        )  # fmt: skip


def iter_snapshot_json(
    snapshot: Snapshot, socks: list[Sock], exposure: ExposureMap, *, chunk: int = 500, **extra: Any
) -> Iterator[str]:
    """The text of ``json.dumps(snapshot_dict(snapshot, socks, exposure, **extra), indent=2)``,
    in pieces of about ``chunk`` sockets (write each as it comes: bounded memory)."""
    head = json.dumps(snapshot_dict(snapshot, [], exposure, **extra), indent=2)
    if not socks:
        yield head
        return
    tail = '"sockets": []\n}'
    if not head.endswith(tail):  # only if someone moves "sockets": then the slow, sure way
        yield json.dumps(snapshot_dict(snapshot, socks, exposure, **extra), indent=2)
        return
    yield head[: -len(tail)] + '"sockets": [\n'
    key_of = {id(s): k for k, s in snapshot.keyed().items()}
    keys = [key_of.get(id(s)) for s in socks]
    parts: list[str] = []
    sep = ""
    for text in iter_socket_json(socks, snapshot, exposure, keys):
        parts.append(text)
        if len(parts) >= chunk:
            yield sep + ",\n".join(parts)
            parts, sep = [], ",\n"
    if parts:
        yield sep + ",\n".join(parts)
    yield "\n  ]\n}"
