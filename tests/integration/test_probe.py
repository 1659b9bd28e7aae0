"""Port tests against real servers on loopback: echo, HTTP, TLS (trustme), UDP, silent, endless."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import ssl
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trustme

from app import probe
from app.errors import UsageError
from app.netaddr import Address
from app.probe import ProbeOutcome, ProbePlan, run_plan
from tests.helpers import free_port, needs_ipv6, needs_netns, run_cli, run_in_netns, tcp_server, wait_for

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


def test_banner_stops_at_the_first_line_while_the_server_keeps_the_connection_open() -> None:
    """sshd-like: one line at once, then it waits for the client. The banner ends with the line,
    not at the timeout (the reported reason says which; no clock is asserted)."""
    stop = threading.Event()

    def ssh_like(conn: socket.socket) -> None:
        conn.sendall(b"SSH-2.0-ps_test_1.0\r\n")
        stop.wait(10)

    with tcp_server(ssh_like) as port:
        b = probe.banner(V4, port, timeout=5.0)
        stop.set()
    assert b.ended == "line" and b.data == b"SSH-2.0-ps_test_1.0\r\n"


def test_banner_without_a_newline_ends_when_the_server_pauses() -> None:
    stop = threading.Event()

    def prompt(conn: socket.socket) -> None:
        conn.sendall(b"login: ")
        stop.wait(10)

    with tcp_server(prompt) as port:
        b = probe.banner(V4, port, timeout=5.0)
        stop.set()
    assert b.ended == "pause" and b.data == b"login: "


def test_cli_banner_reports_why_it_ended() -> None:
    stop = threading.Event()

    def ssh_like(conn: socket.socket) -> None:
        conn.sendall(b"SSH-2.0-ps_test_1.0\r\n")
        stop.wait(10)

    with tcp_server(ssh_like) as port:
        res = run_cli("test", f"127.0.0.1:{port}", "--banner", "--count", "1", "--timeout", "5", "--json")
        stop.set()
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["banner"]["ended"] == "line"


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


WRITES_WATCHED = r"""
import os, sys
writes = []
def hook(event, args):
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[0], args[1], args[2]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        ):
            writes.append(str(path))
    elif event in ("tempfile.mkstemp", "tempfile.mkdtemp", "os.mkdir", "os.rename", "os.remove"):
        writes.append(f"{event} {args[0]}")
sys.addaudithook(hook)
from app.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
sys.stderr.write("WRITES " + repr(writes) + "\n")
sys.exit(code)
"""


def test_tls_writes_nothing_to_disk(tls_server_ctx, tmp_path) -> None:
    """README: nothing is written. The untrusted certificate is decoded in memory: no temporary PEM
    (every open for writing and every temp-file call is watched with an audit hook; TMPDIR is a
    fresh directory that must stay empty)."""
    import subprocess
    import sys

    ctx, _ca = tls_server_ctx
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    with http_server(_Redirect, ctx) as port:
        res = subprocess.run(
            [
                sys.executable,
                "-c",
                WRITES_WATCHED,
                "test",
                f"127.0.0.1:{port}",
                "--tls",
                "--count",
                "1",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TMPDIR": str(tmpdir)},
        )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["tls"]["handshake"] and "ps-test.localhost" in data["tls"]["subject"]
    assert data["tls"]["days_left"] > 300
    assert "WRITES []" in res.stderr, res.stderr
    assert list(tmpdir.iterdir()) == []


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


NTP_RESPONDER = """
def ntp_responder():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 123))
    def loop():
        while True:
            data, peer = s.recvfrom(512)
            if len(data) == 48 and data[0] & 0x07 == 3:  # only a real client request is answered
                s.sendto(bytes([0x1C]) + bytes(47), peer)  # LI 0, VN 3, mode 4 (server)
    threading.Thread(target=loop, daemon=True).start()
    return s
"""


@needs_netns
@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed (Debian: dnsmasq-base)")
def test_udp_dns_and_ntp_servers_answer_a_real_request_in_test_and_scan() -> None:
    """dnsmasq on 127.0.0.1:53 and :5353 and an NTP responder (answering only real NTP requests) on
    :123, in a namespace of their own: each port reads open because it replied, for both commands."""
    got = run_in_netns(
        NTP_RESPONDER
        + textwrap.dedent(
            """
        procs = []
        try:
            for port in (53, 5353):
                procs.append(subprocess.Popen(
                    ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                     "--bind-interfaces", "--listen-address=127.0.0.1", f"--port={port}", "--user=root",
                     "--group=root", "--pid-file=", "--address=/portscope.test/127.0.0.1"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            ntp = ntp_responder()
            for _ in range(100):  # until both dnsmasq instances are bound
                ss = subprocess.run(["ss", "-Hulpn"], capture_output=True, text=True).stdout
                if ss.count("dnsmasq") >= 2:
                    break
                time.sleep(0.05)
            out = {}
            for port in (53, 5353, 123):
                t = cli_json("test", f"127.0.0.1:{port}", "--udp", "--timeout", "1")
                u = t["json"]["udp"][0]
                out[port] = {"state": t["json"]["state"], "rc": t["rc"], "reason": u["reason"],
                             "service": u["service"], "reply": u["reply_bytes"] > 0}
            s = cli_json("scan", "127.0.0.1", "53,123,5353", "--udp", "--timeout", "1")
            out["scan"] = {str(r["port"]): [r["state"], r["reason"]] for r in s["json"]["results"]}
            print(json.dumps(out))
        finally:
            for p in procs:
                p.kill()
                p.wait()
        """
        )
    )
    assert got["53"] == {"state": "open", "rc": 0, "reason": "reply", "service": "dns", "reply": True}
    assert got["5353"] == {"state": "open", "rc": 0, "reason": "reply", "service": "dns", "reply": True}
    assert got["123"] == {"state": "open", "rc": 0, "reason": "reply", "service": "ntp", "reply": True}
    assert got["scan"] == {"53": ["open", "reply"], "123": ["open", "reply"], "5353": ["open", "reply"]}


@needs_ipv6
def test_udp_ipv6() -> None:
    with udp_echo("::1") as port:
        res = run_cli("test", f"[::1]:{port}", "--udp", "--timeout", "0.5")
    assert res.returncode == 0, res.stderr
    assert f"udp [::1]:{port}  open" in res.stdout


# --- IPv6 link-local with a scope -------------------------------------------------------------


@needs_netns
def test_link_local_with_a_scope_works_in_test_scan_and_free() -> None:
    """fe80::1 on the namespace's loopback: reachable only with its scope (``%lo``), which must reach
    connect() and bind() as the address tuple's scope id."""
    got = run_in_netns(
        """
        sh("ip -6 addr add fe80::1/64 dev lo nodad")
        idx = socket.if_nametoindex("lo")
        srv = socket.socket(socket.AF_INET6)
        srv.bind(("fe80::1", 0, 0, idx))
        srv.listen(8)
        port = srv.getsockname()[1]
        gone = socket.socket(socket.AF_INET6)
        gone.bind(("fe80::1", 0, 0, idx))
        closed = gone.getsockname()[1]
        gone.close()
        echo = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        echo.bind(("fe80::1", 0, 0, idx))
        def answer():
            while True:
                data, peer = echo.recvfrom(512)
                echo.sendto(data, peer)
        threading.Thread(target=answer, daemon=True).start()
        t = cli_json("test", f"[fe80::1%lo]:{port}", "--count", "1", "--timeout", "0.5")
        tc = cli_json("test", f"[fe80::1%lo]:{closed}", "--count", "1", "--timeout", "0.5")
        tu = cli_json("test", f"[fe80::1%lo]:{echo.getsockname()[1]}", "--udp", "--timeout", "0.5")
        sc = cli_json("scan", "fe80::1%lo", f"{port},{closed}", "--timeout", "0.5")
        fr = cli_json("free", "--host", "fe80::1%lo", "--range", "20000-20100", "--count", "2")
        from app.probe import local_targets  # what the dashboard's t prefills for this listener
        prefilled = local_targets("fe80::1", port)
        binds = []
        for p in fr["json"]["ports"]:
            with socket.socket(socket.AF_INET6) as b:
                b.bind(("fe80::1", p, 0, idx))
                binds.append(p)
        print(json.dumps({
            "test": [t["rc"], t["json"]["state"], t["json"]["addresses"]],
            "closed": [tc["rc"], tc["json"]["state"]],
            "udp": [tu["rc"], tu["json"]["state"]],
            "scan": [sc["rc"], sc["json"]["ip"], {str(r["port"]): r["state"] for r in sc["json"]["results"]}],
            "free": [fr["rc"], len(fr["json"]["ports"]), len(binds)],
            "prefilled": prefilled,
            "port": port, "closed_port": closed,
        }))
        """
    )
    port, closed = got["port"], got["closed_port"]
    assert got["test"] == [0, "open", [f"[fe80::1%lo]:{port}"]]
    assert got["closed"] == [1, "closed"]
    assert got["udp"] == [0, "open"]
    assert got["scan"] == [0, "fe80::1%lo", {str(port): "open", str(closed): "closed"}]
    assert got["free"] == [0, 2, 2]
    assert got["prefilled"] == [f"[fe80::1%lo]:{port}"]


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
    assert set(data["banner"]) == {"address", "bytes", "text", "ended", "error"}


def test_cli_udp_json_shape() -> None:
    with udp_echo() as port:
        res = run_cli("test", f"127.0.0.1:{port}", "--udp", "--json", "--timeout", "0.5")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["tcp"] is None and data["state"] == "open"
    [u] = data["udp"]
    assert set(u) == {"address", "state", "reason", "service", "reply_bytes", "reply"}
    assert u["reason"] == "reply" and u["service"] is None and u["reply"].startswith("echo:portscope")


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


@pytest.mark.parametrize(
    "target",
    [
        "[fe80::1%]:80",
        "[fe80::1%no-such-interface]:80",
        "[::1%99999999999999999999]:80",
        "[fe80::1%lo%lo]:80",
        "[fe80::1%lo",
        "[%]:1",
        "\x1b]52;c;aGk=\x07:80",
        "[::1]:" + "9" * 5000,
    ],
)
def test_cli_bad_targets_are_one_line_exit_2(target: str) -> None:
    res = run_cli("test", target, "--count", "1", "--timeout", "0.3")
    assert res.returncode == 2, (target, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "\x1b" not in res.stderr and "\x07" not in res.stderr and len(res.stderr) < 400
