"""/proc parsing (app/fast/procfs.py) against real processes, including a zombie thread-group leader."""

from __future__ import annotations

import os
import sys

import pytest

from app.collector import default_collector
from app.fast import procfs
from tests.helpers import child_listener, spawn_zombie_leader

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def _listener_inode(port: int) -> int:
    inodes = procfs.proc_net_inodes(port, ["tcp"])
    assert len(inodes) == 1
    return next(iter(inodes))


def test_stat_and_socket_inodes_of_a_live_listener() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        st = procfs.read_stat(child.pid)
        assert st is not None and st.alive and st.ppid == os.getpid() and st.threads == 1
        assert st.start_ticks == procfs.start_ticks(child.pid)
        ino = _listener_inode(child.port)
        assert ino in (procfs.socket_inodes(child.pid) or [])
        assert procfs.inode_holders([ino]) == {ino: {child.pid}}
    assert procfs.read_stat(child.pid) is None and procfs.socket_inodes(child.pid) is None


def test_a_zombie_leader_with_a_live_thread_is_alive_and_owns_its_listener() -> None:
    child = spawn_zombie_leader()
    try:
        st = procfs.read_stat(child.pid)
        assert st is not None and st.state == "Z" and st.threads >= 1 and st.alive
        assert os.listdir(f"/proc/{child.pid}/fd") == []  # the leader's own table reads empty
        ino = _listener_inode(child.port)
        assert ino in (procfs.socket_inodes(child.pid) or [])
        assert procfs.inode_holders([ino]) == {ino: {child.pid}}
        snap = default_collector().collect()
        mine = [s for s in snap.on_port(child.port) if s.listening]
        assert [s.pid for s in mine] == [child.pid]  # owned, not "no visible owner"
    finally:
        child.stop()


def test_an_exited_unreaped_child_is_not_alive() -> None:
    import subprocess
    import time

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while (st := procfs.read_stat(proc.pid)) is not None and st.state != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert st is not None and st.threads == 1 and not st.alive
    finally:
        proc.wait()
