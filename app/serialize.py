"""The stable JSON shape of sockets and snapshots (``list --json``, ``who --json``, events).

Version 2 (added to each socket: ``owners``, ``service``, ``forward``, ``netns``). Pinned by
tests/integration/test_json_shape.py: add keys only with a version bump. With ``stats`` (the
``--stats`` option) each socket has two more keys, last: ``tcp_info`` (:class:`app.health.TcpInfo`
of a TCP socket, else null) and ``queue`` (a TCP listener's accept queue ``{current, max}``, else
null); without it the shape is exactly schema 2's.
"""

from __future__ import annotations

import json
from _operator import is_ as _is  # (operator.py only re-exports it, and costs start-up)

from app import __version__
from app.forwardprogs import might_forward
from app.health import TcpInfo, queue, tcp_info
from app.model import LISTEN, UDP_BOUND, Proto, unique_keys
from app.owners import OwnerFacts, owner_dict
from app.ports import port_range

TYPE_CHECKING = False  # `list --json`'s start-up path: no typing at run time
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
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
    key_of = {id(s): k for k, s in snapshot.keyed().items()} if socks else {}
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
    writer = _SocketWriter(snapshot, exposure, facts, stats)
    parts: list[str] = []
    for sock, key in zip(socks, keys, strict=True):
        writer.write([sock], [key], parts)
        yield "".join(parts)[2:]  # (without the separator before it)
        parts.clear()


_CLOSE = "\n" + _SOCK_INDENT + "}"
# One socket's keys up to its pid, as json.dumps(indent=2) lays them out inside the document,
# after the ",\n" that separates it from the one before (one % per socket instead of thirty
# concatenations): the proto's slot holds "family" too, the state's "listening", the range's
# "in_ephemeral"; one template for a socket without a remote address, one with.
_ENDPOINT = "{" + _INNER + '  "ip": %s,' + _INNER + '  "port": %d' + _INNER + "}"
_HEAD_START = (
    ",\n" + _SOCK_INDENT + "{" + _INNER + '"key": %s,' + _INNER + '"proto": %s,'
    + _INNER + '"local": ' + _ENDPOINT + "," + _INNER + '"remote": '
)  # fmt: skip
_HEAD_END = (
    "," + _INNER + '"state": %s,' + _INNER + '"range": %s,' + _INNER + '"exposure": %s,' + _INNER + '"pid": '
)
_HEAD_LOCAL = _HEAD_START + "null" + _HEAD_END
_HEAD_REMOTE = _HEAD_START + _ENDPOINT + _HEAD_END
_LISTENING = frozenset({LISTEN, UDP_BOUND})
_RANGE_TEXT = tuple(_enc(r) for r in (port_range(0), port_range(1024), port_range(49152)))
# range, then in_ephemeral: [range index * 2 + in ephemeral]
_RANGE_EPHEMERAL = tuple(
    text + "," + _INNER + '"in_ephemeral": ' + flag for text in _RANGE_TEXT for flag in ("false", "true")
)


def _extra_block(sock: Sock, snapshot: Snapshot, facts: OwnerFacts | None) -> str:
    owners, service, forward = owner_blocks(sock, snapshot, facts)
    return (
        "," + _INNER + '"owners": ' + (_block(owners) if owners else "[]")
        + "," + _INNER + '"service": ' + ("null" if service is None else _block(service))
        + "," + _INNER + '"forward": ' + ("null" if forward is None else _block(forward))
        + "," + _INNER + '"netns": ' + _block(netns_dict(sock, snapshot))
    )  # fmt: skip


class _SocketWriter:
    """Appends the text of sockets to a list, as a few pieces per socket: the head (its own
    keys, one ``%``) and the tail from its pid on, one string shared by every socket of the same
    owner (and namespace, and forward). An owner's process block (a java command line is
    kilobytes, repeated on each of its 20k sockets) is then one shared string that the caller's
    single join copies once. What repeats is worked out once per writer: the text of each
    address, state, protocol and family, exposure, and tail."""

    def __init__(self, snapshot: Snapshot, exposure: ExposureMap, facts: OwnerFacts | None, stats: bool):
        self.snapshot = snapshot
        self.exposure = exposure
        self.facts = facts
        self.stats = stats
        self.ips: dict[str, str] = {}  # address -> its JSON text
        self.places: dict[str, str] = {}  # local address -> its exposure block
        self.states: dict[str, str] = {}  # state -> its text and listening's
        self.protos: dict[tuple[Proto, object], str] = {}  # (proto, family) -> their text
        # pid -> its process block and whether it may forward (only then is a forward looked up)
        self.procs: dict[int | None, tuple[str, bool]] = {}
        # (owner, namespace, forward) -> the tail: pid, process, owners/service/forward/netns;
        # per socket instead for a shared one (its holder list is its own) or pid 1's (socket
        # activation names a unit per listener)
        self.tails: dict[tuple[int | None, int, object], str] = {}

    def write(self, socks: list[Sock], keys: list[str | None], out: list[str]) -> None:
        ips, places, states, protos, procs, tails = (
            self.ips, self.places, self.states, self.protos, self.procs, self.tails
        )  # fmt: skip
        snapshot, facts, stats = self.snapshot, self.facts, self.stats
        shared = snapshot.holders
        lo, hi = snapshot.ephemeral
        append = out.append
        for sock, key in zip(socks, keys, strict=True):
            laddr, raddr, pid, status = sock.laddr, sock.raddr, sock.pid, sock.status
            lip, port = laddr
            lenc = ips.get(lip) or self._ip(lip)
            place = places.get(lip) or self._place(lip)
            state = states.get(status) or self._state(status)
            proto = protos.get((sock.proto, sock.family)) or self._proto(sock)
            rng = _RANGE_EPHEMERAL[
                (0 if port <= 1023 else 2 if port <= 49151 else 4) + (1 if lo <= port <= hi else 0)
            ]
            if raddr is None:
                append(_HEAD_LOCAL % (_enc(key or sock.endpoint_key), proto, lenc, port, state, rng, place))
            else:
                rip = raddr[0]
                append(
                    _HEAD_REMOTE
                    % (
                        _enc(key or sock.endpoint_key),
                        proto,
                        lenc,
                        port,
                        ips.get(rip) or self._ip(rip),
                        raddr[1],
                        state,
                        rng,
                        place,
                    )
                )
            if sock.inode in shared or pid == 1:
                append(self._tail(sock))
            else:
                proc = procs.get(pid) or self._proc(sock)
                tkey = (pid, sock.netns, facts.forward(snapshot, sock) if proc[1] else None)  # type: ignore[union-attr]
                append(tails.get(tkey) or self._remember_tail(tkey, sock))
            if stats:
                append(_stats_text(sock, snapshot))
                append(_CLOSE)

    def _ip(self, ip: str) -> str:
        text = self.ips[ip] = _enc(ip)
        return text

    def _place(self, ip: str) -> str:
        text = self.places[ip] = _block(self.exposure.classify(ip).as_dict())
        return text

    def _state(self, status: str) -> str:
        listening = "true" if status in _LISTENING else "false"
        text = self.states[status] = _enc(status) + "," + _INNER + '"listening": ' + listening
        return text

    def _proto(self, sock: Sock) -> str:
        text = self.protos[sock.proto, sock.family] = (
            _enc(sock.proto) + "," + _INNER + '"family": ' + _enc(sock.family)
        )
        return text

    def _proc(self, sock: Sock) -> tuple[str, bool]:
        info = self.snapshot.owner(sock)
        block = "null" if info is None else _block(process_dict(info))
        forwards = self.facts is not None and info is not None and might_forward(info.cmdline)
        hit = self.procs[sock.pid] = (block, forwards)
        return hit

    def _remember_tail(self, key: tuple[int | None, int, object], sock: Sock) -> str:
        text = self.tails[key] = self._tail(sock)
        return text

    def _tail(self, sock: Sock) -> str:
        pid = sock.pid
        proc = self.procs.get(pid) or self._proc(sock)
        text = (
            ("null" if pid is None else int.__repr__(pid)) + "," + _INNER + '"process": ' + proc[0]
            + _extra_block(sock, self.snapshot, self.facts)
        )  # fmt: skip
        return text if self.stats else text + _CLOSE


def row_keys_of(socks: Sequence[Sock]) -> list[str]:
    """:func:`app.model.row_keys` of ``socks`` (what :attr:`Snapshot.keys` holds), built from the
    text of each (protocol, local address) and remote address once instead of each socket's
    :attr:`~app.model.Sock.endpoint_key` (a property call and two formats per socket, 20k of them
    for ``list --all --json``); the sockets' cached keys are left alone."""
    heads: dict[tuple[Proto, str], str] = {}  # (proto, local ip) -> "tcp:127.0.0.1:"
    peers: dict[str, str] = {}  # remote ip -> ">[::1]:"
    keys: list[str] = []
    append = keys.append
    for s in socks:
        lip, lport = s.laddr
        head = heads.get((s.proto, lip))
        if head is None:
            head = heads[s.proto, lip] = (
                f"{s.proto.value}:[{lip}]:" if ":" in lip else f"{s.proto.value}:{lip}:"
            )
        raddr = s.raddr
        if raddr is None:
            key = f"{head}{lport}"
        else:
            rip = raddr[0]
            peer = peers.get(rip)
            if peer is None:
                peer = peers[rip] = f">[{rip}]:" if ":" in rip else f">{rip}:"
            key = f"{head}{lport}{peer}{raddr[1]}"
        append(f"@{s.netns}/{key}" if s.netns else key)
    return unique_keys(socks, keys)  # (several sockets may share an endpoint)


def iter_snapshot_json(
    snapshot: Snapshot,
    socks: list[Sock],
    exposure: ExposureMap,
    *,
    chunk: int = 64,
    facts: OwnerFacts | None = None,
    stats: bool = False,
    **extra: Any,
) -> Iterator[str]:
    """The text of ``json.dumps(snapshot_dict(snapshot, socks, exposure, facts, stats=stats,
    **extra), indent=2)``, in pieces of ``chunk`` sockets (write each as it comes: bounded
    memory). Small pieces: a socket's text is kilobytes when its owner's command line is long,
    and joining and writing pieces of megabytes (fresh memory each time) costs several times
    what pieces that stay in the CPU's cache do."""
    head = json.dumps(snapshot_dict(snapshot, [], exposure, **extra), indent=2)
    if not socks:
        yield head
        return
    tail = '"sockets": []\n}'
    if not head.endswith(tail):  # only if someone moves "sockets": then the slow, sure way
        yield json.dumps(snapshot_dict(snapshot, socks, exposure, facts, stats=stats, **extra), indent=2)
        return
    yield head[: -len(tail)] + '"sockets": [\n'
    every = snapshot.sockets
    all_keys = row_keys_of(every)
    if len(socks) == len(every) and all(map(_is, socks, every)):
        keys: Sequence[str | None] = all_keys  # (``list --all``: the snapshot's own order)
    else:
        key_of = {id(s): k for s, k in zip(every, all_keys, strict=True)}
        keys = [key_of.get(id(s)) for s in socks]
    writer = _SocketWriter(snapshot, exposure, facts, stats)
    parts: list[str] = []
    for at in range(0, len(socks), chunk):
        writer.write(socks[at : at + chunk], keys[at : at + chunk], parts)  # type: ignore[arg-type]
        if at == 0:
            parts[0] = parts[0][2:]  # the first socket has no separator before it
        yield "".join(parts)
        parts.clear()
    yield "\n  ]\n}"
