"""Exposure of a listener: loopback only, all interfaces, or the named interface(s) it is bound to.

Interface names are chosen by whoever created the interface (any bytes but '/', ':' and
whitespace: an OSC title or clipboard escape fits): :attr:`Exposure.label`, the text every output
shows, escapes them; :attr:`Exposure.interfaces` keeps them exact (for JSON).

On the CLI's start-up path: an address that answers by itself (``0.0.0.0``, ``::``, loopback,
what most listeners bind) is classified from its bytes (``inet_pton``) without ipaddress and
without reading the interfaces; only a specific address needs the interface list (and ipaddress).
"""

from __future__ import annotations

import time

from app.textsafe import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from enum import StrEnum
else:
    from app.lite import StrEnum, dataclass

# Loopback interface names (Linux, BSD/macOS): an address on them is not reachable from outside.
LOOPBACK_INTERFACES = frozenset({"lo", "lo0"})


class ExposureKind(StrEnum):
    LOOPBACK = "loopback"
    ALL = "all interfaces"
    INTERFACE = "interface"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Exposure:
    kind: ExposureKind
    interfaces: tuple[str, ...] = ()

    @property
    def beyond_loopback(self) -> bool:
        """Reachable from other hosts (all interfaces, or a non-loopback interface)."""
        if self.kind is ExposureKind.ALL:
            return True
        return self.kind is ExposureKind.INTERFACE and not set(self.interfaces) <= LOOPBACK_INTERFACES

    @property
    def label(self) -> str:
        """The text to show: interface names escaped (each cut to 32 characters)."""
        if self.kind is ExposureKind.INTERFACE:
            return ",".join(printable(name, 32) for name in self.interfaces)
        return self.raw_label

    @property
    def raw_label(self) -> str:
        """The label with the interface names exact: for JSON and CSV, which escape it their way."""
        if self.kind is ExposureKind.INTERFACE:
            return ",".join(self.interfaces)
        if self.kind is ExposureKind.UNKNOWN:
            return "unknown address"
        return self.kind.value

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "interfaces": list(self.interfaces), "label": self.raw_label}


def _strip_scope(ip: str) -> str:
    return ip.split("%", 1)[0]


def interface_addresses() -> dict[str, list[str]]:
    """Map each local address to the names of the interfaces that carry it (see
    :func:`app.interfaces.read_addresses` for where they come from when netlink is refused)."""
    from app.interfaces import read_addresses

    addrs, _macs, _warnings = read_addresses()
    out: dict[str, list[str]] = {}
    for name, found in addrs.items():
        for a in found:
            out.setdefault(_normalise(_strip_scope(a.address)), []).append(name)
    return out


def _normalise(ip: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def by_address(ip: str) -> Exposure | None:
    """The exposure of ``ip`` when the address alone says it (unspecified: all interfaces;
    loopback), from its bytes; ``None`` when it takes the interface list (or ipaddress) to say.
    The same answer :func:`classify` gives (tests/unit/test_exposure.py)."""
    from _socket import AF_INET, AF_INET6, inet_pton

    bare = ip.split("%", 1)[0]
    try:
        packed = inet_pton(AF_INET6 if ":" in bare else AF_INET, bare)
    except (OSError, ValueError):
        return None  # let ipaddress decide (it may read forms inet_pton does not)
    if len(packed) == 16 and packed[:12] == _V4_MAPPED:
        packed = packed[12:]
    if len(packed) == 4:
        if packed == b"\0\0\0\0":
            return ALL
        return LOOPBACK if packed[0] == 127 else None
    if packed == bytes(16):
        return ALL
    return LOOPBACK if packed == bytes(15) + b"\x01" else None


class ExposureMap:
    """Classifies bind addresses. Interface addresses are read only for an address that needs
    them (see :func:`by_address`), and re-read at most every ``ttl`` seconds."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._addrs: dict[str, list[str]] = {}
        self._read_at = float("-inf")
        self._cache: dict[str, Exposure] = {}  # answers that depend on the interface list
        self._fixed: dict[str, Exposure] = {}  # answers the address alone gives

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._read_at >= self.ttl:
            try:
                addrs = interface_addresses()
            except OSError:
                addrs = {}
            if addrs != self._addrs:
                self._cache.clear()
            self._addrs = addrs
            self._read_at = now

    def classify(self, ip: str) -> Exposure:
        hit = self._fixed.get(ip)
        if hit is not None:
            return hit
        fixed = by_address(ip)
        if fixed is not None:
            if len(self._fixed) < 65536:
                self._fixed[ip] = fixed
            return fixed
        self._refresh()
        hit = self._cache.get(ip)
        if hit is None:
            hit = self._cache[ip] = classify(ip, self._addrs)
        return hit


def classify(ip: str, addrs: dict[str, list[str]]) -> Exposure:
    """Exposure of something bound to ``ip``, given the local address -> interfaces map."""
    import ipaddress

    bare = _strip_scope(ip)
    try:
        parsed = ipaddress.ip_address(bare)
    except ValueError:
        return Exposure(ExposureKind.UNKNOWN)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    if parsed.is_unspecified:
        return Exposure(ExposureKind.ALL)
    if parsed.is_loopback:
        return Exposure(ExposureKind.LOOPBACK)
    names = addrs.get(str(parsed))
    if names:
        return Exposure(ExposureKind.INTERFACE, tuple(sorted(set(names))))
    return Exposure(ExposureKind.UNKNOWN)


ALL = Exposure(ExposureKind.ALL)
LOOPBACK = Exposure(ExposureKind.LOOPBACK)
