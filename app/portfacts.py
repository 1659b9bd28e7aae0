"""Facts about one port, read from this machine for ``explain``: IPV6_V6ONLY of its IPv6 sockets
(the unit or container of its holders comes from :mod:`app.service`), interface addresses and their
scope, ``localhost`` as clients resolve it, bind tests, the nearest free ports, who held it last
(a ``watch --log`` file or the dashboard's events), and bounded live tests from here.

Plain data and blocking calls, no presentation: :mod:`app.explain` turns these into findings.
Strings stay raw here; whoever shows them escapes them.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import stat
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from app.errors import UsageError
from app.model import Family, Sock, format_endpoint
from app.textsafe import printable

MAX_TARGETS = 8  # addresses tested per run (they are tested in parallel)
HISTORY_LINE_LIMIT = 1 << 20  # longer NDJSON lines are skipped
NEAREST = 3
NEAREST_ATTEMPTS = 400  # bind tests when looking for the nearest free ports
LOOPBACK = {Family.IPV4: "127.0.0.1", Family.IPV6: "::1"}


def p(text: object, limit: int = 200) -> str:
    """Escaped, cut text of anything from the system or a file."""
    return printable(str(text), limit)


# ----------------------------------------------------------------------------- who holds it


# ----------------------------------------------------------------------------- sysctl


def read_sysctl(name: str) -> str | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/"), encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


# ----------------------------------------------------------------------------- addresses


def address_scope(ip: str) -> str:
    """public / private / loopback / link-local / shared (CGNAT) / special-purpose."""
    try:
        a = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    if a.is_loopback:
        return "loopback"
    if a.is_link_local:
        return "link-local"
    if isinstance(a, ipaddress.IPv4Address):
        if a in ipaddress.ip_network("100.64.0.0/10"):
            return "shared (carrier-grade NAT)"
        if any(a in ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")):
            return "private"
    elif a in ipaddress.ip_network("fc00::/7"):
        return "private (unique local)"
    if a.is_global:
        return "public"
    return "special-purpose"


@dataclass(frozen=True, slots=True)
class IfAddr:
    interface: str
    family: Family
    address: str
    loopback: bool
    up: bool


def interface_addresses() -> list[IfAddr]:
    from app.interfaces import list_interfaces

    out: list[IfAddr] = []
    try:
        ifaces = list_interfaces()
    except (OSError, RuntimeError):
        return out
    for iface in ifaces:
        for a in iface.addresses:
            fam = Family.IPV4 if a.family == "ipv4" else Family.IPV6
            out.append(IfAddr(iface.name, fam, a.address.split("%", 1)[0], iface.loopback, iface.is_up))
    return out


def _unmapped(ip: str) -> tuple[Family, str]:
    """The family and address a socket address stands for (``::ffff:1.2.3.4`` is IPv4)."""
    try:
        a = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return (Family.IPV6 if ":" in ip else Family.IPV4), ip
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return Family.IPV4, str(a.ipv4_mapped)
    return (Family.IPV4 if a.version == 4 else Family.IPV6), str(a)


@dataclass
class Bind:
    """One listener's bind, interpreted."""

    sock: Sock
    family: Family
    address: str
    wildcard: bool
    loopback: bool
    v6only: bool | None = None  # for an IPv6 wildcard: None = unknown
    v6only_source: str = ""

    @property
    def serves_v4(self) -> bool:
        return self.family is Family.IPV4 or (self.wildcard and self.v6only is False)

    @property
    def serves_v6(self) -> bool:
        return self.family is Family.IPV6

    def serves(self, fam: Family, ip: str) -> bool:
        """Would a connection to ``ip`` reach this listener (by address; not the firewall)?"""
        if fam is Family.IPV4:
            if self.family is Family.IPV6:
                return self.wildcard and self.v6only is False
            return self.wildcard or self.address == ip
        return self.family is Family.IPV6 and (self.wildcard or self.address == ip)


def interpret(sock: Sock, v6: list[tuple[str, int, bool]] | None, bindv6only: str | None) -> Bind:
    fam, addr = _unmapped(sock.laddr.ip)
    wildcard = addr in ("0.0.0.0", "::")
    loop = address_scope(addr) == "loopback"
    b = Bind(sock, fam, addr, wildcard, loop)
    if sock.family is Family.IPV6 and wildcard:
        hits = [flag for ip, inode, flag in (v6 or []) if (sock.inode and inode == sock.inode)]
        if not hits and v6 is not None:
            hits = [flag for ip, _inode, flag in v6 if ip == "::"]
            hits = hits[:1] if len(set(hits)) == 1 else []
        if hits:
            b.v6only, b.v6only_source = hits[0], "read from the socket with sock_diag"
        elif bindv6only in ("0", "1"):
            b.v6only = bindv6only == "1"
            b.v6only_source = f"assumed from net.ipv6.bindv6only={bindv6only}: the socket could not be read"
    return b


# ----------------------------------------------------------------------------- localhost


def resolve_localhost() -> list[tuple[Family, str]]:
    """``localhost`` as a client resolves it: getaddrinfo, in its order (RFC 6724 sorting of
    /etc/hosts or nss-myhostname answers)."""
    try:
        infos = socket.getaddrinfo("localhost", None, 0, socket.SOCK_STREAM)
    except (socket.gaierror, OSError, UnicodeError):
        return []
    out: list[tuple[Family, str]] = []
    for fam, _t, _p, _c, sa in infos:
        if fam not in (socket.AF_INET, socket.AF_INET6):
            continue
        item = (Family.from_af(fam), str(sa[0]).split("%", 1)[0])
        if item not in out:
            out.append(item)
    return out


def hosts_lines(path: str = "/etc/hosts", limit: int = 10) -> list[str]:
    """The lines of the hosts file that name ``localhost`` (raw)."""
    out: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                body = line.split("#", 1)[0].split()
                if len(body) >= 2 and "localhost" in (n.lower() for n in body[1:]):
                    out.append(line.rstrip("\n"))
                    if len(out) >= limit:
                        break
    except OSError:
        pass
    return out


# ----------------------------------------------------------------------------- binding


def bind_error(host: str, port: int, proto: str, reuse: bool = False) -> str | None:
    """Try to bind (TCP: and listen on) ``host:port``; None when it works, else the reason. The
    socket is closed at once. ``::`` is tried dual-stack (IPV6_V6ONLY off)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        with socket.socket(fam, kind) as s:
            if reuse:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((host, port))
            if proto == "tcp":
                s.listen(1)
    except OSError as exc:
        if exc.errno == errno.EACCES:
            start = read_sysctl("net.ipv4.ip_unprivileged_port_start")
            return f"permission denied: ports below {start or 1024} need root or CAP_NET_BIND_SERVICE"
        if exc.errno == errno.EAFNOSUPPORT:
            return "IPv6 is not available"
        return exc.strerror or str(exc)
    return None


def nearest_free(port: int, proto: str, count: int = NEAREST) -> list[int]:
    """The ``count`` ports nearest to ``port`` that bind now on 0.0.0.0 and :: (bind-tested with
    :func:`app.freeport.can_bind`; below 1024 only when ``port`` is)."""
    from app.freeport import can_bind

    v6 = socket.has_ipv6 and bind_error("::", 0, proto) is None
    low = 1 if port < 1024 else 1024
    found: list[int] = []
    attempts = 0
    for d in range(1, 65536):
        for q in (port - d, port + d):
            if not low <= q <= 65535:
                continue
            attempts += 1
            if can_bind(q, proto, "0.0.0.0") and (not v6 or can_bind(q, proto, "::")):
                found.append(q)
        if len(found) >= count or attempts >= NEAREST_ATTEMPTS or (port - d < low and port + d > 65535):
            break
    return found[:count]


# ----------------------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class Sighting:
    """One event about the port, from a ``watch --log`` file or the dashboard."""

    time: float
    event: str
    local: str
    state: str
    pid: int | None
    name: str
    user: str
    command: str
    source: str


def read_history(path: str, port: int, proto: str) -> tuple[list[Sighting], int, int]:
    """Events for ``port``/``proto`` in a ``watch --log`` NDJSON file: (sightings, lines read,
    lines skipped). UsageError when the file cannot be read (missing, not a regular file)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsageError(f"cannot read history file {p(path, 80)!r}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"cannot read history file {p(path, 80)!r}: not a regular file")
    found: list[Sighting] = []
    read = skipped = 0
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            while True:
                line = f.readline(HISTORY_LINE_LIMIT)
                if not line:
                    break
                if not line.endswith("\n") and len(line) >= HISTORY_LINE_LIMIT:
                    skipped += 1
                    while line and not line.endswith("\n"):  # the rest of the long line
                        line = f.readline(HISTORY_LINE_LIMIT)
                    continue
                if not line.strip():
                    continue
                read += 1
                s = _sighting(line, port, proto, path)
                if s is None:
                    continue
                if s is _BAD:
                    skipped += 1
                    continue
                found.append(s)
    except OSError as exc:
        raise UsageError(f"cannot read history file {p(path, 80)!r}: {exc.strerror or exc}") from None
    found.sort(key=lambda s: s.time)
    return found, read, skipped


_BAD = Sighting(0.0, "", "", "", None, "", "", "", "")


def _sighting(line: str, port: int, proto: str, source: str) -> Sighting | None:
    try:
        obj = json.loads(line)
        sock = obj["socket"]
        local = sock["local"]
        if int(local["port"]) != port or sock.get("proto") != proto:
            return None
        proc = sock.get("process") or {}
        cmd = proc.get("cmdline") or []
        return Sighting(
            time=float(obj.get("time", 0.0)),
            event=str(obj.get("event", "")),
            local=format_endpoint(str(local.get("ip", "")), port),
            state=str(sock.get("state", "")),
            pid=int(sock["pid"]) if isinstance(sock.get("pid"), int) else None,
            name=str(proc.get("name") or ""),
            user=str(proc.get("user") or ""),
            command=" ".join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd),
            source=source,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return _BAD


def sightings_from_events(events: Iterable[Any], port: int, proto: str) -> list[Sighting]:
    """The dashboard's :class:`app.events.Event` objects for this port, as sightings."""
    out: list[Sighting] = []
    for e in events:
        s = getattr(e, "sock", None)
        if s is None or s.laddr.port != port or s.proto.value != proto:
            continue
        owner = getattr(e, "owner", None)
        out.append(
            Sighting(
                time=float(e.time),
                event=str(getattr(e.kind, "value", e.kind)),
                local=str(s.laddr),
                state=s.status,
                pid=s.pid,
                name=owner.name if owner else "",
                user=owner.username if owner else "",
                command=owner.command if owner else "",
                source="this dashboard session",
            )
        )
    return sorted(out, key=lambda s: s.time)


# ----------------------------------------------------------------------------- the live test


@dataclass(frozen=True, slots=True)
class Target:
    family: Family
    ip: str
    why: str  # "bound address" / "loopback for 0.0.0.0" / "interface address (eth0)"


@dataclass(frozen=True, slots=True)
class TestResult:
    target: Target
    state: str
    latency_ms: float | None
    error: str

    __test__ = False


def connect_targets(binds: Sequence[Bind], addrs: Sequence[IfAddr]) -> list[Target]:
    out: list[Target] = []

    def add(t: Target) -> None:
        if all(t.ip != o.ip for o in out) and len(out) < MAX_TARGETS:
            out.append(t)

    for b in binds:
        if not b.wildcard:
            add(Target(b.family, b.address, "the bound address"))
    for b in binds:
        if b.wildcard:
            add(Target(b.family, LOOPBACK[b.family], f"loopback, for {b.address}"))
            if b.serves_v4 and b.family is Family.IPV6:
                add(Target(Family.IPV4, "127.0.0.1", "IPv4 loopback, for dual-stack ::"))
    for b in binds:
        if not b.wildcard:
            continue
        for a in addrs:
            fam_ok = a.family is b.family or (a.family is Family.IPV4 and b.serves_v4)
            if fam_ok and not a.loopback and a.up and address_scope(a.address) != "link-local":
                add(Target(a.family, a.address, f"address of {a.interface}"))
    return out


def run_tests(targets: Sequence[Target], port: int, proto: str, timeout: float) -> list[TestResult]:
    """Test every target in parallel, each bounded by ``timeout`` (the one classifier of
    :mod:`app.outcome` says what each result means)."""
    from app import probe
    from app.netaddr import Address
    from app.outcome import ConnectState

    def one(t: Target) -> TestResult:
        addr = Address(int(t.family.af), t.ip)
        if proto == "tcp":
            r = probe.tcp_connect(addr, port, count=1, timeout=timeout)
            lat = r.latencies[0] if r.latencies else None
            errors = sorted({a.error for a in r.attempts if a.error})
            return TestResult(t, r.state, lat, "; ".join(errors))
        start = time.perf_counter()
        u = probe.udp(addr, port, timeout=timeout, payload=b"")
        lat = round((time.perf_counter() - start) * 1000, 3) if u.state == ConnectState.OPEN else None
        return TestResult(t, u.state, lat, u.reason)

    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(len(targets), MAX_TARGETS)) as pool:
        return list(pool.map(one, targets))


def test_ok(r: TestResult, proto: str) -> bool:
    """TCP: connected. UDP: not refused (a datagram to a silent server gets no reply: that is
    normal, so ``open|filtered`` counts as reached when something listens)."""
    from app.outcome import ConnectState

    if proto == "tcp":
        return r.state == ConnectState.OPEN
    return r.state in (ConnectState.OPEN, ConnectState.OPEN_FILTERED)
