"""Port tests against real servers on loopback: echo, HTTP, TLS (trustme), UDP, silent, endless."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trustme

from app import probe
from app.errors import UsageError
from app.netaddr import Address
from app.probe import ProbeOutcome, ProbePlan, run_plan
from tests.helpers import free_port, needs_ipv6, run_cli, tcp_server, wait_for

T = 0.5  # seconds: every test timeout
V4 = Address(socket.AF_INET, "127.0.0.1")


def outcome(plan: ProbePlan) -> ProbeOutcome:
    items = list(run_plan(plan))
    assert isinstance(items[-1], ProbeOutcome)
    return items[-1]


def echo(conn: socket.socket) -> None:
    conn.sendall(b"hello \x1b[31mfrom\x1b[0m echo\r\n")
    conn.settimeout(2)
    while data := conn.recv(4096):
        conn.sendall(data)


def silent(conn: socket.socket) -> None:
    conn.settimeout(3)
    while conn.recv(4096):
        pass


def endless(conn: socket.socket) -> None:
    chunk = b"x" * 65536
    conn.settimeout(3)
    while True:
        conn.sendall(chunk)


# --- TCP connect ------------------------------------------------------------------------------


def test_open_port_connects_n_times_with_latency() -> None:
    with tcp_server(echo) as port:
        out = outcome(ProbePlan("127.0.0.1", port, count=4, timeout=T))
    assert out.is_open and out.state == "open"
    [r] = out.connect
    assert [a.state for a in r.attempts] == ["open"] * 4
    assert len(r.latencies) == 4 and all(x >= 0 for x in r.latencies)
    assert "4/4 connected" in r.summary() and "latency min" in r.summary()


def test_closed_port_is_refused() -> None:
    out = outcome(ProbePlan("127.0.0.1", free_port(), count=2, timeout=T))
    assert out.state == "closed" and not out.is_open
    assert [a.error for a in out.connect[0].attempts] == ["refused", "refused"]


def test_unresolvable_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"cannot resolve host 'nohost\.invalid'"):
        list(run_plan(ProbePlan("nohost.invalid", 80, timeout=T)))


@needs_ipv6
def test_ipv6_loopback() -> None:
    with tcp_server(echo, "::1") as port:
        out = outcome(ProbePlan("::1", port, count=1, timeout=T, banner=True))
    assert out.is_open and out.addresses == [f"[::1]:{port}"]
    assert out.banner is not None and out.banner.data.startswith(b"hello")


# --- banner -------------------------------------------------------------------------------------


def test_banner_is_kept_raw_and_shown_escaped() -> None:
    with tcp_server(echo) as port:
        out = outcome(ProbePlan("127.0.0.1", port, count=1, timeout=T, banner=True))
    assert out.banner is not None
    assert out.banner.data == b"hello \x1b[31mfrom\x1b[0m echo\r\n"
    text = out.banner.summary()
    assert "\x1b" not in text and "\\x1b[31m" in text and "\\r\\n" in text


def test_silent_server_banner_ends_at_the_timeout() -> None:
    with tcp_server(silent) as port:
        b = probe.banner(V4, port, timeout=0.3)
    assert b.data == b"" and b.ended == "timeout"


def test_endless_server_banner_reads_a_bounded_number_of_bytes() -> None:
    with tcp_server(endless) as port:
        b = probe.banner(V4, port, timeout=0.5, limit=2048)
    assert len(b.data) == 2048 and b.ended == "limit"
    assert "(truncated)" in b.summary()


def test_read_bounded_stops_at_the_overall_deadline_for_a_trickle() -> None:
    def trickle(conn: socket.socket) -> None:
        conn.settimeout(3)
        for _ in range(100):
            conn.sendall(b".")
            threading.Event().wait(0.05)

    with tcp_server(trickle) as port, socket.create_connection(("127.0.0.1", port)) as s:
        data, why = probe.read_bounded(s, timeout=0.3, limit=10_000)
    assert why == "timeout" and 0 < len(data) < 100


# --- HTTP ---------------------------------------------------------------------------------------


class _Redirect(http.server.BaseHTTPRequestHandler):
    server_version = "ps-test-httpd/1.0"

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "http://127.0.0.1/elsewhere")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler], tls_ctx: ssl.SSLContext | None = None):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.block_on_close = False  # never wait at close for a handler a client keeps busy
    if tls_ctx is not None:
        # the handshake in the handler thread, not in accept(): a client that never speaks must not
        # stall the accept loop (and with it shutdown())
        srv.socket = tls_ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def test_http_status_server_and_redirect() -> None:
    with http_server(_Redirect) as port:
        out = outcome(ProbePlan("127.0.0.1", port, count=1, timeout=T, http=True))
    assert out.http is not None and out.http.error == ""
    assert out.http.status == 302 and out.http.status_line.startswith("HTTP/1.0 302")
    assert out.http.server.startswith("ps-test-httpd/1.0")
    assert out.http.location == "http://127.0.0.1/elsewhere"


def test_http_against_stdlib_http_server() -> None:
    with http_server(http.server.SimpleHTTPRequestHandler) as port:
        res = run_cli("test", f"127.0.0.1:{port}", "--http", "--count", "1", "--timeout", "1", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["http"]["status"] in (200, 404) and "SimpleHTTP" in data["http"]["server"]


def test_http_on_a_non_http_server_says_so() -> None:
    with tcp_server(echo) as port:
        h = probe.http(V4, port, "127.0.0.1", timeout=T)
    assert h.status is None and h.error.startswith("not HTTP")


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server_ctx() -> tuple[ssl.SSLContext, trustme.CA]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", common_name="ps-test.localhost")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    return ctx, ca


def test_tls_untrusted_cert_is_reported_unverified_with_details(tls_server_ctx) -> None:
    ctx, _ca = tls_server_ctx
    with http_server(_Redirect, ctx) as port:
        out = outcome(ProbePlan("127.0.0.1", port, count=1, timeout=1.0, tls=True, http=True))
    t = out.tls
    assert t is not None and t.handshake and not t.verified
    assert t.verify_error  # e.g. "unable to get local issuer certificate"
    assert t.protocol.startswith("TLS")
    assert "ps-test.localhost" in t.subject
    assert "trustme" in t.issuer.lower() or "Testing CA" in t.issuer
    assert t.days_left is not None and t.days_left > 300
    assert "UNVERIFIED" in t.summary()
    assert out.http is not None and out.http.status == 302 and out.http.url.startswith("https://")


def test_tls_trusted_with_cafile_is_verified(tls_server_ctx, tmp_path) -> None:
    ctx, ca = tls_server_ctx
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    with http_server(_Redirect, ctx) as port:
        t = probe.tls(V4, port, "127.0.0.1", timeout=1.0, cafile=str(cafile))
    assert t.handshake and t.verified, t.verify_error or t.error
    assert "ps-test.localhost" in t.subject


def test_tls_against_plain_server_fails_cleanly() -> None:
    with tcp_server(silent) as port:
        t = probe.tls(V4, port, "127.0.0.1", timeout=0.3)
    assert not t.handshake and t.error
    assert "handshake failed" in t.summary()


# --- UDP ----------------------------------------------------------------------------------------


@contextmanager
def udp_echo(host: str = "127.0.0.1") -> Iterator[int]:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                data, addr = s.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            s.sendto(b"echo:" + data, addr)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield s.getsockname()[1]
    finally:
        stop.set()
        t.join(5)
        s.close()


def test_udp_echo_is_open_with_the_reply() -> None:
    with udp_echo() as port:
        out = outcome(ProbePlan("127.0.0.1", port, udp=True, timeout=T))
    assert out.is_open
    assert out.udp[0].reply.startswith(b"echo:portscope")


def test_udp_closed_port_is_icmp_unreachable() -> None:
    out = outcome(ProbePlan("127.0.0.1", free_port("udp"), udp=True, timeout=T))
    assert out.state == "closed" and "ICMP port unreachable" in out.udp[0].summary()


def test_udp_silent_socket_bound_here_is_open() -> None:
    """No reply, but this machine's socket table shows the socket bound there: open (the one UDP
    rule, the same as scan's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        out = outcome(ProbePlan("127.0.0.1", s.getsockname()[1], udp=True, timeout=0.3))
    assert out.state == "open" and out.is_open
    assert "bound there" in out.udp[0].reason


def test_udp_silence_without_a_local_socket_is_open_filtered() -> None:
    """Silence with nothing known about the far end (here: the local lookup says nothing is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        r = probe.udp(V4, s.getsockname()[1], timeout=0.3, bound_here=lambda _a, _p: False)
    assert r.state == "open|filtered" and r.reason == "no reply"


@needs_ipv6
def test_udp_ipv6() -> None:
    with udp_echo("::1") as port:
        res = run_cli("test", f"[::1]:{port}", "--udp", "--timeout", "0.5")
    assert res.returncode == 0, res.stderr
    assert f"udp [::1]:{port}  open" in res.stdout


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_exit_codes() -> None:
    with tcp_server(echo) as port:
        res = run_cli("test", str(port), "--count", "1", "--timeout", "0.5")  # bare port = localhost
        assert res.returncode == 0, res.stderr
        assert "open" in res.stdout
    res = run_cli("test", f"127.0.0.1:{free_port()}", "--count", "1", "--timeout", "0.5")
    assert res.returncode == 1 and "closed" in res.stdout
    res = run_cli("test", "nohost.invalid:80", "--timeout", "0.5")
    assert res.returncode == 2 and "cannot resolve host" in res.stderr
    for bad in ("127.0.0.1:0", "::1:80", "127.0.0.1:http", "a b:1"):
        res = run_cli("test", bad)
        assert res.returncode == 2, bad
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_cli_json_shape() -> None:
    with tcp_server(echo) as port:
        res = run_cli("test", f"127.0.0.1:{port}", "--count", "2", "--banner", "--json", "--timeout", "0.5")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["target"] == {"host": "127.0.0.1", "port": port, "proto": "tcp"}
    assert data["state"] == "open" and data["open"] is True
    assert data["tcp"][0]["connected"] == 2 and set(data["tcp"][0]["latency_ms"]) == {"min", "avg", "max"}
    assert data["banner"]["text"].startswith("hello \\x1b[31m")
    assert data["udp"] is None and data["http"] is None and data["tls"] is None


def test_cancel_stops_between_steps() -> None:
    stop = threading.Event()
    stop.set()
    with tcp_server(echo) as port, pytest.raises(probe.Cancelled):
        list(run_plan(ProbePlan("127.0.0.1", port, timeout=T), cancel=stop))


# --- review: descriptors and deadlines ----------------------------------------------------------


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


def test_no_descriptor_leaks_on_any_probe_path(tls_server_ctx) -> None:
    """Every probe against every kind of misbehaving server, a few rounds: the fd count is flat."""
    import struct

    def reset(conn: socket.socket) -> None:  # RST at once
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def junk_tls(conn: socket.socket) -> None:  # a TLS record header, then garbage
        conn.sendall(b"\x16\x03\x03\x00\x05hello" * 8)
        threading.Event().wait(0.3)

    ctx, _ca = tls_server_ctx
    with (
        tcp_server(echo) as p_echo,
        tcp_server(silent) as p_silent,
        tcp_server(endless) as p_endless,
        tcp_server(reset) as p_reset,
        tcp_server(junk_tls) as p_junk,
        http_server(_Redirect, ctx) as p_tls,
    ):
        ports = [p_echo, p_silent, p_endless, p_reset, p_junk, p_tls, free_port()]
        idle = threading.active_count()  # the servers are up, no connection handler runs yet

        def settled() -> int:
            """The fd count once the servers' handler threads (holding their side of each
            connection, in this process too) have all finished."""
            wait_for(lambda: threading.active_count() <= idle, timeout=20)
            return _open_fds()

        def one_round() -> None:
            for p in ports:
                probe.tcp_connect(V4, p, 1, 0.1)
                probe.banner(V4, p, 0.1)
                probe.http(V4, p, "127.0.0.1", 0.1)
                probe.http(V4, p, "localhost", 0.1, use_tls=True)
                probe.tls(V4, p, "localhost", 0.1)
                probe.udp(V4, p, 0.05)

        one_round()  # warm-up: lazily opened descriptors (resolver, ssl) are not leaks
        before = settled()
        for _ in range(2):
            one_round()
        after = settled()
    assert after <= before, (before, after)


def test_tls_handshake_against_a_dripping_server_ends_at_the_timeout() -> None:
    """One byte of a 16 KB handshake record every 50 ms: the handshake has an overall deadline, not
    one per read (the join is a hang guard, far above the 0.3 s timeout, not a speed check)."""
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        conn.sendall(b"\x16\x03\x03\x40\x00")
        while not stop.is_set():
            conn.sendall(b"\x02")
            stop.wait(0.05)

    box: list[probe.TlsReport] = []
    with tcp_server(drip) as port:
        t = threading.Thread(target=lambda: box.append(probe.tls(V4, port, "x", 0.3)))
        t.start()
        t.join(30)
        stop.set()
        t.join(30)
    assert box and not box[0].handshake and "timed out" in box[0].error
