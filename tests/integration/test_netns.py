"""Every network namespace, and reading one from outside: a real listener inside ``unshare --net``
(lo brought up inside), an ``ip netns add`` namespace, one in a container-named cgroup, and the
unprivileged case (a user namespace of the user nobody). The sockets are read with the existing
app.fast.netlink.NetlinkReader, its ``open_socket`` pointed at :func:`app.netns.opener` (the
reader does not take an opener yet)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from app import netns as netns_mod
from app.fast import netlink
from app.fast.netlink import NetlinkReader
from app.netns import Netns, current_inode, list_namespaces, open_diag_socket, opener
from tests.cgroups import MOUNTS, moved_into
from tests.helpers import Child, more, netns_listener, wait_for
from tests.unprivileged import unprivileged_runner, why_not

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="entering another network namespace needs root")
needs_unshare = pytest.mark.skipif(
    shutil.which("unshare") is None or shutil.which("ip") is None,
    reason="unshare (util-linux) and ip (iproute2)",
)


def ns_of(pid: int) -> Netns:
    inode = int(os.readlink(f"/proc/{pid}/ns/net")[5:-1])
    found = list_namespaces().by_inode(inode)
    assert found is not None, f"namespace {inode} of pid {pid} not listed"
    return found


def listeners_via(monkeypatch: pytest.MonkeyPatch, ns: Netns) -> tuple[NetlinkReader, set[int]]:
    """A real NetlinkReader whose socket opener is ours (monkeypatched: the reader cannot take an
    opener yet); the ports of the TCP listeners it reads."""
    monkeypatch.setattr(netlink, "open_socket", opener(ns))
    reader = NetlinkReader()
    return reader, _listen_ports(reader)


def _listen_ports(reader: NetlinkReader) -> set[int]:
    return {r.laddr.port for r in reader.read().records if r.status == "LISTEN"}


@needs_root
@needs_unshare
def test_a_listener_inside_unshare_net_is_read_through_its_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    with netns_listener("unshare", "--net") as (proc, port):
        ns = ns_of(proc.pid)
        assert not ns.current and ns.inode != current_inode()
        assert proc.pid in ns.pids
        assert ns.label.startswith(f"pid {min(ns.pids)} (")
        assert ns.as_dict() == {"inode": ns.inode, "name": None, "current": False, "label": ns.label}
        host = host_listen_inodes()  # before the opener is swapped in
        reader, ports = listeners_via(monkeypatch, ns)
        try:
            assert port in ports
            inside = listen_inodes(reader, port)
            assert len(inside) == 1 and inside.isdisjoint(host)  # the host's dump cannot see it
            # The socket keeps reading that namespace after the thread that opened it ended:
            later = more(proc)
            assert later in _listen_ports(reader)
        finally:
            reader.close()
        current = list_namespaces().current
        assert current is not None and current.inode == current_inode()


@needs_root
@needs_unshare
def test_open_diag_socket_by_path(monkeypatch: pytest.MonkeyPatch) -> None:
    with netns_listener("unshare", "--net") as (proc, port):
        path = f"/proc/{proc.pid}/ns/net"
        sock = open_diag_socket(path)
        assert sock.family == socket.AF_NETLINK and sock.proto == netlink.NETLINK_SOCK_DIAG
        sock.close()
        monkeypatch.setattr(netlink, "open_socket", opener(path))
        reader = NetlinkReader()
        try:
            assert port in _listen_ports(reader)
        finally:
            reader.close()


def test_the_current_namespace_opens_without_entering_it() -> None:
    here = list_namespaces().current
    assert here is not None and here.current
    sock = open_diag_socket(here)
    sock.close()


def listen_inodes(reader: NetlinkReader, port: int) -> set[int]:
    return {r.inode for r in reader.read(port).records if r.status == "LISTEN"}


def host_listen_inodes() -> set[int]:
    reader = NetlinkReader()
    try:
        return {r.inode for r in reader.read().records if r.status == "LISTEN"}
    finally:
        reader.close()


@needs_root
@pytest.mark.skipif(shutil.which("ip") is None, reason="ip (iproute2) is not installed")
def test_ip_netns_namespaces_are_labelled_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"ps-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        with netns_listener("ip", "netns", "exec", name) as (proc, port):
            ns = ns_of(proc.pid)
            assert ns.name == name and ns.label == name
            assert f"/run/netns/{name}" in ns.paths
            reader, ports = listeners_via(monkeypatch, ns)
            reader.close()
            assert port in ports
        # the named namespace is listed even with no process in it
        listed = [ns for ns in list_namespaces().namespaces if ns.name == name]
        assert len(listed) == 1 and listed[0].pids == ()
        sock = open_diag_socket(listed[0])
        sock.close()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


@needs_root
@needs_unshare
@pytest.mark.skipif("v2" not in MOUNTS, reason="no cgroup v2 mount")
def test_a_namespace_is_labelled_by_the_container_living_in_it() -> None:
    cid = "9a" * 32
    with netns_listener("unshare", "--net") as (proc, _port):
        child = Child(proc, 0, "tcp", "127.0.0.1", "ns")  # type: ignore[arg-type]
        with moved_into(child, "v2", f"system.slice/docker-{cid}.scope"):
            ns = ns_of(proc.pid)
            assert ns.service is not None and ns.service.id == cid
            assert ns.label == f"container {cid[:12]} (docker)"


@needs_root
def test_a_namespace_that_is_gone() -> None:
    proc = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        ns = wait_for(lambda: _try_ns(proc.pid))
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(FileNotFoundError):
        open_diag_socket(ns)


def _try_ns(pid: int) -> Netns | None:
    try:
        link = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    if int(link[5:-1]) == current_inode():
        return None  # not yet in its own namespace (unshare has not run)
    return list_namespaces().by_inode(int(link[5:-1]))


def test_hostile_process_names_in_labels_are_escaped() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare")
    code = "import ctypes,time; ctypes.CDLL(None).prctl(15, b'\\x1b[31mevil\\x07', 0, 0, 0)"
    code += "; print(1, flush=True); time.sleep(30)"
    proc = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline()
        ns = ns_of(proc.pid)
        assert "\x1b" not in ns.label and "\x07" not in ns.label
        assert ns.label == f"pid {proc.pid} (\\x1b[31mevil\\x07)"
    finally:
        proc.kill()
        proc.wait()


# --- unprivileged ---------------------------------------------------------------------------------

AS_NOBODY = r"""
import json, os, subprocess, sys
from app import netns
from app.fast import netlink
code = "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()"
code += "; print(s.getsockname()[1], flush=True); sys.stdin.read()"
inner = "ip link set lo up && exec " + sys.executable + " -c " + repr(code)
argv = ["unshare", "--user", "--map-root-user", "--net", "sh", "-c", inner]
p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
port = int(p.stdout.readline())
inode = int(os.readlink(f"/proc/{p.pid}/ns/net")[5:-1])
found = netns.list_namespaces()
mine = found.by_inode(inode)
out = {"port": port, "skipped": found.skipped, "warning": found.warning(), "listed": mine is not None,
       "owner": mine.owner_uid if mine else None, "count": len(found.namespaces)}
if mine is not None:
    try:
        netns._open_in_thread(os.open(mine.paths[0], os.O_RDONLY))
        out["thread"] = "entered"
    except PermissionError:
        out["thread"] = "denied"
    netlink.open_socket = netns.opener(mine)
    reader = netlink.NetlinkReader()
    out["ports"] = sorted({r.laddr.port for r in reader.read().records if r.status == "LISTEN"})
p.kill()
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(why_not() is not None, reason=why_not() or "")
@needs_unshare
def test_unprivileged_sees_its_own_namespaces_only_and_says_what_it_skipped() -> None:
    """As the user nobody: its own ``unshare --user --net`` namespace is listed and read (through a
    child that joins the user namespace first); root's processes and namespaces are skipped, counted."""
    with unprivileged_runner() as prefix:
        python = prefix[: prefix.index("-m")]
        res = subprocess.run([*python, "-c", AS_NOBODY], capture_output=True, text=True, timeout=60, cwd="/")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout.splitlines()[-1])
    assert data["listed"] and data["owner"] == 65534
    assert data["thread"] == "denied"  # setns from a thread is refused: the child path read it
    assert data["port"] in data["ports"]
    assert data["skipped"].get(netns_mod.SKIP_UNREADABLE, 0) >= 1  # root's processes (pid 1, ...)
    assert data["warning"] and data["warning"].startswith("skipped ")
