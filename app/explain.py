"""``explain PORT``: why a port can or cannot be reached from here, and what to do about it.

One call, :func:`explain`, gathers what portscope knows about a port and returns an
:class:`Explanation`: one verdict line, findings (each ``info``, ``warning`` or ``problem``) and
suggested commands (shown, never run). The CLI and the dashboard panel only render it.

What is checked:

* who holds the port (every process sharing its sockets, the systemd unit or container where
  the cgroup names one) and the port's sockets in other states (connections, TIME_WAIT);
* where it is bound: loopback, all interfaces (each interface address that reaches it, public or
  private) or one address; IPv4, IPv6 or both. For ``::`` the socket's own ``IPV6_V6ONLY`` is read
  with a small sock_diag query (the kernel reports ``INET_DIAG_SKV6ONLY`` for listening and
  unconnected IPv6 sockets; /proc has no such field, and reading it with getsockopt would need the
  owner's file descriptor), with ``net.ipv6.bindv6only`` as the default it came from;
* ``localhost`` as clients resolve it (getaddrinfo order, /etc/hosts), against what is served;
* a live, bounded connect (TCP) or datagram (UDP) from here to each bound address;
* the firewall, read only (:mod:`app.firewall`);
* when nothing listens: whether the port binds now (0.0.0.0 and ::), the ephemeral range, TIME_WAIT
  sockets that block a bind, who held it last (a ``watch --log`` file or the dashboard's events),
  and the nearest free ports.

Every string from the system or a file is escaped with :func:`app.textsafe.printable` in the
``text`` of findings and in suggestions; ``detail`` holds raw values (JSON-escaped only).
"""

from __future__ import annotations

import shlex
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from app import exitcodes
from app.errors import UsageError
from app.exposure import ExposureMap
from app.firewall import Decision, FirewallView, NatRule, Packet, decide, nat_rules, port_rules, read_firewall
from app.model import TIME_WAIT, Family, Proto, Snapshot, Sock, format_endpoint
from app.portfacts import (
    LOOPBACK,
    Bind,
    IfAddr,
    Sighting,
    TestResult,
    address_scope,
    bind_error,
    connect_targets,
    hosts_lines,
    interface_addresses,
    interpret,
    nearest_free,
    p,
    read_history,
    read_sysctl,
    resolve_localhost,
    run_tests,
    sightings_from_events,
    test_ok,
)
from app.ports import ephemeral_range, in_ephemeral
from app.service import service_of
from app.v6only import v6only_flags

Severity = Literal["info", "warning", "problem"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "problem")
DEFAULT_TIMEOUT = 1.0
PAST = {"drop": "dropped", "reject": "rejected", "accept": "accepted"}


def q(word: str) -> str:
    """A name from the ruleset as one shell word in a suggested command (escaped, then quoted)."""
    return shlex.quote(p(word, 80))


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    severity: Severity
    text: str  # escaped, one line
    detail: dict[str, Any] = field(default_factory=dict)  # raw values

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "text": self.text, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Suggestion:
    command: str  # escaped; shown, never run
    why: str

    def as_dict(self) -> dict[str, str]:
        return {"command": self.command, "why": self.why}


@dataclass
class Explanation:
    port: int
    proto: str
    verdict: str
    listeners: list[Sock]
    snapshot: Snapshot
    findings: list[Finding]
    suggestions: list[Suggestion]
    reachable: bool  # something listens and a connect from here succeeded

    @property
    def exit_code(self) -> int:
        return exitcodes.OK if self.listeners and self.reachable else exitcodes.NEGATIVE

    def as_dict(self, exposure: ExposureMap | None = None) -> dict[str, Any]:
        from app.serialize import sock_dict

        exposure = exposure or ExposureMap()
        key_of = {id(s): k for k, s in self.snapshot.keyed().items()}
        return {
            "port": self.port,
            "proto": self.proto,
            "verdict": self.verdict,
            "listeners": [sock_dict(s, self.snapshot, exposure, key_of.get(id(s))) for s in self.listeners],
            "findings": [f.as_dict() for f in self.findings],
            "suggestions": [s.as_dict() for s in self.suggestions],
        }

    def lines(self) -> list[tuple[str, str]]:
        """(text, style) lines for a terminal or the panel: the verdict, the findings (problems
        first), then the suggested commands. Every text is escaped already."""
        out: list[tuple[str, str]] = [(self.verdict, "bold")]
        order = {"problem": 0, "warning": 1, "info": 2}
        for f in sorted(self.findings, key=lambda f: order[f.severity]):
            out.append((f"  {f.severity:<7}  {f.text}", _STYLE[f.severity]))
        if self.suggestions:
            out.append(("suggested commands (not run):", "bold"))
            for s in self.suggestions:
                out.append((f"  $ {s.command}", ""))
                out.append((f"      {s.why}", "dim"))
        return out


_STYLE = {"problem": "red", "warning": "yellow", "info": ""}


# ----------------------------------------------------------------------------- the explanation


Collect = Callable[[int], Snapshot]
ReadFirewall = Callable[[], FirewallView]


def _default_collect(port: int) -> Snapshot:
    from app.collector import default_collector

    return default_collector().collect(port=port)


def explain(
    port: int,
    proto: str = "tcp",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    history: str | None = None,
    events: Iterable[Any] | None = None,
    collect: Collect = _default_collect,
    firewall: ReadFirewall = read_firewall,
) -> Explanation:
    """Explain ``port``/``proto``. Blocking (at most a few seconds: each live test is bounded by
    ``timeout``, the firewall read by its own timeout); call it off a UI thread.

    ``history``: a ``watch --log`` NDJSON file; ``events``: the dashboard's events. UsageError
    for a bad port, protocol or history file."""
    if proto not in ("tcp", "udp"):
        raise UsageError(f"invalid protocol {p(proto, 20)!r}: expected tcp or udp")
    if not 1 <= port <= 65535:
        raise UsageError(f"invalid port {port}: must be from 1 to 65535")
    sightings: list[Sighting] = []
    history_info: tuple[str, int, int] | None = None
    if history is not None:
        found, read, skipped = read_history(history, port, proto)
        sightings.extend(found)
        history_info = (history, read, skipped)
    if events is not None:
        sightings.extend(sightings_from_events(events, port, proto))
    return _Builder(port, proto, timeout, collect, firewall, sightings, history_info).build()


def packets_text(packets: list[Packet]) -> str:
    """``from this machine (IPv4, IPv6) and from the network (IPv4)``."""
    parts = []
    for local, where in ((True, "from this machine"), (False, "from the network")):
        fams = [("IPv4" if x.family == "ipv4" else "IPv6") for x in packets if x.local is local]
        dests = sorted({x.daddr for x in packets if x.local is local and x.daddr and not local})
        if fams:
            to = f" to {', '.join(p(d, 60) for d in dests)}" if dests else ""
            parts.append(f"{where}{to} ({', '.join(dict.fromkeys(fams))})")
    return " and ".join(parts)


class _Builder:
    def __init__(
        self,
        port: int,
        proto: str,
        timeout: float,
        collect: Collect,
        firewall: ReadFirewall,
        sightings: list[Sighting],
        history_info: tuple[str, int, int] | None,
    ) -> None:
        self.port = port
        self.proto = proto
        self.timeout = timeout
        self.collect = collect
        self.firewall = firewall
        self.sightings = sightings
        self.history_info = history_info
        self.findings: list[Finding] = []
        self.suggestions: list[Suggestion] = []
        self.pp = f"{port}/{proto}"
        self.replies_blocked = ""  # "drop"/"reject" when the firewall stops replies to a client here
        self.firewall_unread = False
        self.addrs: list[IfAddr] = []

    # -- helpers
    def add(self, kind: str, severity: Severity, text: str, **detail: Any) -> None:
        self.findings.append(Finding(kind, severity, text, detail))

    def suggest(self, command: str, why: str) -> None:
        if all(s.command != command for s in self.suggestions):
            self.suggestions.append(Suggestion(command, why))

    @property
    def kill_command(self) -> str:
        return f"portscope kill {self.port}" + (" --proto udp" if self.proto == "udp" else "")

    # -- the whole run
    def build(self) -> Explanation:
        from app.killplan import owners_on_port

        snap = self.collect(self.port)
        proto = Proto(self.proto)
        socks = snap.on_port(self.port, proto)
        listeners = [s for s in socks if s.listening]
        holders = owners_on_port(snap, self.port, proto, shared=True)
        addrs = self.addrs = interface_addresses()
        bindv6only = read_sysctl("net.ipv6.bindv6only")
        v6 = v6only_flags(self.port, self.proto) if any(s.family is Family.IPV6 for s in listeners) else []
        binds = [interpret(s, v6, bindv6only) for s in listeners]

        self.holder_findings(snap, socks, listeners, holders)
        if binds:
            self.bind_findings(binds, addrs, bindv6only)
            self.localhost_findings(binds)
        results = (
            run_tests(connect_targets(binds, addrs), self.port, self.proto, self.timeout) if binds else []
        )
        self.test_findings(results)
        fw = self.firewall()
        self.firewall_unread = not fw.readable
        eph = snap.ephemeral if snap.ephemeral else ephemeral_range()
        decisions = self.firewall_findings(fw, binds, eph)
        free: list[int] = nearest_free(self.port, self.proto)
        bind_now: dict[str, str | None] = {}
        if not listeners:
            bind_now = self.nothing_listening(snap, socks, free)
        if self.sightings or self.history_info:
            self.history_findings(bool(listeners))
        if holders or listeners:
            self.in_use_advice(holders, free)
        reachable = bool(listeners) and any(test_ok(r, self.proto) for r in results)
        if self.proto == "udp" and reachable:
            # silence proves nothing for UDP: a firewall drop from here is silent too
            local = [d for d in decisions if d.packet.local]
            if local and all(d.verdict in ("drop", "reject") for d in local):
                reachable = False
        verdict = self.verdict(binds, results, decisions, socks, holders, bind_now, reachable)
        return Explanation(
            self.port, self.proto, verdict, listeners, snap, self.findings, self.suggestions, reachable
        )

    # -- who holds it
    def holder_findings(
        self, snap: Snapshot, socks: list[Sock], listeners: list[Sock], holders: list[Any]
    ) -> None:
        for t in holders:
            mgr = service_of(t.pid, t.create_time)
            user = f", user {p(t.user, 40)}" if t.user else ""
            by = f" ({mgr.label()})" if mgr else ""
            what = ", ".join(t.ports[:4]) + (f" and {len(t.ports) - 4} more" if len(t.ports) > 4 else "")
            self.add(
                "holder",
                "info",
                f"held by pid {t.pid} {p(t.name, 40) or '?'}{user}{by}: {p(t.command, 160)} [{p(what, 200)}]",
                pid=t.pid,
                name=t.name,
                user=t.user,
                cmdline=list(t.cmdline),
                sockets=list(t.ports),
                service=mgr.as_dict() if mgr else None,
            )
        hidden = [s for s in socks if s.pid is None and not s.ownerless]
        if hidden and not holders:
            from app.killplan import unseen_owner_hint

            self.add(
                "holder-hidden",
                "warning",
                f"{len(hidden)} socket{'s' if len(hidden) != 1 else ''} on {self.pp} "
                f"{'have' if len(hidden) != 1 else 'has'} no visible owner: {unseen_owner_hint()}",
                sockets=[s.endpoint_key for s in hidden],
            )
        others = Counter(s.status for s in socks if not s.listening)
        if others:
            parts = ", ".join(f"{n} {state}" for state, n in sorted(others.items()))
            self.add(
                "other-sockets",
                "info",
                f"also on port {self.port}: {parts}"
                + (
                    " (connections of the listener or clients using it as their local port)"
                    if listeners
                    else ""
                ),
                states=dict(others),
            )

    # -- where it is bound
    def bind_findings(self, binds: list[Bind], addrs: list[IfAddr], bindv6only: str | None) -> None:
        for b in binds:
            where = format_endpoint(b.sock.laddr.ip, self.port)
            if b.loopback:
                self.add(
                    "bind",
                    "info",
                    f"bound to {p(where)}: loopback only, reachable from this machine, not from the network",
                    address=b.sock.laddr.ip,
                    scope="loopback",
                )
            elif b.wildcard:
                fam_text = "IPv6" if b.family is Family.IPV6 else "IPv4"
                if b.family is Family.IPV6 and b.v6only is False:
                    fam_text = "IPv6 and IPv4"
                reach = [
                    a
                    for a in addrs
                    if (a.family is b.family or (a.family is Family.IPV4 and b.serves_v4)) and not a.loopback
                ]
                public = [a for a in reach if address_scope(a.address) == "public"]
                listing = ", ".join(
                    f"{p(a.address, 60)} ({p(a.interface, 20)}, {address_scope(a.address)})"
                    for a in reach[:12]
                )
                more = f" and {len(reach) - 12} more" if len(reach) > 12 else ""
                text = f"bound to {p(where)}: all {fam_text} interfaces"
                text += (
                    f"; reachable at {listing}{more}"
                    if reach
                    else "; no address besides loopback on this machine"
                )
                self.add(
                    "bind",
                    "warning" if public else "info",
                    text
                    + (
                        " (public: reachable from the internet unless a firewall blocks it)" if public else ""
                    ),
                    address=b.sock.laddr.ip,
                    scope="all interfaces",
                    reachable_at=[
                        {"interface": a.interface, "address": a.address, "scope": address_scope(a.address)}
                        for a in reach
                    ],
                )
            else:
                names = sorted({a.interface for a in addrs if a.address == b.address})
                scope = address_scope(b.address)
                on = f" on {p(', '.join(names), 60)}" if names else " (no interface has this address now)"
                self.add(
                    "bind",
                    "warning" if scope == "public" else "info",
                    f"bound to {p(where)} only{on}: {scope}; reachable through that address, not "
                    "through the others",
                    address=b.sock.laddr.ip,
                    scope=scope,
                    interfaces=names,
                )
        v4 = any(b.serves_v4 for b in binds)
        v6 = any(b.serves_v6 for b in binds)
        stack = "both IPv4 and IPv6" if v4 and v6 else "IPv4 only" if v4 else "IPv6 only"
        dual = [b for b in binds if b.family is Family.IPV6 and b.wildcard]
        notes = []
        for b in dual:
            if b.v6only is None:
                notes.append(":: with IPV6_V6ONLY unknown")
            else:
                notes.append(
                    f":: with IPV6_V6ONLY={int(b.v6only)} "
                    f"({'IPv6 only' if b.v6only else 'dual-stack: IPv4 too'}; "
                    f"{b.v6only_source})"
                )
        text = f"serves {stack}" + (f": {'; '.join(notes)}" if notes else "")
        if dual:
            text += f"; net.ipv6.bindv6only={bindv6only if bindv6only is not None else '?'}"
        self.add(
            "stack",
            "info",
            text,
            ipv4=v4,
            ipv6=v6,
            bindv6only=bindv6only,
            v6only=[
                {"address": b.sock.laddr.ip, "v6only": b.v6only, "source": b.v6only_source} for b in dual
            ],
        )

    # -- localhost
    def localhost_findings(self, binds: list[Bind]) -> None:
        order = resolve_localhost()
        lines = hosts_lines()
        shown = ", ".join(p(ip, 60) for _f, ip in order) or "nothing"
        hosts = "; /etc/hosts: " + " | ".join(p(line, 80) for line in lines[:4]) if lines else ""
        if not order:
            self.add("localhost", "warning", "localhost does not resolve here" + hosts, order=[], hosts=lines)
            return
        served = [(f, ip) for f, ip in order if any(b.serves(f, ip) for b in binds)]
        detail = {"order": [ip for _f, ip in order], "served": [ip for _f, ip in served], "hosts": lines}
        first_f, first = order[0]
        if served and served[0] == order[0]:
            if len(served) == len(order):
                self.add(
                    "localhost",
                    "info",
                    f"localhost resolves to {shown} (in that order): every address is served{hosts}",
                    **detail,
                )
            else:
                self.add(
                    "localhost",
                    "info",
                    f"localhost resolves to {shown}: the first, {p(first)}, is served{hosts}",
                    **detail,
                )
            return
        kind = "IPv4-only" if first_f is Family.IPV6 else "IPv6-only"
        other = p(first)
        if served:
            self.add(
                "localhost",
                "warning",
                f"localhost resolves to {p(first)} first ({shown}), but the listener is {kind}: "
                "clients that try only the first address get 'connection refused' (Node.js 17-19 "
                "without autoSelectFamily, Java with java.net.preferIPv6Addresses=true, programs that "
                "dial the first address they resolve); browsers and curl fall back. Fix: listen on "
                f"both (:: with IPV6_V6ONLY=0, or add {other}), or connect to {p(served[0][1])} "
                f"instead of localhost{hosts}",
                **detail,
            )
            target = format_endpoint(served[0][1], self.port)
            self.suggest(
                f"portscope test {target}" + (" --udp" if self.proto == "udp" else ""),
                f"connect to {target} instead of localhost",
            )
        else:
            self.add(
                "localhost",
                "warning",
                f"localhost resolves to {shown}, and none of these is served: connecting to "
                f"localhost:{self.port} fails{hosts}",
                **detail,
            )

    # -- the live test
    def test_findings(self, results: list[TestResult]) -> None:
        from app.outcome import ConnectState

        for r in results:
            where = format_endpoint(r.target.ip, self.port)
            what = "connect" if self.proto == "tcp" else "datagram"
            d = {"address": r.target.ip, "state": r.state, "latency_ms": r.latency_ms, "why": r.target.why}
            if r.state == ConnectState.OPEN:
                lat = f" in {r.latency_ms:.2f} ms" if r.latency_ms is not None else ""
                self.add("test", "info", f"{what} from here to {p(where)} ({r.target.why}): open{lat}", **d)
            elif self.proto == "udp" and r.state == ConnectState.OPEN_FILTERED:
                self.add(
                    "test",
                    "info",
                    f"datagram from here to {p(where)} ({r.target.why}): not refused, no reply "
                    "(normal for a silent UDP server; a firewall drop looks the same)",
                    **d,
                )
            else:
                why = {
                    str(ConnectState.CLOSED): "refused: nothing accepts it there, or the firewall rejects it",
                    str(ConnectState.FILTERED): f"timed out after {self.timeout:g} s: something drops it",
                    str(ConnectState.UNREACHABLE): "unreachable",
                }.get(str(r.state), r.error or str(r.state))
                self.add("test", "problem", f"{what} from here to {p(where)} ({r.target.why}): {why}", **d)

    # -- the firewall
    def packets(self, binds: list[Bind]) -> list[Packet]:
        """The new connections to check: per family served (both when nothing listens), one from
        this machine (to loopback, or the one address bound) and, unless only loopback is bound,
        one from the network."""
        out: list[Packet] = []
        for fam in (Family.IPV4, Family.IPV6):
            mine = [b for b in binds if b.family is fam or (fam is Family.IPV4 and b.serves_v4)]
            if binds and not mine:
                continue
            specific = [b.address for b in mine if not b.wildcard and b.family is fam]
            local_to = (
                LOOPBACK[fam] if not mine or any(b.wildcard or b.loopback for b in mine) else specific[0]
            )
            out.append(Packet(self.proto, self.port, fam.value, True, local_to, local_to))
            if not mine or any(not b.loopback for b in mine):
                one = [a for a in specific if address_scope(a) != "loopback"]
                daddr = one[0] if len(one) == 1 and not any(b.wildcard for b in mine) else None
                out.append(Packet(self.proto, self.port, fam.value, False, daddr, None))
        return out

    def reply_packet(self, pkt: Packet, eph: tuple[int, int]) -> Packet:
        """The server's reply to a client on this machine: it comes back in on lo, to the client's
        ephemeral port, in conntrack state established."""
        client = (eph[0] + eph[1]) // 2
        return Packet(self.proto, client, pkt.family, True, pkt.saddr, pkt.daddr, "established", self.port)

    def firewall_findings(self, fw: FirewallView, binds: list[Bind], eph: tuple[int, int]) -> list[Decision]:
        for why in fw.not_inspected:
            self.add("firewall", "warning", f"firewall not inspected: {p(why, 240)}", reason=why)
        if not fw.readable:
            return []
        rs = fw.ruleset
        for note in rs.notes:
            self.add("firewall", "info", p(note), note=note)
        chains = rs.base_chains()
        if not chains:
            self.add(
                "firewall",
                "info",
                f"firewall: no filter chain on the input path (read: {p(', '.join(fw.inspected))}): "
                "nothing filters incoming traffic",
                inspected=fw.inspected,
            )
        for c in chains:
            self.add(
                "firewall-policy",
                "info" if c.policy != "drop" else "warning",
                f"base chain {p(c.where)} (hook {c.hook}, priority {c.prio}): policy {c.policy or 'accept'}",
                source=c.key[0],
                family=c.key[1],
                table=c.key[2],
                chain=c.key[3],
                hook=c.hook,
                priority=c.prio,
                policy=c.policy or "accept",
            )
        packets = self.packets(binds)
        for pr in port_rules(rs, self.port, self.proto, packets):
            rule = pr.rule
            applies = [label for label, hit in pr.applies if hit is True]
            maybe = [label for label, hit in pr.applies if hit is None]
            blocks = pr.verdict in ("drop", "reject")
            sev: Severity = "problem" if blocks and applies else "warning" if blocks else "info"
            scope = "; ".join(
                x
                for x in (
                    ("matches " + ", ".join(applies)) if applies else "",
                    ("may match " + ", ".join(maybe)) if maybe else "",
                )
                if x
            )
            self.add(
                "firewall-rule",
                sev,
                f"rule {p(rule.where)}: {p(rule.text, 200)} -> {p(pr.verdict)}"
                + (f" ({scope})" if scope else ""),
                source=rule.key[0],
                family=rule.key[1],
                table=rule.key[2],
                chain=rule.key[3],
                handle=rule.handle,
                position=rule.position,
                rule=rule.text,
                verdict=pr.verdict,
                matches=applies,
                may_match=maybe,
            )
        for n in nat_rules(rs, self.port, self.proto):
            self.nat_finding(n)
        if not chains:
            return []
        decisions = [decide(rs, pk) for pk in packets]
        self.decision_findings(decisions)
        if binds:
            replies = [decide(rs, self.reply_packet(d.packet, eph)) for d in decisions if d.packet.local]
            local = [d for d in decisions if d.packet.local]
            self.reply_findings([r for r, d in zip(replies, local, strict=True) if d.verdict == "accept"])
        return decisions

    def decision_findings(self, decisions: list[Decision]) -> None:
        """One finding per outcome (the same verdict by the same rule or policy), naming the
        connections it applies to."""
        groups: dict[tuple[str, str], list[Decision]] = {}
        for d in decisions:
            groups.setdefault((d.verdict, self.decided_by(d)), []).append(d)
        for (verdict, by), group in groups.items():
            blocked = verdict in ("drop", "reject")
            others = [(r, v) for d in group for r, v in d.maybe if v != verdict]
            others = list({r.where: (r, v) for r, v in others}.values())
            unsure = (
                f"; unless {', '.join(p(r.where) + ' (' + p(v) + ')' for r, v in others[:3])} applies"
                if others
                else ""
            )
            severity: Severity = "problem" if blocked else "warning" if others else "info"
            first = group[0]
            self.add(
                "firewall-verdict",
                severity,
                f"firewall: new {self.proto} connections {packets_text([d.packet for d in group])}: "
                f"{verdict} {by}{unsure}",
                packets=[
                    {"family": d.packet.family, "local": d.packet.local, "daddr": d.packet.daddr}
                    for d in group
                ],
                verdict=verdict,
                rule=first.rule.where if first.rule else None,
                policy_of=first.chain.where if first.rule is None and first.chain else None,
                may_apply=[r.where for r, _v in others],
            )
            if blocked and first.rule is not None:
                self.firewall_suggestions(first)

    @staticmethod
    def decided_by(d: Decision) -> str:
        if d.rule is not None:
            return f"by rule {p(d.rule.where)} ({p(d.rule.text, 120)})"
        if d.chain is not None:
            return f"by the policy of {p(d.chain.where)}"
        return "(no chain filters it)"

    def reply_findings(self, replies: list[Decision]) -> None:
        """A connection from here needs its replies let back in too: a policy-drop input chain
        without ``ct state established,related accept`` drops the SYN-ACK (or the ICMP error)."""
        blocked = [d for d in replies if d.verdict in ("drop", "reject")]
        if not blocked:
            return
        d = blocked[0]
        self.replies_blocked = d.verdict
        fams = " and ".join(sorted({("IPv4" if x.packet.family == "ipv4" else "IPv6") for x in blocked}))
        self.add(
            "firewall-replies",
            "problem",
            f"firewall: the replies to a connection from this machine ({fams}) are {PAST[d.verdict]} "
            f"{self.decided_by(d)}: no rule accepts established traffic, so a client here never "
            "sees the answer",
            verdict=d.verdict,
            rule=d.rule.where if d.rule else None,
            policy_of=d.chain.where if d.rule is None and d.chain else None,
        )
        if d.chain is not None and d.chain.key[0] == "nft":
            fam, table, chain = d.chain.key[1:]
            self.suggest(
                f"nft insert rule {q(fam)} {q(table)} {q(chain)} ct state established,related accept",
                "lets replies to connections in (the usual first rule of a policy-drop chain)",
            )

    def firewall_suggestions(self, d: Decision) -> None:
        assert d.rule is not None
        source, family, table, chain = d.rule.key
        if source == "nft":
            self.suggest(
                f"nft -a list chain {q(family)} {q(table)} {q(chain)}",
                f"shows the rule that {d.verdict}s it ({p(d.rule.where)})",
            )
            base = d.chain.key if d.chain else d.rule.key
            self.suggest(
                f"nft insert rule {q(base[1])} {q(base[2])} {q(base[3])} "
                f"{self.proto} dport {self.port} accept",
                "accepts it ahead of that rule (if a firewall manager owns the ruleset, use it instead)",
            )
        else:
            tool = "ip6tables" if family == "ip6" else "iptables"
            self.suggest(
                f"{tool} -t {q(table)} -L {q(chain)} -n --line-numbers",
                f"shows the rule that {d.verdict}s it",
            )

    def nat_finding(self, n: NatRule) -> None:
        rule = n.rule
        dest = (
            format_endpoint(n.to_addr, n.to_port)
            if n.to_addr and n.to_port
            else (n.to_addr or (f"port {n.to_port}" if n.to_port else "?"))
        )
        hook = {"prerouting": "from the network", "output": "from this machine"}.get(
            n.hook, "(a chain reached by a jump)"
        )
        if n.direction == "inbound":
            text = (
                f"DNAT: {self.proto} to port {self.port} {hook} is sent to {p(dest)} by {p(rule.where)} "
                f"({p(rule.text, 160)}): a listener here does not receive that traffic (port publishing)"
            )
        else:
            text = (
                f"{self.proto} traffic {hook} is redirected to this port by {p(rule.where)} "
                f"({p(rule.text, 160)})"
            )
        self.add(
            "firewall-dnat",
            "warning" if n.direction == "inbound" else "info",
            text,
            direction=n.direction,
            hook=n.hook,
            to_address=n.to_addr or None,
            to_port=n.to_port,
            rule=rule.text,
            where=rule.where,
        )

    # -- nothing listens
    def nothing_listening(self, snap: Snapshot, socks: list[Sock], free: list[int]) -> dict[str, str | None]:
        v4 = bind_error("0.0.0.0", self.port, self.proto)
        v6 = bind_error("::", self.port, self.proto)
        result = {"0.0.0.0": v4, "::": v6}
        if v4 is None and v6 is None:
            self.add(
                "bindable",
                "info",
                f"{self.pp} binds now on 0.0.0.0 and :: (tested, released at once)",
                results=result,
            )
        else:
            parts = [f"{host}: {why or 'binds'}" for host, why in result.items()]
            sev: Severity = "problem" if v4 is not None else "warning"
            self.add("bindable", sev, f"bind test for {self.pp}: " + "; ".join(parts), results=result)
        eph = snap.ephemeral if snap.ephemeral else ephemeral_range()
        if in_ephemeral(self.port, eph):
            self.add(
                "ephemeral",
                "warning",
                f"port {self.port} is inside the ephemeral range {eph[0]}-{eph[1]} "
                "(net.ipv4.ip_local_port_range): the kernel may give it to an outgoing connection at "
                "any time; pick a port outside it, or reserve it",
                range=list(eph),
            )
            self.suggest(
                f"sysctl -w net.ipv4.ip_local_reserved_ports={self.port}",
                "keeps outgoing connections off this port (this replaces the list; add it to "
                "/etc/sysctl.d to keep it)",
            )
        else:
            self.add(
                "ephemeral",
                "info",
                f"port {self.port} is outside the ephemeral range {eph[0]}-{eph[1]}",
                range=list(eph),
            )
        tw = [s for s in socks if s.status == TIME_WAIT]
        if tw and self.proto == "tcp":
            plain = v4
            reuse = bind_error("0.0.0.0", self.port, self.proto, reuse=True)
            if plain is not None and reuse is None:
                how = (
                    "a bind without SO_REUSEADDR fails now (tested: address already in use); "
                    "with SO_REUSEADDR it binds"
                )
            elif plain is not None:
                how = (
                    "a bind fails now even with SO_REUSEADDR (the old socket did not set it): "
                    "wait until they expire (60 s)"
                )
            else:
                how = "a bind works now"
            self.add(
                "time-wait",
                "warning" if plain is not None else "info",
                f"{len(tw)} TIME_WAIT socket{'s' if len(tw) != 1 else ''} on port {self.port} "
                f"(recently closed connections, kept up to 60 s): {how}",
                count=len(tw),
                bind_without_reuseaddr=plain,
                bind_with_reuseaddr=reuse,
            )
            if plain is not None and reuse is None:
                self.suggest(
                    "(in the server) setsockopt(SO_REUSEADDR, 1) before bind()",
                    "most servers do; it lets a restart bind through TIME_WAIT",
                )
        if free:
            self.add(
                "free-ports",
                "info",
                f"nearest free {self.proto} ports: {', '.join(str(q) for q in free)} "
                "(bind-tested on 0.0.0.0 and ::)",
                ports=free,
            )
        return result

    def history_findings(self, listening: bool) -> None:
        if self.history_info is not None:
            path, read, skipped = self.history_info
            if skipped:
                self.add(
                    "history",
                    "warning",
                    f"{p(path, 80)}: {skipped} line{'s' if skipped != 1 else ''} could not be read "
                    "(not watch --log events)",
                    file=path,
                    skipped=skipped,
                )
        with_owner = [s for s in self.sightings if s.pid is not None or s.name]
        last = with_owner[-1] if with_owner else (self.sightings[-1] if self.sightings else None)
        if last is None:
            if self.history_info is not None:
                path, read, _ = self.history_info
                self.add(
                    "history",
                    "info",
                    f"{p(path, 80)}: no event for {self.pp} in {read} line{'s' if read != 1 else ''}",
                    file=path,
                    lines=read,
                )
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last.time))
        who = (
            f"pid {last.pid} {p(last.name, 40) or '?'}"
            if last.pid is not None
            else (p(last.name, 40) or "an owner not visible")
        )
        user = f" (user {p(last.user, 40)})" if last.user else ""
        cmd = f": {p(last.command, 120)}" if last.command else ""
        held = "holds" if listening and last.event != "closed" else "held"
        self.add(
            "history",
            "info",
            f"last seen {stamp} ({last.event}, {p(last.source, 80)}): {who}{user} {held} "
            f"{p(last.local)} {last.state}{cmd}",
            time=last.time,
            event=last.event,
            pid=last.pid,
            name=last.name,
            user=last.user,
            local=last.local,
            source=last.source,
            events=len(self.sightings),
        )

    # -- address already in use
    def in_use_advice(self, holders: list[Any], free: list[int]) -> None:
        instead = f"; or move to port {free[0]} (free now)" if free else ""
        if holders:
            first = holders[0]
            mgr = service_of(first.pid, first.create_time)
            stop = mgr.stop_command() if mgr else None
            if first.pid == 1:
                how = "pid 1 holds it: a socket-activated unit (find it with 'systemctl list-sockets')"
                self.suggest("systemctl list-sockets", f"finds the .socket unit that listens on {self.port}")
            elif mgr and stop:
                how = f"stop {mgr.label()} ('{stop}') or '{self.kill_command}'"
                self.suggest(
                    stop,
                    f"stops {mgr.label()}, which holds {self.pp} (a kill alone may be restarted)",
                )
                self.suggest(
                    self.kill_command,
                    f"signals every process holding {self.pp}, after showing them and asking",
                )
            else:
                how = f"'{self.kill_command}' frees it (shows every holder and asks first)"
                self.suggest(
                    self.kill_command,
                    f"signals every process holding {self.pp}, after showing them and asking",
                )
            self.add(
                "in-use",
                "info",
                f"'address already in use' for {self.pp}: pid {first.pid} {p(first.name, 40) or '?'} "
                f"holds it; {how}{instead}",
                holder=first.pid,
                free_ports=free,
            )
        else:
            self.add(
                "in-use",
                "info",
                f"'address already in use' for {self.pp}: its holder is not visible{instead}",
                holder=None,
                free_ports=free,
            )

    # -- the verdict
    def verdict(
        self,
        binds: list[Bind],
        results: list[TestResult],
        decisions: list[Decision],
        socks: list[Sock],
        holders: list[Any],
        bind_now: dict[str, str | None],
        reachable: bool,
    ) -> str:
        pp = self.pp
        if not binds:
            v4 = bind_now.get("0.0.0.0")
            owned = [s for s in socks if s.pid is not None and not s.listening]
            if owned and v4 is not None:
                t = holders[0] if holders else None
                who = f"pid {t.pid} {p(t.name, 40)}" if t else "a process"
                return f"{pp}: nothing listens, but {who} uses it for a connection, so a bind fails: {p(v4)}"
            if v4 is None:
                note = " (inside the ephemeral range)" if in_ephemeral(self.port) else ""
                return f"{pp}: nothing listens; the port is free to bind{note}"
            if any(s.status == TIME_WAIT for s in socks):
                return f"{pp}: nothing listens, but TIME_WAIT sockets make a plain bind fail: {p(v4)}"
            return f"{pp}: nothing listens, but a bind fails: {p(v4)}"
        scope = self.scope(binds)
        net = [d for d in decisions if not d.packet.local]
        local = [d for d in decisions if d.packet.local]
        beyond = any(not b.loopback for b in binds)
        if not reachable:
            states = sorted({r.state for r in results}) or ["not tested"]
            fw = [d for d in local if d.verdict in ("drop", "reject")]
            why = f" (the firewall {fw[0].verdict}s it)" if fw else ""
            if not fw and self.replies_blocked:
                why = f" (the firewall {self.replies_blocked}s the replies)"
            return f"{pp}: listening on {scope}, but a connection from here fails: {', '.join(states)}{why}"
        reach = [
            a
            for a in self.addrs
            if a.up
            and not a.loopback
            and any(
                a.family is b.family or (a.family is Family.IPV4 and b.serves_v4) for b in binds if b.wildcard
            )
        ]
        if beyond and all(b.wildcard for b in binds if not b.loopback) and not reach:
            return (
                f"{pp}: open on {scope}, but this machine has no address besides loopback: "
                "reachable from this machine only"
            )
        if beyond and net and all(d.verdict in ("drop", "reject") and not d.maybe for d in net):
            return (
                f"{pp}: listening on {scope}, but the firewall {net[0].verdict}s it from the "
                "network: reachable from this machine only"
            )
        if beyond:
            partly = [d for d in net if d.verdict in ("drop", "reject")]
            tail = (
                f"; the firewall {partly[0].verdict}s some of it ({partly[0].packet.label})" if partly else ""
            )
            if self.firewall_unread:
                tail += " (the firewall could not be inspected)"
            return f"{pp}: open on {scope}: reachable from this machine and from the network{tail}"
        return f"{pp}: open on loopback only: reachable from this machine, not from the network"

    @staticmethod
    def scope(binds: list[Bind]) -> str:
        if all(b.loopback for b in binds):
            return "loopback only"
        if any(b.wildcard for b in binds):
            return "all interfaces"
        addrs = list(dict.fromkeys(b.address for b in binds))
        return ", ".join(p(a, 60) for a in addrs[:3]) + (" only" if len(addrs) == 1 else "")
