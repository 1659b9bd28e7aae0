"""The shipped Prometheus examples (scripts/prometheus/): the scrape config and rules are valid, and
each alert rule passes its unit tests under ``promtool test rules``, which can fail."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "scripts" / "prometheus"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (Debian package prometheus)")
ALERTS = ("PortscopeNewExposedListener", "PortscopeListenQueueOverflow", "PortscopeOwnersHidden")


def promtool(*args: str, cwd: Path = EXAMPLES) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_scrape_config_and_rules_are_valid() -> None:
    res = promtool("check", "config", "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    res = promtool("check", "rules", "portscope.rules.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    res = promtool("test", "rules", "portscope.rules.test.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = (EXAMPLES / "portscope.rules.yml").read_text()
    tests = (EXAMPLES / "portscope.rules.test.yml").read_text()
    for alert in ALERTS:
        assert f"alert: {alert}" in rules
    for name in [line.split(":", 1)[1].strip() for line in rules.splitlines() if "- alert:" in line]:
        assert f"alertname: {name}" in tests, name


@pytest.mark.parametrize(
    ("original", "broken"),
    [
        # without the history guard, a host seen for the first time alerts on every exposed listener
        ("\n          and on (instance, job) max_over_time(portscope_build_info[1d] offset 1h)", ""),
        # matching on every label, a renamed process on an old port looks like a new listener
        ("unless on (instance, job, proto, family, address, port)", "unless"),
        # without "used to show them", a host that never showed owners alerts too
        ("\n          and on (instance, job) min_over_time(portscope_hidden_owners[1d] offset 1h) == 0", ""),
        ("increase(portscope_listen_overflows_total[5m]) > 0", "portscope_listen_overflows_total > 0"),
    ],
)
def test_the_unit_tests_catch_a_broken_rule(tmp_path: Path, original: str, broken: str) -> None:
    rules = (EXAMPLES / "portscope.rules.yml").read_text()
    assert original in rules
    (tmp_path / "portscope.rules.yml").write_text(rules.replace(original, broken))
    shutil.copy(EXAMPLES / "portscope.rules.test.yml", tmp_path)
    res = promtool("test", "rules", "portscope.rules.test.yml", cwd=tmp_path)
    assert res.returncode != 0, res.stdout + res.stderr
    assert "FAILED" in res.stdout + res.stderr
