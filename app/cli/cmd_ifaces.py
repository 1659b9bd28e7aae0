"""``portscope ifaces``: interfaces, addresses, gateways, state and counters."""

from __future__ import annotations

import argparse
import json
import sys

from app import exitcodes
from app.cli.common import warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ifaces",
        help="list network interfaces",
        description="List network interfaces: state, MTU, speed, default gateway, traffic since boot "
        "and addresses (with prefix length).",
    )
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.cli.table import render, terminal_width
    from app.interfaces import read_interfaces
    from app.textsafe import printable

    report = read_interfaces()  # CollectorUnavailable (exit 69) when nothing can be read
    ifaces = report.interfaces
    for line in report.warnings:  # what is missing (netlink refused, ...): stderr, also with --json
        warn(line)
    if args.json:
        json.dump({"interfaces": [i.as_dict() for i in ifaces]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return exitcodes.OK
    rows = []
    for i in ifaces:
        addrs = ", ".join(printable(a.cidr) for a in i.addresses) or "-"
        rows.append(
            [
                printable(i.name),
                ("up" if i.is_up else "down") + (" loopback" if i.loopback else ""),
                str(i.mtu),
                f"{i.speed_mbps} Mb/s" if i.speed_mbps else "-",
                ", ".join(printable(g) for g in i.gateways) or "-",
                human_bytes(i.bytes_recv),
                human_bytes(i.bytes_sent),
                addrs,
            ]
        )
    headers = ("NAME", "STATE", "MTU", "SPEED", "GATEWAY", "RX", "TX", "ADDRESSES")
    sys.stdout.write("\n".join(render(rows, headers, terminal_width())) + "\n")
    return exitcodes.OK


def human_bytes(n: int) -> str:
    """1536 -> "1.5 KiB" (counters since boot; exact values are in --json)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
