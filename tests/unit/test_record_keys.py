"""A record keeps one sort key, not also its owner-free part (about 70 bytes a socket): the part is
worked out again from the key when the owner changes. Whatever owners a record goes through, its
key must be the one :func:`app.backends.base.sort_key` gives its socket."""

from __future__ import annotations

from app.backends.base import sort_key
from app.fast.collector import _build
from app.fast.records import make_record
from app.model import Family, Proto


def test_the_sort_key_follows_every_change_of_owner() -> None:
    records = [
        make_record(Proto.TCP, Family.IPV4, "127.0.0.1", 8080, "0.0.0.0", 0, 10, 501),
        make_record(Proto.TCP, Family.IPV6, "::1", 40000, "::1", 5432, 1, 502),
        make_record(Proto.UDP, Family.IPV4, "0.0.0.0", 53, "0.0.0.0", 0, 7, 503),
        make_record(Proto.TCP, Family.IPV4, "10.0.0.1", 1, "10.0.0.2", 65535, 6, 0),
    ]
    for r in records:
        for pid in (4242, 1, None, 2**22 - 1, None, None, 7, 7):
            _build(r, pid)
            assert r.sock is not None and r.sock.pid == pid and r.pid == pid
            assert r.skey == sort_key(r.sock)
