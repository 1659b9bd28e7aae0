"""Writing the files a user names (``baseline save FILE``, ``watch --log FILE``, ...): one rule.

No file output replaces anything but a regular file:

* ``-`` (or a path that is this process's standard output, like ``/dev/stdout``) is standard
  output, written in place;
* a character device (``/dev/null``, a terminal, ``/dev/full``) is written in place;
* a regular file, or a path that does not exist yet, is written atomically: a temporary file in
  the same directory, fsync'ed, then renamed over the target, with the existing file's mode (and,
  as root, its owner) kept; a reader never sees half a file;
* a symlink is followed: its target is replaced (or created) and the link is kept;
* anything else (a directory, FIFO, socket, block device) is refused with one line, exit 2:
  writing would block forever (a FIFO without reader), fail late, or destroy something.

For appending (:func:`open_append`) the same, except that the file is opened with O_APPEND and
never replaced. A FIFO is refused there too. Refusals and files that cannot be opened raise
:class:`~app.errors.UsageError`; a write that fails part-way (a full disk, an I/O error) raises
:class:`~app.errors.OutputError`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
import tempfile
from typing import IO

from app.errors import OutputError, UsageError
from app.textsafe import quoted

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISCHR, "a character device"),
)


def _label(path: str) -> str:
    return quoted(path, 80)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def describe(mode: int) -> str | None:
    """What a file that is not a regular file is ("a FIFO (named pipe)"); ``None`` if regular."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a file"


def _kind(mode: int) -> str | None:
    """What a file type that is never written is called; ``None`` for a regular file or a
    character device (written in place)."""
    return None if stat.S_ISCHR(mode) else describe(mode)


def _refuse(what: str, path: str, kind: str) -> UsageError:
    return UsageError(f"cannot write {what} {_label(path)}: it is {kind}, not a regular file")


def _is_stdout(st: os.stat_result) -> bool:
    try:
        out = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino)


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str, text: str, *, what: str = "file") -> None:
    """Write ``text`` (UTF-8) to ``path`` by the rule above. ``what`` names the file in errors
    ("baseline", "metrics file")."""
    if not path:
        raise UsageError(f"empty {what} file name")
    if path == "-":
        _write_stdout(text)
        return
    try:
        st: os.stat_result | None = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        st = None  # new file (or a dangling symlink: its target is created)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {_label(path)}: {_reason(exc)}") from None
    if st is not None:
        if _is_stdout(st):  # /dev/stdout, /proc/self/fd/1: whatever stdout is, written in place
            _write_stdout(text)
            return
        if stat.S_ISCHR(st.st_mode):
            _write_in_place(path, text.encode("utf-8"), what)
            return
        kind = _kind(st.st_mode)
        if kind is not None:
            raise _refuse(what, path, kind)
    _replace(os.path.realpath(path), text.encode("utf-8"), st, what, path)


def _write_in_place(path: str, data: bytes, what: str) -> None:
    """A character device: open it for writing (no truncation, no replacing) and write."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {_label(path)}: {_reason(exc)}") from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:  # replaced between the stat and the open
            raise _refuse(what, path, kind)
        _blocking(fd)
        _write_all(fd, data)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {_label(path)}: {_reason(exc)}") from None
    finally:
        os.close(fd)


def _replace(target: str, data: bytes, old: os.stat_result | None, what: str, path: str) -> None:
    """A regular file or a new one: temporary file beside it, fsync, rename over it."""
    directory, name = os.path.split(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name[:100]}.", suffix=".tmp", dir=directory or ".")
    except OSError as exc:
        raise UsageError(f"cannot write {what} {_label(path)}: {_reason(exc)}") from None
    try:
        try:
            os.fchmod(fd, stat.S_IMODE(old.st_mode) if old is not None else 0o666 & ~_umask())
            if old is not None and os.geteuid() == 0:
                try:
                    os.fchown(fd, old.st_uid, old.st_gid)
                except OSError:
                    pass
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        failed_writing = exc.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG)
        error = OutputError if failed_writing else UsageError
        raise error(f"cannot write {what} {_label(path)}: {_reason(exc)}") from None
    _sync_directory(directory or ".")


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _blocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)


def open_append(path: str, *, what: str = "log") -> IO[str]:
    """Open ``path`` to append text: a regular file (created if missing, symlinks followed), a
    character device, or ``-`` (a duplicate of standard output). Everything else, a FIFO
    included, is refused with :class:`~app.errors.UsageError`. Never blocks in ``open()``."""
    if not path:
        raise UsageError(f"empty {what} file name")
    if path == "-":
        return os.fdopen(os.dup(sys.stdout.fileno()), "a", encoding="utf-8")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        # A FIFO without a reader and a socket fail with ENXIO, a directory with EISDIR: say what
        # the path is rather than the errno.
        try:
            kind = _kind(os.stat(path).st_mode)
        except OSError:
            kind = None
        if kind is not None:
            raise _refuse(what, path, kind) from None
        raise UsageError(f"cannot open {what} {_label(path)}: {_reason(exc)}") from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:  # a FIFO that has a reader, a block device
            raise _refuse(what, path, kind)
        _blocking(fd)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "a", encoding="utf-8")


def is_regular(stream: IO[str]) -> bool:
    """True when ``stream`` is a regular file (worth an fsync; a device refuses one)."""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):
        return False
