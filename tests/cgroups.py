"""Real cgroups for tests: find the v2 and v1 ``name=systemd`` mounts, and move a child process
into a cgroup named as systemd or a container engine names theirs. Everything made goes under one
``portscope-test-PID.slice`` (a slice, so a unit below it reads as systemd would read it) and is
removed again; the process is moved back first."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import Child


def cgroup_mounts() -> dict[str, str]:
    """{"v2": mountpoint, "v1-systemd": mountpoint} for what /proc/mounts has."""
    out: dict[str, str] = {}
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) < 4:
            continue
        fstype, mnt, opts = parts[2], parts[1], parts[3].split(",")
        if fstype == "cgroup2" and "v2" not in out:
            out["v2"] = mnt
        elif fstype == "cgroup" and "name=systemd" in opts and "v1-systemd" not in out:
            out["v1-systemd"] = mnt
    return out


MOUNTS = cgroup_mounts()
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating cgroups and moving a process needs root")
HIERARCHIES = [
    pytest.param(
        kind,
        marks=pytest.mark.skipif(kind not in MOUNTS, reason=f"no {kind} cgroup mount in /proc/mounts"),
    )
    for kind in ("v2", "v1-systemd")
]


def current_cgroup(pid: int, kind: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hier, controllers, path = line.split(":", 2)
        if (kind == "v2" and hier == "0") or (kind != "v2" and "name=systemd" in controllers.split(",")):
            return path
    raise AssertionError(f"no {kind} line in /proc/{pid}/cgroup")


@contextmanager
def moved_into(child: Child, kind: str, relpath: str) -> Iterator[str]:
    """Make ``<mount>/portscope-test-PID.slice/<relpath>`` (every level), move ``child`` in; yield the
    cgroup path as /proc/PID/cgroup shows it. Always moves it back and removes what it made."""
    mount = MOUNTS[kind]
    root = f"portscope-test-{os.getpid()}.slice"
    back = current_cgroup(child.pid, kind)
    made: list[Path] = []
    try:
        path = Path(mount)
        for part in [root, *relpath.split("/")]:
            path = path / part
            if not path.exists():
                path.mkdir()
                made.append(path)
        (path / "cgroup.procs").write_text(str(child.pid))
        yield f"/{root}/{relpath}"
    finally:
        if child.proc.poll() is None:
            (Path(mount + back) / "cgroup.procs").write_text(str(child.pid))
        for p in reversed(made):
            p.rmdir()
