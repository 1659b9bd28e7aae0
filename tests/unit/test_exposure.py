"""app.exposure's answer from the address bytes alone (no ipaddress, no interface list) is the one
the full classification gives."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from app.exposure import ExposureKind, ExposureMap, by_address, classify

ADDRS = {"192.0.2.7": ["eth0"], "2001:db8::7": ["eth0"], "10.1.2.3": ["wg0", "eth1"]}

v4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
v6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
special = st.sampled_from(
    [
        "0.0.0.0",
        "::",
        "127.0.0.1",
        "127.255.0.9",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:0.0.0.0",
        "::ffff:192.0.2.7",
        "fe80::1%eth0",
        "::1%lo",
        "0:0:0:0:0:0:0:1",
        "0000::0001",
        "192.0.2.7",
        "2001:db8::7",
        "10.1.2.3",
        "",
        "x",
        "1.2.3",
        "01.2.3.4",
        "::ffff:1.2.3.4.5",
        "1.2.3.4%x",
        "[::1]",
    ]
)
mapped = st.integers(0, 2**32 - 1).map(lambda n: "::ffff:" + str(ipaddress.IPv4Address(n)))


@given(st.one_of(v4, v6, special, mapped, st.text(max_size=45)))
def test_by_address_agrees_with_classify(ip: str) -> None:
    quick = by_address(ip)
    full = classify(ip, ADDRS)
    if quick is not None:
        assert quick == full
    if full.kind in (ExposureKind.ALL, ExposureKind.LOOPBACK) and "%" not in ip:
        assert quick == full, ip  # the common answers never need the interface list


def test_the_map_reads_interfaces_only_for_specific_addresses(monkeypatch) -> None:
    calls: list[int] = []

    def fake() -> dict[str, list[str]]:
        calls.append(1)
        return {"192.0.2.7": ["eth0"]}

    monkeypatch.setattr("app.exposure.interface_addresses", fake)
    m = ExposureMap()
    assert m.classify("0.0.0.0").kind is ExposureKind.ALL
    assert m.classify("::1").kind is ExposureKind.LOOPBACK
    assert m.classify("::ffff:127.0.0.1").kind is ExposureKind.LOOPBACK
    assert calls == []
    got = m.classify("192.0.2.7")
    assert got.kind is ExposureKind.INTERFACE and got.interfaces == ("eth0",)
    assert m.classify("198.51.100.1").kind is ExposureKind.UNKNOWN
    assert calls == [1]  # read once (ttl)


@given(st.one_of(v4, v6, special, mapped, st.text(max_size=45)))
def test_sort_key_reads_addresses_as_ipaddress_does(ip: str) -> None:
    from app.backends.base import _addr_value

    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        want = (0, 0)
    else:
        want = (1 if addr.version == 4 else 2, int(addr))
    assert _addr_value(ip.split("%", 1)[0]) == want
