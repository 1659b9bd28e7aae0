"""Writing a file the user named, so a reader never sees half of it and nothing else is replaced.

``write_atomic`` writes a temporary file beside the target and renames it over the target: a
reader (node_exporter's textfile collector, a cron job, ``cat``) sees the old file or the new one,
never a mix, and a full or read-only disk leaves the old file as it was. Only a regular file (or a
path that does not exist yet) is replaced; ``-`` and character devices (``/dev/null``, a
terminal) are written in place, since renaming over them would be wrong; anything else (a
directory, a FIFO, a socket, a symbolic link) is refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile

from app.errors import UsageError
from app.textsafe import printable


def _fail(path: str, why: str) -> UsageError:
    return UsageError(f"cannot write {printable(path, 200)}: {why}")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``: atomically for a regular file or a new path (temp file
    in the same directory, fsync, rename; the file's mode and, as root, its owner are kept), in
    place for ``-`` (stdout) and character devices. Raises :class:`~app.errors.UsageError` with
    one line when it cannot, and leaves no temporary file behind."""
    data = text.encode("utf-8", "surrogateescape")
    if path == "-":
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)
        if out is not None:
            out.write(data)
            out.flush()
        else:  # a replaced stdout (tests, embedding) without a byte buffer
            sys.stdout.write(text)
        return
    if not path:
        raise UsageError("empty file name")
    try:
        st: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _fail(path, _reason(exc)) from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        try:
            target = os.stat(path)
        except OSError:
            target = None
        if target is not None and stat.S_ISCHR(target.st_mode):  # /dev/stdout on a terminal
            st = target
        else:
            raise _fail(path, "it is a symbolic link (name the file it points to, or - for stdout)")
    if st is not None and stat.S_ISCHR(st.st_mode):
        _write_in_place(path, data)
        return
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise _fail(path, f"it is {_kind(st.st_mode)}, not a regular file")
    _replace(path, data, st)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _write_in_place(path: str, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
    except OSError as exc:
        raise _fail(path, _reason(exc)) from None
    try:
        _write_all(fd, data)
    except OSError as exc:
        raise _fail(path, _reason(exc)) from None
    finally:
        os.close(fd)


def _replace(path: str, data: bytes, old: os.stat_result | None) -> None:
    directory, name = os.path.split(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _fail(path, _reason(exc)) from None
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)  # ENOSPC can surface only here on some file systems
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                if os.geteuid() == 0 and (old.st_uid, old.st_gid) != (0, 0):
                    with contextlib.suppress(OSError):
                        os.fchown(fd, old.st_uid, old.st_gid)
            else:  # a new file gets the mode open() would give it
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(fd, 0o666 & ~umask)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _fail(path, _reason(exc)) from None
    # the rename is durable once the directory is on disk too (best effort: not every fs allows it)
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
