"""``portscope close``: one real loopback connection destroyed (SOCK_DESTROY), everything else intact."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.helpers import run_cli
from tests.unprivileged import unprivileged_runner, why_not

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="netlink SOCK_DESTROY")

# A child with two client connections to the test's listener; it echoes a line on each on demand.
_CLIENT = r"""
import socket, sys, time
port = int(sys.argv[1])
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
print(" ".join("%s:%d" % c.getsockname() for c in conns), flush=True)
for line in sys.stdin:
    i = int(line)
    try:
        conns[i].sendall(b"ping\n")
        print("sent", i, flush=True)
    except OSError as exc:
        print("error", i, exc.errno, flush=True)
"""


@contextmanager
def two_connections() -> Iterator[tuple[subprocess.Popen[str], list[str], list[socket.socket], str]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-c", _CLIENT, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        locals_ = child.stdout.readline().split()
        accepted = [srv.accept()[0] for _ in range(2)]
        for a in accepted:
            a.settimeout(5)
        yield child, locals_, accepted, f"127.0.0.1:{port}"
    finally:
        child.kill()
        child.wait()
        for a in accepted:
            a.close()
        srv.close()


def ask(child: subprocess.Popen[str], i: int) -> str:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(f"{i}\n")
    child.stdin.flush()
    return child.stdout.readline().strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="closing a connection needs root")
def test_close_destroys_one_connection_and_keeps_the_process_and_the_other() -> None:
    with two_connections() as (child, locals_, accepted, remote):
        res = run_cli("close", locals_[0], remote, "--yes", "--json")
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        assert doc["closed"] == {
            "proto": "tcp",
            "family": "ipv4",
            "local": {"ip": "127.0.0.1", "port": int(locals_[0].rsplit(":", 1)[1])},
            "remote": {"ip": "127.0.0.1", "port": int(remote.rsplit(":", 1)[1])},
            "state": "ESTABLISHED",
        }
        assert doc["owner"]["pid"] == child.pid
        # the peer of the closed one sees a reset (or EOF); the other connection still works
        try:
            assert accepted[0].recv(10) == b""
        except ConnectionResetError:
            pass
        assert ask(child, 1) == "sent 1" and accepted[1].recv(10) == b"ping\n"
        assert ask(child, 0).startswith("error 0")  # the child's own end was aborted too
        assert child.poll() is None
        # closed now: a second close finds nothing
        again = run_cli("close", locals_[0], remote, "--yes")
        assert again.returncode == 1 and "no TCP connection" in again.stderr


def test_unknown_pair_bad_endpoints_and_no_terminal() -> None:
    with two_connections() as (child, locals_, _accepted, remote):
        res = run_cli("close", "127.0.0.1:1", "127.0.0.1:2", "--yes")
        assert res.returncode == 1 and res.stderr.count("\n") == 1 and "no TCP connection" in res.stderr
        for bad in (("nohost:1", remote), (locals_[0], "127.0.0.1:99999"), ("::1:5", remote)):
            res = run_cli("close", *bad, "--yes")
            assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
        res = run_cli("close", locals_[0], remote, stdin=subprocess.DEVNULL)
        assert res.returncode == 2 and "--yes" in res.stderr
        assert ask(child, 0) == "sent 0"  # nothing was closed


@pytest.mark.skipif(why_not() is not None, reason=why_not() or "")
def test_unprivileged_close_is_refused_with_one_clear_line() -> None:
    with two_connections() as (child, locals_, accepted, remote), unprivileged_runner() as cmd:
        res = subprocess.run([*cmd, "close", locals_[0], remote, "--yes"], capture_output=True, text=True)
        assert res.returncode == 1, res
        assert res.stderr.strip() == "portscope: closing a connection needs root (CAP_NET_ADMIN)"
        assert ask(child, 0) == "sent 0" and accepted[0].recv(10) == b"ping\n"
