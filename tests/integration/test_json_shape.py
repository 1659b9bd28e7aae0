"""The JSON shape (schema 2) of `list --json`, `who --json` and `ifaces --json`, pinned key by key.

Adding, removing or renaming a key fails here: that is a schema change (bump SCHEMA_VERSION and
document it in the README)."""

from __future__ import annotations

import json
import os
import socket
from contextlib import ExitStack
from typing import Any

from app import __version__
from app.exposure import ExposureMap
from app.health import TcpInfo
from app.model import Endpoint, Family, ProcessInfo, Proto, Snapshot, Sock
from app.serialize import SCHEMA_VERSION, snapshot_dict, sock_dict
from tests.helpers import child_listener, listening_socket, run_cli, wait_for

TOP = {
    "schema",
    "portscope",
    "taken_at",
    "source",
    "privileged",
    "hidden_owners",
    "warnings",
    "ephemeral_range",
    "sockets",
}
SOCKET = {
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
}
# With --stats, two more keys on every socket (and only then):
STATS = {"tcp_info", "queue"}
TCP_INFO = {
    "rtt_ms",
    "rttvar_ms",
    "retrans",
    "total_retrans",
    "bytes_sent",
    "bytes_acked",
    "bytes_received",
    "delivery_rate",
    "cwnd",
    "unacked",
    "last_send_ms",
    "last_recv_ms",
}
QUEUE = {"current", "max"}
OWNER = {"pid", "name", "user"}
SERVICE = {"kind", "name", "id", "image", "unit", "engine"}
FORWARD = {"kind", "target", "via"}
NETNS = {"inode", "name", "current", "label"}
ENDPOINT = {"ip", "port"}
EXPOSURE = {"kind", "interfaces", "label"}
PROCESS = {"pid", "ppid", "name", "exe", "cmdline", "user", "create_time"}
INTERFACE = {
    "name",
    "up",
    "loopback",
    "mtu",
    "speed_mbps",
    "mac",
    "addresses",
    "default_gateways",
    "bytes_recv",
    "bytes_sent",
}
ADDRESS = {"family", "address", "netmask", "prefixlen"}


def check_top(data: dict[str, Any], extra: frozenset[str] = frozenset(), stats: bool = False) -> None:
    assert set(data) == TOP | extra
    assert data["schema"] == SCHEMA_VERSION == 2
    assert data["portscope"] == __version__
    assert isinstance(data["taken_at"], float) and data["taken_at"] > 0
    assert isinstance(data["source"], str) and data["source"]
    assert isinstance(data["privileged"], bool)
    assert isinstance(data["hidden_owners"], int) and data["hidden_owners"] >= 0
    assert all(isinstance(w, str) for w in data["warnings"])
    lo, hi = data["ephemeral_range"]
    assert isinstance(lo, int) and isinstance(hi, int) and lo <= hi
    for s in data["sockets"]:
        check_socket(s, stats)


def check_socket(s: dict[str, Any], stats: bool = False) -> None:
    assert set(s) == (SOCKET | STATS if stats else SOCKET)
    if stats:
        assert list(s)[-2:] == ["tcp_info", "queue"]  # last, after schema 2's keys
        info, queue = s["tcp_info"], s["queue"]
        assert info is None or (set(info) == TCP_INFO and list(info) == list(TcpInfo._fields))
        if info is not None:
            assert all(v is None or (isinstance(v, int | float) and v >= 0) for v in info.values())
            assert isinstance(info["rtt_ms"], float) and isinstance(info["bytes_sent"], int)
        if s["proto"] == "udp":
            assert info is None and queue is None
        assert queue is None or (set(queue) == QUEUE and all(isinstance(v, int) for v in queue.values()))
        if queue is not None:
            assert s["state"] == "LISTEN"
    assert isinstance(s["key"], str) and s["key"].startswith(s["proto"] + ":")
    assert s["proto"] in ("tcp", "udp") and s["family"] in ("ipv4", "ipv6")
    assert set(s["local"]) == ENDPOINT and isinstance(s["local"]["port"], int)
    assert s["remote"] is None or (set(s["remote"]) == ENDPOINT and isinstance(s["remote"]["port"], int))
    assert isinstance(s["state"], str) and isinstance(s["listening"], bool)
    assert s["range"] in ("well-known", "registered", "dynamic")
    assert isinstance(s["in_ephemeral"], bool)
    assert set(s["exposure"]) == EXPOSURE
    assert s["exposure"]["kind"] in ("loopback", "all interfaces", "interface", "unknown")
    assert isinstance(s["exposure"]["interfaces"], list) and isinstance(s["exposure"]["label"], str)
    assert s["pid"] is None or isinstance(s["pid"], int)
    assert isinstance(s["owners"], list) and all(set(o) == OWNER for o in s["owners"])
    if s["owners"]:
        assert s["owners"][0]["pid"] == s["pid"]  # the primary owner first
    assert s["service"] is None or set(s["service"]) == SERVICE
    assert s["forward"] is None or set(s["forward"]) == FORWARD
    assert s["netns"] is None or set(s["netns"]) == NETNS
    if s["netns"] is not None:
        assert isinstance(s["netns"]["inode"], int) and isinstance(s["netns"]["current"], bool)
    if s["process"] is None:
        return
    p = s["process"]
    assert set(p) == PROCESS
    assert p["pid"] == s["pid"]
    assert p["ppid"] is None or isinstance(p["ppid"], int)
    assert all(isinstance(p[k], str) for k in ("name", "exe", "user"))
    assert isinstance(p["cmdline"], list) and all(isinstance(a, str) for a in p["cmdline"])
    assert isinstance(p["create_time"], float)


def test_socket_dict_exactly() -> None:
    owner = ProcessInfo(42, 1, "nginx", "/usr/sbin/nginx", ("nginx", "-g", "daemon off;"), "www", 1700.5)
    listener = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 8080), None, "LISTEN", 42)
    conn = Sock(Proto.UDP, Family.IPV6, Endpoint("::", 50000), Endpoint("::1", 53), "CONNECTED", None)
    snap = Snapshot(
        taken_at=1.5,
        sockets=(listener, conn),
        processes={42: owner},
        hidden_owners=1,
        ephemeral=(32768, 60999),
    )
    emap = ExposureMap()
    assert sock_dict(listener, snap, emap) == {
        "key": "tcp:127.0.0.1:8080",
        "proto": "tcp",
        "family": "ipv4",
        "local": {"ip": "127.0.0.1", "port": 8080},
        "remote": None,
        "state": "LISTEN",
        "listening": True,
        "range": "registered",
        "in_ephemeral": False,
        "exposure": {"kind": "loopback", "interfaces": [], "label": "loopback"},
        "pid": 42,
        "process": {
            "pid": 42,
            "ppid": 1,
            "name": "nginx",
            "exe": "/usr/sbin/nginx",
            "cmdline": ["nginx", "-g", "daemon off;"],
            "user": "www",
            "create_time": 1700.5,
        },
        "owners": [{"pid": 42, "name": "nginx", "user": "www"}],
        "service": None,
        "forward": None,
        "netns": None,
    }
    assert sock_dict(conn, snap, emap) == {
        "key": "udp:[::]:50000>[::1]:53",
        "proto": "udp",
        "family": "ipv6",
        "local": {"ip": "::", "port": 50000},
        "remote": {"ip": "::1", "port": 53},
        "state": "CONNECTED",
        "listening": False,
        "range": "dynamic",
        "in_ephemeral": True,
        "exposure": {"kind": "all interfaces", "interfaces": [], "label": "all interfaces"},
        "pid": None,
        "process": None,
        "owners": [],
        "service": None,
        "forward": None,
        "netns": None,
    }
    whole = json.loads(json.dumps(snapshot_dict(snap, [listener, conn], emap)))
    check_top(whole)
    assert whole["hidden_owners"] == 1 and whole["taken_at"] == 1.5


def test_list_all_json_shape_with_listener_connection_and_ownerless_socket() -> None:
    with ExitStack() as stack:
        srv = stack.enter_context(listening_socket("tcp", "127.0.0.1"))
        port = srv.getsockname()[1]
        # A connection closed by the client first leaves the client's port in TIME_WAIT: no owner.
        gone = socket.create_connection(("127.0.0.1", port), timeout=5)
        gone_port = gone.getsockname()[1]
        peer, _ = srv.accept()
        gone.close()
        peer.close()
        stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        stack.enter_context(srv.accept()[0])

        def listed() -> dict[str, Any] | None:
            res = run_cli("list", "--all", "--json")
            assert res.returncode == 0, res.stderr
            data: dict[str, Any] = json.loads(res.stdout)
            states = {(s["local"]["port"], s["state"]) for s in data["sockets"]}
            return data if (gone_port, "TIME_WAIT") in states else None

        data = wait_for(listed)
        check_top(data)
        mine = [s for s in data["sockets"] if port in (s["local"]["port"], (s["remote"] or {}).get("port"))]
        kinds = {(s["state"], s["process"] is None) for s in mine}
        assert ("LISTEN", False) in kinds and ("ESTABLISHED", False) in kinds and ("TIME_WAIT", True) in kinds
        assert {s["pid"] for s in mine if s["process"]} == {os.getpid()}
        assert len({s["key"] for s in data["sockets"]}) == len(data["sockets"])  # keys are unique


def test_list_json_with_stats_adds_tcp_info_and_queue_and_nothing_else() -> None:
    with ExitStack() as stack:
        srv = stack.enter_context(listening_socket("tcp", "127.0.0.1"))
        port = srv.getsockname()[1]
        stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        stack.enter_context(srv.accept()[0])
        stack.enter_context(listening_socket("udp", "127.0.0.1"))
        res = run_cli("list", "--all", "--json", "--stats")
        assert res.returncode == 0, res.stderr
        data = json.loads(res.stdout)
        check_top(data, stats=True)
        mine = [s for s in data["sockets"] if port in (s["local"]["port"], (s["remote"] or {}).get("port"))]
        [listener] = [s for s in mine if s["state"] == "LISTEN"]
        assert listener["queue"] == {"current": 0, "max": 16} and listener["tcp_info"] is not None
        conns = [s for s in mine if s["state"] == "ESTABLISHED"]
        assert len(conns) == 2 and all(c["queue"] is None and c["tcp_info"] for c in conns)
        assert any(s["proto"] == "udp" for s in data["sockets"])
        # without --stats: exactly schema 2, no stats keys
        plain = json.loads(run_cli("list", "--all", "--json").stdout)
        check_top(plain)
        who = json.loads(run_cli("who", str(port), "--json", "--stats").stdout)
        check_top(who, frozenset({"port"}), stats=True)


def test_who_json_shape() -> None:
    with child_listener("udp", "127.0.0.1") as child:
        res = run_cli("who", str(child.port), "--json")
        assert res.returncode == 0, res.stderr
        data = json.loads(res.stdout)
        check_top(data, frozenset({"port"}))
        assert data["port"] == child.port
        [s] = data["sockets"]
        assert s["process"] is not None


def test_ifaces_json_shape() -> None:
    res = run_cli("ifaces", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) == {"interfaces"}
    assert data["interfaces"]
    for i in data["interfaces"]:
        assert set(i) == INTERFACE
        assert isinstance(i["name"], str) and isinstance(i["up"], bool) and isinstance(i["loopback"], bool)
        assert all(isinstance(i[k], int) for k in ("mtu", "speed_mbps", "bytes_recv", "bytes_sent"))
        assert isinstance(i["mac"], str)
        assert all(isinstance(g, str) for g in i["default_gateways"])
        for a in i["addresses"]:
            assert set(a) == ADDRESS
            assert a["family"] in ("ipv4", "ipv6")
            assert a["prefixlen"] is None or isinstance(a["prefixlen"], int)


def test_stats_keys_exactly() -> None:
    listener = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 8080), None, "LISTEN", None, 11)
    conn = Sock(
        Proto.TCP,
        Family.IPV4,
        Endpoint("127.0.0.1", 8080),
        Endpoint("127.0.0.1", 5000),
        "ESTABLISHED",
        None,
        12,
    )
    udp = Sock(Proto.UDP, Family.IPV4, Endpoint("127.0.0.1", 53), None, "BOUND", None, 13)
    # raw rows as the netlink reader keeps them: rqueue, wqueue, inode, then tcp_info's fields
    # (retransmits, unacked, last_sent, last_recv, rtt us, rttvar us, cwnd, total_retrans,
    # bytes_acked, bytes_received, delivery_rate, bytes_sent)
    stats = {
        11: (3, 128, 11, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0),
        12: (0, 0, 12, 1, 2, 30, 40, 1250, 500, 10, 7, 1048577, 2097152, 99, 1048576),
        13: (0, 0, 13),
    }
    snap = Snapshot(taken_at=1.0, sockets=(listener, conn, udp), processes={}, stats=stats)
    emap = ExposureMap()
    assert sock_dict(conn, snap, emap, stats=True)["tcp_info"] == {
        "rtt_ms": 1.25,
        "rttvar_ms": 0.5,
        "retrans": 1,
        "total_retrans": 7,
        "bytes_sent": 1048576,
        "bytes_acked": 1048577,
        "bytes_received": 2097152,
        "delivery_rate": 99,
        "cwnd": 10,
        "unacked": 2,
        "last_send_ms": 30,
        "last_recv_ms": 40,
    }
    assert sock_dict(conn, snap, emap, stats=True)["queue"] is None
    assert sock_dict(listener, snap, emap, stats=True)["queue"] == {"current": 3, "max": 128}
    assert sock_dict(udp, snap, emap, stats=True)["tcp_info"] is None
    assert sock_dict(udp, snap, emap, stats=True)["queue"] is None
    assert set(sock_dict(conn, snap, emap)) == SOCKET  # without stats: schema 2 exactly
