"""``portscope kill PORT | --pid PID``: signal what holds a port, safely (the flow is app/kill.py;
this module only asks on the terminal and prints).

Exit 0 when the port is free (or the pid gone) afterwards, 1 when not (still running, refused,
denied, cancelled, respawned), 2 when it would have to ask but there is no terminal (and ``--yes``
was not given).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from typing import TYPE_CHECKING, TextIO

from app import exitcodes
from app.cli.common import ask, pid_arg, port_arg, positive_float, warn

if TYPE_CHECKING:
    from app.kill import KillEvent, KillReport
    from app.killplan import KillPlan

_CLI_CAP = 10  # ports per process and workers shown before confirming (--json lists them all)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "kill",
        help="signal the process(es) holding a port (asks first)",
        description="Signal every process holding a local socket on PORT (the primary owners first, "
        "then, if still running after the wait, the workers sharing the sockets), or one --pid. "
        "Checks the pid was not reused, refuses pid 0/1, portscope and its ancestors (unless --force), "
        "waits for the exit, re-checks the port and reports a respawn. Exit 0 if the port is free "
        "(pid gone) afterwards, 1 if not, 2 if it would have to ask without a terminal.",
    )
    p.add_argument("port", type=port_arg, nargs="?", metavar="PORT", help="the local port")
    p.add_argument("--pid", type=pid_arg, help="signal this pid instead of a port's owners")
    p.add_argument("--proto", choices=("tcp", "udp"), help="only owners of this protocol's sockets")
    p.add_argument(
        "--signal",
        dest="signal_name",
        default="TERM",
        type=lambda s: {"1": "HUP", "2": "INT", "9": "KILL", "15": "TERM"}.get(
            s.strip(), s.strip().upper().removeprefix("SIG")
        ),
        choices=("TERM", "INT", "HUP", "KILL"),
        metavar="SIG",
        help="TERM (default), INT, HUP or KILL",
    )
    p.add_argument(
        "--timeout", type=positive_float, default=3.0, metavar="S", help="wait this long for the exit (3)"
    )
    p.add_argument("--escalate", action="store_true", help="send SIGKILL if still running after the wait")
    p.add_argument("--tree", action="store_true", help="signal the whole process tree (children first)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--force", action="store_true", help="allow pid 1, portscope itself and its ancestors")
    p.add_argument("--dry-run", action="store_true", help="show what would be signalled, send nothing")
    p.add_argument("--json", action="store_true", help="print the plan and the outcome as JSON")
    p.set_defaults(func=run)


def _command_line(args: argparse.Namespace) -> str:
    parts = ["portscope", "kill"]
    parts += [str(args.port)] if args.port is not None else ["--pid", str(args.pid)]
    if args.proto:
        parts += ["--proto", args.proto]
    if args.signal_name.upper().removeprefix("SIG") != "TERM":
        parts += ["--signal", args.signal_name]
    if args.timeout != 3.0:
        parts += ["--timeout", f"{args.timeout:g}"]
    for flag in ("escalate", "tree", "force", "json"):
        if getattr(args, flag):
            parts.append(f"--{flag}")
    parts.append("--yes")
    return shlex.join(parts)


def _progress(event: KillEvent) -> None:
    sys.stderr.write(f"portscope: {event.text}\n")
    sys.stderr.flush()


def _emit_json(report: KillReport, *, dry_run: bool = False, ok: bool) -> None:
    import json

    sys.stdout.write(json.dumps({**report.as_dict(), "dry_run": dry_run, "ok": ok}, indent=2) + "\n")


def _show_plan(plan: KillPlan, out: TextIO) -> None:
    out.write(f"{plan.what}: {plan.summary()}\n")
    out.write("\n".join(plan.details(_CLI_CAP)) + "\n")


def run(args: argparse.Namespace) -> int:
    from app import kill, killplan
    from app.collector import default_collector
    from app.errors import KillRefused, NoSuchPid, NoVisibleOwner, ProcessError, UsageError
    from app.model import Proto

    if (args.port is None) == (args.pid is None):
        raise UsageError("give a PORT or --pid PID (not both)")
    sig = kill.parse_signal(args.signal_name)
    proto = Proto(args.proto) if args.proto else None
    collector = default_collector()
    snapshot = collector.collect()

    try:
        if args.pid is not None:
            plan = killplan.plan_pid(args.pid, snapshot)
        else:
            plan = killplan.plan_port(snapshot, args.port, proto)
    except NoSuchPid as exc:  # the kernel has no such process: nothing left to stop
        warn(str(exc))
        return exitcodes.OK
    except (ProcessError, NoVisibleOwner) as exc:  # exists but hidden or unreadable: not gone
        warn(str(exc))
        return exitcodes.NEGATIVE
    if plan.free:
        warn(f"nothing holds {plan.what}")
        if args.json:
            _emit_json(kill.KillReport(plan, sig, checked=True), dry_run=args.dry_run, ok=True)
        return exitcodes.OK

    protected = plan.protected()
    if protected and not args.force:
        for t, reason in protected:
            warn(str(KillRefused(t.pid, t.name, reason=reason)))
        if len(plan.targets) > len(protected):
            warn(f"{plan.what} is shared with a protected process: nothing was signalled")
        return exitcodes.NEGATIVE

    if args.dry_run:
        if args.json:
            report = kill.KillReport(plan, sig, tree=args.tree, timeout=args.timeout)
            _emit_json(report, dry_run=True, ok=True)
        else:
            _show_plan(plan, sys.stdout)
        return exitcodes.OK

    if not args.yes:
        _show_plan(plan, sys.stderr)
        sys.stderr.write("\n")
        question = plan.question(kill.signal_name(sig), args.tree)
        if not sys.stdin.isatty():
            asked = question[0].lower() + question[1:-1]
            warn(f"not a terminal: refusing to {asked} without --yes; to do it, run:")
            sys.stderr.write(f"  {_command_line(args)}\n")
            return exitcodes.USAGE
        if not ask(question):
            warn("cancelled")
            return exitcodes.NEGATIVE

    progress = _progress if sys.stderr.isatty() and not args.json else None
    with kill.KillFlow(
        plan, sig, tree=args.tree, timeout=args.timeout, force=args.force, on_event=progress
    ) as flow:
        try:
            survivors = flow.signal()
        except KillRefused as exc:
            warn(str(exc))
            return exitcodes.NEGATIVE
        if survivors and sig != signal.SIGKILL:
            escalate = args.escalate
            if not escalate:
                for ident in survivors:  # each under its own pid (a tree child is not its parent)
                    warn(f"{ident.who} is still running after {args.timeout:g}s")
                who = ", ".join(i.who for i in survivors[:5]) + (" ..." if len(survivors) > 5 else "")
                if sys.stdin.isatty() and not args.yes and ask(f"Send SIGKILL to {who}?"):
                    escalate = True
                else:
                    warn("run again with --escalate (or --signal KILL) to send SIGKILL")
            if escalate:
                flow.escalate()
        report = flow.finish(collector)
    return _outcome(args, report)


def _outcome(args: argparse.Namespace, report: KillReport) -> int:
    """Print what happened (stdout: the facts; stderr: what went wrong) and pick the exit code."""
    for exc in report.gone:
        warn(str(exc))
    for err in report.errors:
        warn(str(err))
    what = report.plan.what
    for r in report.respawns:
        warn(r.describe(what))
        if r.stop_hint:
            warn(f"to stop it for good: {r.stop_hint}")
    if args.pid is not None:
        ok = report.exited and not report.errors and not report.respawns
    else:
        ok = bool(report.port_free)
        if not ok and not report.respawns:
            for h in report.holders:
                warn(f"{what} is still in use: {h.describe()}")
            if not report.holders:
                warn(f"{what} is still in use")
    if args.json:
        _emit_json(report, ok=ok)
    else:
        for line in report.lines():
            sys.stdout.write(line + "\n")
        if args.pid is None and ok:
            sys.stdout.write(f"{what} is free\n")
    return exitcodes.OK if ok else exitcodes.NEGATIVE
