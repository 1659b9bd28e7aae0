"""The config file end to end: real ``portscope`` processes with XDG_CONFIG_HOME pointing at a temp
directory (a good file, a malformed one, an unknown key, a wrong type), the JSON shapes of
``config path`` and ``config show``, flags winning over the file, and save_setting on real files
(comments kept, symlinks and modes kept, a FIFO never blocks, a broken file never rewritten)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import load_config, save_setting, unset_setting
from app.errors import UsageError
from tests.helpers import child_listener, run_cli
from tests.unprivileged import unprivileged_runner, why_not


@pytest.fixture
def home() -> Iterator[Path]:
    """A short config home (the warning lines name the file: a pytest tmp_path is long enough to be
    cut by the one-line rule)."""
    with tempfile.TemporaryDirectory(prefix="psc") as d:
        (Path(d) / "portscope").mkdir()
        yield Path(d)


def cli(home: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home)}
    return run_cli(*args, env=env, **kwargs)


def write(home: Path, text: str) -> Path:
    path = home / "portscope" / "config.toml"
    path.write_text(text)
    return path


SHOW_KEYS = ["interval", "start_view", "hidden_columns", "theme", "dns", "kill_timeout"]


def test_path_and_show_without_a_file(home: Path) -> None:
    res = cli(home, "config", "path")
    assert (res.returncode, res.stdout, res.stderr) == (0, f"{home}/portscope/config.toml\n", "")
    res = cli(home, "config", "path", "--json")
    assert json.loads(res.stdout) == {"path": f"{home}/portscope/config.toml", "exists": False}
    res = cli(home, "config", "show", "--json")
    assert res.returncode == 0 and res.stderr == ""
    assert json.loads(res.stdout) == {
        "path": f"{home}/portscope/config.toml",
        "exists": False,
        "settings": {
            "interval": {"value": 2.0, "source": "default"},
            "start_view": {"value": "listening", "source": "default"},
            "hidden_columns": {"value": [], "source": "default"},
            "theme": {"value": "textual-dark", "source": "default"},
            "dns": {"value": False, "source": "default"},
            "kill_timeout": {"value": 3.0, "source": "default"},
        },
        "warnings": [],
    }


def test_show_a_good_file_and_a_flag(home: Path) -> None:
    write(home, 'interval = 5\nstart_view = "connections"\nhidden_columns = ["command"]\ndns = true\n')
    res = cli(home, "--interval", "1.5", "config", "show", "--json")
    assert res.returncode == 0 and res.stderr == ""
    shown = json.loads(res.stdout)
    assert list(shown) == ["path", "exists", "settings", "warnings"]
    assert list(shown["settings"]) == SHOW_KEYS
    assert shown["exists"] is True
    assert shown["settings"]["interval"] == {"value": 1.5, "source": "flag"}
    assert shown["settings"]["start_view"] == {"value": "connections", "source": "file"}
    assert shown["settings"]["hidden_columns"] == {"value": ["command"], "source": "file"}
    assert shown["settings"]["dns"] == {"value": True, "source": "file"}
    assert shown["settings"]["theme"]["source"] == "default"
    text = cli(home, "config", "show").stdout.splitlines()
    assert text[0] == f"# {home}/portscope/config.toml"
    assert [line.split("#")[-1].strip() for line in text[1:]] == [
        "file",
        "file",
        "file",
        "default",
        "file",
        "default",
    ]
    assert text[1].startswith("interval = 5 ")


def test_a_malformed_file_is_one_line_and_every_command_goes_on(home: Path) -> None:
    path = write(home, "interval = 5\ntheme = \n")
    res = cli(home, "config", "show", "--json")
    assert res.returncode == 2  # show reports the problem in its exit code
    line = f"portscope: config file {path}: invalid value (at line 2, column 9); using the defaults\n"
    assert res.stderr == line
    shown = json.loads(res.stdout)
    assert shown["settings"]["interval"] == {"value": 2.0, "source": "default"}
    assert shown["warnings"] == [line.removeprefix("portscope: ").rstrip("\n")]
    res = cli(home, "config", "path")
    assert res.returncode == 0 and res.stderr == line
    res = cli(home, "ifaces", "--json")  # any other command: the warning, then its normal work
    assert res.returncode == 0 and res.stderr == line and json.loads(res.stdout)


def test_an_unknown_key_and_a_wrong_type_are_named_and_the_rest_is_used(home: Path) -> None:
    path = write(home, 'intervall = 3\nkill_timeout = "soon"\ndns = true\n')
    res = cli(home, "config", "show", "--json")
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        f"portscope: config file {path}: unknown key 'intervall' ignored (did you mean 'interval'?)",
        f'portscope: config file {path}: kill_timeout = "soon": expected seconds above 0 and at most '
        "86400; using the default 3",
    ]
    settings = json.loads(res.stdout)["settings"]
    assert settings["dns"] == {"value": True, "source": "file"}
    assert settings["kill_timeout"] == {"value": 3.0, "source": "default"}


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p.mkdir(), id="directory"),
        pytest.param(lambda p: os.mkfifo(p), id="fifo"),
        pytest.param(lambda p: p.write_bytes(b"theme = '\xff'\n"), id="not-utf8"),
        pytest.param(lambda p: p.write_bytes(b"#" * (2 << 20)), id="huge"),
    ],
)
def test_an_unreadable_file_never_blocks_and_is_one_line(home: Path, make: object) -> None:
    path = home / "portscope" / "config.toml"
    make(path)  # type: ignore[operator]
    res = cli(home, "config", "show", timeout=30)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert str(path) in res.stderr and "Traceback" not in res.stderr
    assert res.stdout.splitlines()[1] == "interval = 2              # default"


@pytest.mark.skipif(why_not() is not None, reason=why_not() or "")
def test_a_file_the_user_may_not_read_is_one_line(home: Path) -> None:
    path = write(home, "interval = 5\n")
    os.chmod(home, 0o755)
    os.chmod(home / "portscope", 0o755)
    os.chmod(path, 0o600)  # root's, read by nobody
    env = {**os.environ, "XDG_CONFIG_HOME": str(home)}
    line = f"portscope: cannot read the config file {path}: Permission denied; using the defaults\n"
    with unprivileged_runner() as cmd:
        res = subprocess.run([*cmd, "config", "show"], capture_output=True, text=True, env=env, timeout=60)
        assert (res.returncode, res.stderr) == (2, line)
        assert "interval = 2 " in res.stdout
        res = subprocess.run([*cmd, "ifaces", "--json"], capture_output=True, text=True, env=env, timeout=60)
        assert (res.returncode, res.stderr) == (0, line)


def test_the_file_sets_the_parsers_defaults_and_flags_win(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's --interval, watch's --interval and kill's --timeout (in process: the real
    parser, reading the real file)."""
    from app.cli.parser import build_parser

    write(home, "interval = 7\nkill_timeout = 9\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    parse = build_parser().parse_args
    assert parse([]).interval == 7.0
    assert parse(["--interval", "3"]).interval == 3.0
    assert parse(["watch"]).watch_interval == 7.0
    assert parse(["watch", "--interval", "0.5"]).watch_interval == 0.5
    assert parse(["kill", "80"]).timeout == 9.0
    assert parse(["kill", "80", "--timeout", "1"]).timeout == 1.0
    config = parse([]).config
    assert (config.interval, config.kill_timeout, config.warnings) == (7.0, 9.0, [])


def test_kill_uses_the_files_timeout_and_the_flag_wins(home: Path) -> None:
    """Without a terminal kill refuses and prints the command to run: it carries the timeout in force."""
    write(home, "kill_timeout = 7\n")
    with child_listener("tcp", "127.0.0.1") as child:
        res = cli(home, "kill", str(child.port), stdin=subprocess.DEVNULL)
        assert res.returncode == 2 and f"portscope kill {child.port} --timeout 7 --yes" in res.stderr
        res = cli(home, "kill", str(child.port), "--timeout", "4", stdin=subprocess.DEVNULL)
        assert res.returncode == 2 and f"portscope kill {child.port} --timeout 4 --yes" in res.stderr
        assert child.proc.poll() is None


# ------------------------------------------------------------------------------------ writing


def test_set_and_unset_keep_the_users_file(home: Path) -> None:
    path = write(home, '# my settings\ninterval = 5  # fast\ncolour = "x"\n\n[later]\nx = 1\n')
    os.chmod(path, 0o640)
    res = cli(home, "config", "set", "theme", "nord")
    assert res.returncode == 0, res.stderr
    res = cli(home, "config", "set", "hidden_columns", "command, age")
    assert res.returncode == 0, res.stderr
    res = cli(home, "config", "set", "interval", "2.5")
    assert res.returncode == 0, res.stderr
    res = cli(home, "config", "set", "dns", "on")
    assert res.returncode == 0, res.stderr
    assert path.read_text() == (
        "# my settings\n"
        "interval = 2.5  # fast\n"
        'colour = "x"\n'
        'theme = "nord"\n'
        'hidden_columns = ["command", "age"]\n'
        "dns = true\n"
        "\n[later]\nx = 1\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert cli(home, "config", "unset", "colour").returncode == 2  # not a setting: argparse refuses
    res = cli(home, "config", "unset", "theme")
    assert res.returncode == 0 and 'theme = "nord"' not in path.read_text()
    res = cli(home, "config", "show", "--json")
    settings = json.loads(res.stdout)["settings"]
    assert settings["interval"] == {"value": 2.5, "source": "file"}
    assert settings["theme"] == {"value": "textual-dark", "source": "default"}


def test_set_refuses_a_bad_value_and_leaves_the_file_alone(home: Path) -> None:
    path = write(home, "interval = 5\n")
    for key, value in (("interval", "0"), ("interval", "fast"), ("start_view", "graphs"), ("dns", "maybe")):
        res = cli(home, "config", "set", key, value)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert res.stderr.startswith(f"portscope: invalid {key} "), res.stderr
    assert path.read_text() == "interval = 5\n"


def test_set_never_rewrites_a_broken_file(home: Path) -> None:
    path = write(home, "interval = = 5\n# precious\n")
    res = cli(home, "config", "set", "theme", "nord")
    assert res.returncode == 2
    assert res.stderr.splitlines()[-1].startswith(f"portscope: not changing the config file {path}: ")
    assert path.read_text() == "interval = = 5\n# precious\n"


def test_save_setting_creates_the_file_and_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "portscope" / "config.toml"
    assert save_setting("theme", "dracula", str(path)) == str(path)
    assert load_config(str(path)).theme == "dracula"
    assert path.read_text().splitlines()[-1] == 'theme = "dracula"'
    assert unset_setting("dns", str(tmp_path / "absent.toml")) == str(tmp_path / "absent.toml")
    assert not (tmp_path / "absent.toml").exists()  # removing from no file writes nothing


def test_save_setting_follows_a_symlink_and_keeps_it(tmp_path: Path) -> None:
    """Dotfile managers link the file from a repository: the link stays, its target changes."""
    target = tmp_path / "dotfiles" / "portscope.toml"
    target.parent.mkdir()
    target.write_text("dns = true\n")
    link = tmp_path / "config.toml"
    link.symlink_to(target)
    save_setting("theme", "nord", str(link))
    assert link.is_symlink()
    assert target.read_text() == 'dns = true\ntheme = "nord"\n'


def test_save_setting_refuses_what_it_cannot_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('"theme" = "nord"\n')  # a quoted key: not a line this writer replaces
    with pytest.raises(UsageError, match=r"cannot rewrite the config file .* safely .*edit it by hand"):
        save_setting("theme", "dracula", str(path))
    assert path.read_text() == '"theme" = "nord"\n'
    with pytest.raises(UsageError, match="unknown setting 'colour'"):
        save_setting("colour", "red", str(path))
    with pytest.raises(UsageError, match="invalid theme"):
        save_setting("theme", "no spaces", str(path))


def test_save_setting_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    os.mkfifo(path)
    with pytest.raises(UsageError, match="not a regular file"):
        save_setting("theme", "nord", str(path))
    assert stat.S_ISFIFO(path.stat().st_mode)
