"""The netlink reader replaying recorded sock_diag dumps (tests/fixtures/netlink, made by record.py in
a private network namespace): multipart dumps, an error mid-dump and a truncated chunk.

The replay socket stands in for the kernel only by handing back recorded bytes (with each message's
sequence number set to the request's), so the parser sees exactly what a kernel sent."""

from __future__ import annotations

import errno
import struct
from collections import Counter
from pathlib import Path

import pytest

from app import health
from app.fast import netlink
from app.fast.netlink import NetlinkReader, NetlinkUnavailable

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "netlink"


def load(name: str) -> list[list[bytes]]:
    raw = (FIXTURES / name).read_bytes()
    dumps: list[list[bytes]] = [[]]
    off = 0
    while off < len(raw):
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        if n == 0:
            dumps.append([])
            continue
        dumps[-1].append(raw[off : off + n])
        off += n
    return [d for d in dumps if d]


def with_seq(chunk: bytes, seq: int) -> bytes:
    out = bytearray(chunk)
    off = 0
    while off + 16 <= len(out):
        length = struct.unpack_from("=I", out, off)[0]
        struct.pack_into("=I", out, off + 8, seq)
        if length < 16:
            break
        off += (length + 3) & ~3
    return bytes(out)


class Replay:
    """A socket that answers each dump request with the next recorded dump."""

    def __init__(self, dumps: list[list[bytes]]) -> None:
        self.dumps = dumps
        self.pending: list[bytes] = []
        self.requests = 0
        self.seq = 0

    def send(self, req: bytes) -> int:
        self.seq = struct.unpack_from("=I", req, 8)[0]
        self.pending = list(self.dumps[self.requests % len(self.dumps)])
        self.requests += 1
        return len(req)

    def recv(self, _n: int) -> bytes:
        return with_seq(self.pending.pop(0), self.seq) if self.pending else b""

    def close(self) -> None:
        pass


def reader(dumps: list[list[bytes]], stats: bool = False) -> NetlinkReader:
    return NetlinkReader(opener=lambda: Replay(dumps), stats=stats)  # type: ignore[arg-type,return-value]


def states(result: netlink.ReadResult) -> Counter[tuple[str, str, str]]:
    return Counter((r.proto.value, r.family.value, r.status) for r in result.records)


EXPECTED = Counter(
    {
        ("tcp", "ipv4", "LISTEN"): 20,
        ("tcp", "ipv4", "ESTABLISHED"): 120,
        ("tcp", "ipv6", "LISTEN"): 20,
        ("tcp", "ipv6", "ESTABLISHED"): 120,
        ("udp", "ipv4", "BOUND"): 30,
        ("udp", "ipv6", "BOUND"): 30,
    }
)


def test_recorded_multipart_dumps_decode_to_the_recorded_sockets() -> None:
    dumps = load("multipart.bin")
    assert len(dumps) == 4 and max(len(d) for d in dumps) > 1  # really multipart
    result = reader(dumps).read()
    assert states(result) == EXPECTED
    assert all(r.inode for r in result.records) and len({r.inode for r in result.records}) == 340
    assert {r.laddr.ip for r in result.records} == {"127.0.0.1", "::1"}
    # a second read of the same bytes is the steady path: nothing fresh, nothing closed
    r = reader(dumps)
    r.read()
    again = r.read()
    assert again.fresh == [] and again.closed == [] and states(again) == EXPECTED


def test_the_uniform_and_the_per_message_decoders_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    dumps = load("multipart_info.bin")
    fast = reader(dumps, stats=True).read()
    monkeypatch.setattr(NetlinkReader, "_take_uniform", lambda *a, **k: False)
    slow = reader(dumps, stats=True).read()
    key = lambda r: repr((r.proto, r.laddr, r.raddr, r.status, r.inode))  # noqa: E731
    assert sorted(map(key, fast.records)) == sorted(map(key, slow.records))
    assert fast.stats == slow.stats and fast.stats is not None
    listeners = [r for r in fast.records if r.status == "LISTEN"]
    assert all(health.queue(fast.stats, r.inode) == health.Queue(0, 8) for r in listeners)
    conns = [r for r in fast.records if r.proto.value == "tcp" and r.status == "ESTABLISHED"]
    assert all(health.tcp_info(fast.stats, r.inode) is not None for r in conns)


def test_an_error_mid_dump_raises_netlink_unavailable() -> None:
    dumps = load("multipart.bin")
    err = struct.pack("=IHHIIi", 36, netlink.NLMSG_ERROR, 0, 0, 0, -errno.EPERM) + bytes(16)
    broken = [[dumps[0][0], err], *dumps[1:]]
    with pytest.raises(NetlinkUnavailable, match="Operation not permitted"):
        reader(broken).read()


@pytest.mark.parametrize("cut", [17, 60, 100, 1000, -7])
def test_a_truncated_chunk_is_an_error_not_a_crash(cut: int) -> None:
    dumps = load("multipart.bin")
    first = dumps[0][0]
    broken = [[first[:cut], *dumps[0][1:]], *dumps[1:]]
    with pytest.raises(NetlinkUnavailable, match="truncated netlink message") as info:
        reader(broken).read()
    assert info.value.errno == errno.EBADMSG
