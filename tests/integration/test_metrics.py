"""``portscope metrics`` end to end: real sockets, real child processes, promtool, a full and a
read-only file system, and thousands of connections inside a private network namespace."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.textsafe import printable
from tests.cgroups import HIERARCHIES, moved_into
from tests.helpers import Child, child_listener, portscope_cmd, run_cli

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (Debian package prometheus)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount, unshare)")

# A listener whose process name (comm, at most 15 bytes) holds everything the exposition format and
# a terminal care about: a quote, a backslash, a newline, an escape sequence, invalid UTF-8.
HOSTILE_COMM = b'ps"\\\n\x1b[31m\xff'
_HOSTILE_CHILD = r"""
import ctypes, socket, sys, time
ctypes.CDLL(None).prctl(15, bytes.fromhex(sys.argv[1]), 0, 0, 0)  # PR_SET_NAME
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def hostile() -> Iterator[Child]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOSTILE_CHILD, HOSTILE_COMM.hex()], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    child = Child(proc, port, "tcp", "127.0.0.1", HOSTILE_COMM.decode("utf-8", "surrogateescape"))
    try:
        with open(f"/proc/{proc.pid}/comm", "rb") as f:
            assert f.read().rstrip(b"\n") == HOSTILE_COMM  # the kernel kept every byte
        yield child
    finally:
        child.stop()


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def series(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    return [
        (lbl, v)
        for n, lbl, v in parse(text)
        if n == name and all(lbl.get(k) == want for k, want in labels.items())
    ]


def assert_no_raw_control(text: str) -> None:
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0]
    assert not bad, bad[:5]


@needs_promtool
def test_promtool_accepts_the_output_with_a_hostile_listener(hostile: Child) -> None:
    res = run_cli("metrics")
    assert res.returncode == 0, res.stderr
    assert_no_raw_control(res.stdout)
    assert PROMTOOL is not None
    check = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=res.stdout, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    [(labels, value)] = series(res.stdout, "portscope_listening_info", port=str(hostile.port))
    assert value == 1
    assert labels["process"] == printable(hostile.name)
    assert (
        labels["process"] == 'ps"\\\\\\n\\x1b[31m\\xff'
    )  # as list/who show it, escaped again for Prometheus
    assert labels["address"] == "127.0.0.1" and labels["exposure"] == "loopback"


@needs_promtool
def test_promtool_would_reject_a_raw_broken_line() -> None:
    """The check above can fail: promtool refuses a label value with a raw newline in it."""
    assert PROMTOOL is not None
    bad = '# HELP x_info x\n# TYPE x_info gauge\nx_info{process="a\nb"} 1\n'
    check = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=bad, capture_output=True, text=True, timeout=60
    )
    assert check.returncode != 0


def test_json_samples_shape(hostile: Child) -> None:
    res = run_cli("metrics", "--json", "--ports", str(hostile.port))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) == {"schema", "samples"} and doc["schema"] == 1
    for sample in doc["samples"]:
        assert set(sample) == {"name", "labels", "value"}
        assert sample["name"].startswith("portscope_")
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in sample["labels"].items())
        assert isinstance(sample["value"], int | float)
    names = {s["name"] for s in doc["samples"]}
    assert {
        "portscope_listening_info",
        "portscope_listeners",
        "portscope_ephemeral_listeners",
        "portscope_connections",
        "portscope_port_connections",
        "portscope_hidden_owners",
        "portscope_collector_duration_seconds",
        "portscope_build_info",
    } <= names
    [info] = [
        s
        for s in doc["samples"]
        if s["name"] == "portscope_listening_info" and s["labels"]["port"] == str(hostile.port)
    ]
    assert info["value"] == 1 and info["labels"]["process"] == printable(hostile.name)
    assert set(info["labels"]) == {
        "proto", "family", "address", "port", "exposure", "range", "process", "user", "service"
    }  # fmt: skip
    # the same samples as the text format
    text = run_cli("metrics", "--ports", str(hostile.port)).stdout
    assert {n for n, _, _ in parse(text)} == names


def test_queues_per_listener_and_connections_per_allowed_port() -> None:
    """A listener with backlog 4 and three connections nobody accepted: queue 3 of 4; a second
    listener with two accepted connections: port_connections established 2 for it only."""
    busy = socket.socket()
    served = socket.socket()
    clients: list[socket.socket] = []
    accepted: list[socket.socket] = []
    try:
        busy.bind(("127.0.0.1", 0))
        busy.listen(4)
        served.bind(("127.0.0.1", 0))
        served.listen(8)
        bport, sport = busy.getsockname()[1], served.getsockname()[1]
        for port in (bport, bport, bport, sport, sport):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        accepted = [served.accept()[0] for _ in range(2)]
        res = run_cli("metrics", "--ports", f"{bport},{sport}")
        assert res.returncode == 0, res.stderr
        out = res.stdout
        ours = {"address": "127.0.0.1", "port": str(bport)}
        assert series(out, "portscope_listen_queue_length", **ours) == [({"proto": "tcp", **ours}, 3)], out
        assert series(out, "portscope_listen_queue_max", **ours) == [({"proto": "tcp", **ours}, 4)], out
        assert series(out, "portscope_listen_queue_length", address="127.0.0.1", port=str(sport))[0][1] == 0
        assert series(out, "portscope_port_connections", port=str(sport), state="established")[0][1] == 2
        # the three waiting connections are established in the kernel's view (not accepted yet)
        assert series(out, "portscope_port_connections", port=str(bport), state="established")[0][1] == 3
        assert {lbl["port"] for lbl, _ in series(out, "portscope_port_connections")} == {
            str(bport),
            str(sport),
        }
        assert series(out, "portscope_listen_overflows_total") and series(out, "portscope_listen_drops_total")
        [(build, _)] = series(out, "portscope_build_info")
        assert build["collector"] == "netlink"
    finally:
        for s in [*clients, *accepted, busy, served]:
            s.close()


def test_psutil_backend_has_no_queue_series() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        res = run_cli("metrics", env={**os.environ, "PORTSCOPE_COLLECTOR": "psutil"})
        assert res.returncode == 0, res.stderr
        names = {n for n, _, _ in parse(res.stdout)}
        assert "portscope_listening_info" in names
        assert not names & {
            "portscope_listen_queue_length",
            "portscope_listen_queue_max",
            "portscope_listen_overflows_total",
            "portscope_listen_drops_total",
        }
        [(build, _)] = series(res.stdout, "portscope_build_info")
        assert build["collector"] == "psutil"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--ports", "70000"], "65535"),
        (["--ports", "1-101"], "too many ports (101)"),
        (["--ports", "22,,80"], "empty item"),
        (["--ports", "x\x1b[2J"], "invalid"),
        (["--json", "--textfile", "/tmp/x.prom"], "not allowed with"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], needle: str) -> None:
    res = run_cli("metrics", *args)
    assert res.returncode == 2
    assert res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and needle in res.stderr, res.stderr
    assert "\x1b" not in res.stderr and "Traceback" not in res.stderr


# --- --textfile -----------------------------------------------------------------------------------


def test_textfile_is_written_atomically_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "portscope.prom"
    target.write_text("old\n")
    target.chmod(0o640)
    res = run_cli("metrics", "--textfile", str(target))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    text = target.read_text()
    assert series(text, "portscope_build_info")
    assert stat_mode(target) == 0o640
    assert os.listdir(tmp_path) == ["portscope.prom"]  # no temp file left behind
    if PROMTOOL:
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_textfile_name_without_prom_is_written_with_a_hint(tmp_path: Path) -> None:
    res = run_cli("metrics", "--textfile", str(tmp_path / "metrics.txt"))
    assert res.returncode == 0
    assert "only files whose names end in .prom" in res.stderr
    assert (tmp_path / "metrics.txt").read_text().startswith("# HELP")


def test_textfile_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    for target in (tmp_path, tmp_path / "fifo", tmp_path / "missing" / "m.prom"):
        res = run_cli("metrics", "--textfile", str(target), timeout=30)
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("portscope: cannot write")


@contextlib.contextmanager
def small_tmpfs(size: str = "64k") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a new temporary directory, unmounted and removed after."""
    where = Path(tempfile.mkdtemp(prefix="portscope-tmpfs-"))
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                         capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        where.rmdir()


def fill(directory: Path) -> None:
    """Fill the file system of ``directory`` to the last byte."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


PREVIOUS = '# the previous, complete file\nportscope_build_info{collector="x",version="0"} 1\n'


@needs_root
def test_textfile_on_a_full_disk_fails_cleanly_and_keeps_the_previous_file() -> None:
    with small_tmpfs() as where:
        target = where / "portscope.prom"
        target.write_text(PREVIOUS)
        fill(where)
        res = run_cli("metrics", "--textfile", str(target))
        assert res.returncode == 2, res.stderr
        assert res.stderr.splitlines() == [
            line for line in res.stderr.splitlines() if line.startswith("portscope: ")
        ]  # fmt: skip
        errors = [ln for ln in res.stderr.splitlines() if "cannot write" in ln]
        assert len(errors) == 1 and "No space left on device" in errors[0], res.stderr
        assert "Traceback" not in res.stderr
        assert target.read_text() == PREVIOUS
        assert sorted(os.listdir(where)) == ["filler", "portscope.prom"]  # no partial temp file


@needs_root
def test_textfile_on_a_read_only_file_system_fails_cleanly() -> None:
    with small_tmpfs() as where:
        target = where / "portscope.prom"
        target.write_text(PREVIOUS)
        remount = subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        res = run_cli("metrics", "--textfile", str(target))
        assert res.returncode == 2
        errors = [ln for ln in res.stderr.splitlines() if "cannot write" in ln]
        assert len(errors) == 1 and "Read-only file system" in errors[0], res.stderr
        assert target.read_text() == PREVIOUS
        assert os.listdir(where) == ["portscope.prom"]


# --- bounded cardinality ----------------------------------------------------------------------------

# Runs inside `unshare --net` (only its own sockets exist there): series counts before and after
# N loopback connections to one listener.
_MANY = r"""
import json, os, resource, socket, subprocess, sys
n, cmd = int(sys.argv[1]), json.loads(sys.argv[2])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4096)
port = srv.getsockname()[1]

def count():
    args = [*cmd, "metrics", "--ports", str(port)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    lines = [l for l in out.splitlines() if l and not l.startswith("#")]
    est = [l for l in lines if l.startswith('portscope_connections{proto="tcp",state="established"}')]
    return {"series": len(lines), "established": float(est[0].rsplit(" ", 1)[1])}

before = count()
keep = []
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    keep += [c, srv.accept()[0]]
after = count()
print(json.dumps({"before": before, "after": after}))
"""


@needs_root
@pytest.mark.slow
def test_series_count_does_not_grow_with_connections() -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare (util-linux) and ip (iproute2)")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    n = min(10_000, (hard - 100) // 2)  # 20k sockets, as the issue asks (as many as the limit allows)
    if n < 2000:
        pytest.skip(f"the hard limit on open files ({hard}) is too low for thousands of sockets")
    res = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", _MANY, str(n), json.dumps(portscope_cmd())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if res.returncode != 0 and "unshare" in res.stderr and "Operation not permitted" in res.stderr:
        pytest.skip("cannot create a network namespace here")
    assert res.returncode == 0, res.stderr
    counts = json.loads(res.stdout)
    assert counts["before"]["established"] == 0
    assert counts["after"]["established"] == 2 * n  # both ends of every connection are counted...
    assert counts["after"]["series"] == counts["before"]["series"]  # ...in the same series


# --- start-up cost ----------------------------------------------------------------------------------

_PROBE = r"""
import sys
from app.cli.main import main
rc = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.write("PROM=%d RC=%d\n" % ("prometheus_client" in sys.modules, rc))
"""


@pytest.mark.parametrize(("args", "loaded"), [(["list"], 0), (["ifaces", "--json"], 0), (["metrics"], 1)])
def test_only_the_metrics_commands_import_prometheus_client(args: list[str], loaded: int) -> None:
    """prometheus_client costs tens of milliseconds to import: the parser (which registers every
    command, serve and metrics included) and other commands must not pay it."""
    res = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60)
    assert f"PROM={loaded} RC=0" in res.stderr.splitlines()[-1], res.stderr


@needs_root
@pytest.mark.parametrize("kind", HIERARCHIES)
def test_the_service_label_names_the_unit_of_a_listener(kind: str) -> None:
    with (
        child_listener("tcp", "127.0.0.1", name="ps-metrics-unit") as child,
        moved_into(child, kind, "ps-metrics-demo.service"),
    ):
        res = run_cli("metrics", "--json")
        assert res.returncode == 0, res.stderr
        [info] = [
            s
            for s in json.loads(res.stdout)["samples"]
            if s["name"] == "portscope_listening_info" and s["labels"]["port"] == str(child.port)
        ]
        assert info["labels"]["service"] == "ps-metrics-demo.service"
