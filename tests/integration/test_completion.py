"""``portscope completion bash|zsh``: the scripts come from the parser, and a real shell completes
with them: bash by calling the completion function with COMP_WORDS set, zsh by typing into an
interactive zsh on a pseudo-terminal and reading the line back after TAB."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli.main import command_names
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    res = run_cli("completion", "bash")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    path = tmp_path_factory.mktemp("completion") / "portscope.bash"
    path.write_text(res.stdout)
    return path


def bash_complete(script: Path, *words: str) -> list[str]:
    """What bash offers for the last word of ``words`` (the command line being completed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (
        f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
        f"COMP_LINE='{' '.join(words)}'; COMP_POINT=${{#COMP_LINE}}; _shtab_portscope; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    res = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    return [line for line in res.stdout.splitlines() if line]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("portscope", "li"), ["list"]),
        (("portscope", "comp"), ["completion"]),
        (("portscope", "kill", "--signal", ""), ["TERM", "INT", "HUP", "KILL"]),
        (("portscope", "kill", "80", "--signal", "K"), ["KILL"]),
        (("portscope", "list", "--proto", ""), ["tcp", "udp"]),
        (("portscope", "list", "--range", ""), ["well-known", "registered", "dynamic"]),
        (("portscope", "free", "--range", "re"), ["registered"]),
        (("portscope", "config", ""), ["path", "show", "set", "unset"]),
        (("portscope", "config", "set", "hid"), ["hidden_columns"]),
        (("portscope", "completion", ""), ["bash", "zsh"]),
        (("portscope", "baseline", "d"), ["diff"]),
        (("portscope", "who", "--j"), ["--json"]),
    ],
)
def test_bash_completes(bash_script: Path, words: tuple[str, ...], expected: list[str]) -> None:
    assert bash_complete(bash_script, *words) == expected


def test_bash_offers_every_command_and_a_commands_options(bash_script: Path) -> None:
    assert sorted(bash_complete(bash_script, "portscope", "")) == sorted(command_names())
    options = bash_complete(bash_script, "portscope", "kill", "--")
    for option in ("--pid", "--proto", "--signal", "--timeout", "--escalate", "--tree", "--yes", "--dry-run"):
        assert option in options


def test_bash_completes_file_names(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "events.ndjson").write_text("")
    assert bash_complete(bash_script, "portscope", "watch", "--log", f"{tmp_path}/ev") == [
        f"{tmp_path}/events.ndjson"
    ]


def test_the_script_is_the_parsers() -> None:
    """Generated from build_parser: a command registered there is in the script, nothing is
    written by hand."""
    from app.cli.cmd_completion import script

    bash = script("bash")
    for name in command_names():
        assert f"_shtab_portscope_{name}_option_strings=" in bash, name
    assert "_shtab_portscope_kill___signal_choices=(TERM INT HUP KILL)" in bash


def test_a_bad_shell_is_one_line_and_exit_2() -> None:
    res = run_cli("completion", "fish")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "invalid choice: 'fish'" in res.stderr


def test_shtab_is_not_imported_on_start_up() -> None:
    code = (
        "import sys\nfrom app.cli.parser import build_parser\nbuild_parser().parse_args(['list'])\n"
        "print(sorted({'shtab', 'tomllib', 'platformdirs'} & set(sys.modules)))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "[]", res  # and tomllib only when a config file exists


# ---------------------------------------------------------------------------------------- zsh


def zsh_complete(fpath: Path, typed: list[str]) -> list[str]:
    """Type each of ``typed`` (ending in TAB) into an interactive zsh that has the completion on
    its fpath; return the command line after each TAB, read by a widget bound to ^X^D."""
    out = fpath / "buffer"
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        env = {"TERM": "xterm", "HOME": str(fpath), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        os.execvpe("zsh", ["zsh", "-f", "-i"], env)

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    os.read(fd, 65536)
                except OSError:
                    return

    lines = []
    try:
        os.write(
            fd,
            (
                f"fpath=({fpath} $fpath); autoload -Uz compinit; compinit -u -D; "
                f'dump() {{ print -r -- "$BUFFER" >| {out}; BUFFER=; }}; zle -N dump; '
                "bindkey '^X^D' dump\n"
            ).encode(),
        )
        drain(1.0)
        for text in typed:
            out.unlink(missing_ok=True)
            os.write(fd, text.encode())
            drain(0.5)
            os.write(fd, b"\x18\x04")
            deadline = time.monotonic() + 20
            while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
                drain(0.1)
            lines.append(out.read_text().rstrip("\n") if out.exists() else "")
        os.write(fd, b"exit\n")
        drain(0.3)
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    return lines


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (Debian package zsh)")
def test_zsh_completes(tmp_path: Path) -> None:
    res = run_cli("completion", "zsh")
    assert res.returncode == 0 and res.stdout.startswith("#compdef portscope")
    (tmp_path / "_portscope").write_text(res.stdout)
    subprocess.run(["zsh", "-n", str(tmp_path / "_portscope")], check=True, timeout=30)
    got = zsh_complete(
        tmp_path,
        [
            "portscope li\t",
            "portscope kill --signal K\t",
            "portscope list --range reg\t",
            "portscope config set hid\t",
            "portscope who --js\t",  # options before a free-form positional
        ],
    )
    assert got == [
        "portscope list ",
        "portscope kill --signal KILL ",
        "portscope list --range registered ",
        "portscope config set hidden_columns ",
        "portscope who --json ",
    ]


@pytest.mark.slow
def test_the_start_up_benchmark_runs() -> None:
    """bench/startup_deps.py (the measure behind "shtab is imported only by completion"): it runs
    and reports every row; no timing is asserted."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "startup_deps.py"
    res = subprocess.run(
        [sys.executable, str(bench), "--rounds", "1"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    rows = [line.split()[0] for line in res.stdout.splitlines()[1:]]
    assert rows == ["start-up", "app.config", "shtab", "platformdirs", "tomllib"]
