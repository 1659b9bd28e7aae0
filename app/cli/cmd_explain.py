"""``portscope explain PORT``: why a port can or cannot be reached, and what to do (app/explain.py).

First line the verdict, then the findings (info / warning / problem), then suggested commands,
which are shown and never run. Exit 0 when something listens and a connection from here
succeeds, 1 when nothing listens or it is unreachable from here, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

from app.cli.common import port_arg, positive_float, warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="why can or can't I reach this port, and what do I do? (exit 0 reachable, 1 not)",
        description="Explain PORT: who holds it, where it is bound, localhost resolution, a live test "
        "from here, the firewall (read only), and when nothing listens whether it binds. "
        "Exit 0 when something listens and a connection from here succeeds, 1 otherwise, 2 bad input.",
    )
    p.add_argument("port", type=port_arg, metavar="PORT")
    p.add_argument("--proto", choices=("tcp", "udp"), default="tcp", help="protocol (tcp)")
    p.add_argument(
        "--history",
        metavar="FILE",
        help="a 'portscope watch --log' file: say who held the port last",
    )
    p.add_argument(
        "--timeout", type=positive_float, default=1.0, metavar="S", help="per live test, at most 10 (1)"
    )
    p.add_argument("--json", action="store_true", help="JSON (see README)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.errors import UsageError
    from app.explain import explain
    from app.exposure import ExposureMap

    if args.timeout > 10:
        raise UsageError(f"invalid timeout {args.timeout:g}: at most 10 seconds")
    ex = explain(args.port, args.proto, timeout=args.timeout, history=args.history)
    if args.json:
        json.dump(ex.as_dict(ExposureMap()), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("".join(text + "\n" for text, _style in ex.lines()))
    for line in ex.snapshot.warnings:
        warn(line)
    return ex.exit_code
