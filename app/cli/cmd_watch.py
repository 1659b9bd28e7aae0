"""``portscope watch``: print one line per socket event (opened, closed, owner/state changed) until
Ctrl-C or SIGTERM; NDJSON with ``--json``; ``--log FILE`` appends NDJSON, fsync'ed per poll."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from app import exitcodes
from app.cli.common import warn


def _interval(text: str) -> float:
    from app.cli.main import interval_arg

    return interval_arg(text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch",
        help="print socket events (opened, closed, owner-changed, state-changed) as they happen",
        description="Poll the sockets every S seconds and print one line per change until Ctrl-C "
        "or SIGTERM. Sockets already open at start are the starting point, not events.",
    )
    p.add_argument(
        "--interval",
        dest="watch_interval",
        type=_interval,
        default=2.0,
        metavar="S",
        help="seconds between polls, 0.2-3600 (default 2)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--listening",
        dest="scope",
        action="store_const",
        const="listening",
        help="listeners only (default)",
    )
    which.add_argument(
        "--connections", dest="scope", action="store_const", const="connections", help="connections only"
    )
    which.add_argument(
        "--all", dest="scope", action="store_const", const="all", help="listeners and connections"
    )
    p.set_defaults(scope="listening")
    p.add_argument("--json", action="store_true", help="one JSON object per event (NDJSON, see README)")
    p.add_argument("--log", metavar="FILE", help="also append every event as NDJSON to FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.collector import default_collector
    from app.errors import UsageError
    from app.watch import Watch

    log = None
    if args.log:
        try:
            log = open(args.log, "a", encoding="utf-8")  # noqa: SIM115 - closed in finally
        except OSError as exc:
            raise UsageError(f"cannot open log file {args.log!r}: {exc.strerror or exc}") from None
    interrupted = False
    try:
        watch = Watch(
            default_collector(),
            scope=args.scope,
            interval=args.watch_interval,
            out=sys.stdout,
            as_json=args.json,
            log=log,
            warn=warn,
        )

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            nonlocal interrupted
            interrupted = interrupted or signum == signal.SIGINT
            watch.stop.set()  # finish the current batch, then leave the loop
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: now

        previous: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
        try:
            first = watch.start()
            n = len(first.sockets)
            what = {"listening": "listening socket", "connections": "connection", "all": "socket"}
            warn(
                f"watching {n} {what[args.scope]}{'s' if n != 1 else ''} every {args.watch_interval:g}s"
                " (Ctrl-C to stop)"
            )
            watch.run()
        finally:
            for old_sig, handler in previous.items():
                signal.signal(old_sig, handler)
    finally:
        if log is not None:
            log.close()
    return exitcodes.INTERRUPT if interrupted else exitcodes.OK
