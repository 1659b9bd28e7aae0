"""The service of a real process in real cgroups, named as systemd and the container engines name
theirs (cgroup v2 and the v1 name=systemd hierarchy), and socket activation by a process named
systemd. Each test makes its cgroups under one unique ``portscope-test-….slice`` (a slice, so a unit
below it is read as systemd would), moves a real listener child in, and always moves it back and
removes the cgroups."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from app import service as service_mod
from app.service import (
    CONTAINER,
    SOCKET,
    UNIT,
    USER_UNIT,
    Service,
    ServiceCache,
    forget_pids,
    service_of,
    socket_activation,
)
from tests.cgroups import HIERARCHIES, MOUNTS, current_cgroup, moved_into, needs_root
from tests.helpers import Child, child_listener

DOCKER_ID = "3f4e1a2b" * 8
PODMAN_ID = "a1b2c3d4" * 8
CRI_ID = "0123456789abcdef" * 4
POD_UID = "5e6f7a8b-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.fixture
def child() -> Iterator[Child]:
    with child_listener("tcp", "127.0.0.1", name="ps-cg-srv") as c:
        yield c


CASES = [
    # (path below the test slice, kind, name, extra checks, stop command)
    (
        "system.slice/nginx.service",
        UNIT,
        "nginx.service",
        {"unit": "nginx.service"},
        "systemctl stop nginx.service",
    ),
    ("system.slice/nginx.service/payload", UNIT, "nginx.service", {}, "systemctl stop nginx.service"),
    ("user.slice/user-1000.slice/session-3.scope", UNIT, "session-3.scope", {}, None),
    (
        "user.slice/user-0.slice/user@0.service/app.slice/x.service",
        USER_UNIT,
        "x.service",
        {"uid": 0},
        "systemctl --user stop x.service",
    ),
    (
        "system.slice/docker-" + DOCKER_ID + ".scope",
        CONTAINER,
        DOCKER_ID[:12],
        {"engine": "docker", "id": DOCKER_ID, "unit": f"docker-{DOCKER_ID}.scope"},
        f"docker stop {DOCKER_ID[:12]}",
    ),
    ("docker/" + DOCKER_ID, CONTAINER, DOCKER_ID[:12], {"engine": "docker", "id": DOCKER_ID}, None),
    (
        "machine.slice/libpod-" + PODMAN_ID + ".scope",
        CONTAINER,
        PODMAN_ID[:12],
        {"engine": "podman", "id": PODMAN_ID, "role": None},
        f"podman stop {PODMAN_ID[:12]}",
    ),
    (
        "machine.slice/libpod-conmon-" + PODMAN_ID + ".scope",
        CONTAINER,
        PODMAN_ID[:12],
        {"engine": "podman", "role": "conmon"},
        None,
    ),
    ("libpod_parent/libpod-" + PODMAN_ID, CONTAINER, PODMAN_ID[:12], {"engine": "podman"}, None),
    (
        "system.slice/cri-containerd-" + CRI_ID + ".scope",
        CONTAINER,
        CRI_ID[:12],
        {"engine": "containerd", "pod": None},
        None,
    ),
    (
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
        + POD_UID.replace("-", "_")
        + ".slice/cri-containerd-"
        + CRI_ID
        + ".scope",
        CONTAINER,
        CRI_ID[:12],
        {"engine": "kubernetes", "pod": POD_UID, "id": CRI_ID},
        None,
    ),
    (
        "kubepods/besteffort/pod" + POD_UID + "/" + CRI_ID,
        CONTAINER,
        CRI_ID[:12],
        {"engine": "kubernetes", "pod": POD_UID, "id": CRI_ID},
        None,
    ),
    ("lxc.payload.web", CONTAINER, "web", {"engine": "lxc", "role": None}, "lxc-stop -n web"),
    ("lxc.monitor.web", CONTAINER, "web", {"engine": "lxc", "role": "monitor"}, "lxc-stop -n web"),
    ("lxc/web", CONTAINER, "web", {"engine": "lxc"}, "lxc-stop -n web"),
]


@needs_root
@pytest.mark.parametrize("kind", HIERARCHIES)
@pytest.mark.parametrize(("relpath", "skind", "name", "extra", "stop"), CASES, ids=[c[0][:60] for c in CASES])
def test_service_of_a_real_process_in_a_real_cgroup(
    child: Child, kind: str, relpath: str, skind: str, name: str, extra: dict[str, object], stop: str | None
) -> None:
    assert service_of(child.pid) is None  # not in any unit before
    with moved_into(child, kind, relpath) as shown:
        assert current_cgroup(child.pid, kind) == shown
        svc = service_of(child.pid)
        assert svc is not None, shown
        assert (svc.kind, svc.name) == (skind, name)
        for key, value in extra.items():
            assert getattr(svc, key) == value, key
        assert svc.cgroup == shown
        if stop is not None:
            assert svc.stop_command() == stop
        elif "stop" not in extra and skind == UNIT:
            assert svc.stop_command() is None
    assert service_of(child.pid) is None


@needs_root
@pytest.mark.skipif("v2" not in MOUNTS, reason="no cgroup v2 mount")
def test_a_container_path_wins_over_a_unit_in_the_other_hierarchy(child: Child) -> None:
    if "v1-systemd" not in MOUNTS:
        pytest.skip("needs both a v2 and a v1 name=systemd mount")
    with moved_into(child, "v1-systemd", "system.slice/sshd.service"):
        assert service_of(child.pid) == Service(
            UNIT, "sshd.service", unit="sshd.service", cgroup=current_cgroup(child.pid, "v1-systemd")
        )
        with moved_into(child, "v2", f"system.slice/docker-{DOCKER_ID}.scope"):
            svc = service_of(child.pid)
            assert svc is not None and svc.kind == CONTAINER and svc.id == DOCKER_ID


@needs_root
@pytest.mark.skipif("v2" not in MOUNTS, reason="no cgroup v2 mount")
def test_cached_per_process_until_forgotten(child: Child) -> None:
    import psutil

    start = psutil.Process(child.pid).create_time()
    cache = ServiceCache()
    with moved_into(child, "v2", "system.slice/first.service"):
        assert service_of(child.pid, start) is not None
        first = cache.get(child.pid, start)
        assert first is not None and first.name == "first.service"
    with moved_into(child, "v2", "system.slice/second.service"):
        again = cache.get(child.pid, start)
        assert again is first  # the cgroup file is not read again for the same process
        assert cache.get(child.pid, start + 1.0).name == "second.service"  # type: ignore[union-attr]
        cache.forget_pids([child.pid])
        assert cache.get(child.pid, start).name == "second.service"  # type: ignore[union-attr]
        forget_pids([child.pid])
        assert service_of(child.pid, start).name == "second.service"  # type: ignore[union-attr]
    forget_pids([child.pid])


def test_gone_process_has_no_service() -> None:
    proc = subprocess.Popen(["sleep", "0"])
    proc.wait()
    assert service_of(proc.pid) is None
    assert ServiceCache().get(proc.pid, 1.0) is None


# --- hostile names --------------------------------------------------------------------------------

HOSTILE = "\x1b[31mred\x1b]0;title\x07\u202eevil\\x"


@needs_root
@pytest.mark.parametrize("kind", HIERARCHIES)
def test_hostile_unit_names_are_escaped(child: Child, kind: str) -> None:
    unit = HOSTILE + ".service"
    with moved_into(child, kind, f"system.slice/{unit}"):
        svc = service_of(child.pid)
        assert svc is not None and svc.name == unit  # the raw name, as the kernel shows it
        label = svc.label()
        assert "\x1b" not in label and "\x07" not in label and "\u202e" not in label
        assert "\\x1b[31mred" in label and "\\u202eevil" in label and "\\\\x" in label
        stop = svc.stop_command()
        assert stop is not None and "\x1b" not in stop and stop.startswith("systemctl stop '")


@needs_root
@pytest.mark.parametrize("kind", HIERARCHIES)
def test_hostile_container_names_and_huge_paths(child: Child, kind: str) -> None:
    deep = "/".join(["d" * 200 + ".slice"] * 12)  # a path of more than 2,400 characters
    with moved_into(child, kind, f"{deep}/lxc.payload.{HOSTILE}"):
        svc = service_of(child.pid)
        assert svc is not None and svc.engine == "lxc" and svc.name == HOSTILE
        label = svc.label()
        assert label.startswith("container \\x1b[31mred") and "\x1b" not in label
        assert len(svc.label(limit=40)) <= 40
        assert "\x1b" not in (svc.stop_command() or "")
    with moved_into(child, kind, f"{deep}/system.slice/{'u' * 240}.service"):
        svc = service_of(child.pid)
        assert svc is not None and len(svc.cgroup) > 2400
        assert svc.label().endswith("…") and len(svc.label()) == 80


# --- socket activation ----------------------------------------------------------------------------


def test_a_listener_of_a_non_systemd_process_is_not_socket_activation(child: Child) -> None:
    assert socket_activation(child.pid, child.port) is None


def _systemctl_sockets(text: str):  # type: ignore[no-untyped-def]
    calls: list[list[str]] = []

    def run(argv: list[str]) -> str | None:
        calls.append(argv)
        return text

    return run, calls


LIST_SOCKETS = """\
/run/dbus/system_bus_socket Stream dbus.socket dbus.service
[::]:22 Stream ssh.socket ssh.service
127.0.0.1:631 Stream cups.socket cups.service
0.0.0.0:5353 Datagram avahi.socket avahi-daemon.service
"""


@needs_root
@pytest.mark.skipif("v2" not in MOUNTS, reason="no cgroup v2 mount")
def test_socket_activation_by_a_user_manager(child: Child) -> None:
    """A real process named systemd in a user manager's cgroup holds a real listener: its unit is
    asked of `systemctl --user` (the runner is injected: no systemd runs on this test machine)."""
    with (
        child_listener("tcp", "127.0.0.1", name="systemd") as mgr,
        moved_into(mgr, "v2", "user.slice/user-0.slice/user@0.service/init.scope"),
    ):
        text = LIST_SOCKETS.replace("127.0.0.1:631", f"127.0.0.1:{mgr.port}")
        run, calls = _systemctl_sockets(text)
        svc = socket_activation(mgr.pid, mgr.port, "tcp", "127.0.0.1", run=run)
        assert svc is not None and svc.kind == SOCKET
        assert (svc.name, svc.activates) == ("cups.socket", ("cups.service",))
        assert calls and calls[0][:2] == ["systemctl", "--user"] and "list-sockets" in calls[0]
        assert svc.stop_command() == "systemctl stop cups.socket cups.service"
        assert svc.label() == "cups.socket (socket activation)"
        # a port systemd does not list: unknown, not a guess
        unknown = socket_activation(mgr.pid, 1, "tcp", "127.0.0.1", run=run)
        assert unknown is not None and unknown.unit is None and unknown.stop_command() is None


def test_socket_activation_where_systemd_is_not_running(child: Child) -> None:
    """A process named systemd outside any manager cgroup, on a machine where systemctl cannot ask
    systemd: the unit is unknown (and said so), nothing is guessed."""
    with child_listener("tcp", "127.0.0.1", name="systemd") as fake:
        svc = socket_activation(fake.pid, fake.port, "tcp", "127.0.0.1", systemd_dir="/nonexistent")
        assert svc is not None and svc.kind == SOCKET and svc.unit is None
        assert svc.label() == "systemd socket activation (unit unknown)"


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")
@pytest.mark.skipif(
    os.path.isdir("/run/systemd/system"), reason="systemd runs here: the failure path is not real"
)
def test_real_systemctl_without_systemd_gives_unknown() -> None:
    assert service_mod._run_systemctl(["systemctl", *service_mod._LIST_SOCKETS]) is None


@pytest.mark.skipif(not os.path.isdir("/run/systemd/system"), reason="systemd is not running as init here")
def test_real_systemd_socket_units_parse() -> None:
    text = service_mod._run_systemctl(["systemctl", *service_mod._LIST_SOCKETS])
    assert text is not None
    entries = service_mod.parse_list_sockets(text)
    assert all(re.fullmatch(r"\S+\.socket", e.unit) for e in entries)
