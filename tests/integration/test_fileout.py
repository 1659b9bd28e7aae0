"""File output (app/fileout.py) and file input that must not block, on real kernel objects:
device nodes made with mknod (never the host's /dev/null), FIFOs, sockets, symlinks, directories.

The rule: write through only to regular files or new paths (atomically, mode kept), `-` and
character devices in place, symlinks followed (the link kept), everything else refused (exit 2).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import exitcodes
from app.errors import OutputError, UsageError
from app.fileout import open_append, write_atomic
from tests.helpers import portscope_cmd, run_cli

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mknod of device nodes needs root")


def _null_device(path: Path) -> Path:
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    return path


def _full_device(path: Path) -> Path:
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # what /dev/full is
    return path


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    try:
        yield path
    finally:
        s.close()


def _save(path: Path | str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return run_cli("baseline", "save", str(path), timeout=30, **kwargs)


# -- baseline save -----------------------------------------------------------------------------------


@needs_root
def test_save_to_a_character_device_writes_in_place(tmp_path: Path) -> None:
    node = _null_device(tmp_path / "null")
    res = _save(node)
    assert res.returncode == 0, res.stderr
    assert stat.S_ISCHR(node.stat().st_mode), "the device was replaced by a regular file"
    assert node.stat().st_rdev == os.makedev(1, 3)


@needs_root
def test_save_to_a_full_device_is_one_line_exit_74(tmp_path: Path) -> None:
    node = _full_device(tmp_path / "full")
    res = _save(node)
    assert res.returncode == exitcodes.OUTPUT, res.stderr
    assert res.stderr.count("\n") == 1 and "No space left on device" in res.stderr
    assert stat.S_ISCHR(node.stat().st_mode)


def test_save_through_a_symlink_to_stdout_reaches_stdout(tmp_path: Path) -> None:
    """What `baseline save /dev/stdout` does (a symlink to /proc/self/fd/1), on a link of our own."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    res = _save(link)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["format"] == "portscope-baseline"
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"


def test_save_dash_is_stdout() -> None:
    res = _save("-")
    assert res.returncode == 0 and json.loads(res.stdout)["format"] == "portscope-baseline"


def test_save_follows_a_symlink_and_keeps_it_and_the_targets_mode(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    target.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    res = _save(link)
    assert res.returncode == 0, res.stderr
    assert link.is_symlink() and link.resolve() == target
    assert json.loads(target.read_text())["format"] == "portscope-baseline"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]  # no temp left


def test_save_through_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "new.json")
    assert _save(link).returncode == 0
    assert link.is_symlink() and json.loads((tmp_path / "new.json").read_text())


def test_save_over_a_regular_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("old")
    path.chmod(0o640)
    inode = path.stat().st_ino
    assert _save(path).returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode  # replaced by rename: a reader never sees half a file


def test_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    res = run_cli("baseline", "save", str(path), timeout=30, preexec_fn=lambda: os.umask(0o027))
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("kind", ["directory", "fifo", "socket", "block device"])
def test_save_refuses_what_is_not_a_regular_file(kind: str, tmp_path: Path, unix_socket: Path) -> None:
    if kind == "block device" and not ROOT:
        pytest.skip("mknod needs root")
    path = {"directory": tmp_path / "d", "fifo": tmp_path / "f", "socket": unix_socket}.get(kind)
    if kind == "directory":
        assert path is not None
        path.mkdir()
    elif kind == "fifo":
        assert path is not None
        os.mkfifo(path)
    elif kind == "block device":
        path = tmp_path / "blk"
        os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(7, 250))  # a loop device number, unused
    assert path is not None
    before = path.lstat().st_mode
    res = _save(path)
    assert res.returncode == exitcodes.USAGE, res.stderr
    assert res.stderr.count("\n") == 1 and "not a regular file" in res.stderr, res.stderr
    assert stat.S_IFMT(path.lstat().st_mode) == stat.S_IFMT(before), "it was replaced"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# -- reading and appending must never block -----------------------------------------------------------


def test_baseline_diff_of_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    res = run_cli("baseline", "diff", str(fifo), timeout=20)  # blocked in open() forever before
    assert res.returncode == exitcodes.USAGE
    assert res.stderr.count("\n") == 1 and "FIFO" in res.stderr and "not a regular file" in res.stderr


def test_watch_log_on_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    res = run_cli("watch", "--log", str(fifo), timeout=20)
    assert res.returncode == exitcodes.USAGE
    assert res.stderr.count("\n") == 1 and "FIFO" in res.stderr


def test_watch_log_on_a_fifo_with_a_reader_is_refused_too(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        res = run_cli("watch", "--log", str(fifo), timeout=20)
    finally:
        os.close(reader)
    assert res.returncode == exitcodes.USAGE and "FIFO" in res.stderr


@pytest.mark.parametrize("value", ["", "/"])
def test_watch_log_empty_or_directory_is_bad_input(value: str) -> None:
    res = run_cli("watch", "--log", value, timeout=20)  # '' was silently ignored before
    assert res.returncode == exitcodes.USAGE, res.stderr
    assert res.stderr.count("\n") == 1


@needs_root
def test_watch_log_on_a_character_device_runs(tmp_path: Path) -> None:
    node = _null_device(tmp_path / "null")
    proc = subprocess.Popen(
        [*portscope_cmd(), "watch", "--interval", "0.2", "--log", str(node)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        while "watching" not in (line := proc.stderr.readline()):
            assert line, "watch ended before it started"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert stat.S_ISCHR(node.stat().st_mode)


# -- the API, for every later file output (metrics --textfile, ...) -----------------------------------


def test_write_atomic_and_open_append_api(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    write_atomic(str(path), "a 1\n", what="metrics file")
    write_atomic(str(path), "a 2\n", what="metrics file")
    assert path.read_text() == "a 2\n"
    with open_append(str(tmp_path / "log"), what="log") as f:
        f.write("one\n")
    with open_append(str(tmp_path / "log"), what="log") as f:
        f.write("two\n")
    assert (tmp_path / "log").read_text() == "one\ntwo\n"
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="FIFO"):
        write_atomic(fifo, "x")
    with pytest.raises(UsageError, match="FIFO"):
        open_append(fifo)
    with pytest.raises(UsageError, match="empty"):
        write_atomic("", "x")
    with pytest.raises(UsageError, match="No such file"):
        write_atomic(str(tmp_path / "no" / "dir"), "x")


@needs_root
def test_write_atomic_on_a_full_device_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="No space left"):
        write_atomic(str(_full_device(tmp_path / "full")), "x" * 10)


def test_a_failure_at_fsync_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the disk fills up at fsync (where some file systems report it)."""
    import errno

    from app import fileout
    from app.errors import OutputError

    target = tmp_path / "m.prom"
    target.write_text("previous\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileout.os, "fsync", full)
    with pytest.raises(OutputError, match="No space left on device"):
        fileout.write_atomic(str(target), "new\n")
    assert target.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["m.prom"]


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    """While one thread rewrites the file with a large text, readers see one whole version."""
    import threading

    from app.fileout import write_atomic

    target = tmp_path / "m.prom"
    versions = [f"# v{i}\n" + ("x" * 200_000) + f"\n# end v{i}\n" for i in range(2)]
    write_atomic(str(target), versions[0])
    stop = threading.Event()
    seen: list[str] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(target.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(40):
            write_atomic(str(target), versions[i % 2])
    finally:
        stop.set()
        reader.join(10)
    assert seen and all(text in versions for text in seen)
