"""Colour in ``list`` and ``who`` (#18), run as real processes: on a real pseudo-terminal (auto),
through a pipe, with ``NO_COLOR`` and with ``--color never|auto|always``; exposure beyond loopback
in a private network namespace; columns line up by visible width; escapes never come from
system strings."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import socket
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from app.cli.color import RESET, STYLES
from tests.helpers import child_listener, needs_netns, portscope_cmd, run_cli, run_in_netns

OURS = re.compile("|".join(re.escape(f"\x1b[{code}m") for code in [*STYLES.values(), "0"]))
ANY_ESCAPE = re.compile(r"\x1b")


def strip_ours(text: str) -> str:
    return OURS.sub("", text)


def sgr(role: str, text: str) -> str:
    return f"\x1b[{STYLES[role]}m{text}{RESET}"


def on_pty(*args: str, columns: int = 220, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run portscope with stdout (and stdin) on a new pseudo-terminal of ``columns`` columns; return
    (exit code, what it wrote there, with the terminal's CRLF turned back into LF)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "TERM")}
    full_env["TERM"] = "xterm-256color"
    full_env.update(env or {})
    proc = subprocess.Popen(
        [*portscope_cmd(), *args], stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=full_env
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(timeout=30)
    return code, out.decode().replace("\r\n", "\n")


@contextmanager
def close_wait() -> Iterator[int]:
    """A listener of this process and an accepted connection whose peer closed while we keep it:
    CLOSE_WAIT on the listener's port. Yields the port."""
    with ExitStack() as stack:
        srv = stack.enter_context(socket.socket())
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = srv.accept()
        stack.enter_context(server)
        client.close()  # its FIN arrives at once on loopback: our end is in CLOSE_WAIT
        time.sleep(0.05)
        yield port


def test_on_a_terminal_states_are_coloured_and_columns_still_line_up() -> None:
    with close_wait() as port:
        code, coloured = on_pty("who", str(port))
        code_never, plain = on_pty("who", str(port), "--color", "never")
    assert code == 0 and code_never == 0
    assert sgr("listen", "LISTEN") in coloured and sgr("trouble", "CLOSE_WAIT") in coloured
    assert f"\x1b[1m── port {port}: " in coloured
    assert ANY_ESCAPE.search(plain) is None
    # the same table without the sequences, character for character: widths count visible text only
    assert strip_ours(coloured) == plain
    header, *rows = [line for line in plain.splitlines() if not line.startswith(("──", "    "))]
    state_at = header.index("STATE")
    exposure_at = header.index("EXPOSURE")
    for row in rows:
        assert row[state_at - 2 : state_at] == "  " and row[exposure_at - 1] == " "


@pytest.mark.parametrize(
    ("args", "env", "expect"),
    [
        (["who"], {}, True),  # a terminal: auto colours
        (["who"], {"NO_COLOR": "1"}, False),  # NO_COLOR: any non-empty value turns it off
        (["who"], {"NO_COLOR": ""}, True),  # an empty NO_COLOR does not count (no-color.org)
        (["who"], {"TERM": "dumb"}, False),
        (["--color", "never", "who"], {}, False),
        (["who", "--color", "never"], {}, False),  # after the command too
        (["--color", "always", "who"], {"NO_COLOR": "1"}, True),  # the flag wins over the environment
    ],
)
def test_auto_never_always_and_no_color_on_a_terminal(
    args: list[str], env: dict[str, str], expect: bool
) -> None:
    with close_wait() as port:
        *before, command = args[: args.index("who") + 1]
        code, out = on_pty(*before, command, str(port), *args[args.index("who") + 1 :], env=env)
    assert code == 0
    assert (sgr("listen", "LISTEN") in out) is expect
    if not expect:
        assert ANY_ESCAPE.search(out) is None


def test_a_pipe_gets_no_colour_unless_always() -> None:
    with close_wait() as port:
        piped = run_cli("list", "--all", "--port", str(port))
        forced = run_cli("list", "--all", "--port", str(port), "--color", "always")
        forced_top = run_cli("--color", "always", "list", "--all", "--port", str(port))
    assert piped.returncode == 0 and ANY_ESCAPE.search(piped.stdout) is None
    assert sgr("trouble", "CLOSE_WAIT") in forced.stdout and sgr("listen", "LISTEN") in forced.stdout
    assert sgr("listen", "LISTEN") in forced_top.stdout
    assert strip_ours(forced.stdout) == piped.stdout
    bad = run_cli("list", "--color", "sometimes")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and bad.stderr.count("\n") == 1


def test_a_line_cut_to_the_terminal_width_keeps_its_colour_and_its_cut() -> None:
    with close_wait() as port:
        _code, coloured = on_pty("who", str(port), columns=40)
        _code, plain = on_pty("who", str(port), "--color", "never", columns=40)
    assert strip_ours(coloured) == plain
    assert all(len(line) <= 40 for line in plain.splitlines())
    assert any(line.endswith("…") for line in plain.splitlines())
    # no sequence is left open at the end of a cut line: as many resets as colours opened
    for line in coloured.splitlines():
        opened = len(OURS.findall(line)) - line.count(RESET)
        assert opened == line.count(RESET)


def test_escapes_in_a_process_name_stay_escaped_text_between_our_colours() -> None:
    evil = "ps-\x1b[2J\x1b]0;t"
    with child_listener("tcp", "127.0.0.1", name=evil) as child:
        res = run_cli("who", str(child.port), "--color", "always")
    assert res.returncode == 0, res.stderr
    assert "ps-\\x1b[2J\\x1b]0;t"[:15] in res.stdout  # prctl keeps 15 bytes of the name
    assert ANY_ESCAPE.search(strip_ours(res.stdout)) is None  # every real escape is one of ours


@needs_netns
def test_exposure_beyond_loopback_is_marked_in_a_private_namespace() -> None:
    """A listener on 0.0.0.0 inside a network namespace of its own (nothing outside reaches it):
    its EXPOSURE cell is marked; a loopback listener's is not."""
    out = run_in_netns(
        """
        wide = socket.socket(); wide.bind(("0.0.0.0", 0)); wide.listen(4)
        lo = socket.socket(); lo.bind(("127.0.0.1", 0)); lo.listen(4)
        r = cli("list", "--color", "always")
        print(json.dumps({"out": r["out"], "wide": wide.getsockname()[1], "lo": lo.getsockname()[1]}))
        """
    )
    assert isinstance(out, dict)
    lines = out["out"].splitlines()
    [wide] = [line for line in lines if f"0.0.0.0:{out['wide']} " in strip_ours(line)]
    [lo] = [line for line in lines if f"127.0.0.1:{out['lo']} " in strip_ours(line)]
    assert sgr("exposed", "all interfaces") in wide
    assert "loopback" in lo and not re.search(r"\x1b\[[0-9;]*mloopback", lo)
