"""The config file in the dashboard, with a real file in a temporary XDG_CONFIG_HOME, read the way
the CLI reads it (``build_parser().parse_args([])`` gives ``args.interval`` and ``args.config``, as
``portscope`` with no command passes them to the app): start view, hidden columns, DNS, refresh
interval, kill timeout, theme (applied at start, saved when switched), and the warnings of a bad
file as one plain notification while the dashboard starts with the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.collector import PsutilCollector
from tests.helpers import child_listener
from tests.tui.fixtures import fixed_interfaces, make_app, screen_lines, until


def write_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> Path:
    home = tmp_path / "xdg"
    (home / "portscope").mkdir(parents=True)
    path = home / "portscope" / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return path


def cli_args() -> Any:
    from app.cli.parser import build_parser

    return build_parser().parse_args([])


def notices(app: Any) -> list[Any]:
    return list(app._notifications)


async def started(pilot: Any) -> None:
    await until(pilot, lambda: pilot.app.poll_count >= 1)
    await pilot.pause()


def header(app: Any, view: str) -> str:
    return app.table(view).visible_text()[0]


async def test_start_view_hidden_columns_dns_and_interval_from_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_config(
        monkeypatch,
        tmp_path,
        "# mine\n"
        "interval = 7\n"
        'start_view = "connections"\n'
        'hidden_columns = ["remote", "pid", "command"]\n'
        "dns = true\n",
    )
    args = cli_args()
    assert args.interval == 7.0
    app = make_app(interval=args.interval, config=args.config)
    async with app.run_test(size=(220, 30)) as pilot:
        await started(pilot)
        assert app.view == "connections" and app.main.tabs.active == "connections"
        assert app.dns and app.interval == 7.0 and app.poller.interval == 7.0
        status = str(app.main.status.render())
        assert "live every 7s" in status and "dns on" in status
        conn = header(app, "connections")
        assert "Local" in conn and "State" in conn
        for hidden in ("Remote", "PID", "Command"):
            assert hidden not in conn, conn
        await pilot.press("1")
        await pilot.pause()
        listen = header(app, "listening")
        assert "Port" in listen and "Process" in listen and "Proto" in listen
        assert "PID" not in listen and "Command" not in listen
        # no sort by a hidden column in the palette
        names = [c.title for c in app.get_system_commands(app.screen)]
        assert "Sort by Port" in names and "Sort by PID" not in names
        assert notices(app) == []  # nothing wrong with the file


async def test_a_hidden_column_never_shows_at_any_width_and_with_every_namespace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_config(monkeypatch, tmp_path, 'hidden_columns = ["exposure", "netns"]\n')
    args = cli_args()
    app = make_app(config=args.config)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        for width in (80, 140, 260):
            await pilot.resize_terminal(width, 24)
            await pilot.pause()
            text = "\n".join(screen_lines(app))
            assert "Exposure" not in header(app, "listening"), width
            assert "Port" in header(app, "listening")
            assert "beyond loopback" not in text and "all interfaces" not in text
        # the Netns column comes with `n` unless the user hid it
        app.dashboard.show_netns_column(True)
        await pilot.pause()
        assert "Netns" not in header(app, "listening")


async def test_events_as_the_start_view_and_e_goes_back_to_listening(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_config(monkeypatch, tmp_path, 'start_view = "events"\n')
    app = make_app(config=cli_args().config)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot)
        assert app.view == "events"
        assert app.focused is app.events_view.table
        await pilot.press("e")
        await pilot.pause()
        assert app.view == "listening"


async def test_warnings_of_the_file_are_one_plain_notification_and_defaults_apply(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_config(
        monkeypatch,
        tmp_path,
        'intervall = 5\nstart_view = "[red]nowhere"\ntheme = "textual-light"\nkill_timeout = -1\n',
    )
    args = cli_args()
    app = make_app(interval=args.interval, config=args.config)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await started(pilot)
        found = notices(app)
        assert len(found) == 1, [n.message for n in found]
        [note] = found
        assert note.markup is False and note.severity == "warning"
        lines = note.message.splitlines()
        assert len(lines) == 3, lines
        assert all(str(path) in line for line in lines)
        assert "unknown key 'intervall' ignored (did you mean 'interval'?)" in lines[0]
        assert 'start_view = "[red]nowhere"' in lines[1]
        assert "kill_timeout = -1" in lines[2]
        # the rest of the file is used, the bad values are at their defaults
        assert app.theme == "textual-light"
        assert app.view == "listening" and app.interval == 2.0 and app.kill_timeout == 3.0
        # the toast shows the text literally
        await until(pilot, lambda: '"[red]nowhere"' in "\n".join(screen_lines(app)))


async def test_a_malformed_file_is_one_notification_and_every_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_config(monkeypatch, tmp_path, 'start_view = "connections"\ninterval = [\n')
    args = cli_args()
    app = make_app(interval=args.interval, config=args.config)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot)
        [note] = notices(app)
        assert note.markup is False
        assert note.message.startswith(f"config file {path}: ") and "using the defaults" in note.message
        assert "\n" not in note.message
        assert app.view == "listening" and app.interval == 2.0 and app.theme == "textual-dark"


async def test_an_unknown_theme_is_a_notification_and_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_config(monkeypatch, tmp_path, 'theme = "no-such-theme"\ndns = true\n')
    app = make_app(config=cli_args().config)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot)
        [note] = notices(app)
        assert note.markup is False
        assert note.message == (
            f'config file {path}: theme = "no-such-theme": no such theme; using textual-dark'
        )
        assert app.theme == "textual-dark" and app.dns
        assert path.read_text() == 'theme = "no-such-theme"\ndns = true\n'  # not rewritten


async def test_the_configured_theme_applies_at_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_config(monkeypatch, tmp_path, 'theme = "textual-light"\n')
    app = make_app(config=cli_args().config)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot)
        assert app.theme == "textual-light" and not app.current_theme.dark
        assert notices(app) == []


async def choose_theme_in_the_palette(pilot: Any, name: str) -> None:
    """Ctrl+P, the "Theme" command, then the theme by name, as a user does."""
    from textual.command import CommandPalette

    app = pilot.app
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette))
    await pilot.press(*"theme")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await until(
        pilot,
        lambda: (
            isinstance(app.screen, CommandPalette)
            and "themes" in str(app.screen.query_one("Input").placeholder)
        ),
    )
    await pilot.press(*name)
    await pilot.pause(0.3)
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, CommandPalette))


async def test_the_theme_switcher_saves_the_theme_keeping_the_other_lines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = '# my settings\ninterval = 5  # slower\n\ntheme = "textual-light"\n\n[later]\nx = 1\n'
    path = write_config(monkeypatch, tmp_path, text)
    args = cli_args()
    app = make_app(interval=args.interval, config=args.config)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot)
        assert path.read_text() == text  # applying the theme at start writes nothing
        await choose_theme_in_the_palette(pilot, "nord")
        assert app.theme == "nord"
        await until(pilot, lambda: 'theme = "nord"' in path.read_text())
        assert path.read_text() == text.replace('theme = "textual-light"', 'theme = "nord"')
        saved = [n for n in notices(app) if "saved in" in n.message]
        assert saved and saved[-1].markup is False
    # and the next start uses it
    app = make_app(config=cli_args().config)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot)
        assert app.theme == "nord"


async def test_a_theme_that_cannot_be_saved_is_a_plain_error_and_the_app_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "xdg"
    home.mkdir()
    (home / "portscope").write_text("a file where the config directory should be\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    app = make_app(config=cli_args().config)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot)
        app.theme = "gruvbox"  # what the palette's theme switcher does
        await until(pilot, lambda: any(n.severity == "error" for n in notices(app)))
        [note] = [n for n in notices(app) if n.severity == "error"]
        assert note.markup is False and note.title == "theme not saved"
        assert str(home / "portscope") in note.message
        assert app.theme == "gruvbox"  # in force for this session all the same
        await pilot.press("2")
        await pilot.pause()
        assert app.view == "connections"


async def test_the_kill_dialog_waits_the_configured_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from textual.widgets import Static

    from tests.tui.test_tui_actions import select_port
    from widgets.kill_modal import ConfirmScreen, KillModal

    write_config(monkeypatch, tmp_path, "kill_timeout = 1.5\n")
    args = cli_args()
    with child_listener("tcp", "127.0.0.1", ignore_term=True, name="ps-stubborn") as child:
        from app.tui.app import PortscopeApp

        app = PortscopeApp(
            collector=PsutilCollector(),
            interval=0.2,
            interfaces=fixed_interfaces,
            blink=False,
            config=args.config,
        )
        async with app.run_test(size=(120, 36)) as pilot:
            await select_port(app, pilot, child.port)
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, KillModal), timeout=10)
            modal = app.screen
            assert isinstance(modal, KillModal) and modal.timeout == 1.5
            await pilot.press("enter")
            want = f"SIGTERM sent to pid {child.pid} (ps-stubborn), waiting 1.5 s"
            await until(pilot, lambda: want in str(modal.query_one("#status", Static).render()), timeout=10)
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=10)
            await pilot.press("escape")  # no SIGKILL
            await until(pilot, lambda: modal.state == "done", timeout=10)
            assert child.proc.poll() is None
