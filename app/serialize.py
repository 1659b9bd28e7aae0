"""The stable JSON shape of sockets and snapshots (``list --json``, ``who --json``, events).

Version 2 (added to each socket: ``owners``, ``service``, ``forward``, ``netns``). Pinned by
tests/integration/test_json_shape.py: add keys only with a version bump. With ``stats`` (the
``--stats`` option) each socket has two more keys, last: ``tcp_info`` (:class:`app.health.TcpInfo`
of a TCP socket, else null) and ``queue`` (a TCP listener's accept queue ``{current, max}``, else
null); without it the shape is exactly schema 2's.
"""

from __future__ import annotations

import json

from app import __version__
from app.health import TcpInfo, queue, tcp_info
from app.model import LISTEN, UDP_BOUND, Proto
from app.owners import OwnerFacts, owner_dict
from app.ports import port_range

TYPE_CHECKING = False  # `list --json`'s start-up path: no typing at run time
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from app.exposure import ExposureMap
    from app.model import ProcessInfo, Snapshot, Sock

SCHEMA_VERSION = 2


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


def netns_dict(sock: Sock, snapshot: Snapshot) -> dict[str, Any] | None:
    """The socket's network namespace: inode, ip-netns name, current (+ label); ``None`` when the
    collector does not know (psutil)."""
    info = snapshot.namespaces.get(sock.netns)
    if info is None:
        return None
    return {"inode": info.inode, "name": info.name, "current": info.current, "label": info.label}


def owner_blocks(
    sock: Sock, snapshot: Snapshot, facts: OwnerFacts | None
) -> tuple[list[dict[str, object]], dict[str, object] | None, dict[str, object] | None]:
    """(owners, service, forward) of ``sock`` as JSON values."""
    owners = [owner_dict(p) for p in OwnerFacts.holders(snapshot, sock)]
    if facts is None:
        return owners, None, None
    svc = facts.service(snapshot, sock)
    fwd = facts.forward(snapshot, sock)
    return owners, svc.as_dict() if svc else None, fwd.as_dict() if fwd else None


def stats_blocks(sock: Sock, snapshot: Snapshot) -> tuple[TcpInfo | None, dict[str, int] | None]:
    """(tcp_info, queue) of ``sock`` for ``--stats``: the TCP info of a TCP socket, the accept queue
    of a TCP listener; ``None`` where there is none (UDP, a socket without a file descriptor)."""
    if sock.proto is not Proto.TCP:
        return None, None
    info = tcp_info(snapshot.stats, sock.inode)
    q = queue(snapshot.stats, sock.inode) if sock.status == LISTEN else None
    return info, None if q is None else {"current": q.current, "max": q.max}


def sock_dict(
    sock: Sock,
    snapshot: Snapshot,
    exposure: ExposureMap,
    key: str | None = None,
    facts: OwnerFacts | None = None,
    *,
    stats: bool = False,
) -> dict[str, Any]:
    owners, service, forward = owner_blocks(sock, snapshot, facts)
    out: dict[str, Any] = {
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
        "owners": owners,
        "service": service,
        "forward": forward,
        "netns": netns_dict(sock, snapshot),
    }
    if stats:
        info, q = stats_blocks(sock, snapshot)
        out["tcp_info"] = None if info is None else info.as_dict()
        out["queue"] = q
    return out


def snapshot_dict(
    snapshot: Snapshot,
    socks: list[Sock],
    exposure: ExposureMap,
    facts: OwnerFacts | None = None,
    *,
    stats: bool = False,
    **extra: Any,
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
        "sockets": [sock_dict(s, snapshot, exposure, key_of.get(id(s)), facts, stats=stats) for s in socks],
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
    "owners",
    "service",
    "forward",
    "netns",
)
_STATS_KEYS = ("tcp_info", "queue")  # after _SOCK_KEYS, with stats
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


def _number(value: float | int | None) -> str:
    """A number as json.dumps writes it (TcpInfo holds ints, floats and None only)."""
    if value is None:
        return "null"
    if type(value) is float:
        return float.__repr__(value)
    return int.__repr__(value)


def _stats_text(sock: Sock, snapshot: Snapshot) -> str:
    info, q = stats_blocks(sock, snapshot)
    if info is None:
        info_text = "null"
    else:
        info_text = (
            "{"
            + ",".join(
                _INNER + '  "' + name + '": ' + _number(value)
                for name, value in zip(TcpInfo._fields, info, strict=True)
            )
            + _INNER
            + "}"
        )
    if q is None:
        q_text = "null"
    else:
        q_text = (
            "{" + _INNER + '  "current": ' + int.__repr__(q["current"]) + ","
            + _INNER + '  "max": ' + int.__repr__(q["max"]) + _INNER + "}"
        )  # fmt: skip
    return "," + _INNER + '"tcp_info": ' + info_text + "," + _INNER + '"queue": ' + q_text


def iter_socket_json(
    socks: list[Sock],
    snapshot: Snapshot,
    exposure: ExposureMap,
    keys: list[str | None],
    facts: OwnerFacts | None = None,
    *,
    stats: bool = False,
) -> Iterator[str]:
    """Each socket's text as ``json.dumps(sock_dict(...), indent=2)`` nested in the document.
    (Proto, Family and PortRange are StrEnums: their C-encoded text is their value's.)"""
    parts: list[str] = []
    for _ in _socket_parts(socks, snapshot, exposure, keys, facts, parts, stats=stats):
        yield "".join(parts)
        parts.clear()


_CLOSE = "\n" + _SOCK_INDENT + "}"


def _socket_parts(
    socks: list[Sock],
    snapshot: Snapshot,
    exposure: ExposureMap,
    keys: list[str | None],
    facts: OwnerFacts | None,
    out: list[str],
    *,
    stats: bool = False,
) -> Iterator[None]:
    """Append each socket's text to ``out`` as a few pieces (once per socket, then yield): an
    owner's process block (a java command line is kilobytes, repeated on each of its 20k
    sockets) is one shared string that the caller's single join copies once, not a piece of a
    concatenation that copies it again for every piece after it."""
    procs: dict[int | None, str] = {}
    places: dict[str, str] = {}
    # owners/service/forward/netns: one block per (owner, namespace, forward) (the forward is
    # None but for forwarders), or per socket when it is shared (its holder list is its own) or
    # pid 1's (socket activation names a unit per listener)
    extras: dict[tuple[int | None, int, object], str] = {}
    texts: dict[object, str] = {}  # a proto, family, state or address -> its JSON text
    shared = snapshot.holders
    forward = facts.forward if facts is not None else None
    lo, hi = snapshot.ephemeral
    owner = snapshot.owner
    classify = exposure.classify
    for sock, key in zip(socks, keys, strict=True):
        laddr, raddr, pid, status = sock.laddr, sock.raddr, sock.pid, sock.status
        proc = procs.get(pid)
        if proc is None:
            info = owner(sock)
            proc = procs[pid] = "null" if info is None else _block(process_dict(info))
        lip, port = laddr
        place = places.get(lip)
        if place is None:
            place = places[lip] = _block(classify(lip).as_dict())
        if sock.inode in shared or pid == 1:
            extra = _extra_block(sock, snapshot, facts)
        else:
            ekey = (pid, sock.netns, forward(snapshot, sock) if forward is not None else None)
            extra = extras.get(ekey)  # type: ignore[assignment]
            if extra is None:
                extra = extras[ekey] = _extra_block(sock, snapshot, facts)
        lenc = texts.get(lip) or _text(texts, lip)
        if raddr is None:
            remote = "null"
        else:
            rip = raddr[0]
            remote = _ENDPOINT % (texts.get(rip) or _text(texts, rip), raddr[1])
        out.append(
            _HEAD
            % (
                _enc(key or sock.endpoint_key),
                texts.get(sock.proto) or _text(texts, sock.proto),
                texts.get(sock.family) or _text(texts, sock.family),
                _ENDPOINT % (lenc, port),
                remote,
                texts.get(status) or _text(texts, status),
                "true" if status in _LISTENING else "false",
                _RANGE_TEXT[0 if port <= 1023 else 1 if port <= 49151 else 2],
                "true" if lo <= port <= hi else "false",
                place,
                "null" if pid is None else int.__repr__(pid),
            )
        )
        out.append(proc)
        out.append(extra)
        if stats:
            out.append(_stats_text(sock, snapshot))
        out.append(_CLOSE)
        yield None


# One socket's keys up to its process block, as json.dumps(indent=2) lays them out inside the
# document (one % per socket instead of thirty concatenations), and an address block.
_HEAD = (
    _SOCK_INDENT + "{" + _INNER + '"key": %s,' + _INNER + '"proto": %s,' + _INNER + '"family": %s,'
    + _INNER + '"local": %s,' + _INNER + '"remote": %s,' + _INNER + '"state": %s,'
    + _INNER + '"listening": %s,' + _INNER + '"range": %s,' + _INNER + '"in_ephemeral": %s,'
    + _INNER + '"exposure": %s,' + _INNER + '"pid": %s,' + _INNER + '"process": '
)  # fmt: skip
_ENDPOINT = "{" + _INNER + '  "ip": %s,' + _INNER + '  "port": %d' + _INNER + "}"
_LISTENING = frozenset({LISTEN, UDP_BOUND})
_RANGE_TEXT = tuple(_enc(r) for r in (port_range(0), port_range(1024), port_range(49152)))


def _text(cache: dict[object, str], value: str) -> str:
    text = cache[value] = _enc(value)
    return text


def _extra_block(sock: Sock, snapshot: Snapshot, facts: OwnerFacts | None) -> str:
    owners, service, forward = owner_blocks(sock, snapshot, facts)
    return (
        "," + _INNER + '"owners": ' + (_block(owners) if owners else "[]")
        + "," + _INNER + '"service": ' + ("null" if service is None else _block(service))
        + "," + _INNER + '"forward": ' + ("null" if forward is None else _block(forward))
        + "," + _INNER + '"netns": ' + _block(netns_dict(sock, snapshot))
    )  # fmt: skip


def iter_snapshot_json(
    snapshot: Snapshot,
    socks: list[Sock],
    exposure: ExposureMap,
    *,
    chunk: int = 500,
    facts: OwnerFacts | None = None,
    stats: bool = False,
    **extra: Any,
) -> Iterator[str]:
    """The text of ``json.dumps(snapshot_dict(snapshot, socks, exposure, facts, stats=stats,
    **extra), indent=2)``, in pieces of about ``chunk`` sockets (write each as it comes: bounded
    memory)."""
    head = json.dumps(snapshot_dict(snapshot, [], exposure, **extra), indent=2)
    if not socks:
        yield head
        return
    tail = '"sockets": []\n}'
    if not head.endswith(tail):  # only if someone moves "sockets": then the slow, sure way
        yield json.dumps(snapshot_dict(snapshot, socks, exposure, facts, stats=stats, **extra), indent=2)
        return
    yield head[: -len(tail)] + '"sockets": [\n'
    key_of = {id(s): k for k, s in snapshot.keyed().items()}
    keys = [key_of.get(id(s)) for s in socks]
    parts: list[str] = []
    for n, _ in enumerate(_socket_parts(socks, snapshot, exposure, keys, facts, parts, stats=stats), 1):
        parts.append(",\n")  # between sockets (the last one is dropped below)
        if n % chunk == 0:
            yield "".join(parts[:-1]) + (",\n" if n < len(socks) else "")
            parts.clear()
    if parts:
        yield "".join(parts[:-1])
    yield "\n  ]\n}"
