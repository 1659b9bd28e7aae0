"""``portscope metrics``: one poll as Prometheus metrics, to stdout or atomically to a file for
node_exporter's textfile collector (a cron job or a systemd timer runs it)."""

from __future__ import annotations

import argparse
import json
import sys

from app import exitcodes
from app.errors import UsageError

MAX_PORTS = 100  # --ports: each allowed port adds a few series; more is a per-port exporter's job


def ports_arg(text: str) -> list[int]:
    """``--ports 5432,6379`` (ranges allowed): the allow-list for per-port connection series."""
    from app.parsing import parse_port_spec

    try:
        ports = parse_port_spec(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if len(ports) > MAX_PORTS:
        raise argparse.ArgumentTypeError(
            f"too many ports ({len(ports)}): at most {MAX_PORTS}, each one adds series of its own"
        )
    return ports


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "metrics",
        help="print Prometheus metrics of the listeners and connections (or write a textfile)",
        description="Poll once and print the Prometheus text exposition: one portscope_listening_info "
        "series per listener, counts of connections by protocol and state, accept queues, hidden "
        "owners. --textfile writes it atomically for node_exporter's textfile collector.",
    )
    p.add_argument(
        "--ports",
        type=ports_arg,
        default=[],
        metavar="LIST",
        help="also count connections per state for these local ports only (e.g. 5432,6379; at most 100)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--textfile",
        metavar="PATH",
        help="write to PATH atomically (temp file + rename) instead of stdout, e.g. "
        "/var/lib/prometheus/node-exporter/portscope.prom",
    )
    out.add_argument("--json", action="store_true", help="the samples as JSON (see README)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.cli.common import warn
    from app.metrics import (
        PortscopeCollector,
        SnapshotCache,
        exposition,
        registry_for,
        samples,
        stats_collector,
    )

    cache = SnapshotCache(stats_collector(), interval=float("inf"))
    registry = registry_for(PortscopeCollector(cache, args.ports))
    if args.json:
        doc = {"schema": 1, "samples": samples(registry)}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        text = exposition(registry)
        if args.textfile:
            from app.errors import OutputError, UsageError
            from app.fileout import write_atomic

            try:
                write_atomic(args.textfile, text, what="metrics file")
            except OutputError as exc:  # a full or read-only textfile directory: a bad --textfile
                raise UsageError(str(exc)) from None
            if args.textfile != "-" and not args.textfile.endswith(".prom"):
                warn("node_exporter's textfile collector reads only files whose names end in .prom")
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(text.encode("utf-8"))
    snapshot, _ = cache.get()
    for line in snapshot.warnings:
        warn(line)
    return exitcodes.OK
