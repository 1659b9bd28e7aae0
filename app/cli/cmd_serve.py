"""``portscope serve``: a Prometheus ``/metrics`` endpoint over a cached snapshot (at most one poll
per ``--interval`` seconds, however often it is scraped), on loopback unless told otherwise,
until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from app import exitcodes
from app.cli.cmd_metrics import ports_arg
from app.errors import UsageError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 9811
DEFAULT_LISTEN = f"{DEFAULT_HOST}:{DEFAULT_PORT}"


def listen_arg(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``PORT`` (on 127.0.0.1); port 0 picks a free one."""
    from app.parsing import parse_host_port
    from app.textsafe import quoted

    raw = text.strip()
    zero = raw == "0" or raw.endswith(":0")
    try:
        host, port = parse_host_port(raw[:-1] + "1" if zero else raw, default_host="127.0.0.1")
    except UsageError:
        raise argparse.ArgumentTypeError(
            f"invalid listen address {quoted(text)}: expected HOST:PORT, [IPv6]:PORT or PORT, "
            f"e.g. {DEFAULT_LISTEN}"
        ) from None
    return host, 0 if zero else port


def _interval(text: str) -> float:
    from app.cli.main import interval_arg

    return interval_arg(text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve Prometheus metrics over HTTP (/metrics) for a scraper",
        description="Serve the metrics of 'portscope metrics' at http://HOST:PORT/metrics until SIGTERM "
        "or Ctrl-C. Scrapes read a cached snapshot, polled again at most every S seconds. Binds "
        "loopback unless --listen names a wider address (that prints a warning).",
    )
    p.add_argument(
        "--listen",
        type=listen_arg,
        default=(DEFAULT_HOST, DEFAULT_PORT),
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN}; port 0 picks a free port)",
    )
    p.add_argument(
        "--interval",
        dest="serve_interval",
        type=_interval,
        default=5.0,
        metavar="S",
        help="poll at most every S seconds, 0.2-3600 (default 5), however often it is scraped",
    )
    p.add_argument(
        "--ports",
        type=ports_arg,
        default=[],
        metavar="LIST",
        help="also count connections per state for these local ports only (e.g. 5432,6379; at most 100)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print where it serves as one JSON line on stdout once it is listening (see README)",
    )
    p.set_defaults(func=run)


def _beyond_loopback(ip: str) -> bool:
    import ipaddress

    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not addr.is_loopback


def run(args: argparse.Namespace) -> int:
    import json
    import socket

    from app.cli.common import warn
    from app.memtune import return_freed_memory
    from app.metrics import (
        PortscopeCollector,
        SnapshotCache,
        make_http_server,
        registry_for,
        stats_collector,
    )
    from app.model import format_endpoint
    from app.textsafe import printable

    return_freed_memory()  # (it runs for long: see app.memtune)
    host, port = args.listen
    cache = SnapshotCache(stats_collector(), interval=args.serve_interval)
    registry = registry_for(PortscopeCollector(cache, args.ports))
    reported: set[str] = set()

    def on_error(exc: Exception) -> None:
        line = f"a poll failed, the scrape got an error: {exc}"
        if line not in reported:  # once per distinct failure, not once per scrape
            reported.add(line)
            warn(printable(line))

    shown = format_endpoint(host, port)
    try:
        server = make_http_server(registry, host, port, on_error)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {printable(shown)}: {exc.strerror or exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot listen on {printable(shown)}: {exc.strerror or exc}") from None
    bound_ip, bound_port = str(server.server_address[0]), int(server.server_address[1])
    where = format_endpoint(bound_ip, bound_port)
    url = f"http://{where}/metrics"

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: now

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, on_signal)
    thread = threading.Thread(target=server.serve_forever, name="portscope-serve", daemon=True)
    try:
        # The first (cold) poll before anyone scrapes, once bound, so it sees this listener too;
        # a collector that cannot run fails here, not on every scrape.
        cache.get()
        thread.start()
        if _beyond_loopback(bound_ip):
            warn(
                f"serving on {where}, beyond loopback: anyone who can reach it reads this host's "
                "listeners, process and user names (firewall it, or put a TLS proxy in front)"
            )
        warn(
            f"serving Prometheus metrics on {url} "
            f"(a poll at most every {args.serve_interval:g}s; Ctrl-C to stop)"
        )
        if args.json:
            doc = {
                "schema": 1,
                "listen": {"ip": bound_ip, "port": bound_port},
                "url": url,
                "interval": args.serve_interval,
                "ports": args.ports,
            }
            sys.stdout.write(json.dumps(doc) + "\n")
            sys.stdout.flush()
        while not stop.wait(3600):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if thread.is_alive():
            server.shutdown()
            thread.join(5)
        server.server_close()
    warn("stopped")
    return exitcodes.OK
