"""Helpers shared by the subcommands: argument types and stderr diagnostics."""

from __future__ import annotations

import argparse
import sys

from app.errors import UsageError
from app.parsing import parse_port, parse_range_name
from app.ports import PortRange
from app.textsafe import quoted


def port_arg(text: str) -> int:
    try:
        return parse_port(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pid_arg(text: str) -> int:
    raw = text.strip()
    if not raw.isdigit() or not raw.isascii() or len(raw) > 10 or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"invalid pid {quoted(text)}: expected a positive number")
    return int(raw)


def range_arg(text: str) -> PortRange:
    try:
        return parse_range_name(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {quoted(text)}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"invalid value {quoted(text)}: must be above 0 and at most 86400")
    return value


def positive_int(text: str) -> int:
    raw = text.strip()
    if not raw.isdigit() or not raw.isascii() or len(raw) > 9 or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"invalid count {quoted(text)}: expected a whole number from 1")
    return int(raw)


def warn(message: str) -> None:
    """A diagnostic line on stderr (never stdout: stdout is for data)."""
    sys.stderr.write(f"portscope: {message}\n")
