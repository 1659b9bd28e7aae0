"""The firewall, read only: which rules on the input path decide one port, and DNAT rules for it.

Sources, in order: ``nft -j list ruleset`` (nftables); where nft is absent, ``iptables-save`` and
``ip6tables-save``; and, when the legacy iptables tables are loaded (``/proc/net/ip_tables_names``
lists any), ``iptables-legacy-save`` too, whose rules nft cannot see. Rules that iptables-nft wrote
with extensions nft cannot show in JSON (``xt`` expressions: ``-j REJECT``, ``-j DNAT``,
``-m multiport``) are read from ``iptables-save`` in their place. Nothing is ever changed: every
command here only lists.

This is a heuristic, not an evaluator. A rule is turned into conditions (destination port, protocol,
input interface, addresses, conntrack state, ...) that are checked against a *packet* that opens a
new connection to the port: from this machine (``iif lo``) or from the network. Each condition is
true, false or *unknown* (an interface name, a source address, an extension not decoded): a rule
whose conditions are all true decides; one that is unknown "may apply" and is reported as such.
Jumps and gotos are followed; several base chains on the input path must all accept.

The parsers take text (``parse_nft_json``, ``parse_iptables_save``), so recorded rulesets can be
read as well as live ones (:func:`read_firewall`).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Tri = bool | None  # True, False, or unknown
ChainKey = tuple[str, str, str, str]  # (source, family, table, chain)

TERMINAL = ("accept", "drop", "reject")
NAT_VERDICTS = ("dnat", "redirect")
# Hooks a packet to a local port passes, in order (netdev ingress is not read).
INPUT_HOOKS = ("prerouting", "input")
_HOOK_ORDER = {h: i for i, h in enumerate(("prerouting", "input", "forward", "output", "postrouting"))}
_PORT_PROTOCOLS = ("tcp", "udp", "th", "sctp", "dccp", "udplite")
_PROTO_NUMBERS = {"tcp": 6, "udp": 17}
# Statements that do not decide whether a rule matches.
_STATEMENTS = frozenset(
    {"counter", "log", "mangle", "notrack", "set", "flow", "ct helper", "ct timeout", "tproxy", "synproxy"}
)
NFT_TIMEOUT = 5.0


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Cond:
    """One condition of a rule. ``right`` is in nft's JSON form (int, str, range, prefix, set,
    ``@name``); iptables conditions are converted to the same form."""

    kind: str  # port | l4proto | iif | addr | family | ct | local | other
    op: str = "=="
    right: Any = None
    field: str = ""  # port: dport/sport; addr: saddr/daddr; ct: the ct key
    proto: str = ""  # port: the payload protocol (tcp, udp, th, ...)
    family: str = ""  # addr/l4proto: ipv4/ipv6 when the condition implies one
    text: str = ""


@dataclass(frozen=True, slots=True)
class Chain:
    key: ChainKey
    hook: str = ""  # prerouting/input/... for a base chain, "" for a regular chain
    type: str = ""  # filter / nat / route
    prio: int = 0
    policy: str = ""  # accept / drop for a base chain

    @property
    def base(self) -> bool:
        return bool(self.hook)

    @property
    def name(self) -> str:
        return self.key[3]

    @property
    def where(self) -> str:
        """``inet filter input`` (and the source when it is not nft)."""
        source, family, table, name = self.key
        text = f"{family} {table} {name}"
        return text if source == "nft" else f"{source}: {table} {name}"


@dataclass(frozen=True, slots=True)
class Rule:
    key: ChainKey
    position: int  # 1-based place in its chain
    handle: int | None
    conds: tuple[Cond, ...]
    verdict: str  # accept/drop/reject/jump/goto/return/dnat/redirect/xt/"" (none)
    target: str = ""  # jump/goto: the chain; dnat: the address; xt: the extension
    to_port: int | None = None  # dnat/redirect
    vmap: tuple[Cond, Any] | None = None  # (the key as a port condition, the map elements / @name)
    text: str = ""
    needs_iptables: bool = False  # holds xt expressions nft cannot show

    @property
    def where(self) -> str:
        source, family, table, chain = self.key
        place = f"{family} {table} {chain}" if source == "nft" else f"{source}: {table} {chain}"
        handle = f"handle {self.handle}" if self.handle is not None else f"rule {self.position}"
        return f"{place} {handle}"


@dataclass
class Ruleset:
    chains: dict[ChainKey, Chain] = field(default_factory=dict)
    rules: dict[ChainKey, list[Rule]] = field(default_factory=dict)
    sets: dict[ChainKey, list[Any]] = field(default_factory=dict)  # (source, family, table, set name)
    notes: list[str] = field(default_factory=list)

    def merge(self, other: Ruleset) -> None:
        self.chains.update(other.chains)
        self.rules.update(other.rules)
        self.sets.update(other.sets)
        self.notes.extend(other.notes)

    def base_chains(
        self, hooks: Iterable[str] = INPUT_HOOKS, types: Iterable[str] = ("filter",)
    ) -> list[Chain]:
        hooks, types = tuple(hooks), tuple(types)
        found = [c for c in self.chains.values() if c.hook in hooks and (c.type or "filter") in types]
        return sorted(found, key=lambda c: (_HOOK_ORDER.get(c.hook, 9), c.prio, c.key))

    @property
    def empty(self) -> bool:
        return not self.chains


# ----------------------------------------------------------------------------- nft JSON


def parse_nft_json(text: str) -> Ruleset:
    """``nft -j list ruleset`` output -> Ruleset. ValueError when it is not that JSON."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError('not an nft ruleset: no "nftables" list')
    rs = Ruleset()
    positions: dict[ChainKey, int] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        body = next(iter(item.values()), None) if len(item) == 1 else None
        if not isinstance(body, dict):
            continue
        if "chain" in item:
            c = body
            key = ("nft", str(c.get("family", "")), str(c.get("table", "")), str(c.get("name", "")))
            rs.chains[key] = Chain(
                key,
                hook=str(c.get("hook") or ""),
                type=str(c.get("type") or ""),
                prio=_int(c.get("prio"), 0),
                policy=str(c.get("policy") or ("accept" if c.get("hook") else "")),
            )
            rs.rules.setdefault(key, [])
        elif "set" in item or "map" in item:
            s = body
            key = ("nft", str(s.get("family", "")), str(s.get("table", "")), str(s.get("name", "")))
            elems = s.get("elem", [])
            rs.sets[key] = list(elems) if isinstance(elems, list) else [elems]
        elif "rule" in item:
            r = body
            key = ("nft", str(r.get("family", "")), str(r.get("table", "")), str(r.get("chain", "")))
            positions[key] = positions.get(key, 0) + 1
            rule = _nft_rule(key, positions[key], r)
            rs.rules.setdefault(key, []).append(rule)
    return rs


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _nft_rule(key: ChainKey, position: int, r: dict[str, Any]) -> Rule:
    conds: list[Cond] = []
    verdict, target, to_port = "", "", None
    vmap: tuple[Cond, Any] | None = None
    needs_iptables = False
    words: list[str] = []
    for expr in r.get("expr") or []:
        if not isinstance(expr, dict) or len(expr) != 1:
            continue
        (name, body), *_ = expr.items()
        if name == "match" and isinstance(body, dict):
            cond = _nft_match(body)
            conds.append(cond)
            words.append(cond.text)
        elif name in TERMINAL:
            verdict = name
            extra = ""
            if name == "reject" and isinstance(body, dict) and body.get("type") == "tcp reset":
                extra = " with tcp reset"
            words.append(name + extra)
        elif name in ("jump", "goto") and isinstance(body, dict):
            verdict, target = name, str(body.get("target", ""))
            words.append(f"{name} {target}")
        elif name in ("return", "continue"):
            verdict = name
            words.append(name)
        elif name in NAT_VERDICTS:
            verdict = name
            body = body if isinstance(body, dict) else {}
            addr = body.get("addr")
            target = _value_text(addr) if addr is not None else ""
            port = body.get("port")
            to_port = port if isinstance(port, int) else None
            dest = (target if ":" not in target else f"[{target}]") + (f":{port}" if port is not None else "")
            words.append(f"{name} to {dest}" if dest else name)
        elif name == "vmap" and isinstance(body, dict):
            keycond = _nft_match({"op": "==", "left": body.get("key"), "right": None})
            data = body.get("data")
            vmap = (keycond, data.get("set") if isinstance(data, dict) else data)
            verdict = "vmap"
            words.append(f"{keycond.text.rstrip()} vmap {_value_text(data)}")
        elif name == "xt":
            body = body if isinstance(body, dict) else {}
            ext = str(body.get("name", "?"))
            needs_iptables = True
            if body.get("type") == "target":
                verdict, target = "xt", ext
                words.append(f"iptables target {ext}")
            else:
                conds.append(Cond("other", text=f"iptables match {ext}"))
                words.append(f"iptables match {ext}")
        elif name == "queue":
            verdict = "queue"
            words.append("queue")
        elif name in _STATEMENTS:
            continue
        else:  # limit, quota, meter, ...: a condition portscope does not decode
            conds.append(Cond("other", text=name))
            words.append(name)
    comment = r.get("comment")
    text = " ".join(w for w in words if w)
    if comment:
        text += f' comment "{comment}"'
    return Rule(
        key,
        position,
        _int(r.get("handle"), 0) if r.get("handle") is not None else None,
        tuple(conds),
        verdict,
        target,
        to_port,
        vmap,
        text,
        needs_iptables,
    )


def _nft_match(m: dict[str, Any]) -> Cond:
    op = str(m.get("op", "=="))
    left = m.get("left")
    right = m.get("right")
    shown_op = "" if op in ("==", "in") else f"{op} "
    value = _value_text(right) if right is not None else ""
    if isinstance(left, dict) and "payload" in left and isinstance(left["payload"], dict):
        p = left["payload"]
        proto, fld = str(p.get("protocol", "")), str(p.get("field", ""))
        text = f"{proto} {fld} {shown_op}{value}"
        if fld in ("dport", "sport") and proto in _PORT_PROTOCOLS:
            return Cond("port", op, right, field=fld, proto=proto, text=text)
        if proto in ("ip", "ip6") and fld in ("saddr", "daddr"):
            fam = "ipv4" if proto == "ip" else "ipv6"
            return Cond("addr", op, right, field=fld, family=fam, text=text)
        if (proto, fld) in (("ip", "protocol"), ("ip6", "nexthdr")):
            fam = "ipv4" if proto == "ip" else "ipv6"
            return Cond("l4proto", op, right, family=fam, text=text)
        return Cond("other", op, right, text=text)
    if isinstance(left, dict) and "meta" in left and isinstance(left["meta"], dict):
        key = str(left["meta"].get("key", ""))
        if key == "l4proto":
            return Cond("l4proto", op, right, text=f"meta l4proto {shown_op}{value}")
        if key in ("iif", "iifname"):
            shown = f'"{value}"' if key == "iifname" and isinstance(right, str) else value
            return Cond("iif", op, right, text=f"{key} {shown_op}{shown}")
        if key == "nfproto":
            return Cond("family", op, right, text=f"meta nfproto {shown_op}{value}")
        return Cond("other", op, right, text=f"meta {key} {shown_op}{value}")
    if isinstance(left, dict) and "ct" in left and isinstance(left["ct"], dict):
        key = str(left["ct"].get("key", ""))
        return Cond("ct", op, right, field=key, text=f"ct {key} {shown_op}{value}")
    if isinstance(left, dict) and "fib" in left and isinstance(left["fib"], dict):
        fib = left["fib"]
        flags = fib.get("flags")
        flags = flags if isinstance(flags, list) else [flags]
        text = f"fib {' . '.join(str(f) for f in flags)} {fib.get('result', '')} {shown_op}{value}"
        if fib.get("result") == "type" and "daddr" in flags and right == "local":
            return Cond("local", op, right, text=text)
        return Cond("other", op, right, text=text)
    return Cond("other", op, right, text=f"{_value_text(left)} {shown_op}{value}".strip())


def _value_text(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower()
    if isinstance(v, int | str):
        return str(v)
    if isinstance(v, list):
        return ",".join(_value_text(x) for x in v)
    if isinstance(v, dict):
        if "range" in v and isinstance(v["range"], list) and len(v["range"]) == 2:
            return f"{_value_text(v['range'][0])}-{_value_text(v['range'][1])}"
        if "prefix" in v and isinstance(v["prefix"], dict):
            return f"{v['prefix'].get('addr')}/{v['prefix'].get('len')}"
        if "set" in v:
            items = v["set"] if isinstance(v["set"], list) else [v["set"]]
            return "{ " + ", ".join(_elem_text(x) for x in items) + " }"
        if len(v) == 1:
            (k, inner), *_ = v.items()
            return k if inner is None else f"{k} {_value_text(inner)}"
    return json.dumps(v, sort_keys=True)


def _elem_text(x: Any) -> str:
    if isinstance(x, list) and len(x) == 2:  # a map element: key : value
        return f"{_value_text(x[0])} : {_value_text(x[1])}"
    if isinstance(x, dict) and "elem" in x and isinstance(x["elem"], dict):
        return _value_text(x["elem"].get("val"))
    return _value_text(x)


# ----------------------------------------------------------------------------- iptables-save

_IPT_HOOKS = {
    "PREROUTING": "prerouting",
    "INPUT": "input",
    "FORWARD": "forward",
    "OUTPUT": "output",
    "POSTROUTING": "postrouting",
}
_IPT_PRIO = {"raw": -300, "mangle": -150, "nat": -100, "filter": 0, "security": 50}
_IPT_VALUE_OPTS = frozenset(
    {
        "-p", "--protocol", "-s", "--source", "-d", "--destination", "-i", "--in-interface",
        "-o", "--out-interface", "-m", "--match", "-j", "--jump", "-g", "--goto",
    }
)  # fmt: skip
_IPT_FLAGS = frozenset({"--syn", "-f", "--fragment", "--log-uid", "--random", "--persistent"})


def parse_iptables_save(text: str, family: Literal["ipv4", "ipv6"] = "ipv4", source: str = "") -> Ruleset:
    """``iptables-save`` (or ``ip6tables-save``) output -> Ruleset. Lines that cannot be read are
    skipped (and counted in ``notes``)."""
    source = source or ("iptables-save" if family == "ipv4" else "ip6tables-save")
    fam = "ip" if family == "ipv4" else "ip6"
    rs = Ruleset()
    table = ""
    positions: dict[ChainKey, int] = {}
    bad = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if line.startswith(":"):
            parts = line[1:].split()
            if not parts:
                continue
            name, policy = parts[0], (parts[1] if len(parts) > 1 else "-")
            key = (source, fam, table, name)
            hook = _IPT_HOOKS.get(name, "") if policy != "-" else ""
            rs.chains[key] = Chain(
                key,
                hook=hook,
                type="nat" if table == "nat" else ("filter" if hook else ""),
                prio=_IPT_PRIO.get(table, 0),
                policy=policy.lower() if policy != "-" else "",
            )
            rs.rules.setdefault(key, [])
            continue
        if not line.startswith("-A "):
            bad += 1
            continue
        try:
            tokens = shlex.split(line)
        except ValueError:
            bad += 1
            continue
        if len(tokens) < 2:
            bad += 1
            continue
        key = (source, fam, table, tokens[1])
        positions[key] = positions.get(key, 0) + 1
        rule = _ipt_rule(key, positions[key], tokens[2:], line[3 + len(tokens[1]) :].strip(), family)
        rs.rules.setdefault(key, []).append(rule)
        if key not in rs.chains:
            rs.chains[key] = Chain(key)
    if bad:
        rs.notes.append(f"{source}: {bad} line{'s' if bad != 1 else ''} could not be read")
    return rs


def _ipt_ports(text: str) -> Any:
    """``80``, ``1000:2000``, ``80,443,1000:2000`` -> nft JSON form."""
    items: list[Any] = []
    for part in text.split(","):
        lo, sep, hi = part.partition(":")
        try:
            if sep:
                items.append({"range": [int(lo or 0), int(hi or 65535)]})
            else:
                items.append(int(part))
        except ValueError:
            items.append(part)
    return items[0] if len(items) == 1 else {"set": items}


def _ipt_addr(text: str) -> Any:
    items: list[Any] = []
    for part in text.split(","):
        addr, sep, length = part.partition("/")
        if sep and length.isdigit():
            items.append({"prefix": {"addr": addr, "len": int(length)}})
        elif sep:  # a dotted netmask
            try:
                items.append(str(ipaddress.ip_network(part, strict=False)))
            except ValueError:
                items.append(part)
        else:
            items.append(part)
    return items[0] if len(items) == 1 else {"set": items}


_IPT_STATEMENTS = frozenset(
    {"LOG", "NFLOG", "MARK", "CONNMARK", "CT", "TRACE", "NOTRACK", "CHECKSUM", "TCPMSS"}
)


def _ipt_target(name: str) -> tuple[str, str]:
    """``-j NAME`` -> (verdict, target): a builtin verdict, a NAT target, a statement (no verdict)
    or a jump to a user chain."""
    upper = name.upper()
    if upper in ("ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "REDIRECT", "SNAT", "MASQUERADE"):
        return upper.lower(), ""
    if upper in ("NFQUEUE", "QUEUE"):
        return "queue", ""
    if upper in _IPT_STATEMENTS:
        return "", ""
    return "jump", name


def _first_port(text: str) -> int | None:
    head = text.split("-", 1)[0]
    return int(head) if head.isdigit() and int(head) <= 65535 else None


def split_host_port(value: str) -> tuple[str, int | None]:
    """``10.0.0.2:80``, ``10.0.0.2``, ``[2001:db8::2]:80``, ``2001:db8::2``, ``:80`` ->
    (address, port or None); a port range gives its first port."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, _first_port(rest[1:]) if rest.startswith(":") else None
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, _first_port(port)
    return value, None


def _ipt_rule(key: ChainKey, position: int, tokens: list[str], text: str, family: str) -> Rule:
    conds: list[Cond] = []
    verdict, target, to_port = "", "", None
    negate = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            negate = True
            i += 1
            continue
        value = tokens[i + 1] if i + 1 < len(tokens) else ""
        takes_value = tok in _IPT_VALUE_OPTS or (
            tok.startswith("--")
            and tok not in _IPT_FLAGS
            and value
            and value != "!"
            and not value.startswith("-")
        )
        op = "!=" if negate else "=="
        shown = ("! " if negate else "") + tok + (f" {value}" if takes_value else "")
        if tok in ("-p", "--protocol"):
            conds.append(Cond("l4proto", op, value.lower(), text=shown))
        elif tok in ("-s", "--source", "-d", "--destination", "--src-range", "--dst-range"):
            fld = "saddr" if tok in ("-s", "--source", "--src-range") else "daddr"
            right = _ipt_addr(value) if "range" not in tok else {"range": value.split("-", 1)}
            conds.append(Cond("addr", op, right, field=fld, family=family, text=shown))
        elif tok in ("-i", "--in-interface"):
            conds.append(Cond("iif", op, value.replace("+", "*"), text=shown))
        elif tok in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            conds.append(Cond("port", op, _ipt_ports(value), field="dport", proto="th", text=shown))
        elif tok in ("--sport", "--source-port", "--sports", "--source-ports"):
            conds.append(Cond("port", op, _ipt_ports(value), field="sport", proto="th", text=shown))
        elif tok == "--ports":
            conds.append(Cond("other", op, value, text=shown))
        elif tok in ("--ctstate", "--state"):
            conds.append(Cond("ct", op, value.lower().split(","), field="state", text=shown))
        elif tok == "--dst-type":
            kind = "local" if value == "LOCAL" else "other"
            conds.append(Cond(kind, op, "local" if kind == "local" else value, text=shown))
        elif tok in ("-m", "--match", "--comment", "--reject-with", "--log-prefix", "--log-level"):
            pass  # a module load, or an option of the target or a comment: no condition
        elif tok in ("-g", "--goto"):
            verdict, target = "goto", value
        elif tok in ("-j", "--jump"):
            verdict, target = _ipt_target(value)
        elif tok == "--to-destination":
            target, to_port = split_host_port(value)
        elif tok == "--to-ports":
            to_port = _first_port(value)
        elif tok.startswith("-"):
            conds.append(Cond("other", op, value if takes_value else None, text=shown))
        negate = False
        i += 2 if takes_value else 1
    return Rule(key, position, None, tuple(conds), verdict, target, to_port, None, text)


# ----------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class Packet:
    """A new connection (a TCP SYN, a first UDP datagram) to ``port``."""

    proto: str  # tcp / udp
    port: int  # the destination port
    family: str  # ipv4 / ipv6
    local: bool  # from this machine (arrives on lo) or from the network
    daddr: str | None = None
    saddr: str | None = None
    state: str = "new"  # conntrack state: new, or established for a reply
    sport: int | None = None

    @property
    def label(self) -> str:
        fam = "IPv4" if self.family == "ipv4" else "IPv6"
        if self.state != "new":
            return f"{fam} replies to a client on this machine"
        where = "from this machine" if self.local else "from the network"
        return f"{fam} {where}" + (f" to {self.daddr}" if self.daddr and not self.local else "")


def _contains(rs: Ruleset, source: str, fam: str, table: str, right: Any, x: Any, kind: str) -> Tri:
    """Does ``right`` (a value, range, prefix, set or @set in nft JSON) contain ``x``?"""
    if isinstance(right, bool) or right is None:
        return None
    if isinstance(right, list):
        return _any(_contains(rs, source, fam, table, r, x, kind) for r in right)
    if isinstance(right, dict):
        if "set" in right:
            items = right["set"] if isinstance(right["set"], list) else [right["set"]]
            return _any(_contains(rs, source, fam, table, r, x, kind) for r in items)
        if "range" in right and isinstance(right["range"], list) and len(right["range"]) == 2:
            lo, hi = right["range"]
            if kind == "port":
                a, b = _port_value(lo), _port_value(hi)
                return None if a is None or b is None else a <= int(x) <= b
            if kind == "addr":
                try:
                    ip = ipaddress.ip_address(str(x))
                    return ipaddress.ip_address(str(lo)) <= ip <= ipaddress.ip_address(str(hi))  # type: ignore[operator]
                except (ValueError, TypeError):
                    return None
            return None
        if "prefix" in right and isinstance(right["prefix"], dict) and kind == "addr":
            try:
                net = ipaddress.ip_network(
                    f"{right['prefix'].get('addr')}/{right['prefix'].get('len')}", strict=False
                )
                return ipaddress.ip_address(str(x)) in net
            except (ValueError, TypeError):
                return None
        if "elem" in right and isinstance(right["elem"], dict):  # a set element with options
            return _contains(rs, source, fam, table, right["elem"].get("val"), x, kind)
        return None
    if isinstance(right, str) and right.startswith("@"):
        elems = rs.sets.get((source, fam, table, right[1:]))
        if elems is None:
            return None
        return _any(
            _contains(rs, source, fam, table, e[0] if isinstance(e, list) else e, x, kind) for e in elems
        )
    if kind == "port":
        value = _port_value(right)
        return None if value is None else value == int(x)
    if kind == "addr":
        try:
            if "/" in str(right):
                return ipaddress.ip_address(str(x)) in ipaddress.ip_network(str(right), strict=False)
            return ipaddress.ip_address(str(x)) == ipaddress.ip_address(str(right))
        except ValueError:
            return None
    if kind == "l4proto":
        if isinstance(right, int):
            return _PROTO_NUMBERS.get(str(x)) == right
        name = str(right).lower()
        if name in ("all", "0"):
            return True
        if name.isdigit():
            return _PROTO_NUMBERS.get(str(x)) == int(name)
        return name == str(x)
    if kind == "iif":
        return fnmatch.fnmatchcase(str(x), str(right))
    return str(right) == str(x)


def _port_value(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        if v.isdigit():
            return int(v)
        try:
            return socket.getservbyname(v)
        except OSError:
            return None
    return None


def _any(results: Iterable[Tri]) -> Tri:
    unknown = False
    for r in results:
        if r is True:
            return True
        if r is None:
            unknown = True
    return None if unknown else False


def _negate(value: Tri, op: str) -> Tri:
    return (None if value is None else not value) if op == "!=" else value


def eval_cond(rs: Ruleset, key: ChainKey, c: Cond, pkt: Packet) -> Tri:
    source, fam, table, _chain = key
    if (fam == "ip" and pkt.family != "ipv4") or (fam == "ip6" and pkt.family != "ipv6"):
        return False
    if c.kind == "port":
        if c.proto not in ("th", pkt.proto):
            return False  # "tcp dport" also means "this is TCP", whatever the operator
        if c.field != "dport" and pkt.sport is None:
            return None  # the client's port is not known
        port = pkt.port if c.field == "dport" else pkt.sport
        assert port is not None
        if c.op in ("<", ">", "<=", ">="):
            limit = _port_value(c.right)
            if limit is None:
                return None
            return {"<": port < limit, ">": port > limit, "<=": port <= limit}.get(c.op, port >= limit)
        return _negate(_contains(rs, source, fam, table, c.right, port, "port"), c.op)
    if c.kind == "l4proto":
        if c.family and c.family != pkt.family:
            return False
        return _negate(_contains(rs, source, fam, table, c.right, pkt.proto, "l4proto"), c.op)
    if c.kind == "iif":
        if pkt.local:
            return _negate(_contains(rs, source, fam, table, c.right, "lo", "iif"), c.op)
        if _contains(rs, source, fam, table, c.right, "lo", "iif") is True and c.op != "!=":
            return False  # "iif lo" never matches a packet from the network
        return None  # which interface the network packet arrives on is not known
    if c.kind == "addr":
        if c.family and c.family != pkt.family:
            return False
        addr = pkt.daddr if c.field == "daddr" else pkt.saddr
        if addr is None:
            return None
        return _negate(_contains(rs, source, fam, table, c.right, addr, "addr"), c.op)
    if c.kind == "family":
        return _negate(_contains(rs, source, fam, table, c.right, pkt.family, "name"), c.op)
    if c.kind == "ct":
        if c.field != "state":
            return None
        states = c.right if isinstance(c.right, list) else [c.right]
        hit = pkt.state in [str(s).lower() for s in states]
        if c.op == "in":  # a flag match: ct state & (new) != 0
            return hit
        return _negate(hit, c.op)
    if c.kind == "local":
        return _negate(True, c.op)  # the packet is to a local address
    return None


def eval_rule(rs: Ruleset, rule: Rule, pkt: Packet) -> Tri:
    """Do the rule's conditions hold for ``pkt``? (True / False / unknown)"""
    unknown = False
    for c in rule.conds:
        r = eval_cond(rs, rule.key, c, pkt)
        if r is False:
            return False
        if r is None:
            unknown = True
    if rule.vmap is not None:
        k = rule.vmap[0]
        if k.kind == "port" and k.proto not in ("th", pkt.proto):
            return False  # "tcp dport vmap ..." only sees TCP
        fam = rule.key[1]
        if (fam == "ip" and pkt.family != "ipv4") or (fam == "ip6" and pkt.family != "ipv6"):
            return False
    return None if unknown else True


def rule_verdict(rs: Ruleset, rule: Rule, pkt: Packet) -> tuple[str, str]:
    """(verdict, target) of ``rule`` for ``pkt``; a verdict map keyed by the destination port is
    looked up (``""`` when the port is not in it; ``map`` for a map on another key)."""
    if rule.vmap is None:
        return rule.verdict, rule.target
    keycond, data = rule.vmap
    if keycond.kind != "port" or keycond.field != "dport":
        return "map", ""
    source, fam, table, _ = rule.key
    elems = data if isinstance(data, list) else rs.sets.get((source, fam, table, str(data)[1:]))
    if elems is None:
        return "map", ""
    for e in elems:
        if isinstance(e, list) and len(e) == 2 and _contains(rs, source, fam, table, e[0], pkt.port, "port"):
            v = e[1]
            if isinstance(v, dict) and len(v) == 1:
                (name, body), *_ = v.items()
                tgt = str(body.get("target", "")) if isinstance(body, dict) else ""
                return str(name), tgt
    return "", ""


@dataclass
class Decision:
    """What the input path does with ``packet``: the verdict, the rule that gave it (None: a base
    chain's policy, or no chain at all), and the rules before it that may apply."""

    packet: Packet
    verdict: str  # accept / drop / reject
    rule: Rule | None
    chain: Chain | None
    maybe: list[tuple[Rule, str]] = field(default_factory=list)  # (rule, its verdict)
    chains_seen: int = 0

    @property
    def by_policy(self) -> bool:
        return self.rule is None and self.chain is not None


@dataclass
class _Walk:
    verdict: str
    rule: Rule


def _walk(rs: Ruleset, key: ChainKey, pkt: Packet, depth: int, maybe: list[tuple[Rule, str]]) -> _Walk | None:
    """Walk one chain for ``pkt``: the deciding rule, or None when the chain ends or returns (the
    caller goes on; for a base chain its policy decides). Rules that may apply (unknown
    conditions, or a verdict nft cannot show) are added to ``maybe``."""
    if depth > 16:
        return None
    for rule in rs.rules.get(key, []):
        hit = eval_rule(rs, rule, pkt)
        if hit is False:
            continue
        verdict, target = rule_verdict(rs, rule, pkt)
        if verdict in TERMINAL:
            if hit is True:
                return _Walk(verdict, rule)
            maybe.append((rule, verdict))
        elif verdict in ("xt", "queue", "map"):
            maybe.append((rule, f"iptables target {target}" if verdict == "xt" else verdict))
        elif verdict in ("jump", "goto"):
            sub = (key[0], key[1], key[2], target)
            if hit is True:
                found = _walk(rs, sub, pkt, depth + 1, maybe)
                if found is not None:
                    return found
                if verdict == "goto":
                    return None  # a goto does not come back here
            else:
                found = _walk(rs, sub, pkt, depth + 1, maybe)
                if found is not None and found.rule is not None:
                    maybe.append((found.rule, found.verdict))
        elif verdict == "return" and hit is True:
            return None
    return None


def decide(rs: Ruleset, pkt: Packet) -> Decision:
    """Walk every base chain on the input path (prerouting and input, type filter) for ``pkt``."""
    chains = [c for c in rs.base_chains() if _family_applies(c.key[1], pkt.family)]
    maybe: list[tuple[Rule, str]] = []
    last: Decision = Decision(pkt, "accept", None, None, maybe, len(chains))
    for chain in chains:
        walk = _walk(rs, chain.key, pkt, 0, maybe)
        if walk is None:
            verdict, rule = chain.policy or "accept", None
        else:
            verdict, rule = walk.verdict, walk.rule
        last = Decision(pkt, verdict, rule, chain, maybe, len(chains))
        if verdict != "accept":
            return last
    return last


def _family_applies(fam: str, pkt_family: str) -> bool:
    return fam == "inet" or (fam == "ip" and pkt_family == "ipv4") or (fam == "ip6" and pkt_family == "ipv6")


def reachable_chains(
    rs: Ruleset, hooks: Iterable[str] = INPUT_HOOKS, types: Iterable[str] = ("filter",)
) -> set[ChainKey]:
    """Base chains on ``hooks`` and every chain reached from them by jump, goto or a verdict map."""
    todo = [c.key for c in rs.base_chains(hooks, types)]
    seen: set[ChainKey] = set()
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        for rule in rs.rules.get(key, []):
            targets = [rule.target] if rule.verdict in ("jump", "goto") else []
            if rule.vmap is not None:
                data = rule.vmap[1]
                elems = (
                    data
                    if isinstance(data, list)
                    else rs.sets.get((key[0], key[1], key[2], str(data)[1:]), [])
                )
                for e in elems:
                    v = e[1] if isinstance(e, list) and len(e) == 2 else None
                    if isinstance(v, dict):
                        for name in ("jump", "goto"):
                            if isinstance(v.get(name), dict):
                                targets.append(str(v[name].get("target", "")))
            todo.extend((key[0], key[1], key[2], t) for t in targets if t)
    return seen


def _packet_family(key: ChainKey) -> str:
    return "ipv6" if key[1] == "ip6" else "ipv4"


def mentions_port(rs: Ruleset, rule: Rule, port: int, proto: str) -> Tri:
    """Does the rule name this destination port (a dport condition or a verdict map containing it)?
    None when it names a port set that cannot be read."""
    found: Tri = False
    source, fam, table, _ = rule.key
    for c in rule.conds:
        if c.kind == "port" and c.field == "dport" and c.proto in ("th", proto):
            hit = _contains(rs, source, fam, table, c.right, port, "port")
            if c.op in ("<", ">", "<=", ">="):
                hit = eval_cond(rs, rule.key, c, Packet(proto, port, _packet_family(rule.key), True))
            elif c.op == "!=":
                hit = False  # "every port but N" does not name N
            if hit is True:
                return True
            if hit is None:
                found = None
    if rule.vmap is not None:
        verdict, _ = rule_verdict(rs, rule, Packet(proto, port, _packet_family(rule.key), True))
        if verdict:
            return True
    return found


@dataclass(frozen=True, slots=True)
class PortRule:
    """A rule on the input path that names the port, with what it does for each packet kind."""

    rule: Rule
    verdict: str
    applies: tuple[tuple[str, Tri], ...]  # (packet label, does it match)


def port_rules(rs: Ruleset, port: int, proto: str, packets: Sequence[Packet]) -> list[PortRule]:
    """Rules on the input path (reachable from its base chains) that name ``port`` for ``proto``."""
    out: list[PortRule] = []
    for key in sorted(reachable_chains(rs), key=lambda k: _chain_order(rs, k)):
        for rule in rs.rules.get(key, []):
            if mentions_port(rs, rule, port, proto) is False:
                continue
            applies = tuple((p.label, eval_rule(rs, rule, p)) for p in packets)
            if packets and all(a is False for _, a in applies):
                continue
            verdict, target = rule_verdict(rs, rule, packets[0]) if packets else (rule.verdict, rule.target)
            shown = f"{verdict} {target}".strip() if verdict in ("jump", "goto", "xt") else verdict
            out.append(PortRule(rule, shown or "no verdict (counts or logs only)", applies))
    return out


def _chain_order(rs: Ruleset, key: ChainKey) -> tuple[int, int, ChainKey]:
    c = rs.chains.get(key)
    if c is not None and c.base:
        return (_HOOK_ORDER.get(c.hook, 9), c.prio, key)
    return (9, 0, key)


@dataclass(frozen=True, slots=True)
class NatRule:
    """A DNAT/redirect rule for the port: ``inbound`` (traffic *to* the port is sent elsewhere) or
    ``here`` (traffic to another port is sent to this port)."""

    rule: Rule
    direction: Literal["inbound", "here"]
    hook: str  # prerouting (from the network) / output (from this machine) / "" (a chain it jumps to)
    to_addr: str
    to_port: int | None


def nat_rules(rs: Ruleset, port: int, proto: str) -> list[NatRule]:
    out: list[NatRule] = []
    hooks: dict[ChainKey, str] = {}
    for c in rs.base_chains(("prerouting", "output"), ("nat",)):
        for key in reachable_chains_from(rs, c.key):
            hooks.setdefault(key, c.hook)
    for key, rules in sorted(rs.rules.items()):
        for rule in rules:
            if rule.verdict not in NAT_VERDICTS and not (
                rule.verdict == "xt" and rule.target in ("DNAT", "REDIRECT")
            ):
                continue
            named = mentions_port(rs, rule, port, proto)
            proto_ok = (
                eval_rule(rs, rule, Packet(proto, port, "ipv4", False)) is not False
                or eval_rule(rs, rule, Packet(proto, port, "ipv6", False)) is not False
            )
            if named and proto_ok:
                out.append(NatRule(rule, "inbound", hooks.get(key, ""), rule.target, rule.to_port))
            elif rule.to_port == port and _proto_compatible(rule, proto):
                out.append(NatRule(rule, "here", hooks.get(key, ""), rule.target, rule.to_port))
    return out


def _proto_compatible(rule: Rule, proto: str) -> bool:
    for c in rule.conds:
        if c.kind == "port" and c.proto not in ("th", proto):
            return False
        if (
            c.kind == "l4proto"
            and c.op == "=="
            and isinstance(c.right, str)
            and c.right not in (proto, "all")
        ):
            return False
    return True


def reachable_chains_from(rs: Ruleset, start: ChainKey) -> set[ChainKey]:
    todo, seen = [start], set()
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        todo.extend(
            (key[0], key[1], key[2], r.target) for r in rs.rules.get(key, []) if r.verdict in ("jump", "goto")
        )
    return seen


# ----------------------------------------------------------------------------- reading (read only)

Runner = Callable[[list[str]], tuple[int, str, str]]
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def _run(cmd: list[str]) -> tuple[int, str, str]:
    env = {"PATH": os.environ.get("PATH", "") + ":" + ":".join(SBIN_DIRS), "LC_ALL": "C"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=NFT_TIMEOUT, env=env, errors="replace")
    return proc.returncode, proc.stdout, proc.stderr


def find_tool(name: str) -> str | None:
    """The tool's path: PATH first, then the sbin directories (a user's PATH often lacks them)."""
    found = shutil.which(name)
    if found:
        return found
    for d in SBIN_DIRS:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    return None


@dataclass
class FirewallView:
    """What was read: the merged ruleset, which sources were read, and which not, with why."""

    ruleset: Ruleset
    inspected: list[str] = field(default_factory=list)
    not_inspected: list[str] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        return bool(self.inspected)


def _why_failed(tool: str, rc: int, err: str) -> str:
    first = err.strip().splitlines()[0] if err.strip() else f"exit status {rc}"
    low = err.lower()
    if "operation not permitted" in low or "permission denied" in low or (rc and os.geteuid() != 0):
        return f"{tool} needs root (CAP_NET_ADMIN): {first}"
    return f"{tool} failed: {first}"


def _legacy_tables_loaded() -> bool:
    for name in ("/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"):
        try:
            with open(name) as f:
                if f.read().strip():
                    return True
        except OSError:
            continue
    return False


def read_firewall(run: Runner = _run, which: Callable[[str], str | None] = find_tool) -> FirewallView:
    """Read the ruleset with nft (else iptables-save/ip6tables-save), never changing it."""
    view = FirewallView(Ruleset())
    nft = which("nft")
    if nft is not None:
        try:
            rc, out, err = run([nft, "-j", "list", "ruleset"])
        except (OSError, subprocess.TimeoutExpired) as exc:
            rc, out, err = 1, "", str(exc)
        if rc == 0:
            try:
                rs = parse_nft_json(out or '{"nftables": []}')
            except ValueError as exc:
                view.not_inspected.append(f"nftables: nft -j gave output that could not be read ({exc})")
            else:
                view.ruleset.merge(rs)
                view.inspected.append("nftables (nft -j list ruleset)")
                _fill_xt_rules(view, run, which)
        else:
            view.not_inspected.append(f"nftables: {_why_failed('nft', rc, err)}")
    else:
        for tool, fam in (("iptables-save", "ipv4"), ("ip6tables-save", "ipv6")):
            _read_iptables(view, tool, fam, run, which, missing="nft and {tool} are not installed")
    if _legacy_tables_loaded():
        for tool, fam in (("iptables-legacy-save", "ipv4"), ("ip6tables-legacy-save", "ipv6")):
            _read_iptables(view, tool, fam, run, which, missing="{tool} is not installed")
    return view


def _read_iptables(
    view: FirewallView, tool: str, fam: str, run: Runner, which: Callable[[str], str | None], missing: str
) -> Ruleset | None:
    path = which(tool)
    if path is None:
        view.not_inspected.append(f"{'IPv4' if fam == 'ipv4' else 'IPv6'} rules: {missing.format(tool=tool)}")
        return None
    try:
        rc, out, err = run([path])
    except (OSError, subprocess.TimeoutExpired) as exc:
        rc, out, err = 1, "", str(exc)
    if rc != 0:
        view.not_inspected.append(
            f"{'IPv4' if fam == 'ipv4' else 'IPv6'} rules: {_why_failed(tool, rc, err)}"
        )
        return None
    rs = parse_iptables_save(out, "ipv4" if fam == "ipv4" else "ipv6", source=tool)
    view.ruleset.merge(rs)
    view.inspected.append(f"{'IPv4' if fam == 'ipv4' else 'IPv6'} iptables rules ({tool})")
    return rs


def _fill_xt_rules(view: FirewallView, run: Runner, which: Callable[[str], str | None]) -> None:
    """Tables iptables-nft wrote with extensions nft -j cannot show: read them from iptables-save
    instead, keeping nft's handles where the rules line up one to one."""
    rs = view.ruleset
    tables = {
        (k[1], k[2])
        for k, rules in rs.rules.items()
        if k[0] == "nft" and any(r.needs_iptables for r in rules)
    }
    for fam, tool in (("ip", "iptables-save"), ("ip6", "ip6tables-save")):
        wanted = {t for f, t in tables if f == fam}
        if not wanted:
            continue
        path = which(tool)
        if path is None:
            view.not_inspected.append(f"iptables extensions in {fam} tables: {tool} is not installed")
            continue
        try:
            rc, out, err = run([path])
        except (OSError, subprocess.TimeoutExpired) as exc:
            rc, out, err = 1, "", str(exc)
        if rc != 0:
            view.not_inspected.append(f"iptables extensions in {fam} tables: {_why_failed(tool, rc, err)}")
            continue
        ipt = parse_iptables_save(out, "ipv4" if fam == "ip" else "ipv6", source=tool)
        replace_xt_tables(rs, ipt, fam, wanted)
        view.inspected.append(f"iptables extensions ({tool})")


def replace_xt_tables(rs: Ruleset, ipt: Ruleset, fam: str, tables: set[str]) -> None:
    """Replace the rules of ``tables`` (nft family ``fam``) by those read from iptables-save,
    with nft's handle on each when the chain has as many rules in both."""
    for key, ipt_rules in ipt.rules.items():
        _src, _fam, table, chain = key
        if table not in tables:
            continue
        nkey = ("nft", fam, table, chain)
        nft_rules = rs.rules.get(nkey, [])
        same = len(nft_rules) == len(ipt_rules)
        merged = [
            Rule(
                nkey,
                r.position,
                nft_rules[i].handle if same else None,
                r.conds,
                r.verdict,
                r.target,
                r.to_port,
                None,
                r.text,
            )
            for i, r in enumerate(ipt_rules)
        ]
        rs.rules[nkey] = merged
        if nkey not in rs.chains:
            rs.chains[nkey] = ipt.chains.get(key, Chain(nkey))
