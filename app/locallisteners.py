"""Which socket on this machine would answer ``ip:port``: for the owner column of a scan, and for
the UDP rule "no reply, but bound here" (see :mod:`app.outcome`)."""

from __future__ import annotations

import ipaddress
from typing import Any

Owner = dict[str, Any]  # {"pid", "name", "user"}


def is_local_address(ip: str) -> bool:
    """Loopback, the wildcard, or an address of one of this machine's interfaces."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if addr.is_loopback or addr.is_unspecified:
        return True
    try:
        from app.exposure import interface_addresses

        return str(addr) in interface_addresses()
    except Exception:  # netifaces trouble: treat as not local (no owner column)
        return False


def _covers(bound_ip: str, ip: str) -> bool:
    """Would a socket bound to ``bound_ip`` receive what is sent to ``ip``?"""
    if bound_ip == ip:
        return True
    if ":" in ip:
        return bound_ip == "::"
    return bound_ip in ("0.0.0.0", "::")  # "::" unless it is IPv6-only; a probe that reached it says


def local_listeners(ip: str, ports: set[int], proto: str) -> dict[int, Owner | None]:
    """For each port of ``ports`` with a listening (TCP) or unconnected (UDP) socket here that covers
    ``ip``: its owner, or None when the owner is not visible. An exact bind wins over a wildcard.
    Empty when the socket tables cannot be read."""
    from app.collector import default_collector

    bare = ip.split("%", 1)[0]
    collector = None
    try:
        collector = default_collector()
        snapshot = collector.collect(port=next(iter(ports))) if len(ports) == 1 else collector.collect()
    except Exception:  # no socket source here: nothing known
        return {}
    finally:
        close = getattr(collector, "close", None)  # the fast collector holds a netlink socket
        if callable(close):
            close()
    out: dict[int, Owner | None] = {}
    exact: set[int] = set()
    for s in snapshot.listeners:
        port = s.laddr.port
        if s.proto.value != proto or port not in ports or not _covers(s.laddr.ip, bare):
            continue
        if port in exact:
            continue
        owner = snapshot.owner(s)
        entry: Owner | None = None
        if s.pid is not None:
            name, user = (owner.name, owner.username) if owner else ("", "")
            entry = {"pid": s.pid, "name": name, "user": user}
        if s.laddr.ip == bare:
            exact.add(port)
            out[port] = entry
        elif out.get(port) is None:
            out[port] = entry
    return out
