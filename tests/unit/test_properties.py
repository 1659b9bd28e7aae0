"""Hostile input: every user-input parser returns a value or raises UsageError, nothing else."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import UsageError
from app.filtering import parse_filter, row_for
from app.model import Endpoint, Family, Proto, Sock
from app.parsing import (
    check_hostname,
    parse_host_port,
    parse_port,
    parse_port_spec,
    parse_range,
    parse_range_name,
)

# Text that looks like what people type, plus anything at all.
typed = st.text(alphabet=string.printable + "[]:-,/€\x00\x1b\u202e", max_size=40)
anything = st.one_of(typed, st.text(max_size=60))

SAMPLE = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 8080), None, "LISTEN", 42)


@settings(max_examples=400)
@given(anything)
def test_parse_port_value_or_usage_error(text: str) -> None:
    try:
        port = parse_port(text)
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert 1 <= port <= 65535
        assert int(text.strip()) == port


@settings(max_examples=400)
@given(anything)
def test_parse_port_spec_value_or_usage_error(text: str) -> None:
    try:
        ports = parse_port_spec(text)
    except UsageError:
        return
    assert ports == sorted(set(ports))
    assert all(1 <= p <= 65535 for p in ports)


@settings(max_examples=300)
@given(st.integers(min_value=-5, max_value=70000), st.integers(min_value=-5, max_value=70000))
def test_port_spec_ranges(lo: int, hi: int) -> None:
    spec = f"{lo}-{hi}"
    try:
        ports = parse_port_spec(spec)
    except UsageError:
        assert not (1 <= lo <= hi <= 65535)
    else:
        assert 1 <= lo <= hi <= 65535
        assert ports[0] == lo and ports[-1] == hi and len(ports) == hi - lo + 1


@settings(max_examples=400)
@given(anything)
def test_parse_host_port_value_or_usage_error(text: str) -> None:
    try:
        host, port = parse_host_port(text)
    except UsageError:
        return
    assert host and 1 <= port <= 65535


@given(st.sampled_from(["[::1]:8080", "127.0.0.1:80", "8080", "localhost:443", "[fe80::1%lo]:22"]))
def test_parse_host_port_accepts_documented_forms(text: str) -> None:
    host, port = parse_host_port(text)
    assert port in (8080, 80, 443, 22)
    assert host in ("::1", "127.0.0.1", "localhost", "fe80::1%lo")


@settings(max_examples=300)
@given(anything)
def test_ranges_and_hosts(text: str) -> None:
    for fn in (parse_range, parse_range_name, check_hostname):
        try:
            fn(text)
        except UsageError:
            pass


filter_words = st.sampled_from(
    [
        "port:",
        "pid:",
        "user:",
        "proc:",
        "range:",
        "state:",
        "proto:",
        "unit:",
        "container:",
        "netns:",
        ":",
        "exposed",
        "new",
        "tunnel",
        "-",
        "x:",
        '"',
    ]
)


@settings(max_examples=500)
@given(st.lists(st.tuples(filter_words, anything), max_size=4))
def test_filter_terms_value_or_usage_error(parts: list[tuple[str, str]]) -> None:
    text = " ".join(a + b for a, b in parts)
    try:
        flt = parse_filter(text)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    # A parsed filter can always be applied.
    flt.matches(row_for(SAMPLE, None, exposed=False))


@given(st.sampled_from(["9", "x", "\x1b", "[", ":"]), st.integers(min_value=200, max_value=20000))
def test_error_lines_stay_short_for_huge_input(unit: str, n: int) -> None:
    text = unit * n
    for fn in (parse_port, parse_port_spec, parse_host_port, parse_range, check_hostname, parse_filter):
        try:
            fn(text)
        except UsageError as exc:
            assert len(str(exc)) < 300 and "\n" not in str(exc) and "\x1b" not in str(exc)
