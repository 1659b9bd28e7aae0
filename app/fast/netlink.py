"""Read every TCP/UDP socket with netlink sock_diag (what ``ss`` uses), parsed with :mod:`struct`.

One persistent ``NETLINK_SOCK_DIAG`` socket; per poll four dumps (SOCK_DIAG_BY_FAMILY with an
``inet_diag_req_v2`` for TCP and UDP over IPv4 and IPv6, every state). With a port, a small
inet_diag bytecode program makes the kernel return only sockets with that local port.

Records are cached by their raw bytes (state + the socket id, which holds both endpoints and the
kernel's unique socket cookie), so an unchanged socket is not decoded again.
"""

from __future__ import annotations

import _socket
import errno
import os
import struct
import sys
from _operator import attrgetter, itemgetter  # (operator.py only re-exports them, and costs start-up)
from _socket import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, inet_ntop
from itertools import repeat

from app.fast.records import SKIP, TCP_STATE_NAMES, ReadResult, Record, make_record
from app.finalizers import finalize
from app.model import UDP_BOUND, UDP_CONNECTED, Endpoint, Family, Proto

# On the CLI's start-up path: the C socket module (``socket`` adds 8 ms of enum and selectors that
# a netlink dump does not need), dict caches instead of functools.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from app.fast.statstable import StatsTable

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_BC_S_GE = 2
INET_DIAG_BC_S_LE = 3
# Every TCP state 1..12 (ESTABLISHED .. NEW_SYN_RECV); not 13 (bound-but-inactive sockets, which
# neither /proc/net/tcp nor psutil list). UDP sockets are 1 (connected) or 7 (unconnected).
ALL_STATES = 0x1FFE

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_MSG_HEAD = struct.Struct("=IHHI")  # len, type, flags, seq (enough to walk and check a message)
_REQ_V2 = struct.Struct("=BBBBI48s")  # family, protocol, ext, pad, states, sockid
_INODE = struct.Struct("=I")
_ERRNO = struct.Struct("=i")

# inet_diag_msg offsets, counted from the start of the netlink message (16-byte header first).
_FAMILY = 16
_STATE = 17
_ID = 20  # sport(2, big-endian) dport(2) src(16) dst(16) if(4) cookie(8)
_ID_END = 68
_INODE_AT = 84
_MIN_LEN = 88

DUMPS: tuple[tuple[int, int, Proto, Family], ...] = (
    (AF_INET, IPPROTO_TCP, Proto.TCP, Family.IPV4),
    (AF_INET6, IPPROTO_TCP, Proto.TCP, Family.IPV6),
    (AF_INET, IPPROTO_UDP, Proto.UDP, Family.IPV4),
    (AF_INET6, IPPROTO_UDP, Proto.UDP, Family.IPV6),
)


# A port-filtered read (``who PORT``) asks for TCP once for both families with the inet_diag
# compat request (TCPDIAG_GETSOCK: the kernel dumps it as AF_UNSPEC): the kernel walks its TCP
# established hash table, every bucket of it (262144 on a small VM: about 4 ms each walk), once
# instead of once per family. Its messages come back with that type.
TCPDIAG_GETSOCK = 18
_REQ_V1 = struct.Struct("=BBBB48sII")  # family, src_len, dst_len, ext, sockid, states, dbs
PORT_DUMPS: tuple[tuple[int, int, Proto, Family], ...] = (
    (0, IPPROTO_TCP, Proto.TCP, Family.IPV4),  # af 0: both families (the family comes per message)
    (AF_INET, IPPROTO_UDP, Proto.UDP, Family.IPV4),
    (AF_INET6, IPPROTO_UDP, Proto.UDP, Family.IPV6),
)


class NetlinkUnavailable(OSError):
    """sock_diag cannot be used here (not Linux, seccomp, a module missing, a container policy)."""


def open_socket() -> _socket.socket:
    """Open and bind a NETLINK_SOCK_DIAG socket. Tests monkeypatch this to force the fallback."""
    family = getattr(_socket, "AF_NETLINK", None)
    if family is None:
        raise NetlinkUnavailable(errno.EAFNOSUPPORT, "no AF_NETLINK on this platform")
    sock = _socket.socket(family, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    try:
        sock.bind((0, 0))
    except OSError:
        sock.close()
        raise
    return sock


def port_filter(port: int) -> bytes:
    """An INET_DIAG_REQ_BYTECODE attribute accepting only local port ``port`` (sport >= p and <= p).

    Each comparison is two 4-byte ops (the second carries the port); ``yes`` moves to the next
    comparison (or exactly to the end: accept), ``no`` jumps 4 bytes past the end: reject.
    """
    prog = struct.pack("=BBHBBH", INET_DIAG_BC_S_GE, 8, 20, 0, 0, port)
    prog += struct.pack("=BBHBBH", INET_DIAG_BC_S_LE, 8, 12, 0, 0, port)
    return struct.pack("=HH", 4 + len(prog), INET_DIAG_REQ_BYTECODE) + prog


def build_tcp_request(seq: int, port: int | None = None, ext: int = 0) -> bytes:
    """A dump of TCP sockets of both families (see :data:`TCPDIAG_GETSOCK`)."""
    body = _REQ_V1.pack(AF_INET, 0, 0, ext, b"", ALL_STATES, 0)
    if port is not None:
        body += port_filter(port)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), TCPDIAG_GETSOCK, flags, seq, 0) + body


def build_request(af: int, ipproto: int, seq: int, port: int | None = None, ext: int = 0) -> bytes:
    body = _REQ_V2.pack(af, ipproto, ext, 0, ALL_STATES, b"")
    if port is not None:
        body += port_filter(port)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, seq, 0) + body


_IP_TEXT: dict[bytes, str] = {}  # raw address -> text; hosts have few distinct addresses


def _ip(raw: bytes) -> str:
    text = _IP_TEXT.get(raw)
    if text is None:
        text = inet_ntop(AF_INET if len(raw) == 4 else AF_INET6, raw)
        if len(_IP_TEXT) < 65536:
            _IP_TEXT[raw] = text
    return text


def decode(data: bytes, off: int, proto: Proto) -> Record:
    """Decode one inet_diag_msg at ``off`` (the start of its netlink message)."""
    state = data[off + _STATE]
    sport = (data[off + 20] << 8) | data[off + 21]
    dport = (data[off + 22] << 8) | data[off + 23]
    if data[off + _FAMILY] == AF_INET:
        family = Family.IPV4
        lip = _ip(data[off + 24 : off + 28])
        rip = _ip(data[off + 40 : off + 44])
    else:
        family = Family.IPV6
        lip = _ip(data[off + 24 : off + 40])
        rip = _ip(data[off + 40 : off + 56])
    (inode,) = _INODE.unpack_from(data, off + _INODE_AT)
    return make_record(proto, family, lip, sport, rip, dport, state, inode)


def decode_chunk(data: bytes, step: int, proto: Proto) -> list[Record]:
    """Decode a run of ``step``-byte socket messages (as :func:`decode` would, one by one, with
    :data:`SKIP` for a socket without a local port) in one pass: fields split by ``struct``."""
    fields, ports = _chunk_structs(step)
    ip4, ip6 = _IP4_TEXT, _IP6_TEXT
    udp = proto is Proto.UDP
    names = TCP_STATE_NAMES
    out: list[Record] = []
    append = out.append
    for (af, state, src, dst, inode), (sport, dport) in zip(
        fields.iter_unpack(data), ports.iter_unpack(data), strict=True
    ):
        if not sport:
            append(SKIP)
            continue
        if af == AF_INET:
            family = Family.IPV4
            lip = ip4.get(src) or _ip_text(ip4, src, src[:4])
            rip = ip4.get(dst) or _ip_text(ip4, dst, dst[:4])
        else:
            family = Family.IPV6
            lip = ip6.get(src) or _ip_text(ip6, src, src)
            rip = ip6.get(dst) or _ip_text(ip6, dst, dst)
        raddr = new_tuple(Endpoint, (rip, dport)) if dport else None  # = Endpoint(rip, dport)
        status = (UDP_CONNECTED if dport else UDP_BOUND) if udp else names.get(state, "NONE")
        append(Record(proto, family, new_tuple(Endpoint, (lip, sport)), raddr, status, inode))
    return out


new_tuple = tuple.__new__  # makes an Endpoint without a Python-level __new__ call (a cold poll: 40k)
_IP4_TEXT: dict[bytes, str] = {}  # the 16-byte address field of an AF_INET socket -> text
_IP6_TEXT: dict[bytes, str] = {}


def _ip_text(cache: dict[bytes, str], field: bytes, raw: bytes) -> str:
    text = _ip(raw)
    if len(cache) < 65536:
        cache[field] = text
    return text


_CHUNK_STRUCTS: dict[int, tuple[struct.Struct, struct.Struct]] = {}


def _chunk_structs(step: int) -> tuple[struct.Struct, struct.Struct]:
    """Split a run of ``step``-byte messages into (family, state, src, dst, inode) (native order)
    and (sport, dport) (network order)."""
    hit = _CHUNK_STRUCTS.get(step)
    if hit is not None:
        return hit
    fields = struct.Struct(f"={_FAMILY}xBB6x16s16s{_INODE_AT - 56}xI{step - _MIN_LEN}x")
    ports = struct.Struct(f">{_ID}xHH{step - _ID - 4}x")
    if len(_CHUNK_STRUCTS) < 64:
        _CHUNK_STRUCTS[step] = (fields, ports)
    return fields, ports


class NetlinkReader:
    """Lists sockets through one persistent sock_diag socket, caching decoded records."""

    source = "netlink"

    def __init__(self, opener: Callable[[], _socket.socket] | None = None, *, stats: bool = False) -> None:
        # ``opener`` makes the sock_diag socket (default :func:`open_socket`); one opened inside
        # another network namespace keeps reading that namespace (see app/netns.py).
        # ``stats``: also ask for struct tcp_info and keep every socket's queues (ReadResult.stats).
        self._opener = opener
        self.stats = stats
        self._stats: StatsTable | None = None
        self._info = False
        self._sock: _socket.socket | None = self._new_socket()
        self._seq = 0
        self._cache: dict[bytes, Record] = {}
        # Keys of cached connections without an inode that may get one: a connection waiting in
        # a listener's accept queue has no file (inode 0) until accept(), under the same key.
        self._inodeless: set[bytes] = set()
        self._clean = True  # False after a dump was abandoned: leftovers may sit in the socket

    def _new_socket(self) -> _socket.socket:
        return (self._opener or open_socket)()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def cached(self) -> list[Record]:
        """The records of the last full read (what closes if this reader goes away)."""
        return [r for r in self._cache.values() if r is not SKIP]

    def __del__(self) -> None:
        finalize(self.close)

    def read(self, port: int | None = None) -> ReadResult:
        """Every inet socket (only local ``port`` when given), in kernel order."""
        if self._sock is None or not self._clean:
            self.close()
            self._sock = self._new_socket()
            self._clean = True
        old = self._cache
        new: dict[bytes, Record] = {}
        out: list[Record] = []
        fresh: list[Record] = []
        self._clean = False
        stats = None
        if self.stats:
            from app.fast.statstable import StatsTable

            stats = self._stats = StatsTable()
        for af, ipproto, proto, _family in DUMPS if port is None else PORT_DUMPS:
            self._dump(af, ipproto, proto, port, old, new, out, fresh)
        self._clean = True
        self._stats = None
        if port is None:
            self._cache = new  # what was not seen again has closed
            if self._inodeless:
                self._inodeless.intersection_update(new.keys())
            return ReadResult(out, fresh, [r for r in old.values() if r is not SKIP], stats)
        old.update(new)
        return ReadResult(out, fresh, None, stats)

    def _dump(
        self,
        af: int,
        ipproto: int,
        proto: Proto,
        port: int | None,
        old: dict[bytes, Record],
        new: dict[bytes, Record],
        out: list[Record],
        fresh: list[Record],
    ) -> None:
        sock = self._sock
        assert sock is not None
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
        ext = _EXT_INFO if self._stats is not None and ipproto == IPPROTO_TCP else 0
        self._info = bool(ext)  # this dump's messages may carry a tcp_info
        if af:
            sock.send(build_request(af, ipproto, seq, port, ext))
            mtype = SOCK_DIAG_BY_FAMILY
        else:
            sock.send(build_tcp_request(seq, port, ext))
            mtype = TCPDIAG_GETSOCK
        seq_bytes = seq.to_bytes(4, sys.byteorder)
        held: list[bytes] = []  # chunks of same-length messages not decoded yet
        while True:
            data = sock.recv(65536)
            if not data:
                raise NetlinkUnavailable(errno.EIO, "netlink socket closed")
            end = len(data)
            tail = _DONE.unpack_from(data, end - _DONE.size) if end > _DONE.size else None
            done = tail == (_DONE_LEN, NLMSG_DONE, seq, 0)
            # The kernel sends a dump in pieces of at most 32 KiB (fewer messages each with
            # tcp_info, 3.3x their size): a few pieces of same-length socket messages are decoded
            # together, one pass instead of one per piece (messages never straddle two pieces).
            # Only a piece whose last message is a socket's is held: one that ends the dump
            # (NLMSG_DONE, an error) is never waited behind.
            holdable = not done and _more_to_come(data, mtype)
            if holdable and held and len(held) < _HOLD_CHUNKS and data[:4] == held[0][:4]:
                held.append(data)
                continue
            if held:
                joined = held[0] if len(held) == 1 else b"".join(held)
                held = []
                if self._take_mixed(joined, seq, seq_bytes, proto, old, new, out, fresh, mtype):
                    return  # (not expected: what ends a dump is never held)
            if holdable:
                held.append(data)
                continue
            if done:  # the last chunk: its sockets, then NLMSG_DONE (no error)
                self._take_mixed(data[: end - _DONE.size], seq, seq_bytes, proto, old, new, out, fresh, mtype)
                return
            if self._take_mixed(data, seq, seq_bytes, proto, old, new, out, fresh, mtype):
                return

    def _take_mixed(
        self,
        data: bytes,
        seq: int,
        seq_bytes: bytes,
        proto: Proto,
        old: dict[bytes, Record],
        new: dict[bytes, Record],
        out: list[Record],
        fresh: list[Record],
        mtype: int,
    ) -> bool:
        """A piece that may mix message lengths (on a host with TIME_WAIT sockets, whose messages
        are shorter, most pieces do): uniform, it takes the uniform path; else its socket
        messages of each length that come :data:`_RUN_MIN` times or more take it together (out
        of the kernel's order within the piece: nothing depends on it), and the others, with
        whatever ends the dump, go :meth:`_take_each`, after them. Returns True at its end."""
        if self._take_uniform(data, seq_bytes, proto, old, new, out, fresh, mtype):
            return False
        end = len(data)
        by_step: dict[int, list[int]] = {}  # a socket message's length -> their offsets
        rest: list[tuple[int, int]] = []  # (offset, length) of the other messages
        off = 0
        while off + 16 <= end:
            length = int.from_bytes(data[off : off + 4], sys.byteorder)
            if length < 16 or off + length > end:
                return self._take_each(data, seq, proto, old, new, out, fresh, mtype)  # (it says what)
            step = (length + 3) & ~3
            if length >= _MIN_LEN and int.from_bytes(data[off + 4 : off + 6], sys.byteorder) == mtype:
                by_step.setdefault(step, []).append(off)
            else:
                rest.append((off, step))
            off += step
        if off != end or not any(len(offs) >= _RUN_MIN for offs in by_step.values()):
            return self._take_each(data, seq, proto, old, new, out, fresh, mtype)
        for step, offs in by_step.items():
            if len(offs) >= _RUN_MIN:
                run = b"".join([data[o : o + step] for o in offs])
                if self._take_uniform(run, seq_bytes, proto, old, new, out, fresh, mtype):
                    continue
                # (one listed twice: undone, and taken one by one)
            rest.extend((o, step) for o in offs)
        if not rest:
            return False
        rest.sort()
        left = b"".join([data[o : o + step] for o, step in rest])
        return self._take_each(left, seq, proto, old, new, out, fresh, mtype)

    def _take_uniform(
        self,
        data: bytes,
        seq_bytes: bytes,
        proto: Proto,
        old: dict[bytes, Record],
        new: dict[bytes, Record],
        out: list[Record],
        fresh: list[Record],
        mtype: int = SOCK_DIAG_BY_FAMILY,
    ) -> bool:
        """The fast path: a chunk of same-length socket messages (the common case) is split with
        ``struct.iter_unpack`` and looked up with ``map``, without a Python-level loop per socket.
        Returns False (nothing consumed) if the chunk is not uniform or ends the dump."""
        end = len(data)
        if end < _MIN_LEN:
            return False
        length = int.from_bytes(data[0:4], sys.byteorder)
        step = (length + 3) & ~3
        if length < _MIN_LEN or length > 0xFFFF or end % step:
            return False
        count = end // step
        if (
            data[0:end:step] != bytes((length & 0xFF,)) * count
            or data[1:end:step] != bytes((length >> 8,)) * count
            or data[2:end:step] != bytes(count)
            or data[3:end:step] != bytes(count)
            or data[4:end:step] != bytes((mtype,)) * count
            or data[5:end:step] != bytes(count)
            or any(data[8 + i : end : step] != seq_bytes[i : i + 1] * count for i in range(4))
        ):
            return False
        keys = list(map(_first, _key_struct(step).iter_unpack(data)))
        recs: list[Record | None] = list(map(old.pop, keys, repeat(None, count)))
        chunk = dict(zip(keys, recs, strict=True))
        if len(chunk) != count or not new.keys().isdisjoint(chunk):
            # A socket listed twice (the dump raced a change): undo, and take the slow path.
            old.update((key, rec) for key, rec in chunk.items() if rec is not None)
            return False
        new.update(chunk)
        inodeless = self._inodeless
        if inodeless and not inodeless.isdisjoint(chunk):  # (iterates the chunk, not the set)
            self._accepted(data, step, keys, recs, old)
        if self._stats is not None:
            self._chunk_stats(data, step, count)
        missing = recs.count(None)
        if missing == count:  # all new (a cold poll, ``list``): the decoded chunk is the records
            decoded = decode_chunk(data, step, proto)
            new.update(zip(keys, decoded, strict=True))
            if 0 in map(_INODE_OF, decoded):  # (SKIP, or connections not accepted yet: few)
                self._inodeless.update(
                    key
                    for key, r in zip(keys, decoded, strict=True)
                    if not r.inode and r.status in _MAY_GET_AN_INODE
                )
                if SKIP in decoded:
                    decoded = [r for r in decoded if r is not SKIP]
            fresh.extend(decoded)
            out.extend(decoded)
            return True
        if missing * 4 >= count:  # mostly new sockets: decode the whole chunk at once
            decoded = decode_chunk(data, step, proto)
            for i, rec in enumerate(recs):
                if rec is None:
                    recs[i] = new[keys[i]] = rec = decoded[i]
                    if rec is not SKIP:
                        fresh.append(rec)
                        if not rec.inode and rec.status in _MAY_GET_AN_INODE:
                            self._inodeless.add(keys[i])
        elif missing:
            i = recs.index(None)
            while True:
                rec = decode(data, i * step, proto)
                if rec.laddr.port == 0:
                    rec = SKIP
                else:
                    fresh.append(rec)
                    if not rec.inode and rec.status in _MAY_GET_AN_INODE:
                        self._inodeless.add(keys[i])
                recs[i] = new[keys[i]] = rec
                try:
                    i = recs.index(None, i + 1)
                except ValueError:
                    break
        if SKIP in recs:
            out.extend(r for r in recs if r is not SKIP)  # type: ignore[misc]
        else:
            out.extend(recs)  # type: ignore[arg-type]
        return True

    def _take_each(
        self,
        data: bytes,
        seq: int,
        proto: Proto,
        old: dict[bytes, Record],
        new: dict[bytes, Record],
        out: list[Record],
        fresh: list[Record],
        diag_type: int = SOCK_DIAG_BY_FAMILY,
    ) -> bool:
        """The general path, one message at a time. Returns True at the end of the dump."""
        head = _MSG_HEAD.unpack_from
        pop = old.pop
        append = out.append
        off = 0
        end = len(data)
        while off + 16 <= end:
            length, mtype, _flags, mseq = head(data, off)
            if length < 16:
                raise NetlinkUnavailable(errno.EBADMSG, "malformed netlink message")
            if off + length > end:  # a message cut short: never decode past the data received
                raise NetlinkUnavailable(errno.EBADMSG, "truncated netlink message")
            if mseq == seq:
                if mtype == diag_type and length >= _MIN_LEN:
                    key = data[off + _STATE : off + _ID_END]
                    if key not in new:
                        rec = pop(key, None)
                        if rec is not None and self._inodeless and self._accepted_since(key, data, off):
                            old[key] = rec  # the inode-less record goes as closed
                            rec = None
                        if rec is None:
                            rec = decode(data, off, proto)
                            if rec.laddr.port == 0:
                                rec = SKIP
                            else:
                                fresh.append(rec)
                                if not rec.inode and rec.status in _MAY_GET_AN_INODE:
                                    self._inodeless.add(key)
                        new[key] = rec
                        if rec is not SKIP:
                            append(rec)
                            if self._stats is not None:
                                self._stats.add_row(
                                    rec.inode,
                                    message_stats(data, off, length)
                                    if self._info
                                    else _QUEUES.unpack_from(data, off),
                                )
                elif mtype == NLMSG_DONE:
                    return True
                elif mtype == NLMSG_ERROR:
                    (err,) = _ERRNO.unpack_from(data, off + 16)
                    if err:
                        raise NetlinkUnavailable(-err, f"sock_diag: {os.strerror(-err)}")
                    return True
            off += (length + 3) & ~3
        if off < end:  # a few bytes left over: the start of a message cut short
            raise NetlinkUnavailable(errno.EBADMSG, "truncated netlink message")
        return False

    def _accepted(
        self, data: bytes, step: int, keys: list[bytes], recs: list[Record | None], old: dict[bytes, Record]
    ) -> None:
        """Cached inode-less connections of this chunk that have an inode now (accepted since the
        last read): their records go as closed (back into ``old``) and are decoded again as new,
        so the connection gets its inode, and with it its owner."""
        for i, key in enumerate(keys):
            rec = recs[i]
            if rec is not None and self._accepted_since(key, data, i * step):
                old[key] = rec
                recs[i] = None

    def _accepted_since(self, key: bytes, data: bytes, off: int) -> bool:
        """Whether the cached connection ``key`` had no inode and its message at ``off`` has one
        (accepted since the last read); it is then no longer counted as inode-less."""
        if key in self._inodeless and _INODE.unpack_from(data, off + _INODE_AT)[0]:
            self._inodeless.discard(key)
            return True
        return False

    def _chunk_stats(self, data: bytes, step: int, count: int) -> None:
        """Queues and tcp_info of a uniform chunk: kept as the kernel's bytes (decoded where used:
        :mod:`app.fast.statstable`) when every message carries a full tcp_info at the same place
        (the usual case) or none does, else decoded message by message."""
        stats = self._stats
        assert stats is not None
        info_at = _info_offset(data, 0, step) if self._info else -1
        if info_at < 0 or all_have_info(data, step, count, info_at):
            stats.add_chunk(data, step, _stats_struct(step, info_at), _health_struct(step, info_at))
            return
        for i in range(count):
            row = message_stats(data, i * step, step)
            stats.add_row(row[2], row)  # type: ignore[arg-type]


_first = itemgetter(0)
_INODE_OF = attrgetter("inode")
_HOLD_CHUNKS = 8  # pieces of a dump decoded together (at most 256 KiB)
_RUN_MIN = 8  # socket messages of one length in a mixed piece worth the uniform path together


def _more_to_come(data: bytes, mtype: int) -> bool:
    """Whether ``data`` is a piece of same-length messages whose last is a socket's (``mtype``):
    the dump goes on after it."""
    end = len(data)
    if end < _MIN_LEN:
        return False
    step = (int.from_bytes(data[0:4], sys.byteorder) + 3) & ~3
    if step < _MIN_LEN or end % step:
        return False
    return int.from_bytes(data[end - step + 4 : end - step + 6], sys.byteorder) == mtype


# A connection in these states may have no inode yet (waiting in an accept queue) and get one.
_MAY_GET_AN_INODE = frozenset(("ESTABLISHED", "CLOSE_WAIT"))
_third = itemgetter(2)
# An NLMSG_DONE message (20 bytes: the header and a zero error), read as (len, type, seq, error).
_DONE = struct.Struct("=IH2xI4xi")
_DONE_LEN = 20
_EXT_INFO = 1 << (2 - 1)  # idiag_ext bit for INET_DIAG_INFO (struct tcp_info)
INET_DIAG_INFO = 2
_QUEUES = struct.Struct("=72xII4xI")  # rqueue, wqueue, inode: from the start of the message


def _info_offset(data: bytes, off: int, length: int) -> int:
    """Where the tcp_info payload of the message at ``off`` starts (from ``off``), or -1 when the
    message has no full-length INET_DIAG_INFO attribute."""
    pos = off + _MIN_LEN
    end = off + length
    while pos + 4 <= end:
        alen = int.from_bytes(data[pos : pos + 2], sys.byteorder)
        if alen < 4:
            return -1
        if int.from_bytes(data[pos + 2 : pos + 4], sys.byteorder) == INET_DIAG_INFO:
            from app.fast import tcpinfo  # --stats only

            return pos + 4 - off if alen - 4 >= tcpinfo.FULL_LENGTH and pos + alen <= end else -1
        pos += (alen + 3) & ~3
    return -1


def all_have_info(data: bytes, step: int, count: int, info_at: int) -> bool:
    """Every message of a uniform chunk has its INET_DIAG_INFO attribute header at ``info_at - 4``
    with the same length (so one struct reads them all)."""
    head = data[info_at - 4 : info_at]
    return all(data[info_at - 4 + i : len(data) : step] == head[i : i + 1] * count for i in range(4))


def message_stats(data: bytes, off: int, length: int) -> tuple[int | None, ...]:
    """(rqueue, wqueue, inode, *tcp_info fields) of one message; without a tcp_info attribute
    just the first three; a short tcp_info (older kernel) gives None for what it lacks."""
    head = _QUEUES.unpack_from(data, off)
    pos = off + _MIN_LEN
    end = off + length
    while pos + 4 <= end:
        alen = int.from_bytes(data[pos : pos + 2], sys.byteorder)
        if alen < 4 or pos + alen > end:
            break
        if int.from_bytes(data[pos + 2 : pos + 4], sys.byteorder) == INET_DIAG_INFO:
            from app.fast import tcpinfo

            return head + tcpinfo.parse_raw(data[pos + 4 : pos + alen])
        pos += (alen + 3) & ~3
    return head


_STRUCTS: dict[str, struct.Struct] = {}  # by format: a host's messages come in a few lengths


def _struct(fmt: str) -> struct.Struct:
    hit = _STRUCTS.get(fmt)
    if hit is None:
        hit = struct.Struct(fmt)
        if len(_STRUCTS) < 256:
            _STRUCTS[fmt] = hit
    return hit


def _stats_struct(step: int, info_at: int) -> struct.Struct:
    """Reads (rqueue, wqueue, inode[, tcp_info fields]) from each ``step``-byte message."""
    if info_at < 0:
        return _struct(f"=72xII4xI{step - _MIN_LEN}x")
    return _info_struct(step, info_at, False)


def _health_struct(step: int, info_at: int) -> struct.Struct | None:
    """Reads the health tracker's fields (app.fast.tcpinfo.HEALTH_FIELDS) from each ``step``-byte
    message whose tcp_info starts at ``info_at``; None without one."""
    return None if info_at < 0 else _info_struct(step, info_at, True)


def _info_struct(step: int, info_at: int, health: bool) -> struct.Struct:
    """A message's row (queues, inode, every tcp_info field) or, ``health``, the tracker's fields."""
    hit = _INFO_STRUCTS.get((step, info_at, health))
    if hit is None:
        from app.fast import tcpinfo

        tail = step - info_at - tcpinfo.FULL_LENGTH
        if health:
            hit = _struct(f"={info_at}x{tcpinfo.fields_format(tcpinfo.HEALTH_FIELDS)}{tail}x")
        else:
            hit = _struct(f"=72xII4xI{info_at - _MIN_LEN}x{tcpinfo.fields_format()}{tail}x")
        if len(_INFO_STRUCTS) < 128:
            _INFO_STRUCTS[(step, info_at, health)] = hit
    return hit


_INFO_STRUCTS: dict[tuple[int, int, bool], struct.Struct] = {}


def _key_struct(step: int) -> struct.Struct:
    """Splits a run of ``step``-byte messages into their cache keys (state .. end of the socket id)."""
    return _struct(f"={_STATE}x{_ID_END - _STATE}s{step - _ID_END}x")
