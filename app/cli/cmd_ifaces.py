"""``portscope ifaces``: interfaces, addresses, gateways, state and counters."""

from __future__ import annotations

import argparse
import json
import sys

from app import exitcodes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ifaces", help="list network interfaces", description="List network interfaces.")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.cli.table import render, terminal_width
    from app.interfaces import list_interfaces

    ifaces = list_interfaces()
    if args.json:
        json.dump({"interfaces": [i.as_dict() for i in ifaces]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return exitcodes.OK
    rows = []
    for i in ifaces:
        addrs = ", ".join(a.address for a in i.addresses) or "-"
        rows.append(
            [
                i.name,
                "up" if i.is_up else "down",
                str(i.mtu),
                f"{i.speed_mbps} Mb/s" if i.speed_mbps else "-",
                ", ".join(i.gateways) or "-",
                f"{i.bytes_recv}",
                f"{i.bytes_sent}",
                addrs,
            ]
        )
    headers = ("NAME", "STATE", "MTU", "SPEED", "GATEWAY", "RX_BYTES", "TX_BYTES", "ADDRESSES")
    sys.stdout.write("\n".join(render(rows, headers, terminal_width())) + "\n")
    return exitcodes.OK
