"""``explain``'s bind-address and localhost findings, inside network (and mount) namespaces the test
creates: wildcard listeners there are reachable only through the namespace's own addresses."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from tests.integration.explain_ns import explain_json, kinds, needs_mountns, needs_netns, texts

pytestmark = [needs_netns]


def only(data: dict, kind: str) -> dict:
    found = kinds(data, kind)
    assert len(found) == 1, texts(data)
    return found[0]


def test_all_ipv4_interfaces_lists_each_address_with_its_scope() -> None:
    rc, data = explain_json(
        {
            "addrs": ["10.77.0.5/24"],
            "listeners": [{"host": "0.0.0.0", "port": 7100}],
            "args": ["explain", "7100", "--json"],
        }
    )
    assert rc == 0, texts(data)
    assert (
        data["verdict"]
        == "7100/tcp: open on all interfaces: reachable from this machine and from the network"
    )
    bind = only(data, "bind")
    assert bind["detail"]["scope"] == "all interfaces"
    assert bind["detail"]["reachable_at"] == [
        {"interface": "ps-v0", "address": "10.77.0.5", "scope": "private"}
    ]
    assert "10.77.0.5 (ps-v0, private)" in bind["text"]
    assert only(data, "stack")["detail"]["ipv4"] is True and only(data, "stack")["detail"]["ipv6"] is False
    tests = {t["detail"]["address"]: t["detail"]["state"] for t in kinds(data, "test")}
    assert tests == {"127.0.0.1": "open", "10.77.0.5": "open"}
    [listener] = data["listeners"]
    assert listener["local"] == {"ip": "0.0.0.0", "port": 7100} and listener["pid"] is not None


def test_dual_stack_and_v6only_wildcards_read_the_sockets_own_flag() -> None:
    spec = {"addrs": ["10.77.0.5/24", "fd00:77::5/64"]}
    rc, data = explain_json(
        {
            **spec,
            "listeners": [{"host": "::", "port": 7200, "v6only": 0}],
            "args": ["explain", "7200", "--json"],
        }
    )
    assert rc == 0, texts(data)
    stack = only(data, "stack")
    assert stack["detail"]["ipv4"] and stack["detail"]["ipv6"]
    [flag] = stack["detail"]["v6only"]
    assert flag["v6only"] is False and "sock_diag" in flag["source"]
    assert "IPV6_V6ONLY=0" in stack["text"] and "net.ipv6.bindv6only=" in stack["text"]
    reach = {a["address"] for a in only(data, "bind")["detail"]["reachable_at"]}
    assert {"10.77.0.5", "fd00:77::5"} <= reach
    tested = {t["detail"]["address"]: t["detail"]["state"] for t in kinds(data, "test")}
    assert tested["::1"] == tested["127.0.0.1"] == tested["10.77.0.5"] == tested["fd00:77::5"] == "open"

    rc, data = explain_json(
        {
            **spec,
            "listeners": [{"host": "::", "port": 7201, "v6only": 1}],
            "args": ["explain", "7201", "--json"],
        }
    )
    assert rc == 0
    stack = only(data, "stack")
    assert stack["detail"]["v6only"][0]["v6only"] is True
    assert stack["text"].startswith("serves IPv6 only")
    reach = {a["address"] for a in only(data, "bind")["detail"]["reachable_at"]}
    assert "10.77.0.5" not in reach and "fd00:77::5" in reach


def test_ipv6_loopback_only() -> None:
    rc, data = explain_json(
        {"listeners": [{"host": "::1", "port": 7300, "v6only": 1}], "args": ["explain", "7300", "--json"]}
    )
    assert rc == 0
    assert (
        data["verdict"]
        == "7300/tcp: open on loopback only: reachable from this machine, not from the network"
    )
    assert only(data, "bind")["detail"]["scope"] == "loopback"
    assert only(data, "stack")["text"].startswith("serves IPv6 only")


def test_one_interface_address() -> None:
    rc, data = explain_json(
        {
            "addrs": ["10.77.0.5/24", "10.77.0.6/24"],
            "listeners": [{"host": "10.77.0.5", "port": 7400}],
            "args": ["explain", "7400", "--json"],
        }
    )
    assert rc == 0, texts(data)
    assert data["verdict"].startswith("7400/tcp: open on 10.77.0.5 only:")
    bind = only(data, "bind")
    assert bind["detail"] == {"address": "10.77.0.5", "scope": "private", "interfaces": ["ps-v0"]}
    assert "bound to 10.77.0.5:7400 only on ps-v0" in bind["text"]
    assert [t["detail"]["address"] for t in kinds(data, "test")] == ["10.77.0.5"]


# --- localhost -------------------------------------------------------------------------------------


@pytest.fixture
def ipv6_first_hosts() -> Iterator[str]:
    fd, path = tempfile.mkstemp(prefix="portscope-hosts-")
    with os.fdopen(fd, "w") as f:
        f.write("::1 localhost ip6-localhost\n127.0.0.1 localhost\n")
    os.chmod(path, 0o644)
    try:
        yield path
    finally:
        os.unlink(path)


@needs_mountns
def test_localhost_ipv6_first_warns_an_ipv4_only_listener(ipv6_first_hosts: str) -> None:
    rc, data = explain_json(
        {
            "hosts_file": ipv6_first_hosts,
            "listeners": [{"host": "127.0.0.1", "port": 7500}],
            "args": ["explain", "7500", "--json"],
        },
        mount=True,
    )
    assert rc == 0  # 127.0.0.1 itself answers
    lh = only(data, "localhost")
    assert lh["severity"] == "warning", lh
    assert lh["detail"]["order"] == ["::1", "127.0.0.1"] and lh["detail"]["served"] == ["127.0.0.1"]
    assert "::1 first" in lh["text"] and "IPv4-only" in lh["text"] and "Node.js" in lh["text"]
    assert "connect to 127.0.0.1 instead of localhost" in lh["text"]
    assert "::1 localhost ip6-localhost" in lh["text"]  # the hosts file line it came from
    assert "portscope test 127.0.0.1:7500" in [s["command"] for s in data["suggestions"]]


@needs_mountns
def test_localhost_ipv6_first_is_fine_for_a_dual_stack_listener(ipv6_first_hosts: str) -> None:
    rc, data = explain_json(
        {
            "hosts_file": ipv6_first_hosts,
            "listeners": [{"host": "::", "port": 7501, "v6only": 0}],
            "args": ["explain", "7501", "--json"],
        },
        mount=True,
    )
    assert rc == 0
    lh = only(data, "localhost")
    assert lh["severity"] == "info" and lh["detail"]["served"] == ["::1", "127.0.0.1"], lh
    assert "every address is served" in lh["text"]


def test_wildcard_without_any_other_address_is_reachable_from_here_only() -> None:
    rc, data = explain_json(
        {"listeners": [{"host": "0.0.0.0", "port": 7600}], "args": ["explain", "7600", "--json"]}
    )
    assert rc == 0
    assert data["verdict"] == (
        "7600/tcp: open on all interfaces, but this machine has no address besides loopback: "
        "reachable from this machine only"
    )
    assert only(data, "bind")["detail"]["reachable_at"] == []
