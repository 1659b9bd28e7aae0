"""The firewall reader on recorded rulesets (tests/unit/data: real ``nft -j list ruleset`` and
``iptables-save`` output captured in a throw-away network namespace): parsing, the per-packet
decision, the rules that name a port, DNAT, and what is said when a source cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.firewall import (
    Packet,
    Ruleset,
    decide,
    nat_rules,
    parse_iptables_save,
    parse_nft_json,
    port_rules,
    read_firewall,
    replace_xt_tables,
    split_host_port,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def nft() -> Ruleset:
    return parse_nft_json((DATA / "nft_ruleset.json").read_text())


@pytest.fixture(scope="module")
def ipt() -> Ruleset:
    return parse_iptables_save((DATA / "iptables.save").read_text())


def local(port: int, proto: str = "tcp", family: str = "ipv4") -> Packet:
    lo = "127.0.0.1" if family == "ipv4" else "::1"
    return Packet(proto, port, family, True, lo, lo)


def network(port: int, proto: str = "tcp", family: str = "ipv4", daddr: str | None = None) -> Packet:
    return Packet(proto, port, family, False, daddr)


def verdict(rs: Ruleset, pkt: Packet) -> tuple[str, str]:
    d = decide(rs, pkt)
    return d.verdict, d.rule.text if d.rule else f"policy of {d.chain.where if d.chain else '-'}"


def test_nft_chains_sets_and_policies(nft: Ruleset) -> None:
    [inp] = [c for c in nft.base_chains() if c.key[2] == "filt"]
    assert (inp.hook, inp.policy, inp.prio, inp.where) == ("input", "drop", 0, "inet filt input")
    assert nft.sets[("nft", "inet", "filt", "blocked")] == [7001, 7002]
    hooks = [(c.key[1], c.key[2], c.hook) for c in nft.base_chains()]
    assert hooks == [("ip6", "raw6", "prerouting"), ("inet", "filt", "input")]  # nat chains do not filter


@pytest.mark.parametrize(
    "pkt, expected",
    [
        (local(7000), ("accept", "iif lo tcp dport 7000 accept")),
        (network(7000), ("drop", "policy of inet filt input")),
        (local(7100), ("drop", "tcp dport 7100 drop")),
        (network(7250), ("reject", "tcp dport 7200-7300 reject")),
        (network(7001), ("drop", "tcp dport @blocked drop")),
        (network(6000, "udp"), ("accept", "udp dport { 5353, 6000 } accept")),
        (network(6000, "tcp"), ("drop", "policy of inet filt input")),
        (local(7500, family="ipv6"), ("reject", "ip6 daddr ::1 tcp dport 7500 reject with tcp reset")),
        (local(7500, family="ipv4"), ("drop", "policy of inet filt input")),
        (network(7600, "udp"), ("drop", "meta l4proto { tcp, udp } th dport 7600 drop")),
        (network(9300), ("drop", "tcp dport vmap { 9300 : drop, 9301 : accept }")),
        (network(9301), ("accept", "tcp dport vmap { 9300 : drop, 9301 : accept }")),
        (network(9500), ("drop", "tcp dport vmap @portv")),
        (local(7700), ("drop", "tcp dport 7700 drop")),  # in the chain jumped to
        (local(7701), ("drop", "policy of inet filt input")),  # "return" comes back, then the policy
        (network(7900, family="ipv6"), ("drop", "tcp dport 7900 drop")),  # ip6 prerouting chain
    ],
)
def test_nft_decisions(nft: Ruleset, pkt: Packet, expected: tuple[str, str]) -> None:
    assert verdict(nft, pkt) == expected


def test_conditions_that_cannot_be_known_are_may_apply(nft: Ruleset) -> None:
    d = decide(nft, network(7400))  # ip saddr 10.0.0.0/8: the client is not known
    assert d.verdict == "drop" and d.by_policy
    assert [(r.text, v) for r, v in d.maybe] == [("ip saddr 10.0.0.0/8 tcp dport 7400 accept", "accept")]
    d = decide(nft, network(7800))  # iifname "eth0" drop: depends on the interface
    assert d.verdict == "accept" and [r.text for r, _ in d.maybe] == ['iifname "eth0" tcp dport 7800 drop']
    assert decide(nft, local(7800)).maybe == []  # from this machine it arrives on lo, not eth0


def test_replies_need_an_established_rule(nft: Ruleset) -> None:
    reply = Packet("tcp", 45000, "ipv4", True, "127.0.0.1", "127.0.0.1", "established", 7000)
    assert verdict(nft, reply) == ("accept", "ct state established,related accept")


def test_port_rules_name_where_and_what_they_match(nft: Ruleset) -> None:
    pks = [local(7000), network(7000)]
    [pr] = port_rules(nft, 7000, "tcp", pks)
    assert pr.rule.where.startswith("inet filt input handle ")
    assert pr.verdict == "accept" and dict(pr.applies) == {pks[0].label: True, pks[1].label: False}
    assert port_rules(nft, 22, "tcp", [local(22)]) == []  # "!= 22" does not name 22
    assert [
        p.rule.text for p in port_rules(nft, 7002, "udp", [local(7002, "udp")])
    ] == []  # tcp set, udp port


def test_nft_dnat_and_redirect(nft: Ruleset) -> None:
    [n] = nat_rules(nft, 8080, "tcp")
    assert (n.direction, n.hook, n.to_addr, n.to_port) == ("inbound", "prerouting", "10.0.0.2", 80)
    assert n.rule.text == "tcp dport 8080 dnat to 10.0.0.2:80"
    [n] = nat_rules(nft, 9000, "tcp")
    assert (n.direction, n.to_port) == ("here", 9000) and "redirect" in n.rule.text
    [n] = nat_rules(nft, 8082, "tcp")
    assert n.hook == "output" and n.to_addr == "10.0.0.3"
    assert nat_rules(nft, 8080, "udp") == []


def test_iptables_save(ipt: Ruleset) -> None:
    chains = {c.key[2:]: c for c in ipt.chains.values()}
    assert chains[("filter", "INPUT")].policy == "drop" and chains[("filter", "INPUT")].hook == "input"
    assert chains[("filter", "CUSTOM")].hook == ""  # a user chain
    assert verdict(ipt, local(8000)) == ("accept", "-i lo -j ACCEPT")
    assert verdict(ipt, network(443))[0] == "reject"
    assert verdict(ipt, network(1500))[0] == "reject"  # the multiport range 1000:2000
    assert verdict(ipt, network(5050)) == ("drop", "-p tcp -m tcp --dport 5050 -j DROP")  # via -j CUSTOM
    assert verdict(ipt, network(5051)) == ("drop", "policy of iptables-save: filter INPUT")
    assert (
        verdict(ipt, network(22))[1]
        == '-p tcp -m tcp --dport 22 -m comment --comment "ssh \\"in\\"" -j ACCEPT'
    )
    d = decide(ipt, network(9000))  # ! -s 127.0.0.1: the source is not known from the network
    assert [r.text for r, _ in d.maybe] == ["! -s 127.0.0.1/32 -p tcp -m tcp --dport 9000 -j DROP"]
    assert decide(ipt, local(9000)).verdict == "accept"  # lo accepted first
    assert verdict(ipt, network(53, "udp")) == ("drop", "policy of iptables-save: filter INPUT")
    assert decide(ipt, network(53, "udp")).maybe[0][0].text.startswith("-s 10.0.0.0/8")
    assert decide(ipt, network(22, family="ipv6")).chains_seen == 0  # iptables-save is IPv4 only
    [n] = nat_rules(ipt, 8080, "tcp")
    assert (n.direction, n.to_addr, n.to_port) == ("inbound", "10.0.0.2", 80)
    [n] = nat_rules(ipt, 8443, "tcp")
    assert (n.direction, n.hook, n.to_port) == ("inbound", "output", 443)


def test_xt_rules_are_replaced_from_iptables_save_keeping_handles() -> None:
    rs = parse_nft_json((DATA / "nft_iptables_xt.json").read_text())
    before = rs.rules[("nft", "ip", "filter", "INPUT")]
    assert [r.needs_iptables for r in before] == [True, True]
    assert decide(rs, network(7000)).verdict == "accept"  # the xt target is unknown: may apply only
    # the REJECT target and the multiport match are not decoded by nft: both may apply
    assert [v for _r, v in decide(rs, network(7000)).maybe] == ["iptables target REJECT", "drop"]
    ipt = parse_iptables_save((DATA / "iptables_xt.save").read_text())
    replace_xt_tables(rs, ipt, "ip", {"filter", "nat"})
    after = rs.rules[("nft", "ip", "filter", "INPUT")]
    assert [r.handle for r in after] == [r.handle for r in before]
    assert verdict(rs, network(7000)) == (
        "reject",
        "-p tcp -m tcp --dport 7000 -j REJECT --reject-with tcp-reset",
    )
    assert decide(rs, network(7000)).rule.where == f"ip filter INPUT handle {before[0].handle}"  # type: ignore[union-attr]
    assert verdict(rs, network(443))[0] == "drop"
    [n] = nat_rules(rs, 8080, "tcp")  # Docker's DNAT, reached through -j DOCKER
    assert (n.to_addr, n.to_port, n.hook) == ("172.17.0.2", 80, "prerouting")


def test_bad_nft_output_is_a_value_error() -> None:
    for text in ("", "[1, 2]", '{"x": 1}', "not json"):
        with pytest.raises(ValueError):
            parse_nft_json(text)
    assert parse_nft_json('{"nftables": [{"rule": "junk"}, 3, {"chain": {}}]}').rules


def test_iptables_garbage_lines_are_counted() -> None:
    rs = parse_iptables_save(
        '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment "unterminated\n-A\n'
    )
    assert rs.notes == ["iptables-save: 2 lines could not be read"]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("10.0.0.2:80", ("10.0.0.2", 80)),
        ("10.0.0.2", ("10.0.0.2", None)),
        ("10.0.0.2:80-90", ("10.0.0.2", 80)),
        ("[2001:db8::2]:443", ("2001:db8::2", 443)),
        ("2001:db8::2", ("2001:db8::2", None)),
    ],
)
def test_split_host_port(value: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(value) == expected


# --- reading: faults injected into the runner ------------------------------------------------------


def runner(results: dict[str, tuple[int, str, str]]):  # type: ignore[no-untyped-def]
    calls: list[list[str]] = []

    def run(cmd: list[str]) -> tuple[int, str, str]:
        calls.append(cmd)
        return results[cmd[0].rsplit("/", 1)[-1]]

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_read_firewall_says_what_it_could_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.firewall._legacy_tables_loaded", lambda: False)
    denied = runner({"nft": (1, "", "Error: Operation not permitted\n")})
    view = read_firewall(run=denied, which=lambda n: f"/usr/sbin/{n}")
    assert not view.readable
    assert view.not_inspected == ["nftables: nft needs root (CAP_NET_ADMIN): Error: Operation not permitted"]

    view = read_firewall(run=runner({}), which=lambda n: None)
    assert view.not_inspected == [
        "IPv4 rules: nft and iptables-save are not installed",
        "IPv6 rules: nft and ip6tables-save are not installed",
    ]

    save = (DATA / "iptables.save").read_text()
    fallback = runner({"iptables-save": (0, save, ""), "ip6tables-save": (0, "", "")})
    view = read_firewall(run=fallback, which=lambda n: None if n == "nft" else f"/usr/sbin/{n}")
    assert view.inspected == ["IPv4 iptables rules (iptables-save)", "IPv6 iptables rules (ip6tables-save)"]
    assert decide(view.ruleset, network(5050)).verdict == "drop"

    garbled = runner({"nft": (0, "{garbage", "")})
    view = read_firewall(run=garbled, which=lambda n: f"/usr/sbin/{n}")
    assert view.not_inspected and "could not be read" in view.not_inspected[0]
