"""``portscope who PORT``: every socket on a port and who owns it (exit 0 in use, 1 free).

The one-shot command people run most: its start-up imports only what the answer needs (its plain
command lines are read without argparse, app/cli/parser.py ``fast_args``)."""

from __future__ import annotations

import sys

from app import exitcodes
from app.cli.common import (
    add_netns_option,
    add_stats_option,
    check_snapshot,
    color_on,
    one_shot,
    open_collector,
    port_arg,
    warn,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "who",
        help="who uses this port? (exit 0 if something does, 1 if nothing does)",
        description="Show every socket on PORT (listening and connected), its owner and its exposure.",
    )
    p.add_argument("port", type=port_arg, metavar="PORT")
    p.add_argument("--proto", choices=("tcp", "udp"), help="only this protocol")
    add_netns_option(p)
    add_stats_option(
        p,
        "TCP health: RTT, retransmits, bytes of each connection, the listener's accept queue; "
        "Linux netlink only",
    )
    p.add_argument("--json", action="store_true", help="JSON (same socket shape as list --json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.collector import sort_sockets
    from app.model import Proto

    one_shot()
    snapshot = open_collector(args, search=True).collect(port=args.port)
    check_snapshot(snapshot, args)
    socks = snapshot.on_port(args.port, Proto(args.proto) if args.proto else None)
    socks = sorted(sort_sockets(socks), key=lambda s: not s.listening)  # listeners first
    if args.json or socks:  # (a free port needs none of this)
        from app.exposure import ExposureMap
        from app.owners import OwnerFacts

        exposure = ExposureMap()
        facts = OwnerFacts()
        facts.prepare(snapshot, socks)
    if args.json:
        from app.serialize import iter_snapshot_json

        for text in iter_snapshot_json(
            snapshot, socks, exposure, facts=facts, stats=args.stats, port=args.port
        ):
            sys.stdout.write(text)
        sys.stdout.write("\n")
    elif socks:
        from app.cli.table import Layout, heading, holder_lines, needs_netns_column, socket_table

        color = color_on(args)
        layout = Layout(facts=facts, netns=needs_netns_column(socks), stats=args.stats, color=color)
        header, *rows = socket_table(socks, snapshot, exposure, layout)
        n = len(socks)
        place = port_place(args.port, snapshot.ephemeral)
        lines = [header, heading(f"── port {args.port}: {place} ({n} socket{'s' if n != 1 else ''})", color)]
        for sock, row in zip(socks, rows, strict=True):
            lines.append(row)
            lines.extend(holder_lines(sock, snapshot, facts))  # every sharer, primary first
        sys.stdout.write("\n".join(lines) + "\n")
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
