"""The dashboard's column specs: one :class:`~widgets.table_model.Column` per column, which says
how the cell's value is read from the row's payload (``get``), shown, sorted and dropped.

Adding a column is adding one spec here: the row builders (:mod:`app.tui.rows`) take each
value from the specs, the table lays them out, the command palette offers "sort by" for it.

``priority`` decides what goes first on a narrow screen (the highest number first): the
command line, then age, protocol and connection counts, long before exposure, pid and process.
Spare width on a wide screen goes to the flex columns, the command line most of all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.ports import PortRange
from app.tui.formatting import fmt_age, fmt_pid, fmt_rate, fmt_remote
from widgets.table_model import Column, Group, column_index

if TYPE_CHECKING:
    from app.tui.rows import SockRow

EPHEMERAL_BADGE = "◦"  # marks a listener whose port is in the ephemeral range
ATTENTION_STATES = ("CLOSE_WAIT", "SYN_SENT", "SYN_RECV", "LAST_ACK", "FIN_WAIT1", "CLOSING")


def _not_local(label: Any) -> bool:
    return label not in ("loopback", "unknown address", "lo", "", None)


def _command(r: SockRow) -> str:
    return r.command


LISTEN_COLUMNS = (
    Column("proto", "Proto", 5, priority=8, get=lambda r: r.sock.proto.value),
    Column("address", "Address", 15, priority=1, flex=1, max_width=40, get=lambda r: r.sock.laddr.ip),
    Column(
        "port",
        "Port",
        7,
        priority=0,
        align="right",
        get=lambda r: r.sock.laddr.port,
        badge=("ephemeral", EPHEMERAL_BADGE),
    ),
    Column("exposure", "Exposure", 14, priority=5, emphasis=_not_local, get=lambda r: r.exposure.label),
    Column("pid", "PID", 7, priority=4, align="right", format=fmt_pid, get=lambda r: r.sock.pid),
    Column("process", "Process", 18, priority=2, flex=1, get=lambda r: r.name),
    Column("user", "User", 8, priority=6, get=lambda r: r.user),
    Column("conns", "Conns", 5, priority=7, align="right", get=lambda r: r.conns),
    Column("age", "Age", 6, priority=9, align="right", format=fmt_age, age=True),
    Column("command", "Command", 16, priority=10, flex=4, get=_command),
)
L_PORT = column_index(LISTEN_COLUMNS, "port")
L_PROCESS = column_index(LISTEN_COLUMNS, "process")
L_CONNS = column_index(LISTEN_COLUMNS, "conns")


def _remote(r: SockRow) -> tuple[str, int] | None:
    raddr = r.sock.raddr
    return (raddr.ip, raddr.port) if raddr else None


def conn_columns(remote_format: Callable[[Any, float], str] = fmt_remote) -> tuple[Column, ...]:
    """The connections view's columns; ``remote_format`` shows the remote endpoint (reverse DNS)."""
    return (
        Column("proto", "Proto", 5, priority=7, get=lambda r: r.sock.proto.value),
        Column(
            "state",
            "State",
            11,
            priority=2,
            emphasis=lambda v: v in ATTENTION_STATES,
            get=lambda r: r.sock.status,
        ),
        Column("local", "Local", 21, priority=0, flex=1, max_width=47, get=lambda r: str(r.sock.laddr)),
        Column("remote", "Remote", 21, priority=1, flex=2, format=remote_format, get=_remote),
        Column("pid", "PID", 7, priority=4, align="right", format=fmt_pid, get=lambda r: r.sock.pid),
        Column("process", "Process", 14, priority=3, flex=1, get=lambda r: r.name),
        Column("user", "User", 8, priority=5, get=lambda r: r.user),
        Column("age", "Age", 6, priority=8, align="right", format=fmt_age, age=True),
        Column("command", "Command", 16, priority=9, flex=4, get=_command),
    )


C_LOCAL = column_index(conn_columns(), "local")


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
