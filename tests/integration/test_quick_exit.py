"""``run()`` (the console script's and ``python -m app``'s entry) ends ``who`` and ``list`` with
``os._exit`` after flushing, skipping the interpreter's teardown, and only when nothing expects
that teardown: real processes, output read through a pipe."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from contextlib import ExitStack

import pytest

from tests.helpers import child_listener

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's who and list path")

# An object whose __del__ runs at the interpreter's teardown (module globals are cleared): its
# marker on stderr says the teardown happened.
RUN = r"""
import os, sys, threading
class Marker:
    def __del__(self):
        os.write(2, b"TORN-DOWN\n")
marker = Marker()
extra = sys.argv.pop(1)
if extra == "atexit":
    import atexit
    atexit.register(lambda: os.write(2, b"AT-EXIT\n"))
elif extra == "tail":  # output left in the buffer (as by an error in the middle of a table)
    import app.cli.main
    def unflushed(argv):
        sys.stdout.write("TAIL")
        return 0
    app.cli.main._main = unflushed
elif extra == "term-done":  # SIGTERM the moment the command is done, before os._exit
    import signal
    import app.cli.main
    def terminated_now():
        os.kill(os.getpid(), signal.SIGTERM)
        return False
    app.cli.main._teardown_expected = terminated_now
elif extra == "term-at-exit":  # SIGTERM during the interpreter's exit
    import atexit, signal
    atexit.register(lambda: os.kill(os.getpid(), signal.SIGTERM))
elif extra == "thread":  # alive until the main thread has ended, however long the command takes
    def late():
        threading.main_thread().join()
        os.write(2, b"THREAD-DONE\n")
    threading.Thread(target=late).start()
from app.cli.main import run
raise SystemExit(run())
"""


def _run(extra: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as installed
    return subprocess.run(
        [sys.executable, "-c", RUN, extra, *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_who_ends_without_the_teardown_and_with_all_its_output() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        res = _run("-", "who", str(child.port), "--json")
    assert res.returncode == 0, res.stderr
    assert "TORN-DOWN" not in res.stderr
    data = json.loads(res.stdout)  # complete: flushed before the process ended
    assert [s["pid"] for s in data["sockets"]] == [child.pid]


def test_the_exit_code_survives_the_quick_exit() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening, then closed: nothing uses it
    res = _run("-", "who", str(port))
    assert res.returncode == 1 and "TORN-DOWN" not in res.stderr
    assert "nothing uses port" in res.stderr


@pytest.mark.parametrize(("extra", "marker"), [("atexit", "AT-EXIT"), ("thread", "THREAD-DONE")])
def test_an_atexit_handler_or_a_live_thread_gets_the_normal_exit(extra: str, marker: str) -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        res = _run(extra, "who", str(child.port))
    assert res.returncode == 0, res.stderr
    assert marker in res.stderr and "TORN-DOWN" in res.stderr
    assert str(child.pid) in res.stdout


def test_what_is_left_in_the_output_buffer_is_written_before_the_quick_exit() -> None:
    res = _run("tail", "who", "1")
    assert res.returncode == 0 and "TORN-DOWN" not in res.stderr
    assert res.stdout == "TAIL"


def test_other_commands_exit_normally() -> None:
    res = _run("-", "free", "--count", "1")
    assert res.returncode == 0, res.stderr
    assert "TORN-DOWN" in res.stderr


def test_a_long_list_through_a_pipe_arrives_whole() -> None:
    """More than a pipe's buffer of table (64 KiB): every row is written before the process ends."""
    with ExitStack() as stack:
        socks = []
        for _ in range(1500):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            s.listen()
            socks.append(s)
        ports = {s.getsockname()[1] for s in socks}
        table = _run("-", "list", "--proto", "tcp")
        listed = _run("-", "list", "--proto", "tcp", "--json")
    assert table.returncode == 0 and listed.returncode == 0, table.stderr + listed.stderr
    assert len(table.stdout) > 65536 and "TORN-DOWN" not in table.stderr
    assert table.stdout.endswith("\n")
    rows = [line.split() for line in table.stdout.splitlines() if line.startswith("tcp ")]
    shown = {int(row[1].rsplit(":", 1)[1]) for row in rows}
    assert ports <= shown
    assert ports <= {s["local"]["port"] for s in json.loads(listed.stdout)["sockets"]}


def test_a_warning_to_a_full_stderr_does_not_change_the_exit_code() -> None:
    """``list`` of a port nothing uses says so on stderr and exits 0; with stderr on /dev/full
    (the warning cannot be written) it still exits 0, as before the warning."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening, then closed: nothing uses it
    args = [sys.executable, "-c", RUN, "-", "list", "--all", "--port", str(port)]
    said = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert said.returncode == 0 and "no sockets match" in said.stderr
    with open("/dev/full", "w") as full:
        res = subprocess.run(args, stdout=subprocess.PIPE, stderr=full, text=True, timeout=120)
    assert res.returncode == 0


@pytest.mark.parametrize("when", ["term-done", "term-at-exit"])
def test_sigterm_once_the_command_is_done_exits_with_its_code_and_output(when: str) -> None:
    """SIGTERM after the listing is written (the handlers once went back to the defaults there,
    and the process died of the signal, -15) ends with the command's exit code and all its output."""
    with child_listener("tcp", "127.0.0.1") as child:
        res = _run(when, "who", str(child.port), "--json")
    assert res.returncode == 0, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    assert [s["pid"] for s in json.loads(res.stdout)["sockets"]] == [child.pid]
