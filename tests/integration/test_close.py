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

from tests import helpers
from tests.helpers import run_cli
from tests.unprivileged import unprivileged_runner, why_not

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="netlink SOCK_DESTROY")


@contextmanager
def two_connections() -> Iterator[tuple[subprocess.Popen[str], list[str], list[socket.socket], str]]:
    """tests/helpers.py's two_connections, with the endpoints written as ``close`` takes them."""
    with helpers.two_connections() as (child, ports, accepted, port):
        yield child, [f"127.0.0.1:{p}" for p in ports], accepted, f"127.0.0.1:{port}"


ask = helpers.ask_client


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
