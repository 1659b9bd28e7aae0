"""Is an IPv6 listener IPv6-only? Asked of the kernel, read-only.

A socket bound to ``::`` also accepts IPv4 unless it set IPV6_V6ONLY (nginx does by default, sshd
binds ``0.0.0.0`` and ``::`` separately). The socket tables do not say which, but sock_diag adds an
``INET_DIAG_SKV6ONLY`` attribute to every listening (TCP) or unconnected (UDP) IPv6 socket, which
is what ``ss -e`` prints as ``v6only:1``. No privilege is needed; where netlink is refused the
answer is ``None`` (unknown). Used by ``explain`` (every socket of a port) and the test panel's
prefill (one listener).
"""

from __future__ import annotations

import socket
import struct

INET_DIAG_SKV6ONLY = 11
_ATTR = struct.Struct("=HH")


def v6only_flags(port: int, proto: str) -> list[tuple[str, int, bool]] | None:
    """(local address, inode, IPV6_V6ONLY) of each IPv6 socket on local ``port`` that the kernel
    reports it for (listening TCP, unconnected UDP), from one sock_diag dump; ``None`` when
    sock_diag cannot be used."""
    try:
        from app.fast.netlink import build_request, open_socket
    except ImportError:  # not Linux
        return None
    ipproto = socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP
    try:
        sock = open_socket()
    except OSError:
        return None
    out: list[tuple[str, int, bool]] = []
    try:
        sock.settimeout(2.0)
        sock.send(build_request(socket.AF_INET6, ipproto, 1, port))
        while True:
            data = sock.recv(65536)
            if not data or _messages(data, out):
                return out
    except OSError:
        return None
    finally:
        sock.close()


def _messages(data: bytes, out: list[tuple[str, int, bool]]) -> bool:
    """Collect the flags of one chunk; True at the end of the dump."""
    from app.fast.netlink import NLMSG_DONE, NLMSG_ERROR, SOCK_DIAG_BY_FAMILY

    off = 0
    while off + 16 <= len(data):
        length, mtype = struct.unpack_from("=IH", data, off)
        if length < 16 or off + length > len(data) or mtype in (NLMSG_DONE, NLMSG_ERROR):
            return True
        if mtype == SOCK_DIAG_BY_FAMILY and length >= 88 and data[off + 16] == socket.AF_INET6:
            ip = socket.inet_ntop(socket.AF_INET6, data[off + 24 : off + 40])
            (inode,) = struct.unpack_from("=I", data, off + 84)
            a = off + 88
            while a + 4 <= off + length:
                alen, atype = _ATTR.unpack_from(data, a)
                if alen < 4:
                    break
                if atype == INET_DIAG_SKV6ONLY and alen >= 5:
                    out.append((ip, inode, bool(data[a + 4])))
                a += (alen + 3) & ~3
        off += (length + 3) & ~3
    return False


def listener_v6only(port: int, proto: str = "tcp", ip: str = "::") -> bool | None:
    """True/False for the IPv6 listener bound to ``ip`` (default ``::``) on ``port``; None when there
    is none or the kernel cannot be asked."""
    flags = v6only_flags(port, proto)
    if not flags:
        return None
    want = socket.inet_pton(socket.AF_INET6, ip.split("%", 1)[0])
    found = [flag for addr, _inode, flag in flags if socket.inet_pton(socket.AF_INET6, addr) == want]
    return found[-1] if found else None
