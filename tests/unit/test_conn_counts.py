"""A listener row's connection count (the Conns column), kept incrementally by the preparer,
against :func:`app.tui.rows.established_counter` (one pass over the snapshot, namespace by
namespace), on random polls in which connections open, close and change state beside wildcard
and specific listeners (TCP and UDP, both families, two namespaces). The counts are kept per
local address and per port with an entry per connection (a client end's port is its own): an
entry must go when its last connection does, or every closed client port stays counted forever."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from app.model import Endpoint, Family, Proto, Snapshot, Sock
from app.tui.rows import Preparer, established_counter
from tests.tui.fixtures import FixedExposure

IPS = ("127.0.0.1", "0.0.0.0", "127.0.0.2", "::1", "::")
PORTS = (80, 443, 8080)


def listener(rng: random.Random, inode: int) -> Sock:
    ip = rng.choice(IPS)
    proto = rng.choice((Proto.TCP, Proto.TCP, Proto.UDP))
    status = "LISTEN" if proto is Proto.TCP else "BOUND"
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    return Sock(proto, fam, Endpoint(ip, rng.choice(PORTS)), None, status, 1, inode, rng.choice((0, 0, 77)))


def connection(rng: random.Random, inode: int) -> Sock:
    ip = rng.choice([i for i in IPS if i not in ("0.0.0.0", "::")])
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    port = rng.choice((*PORTS, 40000 + rng.randrange(50)))  # an accepted end, or a client end
    status = rng.choice(("ESTABLISHED", "ESTABLISHED", "CLOSE_WAIT"))
    proto = rng.choice((Proto.TCP, Proto.TCP, Proto.UDP))
    if proto is Proto.UDP:
        status = "ESTABLISHED" if rng.random() < 0.5 else "CONNECTED"
    return Sock(
        proto,
        fam,
        Endpoint(ip, port),
        Endpoint(ip, 50000 + inode % 1000),
        status,
        2,
        inode,
        rng.choice((0, 77)),
    )


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), polls=st.integers(2, 10))
def test_listener_counts_follow_every_poll_and_leave_nothing_behind(seed: int, polls: int) -> None:
    rng = random.Random(seed)
    inode = iter(range(1000, 10**6))
    preparer = Preparer(FixedExposure())
    socks: list[Sock] = [listener(rng, next(inode)) for _ in range(rng.randrange(1, 6))]
    socks += [connection(rng, next(inode)) for _ in range(rng.randrange(0, 30))]
    for poll in range(polls + 1):
        if poll == polls:  # the last poll: every connection closed
            socks = [s for s in socks if s.listening]
        elif poll:
            kept = [s for s in socks if s.listening or rng.random() > 0.3]
            changed = [
                Sock(s.proto, s.family, s.laddr, s.raddr, "CLOSE_WAIT", s.pid, s.inode, s.netns)
                if not s.listening and s.status == "ESTABLISHED" and rng.random() < 0.1
                else s
                for s in kept
            ]
            socks = changed + [connection(rng, next(inode)) for _ in range(rng.randrange(0, 10))]
        snap = Snapshot(float(poll), tuple(socks), {})
        prepared = preparer.prepare(snap)
        want = established_counter(snap)
        for key, sock in prepared.keyed.items():
            if sock.listening:
                assert preparer._count(sock) == want(sock), key
    for index in (preparer._est_addr, preparer._est_port):  # nothing left counted, not even zeros
        assert sum(len(v) if isinstance(v, dict) else 1 for v in index.values()) == 0
