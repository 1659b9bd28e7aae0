"""Prometheus metrics of a snapshot, for ``portscope metrics`` and ``portscope serve``.

portscope is an exporter here, not a fleet system: the facts one poll saw become metric families
named by Prometheus' conventions (``portscope_`` prefix, base units, ``_total`` counters, ``_info``
gauges of 1 for metadata, no ``pid`` label) and Prometheus does the rest. Cardinality is bounded by
design: a series per listener, never per connection (connections are counted by protocol and
state, and per port only for an allow-list). Both commands share one :class:`PortscopeCollector`
on a ``prometheus_client`` registry, so the text they print is the same; the registry's own
escaping takes care of the exposition format, and every string from the system passes through
:func:`app.textsafe.printable` first so no raw control character reaches a scraper or a file.

``prometheus_client`` costs about 44 ms to import on its own, 25 ms on top of what the CLI loads
anyway (``python -X importtime``; README): only the two commands that need it import this
module, inside their ``run()``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector
from prometheus_client.registry import CollectorRegistry

from app import __version__
from app.backends.base import Collector
from app.exposure import ExposureKind, ExposureMap
from app.health import queue
from app.model import LISTEN, TCP_STATES, UDP_BOUND, UDP_CONNECTED, Proto, Snapshot, Sock
from app.owners import OwnerFacts
from app.ports import PortRange
from app.textsafe import printable

PREFIX = "portscope_"
NAME_LIMIT = 64  # label values from the system are cut here (a name is 15 bytes; a user name short)

# exposure label values, one per kind; the dashboard's "all interfaces" is "all" here
EXPOSURES = ("loopback", "all", "interface", "unknown")
# every TCP state a connection can be in, lower-case like node_exporter's tcpstat
CONNECTION_STATES: tuple[tuple[str, str], ...] = (
    *((Proto.TCP.value, s.lower()) for s in TCP_STATES if s != LISTEN),
    (Proto.UDP.value, UDP_CONNECTED.lower()),
)
LISTENING_LABELS = ("proto", "family", "address", "port", "exposure", "range", "process", "user", "service")


def service_label(snapshot: Snapshot, sock: Sock, facts: OwnerFacts | None = None) -> str:
    """The ``service`` label of a listener: its systemd unit (``nginx.service``), container name
    (``web``; its short id until the engine answered) or ``.socket`` unit; ``""`` when none."""
    svc = facts.service(snapshot, sock) if facts is not None else None
    if svc is None:
        return ""
    return svc.name or svc.unit or ""


def exposure_label(exposure: ExposureMap, ip: str) -> str:
    """``loopback`` (also an address on a loopback interface), ``all``, ``interface`` or ``unknown``."""
    found = exposure.classify(ip)
    if found.kind is ExposureKind.ALL:
        return "all"
    if found.kind is ExposureKind.UNKNOWN:
        return "unknown"
    return "interface" if found.beyond_loopback else "loopback"


def _text(value: str | None) -> str:
    return printable(value, NAME_LIMIT)


def _client_udp(snapshot: Snapshot, sock: Sock) -> bool:
    """An unconnected UDP socket on a port in the OS ephemeral range: almost always a client (DNS,
    NTP, mDNS) whose port changes every time; a series each would churn without end."""
    return sock.proto is Proto.UDP and sock.status == UDP_BOUND and snapshot.in_ephemeral(sock)


def families(
    snapshot: Snapshot,
    exposure: ExposureMap,
    *,
    ports: Sequence[int] = (),
    duration: float | None = None,
    facts: OwnerFacts | None = None,
) -> list[Metric]:
    """The metric families of ``snapshot``. ``ports`` is the allow-list for
    ``portscope_port_connections``; ``duration`` the seconds the poll took."""
    out: list[Metric] = []
    info = InfoMetricFamily(
        PREFIX + "listening",
        "A listening socket (TCP LISTEN, or UDP bound without a peer); 1 per listener. Unconnected "
        "UDP sockets on ephemeral ports (clients) are counted in portscope_listeners only.",
        labels=LISTENING_LABELS,
    )
    by_range: Counter[tuple[str, str]] = Counter()
    ephemeral = 0
    seen: set[tuple[str, ...]] = set()
    queues: dict[tuple[str, str, str], list[int]] = {}
    for sock in snapshot.sockets:
        if not sock.listening:
            continue
        where = exposure_label(exposure, sock.laddr.ip)
        by_range[(sock.range.value, where)] += 1
        if snapshot.in_ephemeral(sock):
            ephemeral += 1
        if sock.status == LISTEN and snapshot.stats is not None:
            q = queue(snapshot.stats, sock.inode)
            if q is not None:  # SO_REUSEPORT siblings share the labels: their queues add up
                total = queues.setdefault((sock.proto.value, sock.laddr.ip, str(sock.port)), [0, 0])
                total[0] += q.current
                total[1] += q.max
        if _client_udp(snapshot, sock):
            continue
        owner = snapshot.owner(sock)
        labels = (
            sock.proto.value,
            sock.family.value,
            sock.laddr.ip,
            str(sock.port),
            where,
            sock.range.value,
            _text(owner.name) if owner else "",
            _text(owner.username) if owner else "",
            _text(service_label(snapshot, sock, facts)),
        )
        if labels not in seen:  # siblings without a pid label are one series
            seen.add(labels)
            info.add_metric(labels, {})
    out.append(info)

    listeners = GaugeMetricFamily(
        PREFIX + "listeners",
        "Listening sockets by IANA port range and exposure (loopback, all, interface, unknown).",
        labels=("range", "exposure"),
    )
    for r in PortRange:
        for where in EXPOSURES:
            listeners.add_metric((r.value, where), by_range.get((r.value, where), 0))
    out.append(listeners)
    out.append(
        GaugeMetricFamily(
            PREFIX + "ephemeral_listeners",
            "Listening sockets whose port is inside the OS ephemeral range (clients may collide with them).",
            value=ephemeral,
        )
    )

    connections = GaugeMetricFamily(
        PREFIX + "connections",
        "Sockets that are not listening, by protocol and state (lower-case TCP state names).",
        labels=("proto", "state"),
    )
    counted = Counter((s.proto.value, s.status.lower()) for s in snapshot.sockets if not s.listening)
    for key in (*CONNECTION_STATES, *sorted(set(counted) - set(CONNECTION_STATES))):
        connections.add_metric(key, counted.get(key, 0))
    out.append(connections)

    if ports:
        allowed = set(ports)
        per_port = Counter(
            (str(s.port), s.status.lower()) for s in snapshot.sockets if not s.listening and s.port in allowed
        )
        port_conns = GaugeMetricFamily(
            PREFIX + "port_connections",
            "Connections whose local port is one of --ports (those its service accepted), by state.",
            labels=("port", "state"),
        )
        for port in sorted(allowed):
            per_port.setdefault((str(port), "established"), 0)
        for key in sorted(per_port, key=lambda k: (int(k[0]), k[1])):
            port_conns.add_metric(key, per_port[key])
        out.append(port_conns)

    if snapshot.stats is not None:
        length = GaugeMetricFamily(
            PREFIX + "listen_queue_length",
            "Connections waiting in a TCP listener's accept queue (not accept()ed yet).",
            labels=("proto", "address", "port"),
        )
        limit = GaugeMetricFamily(
            PREFIX + "listen_queue_max",
            "The accept-queue limit of a TCP listener (its listen() backlog, capped by somaxconn).",
            labels=("proto", "address", "port"),
        )
        for endpoint, (current, maximum) in queues.items():
            length.add_metric(endpoint, current)
            limit.add_metric(endpoint, maximum)
        out += [length, limit]
    if snapshot.listen_counters is not None:
        overflows, drops = snapshot.listen_counters
        out.append(
            CounterMetricFamily(
                PREFIX + "listen_overflows",
                "Times a TCP accept queue on this host was full when a connection completed (since boot).",
                value=overflows,
            )
        )
        out.append(
            CounterMetricFamily(
                PREFIX + "listen_drops",
                "Connection attempts this host's TCP listeners dropped (overflows among them; since boot).",
                value=drops,
            )
        )

    out.append(
        GaugeMetricFamily(
            PREFIX + "hidden_owners",
            "Sockets that should have an owning process but show none (other users' processes need root).",
            value=snapshot.hidden_owners,
        )
    )
    if duration is not None:
        out.append(
            GaugeMetricFamily(
                PREFIX + "collector_duration_seconds",
                "How long the poll behind these metrics took.",
                value=duration,
                unit="seconds",
            )
        )
    build = InfoMetricFamily(
        PREFIX + "build",
        "The portscope version and the socket source it reads (netlink, procnet or psutil).",
        labels=("version", "collector"),
    )
    build.add_metric((__version__, snapshot.source), {})
    out.append(build)
    return out


# --- polling at most every interval seconds -----------------------------------------------------


class SnapshotCache:
    """Hands out the last snapshot, polling again only when it is ``interval`` seconds old, so a
    scrape storm cannot become a poll storm: concurrent scrapes wait for the one poll under way
    and share it. A failed poll is remembered for the interval too (and raised again)."""

    def __init__(
        self, collector: Collector, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.collector = collector
        self.interval = interval
        self.clock = clock
        self.polls = 0  # how many times the collector was asked (tests, and a debugging aid)
        self.duration = 0.0
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._error: Exception | None = None
        self._at = float("-inf")

    def get(self) -> tuple[Snapshot, float]:
        """The current snapshot and the seconds its poll took."""
        with self._lock:
            if self.clock() - self._at >= self.interval or (self._snapshot is None and self._error is None):
                self.polls += 1
                started = time.perf_counter()
                try:
                    snapshot = self.collector.collect()
                except Exception as exc:
                    self._error, self._at = exc, self.clock()
                    raise
                self.duration = time.perf_counter() - started
                self._snapshot, self._error, self._at = snapshot, None, self.clock()
            if self._error is not None:
                raise self._error
            assert self._snapshot is not None
            return self._snapshot, self.duration


class PortscopeCollector(PromCollector):
    """The one ``prometheus_client`` collector both commands register: families of the cached
    snapshot, built once per snapshot however many scrapes read them."""

    def __init__(self, cache: SnapshotCache, ports: Sequence[int] = (), exposure: ExposureMap | None = None):
        self.cache = cache
        self.ports = tuple(ports)
        self.exposure = exposure or ExposureMap()
        self._lock = threading.Lock()
        self._built_for: Snapshot | None = None
        self._families: list[Metric] = []
        self.facts = OwnerFacts()  # kept: a process's service is read once

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration, and no poll just to describe

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot, duration = self.cache.get()
            if snapshot is not self._built_for:
                self.facts.prepare(snapshot)  # may ask container engines: never on a UI thread
                self._families = families(
                    snapshot, self.exposure, ports=self.ports, duration=duration, facts=self.facts
                )
                self._built_for = snapshot
            built = self._families
        return iter(built)


def registry_for(collector: PortscopeCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def stats_collector() -> Collector:
    """The best collector that also reads queues and the host's listen counters: the Linux
    backend with stats (psutil as its fallback, and everywhere else, where those series are
    absent). ``PORTSCOPE_COLLECTOR=psutil`` forces the portable one, as for every command."""
    from app.collector import default_collector

    return default_collector(stats=True)


def exposition(registry: CollectorRegistry) -> str:
    """The Prometheus text format (0.0.4) of ``registry``."""
    from prometheus_client import generate_latest

    return generate_latest(registry).decode("utf-8")


def samples(registry: CollectorRegistry) -> list[dict[str, Any]]:
    """Every sample as ``{"name", "labels", "value"}`` (``metrics --json``): the same collector and
    the same names (with ``_total`` and ``_info``) as the text format."""
    out: list[dict[str, Any]] = []
    for metric in registry.collect():
        for sample in metric.samples:
            value = sample.value
            out.append(
                {
                    "name": sample.name,
                    "labels": dict(sample.labels),
                    "value": int(value) if float(value).is_integer() else value,
                }
            )
    return out


# --- the HTTP endpoint (portscope serve) ------------------------------------------------------

LANDING = (
    b"<html><head><title>portscope exporter</title></head><body><h1>portscope exporter</h1>"
    b'<p><a href="/metrics">Metrics</a></p></body></html>\n'
)


def make_http_server(
    registry: CollectorRegistry, host: str, port: int, on_error: Callable[[Exception], None]
) -> Any:
    """A threaded HTTP server (not started) answering ``/metrics`` from ``registry``, a landing
    page at ``/`` and 404 elsewhere. A poll that fails answers 500 (Prometheus marks the target
    down) and is reported through ``on_error``, never as a traceback. Raises OSError when it
    cannot bind and socket.gaierror when ``host`` does not resolve."""
    import socket
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import make_wsgi_app

    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            try:
                return list(metrics_app(environ, start_response))
            except Exception as exc:
                on_error(exc)
                start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
                return [f"portscope: the poll failed: {printable(str(exc))}\n".encode()]
        if path in ("/", ""):
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [LANDING]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: the metrics are at /metrics\n"]

    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = family

        def server_bind(self) -> None:
            # HTTPServer.server_bind looks the bind address up with getfqdn (a DNS query for
            # 0.0.0.0 on some hosts): not needed to serve, so not done.
            socketserver.TCPServer.server_bind(self)
            self.server_name = str(self.server_address[0])
            self.server_port = int(self.server_address[1])
            self.setup_environ()

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a scraper that went away mid-request is not this server's error

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    return make_server(str(sockaddr[0]), port, app, Server, handler_class=QuietHandler)
