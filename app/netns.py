"""Every network namespace on the host, and a sock_diag socket that reads any one of them.

A container's listeners live in its own network namespace, invisible to a netlink dump from the
host's. :func:`list_namespaces` finds every namespace (from ``/proc/*/ns/net`` and ``ip netns``'s
``/run/netns/*`` bind mounts, deduplicated by inode) and labels it the way people name it: its
``ip netns`` name, else the container or unit of a process living in it (:mod:`app.service`), else
``pid N (comm)``; the namespace of pid 1 is ``host``.

:func:`open_diag_socket` opens a NETLINK_SOCK_DIAG socket *inside* a namespace. A socket belongs
to the namespace it was created in for its whole life, so it keeps reading that namespace after
the thread that made it is gone. As root a short-lived thread does ``setns(CLONE_NEWNET)`` (it
changes only that thread), creates and binds the socket and exits. Without root the kernel lets a
process enter only a namespace owned by a user namespace it owns (``unshare --user --net``,
rootless podman): a short-lived child joins that user namespace, then the network namespace (the
user namespace must be joined single-threaded, hence a child), and hands the socket back over
SCM_RIGHTS. :func:`opener` makes a drop-in for ``app.fast.netlink.open_socket``.

Unprivileged, only the user's own namespaces are listed; :class:`NetnsList` counts what was
skipped and why.
"""

from __future__ import annotations

import _socket
import errno
import fcntl
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from app.fast.netlink import NETLINK_SOCK_DIAG, open_socket
from app.service import CONTAINER, Service, service_of
from app.textsafe import printable

PROC = "/proc"
RUN_NETNS = "/run/netns"
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1): the user namespace that owns a namespace
NS_GET_OWNER_UID = 0xB704  # _IO(0xb7, 0x4): the uid that created a user namespace
MAX_SERVICE_LOOKUPS = 64  # per namespace, processes asked for a container/unit label
SKIP_UNREADABLE = "processes whose namespace could not be read (permission denied)"
SKIP_NOT_OWNED = "namespaces of other users (only root may enter them)"
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True, slots=True)
class Netns:
    """One network namespace. ``label`` is escaped text for showing; ``name`` is its ``ip netns``
    name (raw). ``paths`` are where it can be opened (``/run/netns/NAME``, ``/proc/PID/ns/net``)."""

    inode: int
    label: str
    name: str | None = None
    current: bool = False
    pids: tuple[int, ...] = ()
    paths: tuple[str, ...] = ()
    service: Service | None = None
    owner_uid: int | None = None  # who created the user namespace that owns it (None: unknown)

    def as_dict(self) -> dict[str, object]:
        """The JSON shape: inode, name, current (+ label)."""
        return {"inode": self.inode, "name": self.name, "current": self.current, "label": self.label}


@dataclass
class NetnsList:
    """What :func:`list_namespaces` found: the namespaces (current first, then by inode) and, per
    reason, how many processes or namespaces were skipped."""

    namespaces: list[Netns] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def current(self) -> Netns | None:
        return next((ns for ns in self.namespaces if ns.current), None)

    def by_inode(self, inode: int) -> Netns | None:
        return next((ns for ns in self.namespaces if ns.inode == inode), None)

    def warning(self) -> str | None:
        """One line for stderr / a notification when something was skipped, else ``None``."""
        if not self.skipped:
            return None
        parts = [f"{count} {reason}" for reason, count in sorted(self.skipped.items())]
        return "skipped " + "; ".join(parts)


def _ns_inode_of_link(path: str) -> int | None:
    """The inode in a ``net:[4026531840]`` link. Raises OSError (EACCES for others' processes)."""
    link = os.readlink(path)
    if link.startswith("net:[") and link.endswith("]") and link[5:-1].isdigit():
        return int(link[5:-1])
    return None


def current_inode(proc: str = PROC) -> int | None:
    """The inode of the namespace this thread runs in."""
    for path in (f"{proc}/thread-self/ns/net", f"{proc}/self/ns/net"):
        try:
            return _ns_inode_of_link(path)
        except OSError:
            continue
    return None


def _comm(pid: int, proc: str) -> str:
    try:
        with open(f"{proc}/{pid}/comm", "rb") as f:
            return f.read(64).decode("utf-8", "surrogateescape").rstrip("\n")
    except OSError:
        return "?"


def owner_uid(path: str) -> int | None:
    """The uid that owns the user namespace owning the namespace at ``path`` (``None`` if unknown:
    an old kernel, or the path is gone)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        userns = fcntl.ioctl(fd, NS_GET_USERNS)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        buf = bytearray(4)
        fcntl.ioctl(userns, NS_GET_OWNER_UID, buf)
        return int(struct.unpack("=I", buf)[0])
    except OSError:
        return None
    finally:
        os.close(userns)


def list_namespaces(proc: str = PROC, run_netns: str = RUN_NETNS) -> NetnsList:
    """Every network namespace visible here, labelled. As root: all of them. Unprivileged: the
    current one and those owned by the user (others' are counted in ``skipped``). Never raises."""
    euid = os.geteuid()
    result = NetnsList()
    pids_of: dict[int, list[int]] = {}
    names: dict[int, list[str]] = {}
    unreadable = 0
    try:
        entries = sorted(int(n) for n in os.listdir(proc) if n.isdigit())
    except OSError:
        entries = []
    for pid in entries:
        try:
            inode = _ns_inode_of_link(f"{proc}/{pid}/ns/net")
        except PermissionError:
            unreadable += 1
            continue
        except OSError:  # gone, or a kernel thread without namespaces listed
            continue
        if inode is not None:
            pids_of.setdefault(inode, []).append(pid)
    try:
        netns_names = sorted(os.listdir(run_netns))
    except OSError:
        netns_names = []
    for name in netns_names:
        try:
            inode = os.stat(os.path.join(run_netns, name)).st_ino
        except OSError:
            continue
        names.setdefault(inode, []).append(name)
    if unreadable:
        result.skipped[SKIP_UNREADABLE] = unreadable
    here = current_inode(proc)
    # The host's namespace: pid 1's, else kthreadd's (kernel threads live in the initial one).
    host_inode = next((i for i, p in pids_of.items() if 1 in p), None)
    if host_inode is None and _comm(2, proc) == "kthreadd":
        host_inode = next((i for i, p in pids_of.items() if 2 in p), None)
    out: list[Netns] = []
    for inode in sorted(set(pids_of) | set(names)):
        pids = tuple(pids_of.get(inode, ()))
        named = names.get(inode, [])
        paths = tuple([os.path.join(run_netns, n) for n in named] + [f"{proc}/{p}/ns/net" for p in pids[:8]])
        owner = None
        if inode != here and paths:
            owner = owner_uid(paths[0])
            if euid != 0 and owner != euid:
                result.skipped[SKIP_NOT_OWNED] = result.skipped.get(SKIP_NOT_OWNED, 0) + 1
                continue
        service = None if named or inode == host_inode else _service_in(pids)
        if named:
            label = printable(named[0], 80)
        elif inode == host_inode:
            label = "host"
        elif service is not None:
            label = service.label()
        elif pids:
            label = printable(f"pid {pids[0]} ({_comm(pids[0], proc)})", 80)
        else:
            label = f"netns {inode}"
        out.append(
            Netns(
                inode=inode,
                label=label,
                name=named[0] if named else None,
                current=inode == here,
                pids=pids,
                paths=paths,
                service=service,
                owner_uid=owner,
            )
        )
    out.sort(key=lambda ns: (not ns.current, ns.inode))
    result.namespaces = out
    return result


def _service_in(pids: tuple[int, ...]) -> Service | None:
    """The service that best names a namespace: a container among its processes, else the unit of
    the first process that has one (a login session's scope says nothing about a namespace)."""
    unit: Service | None = None
    for pid in pids[:MAX_SERVICE_LOOKUPS]:
        svc = service_of(pid)
        if svc is None:
            continue
        if svc.kind == CONTAINER:
            return svc
        if unit is None and not svc.name.startswith("session-") and svc.name != "init.scope":
            unit = svc
    return unit


# --- entering a namespace -------------------------------------------------------------------------

_libc: Any = None  # ctypes.CDLL, loaded on first use (ctypes is not imported until needed)


def _setns(fd: int, nstype: int) -> None:
    """setns(2): os.setns on Python 3.12+, libc's through ctypes on 3.11."""
    native = getattr(os, "setns", None)
    if native is not None:
        native(fd, nstype)
        return
    import ctypes

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _open_ns(ns: Netns | str) -> int:
    """An fd on the namespace, checked to be the same one (a /proc/PID path may now be another
    process's). Raises FileNotFoundError when it is gone."""
    if isinstance(ns, str):
        return os.open(ns, _OPEN_FLAGS)
    for path in ns.paths:
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError:
            continue
        if os.fstat(fd).st_ino == ns.inode:
            return fd
        os.close(fd)
    raise FileNotFoundError(errno.ENOENT, f"network namespace {ns.inode} is gone")


def open_diag_socket(ns: Netns | str) -> _socket.socket:
    """A bound NETLINK_SOCK_DIAG socket inside ``ns`` (a :class:`Netns`, or a path such as
    ``/run/netns/NAME`` or ``/proc/PID/ns/net``); it keeps reading that namespace for its life.

    Raises FileNotFoundError (the namespace is gone), PermissionError (not ours to enter), or
    ``app.fast.netlink.NetlinkUnavailable``."""
    fd = _open_ns(ns)
    try:
        if os.fstat(fd).st_ino == current_inode():
            return open_socket()
        try:
            return _open_in_thread(fd)
        except PermissionError:
            if os.geteuid() == 0:
                raise
            return _open_in_child(fd)
    finally:
        os.close(fd)


def opener(ns: Netns | str) -> Callable[[], _socket.socket]:
    """A zero-argument drop-in for ``app.fast.netlink.open_socket`` that opens inside ``ns``."""
    return partial(open_diag_socket, ns)


def _open_in_thread(fd: int) -> _socket.socket:
    box: list[_socket.socket | BaseException] = []

    def run() -> None:
        try:
            _setns(fd, CLONE_NEWNET)  # this thread only; it ends right after
            box.append(open_socket())
        except BaseException as exc:
            box.append(exc)

    t = threading.Thread(target=run, name="portscope-setns", daemon=True)
    t.start()
    t.join(5)
    if not box:
        raise TimeoutError("setns thread did not finish")
    got = box[0]
    if isinstance(got, BaseException):
        raise got
    return got


_CHILD = r"""
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
userns, netns, back = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def enter(fd, kind):
    if libc.setns(fd, kind) != 0:
        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))
try:
    enter(userns, 0x10000000)
    enter(netns, 0x40000000)
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, int(sys.argv[4]))
    s.bind((0, 0))
    socket.send_fds(socket.socket(fileno=back), [b"ok"], [s.fileno()])
except OSError as e:
    socket.socket(fileno=back).sendall(b"E%d" % e.errno)
"""


def _open_in_child(fd: int) -> socket.socket:
    """Unprivileged: a child joins the namespace's owning user namespace (only a single-threaded
    process may), then the namespace, and passes the socket back over a unix socketpair."""
    userns = fcntl.ioctl(fd, NS_GET_USERNS)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        args = [sys.executable, "-S", "-c", _CHILD, str(userns), str(fd), str(child.fileno())]
        proc = subprocess.run(
            [*args, str(NETLINK_SOCK_DIAG)],
            pass_fds=(userns, fd, child.fileno()),
            capture_output=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
        child.close()
        parent.settimeout(5)
        msg, fds, _flags, _addr = socket.recv_fds(parent, 64, 1)
    finally:
        os.close(userns)
        parent.close()
        child.close()
    if fds and msg == b"ok":
        return socket.socket(fileno=fds[0])
    for extra in fds:
        os.close(extra)
    if msg.startswith(b"E") and msg[1:].isdigit():
        err = int(msg[1:])
        raise OSError(err, f"cannot enter the network namespace: {os.strerror(err)}")
    detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no answer"]
    raise PermissionError(errno.EPERM, f"cannot enter the network namespace: {detail[0]}")
