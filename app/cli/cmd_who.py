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
        header, *rows = socket_table(socks, snapshot, exposure)
        n = len(socks)
        place = port_place(args.port, snapshot.ephemeral)
        heading = f"── port {args.port}: {place} ({n} socket{'s' if n != 1 else ''})"
        sys.stdout.write("\n".join([header, heading, *rows]) + "\n")
    for line in snapshot.warnings:
        warn(line)
    if not socks:
        if not args.json:
            what = f"{args.port}/{args.proto}" if args.proto else str(args.port)
            warn(f"nothing uses port {what} ({port_place(args.port, snapshot.ephemeral)})")
        return exitcodes.NEGATIVE
    return exitcodes.OK


def port_place(port: int, ephemeral: tuple[int, int]) -> str:
    """Where ``port`` sits: its IANA range, and whether the OS hands it out to outgoing
    connections ("registered 1024-49151, in the OS ephemeral range 32768-60999")."""
    from app.ports import port_range

    text = port_range(port).heading
    lo, hi = ephemeral
    if lo <= port <= hi:
        text += f", in the OS ephemeral range {lo}-{hi}"
    return text
