"""TCP health from the netlink dump (app/fast/tcpinfo.py, app/health.py) on real loopback sockets."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from app import health
from app.fast.collector import FastCollector
from app.fast.tcpinfo import read_listen_counters
from app.model import Snapshot, Sock
from tests.helpers import connected_pair, move, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="netlink sock_diag")
MIB = 1 << 20


def sock_for(snap: Snapshot, s: socket.socket) -> Sock:
    local, remote = s.getsockname(), s.getpeername()
    found = [
        x
        for x in snap.sockets
        if x.raddr is not None and tuple(x.laddr) == local[:2] and tuple(x.raddr) == remote[:2]
    ]
    assert len(found) == 1, found
    return found[0]


def test_bytes_each_way_match_what_was_moved() -> None:
    with connected_pair() as (_srv, client, server):
        move(client, server, MIB)
        move(server, client, 2 * MIB)
        collector = FastCollector(stats=True)
        snap = collector.collect()
        c = health.tcp_info(snap.stats, sock_for(snap, client).inode)
        s = health.tcp_info(snap.stats, sock_for(snap, server).inode)
        assert c is not None and s is not None
        # bytes_acked counts the SYN as one byte; bytes_received counts payload exactly
        assert c.bytes_sent == MIB and c.bytes_acked in (MIB, MIB + 1) and c.bytes_received == 2 * MIB
        assert s.bytes_sent == 2 * MIB and s.bytes_acked in (2 * MIB, 2 * MIB + 1) and s.bytes_received == MIB
        assert c.rtt_ms is not None and c.rtt_ms >= 0 and c.cwnd and c.cwnd > 0
        assert c.unacked == 0 and c.total_retrans == 0
        # the steady (patched) poll keeps reading them: more data shows up
        move(client, server, MIB)
        snap = collector.collect()
        again = health.tcp_info(snap.stats, sock_for(snap, client).inode)
        assert again is not None and again.bytes_sent == 2 * MIB
        collector.close()


def test_without_stats_no_tcp_info_is_read() -> None:
    with connected_pair() as (_srv, client, _server):
        snap = FastCollector().collect()
        assert snap.stats is None and health.tcp_info(snap.stats, sock_for(snap, client).inode) is None


def test_a_full_accept_queue_shows_and_clears_when_accepted() -> None:
    backlog = 3
    with ExitStack() as stack:
        srv = stack.enter_context(socket.socket())
        srv.bind(("127.0.0.1", 0))
        srv.listen(backlog)
        port = srv.getsockname()[1]
        waiting = []
        for _ in range(backlog + 3):  # more than the queue holds: the kernel keeps backlog + 1
            c = stack.enter_context(socket.socket())
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            waiting.append(c)
        collector = FastCollector(stats=True)

        def listener_queue() -> health.Queue | None:
            snap = collector.collect()
            lst = [s for s in snap.on_port(port) if s.listening]
            return health.queue(snap.stats, lst[0].inode)

        wait_for(lambda: (q := listener_queue()) is not None and q.current >= backlog, timeout=10)
        q = listener_queue()
        assert q is not None and q.max == backlog and q.current >= backlog
        srv.setblocking(False)
        while True:
            try:
                stack.enter_context(srv.accept()[0])
            except BlockingIOError:
                break
        wait_for(lambda: (q := listener_queue()) is not None and q.current < backlog, timeout=10)
        collector.close()


def test_listen_counters_are_read_and_an_overflow_raises_them() -> None:
    before = read_listen_counters()
    assert before is not None and before.overflows >= 0 and before.drops >= 0
    with ExitStack() as stack:
        srv = stack.enter_context(socket.socket())
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        port = srv.getsockname()[1]
        for _ in range(6):
            c = stack.enter_context(socket.socket())
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))

        def rose() -> bool:
            now = read_listen_counters()
            return now is not None and now.overflows > before.overflows

        wait_for(rose, timeout=10)
    snap = FastCollector(stats=True).collect()
    assert snap.listen_counters is not None and snap.listen_counters[0] > before.overflows


def test_rates_are_non_zero_while_data_flows_and_zero_when_it_stops() -> None:
    import time

    with connected_pair() as (_srv, client, server):
        collector = FastCollector(stats=True)
        tracker = health.HealthTracker()
        snap = collector.collect()
        tracker.update(snap.stats, snap.taken_at, snap.listen_counters)
        move(client, server, 4 * MIB)
        time.sleep(0.05)
        snap = collector.collect()
        tracker.update(snap.stats, snap.taken_at, snap.listen_counters)
        c = tracker.get(sock_for(snap, client).inode)
        s = tracker.get(sock_for(snap, server).inode)
        assert c is not None and s is not None
        assert c.rates.tx > 0 and c.rates.rx == 0 and s.rates.rx > 0 and s.rates.tx == 0
        assert c.history and not c.stalled and not c.storm
        time.sleep(0.05)
        snap = collector.collect()
        tracker.update(snap.stats, snap.taken_at, snap.listen_counters)
        c = tracker.get(sock_for(snap, client).inode)
        assert c is not None and c.rates == health.Rates(0.0, 0.0)
        collector.close()


_STALL = r"""
import json, socket, subprocess, sys, threading, time
sys.path.insert(0, sys.argv[1])
from app import health
from app.fast.collector import FastCollector
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4)
port = srv.getsockname()[1]
client = socket.create_connection(("127.0.0.1", port)); server, _ = srv.accept()
rules = "table inet t { chain c {\n type filter hook input priority 0; policy accept;\n"
rules += " tcp dport %d drop\n}\n}\n" % port
subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
client.setblocking(False)
try:
    client.send(b"x" * 100000)
except BlockingIOError:
    pass
collector = FastCollector(stats=True)
tracker = health.HealthTracker()
out = []
for _ in range(12):
    snap = collector.collect()
    tracker.update(snap.stats, snap.taken_at, snap.listen_counters)
    mine = [s for s in snap.sockets if s.raddr and s.raddr.port == port]
    h = tracker.get(mine[0].inode)
    info = health.tcp_info(snap.stats, mine[0].inode)
    out.append({"stalled": bool(h and h.stalled), "unacked": info.unacked, "retrans": info.total_retrans})
    time.sleep(0.3)
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("nft") is None or shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs root, unshare and nft (a drop rule inside a private network namespace)",
)
def test_a_connection_whose_packets_are_dropped_is_marked_stalled() -> None:
    root = str(Path(__file__).resolve().parents[2])
    res = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", _STALL, root], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    polls = json.loads(res.stdout)
    assert polls[-1]["unacked"] > 0 and polls[-1]["retrans"] > 0
    assert not polls[0]["stalled"] and polls[-1]["stalled"]
