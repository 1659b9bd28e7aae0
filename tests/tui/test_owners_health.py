"""The dashboard's owners (#12) and TCP health (#15), with real processes, cgroups, namespaces and
loopback connections: "+N" holders and the "belongs to" section, the Service column and ``unit:``,
``n`` for every network namespace, live rates and top talkers, a full accept queue, and ``X``
closing exactly one connection."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from app.close import CloseFailed
from app.tui.app import PortscopeApp, dashboard_collector
from app.tui.columns import C_TX, L_PROCESS, L_QUEUE, L_SERVICE, QUEUE_FULL
from tests.cgroups import MOUNTS, moved_into, needs_root
from tests.helpers import (
    ask_client,
    child_listener,
    needs_netns,
    netns_listener,
    prefork_server,
    two_connections,
)
from tests.tui.fixtures import (
    SIZE_IDS,
    SIZES,
    SequenceCollector,
    fixed_interfaces,
    health_snapshots,
    listed_ports,
    make_app,
    screen_lines,
    until,
)
from widgets.close_modal import CloseModal
from widgets.table_model import HEADER_PREFIX

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux collector (netlink)")
pytestmark = linux
LIVE = 30.0  # seconds for a real socket to show up: a loaded host's first poll is slow


def live_app(**kwargs: Any) -> PortscopeApp:
    """The real dashboard: the collector it runs with (netlink with TCP stats), real owners."""
    return PortscopeApp(
        collector=dashboard_collector(), interval=0.2, interfaces=fixed_interfaces, blink=False, **kwargs
    )


def rows_on_port(app: PortscopeApp, port: int, view: str = "listening") -> list[Any]:
    return [r for r in app.model(view).rows.values() if r.payload.sock.laddr.port == port]


def listener_row(app: PortscopeApp, port: int) -> Any:
    rows = [r for r in rows_on_port(app, port) if r.payload.sock.netns == 0]
    return rows[0] if rows else None


def screen(app: PortscopeApp) -> str:
    return "\n".join(screen_lines(app))


def detail_text(app: PortscopeApp) -> str:
    return str(app.query_one("#detail-text").render())


def notifications(app: PortscopeApp) -> list[str]:
    return [n.message for n in app._notifications]


# --------------------------------------------------------------------------- #12: owners


async def test_a_prefork_listener_shows_plus_two_and_the_detail_lists_every_holder(tmp_path: Any) -> None:
    with prefork_server(str(tmp_path), workers=2) as server:
        app = live_app()
        async with app.run_test(size=(140, 44)) as pilot:
            await until(pilot, lambda: listener_row(app, server.port) is not None, timeout=LIVE)
            row = listener_row(app, server.port)
            assert row.payload.sock.pid == server.pid  # the master is the primary owner
            assert row.values[L_PROCESS] == "ps-prefork +2"
            app.set_filter_text(f":{server.port}")
            await pilot.pause()
            assert "ps-prefork +2" in screen(app)
            app.model().select_key(row.key)
            await pilot.press("enter")
            await until(pilot, lambda: "holders" in detail_text(app) and "sockets held" in detail_text(app))
            text = detail_text(app)
            assert "3 processes (primary owner first)" in text
            assert f"{server.pid} ps-prefork" in text and "primary" in text
            for pid in server.workers:
                assert f"{pid} ps-prefork" in text
            lines = text.splitlines()
            master = next(
                n for n, line in enumerate(lines) if line.strip().startswith(f"{server.pid} ps-prefork")
            )
            assert all(
                master < next(n for n, line in enumerate(lines) if line.strip().startswith(f"{pid} "))
                for pid in server.workers
            )


@needs_root
@pytest.mark.skipif("v2" not in MOUNTS, reason="no cgroup v2 mount")
async def test_a_listener_in_a_unit_cgroup_shows_its_service_and_unit_filters_it() -> None:
    with (
        child_listener(name="ps-tui-unit") as child,
        child_listener(name="ps-tui-plain") as other,
        moved_into(child, "v2", "ps-tui-demo.service"),
    ):
        app = live_app()
        async with app.run_test(size=(140, 30)) as pilot:
            await until(pilot, lambda: listener_row(app, child.port) is not None, timeout=LIVE)
            await until(pilot, lambda: listener_row(app, other.port) is not None, timeout=LIVE)
            row = listener_row(app, child.port)
            assert row.values[L_SERVICE] == "ps-tui-demo.service"
            assert listener_row(app, other.port).values[L_SERVICE] != "ps-tui-demo.service"
            app.set_filter_text("proc:ps-tui-")
            await pilot.pause()
            assert "ps-tui-demo.service" in screen(app)
            assert "Service" in screen(app)
            app.set_filter_text("unit:ps-tui-demo")
            await pilot.pause()
            assert listed_ports(app) == [child.port]
            app.set_filter_text("-unit:ps-tui-demo proc:ps-tui-")
            await pilot.pause()
            assert listed_ports(app) == [other.port]


@needs_netns
async def test_n_shows_a_listener_of_another_namespace_with_its_namespace_and_hides_it_again() -> None:
    def in_other_ns(port: int) -> list[Any]:
        return [r for r in rows_on_port(app, port) if r.payload.sock.netns != 0 and not r.payload.sock.raddr]

    with netns_listener("unshare", "--net") as (_proc, port):
        app = live_app()
        async with app.run_test(size=(140, 30)) as pilot:
            await until(pilot, lambda: app.poll_count >= 2, timeout=LIVE)
            assert not in_other_ns(port)
            assert "Netns" not in screen_lines(app)[2]  # the column header line
            await pilot.press("n")
            await until(pilot, lambda: bool(in_other_ns(port)), timeout=20)
            row = in_other_ns(port)[0]
            label = row.payload.netns
            assert label and label != "current"
            app.set_filter_text(f":{port}")
            await pilot.pause()
            text = screen(app)
            assert "Netns" in text and label[:10] in text
            assert "every netns" in text  # the status line says so
            app.set_filter_text("netns:" + shlex.quote(label))
            await pilot.pause()
            assert listed_ports(app) == [port]
            app.set_filter_text("")
            await pilot.press("n")
            await until(pilot, lambda: not in_other_ns(port), timeout=20)
            await pilot.pause()
            assert "Netns" not in screen_lines(app)[2]
            # switching is not an event: nothing opened or closed in the other namespace
            assert not [e for e in app.events_view.events if e.sock.netns]


async def test_n_without_the_netlink_collector_says_why() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("n")
        await pilot.pause()
        assert any("netlink collector" in m for m in notifications(app))
        assert not app.netns_all


# --------------------------------------------------------------------------- #15: health

_TALKER = r"""
import socket, sys, threading, time
port = int(sys.argv[1])
busy = socket.create_connection(("127.0.0.1", port))
idle = socket.create_connection(("127.0.0.1", port))
print(busy.getsockname()[1], idle.getsockname()[1], flush=True)
go = threading.Event()
go.set()
def pump():
    chunk = b"x" * 65536
    while True:
        if go.is_set():
            busy.sendall(chunk)
            time.sleep(0.005)
        else:
            time.sleep(0.05)
threading.Thread(target=pump, daemon=True).start()
for line in sys.stdin:
    go.clear()
    print("stopped", flush=True)
"""


@contextmanager
def talker() -> Iterator[tuple[subprocess.Popen[str], int, int, int]]:
    """A child with two connections to the test's listener: one sends as fast as it may (until
    told to stop on stdin), one is idle. Yields (child, server port, busy port, idle port)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-c", _TALKER, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    accepted: list[socket.socket] = []
    done = threading.Event()

    def drain(conn: socket.socket) -> None:
        conn.settimeout(0.2)
        while not done.is_set():
            try:
                if not conn.recv(1 << 20):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    try:
        assert child.stdout is not None
        busy, idle = (int(x) for x in child.stdout.readline().split())
        accepted = [srv.accept()[0] for _ in range(2)]
        for conn in accepted:
            threading.Thread(target=drain, args=(conn,), daemon=True).start()
        yield child, port, busy, idle
    finally:
        done.set()
        child.kill()
        child.wait()
        for conn in accepted:
            conn.close()
        srv.close()


def conn_row(app: PortscopeApp, local_port: int) -> Any:
    rows = [r for r in app.model("connections").rows.values() if r.payload.sock.laddr.port == local_port]
    return rows[0] if rows else None


async def test_rates_of_a_real_connection_while_data_flows_then_zero_and_tx_sort_puts_it_first() -> None:
    with talker() as (child, port, busy, idle):
        app = live_app()
        async with app.run_test(size=(140, 30)) as pilot:
            await pilot.press("2")
            app.set_filter_text(f":{port}")
            await until(
                pilot,
                lambda: conn_row(app, busy) is not None and conn_row(app, idle) is not None,
                timeout=LIVE,
            )
            await until(pilot, lambda: (conn_row(app, busy).payload.tx or 0) > 100_000, timeout=LIVE)
            # the server's end of the busy connection receives what the child sends
            server_end = next(
                r for r in rows_on_port(app, port, "connections") if r.payload.sock.raddr.port == busy
            )
            await until(
                pilot, lambda: (app.model("connections").rows[server_end.key].payload.rx or 0) > 100_000
            )
            assert conn_row(app, idle).payload.tx == 0
            app.main.sort_by_column("connections", C_TX)  # the palette's "Sort by Tx/s"
            await pilot.pause()
            model = app.model("connections")
            assert model.sort_reverse  # the busiest first

            def first() -> Any:
                return model.rows[next(k for k in model.lines if not k.startswith(HEADER_PREFIX))]

            # the first row is the one sending (only the busy connection sends; a poll in which
            # a starved sender sent nothing ties them all at 0, so wait for one that did)
            await until(pilot, lambda: (first().payload.tx or 0) > 0, timeout=LIVE)
            assert first().payload.sock.laddr.port == busy
            assert "Tx/s ▼" in screen(app)
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write("stop\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "stopped"
            await until(pilot, lambda: conn_row(app, busy).payload.tx == 0, timeout=15)
            await until(
                pilot, lambda: app.model("connections").rows[server_end.key].payload.rx == 0, timeout=15
            )


async def test_a_listener_with_more_waiting_connections_than_its_backlog_is_marked_until_accepted() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    port = srv.getsockname()[1]
    clients = []
    try:
        for _ in range(5):  # the kernel queues backlog + 1; the rest wait in SYN retries
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            clients.append(c)
        app = live_app()
        async with app.run_test(size=(140, 30)) as pilot:
            app.set_filter_text(f":{port}")
            await until(pilot, lambda: listener_row(app, port) is not None, timeout=LIVE)
            await until(pilot, lambda: QUEUE_FULL in listener_row(app, port).flags, timeout=LIVE)
            await pilot.pause()
            row = listener_row(app, port)
            queue = row.values[L_QUEUE]
            assert queue.max == 2 and queue.current >= 2
            text = screen(app)
            assert f"!{queue.current}/2" in text  # a glyph, not colour alone
            assert re.search(rf"!◦?{port}", text)  # the Port cell carries it too (where Queue does not fit)
            srv.setblocking(False)
            accepted = []
            while True:
                try:
                    accepted.append(srv.accept()[0])
                except BlockingIOError:
                    break
            await until(pilot, lambda: listener_row(app, port).values[L_QUEUE].current == 0, timeout=15)
            await until(pilot, lambda: QUEUE_FULL not in listener_row(app, port).flags, timeout=15)
            for a in accepted:
                a.close()
    finally:
        for c in clients:
            c.close()
        srv.close()


# --------------------------------------------------------------------------- #15: X closes one


async def open_close_dialog(pilot: Any, app: PortscopeApp, local_port: int, server_port: int) -> CloseModal:
    await pilot.press("2")
    app.set_filter_text(f":{server_port}")
    await until(pilot, lambda: conn_row(app, local_port) is not None, timeout=LIVE)
    assert app.model().select_key(conn_row(app, local_port).key)
    await pilot.press("X")
    await until(pilot, lambda: isinstance(app.screen, CloseModal))
    return app.screen  # type: ignore[return-value]


@pytest.mark.skipif(os.geteuid() != 0, reason="closing a connection needs root (CAP_NET_ADMIN)")
async def test_x_closes_exactly_that_connection_and_the_process_and_its_other_connection_live() -> None:
    with two_connections() as (child, ports, accepted, server_port):
        app = live_app()
        async with app.run_test(size=(80, 24)) as pilot:
            dialog = await open_close_dialog(pilot, app, ports[0], server_port)
            text = "\n".join(screen_lines(app))
            assert f"127.0.0.1:{ports[0]}" in text and f"127.0.0.1:{server_port}" in text
            assert f"pid {child.pid}" in text
            assert "Close connection (y)" in text and "Cancel (Esc/n)" in text  # fits 80x24
            assert dialog.request.inode
            await pilot.press("y")
            await until(pilot, lambda: any(m.startswith("closed tcp") for m in notifications(app)))
        message = next(m for m in notifications(app) if m.startswith("closed tcp"))
        assert f":{ports[0]} -> 127.0.0.1:{server_port}" in message and "keeps running" in message
        try:
            seen: bytes | None = accepted[0].recv(16)  # (a timeout here: nothing was closed)
        except (ConnectionResetError, ConnectionAbortedError):
            seen = None
        assert seen in (None, b"")  # the peer sees the reset (or EOF)
        assert child.poll() is None  # the process lives
        assert ask_client(child, 0).startswith("error 0")  # its closed socket is gone
        assert ask_client(child, 1) == "sent 1"  # its other connection works
        assert accepted[1].recv(16) == b"ping\n"


async def test_x_then_esc_cancels_and_nothing_is_closed() -> None:
    closed: list[object] = []
    with two_connections() as (child, ports, accepted, server_port):
        app = live_app(closer=closed.append)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_close_dialog(pilot, app, ports[0], server_port)
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, CloseModal))
            await pilot.pause(0.3)
            assert "nothing was closed" in notifications(app)
            assert not closed
            # Enter on the focused Cancel button cancels too
            await open_close_dialog(pilot, app, ports[0], server_port)
            await pilot.press("tab", "enter")
            await until(pilot, lambda: not isinstance(app.screen, CloseModal))
            await pilot.pause(0.3)
            assert not closed
        assert ask_client(child, 0) == "sent 0" and accepted[0].recv(16) == b"ping\n"
        assert ask_client(child, 1) == "sent 1" and accepted[1].recv(16) == b"ping\n"


async def test_x_unprivileged_shows_the_one_line_reason_and_the_app_goes_on() -> None:
    def denied(_request: object) -> str:
        raise CloseFailed("closing a connection needs root (CAP_NET_ADMIN)")

    app = make_app(SequenceCollector(*health_snapshots(2)), closer=denied)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("2")
        await pilot.pause()
        await pilot.press("X")
        await until(pilot, lambda: isinstance(app.screen, CloseModal))
        await pilot.press("enter")  # the focus starts on the explicit Close button
        await until(pilot, lambda: "closing a connection needs root (CAP_NET_ADMIN)" in notifications(app))
        assert not isinstance(app.screen, CloseModal)
        await pilot.press("1")
        assert app.view == "listening"


async def test_x_on_a_listener_says_where_it_works() -> None:
    app = make_app(SequenceCollector(*health_snapshots(2)))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("X")
        await pilot.pause()
        assert not isinstance(app.screen, CloseModal)
        assert any("Connections" in m for m in notifications(app))


async def test_the_events_view_filters_by_unit_and_tunnel_too() -> None:
    from dataclasses import replace

    from tests.tui.fixtures import HEALTH_SOCKETS, TUNNEL_PID, health_snapshot, tcp

    later = replace(
        health_snapshot(1),
        sockets=(
            *HEALTH_SOCKETS,
            tcp("127.0.0.1", 8081, pid=101, inode=1005),
            tcp("127.0.0.1", 9100, pid=TUNNEL_PID, inode=1006),
        ),
    )
    app = make_app(SequenceCollector(health_snapshot(0), later))
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("r")
        await until(pilot, lambda: app.poll_count >= 2)
        await pilot.press("4")
        view = app.events_view
        assert sorted(e.sock.laddr.port for e in view.events) == [8081, 9100]
        app.set_filter_text("unit:nginx")
        await pilot.pause()
        assert [e.sock.laddr.port for e in view.visible_events] == [8081]
        app.set_filter_text("tunnel")
        await pilot.pause()
        assert [e.sock.laddr.port for e in view.visible_events] == [9100]


class NetnsCollector(SequenceCollector):
    """Fixed snapshots with ``set_netns``: with every namespace on, the collector says what it
    skipped, as the real one does without root (a fault injected: this machine runs as root)."""

    SKIPPED = "skipped 2 namespaces of other users (only root may enter them) [bold]x"

    def __init__(self) -> None:
        super().__init__(*health_snapshots(2))
        self.modes: list[str] = []

    def set_netns(self, mode: str) -> None:
        self.modes.append(mode)

    def collect(self, *, port: int | None = None) -> Any:
        from dataclasses import replace

        snap = super().collect(port=port)
        if self.modes and self.modes[-1] == "all":
            return replace(snap, warnings=(self.SKIPPED,))
        return snap


async def test_n_unprivileged_shows_the_collectors_warning_as_plain_text() -> None:
    collector = NetnsCollector()
    app = make_app(collector)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("n")
        await until(pilot, lambda: collector.modes == ["all"])
        await until(pilot, lambda: NetnsCollector.SKIPPED in notifications(app))
        note = next(n for n in app._notifications if n.message == NetnsCollector.SKIPPED)
        assert note.markup is False  # "[bold]" stays literal
        assert "every netns" in screen(app)
        await pilot.press("n")
        await until(pilot, lambda: collector.modes == ["all", "current"])
        await until(pilot, lambda: "only this network namespace" in notifications(app))
        assert app.poll_errors == []


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_close_dialog_keeps_its_buttons_on_screen(size: tuple[int, int]) -> None:
    app = make_app(SequenceCollector(*health_snapshots(2)))
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("2", "X")
        await until(pilot, lambda: isinstance(app.screen, CloseModal))
        await pilot.pause()
        text = screen(app)
        assert "Close connection (y)" in text
        assert "127.0.0.1:41000" in text  # the row's local endpoint, named
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, CloseModal))
