"""The metric families of a snapshot (app.metrics): names, labels, bounded cardinality, escaping,
and the snapshot cache that keeps a scrape storm from becoming a poll storm."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.exposure import ExposureMap, interface_addresses
from app.metrics import (
    CONNECTION_STATES,
    LISTENING_LABELS,
    PortscopeCollector,
    SnapshotCache,
    exposition,
    exposure_label,
    families,
    registry_for,
    samples,
    service_label,
)
from app.model import Endpoint, Family, ProcessInfo, Proto, Snapshot, Sock
from app.textsafe import printable

EPHEMERAL = (32768, 60999)


def proc(pid: int, name: str, user: str = "root") -> ProcessInfo:
    return ProcessInfo(pid, 1, name, f"/usr/bin/{name}", (name,), user, 1000.0 + pid)


def listener(
    port: int, ip: str = "127.0.0.1", pid: int | None = 10, inode: int = 0, proto: Proto = Proto.TCP
) -> Sock:
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    status = "LISTEN" if proto is Proto.TCP else "BOUND"
    return Sock(proto, fam, Endpoint(ip, port), None, status, pid, inode or port)


def conn(
    lport: int, rport: int, status: str = "ESTABLISHED", pid: int | None = 10, proto: Proto = Proto.TCP
) -> Sock:
    return Sock(
        proto, Family.IPV4, Endpoint("127.0.0.1", lport), Endpoint("127.0.0.1", rport), status, pid, 0
    )


def snap(socks: list[Sock], procs: Sequence[ProcessInfo] = (), **kw: object) -> Snapshot:
    kw.setdefault("source", "netlink")
    return Snapshot(
        taken_at=0.0,
        sockets=tuple(socks),
        processes={p.pid: p for p in procs},
        ephemeral=EPHEMERAL,
        **kw,  # type: ignore[arg-type]
    )


def by_name(snapshot: Snapshot, **kw: object) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for metric in families(snapshot, ExposureMap(), **kw):  # type: ignore[arg-type]
        for s in metric.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def test_one_info_series_per_listener_with_its_labels() -> None:
    s = snap(
        [
            listener(5432, pid=10),
            listener(80, "0.0.0.0", pid=11),
            listener(53, "::1", pid=None, proto=Proto.UDP),
        ],
        [proc(10, "postgres", "postgres"), proc(11, "nginx", "www")],
    )
    info = by_name(s)["portscope_listening_info"]
    assert len(info) == 3 and all(v == 1 for _, v in info)
    pg = next(lbl for lbl, _ in info if lbl["port"] == "5432")
    assert pg == {
        "proto": "tcp",
        "family": "ipv4",
        "address": "127.0.0.1",
        "port": "5432",
        "exposure": "loopback",
        "range": "registered",
        "process": "postgres",
        "user": "postgres",
        "service": "",
    }
    assert set(pg) == set(LISTENING_LABELS)
    web = next(lbl for lbl, _ in info if lbl["port"] == "80")
    assert (web["exposure"], web["range"], web["process"]) == ("all", "well-known", "nginx")
    dns = next(lbl for lbl, _ in info if lbl["port"] == "53")
    assert (dns["proto"], dns["family"], dns["process"], dns["user"]) == ("udp", "ipv6", "", "")


def test_siblings_without_a_pid_label_are_one_series() -> None:
    """SO_REUSEPORT workers (same endpoint, same name, other pids) would be duplicate series, which
    Prometheus rejects; a different process name is a different series."""
    s = snap(
        [listener(8080, pid=10, inode=1), listener(8080, pid=11, inode=2), listener(8080, pid=12, inode=3)],
        [proc(10, "gunicorn"), proc(11, "gunicorn"), proc(12, "other")],
    )
    info = by_name(s)["portscope_listening_info"]
    assert sorted(lbl["process"] for lbl, _ in info) == ["gunicorn", "other"]
    text = exposition(_registry(s))
    lines = [ln for ln in text.splitlines() if ln.startswith("portscope_listening_info")]
    assert len(lines) == len(set(lines)) == 2


def test_client_udp_sockets_on_ephemeral_ports_get_no_series_but_are_counted() -> None:
    s = snap([listener(40000, proto=Proto.UDP), listener(40001), listener(123, proto=Proto.UDP)])
    m = by_name(s)
    ports = sorted(lbl["port"] for lbl, _ in m["portscope_listening_info"])
    assert ports == ["123", "40001"]  # the TCP listener on an ephemeral port is a real server
    assert m["portscope_ephemeral_listeners"] == [({}, 2)]
    assert sum(v for _, v in m["portscope_listeners"]) == 3


def test_listeners_by_range_and_exposure_are_always_twelve_series() -> None:
    empty = by_name(snap([]))["portscope_listeners"]
    assert len(empty) == 12 and all(v == 0 for _, v in empty)
    full = by_name(snap([listener(22, "0.0.0.0"), listener(8080), listener(8081)]))["portscope_listeners"]
    assert len(full) == 12
    counts = {(lbl["range"], lbl["exposure"]): v for lbl, v in full}
    assert counts[("well-known", "all")] == 1 and counts[("registered", "loopback")] == 2


def test_connection_series_do_not_grow_with_connections() -> None:
    few = by_name(snap([listener(8080), conn(8080, 50000)]))
    many = by_name(snap([listener(8080)] + [conn(8080, 33000 + i) for i in range(5000)]))
    assert {k: len(v) for k, v in few.items()} == {k: len(v) for k, v in many.items()}
    assert len(many["portscope_connections"]) == len(CONNECTION_STATES)
    est = {(lbl["proto"], lbl["state"]): v for lbl, v in many["portscope_connections"]}
    assert est[("tcp", "established")] == 5000 and est[("tcp", "time_wait")] == 0


def test_port_connections_only_for_the_allow_list() -> None:
    socks = [listener(5432), listener(6379), listener(8080)]
    socks += [conn(5432, 40000 + i) for i in range(3)] + [conn(5432, 41000, "CLOSE_WAIT")]
    socks += [conn(8080, 42000 + i) for i in range(7)]
    assert "portscope_port_connections" not in by_name(snap(socks))
    got = by_name(snap(socks), ports=[5432, 6379])["portscope_port_connections"]
    assert sorted((lbl["port"], lbl["state"], v) for lbl, v in got) == [
        ("5432", "close_wait", 1),
        ("5432", "established", 3),
        ("6379", "established", 0),  # an allowed port with nothing: 0, not absent
    ]


def test_queue_and_counter_series_come_from_stats_only() -> None:
    socks = [listener(8080, inode=1, pid=10), listener(8080, inode=2, pid=11), listener(9090, inode=3)]
    bare = by_name(snap(socks))
    for name in (
        "portscope_listen_queue_length",
        "portscope_listen_queue_max",
        "portscope_listen_overflows_total",
        "portscope_listen_drops_total",
    ):
        assert name not in bare  # the psutil backend reads no queues: absent, not 0
    stats = {1: (3, 128, 1), 2: (2, 128, 2), 3: (0, 4096, 3)}
    m = by_name(snap(socks, stats=stats, listen_counters=(17, 19)))
    length = {lbl["port"]: v for lbl, v in m["portscope_listen_queue_length"]}
    limit = {lbl["port"]: v for lbl, v in m["portscope_listen_queue_max"]}
    assert length == {"8080": 5, "9090": 0}  # SO_REUSEPORT siblings' queues add up
    assert limit == {"8080": 256, "9090": 4096}
    assert set(m["portscope_listen_queue_length"][0][0]) == {"proto", "address", "port"}
    assert m["portscope_listen_overflows_total"] == [({}, 17)]
    assert m["portscope_listen_drops_total"] == [({}, 19)]


def test_host_metrics() -> None:
    m = by_name(snap([], hidden_owners=4, source="psutil"), duration=0.25)
    assert m["portscope_hidden_owners"] == [({}, 4)]
    assert m["portscope_collector_duration_seconds"] == [({}, 0.25)]
    [(labels, value)] = m["portscope_build_info"]
    assert labels["collector"] == "psutil" and labels["version"] and value == 1
    assert not any("pid" in lbl for series in m.values() for lbl, _ in series)


HOSTILE = 'x"\\y\nz\x1b[31m\udcff\u202e'


def test_hostile_names_become_printable_label_values_and_valid_exposition() -> None:
    s = snap([listener(8080, pid=10)], [proc(10, HOSTILE, user="u\x07\n")])
    text = exposition(_registry(s))
    assert not [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 or c == "\u202e"]
    parsed = {s.name: s.labels for fam in text_string_to_metric_families(text) for s in fam.samples}[
        "portscope_listening_info"
    ]
    assert parsed["process"] == printable(HOSTILE) and parsed["user"] == printable("u\x07\n")
    assert "\\x1b[31m" in parsed["process"] and "\\n" in parsed["process"]


def test_service_label_is_empty_until_owners_fill_it() -> None:
    s = snap([listener(8080)])
    assert service_label(s, s.sockets[0]) == ""
    assert all(lbl["service"] == "" for lbl, _ in by_name(s)["portscope_listening_info"])


def test_exposure_labels() -> None:
    emap = ExposureMap()
    assert exposure_label(emap, "127.0.0.1") == "loopback"
    assert exposure_label(emap, "::1") == "loopback"
    assert exposure_label(emap, "::ffff:127.0.0.1") == "loopback"
    assert exposure_label(emap, "0.0.0.0") == "all"
    assert exposure_label(emap, "::") == "all"
    assert exposure_label(emap, "192.0.2.77") == "unknown"  # TEST-NET: on no interface here
    others = [ip for ip, names in interface_addresses().items() if "lo" not in names and ":" not in ip]
    if others:
        assert exposure_label(emap, others[0]) == "interface"


def _registry(s: Snapshot):  # type: ignore[no-untyped-def]
    return registry_for(PortscopeCollector(SnapshotCache(FixedCollector(s), float("inf"))))


class FixedCollector:
    """Hands out one snapshot and counts the polls."""

    def __init__(self, snapshot: Snapshot, delay: float = 0.0) -> None:
        self.snapshot = snapshot
        self.delay = delay
        self.calls = 0

    def collect(self, *, port: int | None = None) -> Snapshot:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return self.snapshot


def test_samples_shape() -> None:
    out = samples(_registry(snap([listener(8080)], [proc(10, "srv")], listen_counters=(1, 2))))
    assert all(set(s) == {"name", "labels", "value"} for s in out)
    names = {s["name"] for s in out}
    assert {"portscope_listening_info", "portscope_listen_overflows_total", "portscope_build_info"} <= names
    info = next(s for s in out if s["name"] == "portscope_listening_info")
    assert info["value"] == 1 and isinstance(info["value"], int) and info["labels"]["process"] == "srv"


def test_cache_polls_once_per_interval() -> None:
    now = [100.0]
    source = FixedCollector(snap([]))
    cache = SnapshotCache(source, interval=5, clock=lambda: now[0])
    for _ in range(50):
        cache.get()
    assert source.calls == cache.polls == 1
    now[0] += 4.9
    cache.get()
    assert source.calls == 1
    now[0] += 0.2
    cache.get()
    assert source.calls == 2


def test_concurrent_scrapes_share_one_poll() -> None:
    source = FixedCollector(snap([listener(8080)]), delay=0.2)
    collector = PortscopeCollector(SnapshotCache(source, interval=60))
    registry = registry_for(collector)
    built: list[str] = []

    def scrape() -> None:
        built.append(exposition(registry))

    threads = [threading.Thread(target=scrape) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(built) == 30 and len(set(built)) == 1
    assert source.calls == 1


class Failing:
    calls = 0

    def collect(self, *, port: int | None = None) -> Snapshot:
        self.calls += 1
        raise OSError("netlink went away")


def test_a_failed_poll_is_not_retried_by_every_scrape() -> None:
    now = [0.0]
    source = Failing()
    cache = SnapshotCache(source, interval=5, clock=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(10):
        with pytest.raises(OSError, match="netlink went away"):
            cache.get()
    assert source.calls == 1
    now[0] += 5
    with pytest.raises(OSError):
        cache.get()
    assert source.calls == 2
