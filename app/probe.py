"""Port tests: TCP connect, banner, HTTP, TLS and UDP. Blocking, each bounded by its timeout.

Every network read has a deadline and a byte limit, so a server that never speaks or speaks
forever cannot hold a probe past its timeout or fill memory. Untrusted bytes (banners, headers,
certificate fields) are kept raw here and escaped by whoever shows them (:mod:`app.textsafe`).
States come from the one classifier in :mod:`app.outcome`; nothing is written to disk (a
certificate is decoded in memory, :mod:`app.certinfo`).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from app.certinfo import decode_der
from app.model import format_endpoint
from app.netaddr import Address, resolve
from app.outcome import ConnectState, SelfConnected, Verdict, classify, classify_exception, combine
from app.textsafe import escape_bytes, printable
from app.udprequests import request_for

BANNER_LIMIT = 1024  # bytes kept of a banner
BANNER_PAUSE = 0.2  # seconds of silence after the first bytes that end a banner
HEADER_LIMIT = 16384  # bytes read of an HTTP response head
DEFAULT_TIMEOUT = 1.0


class Cancelled(Exception):
    """Raised between steps when the caller's cancel event is set."""


def is_self_connect(s: socket.socket) -> bool:
    """The connected socket's peer is itself (TCP simultaneous open: nothing listens there)."""
    try:
        return bool(s.getsockname()[:2] == s.getpeername()[:2])
    except OSError:
        return False


def _connect(addr: Address, port: int, timeout: float) -> socket.socket:
    s = socket.socket(addr.family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(addr.sockaddr(port))
        if is_self_connect(s):
            raise SelfConnected(0, "connected to itself: nothing listens")
    except BaseException:
        s.close()
        raise
    return s


def _failure(exc: BaseException) -> str:
    """``closed: refused``: a failed connect as one line, from the classifier."""
    v = classify_exception("tcp", exc)
    return f"{v.state}: {v.reason}"


def local_targets(ip: str, port: int, v6only: bool | None = None, proto: str = "tcp") -> list[str]:
    """What to test for a socket bound to ``ip:port`` on this machine, as HOST:PORT texts.

    A wildcard bind is reached through loopback: ``0.0.0.0`` (and ``*``) -> 127.0.0.1 only; ``::``
    -> 127.0.0.1 and ::1, or ::1 alone when the socket is IPv6-only. ``v6only`` None: ask the kernel
    (:func:`app.v6only.listener_v6only`); unknown counts as dual-stack, the kernel's default. A
    link-local address gets the scope of the one interface that carries it (``fe80::1%eth0``): the
    socket tables do not name it, and without it the address cannot be reached. Any other address
    is tested as it is."""
    if ip in ("0.0.0.0", "*", ""):
        return [format_endpoint("127.0.0.1", port)]
    if ip == "::":
        if v6only is None:
            from app.v6only import listener_v6only

            v6only = listener_v6only(port, proto)
        six = format_endpoint("::1", port)
        return [six] if v6only else [format_endpoint("127.0.0.1", port), six]
    return [format_endpoint(_with_scope(ip), port)]


def _with_scope(ip: str) -> str:
    import ipaddress

    try:
        if "%" in ip or not ipaddress.ip_address(ip).is_link_local or ":" not in ip:
            return ip
        from app.exposure import interface_addresses

        names = sorted(set(interface_addresses().get(ip, [])))
    except Exception:  # not an address, or no interface list: as it is
        return ip
    return f"{ip}%{names[0]}" if len(names) == 1 else ip


# --- TCP connect --------------------------------------------------------------------------------


@dataclass
class Attempt:
    state: str
    latency_ms: float | None = None
    error: str = ""


@dataclass
class ConnectReport:
    """N connection attempts to one address."""

    address: str  # "127.0.0.1:8080" / "[::1]:8080" / "[fe80::1%lo]:8080"
    target: Address
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def ip(self) -> str:
        return self.target.ip

    @property
    def family(self) -> int:
        return self.target.family

    @property
    def state(self) -> ConnectState:
        return combine(a.state for a in self.attempts)

    @property
    def latencies(self) -> list[float]:
        return [a.latency_ms for a in self.attempts if a.latency_ms is not None and a.state == "open"]

    def summary(self) -> str:
        n = len(self.attempts)
        ok = len(self.latencies)
        line = f"tcp {self.address}  {self.state}  {ok}/{n} connected"
        lat = self.latencies
        if lat:
            line += f"  latency min {min(lat):.2f} / avg {sum(lat) / len(lat):.2f} / max {max(lat):.2f} ms"
        errors = sorted({a.error for a in self.attempts if a.state != ConnectState.OPEN and a.error})
        if errors:
            line += "  (" + "; ".join(errors) + ")"
        return line

    def as_dict(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "address": self.address,
            "ip": self.ip,
            "state": str(self.state),
            "attempts": [asdict(a) for a in self.attempts],
            "connected": len(lat),
            "latency_ms": ({"min": min(lat), "avg": sum(lat) / len(lat), "max": max(lat)} if lat else None),
        }


def tcp_connect(
    addr: Address,
    port: int,
    count: int = 3,
    timeout: float = DEFAULT_TIMEOUT,
    stop: Callable[[], bool] | None = None,
) -> ConnectReport:
    """``count`` connect attempts; ``stop()`` is asked before each one after the first (cancel)."""
    report = ConnectReport(addr.endpoint(port), addr)
    for i in range(max(1, count)):
        if i and stop is not None and stop():
            raise Cancelled()
        start = time.perf_counter()
        try:
            s = _connect(addr, port, timeout)
        except OSError as exc:
            v = classify_exception("tcp", exc)
            report.attempts.append(Attempt(str(v.state), None, v.reason))
            continue
        elapsed = (time.perf_counter() - start) * 1000
        s.close()
        report.attempts.append(Attempt(str(ConnectState.OPEN), round(elapsed, 3)))
    return report


# --- reading with a deadline --------------------------------------------------------------------


def read_bounded(
    s: socket.socket,
    timeout: float,
    limit: int,
    until: bytes | None = None,
    *,
    pause: float | None = None,
) -> tuple[bytes, str]:
    """Read at most ``limit`` bytes, for at most ``timeout`` seconds in total (not per read).

    Stops early at EOF, at ``limit``, once ``until`` was seen, or (with ``pause``) when the peer has
    sent something and then nothing for ``pause`` seconds. Returns (data, why) with why one of
    ``eof``, ``limit``, ``timeout``, ``done`` (``until`` seen), ``pause``, ``reset``."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(buf), "timeout"
        quiet = buf and pause is not None and pause < left
        s.settimeout(pause if quiet else left)
        try:
            chunk = s.recv(min(4096, limit - len(buf)))
        except TimeoutError:
            return bytes(buf), "pause" if quiet else "timeout"
        except ConnectionResetError:
            return bytes(buf), "reset"
        if not chunk:
            return bytes(buf), "eof"
        buf += chunk
        if until is not None and until in buf:
            return bytes(buf), "done"
    return bytes(buf[:limit]), "limit"


# --- banner ---------------------------------------------------------------------------------------


@dataclass
class BannerReport:
    address: str
    data: bytes = b""
    # line (the first line came) / pause (bytes came, then silence) / eof / limit / timeout / reset
    ended: str = ""
    error: str = ""

    def summary(self) -> str:
        if self.error:
            return f"banner {self.address}  error: {self.error}"
        if not self.data:
            return f"banner {self.address}  (nothing sent; {self.ended})"
        more = " (truncated)" if self.ended == "limit" else ""
        return f"banner {self.address}  {len(self.data)} bytes{more}: {escape_bytes(self.data, 400)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "bytes": len(self.data),
            "text": escape_bytes(self.data),
            "ended": self.ended,
            "error": self.error or None,
        }


def banner(
    addr: Address,
    port: int,
    timeout: float = DEFAULT_TIMEOUT,
    limit: int = BANNER_LIMIT,
    pause: float = BANNER_PAUSE,
) -> BannerReport:
    """Connect and keep what the server sends first: up to the end of its first line, or until it
    pauses for ``pause`` seconds after sending something (within ``timeout``, at most ``limit`` bytes)."""
    report = BannerReport(addr.endpoint(port))
    try:
        s = _connect(addr, port, timeout)
    except OSError as exc:
        report.error = _failure(exc)
        return report
    with s:
        data, why = read_bounded(s, timeout, limit, until=b"\n", pause=pause)
        report.data, report.ended = data, "line" if why == "done" else why
    return report


# --- HTTP -----------------------------------------------------------------------------------------


@dataclass
class HttpReport:
    address: str
    url: str
    status_line: str = ""
    status: int | None = None
    server: str = ""
    location: str = ""
    error: str = ""

    def summary(self) -> str:
        if self.error:
            return f"http {self.url}  error: {self.error}"
        line = f"http {self.url}  {printable(self.status_line, 200)}"
        if self.server:
            line += f"  server: {printable(self.server, 120)}"
        if self.location:
            line += f"  -> {printable(self.location, 300)}"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status_line": self.status_line or None,
            "status": self.status,
            "server": self.server or None,
            "location": self.location or None,
            "error": self.error or None,
        }


def _host_header(host: str, port: int) -> str:
    """The Host header (and URL) for ``host``: an IPv6 scope is local to this machine, left out."""
    return format_endpoint(host.split("%", 1)[0], port) if ":" in host else f"{host}:{port}"


def parse_http_head(head: bytes) -> tuple[str, int | None, dict[str, str]]:
    text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    status_line = lines[0].strip() if lines else ""
    status: int | None = None
    parts = status_line.split(" ", 2)
    if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
        status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return status_line, status, headers


def http(
    addr: Address,
    port: int,
    host: str,
    timeout: float = DEFAULT_TIMEOUT,
    use_tls: bool = False,
) -> HttpReport:
    """``GET /`` (HTTP/1.0, Connection: close): status line, Server header, redirect Location."""
    scheme = "https" if use_tls else "http"
    report = HttpReport(addr.endpoint(port), f"{scheme}://{_host_header(host, port)}/")
    try:
        raw = _connect(addr, port, timeout)
    except OSError as exc:
        report.error = _failure(exc)
        return report
    try:
        s: socket.socket = raw
        if use_tls:
            ctx = _unverified_context()
            s = ctx.wrap_socket(raw, server_hostname=_sni(host))
        with s:
            request = (
                f"GET / HTTP/1.0\r\nHost: {_host_header(host, port)}\r\nUser-Agent: portscope\r\n"
                "Accept: */*\r\nConnection: close\r\n\r\n"
            )
            s.settimeout(timeout)
            s.sendall(request.encode("ascii", "replace"))
            head, _why = read_bounded(s, timeout, HEADER_LIMIT, until=b"\r\n\r\n")
    except (OSError, ssl.SSLError) as exc:
        report.error = str(exc) or type(exc).__name__
        raw.close()
        return report
    if not head:
        report.error = "no response"
        return report
    report.status_line, report.status, headers = parse_http_head(head)
    if report.status is None:
        report.error = f"not HTTP: {escape_bytes(head[:80])}"
    report.server = headers.get("server", "")
    report.location = headers.get("location", "")
    return report


# --- TLS ------------------------------------------------------------------------------------------


@dataclass
class TlsReport:
    address: str
    handshake: bool = False
    protocol: str = ""
    cipher: str = ""
    verified: bool = False
    verify_error: str = ""
    subject: str = ""
    issuer: str = ""
    not_after: str = ""
    days_left: int | None = None
    error: str = ""

    def summary(self) -> str:
        if not self.handshake:
            return f"tls {self.address}  handshake failed: {self.error}"
        trust = "verified" if self.verified else f"UNVERIFIED ({self.verify_error})"
        line = f"tls {self.address}  {self.protocol} {self.cipher}  {trust}"
        if self.subject:
            line += f"  subject: {printable(self.subject, 200)}"
        if self.issuer:
            line += f"  issuer: {printable(self.issuer, 200)}"
        if self.days_left is not None:
            line += f"  expires in {self.days_left} days ({self.not_after})"
        return line

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("verify_error", "error", "subject", "issuer", "not_after", "protocol", "cipher"):
            d[k] = d[k] or None
        return d


def _sni(host: str) -> str | None:
    try:
        import ipaddress

        ipaddress.ip_address(host.split("%", 1)[0])
        return None  # no SNI for addresses
    except ValueError:
        return host


def _unverified_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _name(rdns: Any) -> str:
    parts = []
    for rdn in rdns or ():
        for key, value in rdn:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def tls(
    addr: Address,
    port: int,
    host: str,
    timeout: float = DEFAULT_TIMEOUT,
    cafile: str | None = None,
) -> TlsReport:
    """Handshake; protocol, cipher, subject, issuer, expiry. An untrusted chain is reported, not fatal."""
    report = TlsReport(addr.endpoint(port))
    sni = _sni(host)
    # First: a verifying handshake (system CAs, or cafile). If that fails on the certificate,
    # a second, unverified handshake still reports what the server presents.
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = sni is not None or cafile is not None
    cert: dict[str, Any] = {}
    try:
        raw = _connect(addr, port, timeout)
    except OSError as exc:
        report.error = _failure(exc)
        return report
    try:
        with ctx.wrap_socket(raw, server_hostname=sni or (host if ctx.check_hostname else None)) as s:
            report.handshake, report.verified = True, True
            report.protocol, report.cipher = s.version() or "", (s.cipher() or ("",))[0]
            cert = dict(s.getpeercert() or {})
    except ssl.SSLCertVerificationError as exc:
        report.verify_error = exc.verify_message or str(exc)
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        report.error = str(exc) or type(exc).__name__
        return report
    if not report.verified:
        try:
            raw = _connect(addr, port, timeout)
            with _unverified_context().wrap_socket(raw, server_hostname=sni) as s:
                report.handshake = True
                report.protocol, report.cipher = s.version() or "", (s.cipher() or ("",))[0]
                cert = decode_der(s.getpeercert(binary_form=True) or b"")  # in memory, nothing written
        except (ssl.SSLError, OSError) as exc:
            report.error = str(exc) or type(exc).__name__
            return report
    report.subject = _name(cert.get("subject"))
    report.issuer = _name(cert.get("issuer"))
    if not report.subject and cert.get("subjectAltName"):
        report.subject = ", ".join(f"{k}:{v}" for k, v in cert["subjectAltName"])
    not_after = cert.get("notAfter")
    if not_after:
        report.not_after = str(not_after)
        try:
            expires = ssl.cert_time_to_seconds(str(not_after))
            report.days_left = int((expires - time.time()) // 86400)
        except ValueError:
            pass
    return report


# --- UDP ------------------------------------------------------------------------------------------


@dataclass
class UdpReport:
    address: str
    state: str = ConnectState.ERROR
    reason: str = ""
    service: str = ""  # the request sent: "dns", "ntp", or "" for a generic datagram
    reply: bytes = b""

    def summary(self) -> str:
        line = f"udp {self.address}  {self.state}"
        if self.service:
            line += f"  ({self.service} request)"
        if self.state == ConnectState.OPEN and self.reply:
            line += f"  reply {len(self.reply)} bytes: {escape_bytes(self.reply, 200)}"
        elif self.reason:
            line += f"  ({self.reason})"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "state": str(self.state),
            "reason": self.reason,
            "service": self.service or None,
            "reply_bytes": len(self.reply),
            "reply": escape_bytes(self.reply) if self.reply else None,
        }


def udp_bound_here(addr: Address, port: int) -> bool:
    """A socket on this machine is bound where ``addr:port`` goes (only asked of local addresses)."""
    from app.locallisteners import is_local_address, local_listeners

    return is_local_address(addr.ip) and port in local_listeners(addr.ip, {port}, "udp")


def udp(
    addr: Address,
    port: int,
    timeout: float = DEFAULT_TIMEOUT,
    payload: bytes | None = None,
    bound_here: Callable[[Address, int], bool] = udp_bound_here,
) -> UdpReport:
    """Send one datagram (a real request for DNS and NTP ports) and classify what comes back: a
    reply, ICMP port unreachable, or silence (see :mod:`app.outcome` for the rule)."""
    service, request = request_for(port) if payload is None else ("", payload)
    report = UdpReport(addr.endpoint(port), service=service)
    verdict: Verdict
    with socket.socket(addr.family, socket.SOCK_DGRAM) as s:
        try:
            s.connect(addr.sockaddr(port))  # connected, so ICMP errors are reported on this socket
            s.send(request)
            s.settimeout(timeout)
            report.reply = s.recv(BANNER_LIMIT)
            verdict = classify("udp")
        except TimeoutError:
            verdict = classify("udp", timed_out=True, bound_here=bound_here(addr, port))
        except OSError as exc:
            verdict = classify_exception("udp", exc)
    report.state, report.reason = verdict.state, verdict.reason
    return report


# --- a whole test run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbePlan:
    host: str
    port: int
    udp: bool = False
    count: int = 3
    timeout: float = DEFAULT_TIMEOUT
    banner: bool = False
    http: bool = False
    tls: bool = False


@dataclass
class ProbeOutcome:
    """Everything one run found. ``state`` decides the exit code: open -> 0, anything else -> 1."""

    plan: ProbePlan
    addresses: list[str] = field(default_factory=list)
    connect: list[ConnectReport] = field(default_factory=list)
    udp: list[UdpReport] = field(default_factory=list)
    banner: BannerReport | None = None
    http: HttpReport | None = None
    tls: TlsReport | None = None

    @property
    def state(self) -> ConnectState:
        return combine([r.state for r in self.connect] + [r.state for r in self.udp])

    @property
    def is_open(self) -> bool:
        return self.state == ConnectState.OPEN

    def as_dict(self) -> dict[str, Any]:
        p = self.plan
        return {
            "target": {"host": p.host, "port": p.port, "proto": "udp" if p.udp else "tcp"},
            "addresses": self.addresses,
            "state": str(self.state),
            "open": self.is_open,
            "tcp": [r.as_dict() for r in self.connect] if not p.udp else None,
            "udp": [r.as_dict() for r in self.udp] if p.udp else None,
            "banner": self.banner.as_dict() if self.banner else None,
            "http": self.http.as_dict() if self.http else None,
            "tls": self.tls.as_dict() if self.tls else None,
        }


Report = ConnectReport | UdpReport | BannerReport | HttpReport | TlsReport


def run_plan(
    plan: ProbePlan, cancel: threading.Event | Callable[[], bool] | None = None
) -> Iterator[Report | ProbeOutcome]:
    """Run ``plan`` step by step, yielding each report as it completes, then the ProbeOutcome.

    Resolution failures raise UsageError before anything is yielded. ``cancel`` (an Event or a
    callable) is checked between steps; when set, :class:`Cancelled` is raised."""

    def stopped() -> bool:
        if cancel is None:
            return False
        return cancel.is_set() if isinstance(cancel, threading.Event) else cancel()

    def check() -> None:
        if stopped():
            raise Cancelled()

    proto = "udp" if plan.udp else "tcp"
    addrs = resolve(plan.host, plan.port, proto)
    out = ProbeOutcome(plan, [a.endpoint(plan.port) for a in addrs])
    if plan.udp:
        for addr in addrs:
            check()
            u = udp(addr, plan.port, plan.timeout)
            out.udp.append(u)
            yield u
        yield out
        return
    for addr in addrs:
        check()
        r = tcp_connect(addr, plan.port, plan.count, plan.timeout, stop=stopped)
        out.connect.append(r)
        yield r
    target = next((r for r in out.connect if r.state == ConnectState.OPEN), None)
    if target is not None:
        addr = target.target
        use_tls = plan.tls or plan.port in (443, 8443)
        if plan.banner:
            check()
            out.banner = banner(addr, plan.port, plan.timeout)
            yield out.banner
        if use_tls:
            check()
            out.tls = tls(addr, plan.port, plan.host, plan.timeout)
            yield out.tls
        if plan.http:
            check()
            https = out.tls is not None and out.tls.handshake
            out.http = http(addr, plan.port, plan.host, plan.timeout, use_tls=https)
            yield out.http
    yield out
