"""Port scan: many TCP connects (or UDP datagrams) at bounded concurrency, on one non-blocking loop.

Each probe is a non-blocking socket: ``connect_ex`` (TCP) or ``send`` (UDP), then the result is read
at once with ``SO_ERROR``: on loopback a refusal (and often a whole handshake) completes inside the
connect call, so most ports never wait. The rest wait in ``epoll`` (``poll`` elsewhere) until they
answer or their timeout ends. This is what ``nmap -sT`` does, without an event loop's per-port task,
future and timer; a full scan of 127.0.0.1 costs one socket, two or three system calls and a close
per port.

Concurrency is bounded twice: never more than ``concurrency`` probes wait at once
(:attr:`Scanner.peak` records the most seen), and that bound is capped below RLIMIT_NOFILE minus
the descriptors already open and a margin. If the system still runs out of descriptors (EMFILE), the
scan waits for its own probes to finish and retries; when none of its own is waiting and none frees
up for a while (something else holds them all) or the scan is cancelled, it gives up on that port
with state ``error`` rather than retry forever.

States come from the one classifier (:mod:`app.outcome`). A TCP connection whose peer is the
scanning socket itself, or another of the scan's own sockets, is not an open port (TCP
simultaneous open inside the ephemeral range): it is ``closed``.
"""

from __future__ import annotations

import _socket
import errno
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from app.locallisteners import is_local_address, local_listeners
from app.netaddr import Address, numeric, resolve
from app.outcome import STATES, ConnectState, Verdict, classify
from app.udprequests import request_for

DEFAULT_CONCURRENCY = 200
DEFAULT_TIMEOUT = 1.0
FD_MARGIN = 32  # descriptors left for everything else (stdio, the collector, the dashboard)
EMFILE_PATIENCE = 2.0  # seconds (at least; 2x the timeout when longer) to wait for a free descriptor
PROGRESS_EVERY = 512  # ports between two progress calls (and one at the end)
_NO_FD = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_NOT_REUSABLE = frozenset({errno.EINVAL, errno.EISCONN, errno.EALREADY, errno.EBADF})

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


class PortResult(NamedTuple):
    """One port's result (a tuple: a full scan makes 65535 of them)."""

    port: int
    state: str
    latency_ms: float | None = None
    owner: dict[str, Any] | None = None  # {"pid", "name", "user"} when the host is this machine
    reason: str = ""


@dataclass
class ScanResult:
    host: str
    ip: str
    proto: str
    concurrency: int
    peak: int = 0
    results: list[PortResult] = field(default_factory=list)
    cancelled: bool = False
    local: bool = False

    def count(self, state: str) -> int:
        return sum(1 for r in self.results if r.state == state)

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in STATES}
        for r in self.results:
            out[r.state] = out.get(r.state, 0) + 1
        return out

    @property
    def open_ports(self) -> list[int]:
        return [r.port for r in self.results if r.state == ConnectState.OPEN]

    def error_reasons(self) -> dict[str, int]:
        """Why ports ended in ``error``: reason -> how many."""
        out: dict[str, int] = {}
        for r in self.results:
            if r.state == ConnectState.ERROR:
                out[r.reason or "unknown"] = out.get(r.reason or "unknown", 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ip": self.ip,
            "proto": self.proto,
            "local": self.local,
            "concurrency": self.concurrency,
            "ports_scanned": len(self.results),
            "cancelled": self.cancelled,
            "summary": self.counts(),
            "results": [
                {
                    "port": r.port,
                    "state": r.state,
                    "reason": r.reason,
                    "latency_ms": r.latency_ms,
                    "owner": r.owner,
                }
                for r in self.results
            ],
        }


class _Poller:
    """epoll where there is one (Linux), else poll: readiness of the probes that wait."""

    def __init__(self) -> None:
        self._epoll = getattr(select, "epoll", None)
        if self._epoll is not None:
            self._ep = self._epoll()
        else:
            self._p = select.poll()

    def register(self, fd: int, want_read: bool) -> None:
        if self._epoll is not None:
            self._ep.register(fd, select.EPOLLIN if want_read else select.EPOLLOUT)
        else:
            self._p.register(fd, select.POLLIN if want_read else select.POLLOUT)

    def unregister(self, fd: int) -> None:
        if self._epoll is not None:
            self._ep.unregister(fd)
        else:
            self._p.unregister(fd)

    def poll(self, timeout: float) -> list[int]:
        if self._epoll is not None:
            return [fd for fd, _ev in self._ep.poll(max(0.0, timeout), 1024)]
        return [fd for fd, _ev in self._p.poll(max(0, int(timeout * 1000)))]

    def close(self) -> None:
        if self._epoll is not None:
            self._ep.close()


@dataclass(slots=True)
class _Waiting:
    sock: _socket.socket
    port: int
    started: float
    deadline: float
    local: tuple[Any, ...] | None  # the probe's own (ip, port), for the self-connect rule


class Scanner:
    """One scan, run with :meth:`run` (blocking). ``cancel`` stops it between probes."""

    def __init__(
        self,
        ip: str | Address,
        ports: Sequence[int],
        *,
        udp: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.addr = ip if isinstance(ip, Address) else numeric(ip)
        self.ip = self.addr.ip
        self.family = self.addr.family
        self.ports = list(ports)
        self.udp = udp
        self.concurrency = effective_concurrency(concurrency, len(self.ports))
        self.timeout = timeout
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.peak = 0
        self.emfile_retries = 0
        self._results: dict[int, PortResult] = {}
        self._waiting: dict[int, _Waiting] = {}  # fd -> probe, in start order (so deadlines ascend)
        self._own_ends: set[tuple[Any, ...]] = set()
        # made now, not in run(): it needs a descriptor too, and run() may start when none is left
        self._poller: _Poller | None = _Poller()
        self._drought = False  # gave up waiting for a descriptor; until one is had, fail at once
        self._proto = "udp" if udp else "tcp"
        self._reuse = sys.platform.startswith("linux")  # see _tcp_burst
        self._verdicts: dict[int, Verdict] = {}  # errno -> verdict, for this scan's protocol

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> dict[int, PortResult]:
        if self._poller is None:
            self._poller = _Poller()
        try:
            self._loop()
        finally:
            for w in self._waiting.values():
                w.sock.close()
            self._waiting.clear()
            self._poller.close()
            self._poller = None
        return self._results

    @property
    def done(self) -> int:
        return len(self._results)

    def _loop(self) -> None:
        n = len(self.ports)
        i = 0
        cancel = self.cancel
        while i < n or self._waiting:
            if cancel.is_set():
                return
            if i < n and len(self._waiting) < self.concurrency:
                stop = min(n, i + PROGRESS_EVERY)
                i = self._udp_burst(i, stop) if self.udp else self._tcp_burst(i, stop)
                short = i < stop and len(self._waiting) < self.concurrency  # socket(): no descriptor
                if short and self._no_descriptor(self.ports[i]):
                    i += 1
                if i == stop:
                    self._report_progress()
                    continue
            if self._waiting:
                full = i >= n or len(self._waiting) >= self.concurrency
                first = next(iter(self._waiting.values()))
                wait = first.deadline - time.monotonic() if full else 0.0
                self._collect(wait)
        self._report_progress()

    def _report_progress(self) -> None:
        if self.progress is not None:
            self.progress(self.done, len(self.ports))

    def _finish(self, port: int, state: str, reason: str, latency: float | None = None) -> None:
        self._results[port] = PortResult(port, state, latency, None, reason)

    def _verdict(self, err: int) -> Verdict:
        """The verdict for a probe that failed with ``err`` (classified once per errno and scan)."""
        v = self._verdicts.get(err)
        if v is None:
            v = self._verdicts[err] = classify(self._proto, err)
        return v

    def _failed(self, port: int, err: int) -> None:
        v = self._verdict(err)
        self._results[port] = PortResult(port, v.state, None, None, v.reason)

    def _new_socket(self, kind: int) -> _socket.socket | None:
        # the C socket type itself: socket.socket's Python-level __init__ and close() wrapper cost
        # more than the system calls of a refused loopback connect
        try:
            s = _socket.socket(self.family, kind | socket.SOCK_NONBLOCK)
        except OSError as exc:
            if exc.errno not in _NO_FD:
                raise
            self.emfile_retries += 1
            return None
        self._drought = False
        return s

    def _no_descriptor(self, port: int) -> bool:
        """socket() failed for lack of a descriptor. Returns True when the port was given up."""
        if self._waiting:  # ours will free theirs within the timeout: wait for them, then retry
            self.concurrency = max(1, len(self._waiting))
            return False
        if self._drought:
            self._finish(port, ConnectState.ERROR, "no free file descriptor")
            return True
        give_up = time.monotonic() + max(EMFILE_PATIENCE, 2 * self.timeout)
        delay = 0.01
        kind = socket.SOCK_DGRAM if self.udp else socket.SOCK_STREAM
        while not self.cancel.is_set() and time.monotonic() < give_up:
            self.cancel.wait(delay)
            delay = min(delay * 2, 0.2)
            try:
                _socket.socket(self.family, kind).close()
                return False  # one is free again: the loop retries the port
            except OSError as exc:
                if exc.errno not in _NO_FD:
                    raise
                self.emfile_retries += 1
        if self.cancel.is_set():
            return False
        self._drought = True
        self._finish(port, ConnectState.ERROR, "no free file descriptor")
        return True

    # -- TCP ---------------------------------------------------------------------------------------

    def _tcp_burst(self, i: int, stop: int) -> int:
        """Start connects for ``ports[i:stop]`` while there is room; return the next index.

        A port whose answer is already in (on loopback: nearly all) is done here without leaving
        the loop. On Linux a second ``connect()`` on the same socket reports the outcome so far
        (ECONNREFUSED, 0 when connected, EALREADY while the handshake goes on) and, after a
        refusal, leaves the socket unconnected and reusable: a refused port costs two connect
        calls and no socket()/close(). Elsewhere (or if the kernel does not behave so) each port
        gets a fresh socket. Stops early when socket() finds no descriptor."""
        ports, results, waiting, limit = self.ports, self._results, self._waiting, self.concurrency
        make, family, kind = _socket.socket, self.family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
        v6 = family == socket.AF_INET6
        ip, scope = self.addr.bare_ip, self.addr.scope_id
        refused, in_progress = errno.ECONNREFUSED, errno.EINPROGRESS
        closed = self._verdict(refused)
        state, reason = closed.state, closed.reason
        clock = time.monotonic
        s: _socket.socket | None = None
        reused = False
        try:
            while i < stop and len(waiting) < limit:
                port = ports[i]
                if s is None:
                    try:
                        s = make(family, kind)
                    except OSError as exc:
                        if exc.errno not in _NO_FD:
                            raise
                        self.emfile_retries += 1
                        return i
                    self._drought = False
                    reused = False
                started = clock()
                target = (ip, port, 0, scope) if v6 else (ip, port)
                err = s.connect_ex(target)
                if err == in_progress or err == 0:
                    err = s.connect_ex(target)  # the outcome so far (see above)
                    if err == refused and self._reuse:
                        results[port] = PortResult(port, state, None, None, reason)
                        i += 1
                        reused = True
                        continue
                elif reused and err in _NOT_REUSABLE:  # this kernel does not reset a failed socket
                    self._reuse = False
                    s.close()
                    s = None
                    continue  # the same port again, on a fresh socket
                self._tcp_started(s, port, started, err)
                s = None
                i += 1
        finally:
            if s is not None:
                s.close()
        return i

    def _tcp_started(self, s: _socket.socket, port: int, started: float, err: int) -> None:
        """A connect that was not refused at once: connected, still going (wait), or failed."""
        if err == 0 or err == errno.EISCONN:
            try:
                peer = s.getpeername()
            except OSError:  # not connected after all: wait for it
                self._wait(s, port, started, want_read=False)
                return
            self._connected(s, port, started, peer)
            return
        if err in (errno.EALREADY, errno.EINPROGRESS):
            self._wait(s, port, started, want_read=False)
            return
        s.close()
        self._failed(port, err)

    def _connected(self, s: _socket.socket, port: int, started: float, peer: tuple[Any, ...]) -> None:
        try:
            me = s.getsockname()
        except OSError:
            me = None
        s.close()
        end = tuple(peer[:2])
        own = (me is not None and tuple(me[:2]) == end) or end in self._own_ends
        v = classify("tcp", self_connect=own)
        latency = round((time.monotonic() - started) * 1000, 3) if not own else None
        self._finish(port, v.state, v.reason, latency)

    def _wait(self, s: _socket.socket, port: int, started: float, want_read: bool) -> None:
        local = None
        if not self.udp:
            try:
                local = tuple(s.getsockname()[:2])
                self._own_ends.add(local)
            except OSError:
                pass
        fd = s.fileno()
        assert self._poller is not None
        self._poller.register(fd, want_read)
        self._waiting[fd] = _Waiting(s, port, started, started + self.timeout, local)
        if len(self._waiting) > self.peak:
            self.peak = len(self._waiting)

    def _release(self, fd: int) -> _Waiting:
        w = self._waiting.pop(fd)
        assert self._poller is not None
        self._poller.unregister(fd)
        if w.local is not None:
            self._own_ends.discard(w.local)
        return w

    def _collect(self, wait: float) -> None:
        """Results of the probes that are ready (waiting at most ``wait`` s), then the timeouts."""
        assert self._poller is not None
        proto = "udp" if self.udp else "tcp"
        for fd in self._poller.poll(wait):
            if fd not in self._waiting:
                continue
            w = self._release(fd)
            if self.udp:
                self._udp_ready(w)
                continue
            err = w.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                try:
                    peer = w.sock.getpeername()
                except OSError as exc:
                    err = exc.errno or errno.ENOTCONN
                else:
                    self._connected(w.sock, w.port, w.started, peer)
                    continue
            w.sock.close()
            self._failed(w.port, err)
        now = time.monotonic()
        while self._waiting:
            fd, w = next(iter(self._waiting.items()))
            if w.deadline > now:
                break
            self._release(fd)
            w.sock.close()
            v = classify(proto, timed_out=True)
            self._finish(w.port, v.state, v.reason)

    # -- UDP ---------------------------------------------------------------------------------------

    def _udp_burst(self, i: int, stop: int) -> int:
        """Send a datagram to each of ``ports[i:stop]`` while there is room (see :meth:`_tcp_burst`)."""
        while i < stop and len(self._waiting) < self.concurrency:
            port = self.ports[i]
            s = self._new_socket(socket.SOCK_DGRAM)
            if s is None:
                return i
            started = time.monotonic()
            _service, request = request_for(port)
            try:
                s.connect(self.addr.sockaddr(port))  # connected: ICMP errors come back on this socket
                s.send(request)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError as exc:
                err = exc.errno or errno.EIO
            if err == 0:
                self._wait(s, port, started, want_read=True)
            else:
                s.close()
                self._failed(port, err)
            i += 1
        return i

    def _udp_ready(self, w: _Waiting) -> None:
        try:
            w.sock.recv(1024)
            err = 0
        except BlockingIOError:  # woken without data: count it as silence
            w.sock.close()
            v = classify("udp", timed_out=True)
            self._finish(w.port, v.state, v.reason)
            return
        except OSError as exc:
            err = exc.errno or errno.EIO
        w.sock.close()
        v = classify("udp", err)
        latency = round((time.monotonic() - w.started) * 1000, 3) if err == 0 else None
        self._finish(w.port, v.state, v.reason, latency)


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
    """Scan ``ports`` on ``host`` (resolved once; UsageError if it cannot be). Blocking.

    When ``host`` is this machine, open ports get the owner of the socket that answered, and a
    silent UDP port with a socket bound there reads ``open`` (the one UDP rule, :mod:`app.outcome`)."""
    proto = "udp" if udp else "tcp"
    addr = resolve(host, ports[0] if ports else 0, proto)[0]
    scanner = Scanner(
        addr, ports, udp=udp, concurrency=concurrency, timeout=timeout, progress=progress, cancel=cancel
    )
    found = scanner.run()
    result = ScanResult(
        host=host,
        ip=addr.ip,
        proto=proto,
        concurrency=scanner.concurrency,
        peak=scanner.peak,
        cancelled=scanner.cancel.is_set(),
        local=is_local_address(addr.ip),
    )
    listeners: dict[int, dict[str, Any] | None] = {}
    interesting = {p for p, r in found.items() if r.state in (ConnectState.OPEN, ConnectState.OPEN_FILTERED)}
    if owners and result.local and interesting:
        listeners = local_listeners(addr.ip, interesting, proto)
    for port in sorted(found):
        r = found[port]
        if port in listeners:
            state, reason = r.state, r.reason
            if r.state == ConnectState.OPEN_FILTERED:
                v = classify(proto, timed_out=True, bound_here=True)
                state, reason = v.state, v.reason
            r = PortResult(port, state, r.latency_ms, listeners[port], reason)
        result.results.append(r)
    return result
