"""``portscope baseline save FILE`` / ``portscope baseline diff FILE``: record the listeners, later
report drift (exit 3) for CI; 2 on an unreadable or malformed baseline."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from app import exitcodes
from app.cli.common import warn
from app.textsafe import printable

if TYPE_CHECKING:
    from app.model import Snapshot
    from app.owners import OwnerFacts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline",
        help="save the listening ports, or report drift from a saved baseline (exit 3)",
        description="Record the listeners (proto, address, port, process name, user, service and "
        "container image; not pids) and later compare against them. diff exits 0 when nothing "
        "drifted, 3 when something did, 2 when the baseline cannot be read.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p), required=True)
    save = actions.add_parser("save", help="write the current listeners to FILE ('-' for stdout)")
    save.add_argument("file", metavar="FILE")
    save.add_argument(
        "--include-ephemeral-udp",
        action="store_true",
        help="also record unconnected UDP sockets in the OS ephemeral port range (usually clients)",
    )
    save.set_defaults(func=run_save)
    diff = actions.add_parser("diff", help="compare the current listeners with FILE")
    diff.add_argument("file", metavar="FILE")
    diff.add_argument("--json", action="store_true", help="JSON report (see README)")
    diff.add_argument(
        "--include-ephemeral-udp",
        action="store_true",
        help="compare ephemeral-range UDP sockets too (implied when the baseline was saved with it)",
    )
    diff.set_defaults(func=run_diff)


def _hidden_note(snapshot_hidden: int, privileged: bool) -> None:
    if snapshot_hidden and not privileged:
        warn("some owners are not visible without root: their process name and user are not compared")


def _listeners() -> tuple[Snapshot, OwnerFacts]:
    """The current listeners and the facts that name their services (engines asked, once)."""
    from app.collector import default_collector
    from app.owners import OwnerFacts

    snapshot = default_collector().collect()
    facts = OwnerFacts()
    facts.prepare(snapshot, snapshot.listeners)
    return snapshot, facts


def run_save(args: argparse.Namespace) -> int:
    from app.baseline import make_baseline, save

    snapshot, facts = _listeners()
    baseline = make_baseline(snapshot, args.include_ephemeral_udp, facts)
    save(baseline, args.file)  # '-' is stdout; see app/fileout.py for what else is accepted
    if args.file != "-":
        n = len(baseline.listeners)
        warn(f"saved {n} listener{'s' if n != 1 else ''} to {printable(args.file)}")
    _hidden_note(snapshot.hidden_owners, snapshot.privileged)
    return exitcodes.OK


def run_diff(args: argparse.Namespace) -> int:
    from app.baseline import compare, drift_dict, drift_lines, entries_from_snapshot, load_baseline

    baseline = load_baseline(args.file)  # UsageError -> one line, exit 2
    snapshot, facts = _listeners()
    include = args.include_ephemeral_udp or baseline.include_ephemeral_udp
    drift = compare(baseline.listeners, entries_from_snapshot(snapshot, include, facts))
    if args.json:
        json.dump(drift_dict(drift, args.file), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif drift.drifted:
        sys.stdout.write("".join(line + "\n" for line in drift_lines(drift)))
    sys.stdout.flush()
    if drift.drifted:
        warn(
            f"drift from {printable(args.file)}: {len(drift.added)} added, {len(drift.removed)} removed, "
            f"{len(drift.changed)} changed"
        )
    else:
        n = len(baseline.listeners)
        warn(f"no drift: {n} listener{'s' if n != 1 else ''} as in {printable(args.file)}")
    _hidden_note(snapshot.hidden_owners, snapshot.privileged)
    return exitcodes.DRIFT if drift.drifted else exitcodes.OK
