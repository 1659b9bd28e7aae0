"""Deterministic data for dashboard tests: fixed snapshots, collectors, clock and interfaces.

Imported by the dashboard tests in tests/tui/ (the fixtures' own sanity check is test_fixtures.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Sequence

from app.exposure import Exposure, classify
from app.forwarders import Forward
from app.interfaces import Address, Interface
from app.model import Endpoint, Family, NetnsInfo, ProcessInfo, Proto, Snapshot, Sock
from app.procdetail import ProcessDetail
from app.service import CONTAINER, UNIT, Service

NOW = 1_700_000_000.0
EPHEMERAL = (32768, 60999)

PROCS = {
    101: ProcessInfo(101, 1, "nginx", "/usr/sbin/nginx", ("nginx: master process",), "root", NOW - 5000),
    202: ProcessInfo(202, 1, "postgres", "/usr/lib/postgresql/bin/postgres", ("postgres",), "postgres", NOW),
    303: ProcessInfo(303, 1, "[red]x\x1b[2J", "/tmp/evil", ("[bold]evil", "\x1b]0;pwn\x07"), "mallory", NOW),
    404: ProcessInfo(404, 1, "node", "/usr/bin/node", ("node", "server.js"), "alice", NOW),
}


def tcp(
    ip: str,
    port: int,
    status: str = "LISTEN",
    pid: int | None = None,
    raddr: Endpoint | None = None,
    inode: int | None = None,
) -> Sock:
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    return Sock(Proto.TCP, fam, Endpoint(ip, port), raddr, status, pid, inode)


def udp(ip: str, port: int, pid: int | None = None) -> Sock:
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    return Sock(Proto.UDP, fam, Endpoint(ip, port), None, "BOUND", pid)


BASE_SOCKETS = (
    tcp("0.0.0.0", 80, pid=101),
    tcp("::", 80, pid=101),
    tcp("127.0.0.1", 5432, pid=202),
    udp("127.0.0.1", 5353, pid=404),
    tcp("127.0.0.1", 8080, pid=404),
    tcp("127.0.0.1", 55000, pid=303),
    tcp("127.0.0.1", 40000, pid=None),
    tcp("127.0.0.1", 8080, "ESTABLISHED", 404, Endpoint("127.0.0.1", 41000)),
    tcp("127.0.0.1", 41000, "ESTABLISHED", 303, Endpoint("127.0.0.1", 8080)),
    tcp("127.0.0.1", 5432, "ESTABLISHED", 202, Endpoint("127.0.0.1", 42000)),
    tcp("127.0.0.1", 42000, "CLOSE_WAIT", 303, Endpoint("127.0.0.1", 5432)),
    tcp("127.0.0.1", 43000, "TIME_WAIT", None, Endpoint("127.0.0.1", 80)),
)


def snapshot(
    sockets: Sequence[Sock] = BASE_SOCKETS, taken_at: float = NOW, privileged: bool = False
) -> Snapshot:
    hidden = sum(1 for s in sockets if s.pid is None and s.status != "TIME_WAIT")
    return Snapshot(
        taken_at=taken_at,
        sockets=tuple(sockets),
        processes=PROCS,
        hidden_owners=hidden,
        ephemeral=EPHEMERAL,
        privileged=privileged,
    )


def second_snapshot() -> Snapshot:
    """The base, one refresh later: 8443 opened, 40000 closed, a connection changed state."""
    socks = [s for s in BASE_SOCKETS if s.laddr.port != 40000]
    socks.append(tcp("127.0.0.1", 8443, pid=404))
    socks = [
        tcp("127.0.0.1", 42000, "LAST_ACK", 303, Endpoint("127.0.0.1", 5432)) if s.laddr.port == 42000 else s
        for s in socks
    ]
    return snapshot(socks, NOW + 2)


# --- who the owners are, and TCP health: fixed facts and stats for the dashboard's new columns --------

WEB_ID = "ab12" * 16
SERVICES = {
    101: Service(UNIT, "nginx.service", unit="nginx.service"),
    202: Service(UNIT, "postgresql.service", unit="postgresql.service"),
    404: Service(
        CONTAINER, "web", id=WEB_ID, image="node:20", unit=f"docker-{WEB_ID}.scope", engine="docker"
    ),
}
TUNNEL_PID = 505
FORWARDS = {TUNNEL_PID: Forward("ssh-local", "127.0.0.1:8088", via="deploy@bastion", listen="127.0.0.1:9099")}


class FixedFacts:
    """Services and forwards of the fixture processes, as :class:`app.owners.OwnerFacts` answers
    (deterministic: the fixture pids are not this host's processes)."""

    def __init__(self) -> None:
        self.prepared = 0

    def prepare(self, snapshot: Snapshot, socks: object = None) -> None:
        self.prepared += 1

    def service(self, snapshot: Snapshot, sock: Sock) -> Service | None:
        return SERVICES.get(sock.pid) if sock.pid is not None else None

    def forward(self, snapshot: Snapshot, sock: Sock) -> Forward | None:
        return FORWARDS.get(sock.pid) if sock.pid is not None else None


HEALTH_PROCS = {
    **PROCS,
    102: ProcessInfo(
        102, 101, "nginx", "/usr/sbin/nginx", ("nginx: worker process",), "www-data", NOW - 4000
    ),
    103: ProcessInfo(
        103, 101, "nginx", "/usr/sbin/nginx", ("nginx: worker process",), "www-data", NOW - 4000
    ),
    TUNNEL_PID: ProcessInfo(
        TUNNEL_PID,
        1,
        "ssh",
        "/usr/bin/ssh",
        ("ssh", "-N", "-L", "127.0.0.1:9099:127.0.0.1:8088", "deploy@bastion"),
        "alice",
        NOW - 600,
    ),
}
# inodes: listeners 1xxx, connections 2xxx
HEALTH_SOCKETS = (
    tcp("0.0.0.0", 80, pid=101, inode=1001),
    tcp("127.0.0.1", 5432, pid=202, inode=1002),
    tcp("127.0.0.1", 8080, pid=404, inode=1003),
    tcp("127.0.0.1", 9099, pid=TUNNEL_PID, inode=1004),
    udp("127.0.0.1", 5353, pid=404),
    tcp("127.0.0.1", 5432, "ESTABLISHED", 202, Endpoint("127.0.0.1", 42000), inode=2001),  # busy: sends
    tcp("127.0.0.1", 42000, "ESTABLISHED", 303, Endpoint("127.0.0.1", 5432), inode=2002),  # receives
    tcp("127.0.0.1", 8080, "ESTABLISHED", 404, Endpoint("127.0.0.1", 41000), inode=2003),  # idle
    tcp("127.0.0.1", 41000, "ESTABLISHED", 303, Endpoint("127.0.0.1", 8080), inode=2004),  # stalled
    tcp("127.0.0.1", 80, "ESTABLISHED", 101, Endpoint("127.0.0.1", 43000), inode=2005),  # retransmits
)
MB = 1 << 20


def _tcp_row(
    inode: int,
    *,
    sent: int = 0,
    received: int = 0,
    unacked: int = 0,
    rtt_us: int = 50,
    total_retrans: int = 0,
    acked: int | None = None,
    rq: int = 0,
    wq: int = 0,
) -> tuple[int | None, ...]:
    """A stats row: (rqueue, wqueue, inode, *tcp_info in app.fast.tcpinfo.RAW_FIELDS order)."""
    acked = sent if acked is None else acked
    # retransmits, unacked, last_sent, last_recv, rtt, rttvar, cwnd, total, acked, received, rate, sent
    return (rq, wq, inode, 0, unacked, 10, 10, rtt_us, 20, 10, total_retrans, acked, received, 0, sent)


def health_stats(step: int) -> dict[int, tuple[int | None, ...]]:
    """Stats at poll ``step`` (0, 1, 2...): 5432's server end sends 2 MiB per poll (2 s) to the
    client 42000; 41000 has unacked data that never moves (stalled after 3 polls); 80's
    connection retransmits 20 segments per poll; 5432's accept queue is full (120/128)."""
    return {
        1001: (0, 511, 1001),
        1002: (120, 128, 1002),
        1003: (3, 128, 1003),
        1004: (0, 128, 1004),
        2001: _tcp_row(2001, sent=(step + 1) * 2 * MB, received=4096, rtt_us=180),
        2002: _tcp_row(2002, sent=4096, received=(step + 1) * 2 * MB, rtt_us=40),
        2003: _tcp_row(2003, sent=512, received=512, rtt_us=60),
        2004: _tcp_row(2004, sent=8192, acked=4096, unacked=3, rtt_us=200_000, received=100),
        2005: _tcp_row(
            2005, sent=(step + 1) * 64 * 1024, received=999, rtt_us=35_000, total_retrans=20 * step
        ),
    }


def health_snapshot(step: int = 0) -> Snapshot:
    """Poll ``step`` of a host whose sockets carry TCP stats (taken 2 s apart)."""
    return Snapshot(
        taken_at=NOW + 2 * step,
        sockets=HEALTH_SOCKETS,
        processes=HEALTH_PROCS,
        ephemeral=EPHEMERAL,
        privileged=True,
        holders={1001: (101, 102, 103)},
        namespaces={0: NetnsInfo(4026531840, "host", None, True)},
        stats=health_stats(step),
        listen_counters=(10, 10),
    )


def health_snapshots(n: int = 4) -> list[Snapshot]:
    return [health_snapshot(i) for i in range(n)]


class FixedExposure:
    """Exposure without reading this machine's interfaces (deterministic)."""

    def classify(self, ip: str) -> Exposure:
        return classify(ip, {"192.0.2.10": ["eth0"]})


class SequenceCollector:
    """Returns the given snapshots in turn, then the last one forever."""

    def __init__(self, *snaps: Snapshot) -> None:
        self.snaps = list(snaps)
        self.calls = 0

    def collect(self, *, port: int | None = None) -> Snapshot:
        snap = self.snaps[min(self.calls, len(self.snaps) - 1)]
        self.calls += 1
        return snap


class BlockingCollector:
    """The first collect returns at once; later ones block until ``release`` (or ``limit`` s)."""

    def __init__(self, snap: Snapshot, limit: float = 20.0) -> None:
        self.snap = snap
        self.limit = limit
        self.calls = 0
        self.blocking = threading.Event()  # a slow collect is under way
        self.release = threading.Event()
        self.finished_slow = threading.Event()  # a slow collect returned

    def collect(self, *, port: int | None = None) -> Snapshot:
        self.calls += 1
        if self.calls > 1:
            self.blocking.set()
            self.release.wait(self.limit)
            self.finished_slow.set()
        return self.snap


def fixed_interfaces() -> list[Interface]:
    return [
        Interface(
            "eth0",
            (Address("ipv4", "192.0.2.10", "255.255.255.0"), Address("ipv6", "2001:db8::10", "ffff:ffff::")),
            True,
            1500,
            1000,
            123456,
            654321,
            ("192.0.2.1",),
            "02:00:00:00:00:01",
        ),
        Interface(
            "lo",
            (Address("ipv4", "127.0.0.1", "255.0.0.0"), Address("ipv6", "::1", "")),
            True,
            65536,
            0,
            0,
            0,
            (),
        ),
        Interface("wlan0", (), False, 1500, 0, 0, 0, ()),
    ]


def fixed_detail(pid: int) -> ProcessDetail:
    info = HEALTH_PROCS.get(pid)
    if info is None:
        return ProcessDetail(pid, gone=True)
    return ProcessDetail(
        pid=pid,
        name=info.name,
        username=info.username,
        exe=info.exe,
        cwd="/srv",
        cmdline=info.cmdline,
        create_time=None,
        cpu_percent=1.5,
        memory_rss=42 * 1024 * 1024,
        parents=((1, "systemd"),),
    )


def make_app(collector: object | None = None, interval: float = 3600.0, **kwargs: object):  # type: ignore[no-untyped-def]
    """A dashboard over fixed data (imports textual lazily)."""
    from app.tui.app import PortscopeApp

    defaults: dict[str, object] = {
        "clock": lambda: NOW + 100,
        "hostname": "demo-host",
        "exposure": FixedExposure(),
        "interfaces": fixed_interfaces,
        "process_detail_source": fixed_detail,
        "resolver": lambda ip: "localhost" if ip.startswith("127.") else None,
        "blink": False,
        "facts": FixedFacts(),
    }
    defaults.update(kwargs)
    return PortscopeApp(collector or SequenceCollector(snapshot()), interval, **defaults)  # type: ignore[arg-type]


async def until(pilot: object, predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Let the app run until ``predicate()`` holds (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    pause: Callable[[float], Awaitable[None]] = pilot.pause  # type: ignore[attr-defined]
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await pause(0.02)


# sizes every bug test runs at (issue #13)
SIZES = [(80, 24), (60, 20), (40, 10)]
SIZE_IDS = [f"{w}x{h}" for w, h in SIZES]


def screen_lines(app: object) -> list[str]:
    """The text of every line on screen, as the terminal shows it (scrollbars, toasts and all)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]  # type: ignore[attr-defined]


def listed_ports(app: object, view: str = "listening") -> list[int]:
    """The local ports of the rows the table lists (group headers left out), in order."""
    from widgets.table_model import HEADER_PREFIX

    model = app.model(view)  # type: ignore[attr-defined]
    return [model.rows[k].payload.sock.laddr.port for k in model.lines if not k.startswith(HEADER_PREFIX)]
