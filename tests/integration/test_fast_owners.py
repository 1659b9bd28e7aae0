"""The incremental inode->pid map and the process cache: walk order, early stop, negative cache,
sweeps, and recycled pids.

OwnerMap's walk logic is checked on a small /proc-shaped tree of real symlinks (``socket:[N]``),
so the exact number of processes walked is deterministic; the process cache runs on real child
processes, with faults injected by swapping an identity or a pidfd.
"""

from __future__ import annotations

import dataclasses
import os
import select
from collections import Counter
from pathlib import Path

import pytest

from app import processes as processes_mod
from app.fast.owners import SWEEP_EVERY, OwnerMap
from app.processes import ProcessCache, pidfds_supported, start_ticks
from tests.helpers import child_listener, spawn_listener


class FakeProc:
    """A directory shaped like /proc: PID/fd/N -> 'socket:[inode]' (or another file)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, pid: int, *inodes: int) -> None:
        fd = self.root / str(pid) / "fd"
        fd.mkdir(parents=True, exist_ok=True)
        stat = self.root / str(pid) / "stat"
        if not stat.exists():  # state S, parent 1, one thread, started at tick 1000 + pid
            stat.write_text(f"{pid} (fake) S 1 " + "0 " * 15 + f"1 0 {1000 + pid} 0\n")
        existing = len(list(fd.iterdir()))
        (fd / str(existing)).symlink_to("/dev/null")  # a non-socket fd, like stdin
        for i, ino in enumerate(inodes, start=existing + 1):
            (fd / str(i)).symlink_to(f"socket:[{ino}]")

    def remove(self, pid: int) -> None:
        d = self.root / str(pid)
        for link in (d / "fd").iterdir():
            link.unlink()
        (d / "fd").rmdir()
        (d / "stat").unlink()
        d.rmdir()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path)


def test_cold_walk_stops_once_everything_is_found(proc: FakeProc) -> None:
    for pid in range(100, 110):
        proc.add(pid, 5000 + pid)
    owners = OwnerMap(str(proc.root), Clock())
    # Cold walks newest (highest pid) first: inode of pid 108 is found after 2 processes.
    got = owners.resolve({5108: 80})
    assert got == {5108: 108}
    assert owners.stats.pids_walked == 2


def test_steady_poll_walks_nothing_and_new_socket_in_same_port_owner_is_found_first(proc: FakeProc) -> None:
    for pid in range(100, 120):
        proc.add(pid, 5000 + pid)
    owners = OwnerMap(str(proc.root), Clock())
    wanted = {5000 + pid: 1000 + pid for pid in range(100, 120)}
    assert len(owners.resolve(wanted)) == 20
    owners.resolve(wanted)
    assert owners.stats.pids_walked == 0  # nothing unknown: no walk at all

    proc.add(103, 9999)  # a new connection accepted by the listener on port 1103
    wanted[9999] = 1103
    assert owners.resolve(wanted)[9999] == 103
    assert owners.stats.pids_walked == 1  # the same-port owner was walked first, then stop


def test_new_process_is_walked_before_old_ones(proc: FakeProc) -> None:
    for pid in range(100, 130):
        proc.add(pid, 5000 + pid)
    owners = OwnerMap(str(proc.root), Clock())
    wanted = {5000 + pid: 2000 for pid in range(100, 130)}
    owners.resolve(wanted)
    proc.add(50, 7777)  # a new process with a low (recycled-looking) pid
    wanted[7777] = 3000
    assert owners.resolve(wanted)[7777] == 50
    assert owners.stats.pids_walked == 1


def test_closed_sockets_are_dropped(proc: FakeProc) -> None:
    proc.add(100, 1, 2)
    owners = OwnerMap(str(proc.root), Clock())
    assert owners.resolve({1: 10, 2: 20}) == {1: 100, 2: 100}
    assert owners.resolve({2: 20}) == {2: 100}


def test_hidden_owner_is_negatively_cached_retried_on_new_pids_and_swept_each_minute(proc: FakeProc) -> None:
    for pid in range(100, 110):
        proc.add(pid, 5000 + pid)
    clock = Clock()
    owners = OwnerMap(str(proc.root), clock)
    wanted = {5000 + pid: 1 for pid in range(100, 110)}
    wanted[424242] = 2024  # nobody here holds it (another pid namespace)
    owners.resolve(wanted)
    assert 424242 in owners.negative
    assert owners.stats.pids_walked == 10

    clock.now += 5
    owners.resolve(wanted)
    assert owners.stats.pids_walked == 0  # known to be hidden: not searched again

    proc.add(200, 6200)  # a new process (not holding it): only that one is tried
    wanted[6200] = 3
    clock.now += 5
    assert owners.resolve(wanted)[6200] == 200
    assert owners.stats.pids_walked == 1

    clock.now += SWEEP_EVERY
    owners.resolve(wanted)
    assert owners.stats.swept and owners.stats.pids_walked == 11
    assert 424242 in owners.negative

    proc.add(105, 424242)  # it shows up in an old process (e.g. passed over a unix socket)
    clock.now += SWEEP_EVERY
    assert owners.resolve(wanted)[424242] == 105
    assert not owners.negative


def test_sweep_rechecks_known_owners(proc: FakeProc) -> None:
    """A live owner that handed its socket to another process is corrected by the next sweep."""
    proc.add(100, 1)
    proc.add(101, 2)
    clock = Clock()
    owners = OwnerMap(str(proc.root), clock)
    wanted = {1: 10, 2: 20, 3: 30}  # 3 is hidden: sweeps keep coming
    owners.resolve(wanted)
    assert owners.owner == {1: 100, 2: 101}
    proc.remove(100)
    proc.add(100)  # still alive, no longer holds socket 1 ...
    proc.add(102, 1)  # ... which a new process holds now
    clock.now += 1
    assert owners.resolve(wanted)[1] == 100  # between sweeps the map is trusted
    clock.now += SWEEP_EVERY
    assert owners.resolve(wanted)[1] == 102
    assert owners.stats.swept


def test_exited_owner_socket_is_found_in_its_new_holder(proc: FakeProc) -> None:
    proc.add(100, 1)
    owners = OwnerMap(str(proc.root), Clock())
    assert owners.resolve({1: 10}) == {1: 100}
    proc.remove(100)
    proc.add(102, 1)
    owners.forget_pids([100])
    assert owners.resolve({1: 10}) == {1: 102}


def test_forget_pids_drops_what_they_held(proc: FakeProc) -> None:
    proc.add(100, 1, 2)
    proc.add(101, 3)
    owners = OwnerMap(str(proc.root), Clock())
    owners.resolve({1: 1, 2: 1, 3: 1})
    owners.take_changed()
    owners.forget_pids([100])
    assert owners.owner == {3: 101}
    assert owners.take_changed() == {1, 2}
    assert owners.owner_pids() == {101}


# -- the process cache --------------------------------------------------------------------------


def test_start_ticks_identifies_a_process() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        ticks = start_ticks(child.pid)
        assert ticks is not None and ticks > 0
        assert start_ticks(child.pid) == ticks
    assert start_ticks(child.pid) is None


@pytest.mark.parametrize("use_pidfd", [True, False])
def test_exited_process_is_dropped(use_pidfd: bool) -> None:
    if use_pidfd and not pidfds_supported():
        pytest.skip("no pidfd_open here")
    cache = ProcessCache(use_pidfd=use_pidfd)
    child = spawn_listener("udp", "127.0.0.1")
    try:
        assert child.pid in cache.lookup([child.pid])
        assert cache.reap() == set()
    finally:
        child.stop()
    assert cache.reap() == {child.pid}
    assert cache.lookup([child.pid]) == {}
    assert cache.failures == 1


def test_recycled_pid_is_reread_start_time_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pidfds the identity is the start time: a different one means another process."""
    cache = ProcessCache(use_pidfd=False)
    with child_listener("tcp", "127.0.0.1") as child:
        first = cache.lookup([child.pid])[child.pid]
        real = processes_mod.start_ticks
        monkeypatch.setattr(
            processes_mod, "start_ticks", lambda pid: real(pid) + 500 if pid == child.pid else real(pid)
        )
        reads: list[int] = []
        real_read = processes_mod.read_process

        def counting_read(pid: int):  # type: ignore[no-untyped-def]
            reads.append(pid)
            info = real_read(pid)
            return dataclasses.replace(info, create_time=info.create_time + 5) if info else None

        monkeypatch.setattr(processes_mod, "read_process", counting_read)
        again = cache.lookup([child.pid])[child.pid]
        assert reads == [child.pid]  # re-read, not served from the cache
        assert again.create_time == first.create_time + 5
        assert cache.lookup([child.pid])[child.pid] is again  # and cached under the new identity
        assert reads == [child.pid]


def test_recycled_pid_is_reread_pidfd_path() -> None:
    """With pidfds the cache pins the process itself: if the process it pinned is gone (here: the
    entry's pidfd is swapped for one of a process that exited), the pid is read afresh."""
    if not pidfds_supported():
        pytest.skip("no pidfd_open here")
    cache = ProcessCache(use_pidfd=True)
    with child_listener("tcp", "127.0.0.1") as child, child_listener("tcp", "127.0.0.1") as dead:
        cache.lookup([child.pid])
        entry = cache._by_pid[child.pid]
        stale = dataclasses.replace(entry.info, create_time=entry.info.create_time - 1000)
        entry.info = stale  # what we had cached about "the old process" with this pid
        dead_fd = os.pidfd_open(dead.pid)
        dead.stop()
        # point the entry at the dead process's pidfd (the old process behind this pid exited)
        assert cache._poll is not None
        cache._poll.unregister(entry.pidfd)
        del cache._fd_pid[entry.pidfd]
        os.close(entry.pidfd)
        entry.pidfd = dead_fd
        cache._fd_pid[dead_fd] = child.pid
        cache._poll.register(dead_fd, select.POLLIN)
        fresh = cache.lookup([child.pid])[child.pid]
        assert fresh is not stale
        assert fresh.create_time == pytest.approx(stale.create_time + 1000, abs=0.01)
        assert fresh.name == child.name


# --- track_holders: a table read again reads only what changed ------------------------------------


def test_a_table_read_again_reads_only_the_reused_and_new_fds(proc: FakeProc) -> None:
    """Churn in a process (a socket closed, its fd number reused by a new one, one more opened)
    costs three readlinks (those two and its one file), not one per fd, and every owner and
    holder is right."""
    proc.add(100, *range(1, 41))  # fd 0 /dev/null, fds 1..40 sockets 1..40
    proc.add(200, 500)
    owners = OwnerMap(str(proc.root), Clock(), track_holders=True)
    wanted = {ino: 1000 + ino for ino in range(1, 41)} | {500: 9}
    owners.resolve(wanted)
    assert owners.stats.links_read == 41 + 2  # the cold read: every fd of both processes
    fd = proc.root / "100" / "fd"
    (fd / "5").unlink()  # socket 5 closed ...
    (fd / "5").symlink_to("socket:[77]")  # ... and its fd number reused by a new socket
    (fd / "41").symlink_to("socket:[78]")  # one more
    owners.drop_inodes([5])  # what the collector does with the dump's closed sockets
    del wanted[5]
    wanted |= {77: 2000, 78: 2001}
    got = owners.resolve(wanted, prune=False)
    assert owners.stats.links_read == 3  # fd 5 (a closed socket's), fd 41 (new), fd 0 (a file: may be reused)
    assert (got[77], got[78], got[500]) == (100, 100, 200)
    assert 5 not in got and owners.holders_of(5) == ()
    assert owners.holders_of(77) == (100,) and 77 in owners._tables[100][1]
    assert 5 not in owners._tables[100][1]


def test_a_sweep_keeps_one_object_per_inode_number(proc: FakeProc) -> None:
    """A sweep reads every table in full again; the numbers it reads are the objects the maps
    already hold (a second copy of each would stay alive as long as the holders' keys keep the
    first: some 3 MB at 100k sockets), while what changed is still read as it is now."""
    base = 10**6  # (above the small ints Python caches: each read makes new objects)
    proc.add(100, *range(base, base + 40))
    clock = Clock()
    owners = OwnerMap(str(proc.root), clock, track_holders=True)
    wanted = {ino: 1000 for ino in range(base, base + 40)}
    owners.resolve(wanted)
    before = dict(owners._fdmaps[100])
    held = {ino: ino for ino in owners.holders}  # the holders' own key objects
    fd = proc.root / "100" / "fd"
    (fd / "3").unlink()  # one socket closed and its fd number reused by another
    (fd / "3").symlink_to(f"socket:[{base + 77}]")
    owners.drop_inodes([base + 2])
    del wanted[base + 2]
    wanted[base + 77] = 2000
    clock.now += SWEEP_EVERY
    got = owners.resolve(wanted)
    assert got[base + 77] == 100 and base + 2 not in got
    after = owners._fdmaps[100]
    assert after["3"] == base + 77
    same = [n for n in after if n != "3" and after[n]]
    assert len(same) == 39
    assert all(after[n] is before[n] is held[after[n]] for n in same)
    assert all(ino is held[ino] for ino in owners._tables[100][1] if ino in held)


def test_a_file_fd_reused_for_a_socket_is_still_found(proc: FakeProc) -> None:
    """What the partial read cannot see (fd 0, /dev/null, replaced by a socket: nothing closed,
    the count kept) is found by the search with full reads."""
    proc.add(100, 1, 2)
    owners = OwnerMap(str(proc.root), Clock(), track_holders=True)
    wanted = {1: 10, 2: 20}
    owners.resolve(wanted)
    fd = proc.root / "100" / "fd"
    (fd / "0").unlink()
    (fd / "0").symlink_to("socket:[9]")
    wanted[9] = 30
    assert owners.resolve(wanted)[9] == 100
    assert owners.holders_of(9) == (100,)


def test_incremental_tables_agree_with_a_fresh_walk_under_random_churn() -> None:
    """Real sockets in this process and in a child holding some of them: after each random step
    (close, open, dup, close this process's copy of a shared socket) the long-lived map names the
    same owner and holders for every socket as a map that reads everything afresh."""
    import random
    import socket
    import subprocess
    import sys

    from app.fast.procfs import fd_count

    if fd_count(os.getpid()) <= 0:
        pytest.skip("this kernel reports no fd count (Linux < 6.2): a closed shared copy waits for a sweep")
    rng = random.Random(7)
    socks: list[socket.socket] = [socket.socket() for _ in range(30)]
    shared = socks[:6]
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], pass_fds=[s.fileno() for s in shared]
    )
    try:
        child_inodes = {os.fstat(s.fileno()).st_ino for s in shared}
        clock = Clock()
        owners = OwnerMap(clock=clock, track_holders=True)

        def wanted() -> dict[int, int]:
            mine = {os.fstat(s.fileno()).st_ino for s in socks}
            return {ino: 1 for ino in mine | child_inodes}

        previous = wanted()
        owners.resolve(previous)
        for _ in range(25):
            for _ in range(rng.randint(1, 4)):
                action = rng.choice(("close", "open", "dup"))
                if action == "close" and socks:
                    socks.pop(rng.randrange(len(socks))).close()
                elif action == "open":
                    socks.append(socket.socket())
                elif socks:
                    socks.append(socket.socket(fileno=os.dup(socks[rng.randrange(len(socks))].fileno())))
            now = wanted()
            owners.drop_inodes(previous.keys() - now.keys())
            got = owners.resolve(now, prune=False)
            fresh = OwnerMap(track_holders=True)
            want = fresh.resolve(now)
            assert {i: got.get(i) for i in now} == {i: want.get(i) for i in now}
            assert {i: owners.holders_of(i) for i in now} == {i: fresh.holders_of(i) for i in now}
            assert all(owners.holders_of(i)[0] == os.getpid() for i in now if i not in child_inodes)
            assert owners._owns == Counter(owners.owner.values())  # (owner_pids is its keys)
            previous = now
    finally:
        child.kill()
        child.wait()
        for s in socks:
            s.close()
