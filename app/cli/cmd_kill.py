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
    from app.errors import ProcessError, ProcessGone, UsageError
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
        targets = kill.owners_on_port(snapshot, args.port, proto, shared=True)
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

    # Signal every target first, then wait once for all of them (one timeout, not one per owner:
    # a pre-fork server's master and workers go down together), then SIGKILL the rest together.
    failed = False
    results: list[kill.KillResult] = []
    for t in targets:
        try:
            signalled = kill.send(t, sig, tree=args.tree, force=args.force)
        except ProcessGone as exc:
            warn(str(exc))
            continue
        except ProcessError as exc:  # changed (pid reused), denied, refused: nothing sent to it
            warn(str(exc))
            failed = True
            continue
        results.append(kill.KillResult(t, sig, signalled=signalled))
    kill.wait_all(results, args.timeout)
    alive = [r for r in results if r.alive]
    if alive and sig != signal.SIGKILL:
        escalate = args.escalate
        if not escalate:
            for r in alive:
                warn(f"{r.target.who} is still running after {args.timeout:g}s")
            if sys.stdin.isatty() and not args.yes and _ask("Send SIGKILL?"):
                escalate = True
            else:
                warn("run again with --escalate (or --signal KILL) to send SIGKILL")
        if escalate:
            kill.escalate_all(alive, timeout=args.timeout, force=args.force)
    if args.pid is not None:
        for r in results:
            r.holders = kill.port_holders(r.target.port_numbers, collector)
    for res in results:
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
