"""Port tests: TCP connect, banner, HTTP, TLS and UDP. Blocking, each bounded by its timeout.

Every network read has a deadline and a byte limit, so a server that never speaks or speaks
forever cannot hold a probe past its timeout or fill memory. Untrusted bytes (banners, headers,
certificate fields) are kept raw here and escaped by whoever shows them (:mod:`app.textsafe`).
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from app.errors import UsageError
from app.model import format_endpoint
from app.parsing import check_hostname
from app.textsafe import escape_bytes, printable

BANNER_LIMIT = 1024  # bytes kept of a banner
HEADER_LIMIT = 16384  # bytes read of an HTTP response head
DEFAULT_TIMEOUT = 1.0

OPEN = "open"
CLOSED = "closed"  # refused (TCP RST) or ICMP port unreachable (UDP)
FILTERED = "filtered"  # timed out: nothing answered
UNREACHABLE = "unreachable"  # no route to host / network unreachable
OPEN_FILTERED = "open|filtered"  # UDP without any reply: open and silent, or filtered
ERROR = "error"

_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}


class Cancelled(Exception):
    """Raised between steps when the caller's cancel event is set."""


def resolve(host: str, port: int, proto: str = "tcp") -> list[tuple[int, str]]:
    """Unique (family, ip) for ``host``, in resolver order. UsageError if it cannot be resolved."""
    check_hostname(host)
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        infos = socket.getaddrinfo(host, port, 0, kind)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot resolve host {printable(host, 80)!r}: {reason}") from None
    out: list[tuple[int, str]] = []
    for fam, _type, _proto, _canon, sockaddr in infos:
        if fam not in (socket.AF_INET, socket.AF_INET6):
            continue
        item = (int(fam), str(sockaddr[0]))
        if item not in out:
            out.append(item)
    if not out:
        raise UsageError(f"cannot resolve host {printable(host, 80)!r}: no IPv4 or IPv6 address")
    return out


def _classify(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return CLOSED
    if isinstance(exc, TimeoutError | socket.timeout):
        return FILTERED
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return UNREACHABLE
    return ERROR


def _connect(fam: int, ip: str, port: int, timeout: float) -> socket.socket:
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
    except BaseException:
        s.close()
        raise
    return s


# --- TCP connect --------------------------------------------------------------------------------


@dataclass
class Attempt:
    state: str
    latency_ms: float | None = None
    error: str = ""


@dataclass
class ConnectReport:
    """N connection attempts to one address."""

    address: str  # "127.0.0.1:8080" / "[::1]:8080"
    ip: str
    family: int
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def state(self) -> str:
        states = [a.state for a in self.attempts]
        if OPEN in states:
            return OPEN
        for s in (CLOSED, UNREACHABLE, FILTERED, ERROR):
            if s in states:
                return s
        return ERROR

    @property
    def latencies(self) -> list[float]:
        return [a.latency_ms for a in self.attempts if a.state == OPEN and a.latency_ms is not None]

    def summary(self) -> str:
        n = len(self.attempts)
        ok = len(self.latencies)
        line = f"tcp {self.address}  {self.state}  {ok}/{n} connected"
        lat = self.latencies
        if lat:
            line += f"  latency min {min(lat):.2f} / avg {sum(lat) / len(lat):.2f} / max {max(lat):.2f} ms"
        errors = sorted({a.error for a in self.attempts if a.state != OPEN and a.error})
        if errors:
            line += "  (" + "; ".join(errors) + ")"
        return line

    def as_dict(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "address": self.address,
            "ip": self.ip,
            "state": self.state,
            "attempts": [asdict(a) for a in self.attempts],
            "connected": len(lat),
            "latency_ms": ({"min": min(lat), "avg": sum(lat) / len(lat), "max": max(lat)} if lat else None),
        }


def tcp_connect(
    fam: int,
    ip: str,
    port: int,
    count: int = 3,
    timeout: float = DEFAULT_TIMEOUT,
    stop: Callable[[], bool] | None = None,
) -> ConnectReport:
    """``count`` connect attempts; ``stop()`` is asked before each one after the first (cancel)."""
    report = ConnectReport(format_endpoint(ip, port), ip, fam)
    for i in range(max(1, count)):
        if i and stop is not None and stop():
            raise Cancelled()
        start = time.perf_counter()
        try:
            s = _connect(fam, ip, port, timeout)
        except OSError as exc:
            state = _classify(exc)
            reason = {CLOSED: "refused", FILTERED: "timed out"}.get(state) or (exc.strerror or str(exc))
            report.attempts.append(Attempt(state, None, reason))
            continue
        elapsed = (time.perf_counter() - start) * 1000
        s.close()
        report.attempts.append(Attempt(OPEN, round(elapsed, 3)))
    return report


# --- reading with a deadline --------------------------------------------------------------------


def read_bounded(
    s: socket.socket,
    timeout: float,
    limit: int,
    until: bytes | None = None,
) -> tuple[bytes, str]:
    """Read at most ``limit`` bytes, for at most ``timeout`` seconds in total (not per read).

    Stops early at EOF, at ``limit``, or once ``until`` was seen. Returns (data, why) with why one of
    ``eof``, ``limit``, ``timeout``, ``done``, ``reset``."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(buf), "timeout"
        s.settimeout(left)
        try:
            chunk = s.recv(min(4096, limit - len(buf)))
        except TimeoutError:
            return bytes(buf), "timeout"
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
    ended: str = ""  # eof / limit / timeout / reset
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
    fam: int, ip: str, port: int, timeout: float = DEFAULT_TIMEOUT, limit: int = BANNER_LIMIT
) -> BannerReport:
    """Connect and keep what the server sends first (within ``timeout``, at most ``limit`` bytes)."""
    report = BannerReport(format_endpoint(ip, port))
    try:
        s = _connect(fam, ip, port, timeout)
    except OSError as exc:
        report.error = f"{_classify(exc)}: {exc.strerror or exc}"
        return report
    with s:
        report.data, report.ended = read_bounded(s, timeout, limit)
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
    return format_endpoint(host, port) if ":" in host else f"{host}:{port}"


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
    fam: int,
    ip: str,
    port: int,
    host: str,
    timeout: float = DEFAULT_TIMEOUT,
    use_tls: bool = False,
) -> HttpReport:
    """``GET /`` (HTTP/1.0, Connection: close): status line, Server header, redirect Location."""
    scheme = "https" if use_tls else "http"
    report = HttpReport(format_endpoint(ip, port), f"{scheme}://{_host_header(host, port)}/")
    try:
        raw = _connect(fam, ip, port, timeout)
    except OSError as exc:
        report.error = f"{_classify(exc)}: {exc.strerror or exc}"
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


def _decode_der(der: bytes) -> dict[str, Any]:
    """Decode a certificate the way ``getpeercert()`` would, without trusting it."""
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None or not der:
        return {}
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(ssl.DER_cert_to_PEM_cert(der))
        return dict(decode(path))
    except Exception:  # an undecodable certificate: report the handshake without details
        return {}
    finally:
        os.unlink(path)


def tls(
    fam: int, ip: str, port: int, host: str, timeout: float = DEFAULT_TIMEOUT, cafile: str | None = None
) -> TlsReport:
    """Handshake; protocol, cipher, subject, issuer, expiry. An untrusted chain is reported, not fatal."""
    report = TlsReport(format_endpoint(ip, port))
    sni = _sni(host)
    # First: a verifying handshake (system CAs, or cafile). If that fails on the certificate,
    # a second, unverified handshake still reports what the server presents.
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = sni is not None or cafile is not None
    cert: dict[str, Any] = {}
    try:
        raw = _connect(fam, ip, port, timeout)
    except OSError as exc:
        report.error = f"{_classify(exc)}: {exc.strerror or exc}"
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
            raw = _connect(fam, ip, port, timeout)
            with _unverified_context().wrap_socket(raw, server_hostname=sni) as s:
                report.handshake = True
                report.protocol, report.cipher = s.version() or "", (s.cipher() or ("",))[0]
                cert = _decode_der(s.getpeercert(binary_form=True) or b"")
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
    state: str = ERROR
    reply: bytes = b""
    error: str = ""

    def summary(self) -> str:
        line = f"udp {self.address}  {self.state}"
        if self.state == OPEN:
            line += f"  reply {len(self.reply)} bytes: {escape_bytes(self.reply, 200)}"
        elif self.state == CLOSED:
            line += "  (ICMP port unreachable)"
        elif self.state == OPEN_FILTERED:
            line += "  (no reply)"
        if self.error:
            line += f"  ({self.error})"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "state": self.state,
            "reply_bytes": len(self.reply),
            "reply": escape_bytes(self.reply) if self.reply else None,
            "error": self.error or None,
        }


def udp(
    fam: int, ip: str, port: int, timeout: float = DEFAULT_TIMEOUT, payload: bytes = b"portscope\r\n"
) -> UdpReport:
    """Send one datagram: a reply means open, ICMP port unreachable closed, silence open|filtered."""
    report = UdpReport(format_endpoint(ip, port))
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        try:
            s.connect((ip, port))  # connected, so ICMP errors are reported on this socket
            s.send(payload)
            s.settimeout(timeout)
            report.reply = s.recv(BANNER_LIMIT)
            report.state = OPEN
        except ConnectionRefusedError:
            report.state = CLOSED
        except TimeoutError:
            report.state = OPEN_FILTERED
        except OSError as exc:
            report.state = _classify(exc)
            report.error = exc.strerror or str(exc)
    return report


# --- a whole test run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TestPlan:
    host: str
    port: int
    udp: bool = False
    count: int = 3
    timeout: float = DEFAULT_TIMEOUT
    banner: bool = False
    http: bool = False
    tls: bool = False

    __test__ = False  # not a pytest class


@dataclass
class TestOutcome:
    """Everything one run found. ``state`` decides the exit code: open -> 0, anything else -> 1."""

    plan: TestPlan
    addresses: list[str] = field(default_factory=list)
    connect: list[ConnectReport] = field(default_factory=list)
    udp: list[UdpReport] = field(default_factory=list)
    banner: BannerReport | None = None
    http: HttpReport | None = None
    tls: TlsReport | None = None

    __test__ = False

    @property
    def state(self) -> str:
        states = [r.state for r in self.connect] + [r.state for r in self.udp]
        for s in (OPEN, OPEN_FILTERED, FILTERED, CLOSED, UNREACHABLE):
            if s in states:
                return s
        return ERROR

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    def as_dict(self) -> dict[str, Any]:
        p = self.plan
        return {
            "target": {"host": p.host, "port": p.port, "proto": "udp" if p.udp else "tcp"},
            "addresses": self.addresses,
            "state": self.state,
            "open": self.is_open,
            "tcp": [r.as_dict() for r in self.connect] if not p.udp else None,
            "udp": [r.as_dict() for r in self.udp] if p.udp else None,
            "banner": self.banner.as_dict() if self.banner else None,
            "http": self.http.as_dict() if self.http else None,
            "tls": self.tls.as_dict() if self.tls else None,
        }


Report = ConnectReport | UdpReport | BannerReport | HttpReport | TlsReport


def run_plan(
    plan: TestPlan, cancel: threading.Event | Callable[[], bool] | None = None
) -> Iterator[Report | TestOutcome]:
    """Run ``plan`` step by step, yielding each report as it completes, then the TestOutcome.

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
    out = TestOutcome(plan, [format_endpoint(ip, plan.port) for _, ip in addrs])
    if plan.udp:
        for fam, ip in addrs:
            check()
            u = udp(fam, ip, plan.port, plan.timeout)
            out.udp.append(u)
            yield u
        yield out
        return
    for fam, ip in addrs:
        check()
        r = tcp_connect(fam, ip, plan.port, plan.count, plan.timeout, stop=stopped)
        out.connect.append(r)
        yield r
    target = next((r for r in out.connect if r.state == OPEN), None)
    if target is not None:
        fam, ip = target.family, target.ip
        use_tls = plan.tls or plan.port in (443, 8443)
        if plan.banner:
            check()
            out.banner = banner(fam, ip, plan.port, plan.timeout)
            yield out.banner
        if use_tls:
            check()
            out.tls = tls(fam, ip, plan.port, plan.host, plan.timeout)
            yield out.tls
        if plan.http:
            check()
            https = out.tls is not None and out.tls.handshake
            out.http = http(fam, ip, plan.port, plan.host, plan.timeout, use_tls=https)
            yield out.http
    yield out
