"""The fast output paths of `list`/`who` produce exactly the text of the plain ones.

``iter_snapshot_json`` must equal ``json.dumps(snapshot_dict(...), indent=2)`` byte for byte, the
owner-cached table rows must equal uncached ones, and ``to_csv`` must equal ``csv.writer`` over
``csv_cell`` of each cell: on a live snapshot holding real children with hostile command lines,
and on generated snapshots with odd strings, missing owners and every socket count around the
chunk size."""

from __future__ import annotations

import csv
import io
import json
import socket
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cli.table import (
    COMMAND_LIMIT,
    CSV_COLUMNS,
    NAME_LIMIT,
    USER_LIMIT,
    Layout,
    csv_row,
    grouped_socket_table,
    heading,
    iter_csv,
    render,
    socket_row,
    socket_rows,
    socket_table,
    to_csv,
)
from app.collector import default_collector, filter_kind
from app.exposure import ExposureMap
from app.model import Endpoint, Family, ProcessInfo, Proto, Snapshot, Sock, row_keys
from app.owners import OwnerFacts
from app.serialize import iter_snapshot_json, row_keys_of, snapshot_dict, sock_dict
from app.textsafe import csv_cell, printable
from tests.helpers import Child, kill_quietly, spawn_listener_with_args

# "\udcff" is an invalid byte (0xff) as Python decodes argv; a lone "\ud800" only in generated data
HOSTILE = ["a\nb", 'quo"te', "back\\slash", "\x1b[31mred", "=1+1", "é☃𝄞", "\udcffx", "", " "]


def plain_json(snap: Snapshot, socks: list[Sock], emap: ExposureMap, **extra: Any) -> str:
    return json.dumps(snapshot_dict(snap, socks, emap, **extra), indent=2)


def fast_json(snap: Snapshot, socks: list[Sock], emap: ExposureMap, **extra: Any) -> str:
    return "".join(iter_snapshot_json(snap, socks, emap, **extra))


def plain_csv(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([csv_cell(c) for c in row])
    return buf.getvalue()


def plain_row(sock: Sock, snap: Snapshot, emap: ExposureMap, facts: OwnerFacts | None = None) -> list[str]:
    """The table row without any caching (the reference): the owner's cells escaped per row, the
    "+N" of other holders, a forwarder's label, the service from ``facts``."""
    owner = snap.owner(sock)
    if owner is not None:
        name = printable(owner.name, NAME_LIMIT) or "-"
    elif sock.pid is None and not sock.ownerless:
        name = "?"
    else:
        name = "-"
    holders = snap.holders_of(sock) if sock.inode in snap.holders else ()
    if len(holders) > 1:
        name += f" +{len(holders) - 1}"
    svc = fwd = None
    if facts is not None and sock.pid is not None:
        fwd, svc = facts.forward(snap, sock), facts.service(snap, sock)
    if fwd is not None:
        name += f" ({fwd.label(80)})"
    service = ""
    if svc is not None:
        service = printable(svc.unit if svc.kind == "socket" else svc.name, 40)
    return [
        sock.proto.value + ("6" if sock.family is Family.IPV6 else ""),
        str(sock.laddr),
        str(sock.raddr) if sock.raddr else "*",
        sock.status,
        emap.classify(sock.laddr.ip).label,
        str(sock.pid) if sock.pid is not None else "-",
        name,
        printable(owner.username, USER_LIMIT) if owner else "",
        service,
        "ephemeral" if sock.listening and snap.in_ephemeral(sock) else "",
        printable(owner.command, COMMAND_LIMIT) if owner else "",
    ]


def plain_grouped(socks: list[Sock], snap: Snapshot, emap: ExposureMap, layout: Layout) -> list[str]:
    """The grouped table as it was built: sorted by range, a heading before each range's rows."""
    from app.cli.table import _ORDER

    socks = sorted(socks, key=lambda s: _ORDER[s.range])
    rows = [plain_row(s, snap, emap, layout.facts) for s in socks]
    header, *body = render(rows, layout.headers())
    out = [header]
    current = None
    for sock, line in zip(socks, body, strict=True):
        if sock.range is not current:
            current = sock.range
            n = sum(1 for s in socks if s.range is current)
            out.append(heading(f"── {current.heading} ({n} socket{'s' if n != 1 else ''})", False))
        out.append(line)
    return out


@pytest.fixture(scope="module")
def hostile_children() -> Iterator[list[Child]]:
    children: list[Child] = []
    try:
        children.append(spawn_listener_with_args(HOSTILE[:4], name="ps-fast\tjson"))
        children.append(spawn_listener_with_args(HOSTILE[4:], proto="udp", name="ps-fast-udp"))
        yield children
    finally:
        for child in children:
            kill_quietly(child.pid)
            child.proc.wait(timeout=10)


def test_live_snapshot_same_text(hostile_children: list[Child]) -> None:
    with ExitStack() as stack:  # connections (with this process as owner) beside the listeners
        for child in hostile_children[:1]:
            for _ in range(3):
                c = stack.enter_context(socket.create_connection(("127.0.0.1", child.port)))
                assert c.fileno() >= 0
        snap = default_collector().collect()
        emap = ExposureMap()
        socks = filter_kind(snap, "all")
        pids = {s.pid for s in socks}
        assert all(c.pid in pids for c in hostile_children)
        text = fast_json(snap, socks, emap)
        assert text == plain_json(snap, socks, emap)
        mine = [s for s in json.loads(text)["sockets"] if s["pid"] == hostile_children[0].pid]
        assert mine and mine[0]["process"]["cmdline"][-4:] == HOSTILE[:4]
        on_port = snap.on_port(hostile_children[0].port)
        assert fast_json(snap, on_port, emap, port=hostile_children[0].port) == plain_json(
            snap, on_port, emap, port=hostile_children[0].port
        )
        assert fast_json(snap, [], emap) == plain_json(snap, [], emap)

        cached: dict[int | None, tuple[str, str, str]] = {}
        assert [socket_row(s, snap, emap, cached) for s in socks] == [plain_row(s, snap, emap) for s in socks]
        assert socket_rows(socks, snap, emap) == [plain_row(s, snap, emap) for s in socks]
        facts = OwnerFacts(ask_engines=False)
        with_facts = Layout(facts=facts)
        assert socket_rows(socks, snap, emap, with_facts) == [plain_row(s, snap, emap, facts) for s in socks]
        assert grouped_socket_table(socks, snap, emap, with_facts) == plain_grouped(
            socks, snap, emap, with_facts
        )
        rows = [csv_row(s, snap, emap) for s in socks]
        assert to_csv(rows, CSV_COLUMNS) == plain_csv(rows, CSV_COLUMNS)


def test_sock_template_follows_sock_dict() -> None:
    from app.serialize import _SOCK_KEYS

    sock = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 1), None, "LISTEN", None)
    snap = Snapshot(taken_at=1.0, sockets=(sock,), processes={})
    assert tuple(sock_dict(sock, snap, ExposureMap())) == _SOCK_KEYS


texts = st.text(max_size=6) | st.sampled_from([*HOSTILE, "\ud800"])
ips4 = st.sampled_from(["127.0.0.1", "0.0.0.0", "127.0.0.53", "192.0.2.7"])
ips6 = st.sampled_from(["::1", "::", "fe80::1%lo", "::ffff:127.0.0.1"])
states = st.sampled_from(["LISTEN", "ESTABLISHED", "TIME_WAIT", "NONE", "CONNECTED", "SYN_RECV"])


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[Snapshot, list[Sock]]:
    pids = draw(st.lists(st.integers(1, 2**22), max_size=4, unique=True))
    procs = {
        pid: ProcessInfo(
            pid,
            draw(st.none() | st.integers(0, 2**22)),
            draw(texts),
            draw(texts),
            tuple(draw(st.lists(texts, max_size=3))),
            draw(texts),
            draw(st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=2e9)),
        )
        for pid in pids
    }
    socks: list[Sock] = []
    for _ in range(draw(st.integers(0, 12))):
        v6 = draw(st.booleans())
        ip = draw(ips6 if v6 else ips4)
        remote = draw(st.none() | st.builds(Endpoint, ips6 if v6 else ips4, st.integers(0, 65535)))
        pid = draw(st.none() | st.sampled_from([*pids, 99_999_999]) if pids else st.none())
        socks.append(
            Sock(
                draw(st.sampled_from(list(Proto))),
                Family.IPV6 if v6 else Family.IPV4,
                Endpoint(ip, draw(st.integers(0, 65535))),
                remote,
                draw(states),
                pid,
                draw(st.integers(0, 2**32)),
            )
        )
    # some sockets shared by several processes, and stats as the netlink reader keeps them: queues
    # only, or queues and tcp_info (of any length: None where the kernel's struct ended)
    holders = {
        s.inode: (s.pid, *draw(st.lists(st.sampled_from(pids), max_size=3)))
        for s in socks
        if s.inode and s.pid is not None and draw(st.booleans())
    }
    counts = st.none() | st.integers(0, 2**64 - 1)
    stats = {
        s.inode: (
            draw(st.integers(0, 4096)),
            draw(st.integers(0, 4096)),
            s.inode,
            *(draw(st.sampled_from([(), tuple(draw(counts) for _ in range(12))]))),
        )
        for s in socks
        if s.inode and draw(st.booleans())
    }
    snap = Snapshot(
        taken_at=draw(st.floats(min_value=0, max_value=2e9)),
        sockets=tuple(socks),
        processes=procs,
        hidden_owners=draw(st.integers(0, 3)),
        warnings=tuple(draw(st.lists(texts, max_size=2))),
        ephemeral=(32768, 60999),
        source=draw(st.sampled_from(["netlink", "psutil"])),
        privileged=draw(st.booleans()),
        holders=holders,
        stats=stats if draw(st.booleans()) else None,
    )
    subset = draw(st.lists(st.sampled_from(socks), max_size=len(socks))) if socks else []
    return snap, draw(st.sampled_from([list(socks), subset]))


EMAP = ExposureMap()


@settings(max_examples=150, deadline=None)
@given(snapshots(), st.none() | st.integers(0, 65535))
def test_generated_snapshots_same_text(case: tuple[Snapshot, list[Sock]], port: int | None) -> None:
    snap, socks = case
    extra = {} if port is None else {"port": port}
    assert fast_json(snap, socks, EMAP, **extra) == plain_json(snap, socks, EMAP, **extra)
    cached: dict[int | None, tuple[str, str, str]] = {}
    assert [socket_row(s, snap, EMAP, cached) for s in socks] == [plain_row(s, snap, EMAP) for s in socks]
    assert [socket_row(s, snap, EMAP) for s in socks] == [plain_row(s, snap, EMAP) for s in socks]
    assert socket_rows(socks, snap, EMAP) == [plain_row(s, snap, EMAP) for s in socks]
    assert grouped_socket_table(socks, snap, EMAP) == plain_grouped(socks, snap, EMAP, Layout())
    rows = [csv_row(s, snap, EMAP) for s in socks]
    assert to_csv(rows, CSV_COLUMNS) == plain_csv(rows, CSV_COLUMNS)
    # --stats: the same text as json.dumps, with tcp_info and queue on each socket
    assert fast_json(snap, socks, EMAP, stats=True, **extra) == plain_json(
        snap, socks, EMAP, stats=True, **extra
    )
    # with owner facts (services from the cgroups of pids that mostly do not exist, forwards)
    facts = OwnerFacts(ask_engines=False)
    assert fast_json(snap, socks, EMAP, facts=facts) == plain_json(snap, socks, EMAP, facts=facts)
    layout = Layout(facts=facts, netns=True, stats=True)
    cached.clear()
    services: dict[int, str] = {}
    got = [socket_row(s, snap, EMAP, cached, layout, services) for s in socks]
    assert [r[:1] + r[2:6] + r[11:] for r in got] == [plain_row(s, snap, EMAP, facts) for s in socks]
    assert socket_rows(socks, snap, EMAP, layout) == got
    with_facts = Layout(facts=facts)
    assert socket_rows(socks, snap, EMAP, with_facts) == [plain_row(s, snap, EMAP, facts) for s in socks]
    assert grouped_socket_table(socks, snap, EMAP, with_facts) == plain_grouped(socks, snap, EMAP, with_facts)
    rows = [csv_row(s, snap, EMAP, layout) for s in socks]
    headers = layout.csv_headers()
    assert all(len(r) == len(headers) for r in rows)
    assert to_csv(rows, headers) == plain_csv(rows, headers)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7])
def test_chunk_boundaries(n: int) -> None:
    owner = ProcessInfo(7, 1, "x", "/x", ("x", 'a"b'), "u", 1.25)
    socks = [
        Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 1000 + i), None, "LISTEN", 7 if i % 2 else None)
        for i in range(n)
    ]
    snap = Snapshot(taken_at=1.0, sockets=tuple(socks), processes={7: owner})
    for chunk in (1, 2, 3):
        assert "".join(iter_snapshot_json(snap, socks, EMAP, chunk=chunk)) == plain_json(snap, socks, EMAP)
        rows = [csv_row(s, snap, EMAP) for s in socks]
        assert "".join(iter_csv(rows, CSV_COLUMNS, chunk=chunk)) == plain_csv(rows, CSV_COLUMNS)


@given(st.lists(st.lists(texts | st.integers(-5, 5) | st.booleans() | st.none(), max_size=3), max_size=4))
def test_csv_any_cells(rows: list[list[object]]) -> None:
    for width in (0, 1, 2):
        headers = [f"h{i}" for i in range(width)]
        cut = [r[:width] + [""] * (width - len(r[:width])) for r in rows]
        assert to_csv(cut, headers) == plain_csv(cut, headers)
    assert to_csv(rows, ["a"]) == plain_csv(rows, ["a"])  # ragged rows too


def test_tables_unchanged_by_cache(hostile_children: list[Child]) -> None:
    snap = default_collector().collect()
    emap = ExposureMap()
    socks = filter_kind(snap, "all")
    plain = [plain_row(s, snap, emap) for s in socks]
    lines = socket_table(socks, snap, emap)
    assert len(lines) == len(plain) + 1
    grouped = grouped_socket_table(socks, snap, emap)
    assert len(grouped) > len(plain)
    hostile = [line for line in lines if "ps-fast" in line]
    assert hostile and all("\x1b" not in line and "\n" not in line for line in hostile)
    assert any("\\x1b[31mred" in line for line in hostile)


@settings(max_examples=150, deadline=None)
@given(snapshots(), st.lists(st.sampled_from([0, 0, 4026531992, 7]), max_size=12))
def test_row_keys_of_equals_row_keys(case: tuple[Snapshot, list[Sock]], netns: list[int]) -> None:
    snap, socks = case
    # some sockets twice and some in other namespaces: every way row_keys tells them apart
    many = [*socks, *socks[:2]]
    many = [
        Sock(s.proto, s.family, s.laddr, s.raddr, s.status, s.pid, s.inode, ns)
        for s, ns in zip(many, [*netns, *[0] * len(many)], strict=False)
    ]
    assert row_keys_of(many) == row_keys(many)
    assert row_keys_of(snap.sockets) == list(snap.keys)
