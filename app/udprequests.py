"""The datagram a UDP probe sends: a real request for well-known services, so they answer.

A DNS server ignores ``portscope\\r\\n`` (it is not a query) and so reads as ``open|filtered``; sent a
real query it answers, and the port reads ``open``. The same for NTP. Everything else gets a short
text datagram (services that answer anything, such as echo, do).
"""

from __future__ import annotations

import struct

GENERIC = b"portscope\r\n"

# A standard query (recursion desired) for the root's NS records: any DNS server answers it, if only
# with REFUSED or SERVFAIL, and any answer is an answer. The id spells "ps".
DNS_QUERY = struct.pack("!HHHHHH", 0x7073, 0x0100, 1, 0, 0, 0) + b"\x00" + struct.pack("!HH", 2, 1)
# NTP v3 client request (LI 0, VN 3, mode 3), the rest zero: what ntpdate -q sends.
NTP_REQUEST = b"\x1b" + bytes(47)

REQUESTS: dict[int, tuple[str, bytes]] = {
    53: ("dns", DNS_QUERY),
    5353: ("dns", DNS_QUERY),  # mDNS answers a unicast query from a port other than 5353
    123: ("ntp", NTP_REQUEST),
}


def request_for(port: int) -> tuple[str, bytes]:
    """(service name or "", payload) for a UDP probe of ``port``."""
    return REQUESTS.get(port, ("", GENERIC))
