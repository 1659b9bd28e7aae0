"""Pure parts of explain's fact gathering: address scopes, the
``watch --log`` reader, and the rendering order of an explanation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.errors import UsageError
from app.explain import Explanation, Finding, Suggestion
from app.model import empty_snapshot
from app.portfacts import address_scope, read_history


@pytest.mark.parametrize(
    "ip, scope",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.20.0.1", "private"),
        ("192.168.1.5", "private"),
        ("fd00::5", "private (unique local)"),
        ("100.64.1.1", "shared (carrier-grade NAT)"),
        ("169.254.1.1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("8.8.8.8", "public"),
        ("2a00:1450::1", "public"),
        ("192.0.2.5", "special-purpose"),
        ("::ffff:10.0.0.1", "private"),
        ("nonsense", "unknown"),
    ],
)
def test_address_scope(ip: str, scope: str) -> None:
    assert address_scope(ip) == scope


def event(kind: str, port: int, proto: str = "tcp", pid: int | None = 42, t: float = 1.0) -> str:
    sock = {
        "proto": proto,
        "local": {"ip": "127.0.0.1", "port": port},
        "state": "LISTEN",
        "pid": pid,
        "process": {"pid": pid, "name": "srv", "user": "me", "cmdline": ["srv", "-p", str(port)]}
        if pid
        else None,
    }
    return json.dumps({"schema": 1, "event": kind, "time": t, "socket": sock, "before": None})


def test_read_history_keeps_this_ports_events_in_time_order(tmp_path: Path) -> None:
    log = tmp_path / "log.ndjson"
    long_line = "x" * (1 << 20) + "\n"
    log.write_text(
        "\n".join(
            [event("closed", 8080, t=3.0), event("opened", 8080, t=2.0), event("opened", 8081), "{}", "junk"]
        )
        + "\n"
        + long_line
        + event("opened", 8080, "udp")
        + "\n"
    )
    found, read, skipped = read_history(str(log), 8080, "tcp")
    assert [(s.event, s.time) for s in found] == [("opened", 2.0), ("closed", 3.0)]
    assert found[0].command == "srv -p 8080" and found[0].pid == 42 and found[0].local == "127.0.0.1:8080"
    assert (read, skipped) == (6, 3)  # {} and junk are not events; the long line is skipped


def test_read_history_errors_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read history file"):
        read_history(str(tmp_path / "missing"), 80, "tcp")
    with pytest.raises(UsageError, match="not a regular file"):
        read_history(str(tmp_path), 80, "tcp")


def test_lines_put_problems_first_and_suggestions_last() -> None:
    ex = Explanation(
        80,
        "tcp",
        "80/tcp: verdict",
        [],
        empty_snapshot(),
        [Finding("a", "info", "fine"), Finding("b", "problem", "bad"), Finding("c", "warning", "hmm")],
        [Suggestion("portscope kill 80", "frees it")],
        False,
    )
    assert [text for text, _ in ex.lines()] == [
        "80/tcp: verdict",
        "  problem  bad",
        "  warning  hmm",
        "  info     fine",
        "suggested commands (not run):",
        "  $ portscope kill 80",
        "      frees it",
    ]
    assert ex.exit_code == 1
