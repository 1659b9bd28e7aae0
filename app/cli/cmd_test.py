"""``portscope test HOST:PORT``: connect, banner, HTTP, TLS or UDP tests (logic in app/probe.py).

Exit 0 when the port is open, 1 when closed/filtered/unreachable, 2 for bad input or an
unresolvable host.
"""

from __future__ import annotations

import argparse
import json
import sys

from app import exitcodes
from app.cli.common import positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "test",
        help="test a port: connect, banner, HTTP, TLS, UDP (exit 0 open, 1 not)",
        description="Test HOST:PORT ([IPv6]:PORT, or a bare PORT for localhost): TCP connect with latency, "
        "optionally banner, HTTP and TLS; or a UDP datagram. Exit 0 open, 1 closed/filtered, 2 bad input.",
    )
    p.add_argument("target", metavar="HOST:PORT")
    p.add_argument("--udp", action="store_true", help="UDP: a datagram (a real query on DNS/NTP ports)")
    p.add_argument("--count", type=positive_int, default=3, metavar="N", help="TCP connect attempts (3)")
    p.add_argument("--timeout", type=positive_float, default=1.0, metavar="S", help="per step (1)")
    p.add_argument("--banner", action="store_true", help="show the server's first line (or first bytes)")
    p.add_argument("--http", action="store_true", help="GET /: status line, Server, redirect")
    p.add_argument("--tls", action="store_true", help="TLS handshake and certificate (auto on 443/8443)")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.errors import UsageError
    from app.parsing import parse_host_port
    from app.probe import ProbeOutcome, ProbePlan, run_plan

    host, port = parse_host_port(args.target)
    if args.count > 100:
        raise UsageError(f"invalid count {args.count}: at most 100")
    if args.udp and (args.banner or args.http or args.tls):
        raise UsageError("--banner, --http and --tls are TCP tests: drop --udp")
    plan = ProbePlan(
        host=host,
        port=port,
        udp=args.udp,
        count=args.count,
        timeout=min(args.timeout, 60.0),
        banner=args.banner,
        http=args.http,
        tls=args.tls,
    )
    outcome: ProbeOutcome | None = None
    for item in run_plan(plan):
        if isinstance(item, ProbeOutcome):
            outcome = item
        elif not args.json:
            sys.stdout.write(item.summary() + "\n")
            sys.stdout.flush()
    assert outcome is not None
    if args.json:
        json.dump(outcome.as_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return exitcodes.OK if outcome.is_open else exitcodes.NEGATIVE
