"""``who``'s owner search (app/fast/owners.py OwnerMap.search, app/fast/ownercache.py) against the
full walk on real processes: the same owner and holders for a pre-fork server, a socket handed to
a child over SCM_RIGHTS, a worker found before its master; the documented limit (a receiver
outside the sender's process tree) pinned; fewer fd tables read; the owner cache used first and
never able to name a wrong owner, whatever the file says."""

from __future__ import annotations

import array
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.fast.collector import FastCollector
from app.fast.ownercache import OwnerCache
from app.fast.procfs import list_pids, start_ticks
from app.model import Snapshot
from tests.helpers import child_listener, kill_quietly, prefork_listener, run_cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def full(port: int) -> Snapshot:
    """The full walk's answer (every process's fd table read), for the sockets on ``port``."""
    return FastCollector().collect(port=port)


def searched(port: int, cache: OwnerCache | None = None) -> tuple[Snapshot, FastCollector]:
    fast = FastCollector(search=True, hints=cache)
    return fast.collect(port=port), fast


def owners(snap: Snapshot, port: int) -> dict[str, tuple[int | None, tuple[int, ...]]]:
    """endpoint key -> (owner, every holder primary first) of the sockets on ``port``."""
    return {s.endpoint_key: (s.pid, snap.holders_of(s)) for s in snap.on_port(port)}


def test_a_prefork_server_has_the_same_owner_and_holders_as_the_full_walk() -> None:
    with prefork_listener(3) as (master, port, kids):
        snap, fast = searched(port)
        assert owners(snap, port) == owners(full(port), port)
        [listener] = [s for s in snap.on_port(port) if s.listening]
        assert listener.pid == master.pid and snap.holders_of(listener) == (master.pid, *kids)
        assert fast.owners.stats.pids_walked < len(list_pids())  # not every table was read


# The master binds, forks; only the child (found first: the newest pid) and the master hold it.
_FORK_LATE = r"""
import os, socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w); os.read(r, 1); os._exit(0)
print(s.getsockname()[1], pid, flush=True)
sys.stdin.readline()
os.close(w)
"""


def test_a_worker_found_first_leads_to_its_master() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _FORK_LATE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port_s, kid_s = proc.stdout.readline().split()
        port, kid = int(port_s), int(kid_s)
        snap, _ = searched(port)
        [listener] = [s for s in snap.on_port(port) if s.listening]
        assert snap.holders_of(listener) == (proc.pid, kid)  # the master first, though found second
        assert owners(snap, port) == owners(full(port), port)
    finally:
        proc.kill()
        proc.wait()
        if "kid_s" in dir():
            kill_quietly(int(kid_s))


# Receives one fd over a unix socket, then holds it until stdin closes.
_RECEIVER = r"""
import array, socket, sys
a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); a.connect(sys.argv[1])
print("ready", flush=True)
msg, anc, flags, addr = a.recvmsg(1, socket.CMSG_LEN(4))
print("got", flush=True)
sys.stdin.readline()
"""
# Binds, passes the listener to the receiver at sys.argv[1], keeps its own copy.
_SENDER = r"""
import array, socket, sys
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(4)
a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); a.connect(sys.argv[1])
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [lst.fileno()]))])
print(lst.getsockname()[1], flush=True)
sys.stdin.readline()
"""


@contextmanager
def unix_server() -> Iterator[tuple[socket.socket, str]]:
    path = os.path.join(tempfile.mkdtemp(prefix="ps-scm-"), "s")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(2)
    try:
        yield server, path
    finally:
        server.close()
        os.unlink(path)
        os.rmdir(os.path.dirname(path))


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def test_a_socket_passed_to_a_child_over_scm_rights_has_every_holder() -> None:
    with unix_server() as (server, path):
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(4)
        port = lst.getsockname()[1]
        rx = spawn(_RECEIVER, path)  # our child: in our process tree
        try:
            assert rx.stdout is not None
            conn, _ = server.accept()
            assert rx.stdout.readline().strip() == "ready"
            conn.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [lst.fileno()]))])
            assert rx.stdout.readline().strip() == "got"
            snap, _ = searched(port)
            [listener] = [s for s in snap.on_port(port) if s.listening]
            assert snap.holders_of(listener) == (os.getpid(), rx.pid)
            assert owners(snap, port) == owners(full(port), port)
            conn.close()
        finally:
            rx.kill()
            rx.wait()
            lst.close()


def test_the_limit_a_receiver_outside_the_senders_tree_is_not_found() -> None:
    """Two unrelated processes (siblings) share a listener over SCM_RIGHTS: the search names the
    holder it found and its tree, never a wrong one; the full walk (list, the dashboard) names both."""
    with unix_server() as (server, path):
        rx = spawn(_RECEIVER, path)
        tx = None
        try:
            assert rx.stdout is not None
            rx_conn, _ = server.accept()
            assert rx.stdout.readline().strip() == "ready"
            tx = spawn(_SENDER, path)
            tx_conn, _ = server.accept()
            _msg, anc, _flags, _addr = tx_conn.recvmsg(1, socket.CMSG_LEN(4))
            fd = array.array("i", anc[0][2][:4])[0]
            rx_conn.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
            os.close(fd)  # relayed: our copy goes
            assert tx.stdout is not None
            port = int(tx.stdout.readline())
            assert rx.stdout.readline().strip() == "got"
            snap, _ = searched(port)
            [listener] = [s for s in snap.on_port(port) if s.listening]
            everyone = full(port)
            [all_holders] = [everyone.holders_of(s) for s in everyone.on_port(port) if s.listening]
            assert set(all_holders) == {tx.pid, rx.pid}
            found = snap.holders_of(listener)
            assert len(found) == 1 and found[0] in all_holders
        finally:
            for p in (rx, tx):
                if p is not None:
                    p.kill()
                    p.wait()


def test_the_owner_cache_is_walked_first_and_kept(tmp_path: Path) -> None:
    cache_path = tmp_path / "owners"
    with child_listener("tcp", "127.0.0.1") as child:
        snap, fast = searched(child.port, OwnerCache(str(cache_path)))
        assert [s.pid for s in snap.on_port(child.port)] == [child.pid]
        lines = cache_path.read_text().split()
        assert lines[1:4] == [str(child.port), str(child.pid), str(start_ticks(child.pid))]
        again, fast2 = searched(child.port, OwnerCache(str(cache_path)))
        assert [s.pid for s in again.on_port(child.port)] == [child.pid]
        assert fast2.owners.stats.pids_walked <= fast.owners.stats.pids_walked
        # the hinted process is read first: with the hint, the search stops after its table and
        # its ancestors' (the tree completion), whatever the number of other processes
        assert fast2.owners.stats.pids_walked <= 1 + len(ancestors(child.pid))


def ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1:
        with open(f"/proc/{pid}/stat", "rb") as f:
            pid = int(f.read().rsplit(b")", 1)[1].split()[1])
        out.append(pid)
    return out


def test_a_wrong_or_stale_cache_never_names_a_wrong_owner(tmp_path: Path) -> None:
    cache_path = tmp_path / "owners"
    with child_listener("tcp", "127.0.0.1") as child:
        inode = next(s.inode for s in full(child.port).on_port(child.port))
        me = os.getpid()
        lines = [
            f"{inode} {child.port} {me} {start_ticks(me)}",  # a live process that does not hold it
            f"{inode} {child.port} 1 {start_ticks(1) or 0}",  # init
            f"{inode} {child.port} {child.pid} 12345",  # the right pid, another start time (reused)
            "garbage line",
            f"{inode} {child.port}",
        ]
        cache_path.write_text("\n".join(lines) + "\n")
        snap, _ = searched(child.port, OwnerCache(str(cache_path)))
        assert [s.pid for s in snap.on_port(child.port)] == [child.pid]
        assert owners(snap, child.port) == owners(full(child.port), child.port)


def test_the_cache_file_is_never_a_link_or_a_fifo_replaced(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    link = tmp_path / "owners"
    link.symlink_to(target)
    with child_listener("tcp", "127.0.0.1") as child:
        searched(child.port, OwnerCache(str(link)))
        assert link.is_symlink() and target.read_text() == "keep\n"
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        snap, _ = searched(child.port, OwnerCache(str(fifo)))  # neither blocks nor is replaced
        assert [s.pid for s in snap.on_port(child.port)] == [child.pid]
        assert fifo.is_fifo()


def test_who_cli_lists_the_same_holders_as_list(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    with prefork_listener(2) as (master, port, kids):
        for _ in range(2):  # cold, then with the cache it wrote
            who = json.loads(run_cli("who", str(port), "--json", env=env).stdout)
            listed = json.loads(run_cli("list", "--port", str(port), "--json", env=env).stdout)
            assert [s["owners"] for s in who["sockets"]] == [s["owners"] for s in listed["sockets"]]
            assert [o["pid"] for o in who["sockets"][0]["owners"]] == [master.pid, *kids]
        assert (tmp_path / "portscope" / "owners").is_file()
        assert os.stat(tmp_path / "portscope").st_mode & 0o777 == 0o700


def test_a_port_read_sees_both_families_in_one_tcp_dump() -> None:
    from app.fast.netlink import NetlinkReader

    with child_listener("tcp", "127.0.0.1") as v4:
        try:
            six = socket.socket(socket.AF_INET6)
            six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            six.bind(("::1", v4.port))
        except OSError:
            pytest.skip("no IPv6 loopback")
        six.listen(1)
        try:
            reader = NetlinkReader()
            by_port = reader.read(v4.port).records
            every = [r for r in NetlinkReader().read().records if r.laddr[1] == v4.port]
            key = lambda r: (r.proto, r.family, r.laddr, r.raddr, r.status, r.inode)  # noqa: E731
            assert sorted(map(key, by_port)) == sorted(map(key, every))
            assert {r.family.value for r in by_port} == {"ipv4", "ipv6"}
            reader.close()
        finally:
            six.close()


def test_without_hints_unreadable_owners_leave_the_socket_hidden_not_wrong() -> None:
    """An inode no readable table holds (its only descriptor in flight over SCM_RIGHTS): the
    search walks everything and reports no owner, as the full walk does."""
    a, b = socket.socketpair()
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    port = lst.getsockname()[1]
    socket.send_fds(a, [b"x"], [lst.fileno()])
    lst.close()
    try:
        snap, fast = searched(port)
        assert [s.pid for s in snap.on_port(port)] == [None]
        assert fast.owners.stats.pids_walked >= len(list_pids()) - 5
    finally:
        a.close()
        b.close()
