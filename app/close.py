"""Close one TCP connection without touching its process: netlink ``SOCK_DESTROY``, as ``ss -K``.

The connection is looked up first with a sock_diag dump filtered to its local port, so what is
destroyed is exactly the socket that was found and shown (its kernel cookie is part of the request:
a socket that closed and was replaced by another on the same endpoints is not touched). The owning
process keeps running and its other sockets stay; the peer sees a reset.

Needs CAP_NET_ADMIN and a kernel built with CONFIG_INET_DIAG_DESTROY (Linux only).
"""

from __future__ import annotations

import _socket
import errno
import ipaddress
import socket
import struct
import sys
from contextlib import closing
from dataclasses import dataclass

from app.errors import PortscopeError, UsageError
from app.fast import netlink
from app.model import Endpoint, Family, Proto, format_endpoint
from app.parsing import parse_host_port
from app.textsafe import quoted

SOCK_DESTROY = 21
NLM_F_ACK = 0x4
_TCP_STATES = 0x1FFE & ~(1 << 10)  # every state but LISTEN: a listener is not a connection


class CloseFailed(PortscopeError):
    """The kernel refused to close the connection (permission, kernel support, already gone)."""


class NoSuchConnection(PortscopeError):
    """No TCP connection has these endpoints."""


def parse_endpoint(text: str, what: str) -> Endpoint:
    """``IP:PORT`` or ``[IPv6]:PORT`` (as ``ss`` and ``list`` print them); an address, not a name."""
    host, port = parse_host_port(text, default_host="")
    if not host:
        raise UsageError(f"invalid {what} {quoted(text)}: expected IP:PORT or [IPv6]:PORT")
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise UsageError(f"invalid {what} {quoted(text)}: expected an IP address, not a name") from None
    return Endpoint(str(addr), port)


@dataclass(frozen=True)
class Connection:
    """One TCP socket as the kernel listed it, with its raw socket id (for SOCK_DESTROY)."""

    family: Family
    local: Endpoint
    remote: Endpoint
    state: str
    inode: int
    raw_id: bytes  # the 48-byte inet_diag_sockid, cookie included

    def describe(self) -> str:
        return f"tcp {format_endpoint(*self.local)} -> {format_endpoint(*self.remote)} {self.state}"


def _same(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.split("%", 1)[0]) == ipaddress.ip_address(b.split("%", 1)[0])
    except ValueError:
        return a == b


def find(local: Endpoint, remote: Endpoint) -> Connection | None:
    """The TCP connection from ``local`` to ``remote`` (IPv4-mapped IPv6 sockets match their IPv4
    form), or ``None``."""
    families = (socket.AF_INET6,) if ":" in local.ip and not local.ip.startswith("::ffff:") else None
    with closing(netlink.open_socket()) as nl:  # a C-level socket: no context manager of its own
        for af in families or (socket.AF_INET, socket.AF_INET6):
            for conn in _dump(nl, af, local.port):
                if (
                    conn.local.port == local.port
                    and conn.remote.port == remote.port
                    and _matches(conn.local.ip, local.ip)
                    and _matches(conn.remote.ip, remote.ip)
                ):
                    return conn
    return None


def _matches(kernel_ip: str, wanted: str) -> bool:
    if _same(kernel_ip, wanted):
        return True
    mapped = kernel_ip.removeprefix("::ffff:")
    return mapped != kernel_ip and _same(mapped, wanted)


def _dump(nl: _socket.socket, af: int, port: int) -> list[Connection]:
    body = netlink._REQ_V2.pack(af, socket.IPPROTO_TCP, 0, 0, _TCP_STATES, b"")
    body += netlink.port_filter(port)
    flags = netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP
    nl.send(netlink._NLMSGHDR.pack(16 + len(body), netlink.SOCK_DIAG_BY_FAMILY, flags, 1, 0) + body)
    out: list[Connection] = []
    while True:
        data = nl.recv(65536)
        off = 0
        while off + 16 <= len(data):
            length, mtype = struct.unpack_from("=IH", data, off)
            if length < 16:
                return out
            if mtype == netlink.NLMSG_DONE:
                return out
            if mtype == netlink.NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", data, off + 16)
                if err:
                    raise CloseFailed(f"cannot list connections: {errno.errorcode.get(-err, err)}")
                return out
            if mtype == netlink.SOCK_DIAG_BY_FAMILY and length >= netlink._MIN_LEN:
                rec = netlink.decode(data, off, Proto.TCP)
                if rec.raddr is not None:
                    out.append(
                        Connection(
                            rec.family, rec.laddr, rec.raddr, rec.status, rec.inode, data[off + 20 : off + 68]
                        )
                    )
            off += (length + 3) & ~3
        if not data:
            return out


def destroy(conn: Connection) -> None:
    """SOCK_DESTROY exactly this socket. Raises :class:`CloseFailed` with a one-line reason."""
    af = socket.AF_INET if conn.family is Family.IPV4 else socket.AF_INET6
    body = netlink._REQ_V2.pack(af, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF, conn.raw_id)
    with closing(netlink.open_socket()) as nl:  # a C-level socket: no context manager of its own
        nl.send(
            netlink._NLMSGHDR.pack(16 + len(body), SOCK_DESTROY, netlink.NLM_F_REQUEST | NLM_F_ACK, 1, 0)
            + body
        )
        data = nl.recv(65536)
    if len(data) < 20 or struct.unpack_from("=H", data, 4)[0] != netlink.NLMSG_ERROR:
        raise CloseFailed("unexpected answer from the kernel")
    (err,) = struct.unpack_from("=i", data, 16)
    if not err:
        return
    err = -err
    if err == errno.EPERM or err == errno.EACCES:
        raise CloseFailed("closing a connection needs root (CAP_NET_ADMIN)")
    if err == errno.EOPNOTSUPP:
        raise CloseFailed(
            "this kernel cannot close sockets (no CONFIG_INET_DIAG_DESTROY): stop the process instead"
        )
    if err in (errno.ENOENT, errno.ESTALE):  # gone, or its endpoints now belong to another socket
        raise NoSuchConnection(f"{conn.describe()} closed meanwhile")
    raise CloseFailed(f"cannot close {conn.describe()}: {errno.errorcode.get(err, str(err))}")


def supported() -> bool:
    return sys.platform.startswith("linux")
