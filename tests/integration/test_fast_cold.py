"""The cold-poll shortcuts of the fast collector give exactly what the general code gives: the
one-pass chunk decoder equals the message-by-message decoder, and the one int sort key
(``app.backends.base.sort_key``, cached per record by the fast path) orders sockets exactly as the
documented display order does."""

from __future__ import annotations

import ipaddress
import itertools
import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from app.backends.base import sort_key
from app.fast.collector import _base_key, _build, _is_hidden
from app.fast.netlink import SOCK_DIAG_BY_FAMILY, decode, decode_chunk
from app.fast.records import SKIP, TCP_STATE_NAMES, Record
from app.model import UDP_BOUND, UDP_CONNECTED, Endpoint, Family, Proto, Sock

STEP = 88 + 20  # a message with some attribute bytes after the inet_diag_msg, as the kernel sends


def message(af: int, state: int, sport: int, dport: int, src: bytes, dst: bytes, inode: int) -> bytes:
    head = struct.pack("=IHHII", STEP, SOCK_DIAG_BY_FAMILY, 2, 7, 0)
    body = struct.pack("=BBBB", af, state, 0, 0) + struct.pack(">HH", sport, dport)
    body += src.ljust(16, b"\0") + dst.ljust(16, b"\0")
    body += struct.pack("=IQ", 0, 0xDEADBEEF) + struct.pack("=IIIII", 0, 0, 0, 1000, inode)
    return head + body + b"\x05" * (STEP - 88)


def view(r: Record) -> tuple[object, ...]:
    return (r.proto, r.family, r.laddr, r.raddr, r.status, r.inode)


ADDRS = {
    socket.AF_INET: [socket.inet_pton(socket.AF_INET, a) for a in ("127.0.0.1", "10.0.0.2", "0.0.0.0")],
    socket.AF_INET6: [
        socket.inet_pton(socket.AF_INET6, a) for a in ("::1", "fe80::1", "::", "::ffff:1.2.3.4")
    ],
}

msg_args = st.sampled_from([socket.AF_INET, socket.AF_INET6]).flatmap(
    lambda af: st.tuples(
        st.just(af),
        st.integers(1, 13),
        st.sampled_from([0, 1, 80, 8080, 65535]),
        st.sampled_from([0, 22, 443, 50000]),
        st.sampled_from(ADDRS[af]),
        st.sampled_from(ADDRS[af]),
        st.integers(0, 2**32 - 1),
    )
)


@given(st.lists(msg_args, min_size=1, max_size=12), st.sampled_from([Proto.TCP, Proto.UDP]))
def test_chunk_decoder_equals_message_by_message(args: list[tuple], proto: Proto) -> None:  # type: ignore[type-arg]
    data = b"".join(message(*a) for a in args)
    chunk = decode_chunk(data, STEP, proto)
    assert len(chunk) == len(args)
    for i, got in enumerate(chunk):
        one = decode(data, i * STEP, proto)
        if one.laddr.port == 0:
            assert got is SKIP
        else:
            assert view(got) == view(one)


def test_chunk_decoder_names_states_like_psutil() -> None:
    lo = ADDRS[socket.AF_INET][0]
    data = message(socket.AF_INET, 10, 80, 0, lo, bytes(4), 5) + message(socket.AF_INET, 12, 80, 9, lo, lo, 6)
    listen, synrecv = decode_chunk(data, STEP, Proto.TCP)
    assert (listen.status, listen.raddr, synrecv.status) == ("LISTEN", None, TCP_STATE_NAMES[12])
    bound, connected = decode_chunk(data, STEP, Proto.UDP)
    assert (bound.status, connected.status) == (UDP_BOUND, UDP_CONNECTED)
    assert connected.raddr == Endpoint("127.0.0.1", 9) and connected.family is Family.IPV4


IPS = ["127.0.0.1", "10.0.0.2", "10.0.0.10", "0.0.0.0", "::1", "::", "fe80::1", "::ffff:1.2.3.4", "bogus"]
STATUSES = ["LISTEN", "ESTABLISHED", "TIME_WAIT", "SYN_RECV", UDP_BOUND, UDP_CONNECTED]

records = st.builds(
    lambda proto, lip, lport, remote, status, inode: Record(
        proto,
        Family.IPV6 if ":" in lip else Family.IPV4,
        Endpoint(lip, lport),
        Endpoint(remote[0], remote[1]) if remote else None,
        status,
        inode,
    ),
    st.sampled_from([Proto.TCP, Proto.UDP]),
    st.sampled_from(IPS),
    st.sampled_from([0, 1, 80, 443, 8080, 65535]),
    st.none() | st.tuples(st.sampled_from(IPS), st.sampled_from([0, 1, 22, 65535])),
    st.sampled_from(STATUSES),
    st.integers(0, 10),
)


def _ip(ip: str) -> tuple[int, int]:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return (0, 0)  # unparsable: before any address, all alike
    return (addr.version, int(addr))


def documented_order(s: Sock) -> tuple[object, ...]:
    """The display order as README and app.backends.base describe it, spelled out as a tuple."""
    return (
        s.laddr.port,
        s.proto.value,
        0 if s.listening else 1,
        _ip(s.laddr.ip),
        (1, *_ip(s.raddr.ip)) if s.raddr else (0, 0, 0),
        s.raddr.port if s.raddr else -1,
        s.pid if s.pid is not None else -1,
    )


@given(st.lists(st.tuples(records, st.none() | st.integers(1, 4_194_304)), min_size=2, max_size=30))
def test_int_sort_key_orders_exactly_as_documented(pairs: list[tuple[Record, int | None]]) -> None:
    for r, pid in pairs:
        _build(r, pid)
        assert r.skey == _base_key(r) | (pid + 1 if pid is not None else 0)
        assert r.skey == sort_key(r.sock)  # type: ignore[arg-type]  # the same key, cached
    by_int = sorted(pairs, key=lambda p: p[0].skey)
    by_tuple = sorted(pairs, key=lambda p: documented_order(p[0].sock))  # type: ignore[arg-type]
    # Equal keys may sit in either order; the keys' sequences must match exactly.
    assert [documented_order(p[0].sock) for p in by_int] == [documented_order(p[0].sock) for p in by_tuple]  # type: ignore[arg-type]
    for (a, _), (b, _) in itertools.pairwise(by_int):
        if a.skey == b.skey:
            assert documented_order(a.sock) == documented_order(b.sock)  # type: ignore[arg-type]


def test_ownerless_states_are_not_counted_hidden() -> None:
    for status, hidden in (("TIME_WAIT", 0), ("SYN_RECV", 0), ("ESTABLISHED", 1), ("LISTEN", 1)):
        r = Record(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 80), None, status, 1)
        _build(r, None)
        assert _is_hidden(r) == hidden
        _build(r, 42)
        assert _is_hidden(r) == 0


def test_orphaned_sockets_with_inode_0_are_not_counted_hidden() -> None:
    for status in ("FIN_WAIT2", "ESTABLISHED", "CLOSE_WAIT"):
        r = Record(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 80), Endpoint("127.0.0.1", 5), status, 0)
        _build(r, None)
        assert _is_hidden(r) == 0 and r.sock is not None and r.sock.ownerless
