"""The first fallback: read /proc/net/{tcp,tcp6,udp,udp6} (what psutil parses), caching decoded lines.

Used when netlink sock_diag is unavailable (seccomp, some containers). Slower to read (the kernel
formats text) but still needs no per-socket decoding for sockets that did not change.
"""

from __future__ import annotations

import os
import struct
import sys
from _socket import AF_INET, AF_INET6, inet_ntop

from app.fast.records import SKIP, ReadResult, Record, make_record
from app.model import Family, Proto

PROC_NET = "/proc/net"
FILES: tuple[tuple[str, Proto, Family], ...] = (
    ("tcp", Proto.TCP, Family.IPV4),
    ("tcp6", Proto.TCP, Family.IPV6),
    ("udp", Proto.UDP, Family.IPV4),
    ("udp6", Proto.UDP, Family.IPV6),
)
_LITTLE = sys.byteorder == "little"


def decode_ip(text: str, family: Family) -> str:
    """The kernel prints addresses as native-endian 32-bit words in hex."""
    raw = bytes.fromhex(text)
    if family is Family.IPV4:
        return inet_ntop(AF_INET, raw[::-1] if _LITTLE else raw)
    if _LITTLE:
        raw = struct.pack(">4I", *struct.unpack("<4I", raw))
    return inet_ntop(AF_INET6, raw)


def decode_line(fields: list[str], proto: Proto, family: Family) -> Record:
    lip, lport = fields[1].split(":")
    rip, rport = fields[2].split(":")
    return make_record(
        proto,
        family,
        decode_ip(lip, family),
        int(lport, 16),
        decode_ip(rip, family),
        int(rport, 16),
        int(fields[3], 16),
        int(fields[9]),
    )


class ProcNetReader:
    """Lists sockets from /proc/net text files."""

    source = "procnet"

    def __init__(self, root: str = PROC_NET) -> None:
        self.root = root
        if not os.path.exists(os.path.join(root, "tcp")):
            raise FileNotFoundError(f"{root}/tcp is not readable here")
        self._cache: dict[tuple[str, str, str, str, str], Record] = {}

    def close(self) -> None:
        pass

    def read(self, port: int | None = None) -> ReadResult:
        old = self._cache
        new: dict[tuple[str, str, str, str, str], Record] = {}
        out: list[Record] = []
        fresh: list[Record] = []
        suffix = f":{port:04X}" if port is not None else None
        for name, proto, family in FILES:
            path = os.path.join(self.root, name)
            try:
                with open(path, encoding="ascii", errors="replace") as f:
                    f.readline()  # the header
                    lines = f.readlines()
            except FileNotFoundError:
                if name.endswith("6"):
                    continue  # no IPv6 on this host
                raise
            for line in lines:
                fields = line.split()
                if len(fields) < 10:
                    continue
                if suffix is not None and not fields[1].endswith(suffix):
                    continue
                key = (name, fields[1], fields[2], fields[3], fields[9])
                if key in new:
                    continue
                rec = old.pop(key, None)
                if rec is None:
                    rec = decode_line(fields, proto, family)
                    if rec.laddr.port == 0:
                        rec = SKIP
                    else:
                        fresh.append(rec)
                new[key] = rec
                if rec is not SKIP:
                    out.append(rec)
        if port is None:
            self._cache = new
            return ReadResult(out, fresh, [r for r in old.values() if r is not SKIP])
        old.update(new)
        return ReadResult(out, fresh, None)
