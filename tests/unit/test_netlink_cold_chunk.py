"""A chunk of only new socket messages (a cold read: ``list``, the dashboard's first poll) takes the
all-new path of NetlinkReader._take_uniform: the records must be what decoding each message on its
own gives, in kernel order, without the ones that have no local port, and a connection still in
a listener's accept queue (inode 0) must be remembered as one that may get an inode."""

from __future__ import annotations

import socket
import struct
import sys

from app.fast import netlink
from app.fast.netlink import SOCK_DIAG_BY_FAMILY, NetlinkReader, decode
from app.fast.records import SKIP
from app.model import Proto

SEQ = 7


def message(sport: int, dport: int, state: int, inode: int, v6: bool = False) -> bytes:
    family = socket.AF_INET6 if v6 else socket.AF_INET
    src = socket.inet_pton(family, "::1" if v6 else "127.0.0.1").ljust(16, b"\0")
    dst = socket.inet_pton(family, "::1" if v6 else "127.0.0.2").ljust(16, b"\0")
    body = struct.pack("=BBBB", family, state, 0, 0)
    body += struct.pack(">HH", sport, dport) + src + dst + struct.pack("=IQ", 0, 1000 + sport)
    body += struct.pack("=IIIII", 0, 0, 0, 0, inode)
    return struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, 2, SEQ, 0) + body


class NoSocket:
    def close(self) -> None:
        pass


def test_an_all_new_chunk_is_what_decoding_each_message_gives() -> None:
    msgs = [
        message(80, 0, 10, 11),  # a listener
        message(80, 5000, 1, 12),  # an accepted connection
        message(0, 0, 7, 13),  # no local port: not listed
        message(80, 5001, 1, 0),  # in the accept queue: no inode yet
        message(6000, 53, 1, 14, v6=True),
        message(80, 5002, 8, 0),  # CLOSE_WAIT without a file: may get one too
        message(80, 5003, 6, 0),  # TIME_WAIT: never gets one
    ]
    data = b"".join(msgs)
    reader = NetlinkReader(opener=NoSocket)  # type: ignore[arg-type, return-value]
    new: dict[bytes, object] = {}
    out: list[object] = []
    fresh: list[object] = []
    seq_bytes = SEQ.to_bytes(4, sys.byteorder)
    assert reader._take_uniform(data, seq_bytes, Proto.TCP, {}, new, out, fresh)  # type: ignore[arg-type]
    step = len(msgs[0])
    want = [decode(data, i * step, Proto.TCP) for i in range(len(msgs))]
    want = [r for r in want if r.laddr.port != 0]
    fields = ["proto", "family", "laddr", "raddr", "status", "inode"]
    assert [[getattr(r, f) for f in fields] for r in out] == [[getattr(r, f) for f in fields] for r in want]
    assert fresh == out
    assert len(new) == len(msgs) and list(new.values()).count(SKIP) == 1
    keys = [netlink._key_struct(step).unpack_from(m)[0] for m in msgs]
    assert reader._inodeless == {keys[3], keys[5]}
