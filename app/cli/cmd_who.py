"""``portscope who PORT``: every socket on a port and who owns it (exit 0 in use, 1 free)."""

from __future__ import annotations

import argparse
import sys

from app import exitcodes
from app.cli.common import port_arg, warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "who",
        help="who uses this port? (exit 0 if something does, 1 if nothing does)",
        description="Show every socket on PORT (listening and connected), its owner and its exposure.",
    )
    p.add_argument("port", type=port_arg, metavar="PORT")
    p.add_argument("--proto", choices=("tcp", "udp"), help="only this protocol")
    p.add_argument("--json", action="store_true", help="JSON (same socket shape as list --json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.cli.table import socket_table
    from app.collector import default_collector, sort_sockets
    from app.exposure import ExposureMap
    from app.model import Proto
    from app.owners import OwnerFacts
    from app.serialize import iter_snapshot_json

    snapshot = default_collector().collect(port=args.port)
    exposure = ExposureMap()
    socks = snapshot.on_port(args.port, Proto(args.proto) if args.proto else None)
    socks = sorted(sort_sockets(socks), key=lambda s: not s.listening)  # listeners first
    if args.json:
        facts = OwnerFacts()
        facts.prepare(snapshot, socks)
        for text in iter_snapshot_json(snapshot, socks, exposure, facts=facts, port=args.port):
            sys.stdout.write(text)
        sys.stdout.write("\n")
    elif socks:
        sys.stdout.write("\n".join(socket_table(socks, snapshot, exposure)) + "\n")
    for line in snapshot.warnings:
        warn(line)
    if not socks:
        if not args.json:
            warn(f"nothing uses port {args.port}" + (f"/{args.proto}" if args.proto else ""))
        return exitcodes.NEGATIVE
    return exitcodes.OK
