"""The command line read without argparse (``who``) and with only the named command's parser
gives exactly what the full argparse parser gives; anything else goes to argparse."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.cli.parser import build_parser, command_named, fast_args, parse_args

FULL = build_parser()


def argparse_result(argv: list[str]) -> tuple[str, object]:
    """("ok", namespace vars) or ("exit", code and stderr) from the full parser."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            ns = FULL.parse_args(argv)
    except SystemExit as exc:
        return "exit", (exc.code, err.getvalue())
    return "ok", vars(ns)


WHO_LINES = [
    ["who", "22"],
    ["who", "65535"],
    ["who", "22", "--json"],
    ["who", "--json", "22"],
    ["who", "22", "--proto", "tcp"],
    ["who", "22", "--proto=udp", "--stats"],
    ["who", "22", "--netns", "all", "--json", "--stats"],
    ["who", "22", "--netns=current"],
    ["who", "22", "--color", "never"],
    ["who", "22", "--colour=always"],
    ["--color", "never", "who", "22"],
    ["--color=always", "who", "22", "--color", "never"],
    ["--alert-exposed", "who", "22"],
    ["who", "22", "--json", "--json"],
    ["who", "22", "--proto", "tcp", "--proto", "udp"],
    [" who", "22"],
    ["who", " 22 "],
]
# Lines the fast reader must leave to argparse (errors, help, forms it does not read).
OTHER_LINES = [
    ["who"],
    ["who", "0"],
    ["who", "65536"],
    ["who", "x"],
    ["who", "-1"],
    ["who", "22", "23"],
    ["who", "22", "--proto", "sctp"],
    ["who", "22", "--proto"],
    ["who", "22", "--js"],
    ["who", "22", "--json=1"],
    ["who", "--", "22"],
    ["who", "-h"],
    ["who", "22", "--help"],
    ["who", "22", "--version"],
    ["--interval", "5", "who", "22"],
    ["--int", "5", "who", "22"],
    ["--color", "who", "22"],
    ["--colo", "never", "who", "22"],
    ["who", "22", "--color"],
    ["who", "\uff12\uff12"],  # fullwidth digits
    ["who", ""],
    ["list", "--all"],
    [],
]


@pytest.mark.parametrize("argv", WHO_LINES, ids=" ".join)
def test_fast_who_equals_argparse(argv: list[str]) -> None:
    kind, want = argparse_result(argv)
    fast = fast_args(argv)
    if kind == "exit":
        assert fast is None  # argparse reports it
        return
    assert fast is not None, "a plain who line should not need argparse"
    config, flags = want.pop("config"), want.pop("config_flags")
    assert vars(fast) == want
    assert fast.config_flags == flags == set()
    assert (fast.config.path, fast.config.exists) == (config.path, config.exists) == (config.path, False)
    assert vars(fast) == {**want, "config": fast.config}  # read on first use only


@pytest.mark.parametrize("argv", OTHER_LINES, ids=lambda a: " ".join(a) or "(none)")
def test_other_lines_go_to_argparse(argv: list[str]) -> None:
    assert fast_args(argv) is None


TOKENS = ["who", "22", "80", "0", "x", "--json", "--stats", "--proto", "tcp", "udp", "--proto=tcp"]
TOKENS += ["--netns", "all", "current", "--color", "never", "auto", "--alert-exposed", "-h", "--"]
TOKENS += ["--interval", "2"]
tokens = st.sampled_from(TOKENS)


@given(st.lists(tokens, max_size=7))
def test_any_line_fast_or_argparse_agree(argv: list[str]) -> None:
    fast = fast_args(argv)
    if fast is not None:
        kind, want = argparse_result(argv)
        assert kind == "ok"
        config, flags = want.pop("config"), want.pop("config_flags")  # both read on first use only
        assert {k: v for k, v in vars(fast).items() if k != "config"} == want
        assert fast.config_flags == flags == set() and fast.config.path == config.path


@given(st.lists(tokens | st.sampled_from(["list", "free", "--all", "--version"]), max_size=6))
def test_the_named_commands_parser_reads_as_the_full_one(argv: list[str]) -> None:
    """Building only the named command's parser changes nothing: same namespace, same error."""
    kind, want = argparse_result(argv)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            ns = build_parser(command_named(argv)).parse_args(argv)
    except SystemExit as exc:
        assert (kind, want) == ("exit", (exc.code, err.getvalue()))
        return
    assert (kind, want) == ("ok", vars(ns))


def test_parse_args_uses_the_fast_reader_for_who_only() -> None:
    assert type(parse_args(["who", "22"])).__name__ == "Args"
    assert isinstance(parse_args(["list", "--all"]), argparse.Namespace)
    assert command_named(["--color", "never", "list"]) == "list"
    assert command_named(["-h", "list"]) is None
    assert command_named(["--int", "3", "list"]) is None


@given(st.one_of(st.text(max_size=8), st.integers(-5, 70000).map(str), st.sampled_from(["065535", "00080"])))
def test_port_arg_reads_ports_as_parse_port_does(text: str) -> None:
    """port_arg's shortcut for plain numbers (it spares who the import of app.parsing) gives what
    parse_port gives, and rejects what it rejects."""
    from app.cli.common import port_arg
    from app.errors import UsageError
    from app.parsing import parse_port

    try:
        want: object = parse_port(text)
    except UsageError:
        want = "error"
    try:
        got: object = port_arg(text)
    except argparse.ArgumentTypeError:
        got = "error"
    assert got == want


def test_a_parser_used_twice_reports_only_each_lines_flags() -> None:
    """The flags noted in one parse (``--interval``) are not reported for the next line."""
    parser = build_parser()
    first = parser.parse_args(["--interval", "1", "config", "show"])
    second = parser.parse_args(["config", "show"])
    assert first.config_flags == {"interval"}
    assert second.config_flags == set()
    assert first.config_flags == {"interval"}  # the first namespace's own copy is unchanged
