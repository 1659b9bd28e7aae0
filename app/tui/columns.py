"""The dashboard's column specs: one :class:`~widgets.table_model.Column` per column, which says
how the cell's value is read from the row's payload (``get``), shown, sorted and dropped.

Adding a column is adding one spec here: the row builders (:mod:`app.tui.rows`) take each
value from the specs, the table lays them out, the command palette offers "sort by" for it.

``priority`` decides what goes first on a narrow screen (the highest number first): the
command line, then the service, then age, protocol and connection counts, long before exposure,
pid and process. Spare width on a wide screen goes to the flex columns, the command line most of
all. The Netns column is hidden while only the current network namespace is read.

Values stay numbers where they are numbers (rates, RTT, retransmits, queues), so sorting is
numeric; their formatters make the text. Sorting by a rate starts with the busiest row
(``reverse_first``): sorting by Rx/s or Tx/s is "top talkers".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from app.ports import PortRange
from app.tui.formatting import fmt_age, fmt_count, fmt_pid, fmt_rate, fmt_rate_cell, fmt_remote, fmt_rtt
from widgets.table_model import Column, Group, column_index

if TYPE_CHECKING:
    from app.tui.rows import SockRow

EPHEMERAL_BADGE = "◦"  # marks a listener whose port is in the ephemeral range
ATTENTION_STATES = ("CLOSE_WAIT", "SYN_SENT", "SYN_RECV", "LAST_ACK", "FIN_WAIT1", "CLOSING")

# Row flags and the glyphs that mark them (drawn in the theme's error colour, the glyph first: a
# mark is never colour alone). Listed in the help screen and README.
STALLED, STORM, QUEUE_FULL = "stalled", "storm", "queue-full"
STALLED_GLYPH = "‖"  # unacked data and no progress for several polls
STORM_GLYPH = "↻"  # a retransmit storm since the last poll
QUEUE_GLYPH = "!"  # an accept queue 80% full, or overflows on the host since the last poll
HEALTH_MARKS = ((STALLED, STALLED_GLYPH), (STORM, STORM_GLYPH))


class QueueCell(NamedTuple):
    """A listener's accept queue: sorts by how many wait, then by the backlog."""

    current: int
    max: int


def _queue_text(value: Any, _now: float) -> str:
    return f"{value[0]}/{value[1]}" if value else ""


def _not_local(label: Any) -> bool:
    return label not in ("loopback", "unknown address", "lo", "", None)


def _command(r: SockRow) -> str:
    return r.command


LISTEN_COLUMNS = (
    Column("proto", "Proto", 5, priority=9, get=lambda r: r.sock.proto.value),
    Column("address", "Address", 15, priority=1, flex=1, max_width=40, get=lambda r: r.sock.laddr.ip),
    Column(
        "port",
        "Port",
        7,
        priority=0,
        align="right",
        get=lambda r: r.sock.laddr.port,
        badge=("ephemeral", EPHEMERAL_BADGE),
        marks=((QUEUE_FULL, QUEUE_GLYPH),),  # the queue mark where the Queue column does not fit
    ),
    Column("exposure", "Exposure", 14, priority=5, emphasis=_not_local, get=lambda r: r.exposure.label),
    Column("pid", "PID", 7, priority=4, align="right", format=fmt_pid, get=lambda r: r.sock.pid),
    Column("process", "Process", 18, priority=2, flex=2, get=lambda r: r.process),
    Column("user", "User", 8, priority=6, get=lambda r: r.user),
    Column("netns", "Netns", 12, priority=3, max_width=24, get=lambda r: r.netns),
    Column("service", "Service", 14, priority=11, flex=1, max_width=32, get=lambda r: r.service_name),
    Column(
        "queue",
        "Queue",
        8,
        priority=7,
        align="right",
        format=_queue_text,
        get=lambda r: r.queue,
        marks=((QUEUE_FULL, QUEUE_GLYPH),),
        reverse_first=True,
    ),
    Column("conns", "Conns", 5, priority=8, align="right", get=lambda r: r.conns, reverse_first=True),
    Column("age", "Age", 6, priority=10, align="right", format=fmt_age, age=True),
    Column("command", "Command", 24, priority=12, flex=4, get=_command),
)
L_PORT = column_index(LISTEN_COLUMNS, "port")
L_PROCESS = column_index(LISTEN_COLUMNS, "process")
L_CONNS = column_index(LISTEN_COLUMNS, "conns")
L_SERVICE = column_index(LISTEN_COLUMNS, "service")
L_QUEUE = column_index(LISTEN_COLUMNS, "queue")


def _remote(r: SockRow) -> tuple[str, int] | None:
    return r.sock.raddr  # an Endpoint is the (ip, port) tuple itself: no copy per row


def conn_columns(remote_format: Callable[[Any, float], str] = fmt_remote) -> tuple[Column, ...]:
    """The connections view's columns; ``remote_format`` shows the remote endpoint (reverse DNS).
    At 80 columns: state, both endpoints, the process and the two rates."""
    return (
        Column("proto", "Proto", 5, priority=10, get=lambda r: r.sock.proto.value),
        Column(
            "state",
            "State",
            12,
            priority=2,
            emphasis=lambda v: v in ATTENTION_STATES,
            get=lambda r: r.sock.status,
            marks=HEALTH_MARKS,
        ),
        Column("local", "Local", 19, priority=0, flex=1, max_width=47, get=lambda r: str(r.sock.laddr)),
        Column("remote", "Remote", 19, priority=1, flex=2, format=remote_format, get=_remote),
        Column("pid", "PID", 7, priority=6, align="right", format=fmt_pid, get=lambda r: r.sock.pid),
        Column("process", "Process", 11, priority=3, flex=1, get=lambda r: r.process),
        Column("user", "User", 8, priority=7, get=lambda r: r.user),
        Column(
            "rx",
            "Rx/s",
            6,
            priority=4,
            align="right",
            format=fmt_rate_cell,
            get=lambda r: r.rx,
            reverse_first=True,
        ),
        Column(
            "tx",
            "Tx/s",
            6,
            priority=5,
            align="right",
            format=fmt_rate_cell,
            get=lambda r: r.tx,
            reverse_first=True,
        ),
        Column(
            "rtt",
            "RTT",
            6,
            priority=8,
            align="right",
            format=fmt_rtt,
            get=lambda r: r.rtt,
            reverse_first=True,
        ),
        Column(
            "retrans",
            "Retrans",
            7,
            priority=9,
            align="right",
            format=fmt_count,
            get=lambda r: r.retrans,
            reverse_first=True,
        ),
        Column("netns", "Netns", 12, priority=6, max_width=24, get=lambda r: r.netns),
        Column("service", "Service", 14, priority=12, flex=1, max_width=32, get=lambda r: r.service_name),
        Column("age", "Age", 6, priority=11, align="right", format=fmt_age, age=True),
        Column("command", "Command", 24, priority=13, flex=4, get=_command),
    )


C_LOCAL = column_index(conn_columns(), "local")
C_RX = column_index(conn_columns(), "rx")
C_TX = column_index(conn_columns(), "tx")
NETNS = "netns"  # the column key hidden while only the current namespace is read


def _rate(v: Any, _now: float) -> str:
    return fmt_rate(v)


IFACE_COLUMNS = (
    Column("name", "Interface", 12, priority=0, get=lambda r: r.name),
    Column("up", "State", 5, priority=1, get=lambda r: "up" if r.itf.is_up else "down"),
    Column("ipv4", "IPv4", 15, priority=2, flex=1, get=lambda r: r.ipv4),
    Column("ipv6", "IPv6", 20, priority=7, flex=1, get=lambda r: r.ipv6),
    Column("gateway", "Gateway", 15, priority=6, get=lambda r: ", ".join(r.itf.gateways) or "-"),
    Column("mtu", "MTU", 5, priority=8, align="right", get=lambda r: r.itf.mtu or None),
    Column(
        "speed",
        "Speed",
        10,
        priority=9,
        align="right",
        get=lambda r: f"{r.itf.speed_mbps} Mb/s" if r.itf.speed_mbps else "-",
    ),
    Column("rx", "Receive", 10, priority=3, align="right", format=_rate, get=lambda r: r.rx_rate),
    Column("rx_spark", "", 10, priority=5, get=lambda r: r.rx_spark),
    Column("tx", "Send", 10, priority=4, align="right", format=_rate, get=lambda r: r.tx_rate),
    Column("tx_spark", "", 10, priority=5, get=lambda r: r.tx_spark),
)

RANGE_GROUPS = tuple(Group(r.value, r.heading) for r in PortRange)
