"""The stable JSON shape of sockets and snapshots (``list --json``, ``who --json``, events).

Version 1. Pinned by tests/test_json_shape.py: add keys only with a version bump.
"""

from __future__ import annotations

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
