"""app.fileout.write_atomic on a real file system: what it replaces, what it keeps, what it refuses."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from app import fileout
from app.errors import UsageError
from app.fileout import write_atomic


def test_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "new.prom"
    old = os.umask(0o027)
    try:
        write_atomic(str(target), "a 1\n")
    finally:
        os.umask(old)
    assert target.read_text() == "a 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["new.prom"]


def test_replacing_keeps_the_mode_and_owner(tmp_path: Path) -> None:
    target = tmp_path / "m.prom"
    target.write_text("old\n")
    target.chmod(0o604)
    if os.geteuid() == 0:
        os.chown(target, 65534, 65534)
    inode = target.stat().st_ino
    write_atomic(str(target), "new ü\n")
    st = target.stat()
    assert target.read_text(encoding="utf-8") == "new ü\n"
    assert st.st_ino != inode  # renamed over, not rewritten in place
    assert stat.S_IMODE(st.st_mode) == 0o604
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert sorted(os.listdir(tmp_path)) == ["m.prom"]


def _refused(path: Path, what: str) -> str:
    with pytest.raises(UsageError) as info:
        write_atomic(str(path), "x\n")
    message = str(info.value)
    assert "\n" not in message and what in message, message
    return message


def test_refuses_a_directory_a_fifo_and_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    _refused(tmp_path / "d", "a directory")
    os.mkfifo(tmp_path / "f")
    _refused(tmp_path / "f", "a FIFO")  # refused before any open: no reader needed, no hang
    real = tmp_path / "real"
    real.write_text("keep\n")
    (tmp_path / "link").symlink_to(real)
    _refused(tmp_path / "link", "symbolic link")
    assert real.read_text() == "keep\n" and (tmp_path / "link").is_symlink()


def test_missing_directory_is_one_line(tmp_path: Path) -> None:
    _refused(tmp_path / "no" / "such.prom", "No such file or directory")


def test_character_devices_and_dash_are_written_in_place(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write_atomic("/dev/null", "discarded\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device, not a file
    write_atomic("-", "to stdout\n")
    assert capfd.readouterr().out == "to stdout\n"


def test_a_failure_while_writing_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the disk fills up at fsync (where some file systems report it)."""
    target = tmp_path / "m.prom"
    target.write_text("previous\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileout.os, "fsync", full)
    message = _refused(target, "No space left on device")
    assert message.startswith("cannot write ")
    assert target.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["m.prom"]


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    """While one thread rewrites the file with a large text, readers see one whole version."""
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
