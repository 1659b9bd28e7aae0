"""JSON schema 2's owner fields: every holder, the service (a real cgroup), the forward, the
namespace; and the fast JSON text stays identical to json.dumps with them."""

from __future__ import annotations

import json

import pytest

from app.exposure import ExposureMap
from app.model import Endpoint, Family, NetnsInfo, ProcessInfo, Proto, Snapshot, Sock
from app.owners import OwnerFacts
from app.serialize import iter_snapshot_json, snapshot_dict
from tests.cgroups import HIERARCHIES, moved_into, needs_root
from tests.helpers import child_listener, run_cli

SSH = ("ssh", "-N", "-L", "127.0.0.1:9099:127.0.0.1:8088", "deploy@db.example")


def synthetic() -> Snapshot:
    procs = {
        10: ProcessInfo(10, 1, "nginx", "/usr/sbin/nginx", ("nginx: master process",), "root", 100.0),
        11: ProcessInfo(11, 10, "nginx", "/usr/sbin/nginx", ("nginx: worker process",), "www", 101.0),
        12: ProcessInfo(12, 10, "nginx", "/usr/sbin/nginx", ("nginx: worker process",), "www", 102.0),
        20: ProcessInfo(20, 1, "ssh", "/usr/bin/ssh", SSH, "alice", 200.0),
    }
    web = Sock(Proto.TCP, Family.IPV4, Endpoint("0.0.0.0", 80), None, "LISTEN", 10, 5001)
    tunnel = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 9099), None, "LISTEN", 20, 5002)
    other = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 9099), None, "LISTEN", None, 5003, netns=77)
    return Snapshot(
        taken_at=1.0,
        sockets=(web, tunnel, other),
        processes=procs,
        holders={5001: (10, 11, 12)},
        namespaces={0: NetnsInfo(4026531840, "current", None, True), 77: NetnsInfo(77, "netns test", "test")},
    )


def test_holders_forward_and_namespace_in_json_and_the_fast_text_matches() -> None:
    snap = synthetic()
    facts = OwnerFacts(ask_engines=False)
    emap = ExposureMap()
    socks = list(snap.sockets)
    fast = "".join(iter_snapshot_json(snap, socks, emap, facts=facts))
    plain = json.dumps(snapshot_dict(snap, socks, emap, facts), indent=2)
    assert fast == plain
    web, tunnel, other = json.loads(fast)["sockets"]
    assert [o["pid"] for o in web["owners"]] == [10, 11, 12] and web["pid"] == 10
    assert web["owners"][1] == {"pid": 11, "name": "nginx", "user": "www"}
    assert tunnel["forward"] == {"kind": "ssh-local", "target": "127.0.0.1:8088", "via": "deploy@db.example"}
    assert tunnel["netns"] == {"inode": 4026531840, "name": None, "current": True, "label": "current"}
    assert other["netns"] == {"inode": 77, "name": "test", "current": False, "label": "netns test"}
    assert other["owners"] == [] and other["key"].startswith("@77/")


@needs_root
@pytest.mark.parametrize("kind", HIERARCHIES)
def test_list_json_names_the_unit_of_a_listener_in_a_service_cgroup(kind: str) -> None:
    with (
        child_listener("tcp", "127.0.0.1", name="ps-json-unit") as child,
        moved_into(child, kind, "ps-json-demo.service"),
    ):
        res = run_cli("list", "--json", "--port", str(child.port))
        assert res.returncode == 0, res.stderr
        [sock] = [s for s in json.loads(res.stdout)["sockets"] if s["pid"] == child.pid]
        assert sock["service"]["kind"] == "unit" and sock["service"]["name"] == "ps-json-demo.service"
        assert sock["owners"] == [{"pid": child.pid, "name": "ps-json-unit", "user": "root"}]
        assert sock["netns"]["current"] is True and isinstance(sock["netns"]["inode"], int)
        res = run_cli("who", str(child.port), "--json")
        [sock] = [s for s in json.loads(res.stdout)["sockets"] if s["pid"] == child.pid]
        assert sock["service"]["name"] == "ps-json-demo.service"
