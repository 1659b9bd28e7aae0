"""``portscope watch``: run as a real subprocess, read live with deadlines; plus its JSON shape."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.collector import PsutilCollector
from app.events import Event, EventKind, diff, restrict
from app.exposure import ExposureMap
from app.model import Endpoint, Family, ProcessInfo, Proto, Sock
from app.watch import EVENT_KEYS, Watch, event_dict, event_line, reader_gone
from tests.helpers import DEADLINE, child_listener, run_cli, spawn_listener, watching

SOCKET_KEYS = {
    "key",
    "proto",
    "family",
    "local",
    "remote",
    "state",
    "listening",
    "range",
    "in_ephemeral",
    "exposure",
    "pid",
    "process",
    "owners",
    "service",
    "forward",
    "netns",
}
PROCESS_KEYS = {"pid", "ppid", "name", "exe", "cmdline", "user", "create_time"}


def _event_for(port: int, kind: str) -> Callable[[str], bool]:
    def match(line: str) -> bool:
        data = json.loads(line)
        return bool(data["event"] == kind and data["socket"]["local"]["port"] == port)

    return match


def test_watch_json_reports_a_new_listener_and_ends_cleanly_on_sigterm() -> None:
    with watching("--json") as live, child_listener("tcp", "127.0.0.1", name="ps-watch-a") as child:
        line = live.stdout_until(_event_for(child.port, "opened"))
        data = json.loads(line)
        assert data["socket"]["pid"] == child.pid
        assert data["socket"]["process"]["name"] == "ps-watch-a"
        assert data["socket"]["state"] == "LISTEN"
        live.proc.send_signal(signal.SIGTERM)
        assert live.proc.wait(timeout=10) == 0
        err = live.all_stderr()
        assert "Traceback" not in err and "Exception" not in err


def test_watch_ends_quietly_when_its_reader_goes_away() -> None:
    with watching("--json") as live:
        child = spawn_listener("tcp", "127.0.0.1", name="ps-watch-b")
        try:
            live.stdout_until(_event_for(child.port, "opened"))
            assert live.proc.stdout is not None
            live.proc.stdout.close()  # like `| head` exiting: no further events needed to notice
            assert live.proc.wait(timeout=DEADLINE) == 0
        finally:
            child.stop()
        err = live.all_stderr()
        assert "Traceback" not in err and "Exception" not in err and "Broken pipe" not in err


def test_watch_log_appends_ndjson(tmp_path: Path) -> None:
    log = tmp_path / "events.ndjson"
    earlier = '{"schema":1,"event":"opened","note":"from an earlier run"}\n'
    log.write_text(earlier)
    with watching("--log", str(log)) as live:
        child = spawn_listener("udp", "127.0.0.1", name="ps-watch-log")
        live.stdout_until(lambda line: str(child.port) in line and " opened " in line)
        child.stop()
        live.stdout_until(lambda line: str(child.port) in line and " closed " in line)
        live.proc.send_signal(signal.SIGTERM)
        assert live.proc.wait(timeout=10) == 0
    text = log.read_text()
    assert text.startswith(earlier) and text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()[1:]]
    ours = [(r["event"], r["socket"]["proto"]) for r in records if r["socket"]["local"]["port"] == child.port]
    assert ours == [("opened", "udp"), ("closed", "udp")]
    assert all(set(r) == set(EVENT_KEYS) for r in records)


def test_watch_rejects_bad_options_in_one_line(tmp_path: Path) -> None:
    res = run_cli("watch", "--log", str(tmp_path / "no" / "such" / "dir.log"))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "cannot open log file" in res.stderr
    res = run_cli("watch", "--interval", "0")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "interval" in res.stderr


def test_event_json_shape_is_pinned() -> None:
    collector = PsutilCollector()
    exposure = ExposureMap()
    first = spawn_listener("tcp", "127.0.0.1", name="ps-shape-1")
    port = first.port
    try:
        before = restrict(collector.collect(), "listening")
    finally:
        first.stop()
    with child_listener("tcp", "127.0.0.1", port, name="ps-shape-2") as second:
        after = restrict(collector.collect(), "listening")
    (event,) = [e for e in diff(before, after) if e.sock.laddr.port == port]
    data: dict[str, Any] = json.loads(json.dumps(event_dict(event, after, exposure)))
    assert list(data) == ["schema", "event", "time", "iso_time", "socket", "before"] == list(EVENT_KEYS)
    assert data["schema"] == 2 and data["event"] == "owner-changed"
    assert data["time"] == after.taken_at and data["iso_time"].endswith("+00:00")
    assert set(data["socket"]) == SOCKET_KEYS
    assert data["socket"]["key"] == f"tcp:127.0.0.1:{port}"
    assert data["socket"]["pid"] == second.pid and set(data["socket"]["process"]) == PROCESS_KEYS
    assert data["socket"]["exposure"]["kind"] == "loopback"
    assert set(data["before"]) == {"state", "pid", "process"}
    assert data["before"]["pid"] == first.pid and data["before"]["process"]["name"] == "ps-shape-1"


def _odd_event(kind: EventKind = EventKind.OPENED) -> Event:
    name = "evil\x1b[31m\n[red]x\udcff"
    owner = ProcessInfo(4242, 1, name, "/x", (name, "--flag"), "us\ter", 1.0)
    sock = Sock(Proto.TCP, Family.IPV6, Endpoint("::1", 8443), None, "LISTEN", 4242)
    return Event(kind, 1.0, "tcp:[::1]:8443", sock, owner)


def test_human_line_escapes_untrusted_text() -> None:
    line = event_line(_odd_event(), ExposureMap())
    assert line.isprintable()
    assert "evil\\x1b[31m\\n[red]x\\xff" in line and "us\\ter" in line
    assert "opened" in line and "tcp6" in line and "[::1]:8443" in line and "loopback" in line


def test_emit_writes_one_flushed_batch_and_ascii_json(tmp_path: Path) -> None:
    out = io.StringIO()
    with open(tmp_path / "log", "a", encoding="utf-8") as log:
        watch = Watch(PsutilCollector(), out=out, as_json=True, log=log)
        snap = PsutilCollector().collect()
        watch.emit([_odd_event(), _odd_event(EventKind.CLOSED)], snap)
    lines = out.getvalue().splitlines()
    assert lines == (tmp_path / "log").read_text().splitlines()
    assert [json.loads(x)["event"] for x in lines] == ["opened", "closed"]
    assert all(x.isascii() for x in lines)
    assert json.loads(lines[0])["socket"]["process"]["name"] == "evil\x1b[31m\n[red]x\udcff"


def test_reader_gone_sees_a_closed_pipe() -> None:
    r, w = os.pipe()
    with os.fdopen(w, "w") as stream:
        assert not reader_gone(stream)
        os.close(r)
        assert reader_gone(stream)
    assert not reader_gone(io.StringIO())
