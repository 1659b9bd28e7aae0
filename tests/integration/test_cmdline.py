"""Command lines read raw from /proc/PID/cmdline: a carriage return stays one, a rewritten argv
(nginx's "nginx: worker process" with NUL padding) is one argument, invalid UTF-8 survives."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.processes import read_process
from tests.helpers import run_cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/PID/cmdline")

# Rewrites its own argument area the way nginx and setproctitle do: the title, then NUL bytes up
# to the old end (writing its own memory through /proc/self/mem), then listens on loopback.
REWRITER = r"""
import socket, sys, time
rest = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
arg_start, arg_end = int(rest[45]), int(rest[46])  # fields 48 and 49 of /proc/PID/stat
title = sys.argv[1].encode()
with open("/proc/self/mem", "r+b", buffering=0) as mem:
    mem.seek(arg_start)
    mem.write(title + b"\0" * (arg_end - arg_start - len(title)))
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(120)
"""

SLEEPER = "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); " \
    "print(s.getsockname()[1], flush=True); time.sleep(120)"  # fmt: skip


@contextmanager
def child(args: list[str | bytes]) -> Iterator[tuple[int, int]]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield proc.pid, port
    finally:
        proc.kill()
        proc.wait()


def test_rewritten_argv_is_one_argument_without_padding() -> None:
    title = "ps-worker: process"
    padding = "x" * 200  # a long original argv: the title leaves a lot of NUL padding behind
    with child([sys.executable, "-c", REWRITER, title, padding, "", "more"]) as (pid, port):
        info = read_process(pid)
        assert info is not None
        assert info.cmdline == (title,)
        assert info.command == title
        data = json.loads(run_cli("who", str(port), "--json").stdout)
        assert data["sockets"][0]["process"]["cmdline"] == [title]


def test_carriage_return_and_invalid_utf8_in_an_argument_are_kept() -> None:
    with child([sys.executable, "-c", SLEEPER, "c\rd", b"x\xffy", "", "last"]) as (pid, port):
        info = read_process(pid)
        assert info is not None
        assert info.cmdline[-4:] == ("c\rd", "x\udcffy", "", "last")  # inner empty argument kept
        res = run_cli("who", str(port))
        assert "c\\rd x\\xffy  last" in res.stdout, res.stdout  # escaped as it is, not as c\nd
        data = json.loads(run_cli("who", str(port), "--json").stdout)
        assert data["sockets"][0]["process"]["cmdline"][-4:-2] == ["c\rd", "x\udcffy"]
