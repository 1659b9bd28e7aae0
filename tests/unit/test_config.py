"""app/config.py's pure logic: the path rule, validation and its one-line warnings, the TOML writer,
the text edit that keeps the user's file, and that its lists and bounds agree with the dashboard's
columns and views and the command line's options."""

from __future__ import annotations

import argparse
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import config
from app.config import SETTINGS, Config, config_path, toml_value, validate

PATH = "/home/u/.config/portscope/config.toml"


def test_path_follows_xdg_and_ignores_a_relative_one() -> None:
    assert config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == "/x/portscope/config.toml"
    assert config_path({"HOME": "/h"}) == "/h/.config/portscope/config.toml"
    assert config_path({"XDG_CONFIG_HOME": "", "HOME": "/h"}) == "/h/.config/portscope/config.toml"
    assert config_path({"XDG_CONFIG_HOME": "rel/dir", "HOME": "/h"}) == "/h/.config/portscope/config.toml"


def test_defaults() -> None:
    c = Config(PATH)
    assert (c.interval, c.start_view, c.hidden_columns, c.theme, c.dns, c.kill_timeout) == (
        2.0,
        "listening",
        (),
        "textual-dark",
        False,
        3.0,
    )
    assert all(source == "default" for _k, _v, source in c.items())
    assert [k for k, _v, _s in c.items()] == list(SETTINGS)


def test_valid_values_are_used_and_normalised() -> None:
    values, warnings = validate(
        {
            "interval": 5,
            "start_view": "events",
            "hidden_columns": ["command", "age", "command"],
            "theme": "nord",
            "dns": True,
            "kill_timeout": 0.5,
        },
        PATH,
    )
    assert warnings == []
    assert values == {
        "interval": 5.0,
        "start_view": "events",
        "hidden_columns": ("command", "age"),
        "theme": "nord",
        "dns": True,
        "kill_timeout": 0.5,
    }
    assert isinstance(values["interval"], float)


@pytest.mark.parametrize(
    ("key", "value", "expects"),
    [
        ("interval", 0, "seconds from 0.2 to 3600"),
        ("interval", 3601, "seconds from 0.2 to 3600"),
        ("interval", "5", "seconds from 0.2 to 3600"),
        ("interval", True, "seconds from 0.2 to 3600"),
        ("interval", float("nan"), "seconds from 0.2 to 3600"),
        ("kill_timeout", 0, "seconds above 0"),
        ("start_view", "graphs", "one of listening, connections, interfaces, events"),
        ("hidden_columns", "command", "a list of column keys"),
        ("hidden_columns", ["command", "colour"], "a list of column keys"),
        ("theme", "", "a theme name"),
        ("theme", "dark\x1b[31m", "a theme name"),
        ("theme", 3, "a theme name"),
        ("dns", "yes", "true or false"),
        ("dns", 1, "true or false"),
    ],
)
def test_a_bad_value_is_one_line_naming_file_key_and_default(key: str, value: object, expects: str) -> None:
    values, warnings = validate({key: value}, PATH)
    assert values == {}
    assert len(warnings) == 1
    line = warnings[0]
    assert "\n" not in line and "\x1b" not in line
    assert line.startswith(f"config file {PATH}: {key} = ")
    assert f"expected {expects}" in line
    assert line.endswith(f"using the default {toml_value(SETTINGS[key].default)}")


def test_unknown_keys_and_tables_are_named_with_a_hint() -> None:
    _values, warnings = validate({"intervall": 3, "colour": "x", "dashboard": {"a": 1}}, PATH)
    assert warnings == [
        f"config file {PATH}: unknown key 'intervall' ignored (did you mean 'interval'?)",
        f"config file {PATH}: unknown key 'colour' ignored (known keys: "
        "interval, start_view, hidden_columns, theme, dns, kill_timeout)",
        f"config file {PATH}: unknown table [dashboard] ignored (known keys: "
        "interval, start_view, hidden_columns, theme, dns, kill_timeout)",
    ]


def test_a_hostile_key_is_escaped() -> None:
    _values, warnings = validate({"a\x1b]0;pwned\x07\nb": 1}, PATH)
    assert "\x1b" not in warnings[0] and "\n" not in warnings[0] and "\\x1b" in warnings[0]


def test_check_theme() -> None:
    c = Config(PATH, values={"theme": "nord"})
    assert config.check_theme(c, ["textual-dark", "nord"]) is None
    warning = config.check_theme(c, ["textual-dark"])
    assert warning == f'config file {PATH}: theme = "nord": no such theme; using textual-dark'


def test_override_records_a_flag() -> None:
    c = Config(PATH, values={"interval": 5.0})
    assert c.source("interval") == "file"
    c.override("interval", 1.0)
    assert (c.interval, c.source("interval")) == (1.0, "flag")
    with pytest.raises(KeyError):
        c.override("colour", 1)


# -------------------------------------------------------------------- agreement with the others


def test_columns_are_the_dashboards_column_keys() -> None:
    from app.tui.columns import IFACE_COLUMNS, LISTEN_COLUMNS, conn_columns

    keys = {c.key for cols in (LISTEN_COLUMNS, conn_columns(), IFACE_COLUMNS) for c in cols}
    assert set(config.COLUMNS) == keys


def test_views_are_the_dashboards_views() -> None:
    from app.tui import actions

    assert config.VIEWS == (actions.LISTENING, actions.CONNECTIONS, actions.INTERFACES, actions.EVENTS)


def test_bounds_agree_with_the_command_line() -> None:
    from app.cli.common import interval_arg, positive_float

    assert interval_arg(f"{config.INTERVAL_MIN:g}") == config.INTERVAL_MIN
    assert interval_arg(f"{config.INTERVAL_MAX:g}") == config.INTERVAL_MAX
    for outside in ("0.19", "3600.1"):
        with pytest.raises(argparse.ArgumentTypeError):
            interval_arg(outside)
    assert positive_float(f"{config.TIMEOUT_MAX:g}") == config.TIMEOUT_MAX
    for outside in ("0", "86400.1"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_float(outside)


def test_defaults_are_the_parsers_defaults() -> None:
    """With no config file (tests/conftest.py points XDG_CONFIG_HOME at an empty directory) the
    options the file feeds keep their own defaults, and those are the settings' defaults."""
    from app.cli.cmd_config import BINDINGS
    from app.cli.parser import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, dest, key in BINDINGS:
        target = parser if command is None else sub.choices[command]
        assert target.get_default(dest) == SETTINGS[key].default, (command, dest)


# --------------------------------------------------------------------------------- TOML writer


@given(st.text())
def test_strings_round_trip(text: str) -> None:
    assert tomllib.loads(f"k = {toml_value(text)}")["k"] == text


@given(st.floats(min_value=0.0, max_value=1e9, allow_nan=False) | st.integers(-(10**9), 10**9))
def test_numbers_round_trip(number: float) -> None:
    assert tomllib.loads(f"k = {toml_value(number)}")["k"] == number


def test_values_as_written() -> None:
    assert toml_value(5.0) == "5"
    assert toml_value(0.25) == "0.25"
    assert toml_value(True) == "true"
    assert toml_value(("command", "age")) == '["command", "age"]'
    assert toml_value('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    with pytest.raises(TypeError):
        toml_value({"a": 1})


def edit(text: str, key: str, value: object) -> str:
    out = config._edit(text, tomllib.loads(text), key, value)
    expected = tomllib.loads(text)
    if value is None:
        expected.pop(key, None)
    else:
        expected[key] = tomllib.loads(f"k = {toml_value(value)}")["k"]
    assert tomllib.loads(out) == expected
    return out


def test_edit_replaces_the_line_and_keeps_comments_order_and_other_keys() -> None:
    text = '# mine\n\ninterval = 5   # faster\ncolour = "x"\ntheme = "nord"\n'
    assert (
        edit(text, "interval", 1.5) == '# mine\n\ninterval = 1.5   # faster\ncolour = "x"\ntheme = "nord"\n'
    )
    assert edit(text, "theme", "dracula").endswith('theme = "dracula"\n')
    assert edit(text, "theme", None) == '# mine\n\ninterval = 5   # faster\ncolour = "x"\n'


def test_edit_a_comment_sign_inside_a_string_is_not_a_comment() -> None:
    text = 'theme = "a#b"  # note\n'
    assert tomllib.loads(text)["theme"] == "a#b"
    assert edit(text, "theme", "nord") == 'theme = "nord"  # note\n'


def test_edit_adds_a_missing_key_before_the_first_table() -> None:
    text = "interval = 5\n\n# the other table\n[other]\nx = 1\n"
    assert edit(text, "dns", True) == "interval = 5\ndns = true\n\n# the other table\n[other]\nx = 1\n"
    assert edit("# only comments\n[other]\n", "dns", True) == "# only comments\ndns = true\n[other]\n"
    assert edit("interval = 5", "dns", True) == "interval = 5\ndns = true\n"  # no final newline


def test_edit_a_value_over_several_lines() -> None:
    text = 'hidden_columns = [\n  "command", # long\n  "age",\n]\ntheme = "nord"\n'
    assert edit(text, "hidden_columns", ["pid"]) == 'hidden_columns = ["pid"]\ntheme = "nord"\n'


def test_edit_keeps_crlf() -> None:
    assert (
        edit("interval = 5\r\ntheme = 'nord'\r\n", "interval", 2.5) == "interval = 2.5\r\ntheme = 'nord'\r\n"
    )


def test_edit_refuses_what_it_cannot_keep() -> None:
    """A key written quoted is not the writer's line: adding another would duplicate the key, which
    the verification in _change catches (here: the edited text no longer parses)."""
    text = '"interval" = 5\n'
    out = config._edit(text, tomllib.loads(text), "interval", 2.5)
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(out)
