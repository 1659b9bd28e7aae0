"""``portscope serve`` end to end: a real process answering real HTTP scrapes, ended by signals; a
scrape storm against the cached snapshot; and the real Prometheus server scraping it."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.metrics import PortscopeCollector, SnapshotCache, make_http_server, registry_for, stats_collector
from app.model import Snapshot
from tests.helpers import free_port, needs_ipv6, portscope_cmd, run_cli

PROMETHEUS = shutil.which("prometheus")


def read_line(stream: Any, timeout: float) -> str:
    """One line from a child's pipe, or "" after ``timeout`` seconds (never hangs)."""
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else ""


@contextlib.contextmanager
def serving(
    *args: str, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """A ``portscope serve --json`` child on a free loopback port (``args`` may override it), and
    the JSON line it printed once listening. Killed by pid if the test did not end it."""
    listen = () if "--listen" in args else ("--listen", "127.0.0.1:0")
    proc = subprocess.Popen(
        [*prefix, *portscope_cmd(), "serve", "--json", *listen, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(proc.stdout, 60)
        assert line, (
            f"serve printed nothing: {proc.poll()} {proc.stderr.read() if proc.poll() is not None else ''}"
        )
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def get(url: str, timeout: float = 10) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    rc = proc.wait(20)
    assert proc.stderr is not None
    return rc, proc.stderr.read()


def test_serves_metrics_and_ends_cleanly_on_sigterm() -> None:
    with serving("--interval", "1") as (proc, info):
        assert set(info) == {"schema", "listen", "url", "interval", "ports"}
        assert info["listen"]["ip"] == "127.0.0.1" and info["listen"]["port"] > 0
        assert info["url"] == f"http://127.0.0.1:{info['listen']['port']}/metrics"
        assert info["interval"] == 1.0 and info["ports"] == []
        status, ctype, body = get(info["url"])
        assert status == 200 and ctype.startswith("text/plain")
        assert "portscope_build_info{" in body
        # its own listener, by the name the kernel gives the console script
        assert f'port="{info["listen"]["port"]}"' in body
        base = info["url"].removesuffix("/metrics")
        assert get(base + "/")[0] == 200 and "/metrics" in get(base + "/")[2]
        assert get(base + "/nothing-here")[0] == 404
        rc, err = stop(proc, signal.SIGTERM)
    assert rc == 0, err
    assert "Traceback" not in err
    assert "beyond loopback" not in err  # loopback: no warning
    assert err.splitlines()[-1] == "portscope: stopped"


@needs_ipv6
def test_serves_on_ipv6_loopback() -> None:
    with serving("--listen", "[::1]:0") as (proc, info):
        assert info["listen"]["ip"] == "::1"
        assert info["url"] == f"http://[::1]:{info['listen']['port']}/metrics"
        status, _, body = get(info["url"])
        assert status == 200 and 'family="ipv6"' in body
        rc, err = stop(proc, signal.SIGTERM)
    assert rc == 0 and "beyond loopback" not in err


def test_ctrl_c_ends_it_cleanly() -> None:
    with serving() as (proc, info):
        assert get(info["url"])[0] == 200
        rc, err = stop(proc, signal.SIGINT)
    assert rc == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_scrape_storm_reads_one_snapshot() -> None:
    """200 scrapes within a 60 s interval: every one shows the same poll (its duration, to the last
    digit), so the process polled once."""
    with serving("--interval", "60") as (proc, info):
        bodies: list[str] = []

        def scrape() -> None:
            for _ in range(20):
                bodies.append(get(info["url"])[2])

        threads = [threading.Thread(target=scrape) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        durations = {
            line
            for body in bodies
            for line in body.splitlines()
            if line.startswith("portscope_collector_duration")
        }
        assert len(bodies) == 200 and len(durations) == 1
        stop(proc, signal.SIGTERM)


class Counting:
    """The real collector, counting how often it is asked."""

    def __init__(self) -> None:
        self.inner = stats_collector()
        self.calls = 0

    def collect(self, *, port: int | None = None) -> Snapshot:
        self.calls += 1
        return self.inner.collect(port=port)


@contextlib.contextmanager
def in_process_server(cache: SnapshotCache, errors: list[Exception]) -> Iterator[str]:
    server = make_http_server(registry_for(PortscopeCollector(cache)), "127.0.0.1", 0, errors.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_scrape_storm_cannot_become_a_poll_storm() -> None:
    source = Counting()
    cache = SnapshotCache(source, interval=0.5)
    errors: list[Exception] = []
    with in_process_server(cache, errors) as url:
        codes: list[int] = []
        lock = threading.Lock()

        def storm(n: int) -> None:
            for _ in range(n):
                status = get(url)[0]
                with lock:
                    codes.append(status)

        threads = [threading.Thread(target=storm, args=(25,)) for _ in range(8)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - started
        assert codes == [200] * 200 and not errors
        # at most one poll per started half second (and the one the first scrape made)
        assert 1 <= source.calls <= int(elapsed / 0.5) + 2, (source.calls, elapsed)
        assert source.calls < len(codes) / 4
        time.sleep(0.6)  # the snapshot is stale now: the next scrape polls once more
        before = source.calls
        get(url)
        get(url)
        assert source.calls == before + 1


class Broken:
    calls = 0

    def collect(self, *, port: int | None = None) -> Snapshot:
        self.calls += 1
        raise OSError("no socket source")


def test_a_failing_poll_answers_500_and_is_reported_once_per_interval() -> None:
    source = Broken()
    errors: list[Exception] = []
    with in_process_server(SnapshotCache(source, interval=60), errors) as url:  # type: ignore[arg-type]
        for _ in range(5):
            status, _, body = get(url)
            assert status == 500 and body == "portscope: the poll failed: no socket source\n"
    assert source.calls == 1 and len(errors) == 5  # the serve command prints each distinct one once


@pytest.mark.parametrize(
    ("listen", "needle"),
    [
        ("abc", "invalid listen address"),
        ("127.0.0.1:70000", "invalid listen address"),
        ("[::1:80", "invalid listen address"),
        ("192.0.2.1:0", "Cannot assign requested address"),
    ],
)
def test_bad_listen_addresses_exit_2(listen: str, needle: str) -> None:
    res = run_cli("serve", "--listen", listen, timeout=60)
    assert res.returncode == 2
    assert len(res.stderr.splitlines()) == 1 and needle in res.stderr, res.stderr


def test_a_busy_port_exits_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        res = run_cli("serve", "--listen", f"127.0.0.1:{busy.getsockname()[1]}", timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().endswith("Address already in use"), res.stderr


def test_a_wider_address_prints_a_warning() -> None:
    """0.0.0.0 inside a private network namespace (nothing outside it can reach it)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to bind 0.0.0.0 inside a private network namespace")
    with serving("--listen", "0.0.0.0:0", prefix=("unshare", "--net")) as (proc, info):
        assert info["listen"]["ip"] == "0.0.0.0"
        rc, err = stop(proc, signal.SIGTERM)
    assert rc == 0, err
    [warning] = [ln for ln in err.splitlines() if "beyond loopback" in ln]
    assert warning.startswith("portscope: serving on 0.0.0.0:")


# --- the real Prometheus ------------------------------------------------------------------------


def query(base: str, promql: str) -> list[dict[str, Any]] | None:
    """The result of an instant query; None while Prometheus does not answer (starting up)."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        status, _, body = get(url, timeout=5)
    except (OSError, urllib.error.URLError):
        return None
    if status != 200:
        return None
    doc = json.loads(body)
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


def until(what: str, predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:g}s: {what}")


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing (Debian package prometheus)")
def test_prometheus_scrapes_a_listener_and_sees_it_go_stale() -> None:
    assert PROMETHEUS is not None
    with (
        tempfile.TemporaryDirectory(prefix="portscope-prom-") as tmp,
        serving("--interval", "0.5") as (serve, info),
    ):
        target = f"127.0.0.1:{info['listen']['port']}"
        config = Path(tmp) / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: portscope\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        prom_port = free_port()
        prom = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{prom_port}"
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            port = str(listener.getsockname()[1])
            series = f'portscope_listening_info{{job="portscope",port="{port}"}}'
            [found] = until("Prometheus has the test's listener", lambda: query(base, series), 90)
            labels = found["metric"]
            assert labels["instance"] == target and labels["address"] == "127.0.0.1"
            assert labels["exposure"] == "loopback" and labels["proto"] == "tcp"
            assert labels["process"]  # the test's own interpreter, named
            [up] = query(base, 'up{job="portscope"}') or [{}]
            assert up["value"][1] == "1"
            listener.close()
            until("the closed listener's series goes stale", lambda: query(base, series) == [], 60)
            assert query(base, 'portscope_build_info{job="portscope"}')  # the target is still scraped
        finally:
            listener.close()
            if prom.poll() is None:
                prom.terminate()
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(10)
        rc, err = stop(serve, signal.SIGTERM)
        assert rc == 0 and "Traceback" not in err
