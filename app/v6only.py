"""Is the ``[::]:PORT`` listener IPv6-only? Asked of the kernel, read-only.

A socket bound to ``::`` also accepts IPv4 unless it set IPV6_V6ONLY (nginx does by default, sshd
binds ``0.0.0.0`` and ``::`` separately). The socket tables do not say which, but sock_diag adds an
``INET_DIAG_SKV6ONLY`` attribute to every listening (TCP) or unconnected (UDP) IPv6 socket, which
is what ``ss -e`` prints as ``v6only:1``. No privilege is needed; where netlink is refused the
answer is ``None`` (unknown).
"""

from __future__ import annotations

import socket
import struct

INET_DIAG_SKV6ONLY = 11
TCP_LISTEN = 10
UDP_UNCONNECTED = 7  # TCP_CLOSE
_ATTR = struct.Struct("=HH")


def listener_v6only(port: int, proto: str = "tcp", ip: str = "::") -> bool | None:
    """True/False for the IPv6 listener bound to ``ip`` (default ``::``) on ``port``; None when there
    is none or the kernel cannot be asked."""
    try:
        from app.fast.netlink import NLMSG_DONE, NLMSG_ERROR, build_request, open_socket
    except ImportError:  # not Linux
        return None
    want_state = TCP_LISTEN if proto == "tcp" else UDP_UNCONNECTED
    ipproto = socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP
    want_ip = socket.inet_pton(socket.AF_INET6, ip.split("%", 1)[0])
    try:
        sock = open_socket()
    except OSError:
        return None
    found: bool | None = None
    with sock:
        sock.settimeout(2.0)
        try:
            sock.send(build_request(socket.AF_INET6, ipproto, 1, port))
            while True:
                data = sock.recv(65536)
                if not data:
                    return found
                off = 0
                while off + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, off)
                    if length < 16:
                        return found
                    if kind in (NLMSG_DONE, NLMSG_ERROR):
                        return found
                    msg = data[off : off + length]
                    value = _v6only_of(msg, port, want_state, want_ip)
                    if value is not None:
                        found = value
                    off += (length + 3) & ~3
        except OSError:
            return found


def _v6only_of(msg: bytes, port: int, state: int, ip: bytes) -> bool | None:
    # inet_diag_msg after the 16-byte netlink header: family, state, timer, retrans, then the
    # socket id: sport, dport (big-endian), src[16], dst[16], if, cookie[8]; attributes from 88.
    if len(msg) < 88 or msg[16] != socket.AF_INET6 or msg[17] != state:
        return None
    if int.from_bytes(msg[20:22], "big") != port or msg[24:40] != ip:
        return None
    off = 88
    while off + 4 <= len(msg):
        alen, atype = _ATTR.unpack_from(msg, off)
        if alen < 4:
            return None
        if atype == INET_DIAG_SKV6ONLY and alen >= 5:
            return bool(msg[off + 4])
        off += (alen + 3) & ~3
    return None
