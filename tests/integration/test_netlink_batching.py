"""The netlink reader decodes a few same-length pieces of a dump together (app/fast/netlink.py
``_HOLD_CHUNKS``), and the messages of each length of a mixed piece together (``_RUN_MIN``):
against real loopback connections in a private network namespace (only the test's sockets), a dump
of many pieces, with and without tcp_info, reads the same sockets and stats as decoding each piece
alone, and as decoding a mixed piece message by message (TIME_WAIT sockets, whose messages are
shorter, mixed in as on a busy host), in fewer passes."""

from __future__ import annotations

from tests.helpers import needs_netns, run_in_netns

SCRIPT = r"""
import json, socket
from contextlib import ExitStack
from app.fast import netlink
from app.fast.netlink import NetlinkReader

def read(stats, hold, run_min=8):
    netlink._HOLD_CHUNKS = hold
    netlink._RUN_MIN = run_min
    passes = [0]
    real = NetlinkReader._take_uniform
    def counted(self, *args, **kwargs):
        passes[0] += 1
        return real(self, *args, **kwargs)
    NetlinkReader._take_uniform = counted
    reader = NetlinkReader(stats=stats)
    try:
        res = reader.read()
    finally:
        reader.close()
        NetlinkReader._take_uniform = real
    socks = sorted(
        [r.proto.value, list(r.laddr), list(r.raddr or ()), r.status, r.inode] for r in res.records
    )
    # what does not move while nothing is sent: queues, inode, bytes acked and received
    rows = {}
    if res.stats is not None:
        rows = {str(i): list(row[:3] + row[11:13]) for i, row in res.stats.items() if i}
    return {"socks": socks, "rows": rows, "passes": passes[0]}

with ExitStack() as stack:
    srv = stack.enter_context(socket.socket())
    srv.bind(("127.0.0.1", 0))
    srv.listen(600)
    for _ in range(600):
        c = stack.enter_context(socket.socket())
        c.connect(srv.getsockname())
        stack.enter_context(srv.accept()[0])
    out = {str(stats): [read(stats, 1), read(stats, 8)] for stats in (False, True)}
    # TIME_WAIT sockets (the side that closes first keeps one): shorter messages in every piece
    for _ in range(300):
        c = socket.socket()
        c.connect(srv.getsockname())
        a, _ = srv.accept()
        c.close()
        a.close()
    out["mixed"] = [read(True, 8, 10**9), read(True, 8)]  # one by one / by length
print(json.dumps(out))
"""


@needs_netns
def test_pieces_decoded_together_read_what_each_piece_alone_read() -> None:
    out = run_in_netns(SCRIPT)
    assert isinstance(out, dict)
    for stats in ("False", "True"):
        alone, together = out[stats]
        assert len(together["socks"]) == 1201  # the listener and both ends of 600 connections
        assert together["socks"] == alone["socks"] and together["rows"] == alone["rows"]
        assert (len(together["rows"]) == 1201) == (stats == "True")
        assert together["passes"] < alone["passes"]  # fewer decoding passes
    # with tcp_info the messages are 3.3x larger: many 32 KiB pieces, several decoded at a time
    assert 2 * out["True"][1]["passes"] <= out["True"][0]["passes"]
    one_by_one, by_length = out["mixed"]
    waiting = [s for s in by_length["socks"] if s[3] == "TIME_WAIT"]
    assert len(waiting) >= 300 and len(by_length["socks"]) == 1201 + len(waiting)
    assert by_length["socks"] == one_by_one["socks"] and by_length["rows"] == one_by_one["rows"]
    assert by_length["passes"] > one_by_one["passes"]  # the mixed pieces' runs took the uniform path
