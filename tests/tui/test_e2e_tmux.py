"""End to end: the installed ``portscope`` in a real terminal (tmux) finds a listener we opened,
shows hostile names escaped, and under a few thousand sockets routes every key typed right after
``/`` to the filter box."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import child_listener, portscope_cmd, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=20).stdout


def _screen(session: str) -> str:
    return _tmux("capture-pane", "-p", "-t", session)


def _screen_with(session: str, *needles: str) -> str | None:
    text = _screen(session)
    return text if all(n in text for n in needles) else None


def _pane_pid(session: str) -> int | None:
    out = _tmux("list-panes", "-t", session, "-F", "#{pane_pid}").strip()
    return int(out) if out.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is as good as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


@contextmanager
def dashboard_in_tmux() -> Iterator[str]:
    """The installed ``portscope`` in a fresh 120x36 tmux session; yields the session name once
    the first poll is on screen (the app is up and reading keys). The pane stays open after
    portscope exits, printing its exit code, to tell "quit" from "crashed"."""
    session = f"portscope-e2e-{uuid.uuid4().hex[:8]}"
    cmd = " ".join(shlex.quote(c) for c in [*portscope_cmd(), "--interval", "0.5"])
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run(
        [
            "tmux",
            "new",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "36",
            f"{cmd}; echo PORTSCOPE-EXIT=$?; sleep 30",
        ],
        check=True,
        env=env,
        timeout=20,
    )
    try:
        wait_for(lambda: re.search(r"listeners:\s+all\s+[1-9]", _screen(session)), timeout=30)
        yield session
    finally:
        pid = _pane_pid(session)
        _tmux("kill-session", "-t", session)
        if pid is not None:
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def filter_to_port(session: str, port: int) -> str:
    """Type ``/:PORT`` Enter; return the screen once the filter is applied and the table has the
    focus back (the footer shows its keys again), so the next key reaches the app, not the box.

    Keys that arrive while the app is still starting up can be lost (it is talking to the
    terminal), so ``/`` is repeated until the empty filter box is on screen with its placeholder
    (``/`` opens and focuses it)."""
    box_open = False
    for _ in range(10):
        _tmux("send-keys", "-t", session, "/")
        try:
            wait_for(lambda: "filter: text" in _screen(session), timeout=2)
        except AssertionError:
            continue
        box_open = True
        break
    assert box_open, _screen(session)
    _tmux("send-keys", "-t", session, "-l", f":{port}")
    _tmux("send-keys", "-t", session, "Enter")
    filter_line = re.compile(rf"(?m)^:{port}\b")  # a notification may overlap the line's right end

    def applied() -> str | None:
        screen = _screen(session)
        return screen if filter_line.search(screen) and "Detail" in screen else None

    return wait_for(applied, timeout=30)


def test_dashboard_in_tmux_shows_filters_and_quits() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-e2e-tmux") as child, dashboard_in_tmux() as session:
        filter_to_port(session, child.port)
        screen = wait_for(lambda: _screen_with(session, str(child.port), "ps-e2e-tmux"), timeout=30)
        assert str(child.pid) in screen
        _tmux("send-keys", "-t", session, "q")
        done = wait_for(lambda: _screen_with(session, "PORTSCOPE-EXIT="), timeout=20)
        assert "PORTSCOPE-EXIT=0" in done
        assert "Traceback" not in done


def test_hostile_process_name_cannot_touch_the_terminal() -> None:
    """A process named with an OSC title escape and markup shows as escaped text; the terminal's
    title and screen are not changed by it."""
    hostile = "\x1b]2;zq\x07[b]x"  # 11 bytes: fits the 15-byte kernel process name
    with child_listener("tcp", "127.0.0.1", name=hostile) as child, dashboard_in_tmux() as session:
        filter_to_port(session, child.port)
        screen = wait_for(lambda: _screen_with(session, str(child.pid)), timeout=30)
        assert "\\x1b]2;zq\\x07[b]x" in screen  # the name, escaped, markup literal
        title = _tmux("display-message", "-p", "-t", session, "#{pane_title}")
        assert "zq" not in title
        _tmux("send-keys", "-t", session, "q")
        done = wait_for(lambda: _screen_with(session, "PORTSCOPE-EXIT="), timeout=20)
        assert "PORTSCOPE-EXIT=0" in done


def _bench_load() -> ModuleType:
    """bench/load.py (socket load in child processes, loopback only), loaded by path."""
    path = Path(__file__).resolve().parents[2] / "bench" / "load.py"
    spec = importlib.util.spec_from_file_location("portscope_e2e_load", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _box_opens_and_closes(session: str) -> None:
    """Wait until the app reads keys: ``/`` opens the filter box (start-up keys can be lost),
    Esc closes it again."""
    for _ in range(10):
        _tmux("send-keys", "-t", session, "/")
        try:
            wait_for(lambda: "filter: text" in _screen(session), timeout=2)
            break
        except AssertionError:
            continue
    _tmux("send-keys", "-t", session, "Escape")
    wait_for(lambda: "filter: text" not in _screen(session), timeout=10)


def test_keys_typed_right_after_slash_reach_the_filter_under_load() -> None:
    """Under a few thousand sockets, ``/`` and a filter typed at once (one write to the terminal):
    every key reaches the box, none goes to the table (``s`` would sort, ``h`` fold a group, ``p``
    open the scan dialog, ``r`` refresh, ``c`` ...)."""
    typed = "proc:ps-bench"
    with _bench_load().Load(3000, 10), dashboard_in_tmux() as session:
        _box_opens_and_closes(session)
        wait_for(lambda: "ps-bench-load" in _screen(session), timeout=30)
        box = re.compile(rf"(?m)^{re.escape(typed)}\s")  # the box holds every key typed

        def applied() -> str | None:
            screen = _screen(session)
            return screen if box.search(screen) and f"filter: {typed} " in screen else None

        for attempt in range(3):
            _tmux("send-keys", "-t", session, "-l", "/" + typed)
            screen = wait_for(applied, timeout=30)
            assert "Port ▲" in screen, (attempt, screen)  # `s` did not sort
            assert "▸" not in screen, (attempt, screen)  # `h` did not fold a group
            assert "ps-bench-load" in screen
            _tmux("send-keys", "-t", session, "Escape")
            wait_for(lambda: "filter: " + typed not in _screen(session), timeout=10)
        _tmux("send-keys", "-t", session, "q")
        done = wait_for(lambda: _screen_with(session, "PORTSCOPE-EXIT="), timeout=20)
        assert "PORTSCOPE-EXIT=0" in done and "Traceback" not in done
