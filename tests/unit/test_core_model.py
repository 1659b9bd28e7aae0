"""The core model without sockets: ranges, the ephemeral range, keys, exposure, escaping, parsers."""

from __future__ import annotations

import ipaddress
import itertools
import socket
import sys
from pathlib import Path
from typing import Any

import netifaces
import pytest

from app import ports
from app.collector import hidden_owner_count, owner_warning
from app.errors import UsageError
from app.exposure import ExposureKind, ExposureMap, classify, interface_addresses
from app.interfaces import list_interfaces, prefix_length
from app.model import Endpoint, Family, Proto, Snapshot, Sock, row_keys
from app.parsing import parse_port, parse_range, parse_range_name
from app.ports import PortRange, in_ephemeral, parse_ephemeral, port_range
from app.textsafe import csv_cell, printable


def sock(
    port: int,
    status: str = "LISTEN",
    ip: str = "127.0.0.1",
    raddr: Endpoint | None = None,
    pid: int | None = 1,
    proto: Proto = Proto.TCP,
) -> Sock:
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    return Sock(proto, fam, Endpoint(ip, port), raddr, status, pid)


# -- IANA ranges and the ephemeral range ------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (0, PortRange.WELL_KNOWN),
        (1023, PortRange.WELL_KNOWN),
        (1024, PortRange.REGISTERED),
        (49151, PortRange.REGISTERED),
        (49152, PortRange.DYNAMIC),
        (65535, PortRange.DYNAMIC),
    ],
)
def test_range_boundaries(port: int, expected: PortRange) -> None:
    assert port_range(port) is expected
    assert sock(port).range is expected
    lo, hi = expected.bounds
    assert lo <= port <= hi


@pytest.mark.parametrize("port", [-1, 65536])
def test_port_outside_0_65535_has_no_range(port: int) -> None:
    with pytest.raises(ValueError):
        port_range(port)


def test_ranges_tile_0_to_65535() -> None:
    bounds = sorted(r.bounds for r in PortRange)
    assert bounds[0][0] == 0 and bounds[-1][1] == 65535
    for (_, hi), (lo, _) in itertools.pairwise(bounds):
        assert lo == hi + 1
    assert PortRange.REGISTERED.heading == "registered 1024-49151"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("32768\t60999\n", (32768, 60999)),
        ("1024 65535", (1024, 65535)),
        ("40000 40000", (40000, 40000)),
        ("", None),
        ("32768", None),
        ("1 2 3", None),
        ("a b", None),
        ("60999 32768", None),  # reversed
        ("0 100", None),
        ("1 70000", None),
        ("-5 100", None),
    ],
)
def test_parse_ephemeral(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_ephemeral(text) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ephemeral_range_is_the_kernels() -> None:
    text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    lo, hi = (int(x) for x in text.split())
    assert ports.ephemeral_range() == (lo, hi)
    assert in_ephemeral(lo) and in_ephemeral(hi)
    assert not in_ephemeral(lo - 1) and not in_ephemeral(hi + 1)


def test_ephemeral_range_falls_back_to_documented_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "PROC_EPHEMERAL", Path("/nonexistent/ip_local_port_range"))
    ports.ephemeral_range.cache_clear()
    try:
        got = ports.ephemeral_range()
    finally:
        ports.ephemeral_range.cache_clear()
    if sys.platform.startswith("linux"):
        assert got == (32768, 60999)
    else:
        assert got[0] <= got[1]


def test_ephemeral_flag_on_snapshot() -> None:
    snap = Snapshot(taken_at=0.0, sockets=(), processes={}, ephemeral=(40000, 50000))
    assert [snap.in_ephemeral(sock(p)) for p in (39999, 40000, 50000, 50001)] == [False, True, True, False]


# -- sockets, keys, established_to ------------------------------------------------------------


def test_listening_means_tcp_listen_or_udp_bound() -> None:
    assert sock(53, "LISTEN").listening
    assert sock(53, "BOUND", proto=Proto.UDP).listening
    assert not sock(53, "ESTABLISHED", raddr=Endpoint("127.0.0.1", 4000)).listening
    assert not sock(53, "CONNECTED", raddr=Endpoint("127.0.0.1", 4000), proto=Proto.UDP).listening


def test_endpoint_keys_bracket_ipv6() -> None:
    assert sock(80).endpoint_key == "tcp:127.0.0.1:80"
    s6 = sock(5000, "ESTABLISHED", ip="::1", raddr=Endpoint("::1", 8080))
    assert s6.endpoint_key == "tcp:[::1]:5000>[::1]:8080"


def test_row_keys_unique_for_shared_endpoints() -> None:
    socks = [sock(80, pid=10), sock(80, pid=11), sock(80, pid=11), sock(80, pid=None), sock(81)]
    keys = row_keys(socks)
    assert len(set(keys)) == len(keys) == 5
    assert keys[-1] == "tcp:127.0.0.1:81"
    assert keys[0] == "tcp:127.0.0.1:80#10"
    assert row_keys(socks) == keys  # stable


def test_established_to_counts_accepted_connections() -> None:
    client = Endpoint("127.0.0.1", 50000)
    listener = sock(8080)
    wildcard = sock(9090, ip="0.0.0.0")
    socks = (
        listener,
        sock(8080, "ESTABLISHED", raddr=client),
        sock(8080, "ESTABLISHED", raddr=Endpoint("127.0.0.1", 50001)),
        sock(8080, "TIME_WAIT", raddr=Endpoint("127.0.0.1", 50002), pid=None),
        sock(50000, "ESTABLISHED", raddr=Endpoint("127.0.0.1", 8080)),  # the client's end
        wildcard,
        sock(9090, "ESTABLISHED", ip="192.0.2.9", raddr=client),
    )
    snap = Snapshot(taken_at=0.0, sockets=socks, processes={})
    assert snap.established_to(listener) == 2
    assert snap.established_to(wildcard) == 1
    assert len(snap.on_port(8080)) == 4 and snap.on_port(8080, Proto.UDP) == []


def test_hidden_owner_count_and_wording() -> None:
    socks = [sock(1, pid=None), sock(2, pid=None), sock(3), sock(4, "TIME_WAIT", pid=None)]
    assert hidden_owner_count(socks) == 2
    assert owner_warning(0, False) is None
    assert owner_warning(41, False) == "41 sockets have no visible owner: other users' processes need root"
    assert owner_warning(1, False) == "1 socket has no visible owner: other users' processes need root"
    root_note = owner_warning(3, True)
    assert root_note is not None and "need root" not in root_note and root_note.startswith("3 sockets")


# -- exposure -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "kind"),
    [
        ("127.0.0.1", ExposureKind.LOOPBACK),
        ("127.1.2.3", ExposureKind.LOOPBACK),
        ("::1", ExposureKind.LOOPBACK),
        ("::ffff:127.0.0.1", ExposureKind.LOOPBACK),
        ("0.0.0.0", ExposureKind.ALL),
        ("::", ExposureKind.ALL),
        ("::ffff:0.0.0.0", ExposureKind.ALL),
        ("not-an-address", ExposureKind.UNKNOWN),
        ("", ExposureKind.UNKNOWN),
    ],
)
def test_exposure_of_special_addresses(ip: str, kind: ExposureKind) -> None:
    exp = ExposureMap().classify(ip)
    assert exp.kind is kind
    assert exp.beyond_loopback == (kind is ExposureKind.ALL)
    assert exp.as_dict()["kind"] == kind.value


def _absent_address() -> str:
    present = interface_addresses()
    for candidate in ("203.0.113.77", "198.51.100.77", "2001:db8::77"):
        if candidate not in present:
            return candidate
    pytest.skip("every documentation address is configured on this host")


def test_exposure_of_an_address_no_interface_has_is_unknown() -> None:
    exp = ExposureMap().classify(_absent_address())
    assert exp.kind is ExposureKind.UNKNOWN and exp.label == "unknown address"
    assert not exp.beyond_loopback


def _non_loopback_addresses() -> list[tuple[str, str]]:
    out = []
    for name in netifaces.interfaces():
        for fam in (netifaces.AF_INET, netifaces.AF_INET6):
            for entry in netifaces.ifaddresses(name).get(fam, []):
                addr = entry.get("addr", "")
                if addr and not ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback:
                    out.append((addr, name))
    return out


def test_exposure_of_a_real_interface_address_names_the_interface() -> None:
    found = _non_loopback_addresses()
    if not found:
        pytest.skip("this host has no non-loopback interface address")
    emap = ExposureMap()
    for addr, name in found:
        exp = emap.classify(addr)
        assert exp.kind is ExposureKind.INTERFACE, addr
        assert name in exp.interfaces and exp.label == ",".join(exp.interfaces)
        assert exp.beyond_loopback


def test_exposure_with_a_given_address_map() -> None:
    addrs = {"10.1.2.3": ["eth1", "eth0"], "fe80::1": ["eth0"]}
    assert classify("10.1.2.3", addrs).interfaces == ("eth0", "eth1")
    assert classify("fe80::1%eth0", addrs).interfaces == ("eth0",)
    assert classify("10.1.2.4", addrs).kind is ExposureKind.UNKNOWN
    lo_alias = classify("10.9.9.9", {"10.9.9.9": ["lo"]})
    assert lo_alias.kind is ExposureKind.INTERFACE and not lo_alias.beyond_loopback


# -- interfaces ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "bits"),
    [
        ("255.255.255.0", 24),
        ("255.0.0.0", 8),
        ("255.255.255.255", 32),
        ("0.0.0.0", 0),
        ("ffff:ffff:ffff:ffff::/64", 64),
        ("ffff:ffff:ffff:ffff::", 64),
        ("255.0.255.0", None),
        ("", None),
        ("junk", None),
    ],
)
def test_prefix_length(mask: str, bits: int | None) -> None:
    assert prefix_length(mask) == bits


def test_interfaces_have_loopback_addresses_state_and_gateways() -> None:
    ifaces = {i.name: i for i in list_interfaces()}
    assert set(netifaces.interfaces()) <= set(ifaces)
    loopbacks = [i for i in ifaces.values() if any(a.address == "127.0.0.1" for a in i.addresses)]
    assert loopbacks, ifaces
    lo = loopbacks[0]
    assert lo.loopback and lo.is_up and lo.mtu > 0
    assert next(a for a in lo.addresses if a.address == "127.0.0.1").cidr.startswith("127.0.0.1/")
    default: Any = netifaces.gateways().get("default", {})
    for fam, (gw, name, *_) in default.items():
        assert fam in (netifaces.AF_INET, netifaces.AF_INET6)
        assert gw in ifaces[name].gateways
    for i in ifaces.values():
        assert i.bytes_recv >= 0 and i.bytes_sent >= 0 and i.speed_mbps >= 0
        assert all(a.family in ("ipv4", "ipv6") for a in i.addresses)


# -- escaping and parsing -----------------------------------------------------------------------


def test_printable_escapes_terminal_control() -> None:
    hostile = "[bold]x\x1b[31mred\x1b]0;title\x07\x01\n\u202e\udcff\\"
    out = printable(hostile)
    assert out == "[bold]x\\x1b[31mred\\x1b]0;title\\x07\\x01\\n\\u202e\\xff\\\\"
    assert out.isprintable() and out.isascii()
    assert printable("ok naïve") == "ok naïve"
    cut = printable("a" * 10_000, 50)
    assert len(cut) == 50 and cut.endswith("…")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-cmd", "'-cmd"),
        ("@x", "'@x"),
        ("\x1bx", "\\x1bx"),
        ("nginx", "nginx"),
        (8080, "8080"),
        (None, ""),
    ],
)
def test_csv_cell_neutralises_formulas(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


@pytest.mark.parametrize("bad", ["abc", "70000", "-1", "0", "", " ", "1.5", "٣"])
def test_parse_port_rejects_with_one_line(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_port(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", ["", "dyn", "private", "1-2"])
def test_unknown_range_name(bad: str) -> None:
    with pytest.raises(UsageError, match="unknown range"):
        parse_range_name(bad)


def test_range_names() -> None:
    assert parse_range_name("Well-Known") is PortRange.WELL_KNOWN
    assert parse_range_name("registered") is PortRange.REGISTERED
    assert parse_range_name("dynamic") is PortRange.DYNAMIC
    assert parse_range("dynamic") == (49152, 65535)
    assert parse_range("8000-8100") == (8000, 8100)


def test_family_af_round_trip() -> None:
    assert Family.from_af(socket.AF_INET) is Family.IPV4 and Family.IPV4.af == socket.AF_INET
    assert Family.from_af(socket.AF_INET6) is Family.IPV6 and Family.IPV6.af == socket.AF_INET6
