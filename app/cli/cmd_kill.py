"""``portscope kill PORT | --pid PID``: signal the owner(s) of a port, safely (logic in app/kill.py).

Exit 0 when the port is free (or the pid gone) afterwards, 1 when not, 2 when it would have to ask
but there is no terminal (and ``--yes`` was not given).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys

from app import exitcodes
from app.cli.common import pid_arg, port_arg, positive_float, warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "kill",
        help="signal the process(es) holding a port (asks first)",
        description="Signal the owners of the local sockets on PORT (listeners first), or one --pid. "
        "Checks the pid was not reused, refuses pid 0/1, portscope and its ancestors (unless --force), "
        "waits for the exit and re-checks the port. Exit 0 if the port is free (pid gone) afterwards, "
        "1 if not, 2 if it would have to ask without a terminal.",
    )
    p.add_argument("port", type=port_arg, nargs="?", metavar="PORT", help="the local port")
    p.add_argument("--pid", type=pid_arg, help="signal this pid instead of a port's owners")
    p.add_argument("--proto", choices=("tcp", "udp"), help="only owners of this protocol's sockets")
    p.add_argument(
        "--signal",
        dest="signal_name",
        default="TERM",
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
    p.set_defaults(func=run)


def _ask(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        return False
    return answer.strip().lower() in ("y", "yes")


def _command_line(args: argparse.Namespace) -> str:
    parts = ["portscope", "kill"]
    parts += [str(args.port)] if args.port is not None else ["--pid", str(args.pid)]
    if args.proto:
        parts += ["--proto", args.proto]
    if args.signal_name.upper().removeprefix("SIG") != "TERM":
        parts += ["--signal", args.signal_name]
    if args.timeout != 3.0:
        parts += ["--timeout", f"{args.timeout:g}"]
    for flag in ("escalate", "tree", "force"):
        if getattr(args, flag):
            parts.append(f"--{flag}")
    parts.append("--yes")
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from app import kill
    from app.collector import default_collector
    from app.errors import ProcessChanged, ProcessDenied, ProcessError, ProcessGone, UsageError
    from app.model import Proto

    if (args.port is None) == (args.pid is None):
        raise UsageError("give a PORT or --pid PID (not both)")
    sig = kill.parse_signal(args.signal_name)
    proto = Proto(args.proto) if args.proto else None
    collector = default_collector()
    snapshot = collector.collect()

    if args.pid is not None:
        try:
            targets = [kill.KillTarget.from_pid(args.pid, snapshot)]
        except ProcessGone as exc:
            warn(str(exc))
            return exitcodes.OK
        what = f"pid {args.pid}"
    else:
        targets = kill.owners_on_port(snapshot, args.port, proto)
        what = f"port {args.port}" + (f"/{args.proto}" if args.proto else "")
        if not targets:
            if kill.port_free(snapshot, args.port, proto):
                warn(f"nothing holds {what}")
                return exitcodes.OK
            warn(f"{what} is in use but its owner is not visible: {kill.unseen_owner_hint()}")
            return exitcodes.NEGATIVE

    for t in targets:
        reason = kill.protection_reason(t.pid)
        if reason and not args.force:
            warn(f"refusing to signal {t.who}: it is {reason} (use --force)")
            return exitcodes.NEGATIVE

    if not args.yes:
        for t in targets:
            sys.stderr.write("\n".join(t.details()) + "\n\n")
        n = len(targets)
        question = f"send {kill.signal_name(sig)} to {n} process{'es' if n != 1 else ''}" + (
            " and their children" if args.tree else ""
        )
        if not sys.stdin.isatty():
            warn(f"not a terminal: refusing to {question} without --yes; to do it, run:")
            sys.stderr.write(f"  {_command_line(args)}\n")
            return exitcodes.USAGE
        if not _ask(question[0].upper() + question[1:] + "?"):
            warn("cancelled")
            return exitcodes.NEGATIVE

    failed = False
    results: list[kill.KillResult] = []
    for t in targets:
        try:
            res = kill.kill(
                t,
                sig,
                tree=args.tree,
                timeout=args.timeout,
                force=args.force,
                escalate=args.escalate,
                collector=collector if args.pid is not None else None,
            )
        except ProcessGone as exc:
            warn(str(exc))
            continue
        except (ProcessChanged, ProcessDenied, kill.KillRefused) as exc:
            warn(str(exc))
            failed = True
            continue
        except ProcessError as exc:
            warn(str(exc))
            failed = True
            continue
        if res.alive and not args.escalate and sig != signal.SIGKILL:
            warn(f"{t.who} is still running after {args.timeout:g}s")
            if sys.stdin.isatty() and not args.yes and _ask("Send SIGKILL?"):
                kill.escalate_kill(res, timeout=args.timeout, force=args.force)
            elif not res.escalated:
                warn("run again with --escalate (or --signal KILL) to send SIGKILL")
        results.append(res)
        for line in res.lines():
            sys.stdout.write(line + "\n")

    if args.pid is not None:
        gone = all(r.exited for r in results) and not failed
        if not results and not failed:
            gone = True
        return exitcodes.OK if gone else exitcodes.NEGATIVE

    after = collector.collect(port=args.port)
    if kill.port_free(after, args.port, proto):
        sys.stdout.write(f"{what} is free\n")
        return exitcodes.OK
    holders = kill.port_holders(
        [(p.value, args.port) for p in ([proto] if proto else list(Proto))], collector
    )
    for h in holders:
        warn(f"{what} is still in use: {h.describe()}")
    if not holders:
        warn(f"{what} is still in use")
    return exitcodes.NEGATIVE
