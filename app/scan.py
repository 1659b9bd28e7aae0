"""Port scan: many TCP connects (or UDP datagrams) at bounded concurrency, on asyncio.

Concurrency is bounded twice: by a fixed pool of worker tasks (never more probes in flight than
workers; :attr:`Scanner.peak` records the most seen at once) and by the open-file limit (the pool
is capped below RLIMIT_NOFILE minus the descriptors already open and a margin). If the system still
runs out of descriptors (EMFILE), the probe waits and retries instead of failing; when none frees
up for a while (something else holds them all) or the scan is cancelled, it gives up on that port
with state ``error`` rather than retry forever.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.model import format_endpoint
from app.probe import CLOSED, ERROR, FILTERED, OPEN, OPEN_FILTERED, UNREACHABLE, resolve

DEFAULT_CONCURRENCY = 200
DEFAULT_TIMEOUT = 1.0
FD_MARGIN = 32  # descriptors left for everything else (stdio, the collector, the dashboard)
EMFILE_PATIENCE = 2.0  # seconds (at least; 2x the timeout when longer) to wait for a free descriptor
STATES = (OPEN, CLOSED, FILTERED, OPEN_FILTERED, UNREACHABLE, ERROR)  # in summaries, in this order

ProgressFn = Callable[[int, int], None]  # (done, total)


def open_fd_count() -> int:
    for d in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(d))
        except OSError:
            continue
    return 16


def fd_budget() -> int | None:
    """How many more descriptors this process may open, minus a margin (None: no known limit)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return int(soft) - open_fd_count() - FD_MARGIN


def effective_concurrency(requested: int, n_ports: int) -> int:
    """``requested`` capped by the port count and the open-file budget (at least 1)."""
    value = max(1, min(requested, n_ports))
    budget = fd_budget()
    if budget is not None:
        value = min(value, max(1, budget))
    return value


@dataclass(frozen=True, slots=True)
class PortResult:
    port: int
    state: str
    latency_ms: float | None = None
    owner: dict[str, Any] | None = None  # {"pid", "name", "user"} when the host is this machine


@dataclass
class ScanResult:
    host: str
    ip: str
    proto: str
    requested_concurrency: int
    concurrency: int
    peak: int = 0
    results: list[PortResult] = field(default_factory=list)
    cancelled: bool = False
    local: bool = False

    def count(self, state: str) -> int:
        return sum(1 for r in self.results if r.state == state)

    @property
    def open_ports(self) -> list[int]:
        return [r.port for r in self.results if r.state == OPEN]

    def as_dict(self) -> dict[str, Any]:
        states = STATES
        return {
            "host": self.host,
            "ip": self.ip,
            "proto": self.proto,
            "local": self.local,
            "concurrency": self.concurrency,
            "ports_scanned": len(self.results),
            "cancelled": self.cancelled,
            "summary": {s: self.count(s) for s in states},
            "results": [
                {"port": r.port, "state": r.state, "latency_ms": r.latency_ms, "owner": r.owner}
                for r in self.results
            ],
        }


class Scanner:
    """One scan. Run with :meth:`run` (blocking, its own event loop) or ``await`` :meth:`scan`."""

    def __init__(
        self,
        ip: str,
        ports: Sequence[int],
        *,
        udp: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.ip = ip
        self.family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self.ports = list(ports)
        self.udp = udp
        self.requested = concurrency
        self.concurrency = effective_concurrency(concurrency, len(self.ports))
        self.timeout = timeout
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.in_flight = 0
        self.peak = 0
        self.done = 0
        self.emfile_retries = 0

    def run(self) -> dict[int, PortResult]:
        return asyncio.run(self.scan())

    async def scan(self) -> dict[int, PortResult]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for p in self.ports:
            queue.put_nowait(p)
        results: dict[int, PortResult] = {}
        workers = [asyncio.create_task(self._worker(queue, results)) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
        return results

    async def _worker(self, queue: asyncio.Queue[int], results: dict[int, PortResult]) -> None:
        while not self.cancel.is_set():
            try:
                port = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                await asyncio.sleep(0)  # let the other workers start theirs: probes overlap
                try:
                    results[port] = await self._probe(port)
                except OSError:  # no descriptor, no such address family...: this port, not the scan
                    if not self.cancel.is_set():
                        results[port] = PortResult(port, ERROR)
            finally:
                self.in_flight -= 1
            self.done += 1
            if self.progress is not None:
                self.progress(self.done, len(self.ports))

    async def _socket(self, kind: int) -> socket.socket:
        """A non-blocking socket; on EMFILE/ENFILE wait for others to close theirs and retry.

        Gives up (re-raising) when the scan is cancelled or no descriptor freed up for
        EMFILE_PATIENCE seconds (2x the timeout when longer): the scan's own probes free theirs
        within the timeout, so a longer drought means something else holds them all."""
        delay = 0.01
        give_up: float | None = None
        while True:
            try:
                s = socket.socket(self.family, kind)
                s.setblocking(False)
                return s
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS):
                    raise
                self.emfile_retries += 1
                now = time.monotonic()
                if give_up is None:
                    give_up = now + max(EMFILE_PATIENCE, 2 * self.timeout)
                if self.cancel.is_set() or now >= give_up:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)

    async def _probe(self, port: int) -> PortResult:
        return await (self._probe_udp(port) if self.udp else self._probe_tcp(port))

    async def _probe_tcp(self, port: int) -> PortResult:
        loop = asyncio.get_running_loop()
        s = await self._socket(socket.SOCK_STREAM)
        start = time.perf_counter()
        try:
            await asyncio.wait_for(loop.sock_connect(s, (self.ip, port)), self.timeout)
        except ConnectionRefusedError:
            return PortResult(port, CLOSED)
        except TimeoutError:
            return PortResult(port, FILTERED)
        except OSError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                return PortResult(port, UNREACHABLE)
            return PortResult(port, FILTERED)
        finally:
            s.close()
        return PortResult(port, OPEN, round((time.perf_counter() - start) * 1000, 3))

    async def _probe_udp(self, port: int) -> PortResult:
        loop = asyncio.get_running_loop()
        s = await self._socket(socket.SOCK_DGRAM)
        try:
            s.connect((self.ip, port))
            await loop.sock_sendall(s, b"portscope\r\n")
            await asyncio.wait_for(loop.sock_recv(s, 1024), self.timeout)
        except ConnectionRefusedError:
            return PortResult(port, CLOSED)
        except TimeoutError:
            return PortResult(port, OPEN_FILTERED)
        except OSError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                return PortResult(port, UNREACHABLE)
            return PortResult(port, OPEN_FILTERED)
        finally:
            s.close()
        return PortResult(port, OPEN)


def is_local_address(ip: str) -> bool:
    """Loopback, or an address of one of this machine's interfaces."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if addr.is_loopback or addr.is_unspecified:
        return True
    try:
        from app.exposure import interface_addresses

        return str(addr) in interface_addresses()
    except Exception:  # netifaces trouble: just no owner column
        return False


def local_owners(ip: str, ports: set[int], udp: bool) -> dict[int, dict[str, Any]]:
    """Owner of the local listener that would answer on ``ip:port``, per port."""
    from app.collector import default_collector

    snapshot = default_collector().collect()
    out: dict[int, dict[str, Any]] = {}
    proto = "udp" if udp else "tcp"
    wildcard = ("::", "0.0.0.0") if ":" in ip else ("0.0.0.0", "::")
    for s in snapshot.listeners:
        if s.proto.value != proto or s.laddr.port not in ports or s.pid is None:
            continue
        if s.laddr.ip != ip and s.laddr.ip not in wildcard:
            continue
        owner = snapshot.owner(s)
        entry = {"pid": s.pid, "name": owner.name if owner else "", "user": owner.username if owner else ""}
        if s.laddr.ip == ip or s.laddr.port not in out:
            out[s.laddr.port] = entry
    return out


def scan(
    host: str,
    ports: Sequence[int],
    *,
    udp: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = DEFAULT_TIMEOUT,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    owners: bool = True,
) -> ScanResult:
    """Scan ``ports`` on ``host`` (resolved once; UsageError if it cannot be). Blocking."""
    _fam, ip = resolve(host, ports[0] if ports else 0, "udp" if udp else "tcp")[0]
    scanner = Scanner(
        ip, ports, udp=udp, concurrency=concurrency, timeout=timeout, progress=progress, cancel=cancel
    )
    found = scanner.run()
    result = ScanResult(
        host=host,
        ip=ip,
        proto="udp" if udp else "tcp",
        requested_concurrency=concurrency,
        concurrency=scanner.concurrency,
        peak=scanner.peak,
        cancelled=scanner.cancel.is_set(),
        local=is_local_address(ip),
    )
    by_owner: dict[int, dict[str, Any]] = {}
    interesting = {p for p, r in found.items() if r.state in (OPEN, OPEN_FILTERED)}
    if owners and result.local and interesting:
        by_owner = local_owners(ip, interesting, udp)
    for port in sorted(found):
        r = found[port]
        owner = by_owner.get(port)
        if owner is not None and r.state == OPEN_FILTERED:
            r = PortResult(port, OPEN, r.latency_ms, owner)  # silent, but bound here: open
        elif owner is not None:
            r = PortResult(port, r.state, r.latency_ms, owner)
        result.results.append(r)
    return result


def endpoint(result: ScanResult, port: int) -> str:
    return format_endpoint(result.ip, port)
