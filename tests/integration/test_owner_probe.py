"""The dashboard's owner map finds the new sockets of a process whose fd table changed by
``readlink`` of a few predicted fd numbers, without listing the table (app/fast/owners.py,
app/fast/procfs.py ``probe_fd_map``), and only when the probe explains the fd count: real child
processes open, close, move and share sockets between polls, and every poll's owners and holders
are checked against a fresh collector's look (``poll``, from test_owner_churn). A fake clock keeps
the minute's full sweep from hiding a mistake."""

from __future__ import annotations

import os
import random

import pytest

from tests.integration.test_owner_churn import Child, dashboard_collector, poll, spawn

__all__ = ["spawn"]  # (the fixture)

# What each child can do, by name: sockets (UDP bound to loopback: always in the dump), files,
# and a unix stream "link" to pass fds over SCM_RIGHTS. ``mine``: the fds it made or received.
_PRELUDE = r"""
import array, stat
mine = []
def keep(fd):
    mine.append(fd)
    return fd
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return keep(s.detach())
def file():
    return keep(os.open("/dev/null", os.O_RDONLY))
def is_sock(fd):
    return stat.S_ISSOCK(os.fstat(fd).st_mode)
def socks():
    return [f for f in mine if is_sock(f)]
def files():
    return [f for f in mine if not is_sock(f)]
def close(fd):
    mine.remove(fd)
    os.close(fd)
def ino(fd):
    return os.fstat(fd).st_ino
def inodes():
    return sorted({ino(f) for f in socks()})
def send(fd):
    link.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
def recv():
    msg, anc, flags, addr = link.recvmsg(1, socket.CMSG_LEN(4))
    return keep(array.array("i", anc[0][2][:4])[0])
"""


def child(spawn: list[object]) -> Child:
    c = Child()
    spawn.append(c)
    c("!exec(" + repr(_PRELUDE) + ")")
    return c


def linked(spawn: list[object]) -> tuple[Child, Child]:
    """Two children joined by a unix stream socket (``link`` in each)."""
    a, b = child(spawn), child(spawn)
    name = f"\\0ps-probe-{os.getpid()}-{a.pid}"
    a(f'!srv = socket.socket(socket.AF_UNIX); srv.bind("{name}"); srv.listen()')
    b(f'!link = socket.socket(socket.AF_UNIX); link.connect("{name}")')
    a("!link = srv.accept()[0]; srv.close()")
    return a, b


def int_of(value: object) -> int:
    assert isinstance(value, int)
    return value


def test_a_new_socket_is_found_without_listing_its_table(spawn: list[object]) -> None:
    """A socket closed, a new one on its number and one more above: the child's table is brought
    up to date by a probe (no listing), and every owner is what a fresh look says."""
    c = child(spawn)
    fds = [int_of(c("udp()")) for _ in range(3)]
    c("file()")
    old = [int_of(c(f"ino({fd})")) for fd in fds]
    collector, clock = dashboard_collector()
    try:
        poll(collector, clock, old)
        c(f"close({fds[1]})")
        reused, top = int_of(c("udp()")), int_of(c("udp()"))
        assert reused == fds[1]  # the lowest free number
        new = [int_of(c(f"ino({fd})")) for fd in (reused, top)]
        got = poll(collector, clock, old + new)
        assert got == {
            old[0]: (c.pid, (c.pid,)),
            old[1]: None,
            old[2]: (c.pid, (c.pid,)),
            new[0]: (c.pid, (c.pid,)),
            new[1]: (c.pid, (c.pid,)),
        }
        stats = collector.owners.stats
        # (other processes on the host may make the poll search, which may read any table)
        assert c.pid in stats.probed and c.pid not in stats.missed and not stats.sought & set(new)
        # the next poll (nothing changed in the child) does not look at it at all
        poll(collector, clock, new)
        assert c.pid not in collector.owners.stats.probed | collector.owners.stats.missed
    finally:
        collector.close()


@pytest.mark.parametrize("churn", [False, True], ids=["alone", "with-a-socket-replaced"])
def test_a_file_closed_and_a_socket_opened_on_its_number_is_found_in_the_same_poll(
    spawn: list[object], churn: bool
) -> None:
    """The hard case: nothing the count or the closed sockets tell points at the file's number.
    Alone (count kept, no socket closed) the search finds it; with a socket replaced too (the
    table is probed) the probe reads the file's number, as it reads every non-socket fd."""
    c = child(spawn)
    f = int_of(c("file()"))
    s = int_of(c("udp()"))
    c("udp()")
    first = [int_of(c(f"ino({s})"))]
    collector, clock = dashboard_collector()
    try:
        poll(collector, clock, first)
        c(f"close({f})")
        u = int_of(c("udp()"))
        assert u == f
        watch = [*first, int_of(c(f"ino({u})"))]
        if churn:
            c(f"close({s})")
            assert int_of(c("udp()")) == s
            watch.append(int_of(c(f"ino({s})")))
        got = poll(collector, clock, watch)
        assert got[watch[1]] == (c.pid, (c.pid,))
        stats = collector.owners.stats
        if churn:  # found by the probe, not searched for
            assert got[watch[2]] == (c.pid, (c.pid,)) and got[first[0]] is None
            assert c.pid in stats.probed and c.pid not in stats.missed and watch[1] not in stats.sought
        else:  # nothing said this table changed: the search found it
            assert c.pid not in stats.probed and watch[1] in stats.sought
    finally:
        collector.close()


def test_a_unix_sockets_number_taken_by_a_new_socket_is_found_in_the_same_poll(spawn: list[object]) -> None:
    """A unix socket (never in the dump, so never known closed) closes and a new UDP socket takes
    its number while another socket is replaced: the probe explains the count without seeing it,
    and the new socket is still found in the same poll (searched for, the probed tables
    first)."""
    c = child(spawn)
    c("!a, b = socket.socketpair(); ua = keep(a.detach()); ub = keep(b.detach())")
    s = int_of(c("udp()"))
    ua = int_of(c("ua"))
    first = [int_of(c(f"ino({s})"))]
    collector, clock = dashboard_collector()
    try:
        poll(collector, clock, first)
        c(f"close({ua})")
        u = int_of(c("udp()"))
        assert u == ua
        c(f"close({s})")
        assert int_of(c("udp()")) == s
        new = [int_of(c(f"ino({u})")), int_of(c(f"ino({s})"))]
        got = poll(collector, clock, first + new)
        assert got == {first[0]: None, new[0]: (c.pid, (c.pid,)), new[1]: (c.pid, (c.pid,))}
        assert new[0] in collector.owners.stats.sought and c.pid in collector.owners.stats.probed
    finally:
        collector.close()


def test_a_socket_in_flight_is_nobodys_until_it_is_received(spawn: list[object]) -> None:
    """A sends a socket over SCM_RIGHTS and closes its fd before B receives it: A's count fell by
    one that no probe explains (the socket did not close, nobody else is known to hold it), so
    A's table is listed and the socket has no owner; once B receives it, B owns it (found by a
    probe of B's lowest free number)."""
    a, b = linked(spawn)
    fd = int_of(a("udp()"))
    a("udp()")
    ino = int_of(a(f"ino({fd})"))
    collector, clock = dashboard_collector()
    try:
        assert poll(collector, clock, [ino]) == {ino: (a.pid, (a.pid,))}
        a(f"!send({fd}); close({fd})")
        assert poll(collector, clock, [ino]) == {ino: (None, ())}
        assert a.pid in collector.owners.stats.missed
        b("recv()")
        assert poll(collector, clock, [ino]) == {ino: (b.pid, (b.pid,))}
        assert b.pid in collector.owners.stats.probed and b.pid not in collector.owners.stats.missed
    finally:
        collector.close()


def test_a_socket_handed_over_after_files_opened_above_it_is_the_receivers_in_the_same_poll(
    spawn: list[object],
) -> None:
    """A opens two files above its socket's fd, hands the socket to B and closes its fd; B
    receives it and closes a file of its own, so B's count is kept and B is not read. A's count
    rose by one: a probe that stopped at the first new fd explained it with the socket's fd
    still there, and A kept the socket for a minute (found by a review). The probe reads on
    past what the count explains, finds the second file, and A's table is listed."""
    a, b = linked(spawn)
    fd = int_of(a("udp()"))
    ino = int_of(a(f"ino({fd})"))
    own_file = int_of(b("file()"))
    collector, clock = dashboard_collector()
    try:
        assert poll(collector, clock, [ino]) == {ino: (a.pid, (a.pid,))}
        a("file()")
        a("file()")
        a(f"!send({fd}); close({fd})")
        b("recv()")
        b(f"!close({own_file})")
        assert poll(collector, clock, [ino]) == {ino: (b.pid, (b.pid,))}
        assert a.pid in collector.owners.stats.missed  # (the probe was not trusted)
    finally:
        collector.close()


def test_sockets_passed_over_scm_rights_and_dup_keep_the_right_holders(spawn: list[object]) -> None:
    a, b = linked(spawn)
    fd = int_of(a("udp()"))
    ino = int_of(a(f"ino({fd})"))
    collector, clock = dashboard_collector()
    try:
        poll(collector, clock, [ino])
        a(f"send({fd})")
        b("recv()")
        lo, hi = sorted((a.pid, b.pid))
        assert poll(collector, clock, [ino]) == {ino: (lo, (lo, hi))}  # unrelated: the lowest pid
        copy = int_of(a(f"keep(os.dup({fd}))"))
        a(f"close({fd})")  # A still holds it through the copy
        assert poll(collector, clock, [ino]) == {ino: (lo, (lo, hi))}
        a(f"close({copy})")
        assert poll(collector, clock, [ino]) == {ino: (b.pid, (b.pid,))}
    finally:
        collector.close()


def test_a_forked_holder_keeps_a_socket_its_parent_replaced(spawn: list[object]) -> None:
    parent = child(spawn)
    fd = int_of(parent("udp()"))
    ino = int_of(parent(f"ino({fd})"))
    collector, clock = dashboard_collector()
    try:
        poll(collector, clock, [ino])
        kid = parent.fork()
        spawn.append(kid)
        assert poll(collector, clock, [ino]) == {ino: (parent.pid, (parent.pid, kid))}
        parent(f"close({fd})")
        assert int_of(parent("udp()")) == fd
        new = int_of(parent(f"ino({fd})"))
        assert poll(collector, clock, [ino, new]) == {ino: (kid, (kid,)), new: (parent.pid, (parent.pid,))}
    finally:
        collector.close()


def test_a_process_that_lets_a_shared_socket_go_and_receives_another_keeps_its_count(
    spawn: list[object],
) -> None:
    """B hands back a socket it shares with A's forked kid and receives another from A in one
    poll: B's count is kept and none of its sockets closed, but A gaining a holder of the first
    makes the other holders' fds of it read again, and B's table is listed."""
    a, b = linked(spawn)
    fd = int_of(a("udp()"))
    x = int_of(a("udp()"))
    j, k = int_of(a(f"ino({fd})")), int_of(a(f"ino({x})"))
    collector, clock = dashboard_collector()
    try:
        kid = a.fork()
        spawn.append(kid)
        a(f"!send({fd}); close({fd})")
        got_j = int_of(b("recv()"))
        assert poll(collector, clock, [j, k]) == {
            j: (min(b.pid, kid), tuple(sorted((b.pid, kid)))),
            k: (a.pid, (a.pid, kid)),
        }
        b(f"!send({got_j}); close({got_j})")
        a("recv()")
        a(f"!send({x})")
        b("recv()")
        assert poll(collector, clock, [j, k]) == {
            j: (a.pid, (a.pid, kid)),
            k: (a.pid, (a.pid, *sorted((b.pid, kid)))),
        }
    finally:
        collector.close()


# In a poll a process either gives fds up or takes new ones, never both: a process whose fd count
# is kept while no socket of it closed for good (one let go, another received) is not read until
# the sweep (a limit of reading tables only when the count changes; a *new* socket is still
# searched for at once, and "swap" and "dup2" keep the count).
_GIVE = ("close", "close", "move")
_TAKE = ("udp", "udp", "file", "swap", "dup2", "share", "fork")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_opens_closes_and_moves_match_a_fresh_look(spawn: list[object], seed: int) -> None:
    """Random fds opened, closed, moved onto a file's number, shared and moved over SCM_RIGHTS,
    and forks, several per poll in any order between two processes: after each poll every
    socket either ever held has the owner and holders a fresh collector finds."""
    rng = random.Random(seed)
    a, b = linked(spawn)
    procs = [a, b]
    for p in procs:
        for _ in range(3):
            p("udp()")
        p("file()")
    seen: set[int] = set()
    forks = 0
    collector, clock = dashboard_collector()
    try:
        for _ in range(12):
            giver = {id(p): rng.random() < 0.5 for p in procs}
            for _ in range(rng.randint(1, 5)):
                p = rng.choice(procs)
                other = b if p is a else a
                op = rng.choice(_GIVE if giver[id(p)] else _TAKE)
                i = rng.randrange(1000)
                if op in ("udp", "file"):
                    p(f"{op}()")
                elif op == "close":
                    p(f"!mine and close(mine[{i} % len(mine)])")
                elif op == "swap":  # a file closes, a socket opens (on its number when lowest)
                    p(f"!fs = files(); fs and close(fs[{i} % len(fs)]); udp()")
                elif op == "dup2":  # a socket onto a file's number
                    p(
                        f"!ss, fs = socks(), files(); "
                        f"ss and fs and os.dup2(ss[{i} % len(ss)], fs[{i} % len(fs)])"
                    )
                elif op in ("share", "move"):
                    if giver[id(other)]:
                        continue  # (the receiver takes one)
                    fd = p(f"(socks() or [None])[{i} % max(1, len(socks()))]")
                    if fd is None:
                        continue
                    p(f"!send({fd})")
                    other("recv()")
                    if op == "move":
                        p(f"!close({fd})")
                elif op == "fork" and p is a and forks < 2:
                    forks += 1
                    spawn.append(a.fork())
            for p in procs:
                held = p("inodes()")
                assert isinstance(held, list)
                seen.update(held)
            poll(collector, clock, sorted(seen))
    finally:
        collector.close()
