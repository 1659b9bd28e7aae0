"""``portscope baseline``: real listeners saved and diffed; bad files; the loader never raises."""

from __future__ import annotations

import json
import os
import pwd
import random
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.baseline import (
    Baseline,
    Entry,
    compare,
    dumps,
    entries_from_snapshot,
    load_baseline,
    make_baseline,
    parse_baseline,
)
from app.collector import PsutilCollector
from app.errors import UsageError
from app.model import Endpoint, Family, ProcessInfo, Proto, Snapshot, Sock
from app.ports import ephemeral_range, in_ephemeral
from app.service import service_of
from tests.cgroups import moved_into, needs_root
from tests.helpers import (
    Engine,
    child_listener,
    netns_works,
    run_cli,
    run_in_netns,
    spawn_listener,
    tiny_image_tar,
)

USER = pwd.getpwuid(os.getuid()).pw_name


def service_of_child(pid: int) -> str:
    """The service the baseline records for a test's child: wherever the test runner lives (no
    unit on a bare VM, a session scope or CI's unit elsewhere)."""
    svc = service_of(pid)
    return "" if svc is None else svc.name


def _ours(report: dict[str, Any], port: int) -> dict[str, list[Any]]:
    return {kind: [e for e in report[kind] if e["port"] == port] for kind in ("added", "removed", "changed")}


def test_save_records_listeners_without_pids(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    with child_listener("tcp", "127.0.0.1", name="ps-base-save") as child:
        res = run_cli("baseline", "save", str(path))
        service = service_of_child(child.pid)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""  # the file is the data; the note goes to stderr
    doc = json.loads(path.read_text())
    assert doc["format"] == "portscope-baseline" and doc["version"] == 2
    mine = [e for e in doc["listeners"] if e["port"] == child.port]
    assert mine == [
        {
            "proto": "tcp",
            "address": "127.0.0.1",
            "port": child.port,
            "process": "ps-base-save",
            "user": USER,
            "service": service,
            "image": "",
        }
    ]
    assert "pid" not in path.read_text()


def _free_udp_below_ephemeral() -> int:
    """A free UDP port outside the OS ephemeral range (there, unconnected UDP counts as a client)."""
    lo, _hi = ephemeral_range()
    for port in random.sample(range(20000, min(lo, 30000)), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free UDP port below the ephemeral range")


def test_diff_reports_added_and_removed_and_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    gone = spawn_listener("tcp", "127.0.0.1", name="ps-base-gone")
    try:
        assert run_cli("baseline", "save", str(path)).returncode == 0
    finally:
        gone.stop()
    with (
        child_listener("udp", "127.0.0.1", _free_udp_below_ephemeral(), name="ps-base-new") as new,
        child_listener("udp", "127.0.0.1", name="ps-base-eph") as eph,
    ):
        res = run_cli("baseline", "diff", str(path), "--json")
        human = run_cli("baseline", "diff", str(path))
        with_eph = run_cli("baseline", "diff", str(path), "--json", "--include-ephemeral-udp")
        service = service_of_child(new.pid)
    assert res.returncode == 3, res.stderr
    report = json.loads(res.stdout)
    assert report["drift"] is True and report["schema"] == 2
    assert _ours(report, new.port)["added"] == [
        {
            "proto": "udp",
            "address": "127.0.0.1",
            "port": new.port,
            "process": "ps-base-new",
            "user": USER,
            "service": service,
            "image": "",
        }
    ]
    assert [e["process"] for e in _ours(report, gone.port)["removed"]] == ["ps-base-gone"]
    # an unconnected UDP socket on an ephemeral port looks like a client: not drift by default
    assert in_ephemeral(eph.port) and _ours(report, eph.port)["added"] == []
    assert [e["process"] for e in _ours(json.loads(with_eph.stdout), eph.port)["added"]] == ["ps-base-eph"]
    assert human.returncode == 3
    lines = human.stdout.splitlines()
    assert any(line.startswith("added") and f"udp 127.0.0.1:{new.port}" in line for line in lines)
    assert any(line.startswith("removed") and f":{gone.port}" in line for line in lines)
    assert "drift" in human.stderr


def test_restarted_service_with_a_new_pid_is_not_drift(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    first = spawn_listener("tcp", "127.0.0.1", name="ps-base-svc")
    port = first.port
    try:
        assert run_cli("baseline", "save", str(path)).returncode == 0
    finally:
        first.stop()
    with child_listener("tcp", "127.0.0.1", port, name="ps-base-svc") as again:
        assert again.pid != first.pid
        res = run_cli("baseline", "diff", str(path), "--json")
        assert res.returncode in (0, 3), res.stderr  # 3 only if someone else's listener drifted
        assert _ours(json.loads(res.stdout), port) == {"added": [], "removed": [], "changed": []}
    with child_listener("tcp", "127.0.0.1", port, name="ps-base-other") as other:
        res = run_cli("baseline", "diff", str(path), "--json")
        service = service_of_child(other.pid)
    assert res.returncode == 3
    assert _ours(json.loads(res.stdout), port)["changed"] == [
        {
            "proto": "tcp",
            "address": "127.0.0.1",
            "port": port,
            "before": {"process": "ps-base-svc", "user": USER, "service": service, "image": ""},
            "after": {"process": "ps-base-other", "user": USER, "service": service, "image": ""},
        }
    ]
    assert other.pid


def test_diff_of_an_unchanged_host_exits_0(tmp_path: Path) -> None:
    """In a network namespace of its own (a listener, nothing else: other tests and engineers on
    this machine open sockets all the time); without one, retried for a quiet moment."""
    path = tmp_path / "base.json"
    if netns_works():
        got = run_in_netns(
            f"""
            srv = socket.socket()
            srv.bind(("127.0.0.1", 0))
            srv.listen()
            save = cli("baseline", "save", {str(path)!r})
            diff = cli("baseline", "diff", {str(path)!r})
            print(json.dumps([save["rc"], diff["rc"], diff["out"], diff["err"], srv.getsockname()[1]]))
            """
        )
        assert isinstance(got, list)
        save_rc, diff_rc, out, err, port = got
        assert (save_rc, diff_rc, out) == (0, 0, ""), err
        assert "no drift" in err
        assert f":{port}" in path.read_text() or str(port) in path.read_text()  # it saw the listener
        return
    results = []
    for _ in range(5):
        assert run_cli("baseline", "save", str(path)).returncode == 0
        res = run_cli("baseline", "diff", str(path))
        results.append((res.returncode, res.stdout, res.stderr))
        if res.returncode == 0:
            assert res.stdout == "" and "no drift" in res.stderr
            return
    pytest.fail(f"diff right after save kept reporting drift: {results!r}")


def _bad(tmp_path: Path, name: str, content: bytes | None) -> tuple[str, str]:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    res = run_cli("baseline", "diff", str(path))
    assert res.returncode == 2, (name, res.stdout, res.stderr)
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert str(path) in res.stderr
    return res.stderr, str(path)


def test_bad_baseline_files_exit_2_with_one_clear_line(tmp_path: Path) -> None:
    good = dumps(Baseline((Entry("tcp", "127.0.0.1", 8080, "svc", "root"),))).encode()
    assert "truncated" in _bad(tmp_path, "cut.json", good[: len(good) // 2])[0]
    assert "not valid JSON" in _bad(tmp_path, "text.json", b"hello, I am not JSON\n")[0]
    assert "No such file" in _bad(tmp_path, "missing.json", None)[0]
    assert "empty" in _bad(tmp_path, "empty.json", b"")[0]
    assert "not UTF-8" in _bad(tmp_path, "bin.json", b"\xff\xfe\x00garbage")[0]
    assert "not a portscope baseline" in _bad(tmp_path, "list.json", b"[1, 2, 3]")[0]
    wrong_port = good.replace(b"8080", b'"http"')
    assert "listeners[0].port must be a whole number" in _bad(tmp_path, "port.json", wrong_port)[0]
    bad_addr = good.replace(b"127.0.0.1", b"localhost")
    assert "listeners[0].address 'localhost' is not an IP address" in _bad(tmp_path, "addr.json", bad_addr)[0]
    (tmp_path / "adir").mkdir()
    assert "it is a directory, not a regular file" in _bad(tmp_path, "adir", None)[0]


def test_save_to_an_unwritable_place_exits_2(tmp_path: Path) -> None:
    res = run_cli("baseline", "save", str(tmp_path / "no" / "dir" / "b.json"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "cannot write baseline" in res.stderr


def test_save_to_stdout_round_trips() -> None:
    res = run_cli("baseline", "save", "-")
    assert res.returncode == 0
    loaded = parse_baseline(res.stdout.encode(), "-")
    assert dumps(loaded) == res.stdout


# --- pure rules -------------------------------------------------------------------------------


def _sock(proto: Proto, ip: str, port: int, pid: int | None) -> Sock:
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    status = "LISTEN" if proto is Proto.TCP else "BOUND"
    return Sock(proto, fam, Endpoint(ip, port), None, status, pid)


def test_ephemeral_udp_is_left_out_unless_asked() -> None:
    socks = (
        _sock(Proto.UDP, "0.0.0.0", 40000, 5),  # an unconnected UDP client port: left out
        _sock(Proto.UDP, "0.0.0.0", 53, 5),
        _sock(Proto.TCP, "0.0.0.0", 40001, 5),  # a TCP listener is kept whatever its port
        _sock(Proto.TCP, "0:0::0", 22, 5),
        _sock(Proto.TCP, "0:0::0", 22, 6),  # a sibling on the same endpoint: one entry, both names
    )
    procs = {
        5: ProcessInfo(5, 1, "svc", "", (), "root", 1.0),
        6: ProcessInfo(6, 1, "helper", "", (), "nobody", 1.0),
    }
    snap = Snapshot(taken_at=1.0, sockets=socks, processes=procs, ephemeral=(32768, 60999))
    assert [e.identity for e in entries_from_snapshot(snap)] == [
        ("tcp", "::", 22),
        ("udp", "0.0.0.0", 53),
        ("tcp", "0.0.0.0", 40001),
    ]
    assert entries_from_snapshot(snap)[0] == Entry("tcp", "::", 22, "helper,svc", "nobody,root")
    assert ("udp", "0.0.0.0", 40000) in [e.identity for e in entries_from_snapshot(snap, True)]
    assert make_baseline(snap, True).include_ephemeral_udp


def test_unknown_owner_is_not_a_change() -> None:
    known = [Entry("tcp", "::", 22, "sshd", "root")]
    unknown = [Entry("tcp", "::", 22, "", "")]
    assert not compare(known, unknown).drifted
    assert not compare(unknown, known).drifted
    assert compare(known, [Entry("tcp", "::", 22, "sshd", "nobody")]).changed


def test_self_diff_of_a_real_snapshot_is_empty() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-base-self"):
        snap = PsutilCollector().collect()
    entries = entries_from_snapshot(snap)
    again = parse_baseline(dumps(make_baseline(snap)).encode())
    assert sorted(again.listeners) == sorted(entries)
    assert not compare(again.listeners, entries).drifted


# --- the loader never raises anything but UsageError --------------------------------------------


def _check(data: bytes) -> None:
    try:
        result = parse_baseline(data, "fuzz")
    except UsageError as exc:
        assert "\n" not in str(exc) and "fuzz" in str(exc)
    else:
        assert isinstance(result, Baseline)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_loader_on_arbitrary_bytes(data: bytes) -> None:
    _check(data)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["tcp", "udp", "::", "127.0.0.1", "fe80::1%eth0", "portscope-baseline"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
_entry = st.fixed_dictionaries(
    {},
    optional={
        "proto": _json | st.sampled_from(["tcp", "udp", "TCP"]),
        "address": _json | st.sampled_from(["127.0.0.1", "::", "0:0::0", "1.2.3"]),
        "port": _json | st.integers(-5, 70000),
        "process": _json,
        "user": _json,
        "service": _json,
        "image": _json,
    },
)
_doc = st.fixed_dictionaries(
    {"format": st.just("portscope-baseline") | _json},
    optional={
        "version": st.sampled_from([1, 2]) | _json,
        "listeners": st.lists(_entry | _json, max_size=4) | _json,
        "include_ephemeral_udp": st.booleans() | _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(_doc | _json)
def test_loader_on_arbitrary_json(doc: object) -> None:
    _check(json.dumps(doc).encode())


def test_loader_on_deep_nesting_and_huge_numbers() -> None:
    _check(b"[" * 100_000 + b"]" * 100_000)
    _check(
        b'{"format":"portscope-baseline","version":1,"listeners":[{"proto":"tcp","address":"::","port":'
        + b"9" * 5000
        + b"}]}"
    )
    _check(b'{"format":"portscope-baseline","version":1e999,"listeners":[]}')


def test_valid_document_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.json"
    path.write_text(
        json.dumps(
            {
                "format": "portscope-baseline",
                "version": 1,
                "listeners": [
                    {"proto": "TCP", "address": "0:0::0", "port": 22},
                    {"proto": "udp", "address": "::1", "port": 53, "process": "dns", "user": "x"},
                ],
            }
        )
    )
    base = load_baseline(str(path))
    assert base.listeners == (Entry("tcp", "::", 22), Entry("udp", "::1", 53, "dns", "x"))
    assert not base.include_ephemeral_udp


# --- services and images (baseline version 2) ---------------------------------------------------


def test_services_and_images_are_compared_when_known_on_both_sides() -> None:
    web1 = Entry("tcp", "0.0.0.0", 80, "nginx", "root", "web", "nginx:1.25")
    restarted = Entry("tcp", "0.0.0.0", 80, "nginx", "root", "web", "nginx:1.25")  # new pid: same entry
    assert not compare([web1], [restarted]).drifted
    new_image = Entry("tcp", "0.0.0.0", 80, "nginx", "root", "web", "nginx:1.26")
    assert compare([web1], [new_image]).changed == [(web1, new_image)]
    other = Entry("tcp", "0.0.0.0", 80, "nginx", "root", "other-web", "nginx:1.25")
    assert compare([web1], [other]).changed
    unit = Entry("tcp", "::", 22, "sshd", "root", "ssh.service")
    assert compare([unit], [Entry("tcp", "::", 22, "sshd", "root", "sshd-alt.service")]).changed
    # unknown on one side (a version 1 file, no engine API for the image, no root): not compared
    assert not compare([Entry("tcp", "0.0.0.0", 80, "nginx", "root")], [web1]).drifted
    assert not compare([web1], [Entry("tcp", "0.0.0.0", 80, "nginx", "root", "web", "")]).drifted
    # a login session's scope changes with every login: not a change of service
    dev = Entry("tcp", "127.0.0.1", 3000, "node", "me", "session-3.scope")
    assert not compare([dev], [Entry("tcp", "127.0.0.1", 3000, "node", "me", "session-7.scope")]).drifted


def test_version_1_files_are_read_and_version_2_round_trips(tmp_path: Path) -> None:
    v1 = tmp_path / "v1.json"
    v1.write_text(
        json.dumps(
            {
                "format": "portscope-baseline",
                "version": 1,
                "listeners": [
                    {"proto": "tcp", "address": "::", "port": 22, "process": "sshd", "user": "root"}
                ],
            }
        )
    )
    old = load_baseline(str(v1))
    assert old.listeners == (Entry("tcp", "::", 22, "sshd", "root", "", ""),)
    now = [Entry("tcp", "::", 22, "sshd", "root", "ssh.service", "")]
    assert not compare(old.listeners, now).drifted  # version 1 knew no services: nothing to compare
    base = Baseline(listeners=tuple(now), created="x", host="h")
    doc = json.loads(dumps(base))
    assert doc["version"] == 2 and doc["listeners"][0]["service"] == "ssh.service"
    assert parse_baseline(dumps(base).encode()).listeners == base.listeners
    with pytest.raises(UsageError, match="version 3 is not supported"):
        parse_baseline(json.dumps({**doc, "version": 3}).encode())


CID1 = "a1" * 32
CID2 = "b2" * 32


def _hierarchy() -> str:
    from tests.cgroups import MOUNTS

    for kind in ("v2", "v1-systemd"):
        if kind in MOUNTS:
            return kind
    pytest.skip("no cgroup v2 or v1 name=systemd mount")


@needs_root
def test_a_container_restarted_with_a_new_pid_is_not_drift_another_container_is(tmp_path: Path) -> None:
    """Real listeners moved into real cgroups named as Docker names a container's scope: the
    container's restart (a new pid in the same container) is not drift; another container on the
    same port is, although process and user are the same."""
    kind = _hierarchy()
    path = tmp_path / "base.json"
    with child_listener("tcp", "127.0.0.1", name="ps-base-ctr") as first:
        port = first.port
        with moved_into(first, kind, f"docker-{CID1}.scope"):
            assert run_cli("baseline", "save", str(path)).returncode == 0
    [mine] = [e for e in json.loads(path.read_text())["listeners"] if e["port"] == port]
    assert mine["service"] == CID1[:12] and mine["process"] == "ps-base-ctr"  # no engine: the short id
    with child_listener("tcp", "127.0.0.1", port, name="ps-base-ctr") as again:
        assert again.pid != first.pid
        with moved_into(again, kind, f"docker-{CID1}.scope"):
            res = run_cli("baseline", "diff", str(path), "--json")
    assert _ours(json.loads(res.stdout), port) == {"added": [], "removed": [], "changed": []}, res.stderr
    with (
        child_listener("tcp", "127.0.0.1", port, name="ps-base-ctr") as other,
        moved_into(other, kind, f"docker-{CID2}.scope"),
    ):
        res = run_cli("baseline", "diff", str(path), "--json")
        human = run_cli("baseline", "diff", str(path))
    assert res.returncode == 3
    [change] = _ours(json.loads(res.stdout), port)["changed"]
    assert change["before"]["service"] == CID1[:12] and change["after"]["service"] == CID2[:12]
    assert any(line.startswith("changed") and f"[{CID2[:12]}]" in line for line in human.stdout.splitlines())


@needs_root
def test_a_container_with_another_image_is_drift(tmp_path: Path, engine: Engine) -> None:
    """The names and images come from a real engine's API (podman system service): the container
    "web" restarted (a new pid) is not drift; "web" re-created from another image is."""
    kind = _hierarchy()
    env = {**os.environ, "DOCKER_HOST": f"unix://{engine.sock}"}
    path = tmp_path / "base.json"
    with child_listener("tcp", "127.0.0.1", name="ps-base-img") as first:
        port = first.port
        with moved_into(first, kind, f"libpod-{engine.cid}.scope"):
            assert run_cli("baseline", "save", str(path), env=env).returncode == 0
    [mine] = [e for e in json.loads(path.read_text())["listeners"] if e["port"] == port]
    assert (mine["service"], mine["image"]) == ("web", engine.image)
    with (
        child_listener("tcp", "127.0.0.1", port, name="ps-base-img") as again,
        moved_into(again, kind, f"libpod-{engine.cid}.scope"),
    ):
        res = run_cli("baseline", "diff", str(path), "--json", env=env)
    assert _ours(json.loads(res.stdout), port)["changed"] == [], res.stderr
    # "web" again, from another image: a new container id, the same name
    image2 = "localhost/portscope-test:2"
    tar = tmp_path / "image2.tar"
    tar.write_bytes(tiny_image_tar())
    subprocess.run([*engine.podman, "import", str(tar), image2], check=True, capture_output=True, timeout=120)
    subprocess.run([*engine.podman, "rm", "--force", "web"], check=True, capture_output=True, timeout=60)
    made = subprocess.run(
        [*engine.podman, "create", "--name", "web", image2, "/hello.txt"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    cid2 = made.stdout.strip().splitlines()[-1]
    with (
        child_listener("tcp", "127.0.0.1", port, name="ps-base-img") as other,
        moved_into(other, kind, f"libpod-{cid2}.scope"),
    ):
        res = run_cli("baseline", "diff", str(path), "--json", env=env)
    assert res.returncode == 3, res.stderr
    [change] = _ours(json.loads(res.stdout), port)["changed"]
    assert change["before"] == {
        "process": "ps-base-img",
        "user": USER,
        "service": "web",
        "image": engine.image,
    }
    assert change["after"] == {"process": "ps-base-img", "user": USER, "service": "web", "image": image2}
