"""The Events view, driven with Pilot in a tiny host app."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from app.collector import PsutilCollector
from app.events import Event, EventKind, diff, restrict
from app.exposure import ExposureMap
from app.filtering import parse_filter
from app.model import Endpoint, Family, ProcessInfo, Proto, Sock
from tests.helpers import child_listener
from widgets.events_view import COLUMNS, EventsView


class Host(App[None]):
    def __init__(self, max_events: int = 5000) -> None:
        super().__init__()
        self.max_events = max_events

    def compose(self) -> ComposeResult:
        yield EventsView(max_events=self.max_events, id="events")


def _owner(pid: int, name: str, user: str = "root") -> ProcessInfo:
    return ProcessInfo(pid, 1, name, f"/usr/bin/{name}", (name, "--serve"), user, 100.0 + pid)


def _ev(kind: EventKind, t: float, ip: str, port: int, pid: int, name: str, **kw: object) -> Event:
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    sock = Sock(Proto.TCP, fam, Endpoint(ip, port), None, "LISTEN", pid)
    key = f"tcp:{Endpoint(ip, port)}"
    return Event(kind, t, key, sock, _owner(pid, name), **kw)  # type: ignore[arg-type]


def _texts(table: DataTable[Text], row: int) -> list[str]:
    cells = table.get_row_at(row)
    assert all(isinstance(c, Text) for c in cells)
    return [c.plain for c in cells]


async def test_newest_first_filter_and_literal_untrusted_text() -> None:
    exposure = ExposureMap()
    app = Host()
    async with app.run_test(size=(140, 30)) as pilot:
        view = app.query_one(EventsView)
        table = view.table
        assert [str(c.label) for c in table.columns.values()] == list(COLUMNS)
        view.add_events(
            [
                _ev(EventKind.OPENED, 10.0, "127.0.0.1", 8080, 10, "nginx"),
                _ev(
                    EventKind.OPENED,
                    10.0,
                    "0.0.0.0",
                    5432,
                    11,
                    "postgres",
                ),
            ],
            exposure,
        )
        evil = "[bold red]pwn[/]\x1b]0;title\x07"
        old = Sock(Proto.TCP, Family.IPV4, Endpoint("0.0.0.0", 5432), None, "LISTEN", 11)
        view.add_events(
            [
                _ev(EventKind.CLOSED, 20.0, "127.0.0.1", 8080, 10, "nginx"),
                _ev(
                    EventKind.OWNER_CHANGED,
                    20.0,
                    "0.0.0.0",
                    5432,
                    66,
                    evil,
                    before=old,
                    before_owner=_owner(11, "postgres"),
                ),
            ],
            exposure,
        )
        await pilot.pause()
        assert table.row_count == 4
        # newest batch on top (in diff order within the batch), then the older batch
        kinds = [_texts(table, r)[1] for r in range(4)]
        assert kinds == ["closed", "owner-changed", "opened", "opened"]
        owner_row = _texts(table, 1)
        assert owner_row[6] == "11→66"
        assert owner_row[7] == "postgres→[bold red]pwn[/]\\x1b]0;title\\x07"  # literal, escaped
        cell = table.get_cell_at(Coordinate(1, 7))
        assert isinstance(cell, Text) and not cell.spans  # not parsed as markup
        assert [e.kind for e in view.events] == [
            EventKind.CLOSED,
            EventKind.OWNER_CHANGED,
            EventKind.OPENED,
            EventKind.OPENED,
        ]

        view.set_filter(parse_filter("proc:nginx"))
        await pilot.pause()
        assert [_texts(table, r)[1] for r in range(table.row_count)] == ["closed", "opened"]
        status = app.query_one("#events-status", Static)
        assert "4 events" in str(status.render()) and "2 match" in str(status.render())

        view.set_filter(parse_filter("new"))  # opened events
        assert [_texts(table, r)[3] for r in range(table.row_count)] == ["127.0.0.1:8080", "0.0.0.0:5432"]

        view.set_filter(parse_filter("exposed -new"))
        assert [_texts(table, r)[1] for r in range(table.row_count)] == ["owner-changed"]

        view.set_filter(parse_filter(":8080 state:listen"))
        assert table.row_count == 2

        view.set_filter(parse_filter(""))
        assert table.row_count == 4 and len(view.visible_events) == 4


async def test_events_are_bounded_and_the_cursor_stays_on_its_event() -> None:
    exposure = ExposureMap()
    app = Host(max_events=10)
    async with app.run_test(size=(120, 20)) as pilot:
        view = app.query_one(EventsView)
        view.add_events(
            [_ev(EventKind.OPENED, float(i), "127.0.0.1", 1000 + i, 5, "svc") for i in range(8)], exposure
        )
        await pilot.pause()
        view.table.move_cursor(row=3)
        chosen = view.visible_events[3]
        view.add_events(
            [_ev(EventKind.CLOSED, 50.0 + i, "127.0.0.1", 2000 + i, 5, "svc") for i in range(4)], exposure
        )
        await pilot.pause()
        assert view.table.row_count == 10 and len(view.events) == 10 and view.total_seen == 12
        assert view.visible_events[view.table.cursor_row] is chosen  # the cursor followed its event
        assert view.events[0].sock.laddr.port == 2000  # newest batch first, in its own order
        assert view.events[-1].sock.laddr.port == 1005  # two of the oldest batch were dropped
        assert "dropped" in str(app.query_one("#events-status", Static).render())
        view.clear_events()
        assert view.table.row_count == 0


async def test_real_events_from_a_child_listener() -> None:
    collector = PsutilCollector()
    before = restrict(collector.collect(), "listening")
    with child_listener("tcp", "127.0.0.1", name="ps-view-real") as child:
        during = restrict(collector.collect(), "listening")
    app = Host()
    async with app.run_test() as pilot:
        view = app.query_one(EventsView)
        view.add_events(diff(before, during), ExposureMap())
        view.set_filter(parse_filter(f"pid:{child.pid}"))
        await pilot.pause()
        assert view.table.row_count == 1
        row = _texts(view.table, 0)
        assert row[1:5] == ["opened", "tcp", f"127.0.0.1:{child.port}", "*"]
        assert row[5:8] == ["LISTEN", str(child.pid), "ps-view-real"]


async def test_big_filter_changes_and_adds_under_a_filter_keep_the_order() -> None:
    exposure = ExposureMap()
    app = Host()
    async with app.run_test() as pilot:
        view = app.query_one(EventsView)
        view.add_events(
            [_ev(EventKind.OPENED, 1.0, "127.0.0.1", 1000 + i, 5, "aaa") for i in range(300)], exposure
        )
        view.set_filter(parse_filter("proc:bbb"))  # hides all 300 rows: rebuilt, not removed one by one
        assert view.table.row_count == 0
        view.add_events(
            [_ev(EventKind.CLOSED, 2.0, "127.0.0.1", 3000 + i, 6, "bbb") for i in range(3)], exposure
        )
        view.add_events([_ev(EventKind.OPENED, 3.0, "127.0.0.1", 4000, 6, "bbb")], exposure)
        assert [_texts(view.table, r)[3] for r in range(view.table.row_count)] == [
            "127.0.0.1:4000",
            "127.0.0.1:3000",
            "127.0.0.1:3001",
            "127.0.0.1:3002",
        ]
        view.set_filter(parse_filter(""))
        await pilot.pause()
        assert view.table.row_count == 304
        ports = [int(_texts(view.table, r)[3].rsplit(":", 1)[1]) for r in range(view.table.row_count)]
        assert ports[:5] == [4000, 3000, 3001, 3002, 1000] and ports[-1] == 1299


async def test_the_table_holds_the_newest_shown_max_but_the_filter_sees_all_kept() -> None:
    from widgets.events_view import SHOWN_MAX

    exposure = ExposureMap()
    app = Host()
    async with app.run_test() as pilot:
        view = app.query_one(EventsView)
        n = SHOWN_MAX + 300
        view.add_events(
            [_ev(EventKind.OPENED, 1.0, "127.0.0.1", 1000 + i, 5, "aaa") for i in range(n)], exposure
        )
        await pilot.pause()
        assert view.table.row_count == SHOWN_MAX and len(view.visible_events) == n
        # one batch keeps its own order on top: the first SHOWN_MAX of it are in the table
        assert _texts(view.table, SHOWN_MAX - 1)[3] == f"127.0.0.1:{1000 + SHOWN_MAX - 1}"
        assert f"the newest {SHOWN_MAX} shown" in str(app.query_one("#events-status", Static).render())
        last = 1000 + n - 1
        view.set_filter(parse_filter(f":{last}"))  # not in the table, but kept: the filter finds it
        assert [_texts(view.table, r)[3] for r in range(view.table.row_count)] == [f"127.0.0.1:{last}"]


async def test_a_poll_filters_only_its_own_events() -> None:
    """Under a filter, each poll's events are looked at once, as they arrive (not every kept event
    again), and the events pushed off the end of the kept ones leave the matches too."""
    exposure = ExposureMap()
    app = Host(max_events=50)
    async with app.run_test() as pilot:
        view = app.query_one(EventsView)
        view.set_filter(parse_filter("bbb"))
        for poll in range(10):
            checks = view.filter_checks
            batch = [
                _ev(EventKind.OPENED, 1.0 + poll, "127.0.0.1", 1000 + poll * 10 + i, 5, "aaa")
                for i in range(9)
            ]
            batch.append(_ev(EventKind.OPENED, 1.0 + poll, "127.0.0.1", 2000 + poll, 6, "bbb"))
            view.add_events(batch, exposure)
            await pilot.pause()
            assert view.filter_checks - checks == 10  # this poll's events, not the 50 kept
        kept = view.events
        assert len(kept) == 50
        want = [e for e in kept if e.owner is not None and e.owner.name == "bbb"]
        assert view.visible_events == want and view.visible_count == 5
        assert view.table.row_count == 5
        assert [_texts(view.table, r)[3] for r in range(5)] == [
            f"127.0.0.1:{2000 + p}" for p in range(9, 4, -1)
        ]


def forty_aaa_events() -> list[Event]:
    """Forty opened loopback listeners of one process named aaa (ports 1000-1039)."""
    return [_ev(EventKind.OPENED, 1.0, "127.0.0.1", 1000 + i, 5, "aaa") for i in range(40)]


async def test_a_hidden_view_filters_its_events_once_shown() -> None:
    """Each key typed into the filter box sets the events view's filter; while the view is
    hidden it looks at no event for it (at 5000 kept events every key looked at all of them)
    and finds its matches once shown or asked."""
    exposure = ExposureMap()
    app = Host(max_events=50)
    async with app.run_test() as pilot:
        view = app.query_one(EventsView)
        view.add_events(forty_aaa_events(), exposure)
        view.display = False
        await pilot.pause()
        checks = view.filter_checks
        typed = ""
        for ch in ":1003":
            typed += ch
            view.set_filter(parse_filter(typed if typed != ":" else ""))
        view.add_events([_ev(EventKind.OPENED, 2.0, "127.0.0.1", 1003, 6, "bbb")], exposure)
        await pilot.pause()
        assert view.filter_checks == checks  # nothing looked at while hidden
        view.display = True
        await pilot.pause()
        assert view.filter_checks - checks == 41  # one pass when shown
        assert [e.owner.name for e in view.visible_events if e.owner] == ["bbb", "aaa"]
        assert view.table.row_count == 2


async def test_the_same_filter_text_again_looks_at_no_event() -> None:
    exposure = ExposureMap()
    app = Host(max_events=50)
    async with app.run_test() as pilot:
        view = app.query_one(EventsView)
        view.add_events(forty_aaa_events(), exposure)
        await pilot.pause()
        for text in ("", "aaa"):
            view.set_filter(parse_filter(text))
            checks = view.filter_checks
            for _ in range(3):
                view.set_filter(parse_filter(text))  # (a new Filter of the same text)
            await pilot.pause()
            assert view.filter_checks == checks and view.visible_count == 40
