"""The socket an action acts on (``Dashboard.socket_for``) comes from the row's own payload, not from
a second map of the snapshot's sockets by key (one dictionary entry a socket, copied every poll):
on random polls (sockets open, close, change state or owner, listeners share an endpoint) every row
of the snapshot must answer with exactly the snapshot's socket of that key (the same object) and
the current snapshot, and a row that has just vanished with its last socket and the one before;
every socket of the snapshot has its row, and no row of a key the snapshot has is marked gone."""

from __future__ import annotations

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.model import Endpoint, Family, Proto, Snapshot, Sock
from app.tui.state import Dashboard
from tests.tui.fixtures import NOW, FixedExposure
from widgets.table_model import Mark


def a_sock(rng: random.Random, inode: int, inodes: bool = True, bound: bool = False) -> Sock:
    """A listener or a connection; without ``inodes`` a listener may have none (as the portable
    backend's): its siblings are then numbered by position and paired by owner and state. With
    ``bound``, some are bound TCP sockets (no peer, not listening yet: a connection row)."""
    ip = rng.choice(("127.0.0.1", "0.0.0.0", "::1"))
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    if bound and rng.random() < 0.2:
        return Sock(Proto.TCP, fam, Endpoint(ip, rng.choice((80, 8080))), None, "CLOSE", 3, inode)
    if rng.random() < 0.4:
        port, pid = rng.choice((80, 443)), rng.choice((1, 2))
        ino = inode if inodes or rng.random() < 0.5 else None
        return Sock(Proto.TCP, fam, Endpoint(ip, port), None, "LISTEN", pid, ino)
    peer = Endpoint("::1" if ":" in ip else "127.0.0.1", 50000 + inode)  # (a 4-tuple is unique)
    return Sock(Proto.TCP, fam, Endpoint(ip, rng.choice((80, 40000))), peer, "ESTABLISHED", 3, inode)


def step(
    rng: random.Random, socks: list[Sock], inode: int, inodes: bool = True, bound: bool = False
) -> list[Sock]:
    out = []
    for s in socks:
        r = rng.random()
        if r < 0.15:
            continue
        if bound and s.raddr is None and not s.listening and r < 0.6:  # listen(): the same socket
            out.append(Sock(s.proto, s.family, s.laddr, None, "LISTEN", s.pid, s.inode))
            continue
        if r < 0.3 and not s.listening:
            out.append(Sock(s.proto, s.family, s.laddr, s.raddr, "CLOSE_WAIT", s.pid, s.inode))
        elif r < 0.4:
            out.append(Sock(s.proto, s.family, s.laddr, s.raddr, s.status, rng.choice((1, 2, 4)), s.inode))
        else:
            out.append(s)
    return out + [a_sock(rng, inode + i, inodes, bound) for i in range(rng.randrange(4))]


@settings(max_examples=100, deadline=None)
# three siblings of [::1]:80 (one pid), the first closes and the last is another object of the same
# socket: the closure was paired with the last one's key, which the row kept marked gone, then lost
@example(seed=262143, polls=4, inodes=True, bound=False)
# a listener paired with a bound socket of its endpoint (another kind of row): the listener's row
# was handed to the connections table to rename, and stayed in the listeners' for good
@example(seed=901471249, polls=5, inodes=False, bound=True)
@given(seed=st.integers(0, 2**32 - 1), polls=st.integers(1, 8), inodes=st.booleans(), bound=st.booleans())
def test_each_row_acts_on_its_snapshots_socket(seed: int, polls: int, inodes: bool, bound: bool) -> None:
    rng = random.Random(seed)
    d = Dashboard(FixedExposure(), clock=lambda: NOW)
    socks = [a_sock(rng, 100 + i, inodes, bound) for i in range(rng.randrange(1, 10))]
    for poll in range(polls):
        if poll:
            socks = step(rng, socks, 1000 * poll, inodes, bound)
        snap = Snapshot(NOW + poll, tuple(socks), {})
        d.apply_snapshot(snap)
        keyed = snap.keyed()
        for model in (d.listening, d.connections):
            for key, row in model.rows.items():
                found = d.socket_for(model, key)
                assert found is not None
                if key in keyed:  # (a key the snapshot has is never marked gone)
                    assert row.mark is not Mark.GONE
                    assert found[0] is keyed[key] and found[1] is d.snapshot
                else:
                    assert row.mark is Mark.GONE and found[1] is d.previous
                    assert found[0] is row.payload.sock
        assert all(k in d.listening.rows or k in d.connections.rows for k in keyed)
        # the preparer's map of connections by inode holds exactly the snapshot's (none is kept
        # for a socket that went: at 100k connections a leak would be the dashboard's growth)
        conns = {s.inode: k for k, s in keyed.items() if not s.listening and s.inode}
        assert d.preparer._conn_keys == conns
