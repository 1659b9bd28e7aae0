"""``portscope list``: sockets and their owners, as a table grouped by range, JSON or CSV."""

from __future__ import annotations

import argparse
import sys

from app import exitcodes
from app.cli.common import (
    add_netns_option,
    add_stats_option,
    check_snapshot,
    color_on,
    one_shot,
    open_collector,
    pid_arg,
    port_arg,
    range_arg,
    warn,
    write_lines,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help="list listening sockets (or connections) with their owners",
        description="List sockets with owner pid, process, user and command, grouped by IANA range.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--listening", dest="kind", action="store_const", const="listening", help="listeners (default)"
    )
    which.add_argument(
        "--connections", dest="kind", action="store_const", const="connections", help="connections only"
    )
    which.add_argument(
        "--all", dest="kind", action="store_const", const="all", help="listeners and connections"
    )
    p.set_defaults(kind="listening")
    p.add_argument("--proto", choices=("tcp", "udp"), help="only this protocol")
    p.add_argument(
        "--range",
        dest="port_range",
        type=range_arg,
        metavar="RANGE",
        help="only local ports in this IANA range: well-known (0-1023), registered (1024-49151) "
        "or dynamic (49152-65535)",
    )
    p.add_argument("--exposed", action="store_true", help="only sockets reachable beyond loopback")
    p.add_argument("--port", type=port_arg, help="only this local port")
    p.add_argument("--pid", type=pid_arg, help="only sockets owned by this pid")
    add_netns_option(p)
    add_stats_option(
        p,
        "TCP health: RTT, retransmits, bytes received/sent of connections, accept queues of "
        "listeners (JSON: tcp_info and queue); Linux netlink only",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON (stable shape, see README)")
    fmt.add_argument("--csv", action="store_true", help="CSV (formula-like cells neutralised)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.cli.table import Layout, csv_row, grouped_socket_table, iter_csv, needs_netns_column
    from app.collector import filter_kind
    from app.exposure import ExposureMap
    from app.model import Proto
    from app.owners import OwnerFacts

    one_shot()
    wanted_range = args.port_range
    collector = open_collector(args)
    for_one_shot = getattr(collector, "for_one_shot", None)  # the Linux backend: no state for later polls
    if for_one_shot is not None:
        for_one_shot()
    snapshot = collector.collect(port=args.port)
    check_snapshot(snapshot, args)
    exposure = ExposureMap()
    socks = filter_kind(snapshot, args.kind)
    if args.proto:
        socks = [s for s in socks if s.proto is Proto(args.proto)]
    if wanted_range is not None:
        socks = [s for s in socks if s.range is wanted_range]
    if args.exposed:
        socks = [s for s in socks if exposure.classify(s.laddr.ip).beyond_loopback]
    if args.pid is not None:
        socks = [s for s in socks if s.pid == args.pid]

    facts = OwnerFacts()
    facts.prepare(snapshot, socks)  # container engines, systemd: blocking, fine in a one-shot
    if args.json:
        from app.serialize import iter_snapshot_json

        write = sys.stdout.write
        # = json.dump(indent=2)
        for text in iter_snapshot_json(snapshot, socks, exposure, facts=facts, stats=args.stats):
            write(text)
        write("\n")
    elif args.csv:
        # the CSV's columns follow the command line, not what the host has (a stable header)
        layout = Layout(facts=facts, netns=args.netns == "all", stats=args.stats)
        for text in iter_csv((csv_row(s, snapshot, exposure, layout) for s in socks), layout.csv_headers()):
            sys.stdout.write(text)
    else:
        layout = Layout(facts=facts, netns=needs_netns_column(socks), stats=args.stats, color=color_on(args))
        if socks:
            write_lines(grouped_socket_table(socks, snapshot, exposure, layout))
        else:
            warn("no sockets match")
    for line in snapshot.warnings:
        warn(line)
    return exitcodes.OK
