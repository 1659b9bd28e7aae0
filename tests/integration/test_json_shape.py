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


def check_top(data: dict[str, Any], extra: frozenset[str] = frozenset()) -> None:
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
        check_socket(s)


def check_socket(s: dict[str, Any]) -> None:
    assert set(s) == SOCKET
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
