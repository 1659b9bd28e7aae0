"""``portscope free``: ports nothing uses that really bind now (logic in app/freeport.py).

Exit 0 with the ports on stdout (one a line; fewer than asked is warned about), 1 when none
was found, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

from app import exitcodes
from app.cli.common import positive_int, warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "free",
        help="find free ports (bind-tested; outside the ephemeral range first)",
        description="Print ports that nothing uses and that bind right now, preferring ports "
        "outside the OS ephemeral range. Exit 1 if none is found.",
    )
    p.add_argument(
        "--range",
        dest="range_spec",
        default="registered",
        metavar="RANGE",
        help="dynamic, registered (default), well-known or LO-HI",
    )
    p.add_argument("--count", type=positive_int, default=1, metavar="N", help="how many ports (1)")
    p.add_argument("--proto", choices=("tcp", "udp"), default="tcp", help="protocol (tcp)")
    p.add_argument(
        "--host", default="0.0.0.0", metavar="ADDR", help="address to bind-test (0.0.0.0; fe80::1%%eth0)"
    )
    p.add_argument("--json", action="store_true", help="JSON: the range searched and the ports found")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.errors import UsageError
    from app.freeport import find_free
    from app.parsing import check_hostname, parse_range
    from app.textsafe import printable

    lo, hi = parse_range(args.range_spec)
    check_hostname(args.host)
    if args.count > 1000:
        raise UsageError(f"invalid count {args.count}: at most 1000")
    ports = find_free(lo, hi, count=args.count, proto=args.proto, host=args.host)
    if args.json:
        doc = {"proto": args.proto, "host": args.host, "range": [lo, hi], "count": args.count, "ports": ports}
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
    else:
        for p in ports:
            sys.stdout.write(f"{p}\n")
    if not ports:
        warn(f"no free {args.proto} port in {lo}-{hi} on {printable(args.host, 80)}")
        return exitcodes.NEGATIVE
    if len(ports) < args.count:
        warn(f"found only {len(ports)} of {args.count} free ports in {lo}-{hi}")
    return exitcodes.OK
