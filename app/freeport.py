"""Find free ports: nothing uses them (per the collector) and they really bind right now.

Candidates outside the OS ephemeral range come first (a port the kernel may hand to an outgoing
connection at any moment is a poor choice for a server), in random order so two callers rarely
pick the same one. Each candidate is bound (without SO_REUSEADDR) and released.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from functools import lru_cache

from app.backends.base import Collector
from app.errors import UsageError
from app.netaddr import Address, resolve
from app.ports import ephemeral_range, in_ephemeral
from app.textsafe import quoted

DEFAULT_HOST = "0.0.0.0"
DEFAULT_RANGE = "registered"
MAX_BIND_ATTEMPTS = 5000  # bind tests per call, so a full range cannot take long


@lru_cache(maxsize=64)
def _bind_address(host: str, proto: str) -> Address:
    """``host`` as a bindable address (a scope id kept: ``fe80::1%lo``). UsageError if it is none."""
    return resolve(host, 0, proto)[0]


def can_bind(port: int, proto: str = "tcp", host: str = DEFAULT_HOST) -> bool:
    """True if ``host:port`` binds right now (TCP: and listens). The socket is closed at once."""
    try:
        addr = _bind_address(host, proto)
    except UsageError:
        return False
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        with socket.socket(addr.family, kind) as s:
            if addr.family == socket.AF_INET6 and addr.ip == "::":
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual stack: both free
            s.bind(addr.sockaddr(port))
            if proto == "tcp":
                s.listen(1)
        return True
    except (OSError, OverflowError):
        return False


def check_bindable_host(host: str, proto: str) -> None:
    """UsageError unless ``host`` is an address this machine can bind (tested on port 0)."""
    addr = _bind_address(host, proto)
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        with socket.socket(addr.family, kind) as s:
            s.bind(addr.sockaddr(0))
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot bind address {quoted(host)}: {reason}") from None


def used_ports(collector: Collector, proto: str) -> set[int]:
    snapshot = collector.collect()
    return {s.laddr.port for s in snapshot.sockets if s.proto.value == proto}


def candidates(lo: int, hi: int, used: set[int], rng: random.Random | None = None) -> list[int]:
    """Ports in ``lo..hi`` not in ``used``: outside the ephemeral range first, each group shuffled."""
    rng = rng or random.Random()
    eph = ephemeral_range()
    outside: list[int] = []
    inside: list[int] = []
    for p in range(max(1, lo), hi + 1):
        if p in used:
            continue
        (inside if in_ephemeral(p, eph) else outside).append(p)
    rng.shuffle(outside)
    rng.shuffle(inside)
    return outside + inside


def find_free(
    lo: int,
    hi: int,
    *,
    count: int = 1,
    proto: str = "tcp",
    host: str = DEFAULT_HOST,
    collector: Collector | None = None,
    rng: random.Random | None = None,
    bind_test: Callable[[int, str, str], bool] = can_bind,
) -> list[int]:
    """Up to ``count`` free ports in ``lo..hi`` (sorted). Empty when none could be found."""
    if proto not in ("tcp", "udp"):
        raise UsageError(f"invalid protocol {quoted(proto)}: expected tcp or udp")
    check_bindable_host(host, proto)
    if collector is None:
        from app.collector import default_collector

        collector = default_collector()
    used = used_ports(collector, proto)
    found: list[int] = []
    for attempts, port in enumerate(candidates(lo, hi, used, rng)):
        if attempts >= MAX_BIND_ATTEMPTS or len(found) >= count:
            break
        if bind_test(port, proto, host):
            found.append(port)
    return sorted(found)
