"""``portscope watch``: print one line per socket event (opened, closed, owner/state changed; with
``--stats`` also queue-overflow) until Ctrl-C or SIGTERM; NDJSON with ``--json``; ``--log FILE``
appends NDJSON, fsync'ed per poll."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from app import exitcodes
from app.cli.common import (
    add_netns_option,
    add_stats_option,
    check_snapshot,
    interval_arg,
    open_collector,
    warn,
)


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
        type=interval_arg,
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
    add_netns_option(p)
    add_stats_option(
        p,
        "also report queue-overflow: a listener's accept queue at 80%% of its backlog, or connections "
        "the host dropped from full queues; JSON sockets get tcp_info and queue; Linux netlink only",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.fileout import open_append
    from app.memtune import return_freed_memory
    from app.owners import OwnerFacts
    from app.watch import Watch

    return_freed_memory()  # (it runs for long: see app.memtune)

    collector = open_collector(args)  # --stats without netlink: one line, exit 69
    # --log '' is a mistake, not "no log"; a FIFO or a directory is refused (never blocks)
    log = open_append(args.log, what="log file") if args.log is not None else None
    interrupted = False
    try:
        watch = Watch(
            collector,
            scope=args.scope,
            interval=args.watch_interval,
            out=sys.stdout,
            as_json=args.json,
            log=log,
            log_name=args.log or "",
            warn=warn,
            facts=OwnerFacts(),
            stats=args.stats,
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
            check_snapshot(first, args)
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
            try:
                log.close()  # a no-op when the watch closed it after a failure
            except OSError:
                pass
    if interrupted:
        return exitcodes.INTERRUPT
    # the log is incomplete (it said so when it failed): not a clean success
    return exitcodes.OUTPUT if watch.log_error else exitcodes.OK
