"""Scanning loopback: exactly the open ports, bounded concurrency, no EMFILE under a low fd limit."""

from __future__ import annotations

import json
import resource
import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from app import scan
from app.errors import UsageError
from tests.helpers import child_listener, needs_ipv6, needs_netns, run_cli, run_in_netns, wait_for


@contextmanager
def listeners_in_block(n_open: int, width: int = 40) -> Iterator[tuple[list[int], list[int]]]:
    """Bind ``n_open`` TCP listeners inside a block of ``width`` consecutive ports that were free.

    Yields (block, open ports). Retries a few blocks so a port grabbed by someone else is not fatal."""
    for attempt in range(20):
        base = 20000 + attempt * 997
        block = list(range(base, base + width))
        with ExitStack() as stack:
            socks = []
            try:
                for p in block:  # hold every port of the block, so nothing else opens one meanwhile
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", p))
                    socks.append(s)
            except OSError:
                continue
            wanted = block[3 : 3 + 3 * n_open : 3]
            for s, p in zip(socks, block, strict=True):
                if p in wanted:
                    s.listen(8)
            yield block, wanted
            return
    pytest.skip("no free block of ports on 127.0.0.1")


def test_scan_finds_exactly_the_open_ports() -> None:
    with listeners_in_block(4) as (block, wanted):
        result = scan.scan("127.0.0.1", block, concurrency=16, timeout=0.5, owners=False)
    assert result.open_ports == wanted
    assert result.count("closed") == len(block) - len(wanted)
    assert [r.port for r in result.results] == block


@pytest.mark.parametrize("reuse", [True, False])
def test_refused_sockets_reused_or_not_give_the_same_answer(reuse: bool) -> None:
    """Linux reuses a refused probe's socket for the next port; elsewhere each port gets a new one."""
    with listeners_in_block(5, width=80) as (block, wanted):
        scanner = scan.Scanner("127.0.0.1", block, concurrency=16, timeout=0.5)
        scanner._reuse = reuse and sys.platform.startswith("linux")
        found = scanner.run()
    assert sorted(p for p, r in found.items() if r.state == "open") == wanted
    assert {r.state for p, r in found.items() if p not in wanted} == {"closed"}
    assert {r.reason for p, r in found.items() if p not in wanted} == {"refused"}


def test_concurrency_bound_is_respected_on_loopback() -> None:
    with listeners_in_block(2, width=60) as (block, wanted):
        scanner = scan.Scanner("127.0.0.1", block, concurrency=7, timeout=0.5)
        found = scanner.run()
    assert scanner.concurrency == 7
    assert scanner.peak <= 7  # loopback answers inside connect(): few probes ever wait
    assert sorted(p for p, r in found.items() if r.state == "open") == wanted


@needs_netns
def test_concurrency_bound_is_reached_when_nothing_answers() -> None:
    """Every SYN dropped (nft, in a namespace of its own): all probes wait, never more than 7 at once,
    and exactly 7 do; each ends filtered at its timeout."""
    got = run_in_netns(
        """
        sh("nft add table inet t")
        sh("nft add chain inet t in '{ type filter hook input priority 0; }'")
        sh("nft add rule inet t in tcp dport 20000-20029 drop")
        sys.path.insert(0, os.getcwd())
        from app import scan
        sc = scan.Scanner("127.0.0.1", range(20000, 20030), concurrency=7, timeout=0.2)
        found = sc.run()
        print(json.dumps({"peak": sc.peak, "states": sorted({r.state for r in found.values()}),
                          "n": len(found)}))
        """
    )
    assert got == {"peak": 7, "states": ["filtered"], "n": 30}


def test_concurrency_is_capped_by_the_port_count() -> None:
    scanner = scan.Scanner("127.0.0.1", [1, 2, 3], concurrency=500, timeout=0.3)
    scanner.run()
    assert scanner.concurrency == 3 and scanner.peak <= 3


def test_concurrency_is_capped_below_the_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 256) if hard != resource.RLIM_INFINITY else 256
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        assert scan.effective_concurrency(100_000, 65535) <= want - scan.open_fd_count() - scan.FD_MARGIN
        assert scan.effective_concurrency(100_000, 65535) >= 1
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def test_scan_above_the_fd_limit_does_not_fail_with_emfile() -> None:
    with listeners_in_block(3, width=300) as (block, wanted):
        spec = f"{block[0]}-{block[-1]}"
        res = run_cli(
            "scan",
            "127.0.0.1",
            spec,
            "--concurrency",
            "5000",
            "--timeout",
            "0.5",
            "--json",
            preexec_fn=_low_fd_limit,
        )
    assert res.returncode == 0, res.stderr
    assert "Too many open files" not in res.stderr and "Traceback" not in res.stderr
    data = json.loads(res.stdout)
    assert data["concurrency"] < 48
    assert [r["port"] for r in data["results"] if r["state"] == "open"] == wanted
    assert data["ports_scanned"] == len(block)


def test_sockets_are_closed_after_a_scan() -> None:
    before = scan.open_fd_count()
    scan.Scanner("127.0.0.1", list(range(30000, 30200)), concurrency=50, timeout=0.3).run()
    assert scan.open_fd_count() <= before + 2  # the event loop's own descriptors may linger briefly


def test_local_owner_is_reported() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-scan-owner") as child:
        result = scan.scan("127.0.0.1", [child.port], timeout=0.5)
    [r] = result.results
    assert r.state == "open" and result.local
    assert r.owner is not None and r.owner["pid"] == child.pid and r.owner["name"] == "ps-scan-owner"


def test_udp_scan_closed_open_and_bound() -> None:
    with (
        child_listener("udp", "127.0.0.1") as child,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as free,
    ):
        free.bind(("127.0.0.1", 0))
        closed = free.getsockname()[1]
        free.close()
        result = scan.scan("127.0.0.1", sorted([child.port, closed]), udp=True, timeout=0.3)
    states = {r.port: r.state for r in result.results}
    assert states[closed] == "closed"
    assert states[child.port] == "open"  # silent, but bound here by a process we can see


@needs_ipv6
def test_ipv6_scan() -> None:
    with child_listener("tcp", "::1") as child:
        result = scan.scan("::1", [child.port, child.port + 1 if child.port < 65535 else 1], timeout=0.5)
    assert child.port in result.open_ports and result.ip == "::1"


def test_cancel_stops_early() -> None:
    import threading

    stop = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 10:
            stop.set()

    result = scan.scan(
        "127.0.0.1",
        list(range(40000, 42000)),
        concurrency=4,
        timeout=0.3,
        progress=progress,
        cancel=stop,
        owners=False,
    )
    assert result.cancelled and len(result.results) < 2000 and max(seen) < 2000


@pytest.mark.parametrize("spec", ["100-50", "0-10", "1-65536", "22,,80", "abc", "", "80-"])
def test_cli_bad_specs_exit_2(spec: str) -> None:
    res = run_cli("scan", "127.0.0.1", spec)
    assert res.returncode == 2, res.stdout
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr


@pytest.mark.parametrize(
    "host", ["fe80::1%", "fe80::1%no-such-interface", "::1%99999999999999999999", "[::1]", "%lo", "\x1b[2J"]
)
def test_cli_bad_hosts_exit_2(host: str) -> None:
    res = run_cli("scan", host, "80", "--timeout", "0.3")
    assert res.returncode == 2, (host, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "\x1b" not in res.stderr


def test_cli_unresolvable_host_exit_2() -> None:
    res = run_cli("scan", "nohost.invalid", "80", "--timeout", "0.3")
    assert res.returncode == 2 and "cannot resolve host" in res.stderr
    with pytest.raises(UsageError):
        scan.scan("nohost.invalid", [80])


def test_cli_table_and_exit_codes() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-scan-cli") as child:
        res = run_cli("scan", "127.0.0.1", str(child.port), "--timeout", "0.5")
        assert res.returncode == 0, res.stderr
        assert (
            f"{child.port}/tcp" in res.stdout and "ps-scan-cli" in res.stdout and str(child.pid) in res.stdout
        )
        assert "1 open" in res.stderr
        port = child.port
    res = run_cli("scan", "127.0.0.1", str(port), "--timeout", "0.5")
    assert res.returncode == 1 and "1 closed" in res.stderr


def test_a_scan_never_hangs_when_no_descriptor_frees_up() -> None:
    """Every descriptor is taken by something else (not the scan's own probes, which would free
    theirs): each probe gives up after a bounded wait with state "error" instead of retrying
    forever. (The join below is a hang guard, far above the bounded wait, not a speed check.)"""
    import threading

    scanner = scan.Scanner("127.0.0.1", [1, 2, 3], concurrency=3, timeout=0.2)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hog: list[socket.socket] = []
    box: dict[int, scan.PortResult] = {}
    worker = threading.Thread(target=lambda: box.update(scanner.run()))
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (scan.open_fd_count() + 8, hard))
        try:
            while True:
                hog.append(socket.socket())
        except OSError:
            pass
        worker.start()
        worker.join(30)
        finished = not worker.is_alive()
    finally:
        scanner.cancel.set()
        for s in hog:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        if worker.is_alive() or worker.ident is not None:
            worker.join(30)
    assert finished, "the scan kept retrying EMFILE"
    assert {p: r.state for p, r in box.items()} == {1: "error", 2: "error", 3: "error"}
    assert scanner.emfile_retries > 0


def test_cancel_reaches_a_probe_waiting_for_a_descriptor() -> None:
    import threading

    scanner = scan.Scanner("127.0.0.1", list(range(1, 50)), concurrency=2, timeout=30)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hog: list[socket.socket] = []
    worker = threading.Thread(target=scanner.run)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (scan.open_fd_count() + 8, hard))
        try:
            while True:
                hog.append(socket.socket())
        except OSError:
            pass
        worker.start()
        wait_for(lambda: scanner.emfile_retries > 0)
        scanner.cancel.set()
        worker.join(30)
        finished = not worker.is_alive()
    finally:
        scanner.cancel.set()
        for s in hog:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        if worker.ident is not None:
            worker.join(30)
    assert finished
    assert scanner.done < 49


@needs_netns
def test_a_full_scan_of_the_ephemeral_range_finds_exactly_what_listens() -> None:
    """Inside an empty namespace, every port of the ephemeral range: the kernel picks source ports
    from the same range, so some probes meet themselves (TCP simultaneous open). The open set must
    be what ``ss -tln`` reports, no more."""
    got = run_in_netns(
        """
        lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        held = []
        for p in (lo + 7, (lo + hi) // 2, hi - 3):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            s.listen(8)
            held.append(s)
        r = cli_json("scan", "127.0.0.1", f"{lo}-{hi}", "--timeout", "0.5")
        opened = [x["port"] for x in r["json"]["results"] if x["state"] == "open"]
        ss = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, check=True).stdout
        listening = sorted({int(line.split()[3].rsplit(":", 1)[1]) for line in ss.splitlines()})
        print(json.dumps({"scan": opened, "ss": [p for p in listening if lo <= p <= hi],
                          "scanned": r["json"]["ports_scanned"], "width": hi - lo + 1}))
        """
    )
    assert got["scanned"] == got["width"]
    assert got["scan"] == got["ss"] and len(got["ss"]) == 3, got


def test_cli_json_shape() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-scan-json") as child:
        res = run_cli("scan", "127.0.0.1", f"{child.port}", "--json", "--timeout", "0.5")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) == {
        "host",
        "ip",
        "proto",
        "local",
        "concurrency",
        "ports_scanned",
        "cancelled",
        "summary",
        "results",
    }
    assert set(data["summary"]) == {"open", "closed", "filtered", "open|filtered", "unreachable", "error"}
    assert data["summary"]["open"] == 1 and data["ports_scanned"] == 1 and data["local"] is True
    [r] = data["results"]
    assert set(r) == {"port", "state", "reason", "latency_ms", "owner"}
    assert r["state"] == "open" and r["reason"] == "connected" and r["latency_ms"] >= 0
    assert set(r["owner"]) == {"pid", "name", "user"}
    assert r["owner"]["pid"] == child.pid and r["owner"]["name"] == "ps-scan-json"
