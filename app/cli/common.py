"""Helpers shared by the subcommands: argument types and stderr diagnostics."""

from __future__ import annotations

import argparse
import sys

from app.errors import UsageError
from app.parsing import parse_port, parse_range_name
from app.ports import PortRange


def port_arg(text: str) -> int:
    try:
        return parse_port(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pid_arg(text: str) -> int:
    raw = text.strip()
    if not raw.isdigit() or not raw.isascii() or len(raw) > 10 or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"invalid pid {text!r}: expected a positive number")
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
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0 or value > 86400:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be above 0")
    return value


def positive_int(text: str) -> int:
    raw = text.strip()
    if not raw.isdigit() or not raw.isascii() or len(raw) > 9 or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected a whole number from 1")
    return int(raw)


def warn(message: str) -> None:
    """A diagnostic line on stderr (never stdout: stdout is for data)."""
    sys.stderr.write(f"portscope: {message}\n")
