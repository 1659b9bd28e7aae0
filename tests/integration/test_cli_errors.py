"""Errors that used to escape as tracebacks, hang or kill by signal: stdout that cannot be written
(/dev/full, a full tmpfs, a hung-up terminal, a closed fd 1), signals during start-up, huge
arguments and numbers that float() takes but nobody means. All through the real CLI."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import exitcodes
from tests.helpers import listening_socket, needs_mount_ns, portscope_cmd, run_cli, wait_for

HUGE = "A" * 10_000


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with listening_socket("tcp", "127.0.0.1") as s:
        yield s.getsockname()[1]


def _commands(port: int) -> dict[str, list[str]]:
    return {
        "list": ["list", "--all"],
        "list-json": ["list", "--all", "--json"],
        "list-csv": ["list", "--csv"],
        "who": ["who", str(port)],
        "test": ["test", f"127.0.0.1:{port}", "--count", "1"],
        "scan": ["scan", "127.0.0.1", str(port)],
        "ifaces": ["ifaces"],
        "free": ["free"],
        "baseline-save-stdout": ["baseline", "save", "-"],
        "help": ["--help"],
    }


COMMAND_IDS = list(_commands(1))


def _assert_one_output_error(res: subprocess.CompletedProcess[str], reason: str) -> None:
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if "standard output" in ln]
    assert errors == [f"portscope: cannot write to standard output: {reason}"], res.stderr
    assert all(ln.startswith("portscope: ") for ln in res.stderr.splitlines()), res.stderr
    assert res.returncode == exitcodes.OUTPUT, (res.returncode, res.stderr)


@pytest.mark.parametrize("name", COMMAND_IDS)
def test_stdout_on_dev_full_is_one_line_and_exit_74(name: str, port: int) -> None:
    with open("/dev/full", "w") as full:
        res = subprocess.run(
            [*portscope_cmd(), *_commands(port)[name]],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    _assert_one_output_error(res, "No space left on device")


@pytest.mark.parametrize("name", COMMAND_IDS)
def test_closed_stdout_is_one_line_and_exit_74(name: str, port: int) -> None:
    """`portscope list >&-`: fd 1 is not open at all."""
    res = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *portscope_cmd(), *_commands(port)[name]],
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    _assert_one_output_error(res, "it is closed")


@pytest.mark.parametrize("redirect", ["<&-", "2>&-"])
def test_closed_stdin_or_stderr_is_no_traceback(redirect: str) -> None:
    """The dashboard with stdin closed says it needs a terminal; with stderr closed the exit code
    still tells (and nothing opened later lands on fd 2)."""
    res = subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", *portscope_cmd()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == exitcodes.USAGE, res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("name", ["list", "who", "ifaces", "list-json"])
def test_hung_up_terminal_eio_is_one_line_and_exit_74(name: str, port: int) -> None:
    """A terminal whose other end has gone (its master closed): every write fails with EIO."""
    master, slave = pty.openpty()
    os.close(master)
    try:
        res = subprocess.run(
            [*portscope_cmd(), *_commands(port)[name]],
            stdout=slave,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(slave)
    _assert_one_output_error(res, "Input/output error")


# Mount a small tmpfs on $1 in a private mount namespace (gone with the namespace), fill it, then
# run the rest of the arguments with "$1" available to them.
FULL_TMPFS = (
    'mount -t tmpfs -o size=64k,nr_inodes=64 portscope-test "$1" || exit 99; '
    'head -c 1048576 /dev/zero > "$1/fill" 2>/dev/null; '
    'dir="$1"; shift; '
)


@needs_mount_ns
@pytest.mark.parametrize("name", ["list-json", "baseline-save-stdout", "ifaces"])
def test_stdout_to_a_full_tmpfs_is_one_line_and_exit_74(name: str, port: int, tmp_path: Path) -> None:
    res = subprocess.run(
        [
            "unshare",
            "--mount",
            "sh",
            "-c",
            FULL_TMPFS + 'exec "$@" > "$dir/out"',
            "sh",
            str(tmp_path),
            *portscope_cmd(),
            *_commands(port)[name],
        ],
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert res.returncode != 99, res.stderr
    _assert_one_output_error(res, "No space left on device")


# -- watch: stdout and its log ---------------------------------------------------------------------


def _start_watch(*args: str, stdout: object, pre: list[str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*(pre or []), *portscope_cmd(), "watch", "--interval", "0.2", *args],
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_watching(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stderr is not None
    lines = []
    while True:
        line = proc.stderr.readline()
        assert line, f"watch ended before it started watching: {lines}"
        lines.append(line)
        if "watching" in line:
            return lines


def test_watch_stdout_on_dev_full_is_one_line_and_exit_74() -> None:
    with open("/dev/full", "w") as full:
        proc = _start_watch(stdout=full)
        try:
            _wait_watching(proc)
            with listening_socket("tcp", "127.0.0.1"):
                proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.stderr is not None
    res = subprocess.CompletedProcess(proc.args, proc.returncode, "", proc.stderr.read())
    _assert_one_output_error(res, "No space left on device")


@needs_mount_ns
def test_watch_log_on_a_full_disk_keeps_printing_events_and_says_so_once(tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    proc = subprocess.Popen(
        [
            "unshare",
            "--mount",
            "sh",
            "-c",
            FULL_TMPFS + 'exec "$@" --log "$dir/events.ndjson"',
            "sh",
            str(mountpoint),
            *portscope_cmd(),
            "watch",
            "--interval",
            "0.2",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        _wait_watching(proc)
        ports = []
        for _ in range(3):  # three events in three polls: each must reach stdout
            with listening_socket("tcp", "127.0.0.1") as s:
                ports.append(s.getsockname()[1])
                seen = ""
                while f'"port": {ports[-1]}' not in seen and f'"port":{ports[-1]}' not in seen:
                    line = proc.stdout.readline()
                    assert line, "watch stopped printing"
                    seen = line
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = proc.stderr.read()
    assert "Traceback" not in err
    log_lines = [ln for ln in err.splitlines() if "cannot write the log" in ln]
    assert len(log_lines) == 1, err
    assert "No space left on device" in log_lines[0] and "standard output" in log_lines[0]
    assert proc.returncode == exitcodes.OUTPUT  # the log is incomplete: not a clean success


# -- signals during start-up ----------------------------------------------------------------------


def _signals_caught(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def _catches(proc: subprocess.Popen[str], sig: int) -> bool:
    return bool(_signals_caught(proc.pid) & (1 << (sig - 1))) or proc.poll() is not None


def _signal_during_start(args: list[str], sig: int, delay: float) -> tuple[int, str]:
    """Start portscope, send ``sig`` ``delay`` seconds after it is caught (SIGINT: by Python once
    it is up; SIGTERM: by main(), Python leaves it to the default, a death by signal, until
    then); (exit status, stderr)."""
    proc = subprocess.Popen(
        [*portscope_cmd(), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: _catches(proc, sig), timeout=10, interval=0.001)
        time.sleep(delay)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.mark.parametrize("delay", [0.045, 0.06, 0.1])  # the old code installed its handler ~100 ms in
def test_sigterm_early_in_watch_exits_0(delay: float) -> None:
    code, err = _signal_during_start(["watch", "--interval", "0.2"], signal.SIGTERM, delay)
    assert code == 0, (code, err)
    assert "Traceback" not in err


@pytest.mark.parametrize("delay", [0.045, 0.06])
def test_sigterm_early_in_watch_after_the_global_color_option_exits_0(delay: float) -> None:
    """``--color WHEN`` takes a value: ``never`` is not the command, ``watch`` is (exit 0)."""
    code, err = _signal_during_start(
        ["--color", "never", "watch", "--interval", "0.2"], signal.SIGTERM, delay
    )
    assert code == 0, (code, err)
    assert "Traceback" not in err


# The modules Python runs before any of portscope's code can install a signal handler: the
# console script's `from app.cli.main import run` imports these (main.py itself imports only os,
# sys and _signal at its top; its main() installs the handlers first thing).
_ENTRY_MODULES = tuple(
    os.path.join("app", *p) for p in (("__init__.py",), ("cli", "__init__.py"), ("cli", "main.py"))
)


def _our_traceback(err: str) -> bool:
    """A traceback through portscope's code. Ctrl-C in the few milliseconds between Python's start
    and main() (the console script's own ``import re``, the import of the entry module itself:
    every frame of ours a module body of _ENTRY_MODULES) is out of our hands; from then on it must
    never show one."""
    if "Traceback" not in err:
        return False
    ours = [
        line
        for line in err.splitlines()
        if line.lstrip().startswith("File ") and f"{os.sep}app{os.sep}" in line
    ]
    return not all(
        line.endswith("in <module>") and any(f'{m}"' in line for m in _ENTRY_MODULES) for line in ours
    )


@pytest.mark.parametrize("delay", [0.01, 0.02, 0.03, 0.045, 0.06, 0.08, 0.1, 0.13])
def test_sigint_during_start_up_prints_no_traceback(delay: float) -> None:
    code, err = _signal_during_start(["list", "--all"], signal.SIGINT, delay)
    assert not _our_traceback(err), err
    if "Traceback" not in err:
        # -SIGINT: it arrived after main() had returned (the listing was done), as Python exits
        assert code in (exitcodes.INTERRUPT, exitcodes.OK, -signal.SIGINT), (code, err)
    if code == exitcodes.INTERRUPT:
        assert err.splitlines()[-1] == "portscope: interrupted"


def test_sigterm_stops_other_commands_quietly_with_143() -> None:
    """`portscope list` stopped with SIGTERM early: no traceback, exit 143 (128 + SIGTERM)."""
    code, err = _signal_during_start(["list", "--all"], signal.SIGTERM, 0.04)
    assert "Traceback" not in err
    assert code in (exitcodes.TERMINATED, exitcodes.OK), (code, err)


def test_main_module_imports_nothing_heavy_before_signals() -> None:
    """The signal handlers are installed before argparse and the commands are imported."""
    code = (
        "import sys; import app.cli.main\n"
        "heavy = {'argparse', 'psutil', 'netifaces', 'textual', 'json'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "[]", res


# -- huge arguments and numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["kill", "80", "--signal", HUGE],
        ["--interval", HUGE],
        ["watch", "--interval", HUGE],
        ["list", "--proto", HUGE],
        [HUGE],
        ["list", HUGE],
        ["baseline", "diff", "/" + "d" * 6000],
        ["baseline", "save", "/nonexistent-dir/" + "d" * 6000],
        ["watch", "--log", "/nonexistent-dir/" + "d" * 6000],
        ["who", HUGE],
        ["test", HUGE],
        ["scan", "127.0.0.1", HUGE],
        ["free", "--range", HUGE],
    ],
    ids=lambda a: " ".join(x[:12] for x in a),
)
def test_every_diagnostic_is_cut(args: list[str]) -> None:
    res = run_cli(*args)
    assert res.returncode == exitcodes.USAGE, (res.returncode, res.stderr[:300])
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr[:500]
    assert len(lines[0]) <= 500, len(lines[0])
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--interval", "\uff18"],
        ["--interval", "1_0"],
        ["--interval", "inf"],
        ["--interval", "nan"],
        ["--interval", "1e1"],
        ["watch", "--interval", "1_0"],
        ["watch", "--interval", "٣"],
        ["watch", "--interval", "+2"],
        ["test", "127.0.0.1:9", "--timeout", "1_0"],
        ["test", "127.0.0.1:9", "--timeout", "\uff11"],
        ["scan", "127.0.0.1", "9", "--timeout", "0x1"],
        ["scan", "127.0.0.1", "9", "--timeout", "1e-1"],
        ["kill", "--pid", "1", "--timeout", "1_0"],
        ["kill", "--pid", "1", "--timeout", "infinity"],
        ["free", "--count", "1_0"],
        ["list", "--pid", "1_0"],
        ["list", "--pid", "\u3000" + "1"],
    ],
)
def test_numbers_are_ascii_decimal_only(args: list[str]) -> None:
    res = run_cli(*args)
    assert res.returncode == exitcodes.USAGE, (res.returncode, res.stderr)
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr
    assert "invalid" in res.stderr and "argument" in res.stderr, res.stderr  # not some later refusal


@pytest.mark.parametrize("timeout", ["0.5", ".5", "1", "2."])
def test_plain_decimals_are_accepted(timeout: str) -> None:
    with listening_socket("tcp", "127.0.0.1") as s:
        res = run_cli("test", f"127.0.0.1:{s.getsockname()[1]}", "--count", "1", "--timeout", timeout)
    assert res.returncode == exitcodes.OK, res.stderr
