"""Read an X.509 certificate's subject, issuer, validity and subjectAltName from its DER bytes.

``ssl`` decodes a peer's certificate only after a verified handshake; for an untrusted one it gives
the DER bytes alone, and its only decoder (a private test helper) reads from a file. ``test --tls``
writes nothing, so this small DER reader does the job in memory. It returns what
``SSLSocket.getpeercert()`` would (the same keys and shapes) and never raises: a malformed or hostile
certificate gives whatever was read before the problem, or ``{}``. Every string stays raw: callers
escape it where it is shown.
"""

from __future__ import annotations

import ipaddress
from typing import Any

_NAMES = {
    "2.5.4.3": "commonName",
    "2.5.4.4": "surname",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "countryName",
    "2.5.4.7": "localityName",
    "2.5.4.8": "stateOrProvinceName",
    "2.5.4.9": "streetAddress",
    "2.5.4.10": "organizationName",
    "2.5.4.11": "organizationalUnitName",
    "2.5.4.12": "title",
    "2.5.4.42": "givenName",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "domainComponent",
    "0.9.2342.19200300.100.1.1": "userId",
}
_SAN = "2.5.29.17"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _Bad(Exception):
    pass


def _tlv(data: bytes, off: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at ``off``."""
    if off + 2 > end:
        raise _Bad
    tag = data[off]
    first = data[off + 1]
    off += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or off + n > end:
            raise _Bad
        length = int.from_bytes(data[off : off + n], "big")
        off += n
    if off + length > end:
        raise _Bad
    return tag, off, off + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    off = start
    while off < end:
        tag, s, e = _tlv(data, off, end)
        out.append((tag, s, e))
        off = e
        if len(out) > 256:  # no real certificate has more: stop a hostile one here
            break
    return out


def _oid(raw: bytes) -> str:
    if not raw:
        raise _Bad
    parts = [min(raw[0] // 40, 2), raw[0] - 40 * min(raw[0] // 40, 2)]
    value = 0
    for b in raw[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _string(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", "replace")
    if tag == 0x14:  # T61String: in practice latin-1
        return raw.decode("latin-1")
    return raw.decode("utf-8", "replace")  # UTF8String, PrintableString, IA5String, ...


def _name(data: bytes, start: int, end: int) -> tuple[tuple[tuple[str, str], ...], ...]:
    rdns = []
    for _tag, s, e in _children(data, start, end):  # SET OF AttributeTypeAndValue
        rdn = []
        for _t, s2, e2 in _children(data, s, e):
            kids = _children(data, s2, e2)
            if len(kids) < 2 or kids[0][0] != 0x06:
                continue
            oid = _oid(data[kids[0][1] : kids[0][2]])
            vtag, vs, ve = kids[1]
            rdn.append((_NAMES.get(oid, oid), _string(vtag, data[vs:ve])))
        rdns.append(tuple(rdn))
    return tuple(rdns)


def _time(tag: int, raw: bytes) -> str:
    text = raw.decode("ascii", "replace").rstrip("Z")
    if tag == 0x17:  # UTCTime YYMMDDHHMM[SS]
        yy = int(text[0:2])
        text = ("19" if yy >= 50 else "20") + text
    if len(text) < 12 or not text[:12].isdigit():
        raise _Bad
    year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
    hour, minute = int(text[8:10]), int(text[10:12])
    second = int(text[12:14]) if text[12:14].isdigit() else 0
    if not 1 <= month <= 12:
        raise _Bad
    return f"{_MONTHS[month - 1]} {day:2d} {hour:02d}:{minute:02d}:{second:02d} {year} GMT"


def _san(data: bytes, start: int, end: int) -> tuple[tuple[str, str], ...]:
    _tag, s, e = _tlv(data, start, end)  # GeneralNames SEQUENCE
    out = []
    for t, cs, ce in _children(data, s, e):
        raw = data[cs:ce]
        if t == 0x82:
            out.append(("DNS", raw.decode("ascii", "replace")))
        elif t == 0x87 and len(raw) in (4, 16):
            out.append(("IP Address", str(ipaddress.ip_address(raw))))
        elif t == 0x81:
            out.append(("email", raw.decode("ascii", "replace")))
        elif t == 0x86:
            out.append(("URI", raw.decode("ascii", "replace")))
    return tuple(out)


def decode_der(der: bytes) -> dict[str, Any]:
    """``getpeercert()``-style fields of a DER certificate: subject, issuer, notBefore, notAfter,
    subjectAltName (each only when present and readable)."""
    out: dict[str, Any] = {}
    try:
        _tag, cs, ce = _tlv(der, 0, len(der))  # Certificate
        _tag, ts, te = _tlv(der, cs, ce)  # tbsCertificate
        fields = _children(der, ts, te)
        if fields and fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, [1] [2] [3]
        if len(fields) < 6:
            return out
        out["issuer"] = _name(der, fields[2][1], fields[2][2])
        validity = _children(der, fields[3][1], fields[3][2])
        if len(validity) == 2:
            out["notBefore"] = _time(validity[0][0], der[validity[0][1] : validity[0][2]])
            out["notAfter"] = _time(validity[1][0], der[validity[1][1] : validity[1][2]])
        out["subject"] = _name(der, fields[4][1], fields[4][2])
        for tag, s, e in fields[6:]:
            if tag != 0xA3:
                continue
            _t, xs, xe = _tlv(der, s, e)  # Extensions SEQUENCE
            for _t2, es, ee in _children(der, xs, xe):
                parts = _children(der, es, ee)
                if parts and parts[0][0] == 0x06 and _oid(der[parts[0][1] : parts[0][2]]) == _SAN:
                    value = parts[-1]
                    if value[0] == 0x04:
                        out["subjectAltName"] = _san(der, value[1], value[2])
    except (_Bad, ValueError, IndexError):
        pass
    return out
