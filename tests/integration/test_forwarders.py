"""Real forwarders, labelled from their own argv: a real sshd on loopback (its own config, host key
and authorized key in a temp dir) with a real ``ssh -N -L/-D`` client, and a real ``socat``. Every
forward is used for real (bytes go through it to a loopback echo server) before it is labelled.
Only the pids started here are killed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import psutil
import pytest

from app.forwarders import forward_of
from tests.helpers import echo, free_port, listening_ports, ssh_client, stop_process, tcp_server, wait_for


def through(port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        return s.recv(4096)


def test_ssh_local_forward_is_labelled_with_its_target(sshd: tuple[int, str]) -> None:
    with tcp_server(echo) as target:
        local = free_port()
        client = ssh_client(sshd, "-N", "-L", f"127.0.0.1:{local}:127.0.0.1:{target}")
        try:
            wait_for(lambda: client.poll() is not None or local in listening_ports(client.pid), timeout=20)
            assert client.poll() is None, client.stderr.read() if client.stderr else ""
            assert through(local) == b"ping"  # the tunnel really forwards
            fwd = forward_of(tuple(psutil.Process(client.pid).cmdline()), local)
            assert fwd is not None
            assert (fwd.kind, fwd.target, fwd.listen_port) == ("ssh-local", f"127.0.0.1:{target}", local)
            assert fwd.label() == f"ssh tunnel → 127.0.0.1:{target} via root@127.0.0.1 port {sshd[0]}"
            assert fwd.as_dict() == {
                "kind": "ssh-local",
                "target": f"127.0.0.1:{target}",
                "via": f"root@127.0.0.1 port {sshd[0]}",
            }
        finally:
            stop_process(client)


def test_several_forwards_in_one_ssh_each_listener_gets_its_own(sshd: tuple[int, str]) -> None:
    """Combined flags (-NL), -o LocalForward with a space, and -D, in one real ssh client: the
    listener's port picks the forward."""
    with tcp_server(echo) as t1, tcp_server(echo) as t2:
        p1, p2, p3 = free_port(), free_port(), free_port()
        client = ssh_client(
            sshd,
            "-NL",
            f"{p1}:127.0.0.1:{t1}",
            "-o",
            f"LocalForward=127.0.0.1:{p2} 127.0.0.1:{t2}",
            f"-D127.0.0.1:{p3}",
        )
        try:
            wait_for(
                lambda: client.poll() is not None or {p1, p2, p3} <= listening_ports(client.pid), timeout=20
            )
            assert client.poll() is None, client.stderr.read() if client.stderr else ""
            assert through(p1, b"one") == b"one" and through(p2, b"two") == b"two"
            argv = tuple(psutil.Process(client.pid).cmdline())
            assert forward_of(argv, p1).target == f"127.0.0.1:{t1}"  # type: ignore[union-attr]
            assert forward_of(argv, p2).target == f"127.0.0.1:{t2}"  # type: ignore[union-attr]
            socks = forward_of(argv, p3)
            assert socks is not None and socks.kind == "ssh-dynamic"
            assert socks.label() == f"ssh SOCKS proxy via root@127.0.0.1 port {sshd[0]}"
        finally:
            stop_process(client)


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed (Debian package socat)")
def test_socat_forward_is_labelled() -> None:
    with tcp_server(echo) as target:
        local = free_port()
        proc = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{local},bind=127.0.0.1,fork,reuseaddr", f"TCP:127.0.0.1:{target}"],
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(lambda: proc.poll() is not None or local in listening_ports(proc.pid), timeout=10)
            assert through(local) == b"ping"
            fwd = forward_of(tuple(psutil.Process(proc.pid).cmdline()), local)
            assert fwd is not None and fwd.label() == f"socat → 127.0.0.1:{target}"
            assert fwd.listen == f"127.0.0.1:{local}"
        finally:
            stop_process(proc)


def test_a_hostile_argv_of_a_real_process_is_escaped() -> None:
    """A real process whose argv says ``ssh ... -L 8080:<escapes>:80 host`` (python run as "ssh"):
    the raw target is kept as data, the label is escaped."""
    evil = "\x1b]0;pwned\x07\x1b[2J\u202e"
    code = "import time; time.sleep(30)"
    python = os.path.realpath(sys.executable)
    proc = subprocess.Popen(["ssh", "-c", code, "-L", f"8080:{evil}:80", "host"], executable=python)
    try:
        argv = wait_for(lambda: (a := tuple(psutil.Process(proc.pid).cmdline())) and "-L" in a and a)
        assert argv[0] == "ssh"
        fwd = forward_of(argv, 8080)
        assert fwd is not None and fwd.target == f"{evil}:80" and fwd.via == "host"
        label = fwd.label()
        assert label == "ssh tunnel → \\x1b]0;pwned\\x07\\x1b[2J\\u202e:80 via host"
    finally:
        stop_process(proc)  # type: ignore[arg-type]
