"""Parsers for everything a user types: ports, port specs, ranges, host:port.

Each parser returns a value or raises :class:`~app.errors.UsageError` with a one-line message;
no other exception escapes (property-tested).
"""

from __future__ import annotations

from app.errors import UsageError
from app.ports import MAX_PORT, PortRange
from app.textsafe import quoted

MAX_SPEC_PORTS = 65535


def parse_port(text: str, *, allow_zero: bool = False, what: str = "port") -> int:
    """A port number 1-65535 (0 too with ``allow_zero``)."""
    raw = str(text).strip()
    if not raw.isdigit() or not raw.isascii():
        low = 0 if allow_zero else 1
        raise UsageError(f"invalid {what} {quoted(text)}: expected a number from {low} to 65535")
    value = int(raw[:6]) if len(raw) <= 6 else MAX_PORT + 1
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_PORT:
        raise UsageError(f"invalid {what} {quoted(text)}: must be from {low} to 65535")
    return value


def parse_port_spec(text: str) -> list[int]:
    """``22,80,8000-8100`` -> sorted unique ports. Rejects reversed ranges and ports outside 1-65535."""
    raw = str(text).strip()
    if not raw:
        raise UsageError("empty port list: expected something like 22,80,8000-8100")
    ports: set[int] = set()
    for part in raw.split(","):
        part = part.strip()
        if not part:
            raise UsageError(f"invalid port list {quoted(text)}: empty item")
        if "-" in part:
            lo_s, _, hi_s = part.partition("-")
            lo = parse_port(lo_s, what="port in range")
            hi = parse_port(hi_s, what="port in range")
            if lo > hi:
                raise UsageError(f"invalid port range {quoted(part)}: {lo} is above {hi} (write {hi}-{lo})")
            ports.update(range(lo, hi + 1))
        else:
            ports.add(parse_port(part))
    return sorted(ports)


def parse_range(text: str) -> tuple[int, int]:
    """A named IANA range (``well-known``, ``registered``, ``dynamic``) or ``LO-HI``."""
    raw = str(text).strip().lower()
    for r in PortRange:
        if raw == r.value or raw == r.name.lower():
            return r.bounds
    if raw in ("wellknown", "well_known"):
        return PortRange.WELL_KNOWN.bounds
    if "-" in raw:
        lo_s, _, hi_s = raw.partition("-")
        lo = parse_port(lo_s, what="range start")
        hi = parse_port(hi_s, what="range end")
        if lo > hi:
            raise UsageError(f"invalid range {quoted(text)}: {lo} is above {hi}")
        return lo, hi
    raise UsageError(f"invalid range {quoted(text)}: expected well-known, registered, dynamic or LO-HI")


def parse_range_name(text: str) -> PortRange:
    raw = str(text).strip().lower().replace("_", "-")
    if raw == "wellknown":
        raw = "well-known"
    for r in PortRange:
        if raw == r.value:
            return r
    raise UsageError(f"unknown range {quoted(text)}: expected well-known, registered or dynamic")


def parse_host_port(text: str, default_host: str = "localhost") -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``v6addr`` is rejected without brackets, bare ``PORT`` = localhost."""
    raw = str(text).strip()
    if not raw:
        raise UsageError("empty address: expected HOST:PORT, [IPv6]:PORT or PORT")
    if raw.isdigit():
        return default_host, parse_port(raw)
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise UsageError(f"invalid address {quoted(text)}: missing ']'")
        host = raw[1:end]
        rest = raw[end + 1 :]
        if not rest.startswith(":"):
            raise UsageError(f"invalid address {quoted(text)}: expected [IPv6]:PORT")
        try:
            import ipaddress

            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            msg = f"invalid address {quoted(text)}: {quoted(host)} is not an IPv6 address"
            raise UsageError(msg) from None
        return host, parse_port(rest[1:])
    if raw.count(":") > 1:
        raise UsageError(f"invalid address {quoted(text)}: write IPv6 addresses as [ADDR]:PORT")
    host, sep, port_s = raw.rpartition(":")
    if not sep or not host:
        raise UsageError(f"invalid address {quoted(text)}: expected HOST:PORT, [IPv6]:PORT or PORT")
    check_hostname(host)
    return host, parse_port(port_s)


def check_hostname(host: str) -> str:
    """Reject what cannot be a host name or address (spaces, control characters, overlong labels)."""
    if not host or len(host) > 253:
        raise UsageError(f"invalid host {quoted(host)}")
    try:
        import ipaddress

        ipaddress.ip_address(host.split("%", 1)[0])
        return host
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    for label in labels:
        if not label or len(label) > 63 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in label):
            raise UsageError(f"invalid host {quoted(host)}")
    return host
