"""``portscope close LOCAL REMOTE``: close one TCP connection (netlink SOCK_DESTROY, as ``ss -K``);
the owning process keeps running. Exit 0 closed, 1 no such connection or the kernel refused, 2 bad
input or no terminal to confirm on (without ``--yes``)."""

from __future__ import annotations

import argparse
import sys

from app import exitcodes
from app.cli.common import ask, warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "close",
        help="close one TCP connection, keeping its process (asks first; needs root)",
        description="Destroy the TCP connection from LOCAL to REMOTE (as 'list --connections' shows "
        "them: IP:PORT or [IPv6]:PORT) with netlink SOCK_DESTROY, as 'ss -K' does. The owning "
        "process and its other connections stay; the peer sees a reset. Needs root (CAP_NET_ADMIN).",
    )
    p.add_argument("local", metavar="LOCAL", help="the local endpoint, e.g. 127.0.0.1:5432")
    p.add_argument("remote", metavar="REMOTE", help="the remote endpoint, e.g. 127.0.0.1:51234")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="print what was closed as JSON (see README)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import shlex

    from app import close
    from app.collector import default_collector
    from app.errors import PortscopeError
    from app.textsafe import printable

    local = close.parse_endpoint(args.local, "local endpoint")
    remote = close.parse_endpoint(args.remote, "remote endpoint")
    if not close.supported():
        raise close.CloseFailed("closing one connection needs Linux (netlink SOCK_DESTROY)")
    conn = close.find(local, remote)
    what = f"{args.local} -> {args.remote}"
    if conn is None:
        raise close.NoSuchConnection(f"no TCP connection {printable(what, 200)}")
    owner = None
    try:
        snap = default_collector().collect(port=conn.local.port)
        owner = next((snap.owner(s) for s in snap.sockets if conn.inode and s.inode == conn.inode), None)
    except PortscopeError:
        pass
    who = (
        f"pid {owner.pid} ({printable(owner.name, 40)}), user {printable(owner.username, 40)}"
        if owner
        else ("no visible owner")
    )
    if not args.yes:
        sys.stderr.write(f"{conn.describe()}\nowner    {who}\n")
        if not sys.stdin.isatty():
            warn("not a terminal: refusing to close the connection without --yes; to do it, run:")
            sys.stderr.write(f"  {shlex.join(['portscope', 'close', args.local, args.remote, '--yes'])}\n")
            return exitcodes.USAGE
        if not ask("Close this connection (the process keeps running)?"):
            warn("cancelled")
            return exitcodes.NEGATIVE
    close.destroy(conn)
    if args.json:
        doc = {
            "closed": {
                "proto": "tcp",
                "family": conn.family.value,
                "local": {"ip": conn.local.ip, "port": conn.local.port},
                "remote": {"ip": conn.remote.ip, "port": conn.remote.port},
                "state": conn.state,
            },
            "owner": {"pid": owner.pid, "name": owner.name, "user": owner.username} if owner else None,
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"closed {conn.describe()} (owner {who} keeps running)\n")
    return exitcodes.OK
