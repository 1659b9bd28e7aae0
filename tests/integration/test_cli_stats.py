"""``--stats`` in the CLI (#15) on real loopback connections and listeners: bytes that were really
moved, a listener's accept queue filled by connections nobody accepts, ``watch``'s queue-overflow
event, and one clear line where only the portable backend runs."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import struct
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace

import pytest

from app.cli.table import STATS_COLUMNS, format_bytes
from app.events import EventKind, QueueOverflow, full_queues, queue_overflows
from app.exposure import ExposureMap
from app.model import Endpoint, Family, ProcessInfo, Proto, Snapshot, Sock
from app.watch import EVENT_KEYS, OVERFLOW_KEYS, event_dict, event_line
from tests.helpers import connected_pair, move, run_cli, table_cell, table_columns, wait_for, watching

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="netlink sock_diag")
MIB = 1 << 20
PSUTIL = {**os.environ, "PORTSCOPE_COLLECTOR": "psutil"}


@contextmanager
def full_listener(backlog: int, extra: int = 3) -> Iterator[tuple[socket.socket, int]]:
    """A listener with ``backlog`` and more connections than it holds, none accepted."""
    with ExitStack() as stack:
        srv = stack.enter_context(socket.socket())
        srv.bind(("127.0.0.1", 0))
        srv.listen(backlog)
        port = srv.getsockname()[1]
        for _ in range(backlog + extra):
            c = stack.enter_context(socket.socket())
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
        yield srv, port


def _own_tcp_info(sock: socket.socket) -> dict[str, int]:
    """The kernel's counters of one of this process's own sockets (getsockopt TCP_INFO, offsets of
    include/uapi/linux/tcp.h), read apart from portscope's netlink path."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    assert len(raw) >= 216, "a kernel older than 4.19 (no tcpi_bytes_retrans)"
    unacked, total_retrans = struct.unpack_from("=I", raw, 24)[0], struct.unpack_from("=I", raw, 100)[0]
    sent, retrans = struct.unpack_from("=QQ", raw, 200)
    return {"unacked": unacked, "total_retrans": total_retrans, "bytes_sent": sent, "bytes_retrans": retrans}


def test_list_stats_shows_the_bytes_that_moved_each_way() -> None:
    """The counters portscope reads are the kernel's: the bytes each end received, and the bytes it
    sent (which count retransmissions: on a loaded machine loopback retransmits too, so what was
    sent is compared with the socket's own TCP_INFO, and sent less retransmitted is the payload)."""
    with connected_pair() as (srv, client, server):
        move(client, server, MIB)
        move(server, client, 2 * MIB)
        # every byte acknowledged at both ends: nothing is retransmitted while portscope reads
        wait_for(lambda: _own_tcp_info(server)["unacked"] == 0 and _own_tcp_info(client)["unacked"] == 0)
        own_srv, own_cli = _own_tcp_info(server), _own_tcp_info(client)
        assert own_srv["bytes_sent"] - own_srv["bytes_retrans"] == 2 * MIB
        assert own_cli["bytes_sent"] - own_cli["bytes_retrans"] == MIB
        port = srv.getsockname()[1]
        res = run_cli("list", "--all", "--stats", "--json", "--port", str(port))
        assert res.returncode == 0, res.stderr
        cport = client.getsockname()[1]
        # (by both ends: on a busy host another socket may have the same local port number)
        [conn] = [
            s for s in json.loads(res.stdout)["sockets"] if s["remote"] and s["remote"]["port"] == cport
        ]
        info = conn["tcp_info"]
        assert info["bytes_received"] == MIB and info["bytes_sent"] == own_srv["bytes_sent"]
        assert info["bytes_acked"] in (2 * MIB, 2 * MIB + 1)  # the kernel counts the SYN as one
        assert info["total_retrans"] == own_srv["total_retrans"]
        assert info["rtt_ms"] >= 0 and info["cwnd"] > 0
        # the client's end, by its own local port: the other way round
        mine = json.loads(run_cli("list", "--all", "--stats", "--json", "--port", str(cport)).stdout)[
            "sockets"
        ]
        [cend] = [s for s in mine if s["remote"] and s["remote"]["port"] == port]
        assert cend["tcp_info"]["bytes_received"] == 2 * MIB
        assert cend["tcp_info"]["bytes_sent"] == own_cli["bytes_sent"]

        table = run_cli("list", "--all", "--stats", "--port", str(port))
        lines = table.stdout.splitlines()
        cols = table_columns(lines[0])
        assert list(cols)[5:10] == list(STATS_COLUMNS)  # after EXPOSURE
        [row] = [line for line in lines if "ESTABLISHED" in line and f":{cport} " in line]
        assert table_cell(row, cols, "RX") == "1.0MiB"
        assert table_cell(row, cols, "TX") == format_bytes(own_srv["bytes_sent"])  # 2.0MiB unless resent
        assert table_cell(row, cols, "RETRANS") == str(own_srv["total_retrans"])
        assert table_cell(row, cols, "RTT").endswith("ms")
        assert table_cell(row, cols, "QUEUE") == ""
        [lrow] = [line for line in lines if "LISTEN" in line]
        assert table_cell(lrow, cols, "QUEUE") == "0/8" and table_cell(lrow, cols, "RX") == ""
        csv_out = run_cli("list", "--all", "--stats", "--csv", "--port", str(port)).stdout.splitlines()
        head = csv_out[0].split(",")
        [rec] = [dict(zip(head, r.split(","), strict=True)) for r in csv_out[1:] if ",ESTABLISHED," in r]
        assert (rec["bytes_received"], rec["bytes_sent"], rec["retrans"]) == (
            str(MIB),
            str(own_srv["bytes_sent"]),
            str(own_srv["total_retrans"]),
        )


def test_who_stats_marks_a_full_accept_queue() -> None:
    backlog = 3
    with full_listener(backlog) as (_srv, port):
        res = run_cli("who", str(port), "--stats")
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        cols = table_columns(lines[0])
        [row] = [line for line in lines if "LISTEN" in line]
        current = int(table_cell(row, cols, "QUEUE").split("/")[0])
        assert current >= backlog and table_cell(row, cols, "QUEUE") == f"{current}/{backlog}!"
        data = json.loads(run_cli("who", str(port), "--stats", "--json").stdout)
        [listener] = [s for s in data["sockets"] if s["state"] == "LISTEN"]
        assert listener["queue"]["max"] == backlog and listener["queue"]["current"] >= backlog
        # colour marks it (red) on a terminal or when asked
        colored = run_cli("who", str(port), "--stats", "--color", "always").stdout
        assert f"\x1b[31m{current}/{backlog}!\x1b[0m" in colored


def test_a_queue_below_80_percent_is_not_marked() -> None:
    with full_listener(10, extra=-3) as (_srv, port):  # 7 of 10 waiting: 70%

        def queue_cell() -> str:
            lines = run_cli("list", "--stats", "--port", str(port)).stdout.splitlines()
            [row] = [line for line in lines if "LISTEN" in line]
            return table_cell(row, table_columns(lines[0]), "QUEUE")

        assert wait_for(lambda: (q := queue_cell()) == "7/10" and q)


@pytest.mark.parametrize(
    "args",
    [["list", "--stats"], ["who", "22", "--stats"], ["watch", "--stats"], ["list", "--stats", "--json"]],
)
def test_stats_on_the_psutil_backend_is_one_line_and_exit_69(args: list[str]) -> None:
    res = run_cli(*args, env=PSUTIL, timeout=30)
    assert res.returncode == 69
    assert res.stdout == ""
    assert (
        res.stderr
        == "portscope: --stats needs the Linux netlink backend (sock_diag); this one reads psutil\n"
    )


def test_watch_stats_reports_a_queue_overflow_of_a_real_listener() -> None:
    backlog = 2
    with ExitStack() as stack:
        srv = stack.enter_context(socket.socket())
        srv.bind(("127.0.0.1", 0))
        srv.listen(backlog)
        port = srv.getsockname()[1]
        live = stack.enter_context(watching("--stats", "--json"))
        text = stack.enter_context(watching("--stats"))
        for _ in range(backlog + 4):  # more than the queue holds, never accepted
            c = stack.enter_context(socket.socket())
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))

        def overflow(line: str) -> bool:
            ev = json.loads(line)
            return bool(
                ev["event"] == "queue-overflow" and ev["socket"] and ev["socket"]["local"]["port"] == port
            )

        ev = json.loads(live.stdout_until(overflow))
        assert tuple(ev) == OVERFLOW_KEYS and ev["schema"] == 2 and ev["before"] is None
        assert ev["socket"]["queue"]["max"] == backlog and ev["socket"]["queue"]["current"] >= backlog
        assert ev["socket"]["pid"] == os.getpid() and isinstance(ev["overflows"], int)
        assert "tcp_info" in ev["socket"]  # --stats: the sockets of the events carry their numbers
        line = text.stdout_until(lambda line: "queue-overflow" in line and f"127.0.0.1:{port}" in line)
        assert re.search(rf"queue \d+/{backlog}", line)


# --- the rules, on snapshots made here -----------------------------------------------------------


def _listener(port: int, inode: int, netns: int = 0) -> Sock:
    return Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", port), None, "LISTEN", 7, inode, netns)


def _snap(queues: dict[int, tuple[int, int]], socks: tuple[Sock, ...]) -> Snapshot:
    owner = ProcessInfo(7, 1, "srv", "/srv", ("srv",), "root", 1.0)
    return Snapshot(
        taken_at=2.0,
        sockets=socks,
        processes={7: owner},
        stats={inode: (cur, mx, inode) for inode, (cur, mx) in queues.items()},
    )


def test_queue_overflow_events_newly_full_and_host_overflows() -> None:
    a, b, other = _listener(8080, 1), _listener(8081, 2), _listener(8082, 3, netns=99)
    snap = _snap({1: (4, 4), 2: (0, 128), 3: (1, 4)}, (a, b, other))
    [ev] = queue_overflows(snap, set(), 0)
    assert (ev.sock, ev.current, ev.max, ev.overflows, ev.kind) == (a, 4, 4, 0, EventKind.QUEUE_OVERFLOW)
    assert queue_overflows(snap, full_queues(snap), 0) == []  # still full: not news
    # the host dropped 5 connections: blame the listeners of this namespace with connections waiting
    waiting = _snap({1: (4, 4), 2: (1, 128), 3: (1, 4)}, (a, b, other))
    assert [e.sock for e in queue_overflows(waiting, full_queues(waiting), 5)] == [a, b]
    # none waiting (the queues drained in between): one host-wide event
    drained = _snap({1: (0, 4), 2: (0, 128), 3: (4, 4)}, (a, b, other))
    [host] = [e for e in queue_overflows(drained, {"@99/tcp:127.0.0.1:8082"}, 5)]
    assert host.sock is None and host.overflows == 5
    assert queue_overflows(replace(snap, stats=None), set(), 5) == []  # no stats: nothing to say


def test_queue_overflow_event_json_and_line() -> None:
    a = _listener(8080, 1)
    snap = _snap({1: (4, 4)}, (a,))
    [ev] = queue_overflows(snap, set(), 2)
    emap = ExposureMap()
    data = event_dict(ev, snap, emap, stats=True)
    assert tuple(data) == OVERFLOW_KEYS and data["overflows"] == 2
    assert data["socket"]["queue"] == {"current": 4, "max": 4} and data["event"] == "queue-overflow"
    assert "queue 4/4" in event_line(ev, emap) and "2 dropped" in event_line(ev, emap)
    host = QueueOverflow(2.0, None, None, None, None, None, 3)
    hd = event_dict(host, snap, emap, stats=True)
    assert hd["socket"] is None and hd["overflows"] == 3 and tuple(hd)[: len(EVENT_KEYS)] == EVENT_KEYS
    assert "host: 3 connections dropped" in event_line(host, emap)


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (None, 0, 1023, 1024, 1536, MIB, 5 * MIB // 2, 1 << 40)] == [
        "-",
        "0B",
        "1023B",
        "1.0KiB",
        "1.5KiB",
        "1.0MiB",
        "2.5MiB",
        "1.0TiB",
    ]


@pytest.mark.parametrize("scope", ["listening", "all", "connections"])
def test_the_watch_loop_reports_overflows_in_any_scope(scope: str) -> None:
    """In-process, with the real collector: a queue that fills between two polls is one event (the
    listener's row key as in the whole snapshot), and a queue that stays full is not news."""
    from app.fast.collector import FastCollector
    from app.watch import Watch

    out = io.StringIO()
    collector = FastCollector(stats=True)
    watch = Watch(collector, scope=scope, out=out, as_json=True, stats=True)  # type: ignore[arg-type]
    with ExitStack() as stack:
        srv = stack.enter_context(socket.socket())
        srv.bind(("127.0.0.1", 0))
        srv.listen(2)
        port = srv.getsockname()[1]
        watch.start()
        for _ in range(5):
            c = stack.enter_context(socket.socket())
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))

        def overflowed() -> list[QueueOverflow]:
            return [
                e for e in watch.poll() if isinstance(e, QueueOverflow) and e.sock and e.sock.port == port
            ]

        [ev] = wait_for(overflowed, timeout=10)
        assert ev.key == f"tcp:127.0.0.1:{port}" and ev.max == 2 and (ev.current or 0) >= 2
        later = [e for e in watch.poll() if isinstance(e, QueueOverflow) and e.sock and e.sock.port == port]
        assert all(e.overflows for e in later)  # only the host's new overflows, never "still full"
    collector.close()
    assert "queue-overflow" in out.getvalue()
