"""``portscope scan HOST PORTS``: open / closed / filtered per port (logic in app/scan.py).

Exit 0 when at least one port is open, 1 when none is, 2 for bad input or an unresolvable host.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from app import exitcodes
from app.cli.common import positive_float, positive_int, warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan",
        help="scan ports on a host (exit 0 if any is open, 1 if none)",
        description="Scan PORTS (like 22,80,8000-8100) on HOST with bounded concurrency: "
        "open / closed / filtered per port, with the local owner when HOST is this machine.",
    )
    p.add_argument("host", metavar="HOST")
    p.add_argument("ports", metavar="PORTS", help="e.g. 22,80,8000-8100")
    p.add_argument("--udp", action="store_true", help="UDP: a datagram per port")
    p.add_argument(
        "--concurrency",
        type=positive_int,
        default=200,
        metavar="N",
        help="probes in flight at once (200; capped below the open-file limit)",
    )
    p.add_argument("--timeout", type=positive_float, default=1.0, metavar="S", help="per port (1)")
    p.add_argument("--all", dest="show_all", action="store_true", help="list closed ports too")
    p.add_argument("--json", action="store_true", help="JSON: every port with its state")
    p.set_defaults(func=run)


class StderrProgress:
    """A one-line progress bar on stderr, redrawn at most every 0.1 s."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        filled = int(self.width * done / total) if total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\r" + " " * (self.width + 25) + "\r")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from app.cli.table import render
    from app.outcome import ConnectState, format_counts
    from app.parsing import check_hostname, parse_port_spec
    from app.scan import scan
    from app.textsafe import printable

    check_hostname(args.host)
    ports = parse_port_spec(args.ports)
    progress = StderrProgress() if sys.stderr.isatty() and not args.json else None
    result = scan(
        args.host,
        ports,
        udp=args.udp,
        concurrency=args.concurrency,
        timeout=min(args.timeout, 60.0),
        progress=progress,
    )
    if result.concurrency < min(args.concurrency, len(ports)):
        warn(f"concurrency capped at {result.concurrency} (open-file limit)")
    if args.json:
        json.dump(result.as_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        shown_states = (ConnectState.OPEN, ConnectState.OPEN_FILTERED)
        shown = [r for r in result.results if args.show_all or r.state in shown_states]
        rows = []
        for r in shown:
            owner = ""
            if r.owner:
                owner = f"{r.owner['pid']} {printable(r.owner['name'], 40)}"
                if r.owner["user"]:
                    owner += f" ({printable(r.owner['user'], 24)})"
            latency = f"{r.latency_ms:.2f} ms" if r.latency_ms is not None else ""
            rows.append([f"{r.port}/{result.proto}", r.state, latency, owner])
        if rows:
            sys.stdout.write("\n".join(render(rows, ("PORT", "STATE", "LATENCY", "OWNER"))) + "\n")
        warn(f"{printable(result.ip)}: {len(result.results)} ports scanned: {format_counts(result.counts())}")
    for reason, n in sorted(result.error_reasons().items()):
        hint = " (see ulimit -n)" if "descriptor" in reason else ""
        warn(f"{n} port(s) could not be probed: {reason}{hint}")
    return exitcodes.OK if result.open_ports else exitcodes.NEGATIVE
