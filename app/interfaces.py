"""Network interfaces: addresses and gateways (netifaces), state and counters (psutil)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import netifaces
import psutil


@dataclass(frozen=True, slots=True)
class Address:
    family: str  # "ipv4" | "ipv6"
    address: str
    netmask: str

    @property
    def prefixlen(self) -> int | None:
        """The netmask as a prefix length (255.255.255.0 -> 24); ``None`` if unknown."""
        return prefix_length(self.netmask)

    @property
    def cidr(self) -> str:
        """``192.0.2.2/24`` (the address alone when the mask is unknown)."""
        n = self.prefixlen
        return f"{self.address}/{n}" if n is not None else self.address


def prefix_length(netmask: str) -> int | None:
    """``255.255.255.0`` -> 24; netifaces' IPv6 form ``ffff:ffff:ffff:ffff::/64`` -> 64."""
    if not netmask:
        return None
    mask, _, bits = netmask.partition("/")
    if bits.isdigit():
        return int(bits)
    try:
        value = int(ipaddress.ip_address(mask))
        width = 32 if "." in mask else 128
    except ValueError:
        return None
    inverted = ~value & ((1 << width) - 1)
    if inverted & (inverted + 1):  # not contiguous ones followed by zeros
        return None
    return width - inverted.bit_length()


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    addresses: tuple[Address, ...]
    is_up: bool
    mtu: int
    speed_mbps: int  # 0 when unknown
    bytes_recv: int
    bytes_sent: int
    gateways: tuple[str, ...]  # default gateways reached through this interface
    mac: str = ""
    loopback: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "up": self.is_up,
            "loopback": self.loopback,
            "mtu": self.mtu,
            "speed_mbps": self.speed_mbps,
            "mac": self.mac,
            "addresses": [
                {"family": a.family, "address": a.address, "netmask": a.netmask, "prefixlen": a.prefixlen}
                for a in self.addresses
            ],
            "default_gateways": list(self.gateways),
            "bytes_recv": self.bytes_recv,
            "bytes_sent": self.bytes_sent,
        }


def default_gateways() -> dict[str, list[str]]:
    """interface name -> default gateway addresses (IPv4 and IPv6)."""
    out: dict[str, list[str]] = {}
    try:
        gws = netifaces.gateways()
    except OSError:
        return out
    default = gws.get("default", {})
    if isinstance(default, dict):
        for fam in (netifaces.AF_INET, netifaces.AF_INET6):
            entry = default.get(fam)
            if entry:
                out.setdefault(str(entry[1]), []).append(str(entry[0]))
    return out


def list_interfaces() -> list[Interface]:
    stats = psutil.net_if_stats()
    try:
        counters = psutil.net_io_counters(pernic=True)
    except (OSError, RuntimeError):
        counters = {}
    gateways = default_gateways()
    names = sorted(set(netifaces.interfaces()) | set(stats))
    out: list[Interface] = []
    for name in names:
        try:
            raw = netifaces.ifaddresses(name)
        except ValueError:
            raw = {}
        addrs: list[Address] = []
        for fam, label in ((netifaces.AF_INET, "ipv4"), (netifaces.AF_INET6, "ipv6")):
            for entry in raw.get(fam, []):
                if entry.get("addr"):
                    addrs.append(Address(label, str(entry["addr"]), str(entry.get("netmask", ""))))
        link = raw.get(netifaces.AF_LINK, [{}])
        mac = str(link[0].get("addr", "")) if link else ""
        st = stats.get(name)
        io = counters.get(name)
        out.append(
            Interface(
                name=name,
                addresses=tuple(addrs),
                is_up=bool(st.isup) if st else False,
                mtu=int(st.mtu) if st else 0,
                speed_mbps=int(st.speed) if st else 0,
                bytes_recv=int(io.bytes_recv) if io else 0,
                bytes_sent=int(io.bytes_sent) if io else 0,
                gateways=tuple(gateways.get(name, ())),
                mac=mac,
                loopback=_is_loopback(name, st, addrs),
            )
        )
    return out


def _is_loopback(name: str, stats: object, addrs: list[Address]) -> bool:
    flags = str(getattr(stats, "flags", "") or "")
    if flags:
        return "loopback" in flags.split(",")
    if addrs:
        return all(ipaddress.ip_address(a.address.split("%", 1)[0]).is_loopback for a in addrs)
    return name in ("lo", "lo0")
