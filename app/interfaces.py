"""Network interfaces: addresses and gateways (netifaces), state and counters (psutil).

Each part has a fallback, because each library fails somewhere: netifaces and psutil's address
list need netlink (a seccomp filter or a container policy refuses it: PermissionError), and both
fail on an interface name that is not valid UTF-8 (netifaces raises SystemError, psutil
UnicodeError). On Linux the fallback reads what the kernel offers without netlink, in the
caller's network namespace: /proc/net/dev (names, counters), ioctl on an inet socket (flags, MTU,
MAC, the primary IPv4 address), /proc/net/if_inet6 and /proc/net/route, ipv6_route. What still
cannot be read is said in :attr:`InterfaceReport.warnings`. (Not /sys/class/net: it shows the
namespace sysfs was mounted in, not ours.)

Names and addresses are kept as the kernel gives them (JSON carries them exactly); every place
that shows them escapes them with :func:`app.textsafe.printable`. An address's ``%scope`` suffix
is dropped: the scope of an address listed under an interface is that interface.
"""

from __future__ import annotations

import os
import struct
import sys

import netifaces

from app.textsafe import printable

TYPE_CHECKING = False  # the exposure column's path: no dataclasses, socket or ipaddress at import
if TYPE_CHECKING:
    import socket
    from dataclasses import dataclass, field
else:
    from app.lite import dataclass, field

# psutil (10 ms to import) is loaded only where it is used: the interface state and counters
# (`ifaces`, the dashboard), or addresses when netifaces fails. The exposure column needs only
# addresses (netifaces, a C extension that imports in well under a millisecond).

_LINUX = sys.platform.startswith("linux")


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
    import ipaddress

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


@dataclass
class InterfaceReport:
    interfaces: list[Interface]
    warnings: list[str] = field(default_factory=list)  # what could not be read, one line each


@dataclass(frozen=True, slots=True)
class _Link:
    is_up: bool
    mtu: int
    speed: int
    loopback: bool | None  # None: not known from flags


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return printable(f"{type(exc).__name__}: {exc}", 120)


def _strip_scope(address: str) -> str:
    return address.split("%", 1)[0]


# ------------------------------------------------------------------------------------ addresses


def read_addresses() -> tuple[dict[str, list[Address]], dict[str, str], list[str]]:
    """Interface name -> its addresses, name -> MAC address, and warnings (what was missing)."""
    try:
        return (*_netifaces_addresses(), [])
    except Exception as exc:  # PermissionError (netlink refused), SystemError (a non-UTF-8 name)
        first = f"netifaces: {_reason(exc)}"
    try:
        return (*_psutil_addresses(), [])
    except Exception as exc:
        first += f"; psutil: {_reason(exc)}"
    if _LINUX:
        try:
            addrs, macs = _kernel_addresses()
        except OSError as exc:
            return {}, {}, [f"interface addresses unavailable ({first}; /proc/net: {_reason(exc)})"]
        return addrs, macs, [f"interface addresses read from /proc/net and ioctl ({first}): "
                             "secondary IPv4 addresses are not shown"]  # fmt: skip
    return {}, {}, [f"interface addresses unavailable ({first})"]


def _netifaces_addresses() -> tuple[dict[str, list[Address]], dict[str, str]]:
    addrs: dict[str, list[Address]] = {}
    macs: dict[str, str] = {}
    for name in netifaces.interfaces():
        try:
            raw = netifaces.ifaddresses(name)
        except ValueError:  # interface vanished between the two calls
            continue
        found = addrs.setdefault(name, [])
        for fam, label in ((netifaces.AF_INET, "ipv4"), (netifaces.AF_INET6, "ipv6")):
            for entry in raw.get(fam, []):
                if entry.get("addr"):
                    found.append(
                        Address(label, _strip_scope(str(entry["addr"])), str(entry.get("netmask", "")))
                    )
        link = raw.get(netifaces.AF_LINK, [{}])
        macs[name] = str(link[0].get("addr", "")) if link else ""
    return addrs, macs


def _psutil_addresses() -> tuple[dict[str, list[Address]], dict[str, str]]:
    import socket

    import psutil

    addrs: dict[str, list[Address]] = {}
    macs: dict[str, str] = {}
    for name, entries in psutil.net_if_addrs().items():
        found = addrs.setdefault(name, [])
        for e in entries:
            if e.family in (socket.AF_INET, socket.AF_INET6) and e.address:
                label = "ipv4" if e.family == socket.AF_INET else "ipv6"
                found.append(Address(label, _strip_scope(e.address), e.netmask or ""))
            elif e.family == psutil.AF_LINK:
                macs[name] = e.address or ""
    return addrs, macs


def _kernel_addresses() -> tuple[dict[str, list[Address]], dict[str, str]]:
    """Linux without netlink: the primary IPv4 address and the MAC by ioctl, IPv6 from
    /proc/net/if_inet6. Raises OSError when /proc/net/dev cannot be read."""
    import ipaddress
    import socket

    addrs: dict[str, list[Address]] = {name: [] for name in _proc_net_dev()}
    macs: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name, found in addrs.items():
            try:
                ip = _ioctl(s, _SIOCGIFADDR, name)[20:24]
                mask = _ioctl(s, _SIOCGIFNETMASK, name)[20:24]
                found.append(Address("ipv4", socket.inet_ntoa(ip), socket.inet_ntoa(mask)))
            except OSError:  # EADDRNOTAVAIL: no IPv4 address
                pass
            try:
                hw = _ioctl(s, _SIOCGIFHWADDR, name)[18:24]
                macs[name] = ":".join(f"{b:02x}" for b in hw)
            except OSError:
                pass
    try:
        with open("/proc/net/if_inet6", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []  # no IPv6 in this kernel / namespace
    for line in lines:
        parts = line.split()
        if len(parts) < 6:
            continue
        try:
            ip6 = ipaddress.IPv6Address(bytes.fromhex(parts[0].decode("ascii")))
            plen = int(parts[2], 16)
        except ValueError:
            continue
        mask6 = str(ipaddress.IPv6Network(f"::/{plen}").netmask) if plen else ""
        addrs.setdefault(os.fsdecode(parts[5]), []).append(Address("ipv6", str(ip6), mask6))
    return addrs, macs


# --------------------------------------------------------------------------- kernel, no netlink

_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B
_SIOCGIFMTU = 0x8921
_SIOCGIFHWADDR = 0x8927
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8


def _ioctl(s: socket.socket, request: int, name: str) -> bytes:
    import fcntl

    ifreq = struct.pack("16s24x", os.fsencode(name)[:15])  # struct ifreq: name, then a union
    return fcntl.ioctl(s.fileno(), request, ifreq)


def _proc_net_dev() -> dict[str, tuple[int, int]]:
    """Interface name -> (bytes received, bytes sent), from /proc/net/dev (this namespace's)."""
    with open("/proc/net/dev", "rb") as f:
        lines = f.read().splitlines()[2:]
    out: dict[str, tuple[int, int]] = {}
    for line in lines:
        name, sep, rest = line.rpartition(b":")  # a name may not hold ':', counters follow it
        fields = rest.split()
        if not sep or len(fields) < 9:
            continue
        try:
            out[os.fsdecode(name.strip())] = (int(fields[0]), int(fields[8]))
        except ValueError:
            continue
    return out


def _kernel_links(names: list[str]) -> dict[str, _Link]:
    import socket

    out: dict[str, _Link] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            try:
                flags = struct.unpack_from("H", _ioctl(s, _SIOCGIFFLAGS, name), 16)[0]
                mtu = struct.unpack_from("i", _ioctl(s, _SIOCGIFMTU, name), 16)[0]
            except OSError:
                continue
            out[name] = _Link(bool(flags & _IFF_UP), mtu, 0, bool(flags & _IFF_LOOPBACK))
    return out


# ------------------------------------------------------------------------------- state, counters


def _links(warnings: list[str]) -> dict[str, _Link]:
    try:
        import psutil

        return {
            name: _Link(bool(st.isup), int(st.mtu), int(st.speed), _loopback_flag(st))
            for name, st in psutil.net_if_stats().items()
        }
    except Exception as exc:  # UnicodeEncodeError on a non-UTF-8 name, OSError without /proc/net
        reason = _reason(exc)
    if _LINUX:
        try:
            return _kernel_links(list(_proc_net_dev()))
        except OSError as exc:
            reason += f"; /proc/net: {_reason(exc)}"
    warnings.append(f"interface state unavailable ({reason})")
    return {}


def _loopback_flag(st: object) -> bool | None:
    flags = str(getattr(st, "flags", "") or "")
    return "loopback" in flags.split(",") if flags else None


def _counters() -> dict[str, tuple[int, int]]:
    try:
        import psutil

        return {
            n: (int(c.bytes_recv), int(c.bytes_sent)) for n, c in psutil.net_io_counters(pernic=True).items()
        }
    except Exception:
        pass
    if _LINUX:
        try:
            return _proc_net_dev()
        except OSError:
            pass
    return {}  # shown as 0 B: the addresses and state matter more, and were warned about


# ------------------------------------------------------------------------------------- gateways


def default_gateways(warnings: list[str] | None = None) -> dict[str, list[str]]:
    """interface name -> default gateway addresses (IPv4 and IPv6)."""
    out: dict[str, list[str]] = {}
    try:
        gws = netifaces.gateways()
    except Exception as exc:  # netlink refused
        if _LINUX:
            try:
                return _proc_gateways()
            except OSError:
                pass
        if warnings is not None:
            warnings.append(f"default gateways unavailable (netifaces: {_reason(exc)})")
        return out
    default = gws.get("default", {})
    if isinstance(default, dict):
        for fam in (netifaces.AF_INET, netifaces.AF_INET6):
            entry = default.get(fam)
            if entry:
                out.setdefault(str(entry[1]), []).append(str(entry[0]))
    return out


def _proc_gateways() -> dict[str, list[str]]:
    """Default routes from /proc/net/route and /proc/net/ipv6_route (no netlink needed)."""
    import ipaddress
    import socket

    out: dict[str, list[str]] = {}
    with open("/proc/net/route", "rb") as f:
        for line in f.read().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 8 and parts[1] == b"00000000" and parts[7] == b"00000000":
                try:
                    gw = socket.inet_ntoa(struct.pack("<I", int(parts[2], 16)))
                except ValueError:
                    continue
                if gw != "0.0.0.0":
                    out.setdefault(os.fsdecode(parts[0]), []).append(gw)
    try:
        with open("/proc/net/ipv6_route", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 10 and parts[0] == b"0" * 32 and parts[1] == b"00" and parts[4] != b"0" * 32:
            try:
                gw6 = str(ipaddress.IPv6Address(bytes.fromhex(parts[4].decode("ascii"))))
            except ValueError:
                continue
            out.setdefault(os.fsdecode(parts[9]), []).append(gw6)
    return out


# ----------------------------------------------------------------------------------------- all


def read_interfaces() -> InterfaceReport:
    """Every interface with what could be read of it, and a warning for each part that could
    not. Raises :class:`~app.errors.CollectorUnavailable` when nothing at all can be read (every
    network namespace has at least ``lo``)."""
    warnings: list[str] = []
    links = _links(warnings)
    counters = _counters()
    addrs, macs, addr_warnings = read_addresses()
    warnings += addr_warnings
    gateways = default_gateways(warnings)
    names = sorted(set(links) | set(addrs) | set(counters))
    if not names and warnings:
        from app.errors import CollectorUnavailable

        raise CollectorUnavailable("cannot read the network interfaces here: " + "; ".join(warnings))
    out: list[Interface] = []
    for name in names:
        link = links.get(name)
        found = addrs.get(name, [])
        rx, tx = counters.get(name, (0, 0))
        out.append(
            Interface(
                name=name,
                addresses=tuple(found),
                is_up=link.is_up if link else False,
                mtu=link.mtu if link else 0,
                speed_mbps=max(0, link.speed) if link else 0,
                bytes_recv=rx,
                bytes_sent=tx,
                gateways=tuple(gateways.get(name, ())),
                mac=macs.get(name, ""),
                loopback=_is_loopback(name, link, found),
            )
        )
    return InterfaceReport(out, warnings)


def list_interfaces() -> list[Interface]:
    """The interfaces (warnings dropped; :func:`read_interfaces` has them)."""
    from app.errors import CollectorUnavailable

    try:
        return read_interfaces().interfaces
    except CollectorUnavailable:  # the dashboard shows an empty interfaces view
        return []


def _is_loopback(name: str, link: _Link | None, addrs: list[Address]) -> bool:
    import ipaddress

    if link is not None and link.loopback is not None:
        return link.loopback
    if addrs:
        try:
            return all(ipaddress.ip_address(a.address).is_loopback for a in addrs)
        except ValueError:
            return False
    return name in ("lo", "lo0")
