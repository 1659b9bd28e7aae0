"""Port ranges: the three IANA ranges and the OS's own ephemeral range."""

from __future__ import annotations

import sys

from app.lite import once

TYPE_CHECKING = False  # on the CLI's start-up path: app.lite's StrEnum, not enum's
if TYPE_CHECKING:
    from enum import StrEnum
else:
    from app.lite import StrEnum

MAX_PORT = 65535


class PortRange(StrEnum):
    WELL_KNOWN = "well-known"
    REGISTERED = "registered"
    DYNAMIC = "dynamic"

    @property
    def bounds(self) -> tuple[int, int]:
        return _BOUNDS[self]

    @property
    def heading(self) -> str:
        lo, hi = self.bounds
        return f"{self.value} {lo}-{hi}"


_BOUNDS = {
    PortRange.WELL_KNOWN: (0, 1023),
    PortRange.REGISTERED: (1024, 49151),
    PortRange.DYNAMIC: (49152, 65535),
}


def port_range(port: int) -> PortRange:
    """The IANA range of ``port`` (0-65535)."""
    if not 0 <= port <= MAX_PORT:
        raise ValueError(f"port {port} is outside 0-65535")
    if port <= _BOUNDS[PortRange.WELL_KNOWN][1]:
        return PortRange.WELL_KNOWN
    if port <= _BOUNDS[PortRange.REGISTERED][1]:
        return PortRange.REGISTERED
    return PortRange.DYNAMIC


# Documented defaults where the range cannot be read.
_DEFAULT_EPHEMERAL = {
    "linux": (32768, 60999),  # Linux default net.ipv4.ip_local_port_range
    "darwin": (49152, 65535),  # net.inet.ip.portrange.first/last
    "win32": (49152, 65535),  # netsh int ipv4 show dynamicport tcp
    "freebsd": (10000, 65535),  # net.inet.ip.portrange.first/last (FreeBSD 10+)
}
PROC_EPHEMERAL = "/proc/sys/net/ipv4/ip_local_port_range"  # (a str or a Path)


def parse_ephemeral(text: str) -> tuple[int, int] | None:
    """Parse the contents of ip_local_port_range ("32768\t60999")."""
    parts = text.split()
    if len(parts) != 2:
        return None
    try:
        lo, hi = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    if not (0 < lo <= hi <= MAX_PORT):
        return None
    return lo, hi


@once
def ephemeral_range() -> tuple[int, int]:
    """The OS's ephemeral (local) port range for outgoing connections (read once)."""
    if sys.platform.startswith("linux"):
        try:
            with open(PROC_EPHEMERAL, "rb") as f:  # (a text file would look its codec up: start-up)
                parsed = parse_ephemeral(f.read(256).decode("ascii", "replace"))
        except OSError:
            parsed = None
        if parsed:
            return parsed
    for prefix, bounds in _DEFAULT_EPHEMERAL.items():
        if sys.platform.startswith(prefix):
            return bounds
    return 49152, 65535


def in_ephemeral(port: int, bounds: tuple[int, int] | None = None) -> bool:
    lo, hi = bounds or ephemeral_range()
    return lo <= port <= hi
