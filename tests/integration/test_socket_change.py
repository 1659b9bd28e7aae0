"""The fast collector's SocketChange (app.model) says exactly what changed between two of its
snapshots: the new objects and the gone ones by identity, every socket in sort_key order, and a
chain that breaks where the next snapshot cannot be told against the last one. Real loopback
sockets opened, connected and closed between polls."""

from __future__ import annotations

import socket
from contextlib import ExitStack

from app.backends.base import sort_key
from app.fast.collector import FastCollector
from app.model import Snapshot


def _same_as_identity_diff(prev: Snapshot, cur: Snapshot) -> None:
    change = cur.change
    assert change is not None and change.sockets is cur.sockets
    assert prev.change is not None and change.chain == prev.change.chain
    assert change.seq == prev.change.seq + 1
    before = {id(s) for s in prev.sockets}
    now = {id(s) for s in cur.sockets}
    assert sorted(id(s) for s in change.fresh) == sorted(id(s) for s in cur.sockets if id(s) not in before)
    assert sorted(id(s) for s in change.gone) == sorted(id(s) for s in prev.sockets if id(s) not in now)
    keys = [sort_key(s) for s in cur.sockets]
    assert keys == sorted(keys)


def test_each_patched_poll_names_its_new_and_gone_sockets() -> None:
    with ExitStack() as stack:
        collector = FastCollector(path="netlink", stats=True)
        stack.callback(collector.close)
        srv = stack.enter_context(socket.socket())
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        port = srv.getsockname()[1]
        prev = collector.collect()
        assert prev.change is not None and prev.change.seq == 0  # a chain starts: nothing told
        clients: list[socket.socket] = []
        ours = 0
        for poll in range(6):
            if poll % 3 == 2 and clients:
                clients.pop().close()  # closed (both ends go, or the server end waits)
            else:
                c = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
                clients.append(c)
                stack.enter_context(srv.accept()[0])
            cur = collector.collect()
            _same_as_identity_diff(prev, cur)
            ours += sum(1 for s in cur.change.fresh if s.laddr.port == port)  # type: ignore[union-attr]
            prev = cur
        assert ours >= 4  # our connections' server ends were told as new
        # a port-filtered look breaks the chain: the next full poll starts another one
        collector.collect(port=port)
        after = collector.collect()
        assert after.change is not None and after.change.seq == 0
        assert after.change.chain != prev.change.chain  # type: ignore[union-attr]
        again = collector.collect()
        _same_as_identity_diff(after, again)
