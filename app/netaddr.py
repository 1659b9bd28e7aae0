"""Addresses as sockets want them: resolved once, with an IPv6 scope id kept (``fe80::1%eth0``).

``socket.connect(("fe80::1%lo", 80))`` fails with EINVAL: the scope must travel as the fourth
element of the address tuple. getaddrinfo parses ``%NAME`` and ``%INDEX`` into it, so every address
here comes from getaddrinfo and is used as the tuple it returned.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

from app.errors import UsageError
from app.model import format_endpoint
from app.parsing import check_hostname
from app.textsafe import quoted


class Address(NamedTuple):
    """One resolved address. ``ip`` is what people read (with ``%scope`` when there is one)."""

    family: int
    ip: str
    scope_id: int = 0

    def sockaddr(self, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
        if self.family == socket.AF_INET6:
            return (self.bare_ip, port, 0, self.scope_id)
        return (self.ip, port)

    @property
    def bare_ip(self) -> str:
        """The address without its scope (what the kernel's socket tables show)."""
        return self.ip.split("%", 1)[0]

    def endpoint(self, port: int) -> str:
        return format_endpoint(self.ip, port)


def _scoped(ip: str, scope_id: int, asked: str) -> str:
    if not scope_id:
        return ip
    _, sep, scope = asked.partition("%")
    if sep and scope:
        return f"{ip}%{scope}"  # the name the user wrote (lo, eth0) rather than the index
    try:
        return f"{ip}%{socket.if_indextoname(scope_id)}"
    except OSError:
        return f"{ip}%{scope_id}"


def resolve(host: str, port: int, proto: str = "tcp") -> list[Address]:
    """Unique addresses of ``host``, in resolver order. UsageError if it cannot be resolved."""
    check_hostname(host)
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        infos = socket.getaddrinfo(host, port, 0, kind)
    except (socket.gaierror, UnicodeError, OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot resolve host {quoted(host, 80)}: {reason}") from None
    out: list[Address] = []
    for fam, _type, _proto, _canon, sockaddr in infos:
        if fam == socket.AF_INET:
            item = Address(socket.AF_INET, str(sockaddr[0]))
        elif fam == socket.AF_INET6:
            scope = int(sockaddr[3]) if len(sockaddr) > 3 else 0
            item = Address(socket.AF_INET6, _scoped(str(sockaddr[0]), scope, host), scope)
        else:
            continue
        if item not in out:
            out.append(item)
    if not out:
        raise UsageError(f"cannot resolve host {quoted(host, 80)}: no IPv4 or IPv6 address")
    return out


def numeric(host: str) -> Address:
    """A numeric address (``0.0.0.0``, ``::``, ``fe80::1%lo``) for binding. UsageError otherwise."""
    check_hostname(host)
    try:
        infos = socket.getaddrinfo(host, 0, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"invalid address {quoted(host)}: {reason}") from None
    fam, _type, _proto, _canon, sockaddr = infos[0]
    if fam == socket.AF_INET6:
        scope = int(sockaddr[3]) if len(sockaddr) > 3 else 0
        return Address(socket.AF_INET6, _scoped(str(sockaddr[0]), scope, host), scope)
    return Address(socket.AF_INET, str(sockaddr[0]))
