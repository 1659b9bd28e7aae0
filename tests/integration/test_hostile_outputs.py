"""The hostile-value sweep: every output, fed every hostile value, shows no raw escape.

A hostile value (terminal escapes, C1 controls, bidi and zero-width characters, invisible
letters, tag characters, invalid UTF-8, Rich markup) reaches portscope through four channels,
each as real as it gets:

* a process: a real listening child whose command line (and, as far as 15 bytes go, name)
  holds the value;
* an interface: a real veth pair named with the value inside ``unshare --net``, with a
  listener on its address (interface names allow any byte but '/', ':' and whitespace);
* a file: a crafted baseline whose address scope, process and user hold the value;
* the dashboard: PortscopeApp under Pilot with a collector, interfaces and process details
  that hold the value, and the toasts a hostile filter term or listener raises.

:data:`OUTPUTS` lists one driver per output. A driver produces the texts that output shows;
:func:`test_no_raw_control_reaches_any_output` checks each: nothing of category Cc (but the
newline), Cf, Zl, Zp, Co, Cn, Cs and no Hangul filler, and the value itself is there (escaped,
or exact in JSON), so a driver that shows nothing cannot pass. A new output (explain, metrics)
is one more entry in OUTPUTS.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.textsafe import printable
from tests.helpers import Child, portscope_cmd, spawn_listener_with_args

# Each value starts with a tag ("H1", ...) so its row can be found; the whole value stays within
# an interface name's 15 bytes where it can be one (see iface_name()).
HOSTILE = {
    "osc-title": "H1\x1b]0;pwned\x07",
    "osc52-clipboard": "H2\x1b]52;c;eA==\x07",
    "csi-clear": "H3\x1b[2J\x1b[31m",
    "c1-controls": "H4\x9b31m\x85",
    "bidi": "H5\u202eevil\u2066",
    "zero-width": "H6a\u200b\u200c\u200d",
    "markup": "H7[red]x[bold]",
    "invisible": "H8\u115f\u3164\u00ad\ufeff",
    "invalid-utf8": "H9\udcff\udcfe",
    "tags-and-joiner": "HT\U000e0041\U000e007f\u2060\u061c\u180e",
}

_UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"}


def unsafe_characters(text: str) -> list[str]:
    return sorted(
        {
            f"U+{ord(ch):04X}"
            for ch in text
            if ch != "\n" and (unicodedata.category(ch) in _UNSAFE or ch in "\u115f\u1160\u3164\uffa0")
        }
    )


def iface_name(value: str) -> bytes | None:
    """``value`` as an interface name, or None if the kernel would refuse it (over 15 bytes, or
    holding a byte its isspace() takes: 0xa0 is a space in the kernel's Latin-1 ctype)."""
    raw = value.encode("utf-8", "surrogateescape")
    if len(raw) > 15 or any(b in raw for b in b"/: \t\n\r\x0b\x0c\xa0"):
        return None
    return raw


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def in_json(texts: list[str], value: str) -> bool:
    """The exact value is a JSON string (or part of one) in one of the documents."""
    for text in texts:
        for line in text.splitlines() if text.lstrip().startswith('{"') else [text]:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if any(value in s for s in _strings(doc)):
                return True
    return False


def escaped(texts: list[str], value: str, width: int = 12) -> bool:
    """The start of the escaped value is in one of the texts (cells may cut the rest)."""
    return any(printable(value)[:width] in t for t in texts)


# ------------------------------------------------------------------------------------ channels


def _cli(*args: str) -> list[str]:
    res = subprocess.run([*portscope_cmd(), *args], capture_output=True, timeout=60)
    assert b"Traceback" not in res.stderr, res.stderr.decode(errors="replace")
    return [res.stdout.decode("utf-8", "surrogateescape"), res.stderr.decode("utf-8", "surrogateescape")]


@dataclass
class Processes:
    children: dict[str, Child]

    def run(self, *args: str) -> list[str]:
        return _cli(*args)


@pytest.fixture(scope="module")
def processes() -> Iterator[Processes]:
    children: dict[str, Child] = {}
    try:
        for key, value in HOSTILE.items():
            children[key] = spawn_listener_with_args([value, f"x{value}y"], name=value)
        yield Processes(children)
    finally:
        for child in children.values():
            child.stop()


def _watch(args: list[str], start: Callable[[], list[int]]) -> list[str]:
    """Run ``watch`` (with ``args``), call ``start`` once it watches (it opens listeners and returns
    their ports), read until every port was reported, stop it with SIGTERM."""
    proc = subprocess.Popen(
        [*portscope_cmd(), "watch", "--interval", "0.2", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        while b"watching" not in (line := proc.stderr.readline()):
            assert line, b"".join(err)
            err.append(line)
        err.append(line)
        ports = start()
        deadline = time.monotonic() + 30
        while ports and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            ports = [p for p in ports if f":{p}".encode() not in line]
        assert not ports, f"watch did not report ports {ports}"
    finally:
        proc.send_signal(signal.SIGTERM)
        rest_out, rest_err = proc.communicate(timeout=30)
    return [
        b"".join([*out, rest_out]).decode("utf-8", "surrogateescape"),
        b"".join([*err, rest_err]).decode("utf-8", "surrogateescape"),
    ]


def _watch_processes(as_json: bool) -> list[str]:
    started: list[Child] = []

    def start() -> list[int]:
        for value in HOSTILE.values():
            started.append(spawn_listener_with_args([value], name=value))
        return [c.port for c in started]

    try:
        return _watch(["--json"] if as_json else [], start)
    finally:
        for c in started:
            c.stop()


# The interface channel runs in a network namespace of its own: veth pairs named with the hostile
# values, an address and a listener on each, then every interface-related output, as JSON.
NETNS_SCRIPT = r"""
import json, signal, socket, subprocess, sys, time
cmd = json.loads(sys.argv[1])
names = [bytes.fromhex(h) for h in sys.argv[2].split(",")]
def ip(*args):
    subprocess.run([b"ip", *args], check=True, capture_output=True)
ip(b"link", b"set", b"lo", b"up")
held = []
for i, name in enumerate(names):
    peer = b"psv%d" % i
    ip(b"link", b"add", b"name", name, b"type", b"veth", b"peer", b"name", peer)
    ip(b"addr", b"add", b"10.77.%d.1/24" % i, b"dev", name)
    ip(b"link", b"set", name, b"up")
    ip(b"link", b"set", peer, b"up")
def listen(i):
    s = socket.socket()
    s.bind(("10.77.%d.1" % i, 0))
    s.listen()
    held.append(s)
    return s.getsockname()[1]
ports = [listen(i) for i in range(len(names))]
def decode(data):
    return data.decode("utf-8", "surrogateescape")
def run(*args):
    res = subprocess.run([*cmd, *args], capture_output=True, timeout=60)
    return [decode(res.stdout), decode(res.stderr)]
out = {
    "list": run("list"), "list-json": run("list", "--json"), "list-csv": run("list", "--csv"),
    "ifaces": run("ifaces"), "ifaces-json": run("ifaces", "--json"),
    "who": [t for p in ports for t in run("who", str(p))],
    "who-json": [t for p in ports for t in run("who", str(p), "--json")],
}
for key, extra in (("watch", []), ("watch-json", ["--json"])):
    argv = [*cmd, "watch", "--interval", "0.2", *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = [proc.stderr.readline()]
    while b"watching" not in err[-1] and err[-1]:
        err.append(proc.stderr.readline())
    new = [listen(i) for i in range(len(names))]
    lines = []
    deadline = time.time() + 30
    while new and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        new = [p for p in new if b":%d" % p not in line]
    proc.send_signal(signal.SIGTERM)
    o, e = proc.communicate(timeout=30)
    out[key] = [decode(b"".join(lines) + o), decode(b"".join(err) + e)]
print(json.dumps(out))
"""


def _netns_available() -> str | None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs root, unshare and ip (iproute2)"
    probe = subprocess.run(
        [
            "unshare",
            "--net",
            "ip",
            "link",
            "add",
            "name",
            "pstest0",
            "type",
            "veth",
            "peer",
            "name",
            "pstest1",
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"cannot make a veth pair in a network namespace: {probe.stderr.strip()}"
    return None


IFACE_VALUES = {k: v for k, v in HOSTILE.items() if iface_name(v) is not None}


@pytest.fixture(scope="module")
def interfaces() -> dict[str, list[str]]:
    reason = _netns_available()
    if reason:
        pytest.skip(reason)
    names = ",".join(iface_name(v).hex() for v in IFACE_VALUES.values())  # type: ignore[union-attr]
    res = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", NETNS_SCRIPT, json.dumps(portscope_cmd()), names],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    outputs: dict[str, list[str]] = json.loads(res.stdout)
    for key, texts in outputs.items():
        assert "Traceback" not in "".join(texts), (key, texts)
    return outputs


@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    listeners = [
        {"proto": "tcp", "address": f"fe80::1%{value}", "port": 1 + i, "process": value, "user": value}
        for i, value in enumerate(HOSTILE.values())
    ]
    doc = {"format": "portscope-baseline", "version": 1, "listeners": listeners}
    path = tmp_path_factory.mktemp("hostile") / f"base-{HOSTILE['osc-title']}.json"
    path.write_text(json.dumps(doc))  # ensure_ascii: the file is valid UTF-8 whatever the values
    return str(path)


# ----------------------------------------------------------------------------------- dashboard


def _dashboard_data() -> tuple[Any, Any, Any, Callable[[], list[Any]], Callable[[int], Any]]:
    """Two snapshots (the second opens a listener per hostile value on an interface named with
    it), an exposure classifier that knows those interfaces, an interfaces source and a process
    detail source (exe, cwd, command line, parents: all hostile)."""
    from app.exposure import classify
    from app.interfaces import Address, Interface
    from app.model import ProcessInfo, Snapshot
    from app.procdetail import ProcessDetail
    from tests.tui.fixtures import BASE_SOCKETS, NOW, PROCS, fixed_detail, tcp

    procs = dict(PROCS)
    socks = list(BASE_SOCKETS)
    addrs = {"192.0.2.10": ["eth0"]}
    ifaces = []
    for i, value in enumerate(HOSTILE.values()):
        pid = 900 + i
        procs[pid] = ProcessInfo(pid, 1, value, f"/opt/{value}", (value, f"--name={value}"), value, NOW)
        addrs[f"192.0.2.{100 + i}"] = [value]
        ifaces.append(
            Interface(
                value, (Address("ipv4", f"192.0.2.{100 + i}", "255.255.255.0"),), True, 1500, 0, 1, 2, ()
            )
        )
    first = [*socks, *(tcp("127.0.0.1", 20000 + i, pid=900 + i) for i in range(len(HOSTILE)))]
    second = [*first, *(tcp(f"192.0.2.{100 + i}", 7000 + i, pid=900 + i) for i in range(len(HOSTILE)))]

    def snap(sockets: list[Any], at: float) -> Snapshot:
        return Snapshot(
            taken_at=at, sockets=tuple(sockets), processes=procs, hidden_owners=0,
            ephemeral=(32768, 60999), privileged=True,
        )  # fmt: skip

    class Exposure:
        def classify(self, ip: str) -> Any:
            return classify(ip, addrs)

    def detail(pid: int) -> ProcessDetail:
        info = procs.get(pid)
        if info is None or pid < 900:
            return fixed_detail(pid)
        return ProcessDetail(
            pid=pid, name=info.name, username=info.username, exe=info.exe, cwd=f"/srv/{info.name}",
            cmdline=info.cmdline, create_time=None, cpu_percent=1.0, memory_rss=1 << 20,
            parents=((1, info.name),),
        )  # fmt: skip

    return snap(first, NOW), snap(second, NOW + 2), Exposure(), lambda: ifaces, detail


def _screen(app: Any) -> str:
    """What the terminal would show: the text of every segment the compositor renders (toasts
    included), control segments (cursor moves) left out."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip if not seg.control) for strip in strips)


def _run_dashboard(script: Callable[[Any, Any, list[str]], Any]) -> list[str]:
    import asyncio

    from tests.tui.fixtures import SequenceCollector, make_app, until

    first, second, exposure, ifaces, detail = _dashboard_data()
    screens: list[str] = []

    async def drive() -> None:
        app = make_app(
            SequenceCollector(first, second),
            exposure=exposure,
            interfaces=ifaces,
            process_detail_source=detail,
            alert_exposed=True,
        )
        async with app.run_test(size=(200, 70), notifications=True) as pilot:
            await until(pilot, lambda: app.poll_count >= 1)
            await script(app, pilot, screens)
            assert app.is_running, "the dashboard ended"

    asyncio.run(drive())
    return screens


def dashboard_views() -> list[str]:
    async def script(app: Any, pilot: Any, screens: list[str]) -> None:
        from tests.tui.fixtures import until

        screens.append(_screen(app))  # listening
        await pilot.press("2")
        await pilot.pause()
        screens.append(_screen(app))  # connections
        await pilot.press("3")
        await until(pilot, lambda: "H1" in _screen(app))
        screens.append(_screen(app))  # interfaces
        await pilot.press("1")
        app.set_filter_text(":20000")  # the osc-title owner's row, then its detail pane
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: "/opt/" in _screen(app))
        screens.append(_screen(app))
        await pilot.press("escape", "escape")
        await pilot.press("r")
        await until(pilot, lambda: app.poll_count >= 2)
        await pilot.press("e")  # the events of the second poll: one opened listener per value
        await until(pilot, lambda: "7000" in _screen(app))
        screens.append(_screen(app))

    return _run_dashboard(script)


def dashboard_toasts() -> list[str]:
    async def script(app: Any, pilot: Any, screens: list[str]) -> None:
        from tests.tui.fixtures import until

        for value in HOSTILE.values():  # a filter term with markup and the value: an error toast
            await pilot.press("slash", *"pid:[/]", "enter")
            app.set_filter_text(f"pid:[/]{value}")
            await pilot.pause()
            # read now: a toast expires (NOTIFICATION_TIMEOUT) before a slow run reaches the end
            screens.extend(str(n.message) for n in app._notifications)
        await pilot.press("escape")
        app.set_filter_text(":7000")  # room for the toasts
        await pilot.press("r")  # new listeners beyond loopback on hostile interfaces: alert toasts
        await until(pilot, lambda: app.poll_count >= 2 and app.exposed_alerts > 0)
        await pilot.pause(0.3)
        screens.append(_screen(app))
        screens.extend(str(n.message) for n in app._notifications)
        assert all(not n.markup for n in app._notifications), [n.message for n in app._notifications]

    return _run_dashboard(script)


def dashboard_system_toasts() -> list[str]:
    """Toasts of system text: a collector warning and a failed poll, each holding every value
    and markup that does not parse ("[/]")."""
    import asyncio
    from dataclasses import replace

    from tests.tui.fixtures import make_app, until

    first, *_ = _dashboard_data()
    text = "[/]" + "".join(HOSTILE.values())

    class Collector:
        calls = 0

        def collect(self, *, port: int | None = None) -> Any:
            self.calls += 1
            if self.calls > 1:
                raise OSError(text)
            return replace(first, warnings=(text,))

    screens: list[str] = []

    async def drive() -> None:
        app = make_app(Collector())
        async with app.run_test(size=(200, 50), notifications=True) as pilot:
            await until(pilot, lambda: app.poll_count >= 1)
            await pilot.press("r")
            await until(pilot, lambda: bool(app.poll_errors))
            await pilot.pause(0.3)
            screens.append(_screen(app))
            assert app.is_running

    asyncio.run(drive())
    return screens


def _a_toast_shows(texts: list[str], _value: str) -> bool:
    """The toasts wrap the long text anywhere: that one is shown is enough (its tag)."""
    return any("[/]H1" in t for t in texts)


# -------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Output:
    """One output: ``produce(fixture)`` gives the texts it shows (stdout and stderr, or screens);
    ``present(texts, value)`` says whether ``value`` (or its escaped form) is among them."""

    name: str
    fixture: str | None  # the channel: "processes", "interfaces", "baseline_file", None
    produce: Callable[[Any], list[str]]
    present: Callable[[list[str], str], bool]
    values: tuple[str, ...] = tuple(HOSTILE)  # the hostile values it can carry


def _who_each(p: Processes, *extra: str) -> list[str]:
    return [text for c in p.children.values() for text in p.run("who", str(c.port), *extra)]


def _each(p: Processes, command: str, *extra: str) -> list[str]:
    """``portscope COMMAND PORT ...`` for every hostile child's port."""
    return [text for c in p.children.values() for text in p.run(command, str(c.port), *extra)]


def escaped_in_json(texts: list[str], value: str) -> bool:
    """The escaped value (printable's text, as metrics labels carry it) is in a JSON string."""
    wanted = printable(value)[:FIVE]
    for text in texts:
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        if any(wanted in s for s in _strings(doc)):
            return True
    return False


def in_exposition(texts: list[str], value: str) -> bool:
    """The escaped value is a label value of the Prometheus text (which doubles backslashes)."""
    wanted = printable(value)[:FIVE].replace("\\", "\\\\")
    return any(wanted in t for t in texts)


IFACES = tuple(IFACE_VALUES)
# watch's text lines show the process name (comm), which the listener child sets from a str: a
# value with invalid UTF-8 cannot be its name (its command line, in the NDJSON, has it)
NAMED = tuple(k for k in HOSTILE if k != "invalid-utf8")
FIVE = 5  # the tag and a few characters of the escaped value: enough to find a cut cell

OUTPUTS = [
    # a process's command line and name
    Output("list-table", "processes", lambda p: p.run("list"), escaped),
    Output("list-csv", "processes", lambda p: p.run("list", "--csv"), escaped),
    Output("list-json", "processes", lambda p: p.run("list", "--json"), in_json),
    Output("who-table", "processes", lambda p: _who_each(p), escaped),
    Output("who-json", "processes", lambda p: _who_each(p, "--json"), in_json),
    Output("watch-text", None, lambda _: _watch_processes(False), lambda t, v: escaped(t, v, FIVE), NAMED),
    Output("watch-ndjson", None, lambda _: _watch_processes(True), in_json),
    Output("explain-text", "processes", lambda p: _each(p, "explain", "--timeout", "0.3"), escaped),
    Output("explain-json", "processes", lambda p: _each(p, "explain", "--timeout", "0.3", "--json"), in_json),
    Output("kill-plan-text", "processes", lambda p: _each(p, "kill", "--dry-run"), escaped),
    Output("kill-plan-json", "processes", lambda p: _each(p, "kill", "--dry-run", "--json"), in_json),
    Output("metrics-text", "processes", lambda p: p.run("metrics"), in_exposition, NAMED),
    Output(
        "metrics-json",
        "processes",
        lambda p: p.run("metrics", "--json"),
        escaped_in_json,
        NAMED,
    ),
    # an interface's name
    Output("list-exposure", "interfaces", lambda o: o["list"], lambda t, v: escaped(t, v, FIVE), IFACES),
    Output("list-json-exposure", "interfaces", lambda o: o["list-json"], in_json, IFACES),
    Output("list-csv-exposure", "interfaces", lambda o: o["list-csv"], escaped, IFACES),
    Output("who-exposure", "interfaces", lambda o: o["who"], lambda t, v: escaped(t, v, FIVE), IFACES),
    Output("who-json-exposure", "interfaces", lambda o: o["who-json"], in_json, IFACES),
    Output("watch-exposure", "interfaces", lambda o: o["watch"], lambda t, v: escaped(t, v, FIVE), IFACES),
    Output("watch-ndjson-exposure", "interfaces", lambda o: o["watch-json"], in_json, IFACES),
    Output("ifaces-table", "interfaces", lambda o: o["ifaces"], escaped, IFACES),
    Output("ifaces-json", "interfaces", lambda o: o["ifaces-json"], in_json, IFACES),
    # a file
    Output("baseline-diff", "baseline_file", lambda f: _cli("baseline", "diff", f), escaped),
    Output("baseline-diff-json", "baseline_file", lambda f: _cli("baseline", "diff", f, "--json"), in_json),
    # the dashboard
    Output("dashboard-views", None, lambda _: dashboard_views(), lambda t, v: escaped(t, v, FIVE)),
    Output("dashboard-toasts", None, lambda _: dashboard_toasts(), lambda t, v: escaped(t, v, FIVE)),
    Output("dashboard-system-toasts", None, lambda _: dashboard_system_toasts(), _a_toast_shows),
]


@pytest.mark.slow
@pytest.mark.parametrize("output", OUTPUTS, ids=[getattr(o, "name", None) for o in OUTPUTS])
def test_no_raw_control_reaches_any_output(output: Output, request: pytest.FixtureRequest) -> None:
    channel = request.getfixturevalue(output.fixture) if output.fixture else None
    texts = output.produce(channel)
    for text in texts:
        assert not unsafe_characters(text), (output.name, unsafe_characters(text), text[:2000])
    missing = [k for k in output.values if not output.present(texts, HOSTILE[k])]
    assert not missing, (output.name, missing, [t[:3000] for t in texts])


def test_hostile_values_are_what_they_claim() -> None:
    """The sweep's own check: each value holds something the checker rejects."""
    for key, value in HOSTILE.items():
        assert unsafe_characters(value[2:]) or key == "markup", key
    assert unsafe_characters("[red]x") == [] and HOSTILE["markup"].startswith("H7[red]")
    assert len(IFACE_VALUES) >= 8  # most values also go through a real interface name


def test_the_sweep_catches_a_raw_value(tmp_path: Path) -> None:
    """If an output printed a value raw, the sweep would fail: its check is not vacuous."""
    for value in HOSTILE.values():
        if value != HOSTILE["markup"]:
            assert unsafe_characters(f"tcp 127.0.0.1:80 {value}")
    assert not unsafe_characters(printable("".join(HOSTILE.values())))
