"""The dashboard filters its rows through a view of each row's payload (``RowView``: no copy of the
fields per row). Every term of the filter language must answer for it exactly as for a
``FilterRow`` of the same socket, owner, service, forwarder and namespace (what the events view
and the CLI's helpers build), plain words across the haystack's two parts included."""

from __future__ import annotations

import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from app.filtering import FilterRow, parse_filter, row_for
from app.forwarders import Forward
from app.model import Endpoint, Family, ProcessInfo, Proto, Sock
from app.service import CONTAINER, SOCKET, UNIT, Service
from app.tui.rows import SockRow
from app.tui.state import text_predicate
from tests.tui.fixtures import FixedExposure
from widgets.table_model import Mark, Row, RowSpec

WORD = st.text(alphabet="abnginxwebroot 1:.-", min_size=1, max_size=5)

TERMS = (
    "tcp",
    "udp",
    ":80",
    "port:1-1000",
    "port:41000",
    "pid:7",
    "user:ro",
    "proc:ngi",
    "name:x",
    "range:dynamic",
    "range:well-known",
    "state:listen",
    "state:established",
    "proto:udp",
    "unit:web",
    "container:web",
    "container:img",
    "netns:host",
    "exposed",
    "new",
    "tunnel",
    "-exposed",
    "127.0.0.1:80",
    "tcp :80",
    "ssh",
    "nginx",
    "off; 127",
    "'off; 127'",  # one word, across the space between the owner's part and the socket's
    "'off; 12' 80",
)

SERVICES = st.sampled_from(
    [
        None,
        Service(UNIT, "web.service"),
        Service(CONTAINER, "webapp", id="0123456789abcdef", image="img/web:1", unit="libpod-0123.scope"),
        Service(CONTAINER, "c2"),
        Service(SOCKET, "web.socket", unit="web.socket", activates=("web.service", "webx.service")),
        Service(SOCKET, "s", unit=None),
    ]
)
FORWARDS = st.sampled_from(
    [None, Forward("ssh-local", "127.0.0.1:8088", via="me@host"), Forward("kubectl", "svc/web:80")]
)
OWNERS = st.sampled_from(
    [
        None,
        ProcessInfo(7, 1, "nginx", "/usr/sbin/nginx", ("nginx", "-g", "daemon off;"), "root", 1.0),
        ProcessInfo(8, 1, "ssh", "/usr/bin/ssh", ("ssh", "-L", "8088:x:80", "web"), "www-data", 2.0),
    ]
)


def expected_terms(svc: Service | None) -> tuple[str, str]:
    """(unit, container) as the filter's reference spells them, written out by kind."""
    if svc is None:
        return "", ""
    if svc.kind == CONTAINER:
        container = " ".join(x for x in (svc.name, svc.id, svc.image) if x)
        return svc.unit or "", container
    if svc.kind == SOCKET:
        return " ".join(x for x in (svc.unit, *svc.activates) if x), ""
    return svc.name, ""


@settings(max_examples=300, deadline=None)
@given(
    ip=st.sampled_from(["127.0.0.1", "0.0.0.0", "::1", "192.0.2.10"]),
    port=st.sampled_from([22, 80, 8080, 41000, 60000]),
    connected=st.booleans(),
    udp=st.booleans(),
    pid=st.sampled_from([None, 7, 8]),
    owner=OWNERS,
    svc=SERVICES,
    fwd=FORWARDS,
    netns=st.sampled_from(["", "host", "ns1 web"]),
    new=st.booleans(),
    word=WORD,
)
def test_every_term_answers_for_a_row_as_for_its_filter_row(
    ip: str,
    port: int,
    connected: bool,
    udp: bool,
    pid: int | None,
    owner: ProcessInfo | None,
    svc: Service | None,
    fwd: Forward | None,
    netns: str,
    new: bool,
    word: str,
) -> None:
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    proto = Proto.UDP if udp else Proto.TCP
    peer = Endpoint("::1" if ":" in ip else "127.0.0.1", 41000) if connected else None
    status = "ESTABLISHED" if connected else ("BOUND" if udp else "LISTEN")
    sock = Sock(proto, fam, Endpoint(ip, port), peer, status, pid, 1234)
    exposure = FixedExposure().classify(ip)
    payload = SockRow(sock, owner, exposure=exposure, service=svc, forward=fwd, netns=netns)
    payload.prepare_filter()
    unit, container = expected_terms(svc)
    forward = fwd.label() if fwd is not None else ""
    ref = row_for(
        sock,
        owner,
        exposure.beyond_loopback,
        new,
        unit=unit,
        container=container,
        netns=netns,
        forward=forward,
    )
    assert isinstance(ref, FilterRow)
    row = Row(RowSpec("k", (), "", payload), 0.0)
    row.mark = Mark.NEW if new else Mark.NONE
    quoted = shlex.quote(word)  # (a word with a space in it, looked for across the parts too)
    for text in (*TERMS, word, f"-{word}", f"{word} tcp", quoted, f"{quoted} ngin", f"{quoted} {quoted}"):
        try:
            flt = parse_filter(text)
        except Exception:  # (a drawn word that is no term: both would refuse it alike)
            continue
        ok = text_predicate(flt)
        want = flt.matches(ref)
        assert ok is None or ok(row) == ok(row) == want, text  # (the second from its memo)
        assert flt.matches(payload.filter_row(new)) == want, text


def test_one_predicate_answers_for_each_row_in_turn() -> None:
    """The table's filter pass points one view at each row in turn: a row's answer never depends
    on the row looked at before it."""
    nginx = ProcessInfo(7, 1, "nginx", "/usr/sbin/nginx", ("nginx", "-g", "daemon off;"), "root", 1.0)
    ssh = ProcessInfo(8, 1, "ssh", "/usr/bin/ssh", ("ssh", "-L", "8088:x:80"), "www-data", 2.0)
    made = []
    for i, (ip, port, owner, svc, fwd) in enumerate(
        [
            ("127.0.0.1", 80, nginx, Service(UNIT, "web.service"), None),
            ("0.0.0.0", 8088, ssh, None, Forward("ssh-local", "127.0.0.1:8088", via="me@host")),
            ("::1", 60000, None, Service(CONTAINER, "webapp", image="img/web:1"), None),
        ]
    ):
        fam = Family.IPV6 if ":" in ip else Family.IPV4
        sock = Sock(Proto.TCP, fam, Endpoint(ip, port), None, "LISTEN", owner.pid if owner else None, 10 + i)
        payload = SockRow(sock, owner, exposure=FixedExposure().classify(ip), service=svc, forward=fwd)
        payload.prepare_filter()
        row = Row(RowSpec(f"k{i}", (), "", payload), 0.0)
        row.mark = Mark.NEW if i == 1 else Mark.NONE
        unit, container = expected_terms(svc)
        ref = row_for(
            sock,
            owner,
            payload.exposed,
            i == 1,
            unit=unit,
            container=container,
            forward=fwd.label() if fwd is not None else "",
        )
        made.append((row, ref))
    answers = set()
    for text in TERMS:
        ok = text_predicate(parse_filter(text))
        assert ok is not None
        for row, ref in [*made, *reversed(made), *made]:
            want = parse_filter(text).matches(ref)
            assert ok(row) == want, (text, row.key)
            answers.add((text, want))
    assert len({w for _t, w in answers}) == 2  # (the terms tell these rows apart)


class Counted(str):
    """An owner part that counts the searches in it."""

    searched = 0

    def __contains__(self, needle: object) -> bool:
        Counted.searched += 1
        return super().__contains__(needle)  # type: ignore[operator]


def test_a_pass_searches_each_processs_command_line_once_per_word() -> None:
    """The owner part of the haystack (a whole command line, kilobytes for a JVM) is one string
    shared by a process's rows: one filter pass looks in it once per word, not once per row, and
    gives every row the answer it gives alone."""
    owners = [
        ProcessInfo(7, 1, "java", "/usr/bin/java", ("java", "-cp", "a.jar:" * 600 + "x5432"), "root", 1.0),
        ProcessInfo(8, 1, "python3", "/usr/bin/python3", ("python3", "-c", "pass;" * 700), "root", 2.0),
    ]
    rows = []
    for i in range(300):
        owner = owners[i % 2]
        sock = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 40000 + i), None, "LISTEN", owner.pid, i)
        payload = SockRow(sock, owner, exposure=FixedExposure().classify("127.0.0.1"))
        payload.prepare_filter()
        object.__setattr__(payload, "_owner_hay", Counted(payload._owner_hay))
        rows.append(Row(RowSpec(f"k{i}", (), "", payload), 0.0))
    for word, want in (("5432", 150), ("jar", 150), ("zzz", 0)):
        ok = text_predicate(parse_filter(word))
        assert ok is not None
        Counted.searched = 0
        assert sum(map(ok, rows)) == want, word
        assert Counted.searched <= 2, word  # (one search per owner part, not 300)
        assert [ok(r) for r in rows] == [parse_filter(word).matches(r.payload.filter_row()) for r in rows]


def test_plain_words_are_what_the_filter_calls_words() -> None:
    """Typed plain words take the table's own search of the two parts (one call a row); any
    other term keeps the general path. Both answer alike (the tests above)."""
    assert parse_filter("ngin 'off; 1' 80").words == ("ngin", "off; 1", "80")
    for text in ("ngin tcp", ":80", "-ngin", "proc:ngin", "127.0.0.1:80", "exposed"):
        assert parse_filter(text).words is None, text
