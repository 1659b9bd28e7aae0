"""``explain``'s firewall findings, with real nft and iptables rules inside a network namespace
the test creates (the host's ruleset is never read for an assertion, nor changed)."""

from __future__ import annotations

import pytest

from tests.integration.explain_ns import (
    explain_json,
    kinds,
    needs_iptables,
    needs_netns,
    needs_nft,
    run_in_netns,
    texts,
)
from tests.unprivileged import unprivileged_runner
from tests.unprivileged import why_not as why_not_unprivileged

pytestmark = [needs_netns, needs_nft]

ESTABLISHED = "ct state established,related accept"


def table(*rules: str, policy: str = "accept", extra: str = "") -> str:
    body = "\n    ".join(rules)
    return (
        "table inet pstest {\n"
        f"  {extra}\n"
        f"  chain input {{\n    type filter hook input priority 0; policy {policy};\n    {body}\n  }}\n"
        "}\n"
    )


def rule_findings(data: dict, verdict: str) -> list[dict]:
    return [f for f in kinds(data, "firewall-rule") if f["detail"]["verdict"] == verdict]


def test_drop_rule_is_named_with_table_chain_and_handle() -> None:
    rc, data = explain_json(
        {
            "nft": table("tcp dport 7100 drop"),
            "listeners": [{"host": "0.0.0.0", "port": 7100}],
            "args": ["explain", "7100", "--json", "--timeout", "0.3"],
        }
    )
    assert rc == 1, texts(data)
    assert data["verdict"].startswith(
        "7100/tcp: listening on all interfaces, but a connection from here fails"
    )
    assert "the firewall drops it" in data["verdict"]
    [rule] = rule_findings(data, "drop")
    d = rule["detail"]
    assert (d["family"], d["table"], d["chain"]) == ("inet", "pstest", "input")
    assert isinstance(d["handle"], int) and d["rule"] == "tcp dport 7100 drop"
    assert rule["severity"] == "problem"
    assert f"inet pstest input handle {d['handle']}" in rule["text"]
    [test] = kinds(data, "test")
    assert test["detail"]["state"] == "filtered" and test["severity"] == "problem"
    verdicts = kinds(data, "firewall-verdict")
    assert verdicts and all(v["detail"]["verdict"] == "drop" for v in verdicts)
    commands = [s["command"] for s in data["suggestions"]]
    assert "nft -a list chain inet pstest input" in commands


def test_reject_on_a_port_range_refuses_the_connection() -> None:
    rc, data = explain_json(
        {
            "nft": table("tcp dport 7200-7300 reject with tcp reset"),
            "listeners": [{"host": "127.0.0.1", "port": 7250}],
            "args": ["explain", "7250", "--json"],
        }
    )
    assert rc == 1
    [rule] = rule_findings(data, "reject")
    assert "7200-7300" in rule["detail"]["rule"] and rule["severity"] == "problem"
    [test] = kinds(data, "test")
    assert test["detail"]["state"] == "closed"
    assert "the firewall rejects it" in data["verdict"]


def test_policy_drop_with_loopback_accepted_is_reachable_from_here_only() -> None:
    rc, data = explain_json(
        {
            "nft": table(ESTABLISHED, "iif lo accept", policy="drop"),
            "addrs": ["10.77.0.5/24"],
            "listeners": [{"host": "0.0.0.0", "port": 7400}],
            "args": ["explain", "7400", "--json"],
        }
    )
    assert rc == 0, texts(data)
    assert data["verdict"] == (
        "7400/tcp: listening on all interfaces, but the firewall drops it from the network: "
        "reachable from this machine only"
    )
    [policy] = kinds(data, "firewall-policy")
    assert policy["detail"]["policy"] == "drop" and policy["detail"]["hook"] == "input"
    by_where = {
        (v["detail"]["verdict"], v["detail"]["rule"], v["detail"]["policy_of"])
        for v in kinds(data, "firewall-verdict")
    }
    assert ("drop", None, "inet pstest input") in by_where
    assert any(
        v == "accept" and rule and rule.startswith("inet pstest input handle") for v, rule, _ in by_where
    )
    assert [t["detail"]["state"] for t in kinds(data, "test")] == ["open", "open"]  # 127.0.0.1, 10.77.0.5


def test_named_set_and_an_accepting_anonymous_set_for_udp() -> None:
    extra = "set blocked { type inet_service; elements = { 7500, 7501 } }"
    rules = table(
        ESTABLISHED, "tcp dport @blocked drop", "udp dport { 5353, 7600 } accept", policy="drop", extra=extra
    )
    rc, data = explain_json(
        {
            "nft": rules,
            "listeners": [{"host": "127.0.0.1", "port": 7501}],
            "args": ["explain", "7501", "--json", "--timeout", "0.3"],
        }
    )
    assert rc == 1
    [rule] = rule_findings(data, "drop")
    assert rule["detail"]["rule"] == "tcp dport @blocked drop"
    rc, data = explain_json(
        {
            "nft": rules,
            "listeners": [{"host": "127.0.0.1", "port": 7600, "proto": "udp"}],
            "args": ["explain", "7600", "--proto", "udp", "--json"],
        }
    )
    assert rc == 0, texts(data)
    [rule] = rule_findings(data, "accept")
    assert "{ 5353, 7600 }" in rule["detail"]["rule"]
    assert data["verdict"].startswith("7600/udp: open on loopback only")


def test_dnat_rule_publishing_the_port_is_reported() -> None:
    nat = (
        "table ip psnat {\n  chain prerouting {\n    type nat hook prerouting priority -100;\n"
        "    tcp dport 8080 dnat to 10.77.0.9:80\n  }\n}\n"
    )
    rc, data = explain_json({"nft": nat, "addrs": ["10.77.0.5/24"], "args": ["explain", "8080", "--json"]})
    assert rc == 1  # nothing listens here
    [dnat] = kinds(data, "firewall-dnat")
    d = dnat["detail"]
    assert (d["direction"], d["hook"], d["to_address"], d["to_port"]) == (
        "inbound",
        "prerouting",
        "10.77.0.9",
        80,
    )
    assert "ip psnat prerouting handle" in dnat["text"] and "10.77.0.9:80" in dnat["text"]
    assert dnat["severity"] == "warning"


@pytest.mark.slow
def test_policy_drop_without_established_rule_drops_the_replies() -> None:
    rc, data = explain_json(
        {
            "nft": table("iif lo tcp dport 7700 accept", policy="drop"),
            "listeners": [{"host": "127.0.0.1", "port": 7700}],
            "args": ["explain", "7700", "--json", "--timeout", "0.3"],
        }
    )
    assert rc == 1
    [replies] = kinds(data, "firewall-replies")
    assert replies["severity"] == "problem" and replies["detail"]["policy_of"] == "inet pstest input"
    assert "the firewall drops the replies" in data["verdict"]
    assert any("ct state established,related accept" in s["command"] for s in data["suggestions"])


@needs_iptables
def test_iptables_nft_extension_rules_are_read_from_iptables_save() -> None:
    """iptables-nft writes -j REJECT as an xt target that nft -j cannot show."""
    rc, data = explain_json(
        {
            "commands": [
                [
                    "iptables",
                    "-A",
                    "INPUT",
                    "-p",
                    "tcp",
                    "--dport",
                    "7800",
                    "-j",
                    "REJECT",
                    "--reject-with",
                    "tcp-reset",
                ]
            ],
            "listeners": [{"host": "127.0.0.1", "port": 7800}],
            "args": ["explain", "7800", "--json"],
        }
    )
    assert rc == 1, texts(data)
    [rule] = rule_findings(data, "reject")
    d = rule["detail"]
    assert (d["family"], d["table"], d["chain"]) == ("ip", "filter", "INPUT")
    assert isinstance(d["handle"], int)  # nft's handle kept for the rule read from iptables-save
    assert "--dport 7800" in d["rule"] and "-j REJECT" in d["rule"]
    assert kinds(data, "test")[0]["detail"]["state"] == "closed"


@needs_iptables
def test_iptables_save_is_read_where_nft_is_absent() -> None:
    code = r"""
from app.firewall import Packet, decide, find_tool, nat_rules, port_rules, read_firewall
view = read_firewall(which=lambda name: None if name == "nft" else find_tool(name))
pk = Packet("tcp", 5050, "ipv4", False)
d = decide(view.ruleset, pk)
rules = port_rules(view.ruleset, 5050, "tcp", [pk])
nat = nat_rules(view.ruleset, 8081, "tcp")
result = {
    "inspected": view.inspected,
    "not_inspected": view.not_inspected,
    "verdict": d.verdict,
    "where": d.rule.where if d.rule else None,
    "rules": [r.rule.text for r in rules],
    "nat": [(n.direction, n.to_addr, n.to_port) for n in nat],
}
"""
    out = run_in_netns(
        {
            "commands": [
                ["iptables", "-P", "INPUT", "DROP"],
                [
                    "iptables",
                    "-A",
                    "INPUT",
                    "-p",
                    "tcp",
                    "-m",
                    "multiport",
                    "--dports",
                    "80,5000:5100",
                    "-j",
                    "DROP",
                ],
                [
                    "iptables",
                    "-t",
                    "nat",
                    "-A",
                    "PREROUTING",
                    "-p",
                    "tcp",
                    "--dport",
                    "8081",
                    "-j",
                    "DNAT",
                    "--to-destination",
                    "10.77.0.9:81",
                ],
            ],
            "code": code,
        }
    )
    r = out["result"]
    assert any("iptables-save" in s for s in r["inspected"]), r
    assert r["verdict"] == "drop" and r["where"] == "iptables-save: filter INPUT rule 1"
    assert r["rules"] == ["-p tcp -m multiport --dports 80,5000:5100 -j DROP"]
    assert r["nat"] == [["inbound", "10.77.0.9", 81]]


@pytest.mark.slow
@pytest.mark.skipif(why_not_unprivileged() is not None, reason=why_not_unprivileged() or "")
def test_not_inspected_without_root_says_why() -> None:
    with unprivileged_runner() as prefix:
        rc, data = explain_json(
            {
                "nft": table("tcp dport 7900 drop"),
                "listeners": [{"host": "127.0.0.1", "port": 7900}],
                "prefix": prefix,
                "args": ["explain", "7900", "--json", "--timeout", "0.3"],
                "cwd": "/",
            }
        )
    notes = [f for f in kinds(data, "firewall") if f["severity"] == "warning"]
    assert notes and "firewall not inspected: nftables: nft needs root" in notes[0]["text"], texts(data)
    assert not kinds(data, "firewall-rule")  # nothing guessed
    assert rc == 1
