from __future__ import annotations

import json

from app.collector import PsutilCollector
from tests.helpers import child_listener, run_cli


def test_child_listener_is_seen_with_its_owner() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        snap = PsutilCollector().collect()
        socks = [s for s in snap.listeners if s.laddr.port == child.port]
        assert [s.pid for s in socks] == [child.pid]
        owner = snap.owner(socks[0])
        assert owner is not None and owner.name == child.name


def test_who_json_reports_the_child() -> None:
    with child_listener("udp", "127.0.0.1") as child:
        res = run_cli("who", str(child.port), "--json")
        assert res.returncode == 0, res.stderr
        data = json.loads(res.stdout)
        assert [s["pid"] for s in data["sockets"]] == [child.pid]
        assert data["sockets"][0]["state"] == "BOUND"
