"""Run a command with netlink sockets refused, the way a seccomp policy of a container does.

    python tests/seccomp.py [--errno EPERM|EAFNOSUPPORT|EACCES] -- COMMAND [ARG...]

Installs a seccomp BPF filter (through ctypes and prctl: PR_SET_NO_NEW_PRIVS, then
PR_SET_SECCOMP with SECCOMP_MODE_FILTER) that makes ``socket(AF_NETLINK, ...)`` fail with the
given errno and allows every other system call, then execs COMMAND. The filter is inherited by
COMMAND and its children and cannot be removed. :func:`unavailable` says why it cannot be used
here (another architecture, no seccomp in the kernel), for a test's skip reason.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import subprocess
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K

# machine -> (AUDIT_ARCH_*, __NR_socket)
ARCHES = {
    "x86_64": (0xC000003E, 41),
    "aarch64": (0xC00000B7, 198),
}

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0 = 0, 4, 16  # args[0]'s low half (little-endian)


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def program(err: int) -> list[tuple[int, int, int, int]]:
    arch, nr_socket = ARCHES[platform.machine()]
    return [
        (BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),
        (BPF_JEQ_K, 0, 5, arch),  # another ABI: allow
        (BPF_LD_W_ABS, 0, 0, OFFSET_NR),
        (BPF_JEQ_K, 0, 3, nr_socket),  # not socket(): allow
        (BPF_LD_W_ABS, 0, 0, OFFSET_ARG0),
        (BPF_JEQ_K, 0, 1, socket.AF_NETLINK),  # socket(AF_INET...): allow
        (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | (err & 0xFFFF)),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]


def install(err: int = errno.EPERM) -> None:
    """Install the filter in this process (and everything it execs). Raises OSError."""
    if platform.machine() not in ARCHES:
        raise OSError(errno.ENOSYS, f"no seccomp filter for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    insns = program(err)
    array = (SockFilter * len(insns))(*[SockFilter(*i) for i in insns])
    prog = SockFprog(len(insns), array)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def unavailable() -> str | None:
    """Why the filter cannot be used here, or ``None`` when it works (checked in a child)."""
    if not sys.platform.startswith("linux"):
        return "seccomp is Linux-only"
    if platform.machine() not in ARCHES:
        return f"no seccomp filter written for {platform.machine()}"
    check = (
        "import socket, sys; sys.path.insert(0, sys.argv[1]); import seccomp; seccomp.install()\n"
        "try:\n    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)\nexcept PermissionError:\n"
        "    print('refused')\nelse:\n    print('allowed')"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    res = subprocess.run([sys.executable, "-c", check, here], capture_output=True, text=True, timeout=30)
    if res.stdout.strip() != "refused":
        return f"the seccomp filter could not be installed: {res.stderr.strip()[-200:] or res.stdout}"
    return None


def command(*args: str, err: str = "EPERM") -> list[str]:
    """The argv that runs ``args`` under the filter."""
    return [sys.executable, os.path.abspath(__file__), "--errno", err, "--", *args]


def main(argv: list[str]) -> int:
    err = errno.EPERM
    if argv[:1] == ["--errno"]:
        err = getattr(errno, argv[1])
        argv = argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    install(err)
    os.execvp(argv[0], argv)
    return 127  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
