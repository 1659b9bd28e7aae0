"""Which process held which socket at the last ``who``: hints for the next one.

:meth:`app.fast.owners.OwnerMap.search` walks the hinted processes first, so asking again about a
port (the usual way people use ``who``) reads one fd table instead of half the host's. A hint is
never trusted: the search reads the hinted process's fd table as it reads any other (each
``readlink`` of ``/proc/PID/fd/N`` must name the socket's inode for the process to count as a
holder), and a hint whose process's start time changed (the pid now names another process) is
dropped before that. A stale, foreign or tampered file can make a look slower, never wrong.

The file: ``$XDG_CACHE_HOME/portscope/owners`` (``~/.cache/portscope/owners`` when the variable is
unset or not absolute), lines ``inode port pid start_ticks``, at most :data:`MAX_ENTRIES`, the
newest last. It is rewritten (a temporary file renamed over it) only when an answer changed, in a
directory portscope makes ``0700`` and uses only when it belongs to the user running portscope;
anything but a regular file there is left alone. Reading or writing errors are ignored (a
read-only home, a full disk). ``PORTSCOPE_OWNER_CACHE=0`` turns it off.
"""

from __future__ import annotations

import os
import stat

from app.fast.procfs import PROC, start_ticks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_ENTRIES = 512
MAX_BYTES = 64 * 1024
FILE_NAME = "owners"


def cache_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """``$XDG_CACHE_HOME/portscope`` (``~/.cache/portscope``); ``None`` without a home."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = env.get("HOME") or os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "portscope")


Entry = tuple[int, int, int, int]  # inode, port, pid, start ticks


class OwnerCache:
    """The hints file at ``path`` (see the module docstring)."""

    def __init__(self, path: str, proc: str = PROC) -> None:
        self.path = path
        self.proc = proc
        self._entries: list[Entry] | None = None

    @classmethod
    def default(cls) -> OwnerCache | None:
        """The user's cache, or ``None`` when it is turned off or there is no place for it."""
        if os.environ.get("PORTSCOPE_OWNER_CACHE", "").strip() == "0":
            return None
        where = cache_dir()
        return None if where is None else cls(os.path.join(where, FILE_NAME))

    def entries(self) -> list[Entry]:
        if self._entries is None:
            self._entries = self._load()
        return self._entries

    def _load(self) -> list[Entry]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return []
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return []
            data = os.read(fd, MAX_BYTES)
        except OSError:
            return []
        finally:
            os.close(fd)
        out: list[Entry] = []
        for line in data.split(b"\n"):
            parts = line.split()
            if len(parts) == 4 and all(p.isdigit() and len(p) <= 20 for p in parts):
                inode, port, pid, ticks = (int(p) for p in parts)
                out.append((inode, port, pid, ticks))
        return out[-MAX_ENTRIES:]

    def hints(self, wanted: Mapping[int, int]) -> list[int]:
        """Pids to walk first for the sockets ``wanted`` (inode -> local port): the last holders of
        these inodes, then the last owners of these ports, newest first; each still the process
        it was (same start time)."""
        by_inode: list[int] = []
        by_port: list[int] = []
        ports = set(wanted.values())
        for inode, port, pid, _ticks in reversed(self.entries()):
            if inode in wanted:
                by_inode.append(pid)
            elif port in ports:
                by_port.append(pid)
        out = []
        checked: dict[int, bool] = {}
        wanted_ticks = {pid: ticks for _i, _p, pid, ticks in self.entries()}
        for pid in dict.fromkeys([*by_inode, *by_port]):
            same = checked.get(pid)
            if same is None:
                same = checked[pid] = start_ticks(pid, self.proc) == wanted_ticks.get(pid)
            if same:
                out.append(pid)
        return out

    def remember(self, wanted: Mapping[int, int], owner: Mapping[int, int]) -> None:
        """Keep who owns each socket of ``wanted`` now (``owner``: inode -> pid, as just found);
        the file is written only when that changes something."""
        fresh: list[Entry] = []
        ticks: dict[int, int | None] = {}
        for inode, port in wanted.items():
            pid = owner.get(inode)
            if pid is None:
                continue
            if pid not in ticks:
                ticks[pid] = start_ticks(pid, self.proc)
            t = ticks[pid]
            if t is not None:
                fresh.append((inode, port, pid, t))
        old = self.entries()
        if not fresh or set(fresh) <= set(old):
            return
        inodes = {e[0] for e in fresh}
        kept = [e for e in old if e[0] not in inodes]
        self._entries = (kept + fresh)[-MAX_ENTRIES:]
        self._write(self._entries)

    def _write(self, entries: list[Entry]) -> None:
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            st = os.stat(folder)
            if st.st_uid != os.geteuid() or not stat.S_ISDIR(st.st_mode):
                return  # another user's directory (sudo with their environment): not ours to write
            try:
                if not stat.S_ISREG(os.lstat(self.path).st_mode):
                    return  # a link, a FIFO, a directory: never replaced
            except FileNotFoundError:
                pass
            tmp = f"{self.path}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                text = "".join(f"{i} {p} {pid} {t}\n" for i, p, pid, t in entries)
                os.write(fd, text.encode("ascii"))
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(f"{self.path}.{os.getpid()}.tmp")
            except OSError:
                pass
