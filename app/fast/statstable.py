"""Each socket's queues and tcp_info from one sock_diag read, decoded only where used.

The issue's "parse only what is shown": a poll of 20k TCP sockets carries 20k tcp_info structs,
but each poll only needs five of their fields for every connection (what the health tracker
follows: unacked, RTT, retransmits, bytes acked and received), and the other seven only for the
rows, JSON objects and panels that show them. Unpacking every field of every socket into tuples
at read time cost more than the kernel's larger messages themselves (and garbage collection
walked the 20k new tuples). So a uniform chunk of the dump (same-length messages, every
tcp_info at the same place: the usual case) is kept as the kernel's bytes, with each socket's
place in it: reading it costs one pass over the inodes. :meth:`StatsTable.get` decodes one socket
(the same flat tuple as before: ``(rqueue, wqueue, inode, *tcp_info fields)``, see
:mod:`app.fast.tcpinfo`), :meth:`StatsTable.health` the five tracked fields of all of them in one
``iter_unpack`` per chunk, and :meth:`StatsTable.items` everything. Messages of an uneven chunk
are decoded as they are read (:meth:`add_row`).

It reads like the mapping it replaces (``get``, ``[]``, ``in``, ``len``, ``keys``, ``items``), so
code that does not care how the stats are kept does not change.
"""

from __future__ import annotations

import struct
from collections.abc import ItemsView, Mapping

from app.fast.tcpinfo import HEALTH_FIELDS, fields_format, health_of_rows

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from app.health import Tracked

Row = tuple[int | None, ...]
_INODE_WORD = 21  # the inode's 4-byte word in a diag message (offset 84)
_SHIFT = 32  # a place: chunk number << _SHIFT | offset in the chunk
_QUEUES = struct.Struct("=72xII")  # a diag message's idiag_rqueue, idiag_wqueue


def _word_offsets(fmt: str) -> tuple[int, ...]:
    """The byte offsets of the 4-byte words a struct format of ``x``, ``I`` and ``Q`` codes reads
    (an 8-byte field: two words)."""
    out: list[int] = []
    pos, digits = 0, ""
    for c in fmt:
        if c.isdigit():
            digits += c
            continue
        count, digits = int(digits or 1), ""
        if c == "x":
            pos += count
        else:
            size = struct.calcsize("=" + c)
            for _ in range(count):
                out.extend(range(pos, pos + size, 4))
                pos += size
    return tuple(out)


# the 4-byte words of the tracked fields in a tcp_info (health_image compares them as bytes)
_HEALTH_OFFSETS = _word_offsets(fields_format(HEALTH_FIELDS))


class StatsTable(Mapping[int, Row]):
    """Queues and tcp_info by socket inode (see the module docstring)."""

    __slots__ = ("_all", "_chunks", "_health", "_image", "_looked", "_repeats", "_rows", "_where")

    def __init__(self) -> None:
        # (kernel bytes, row struct, health struct, the messages' inodes): the inodes listed once
        # (a list per chunk, for this poll: the table does not outlive the poll's preparation)
        self._chunks: list[tuple[bytes, struct.Struct, struct.Struct | None, list[int]]] = []
        self._where: dict[int, int] = {}  # inode -> place of its message in a chunk
        self._rows: dict[int, Row] = {}  # inode -> decoded row (messages of uneven chunks)
        self._health: dict[int, Tracked] | None = None
        self._looked = 0  # sockets decoded one by one so far
        self._all: dict[int, Row] | None = None  # every row, once most are asked for
        self._repeats = False  # a socket listed twice (in two chunks, or a chunk and a row)
        self._image: bytes | None = None  # health_image(), made once

    def add_chunk(self, data: bytes, step: int, full: struct.Struct, health: struct.Struct | None) -> None:
        """A run of ``step``-byte messages: ``full`` reads a message's row, ``health`` (None: the
        messages carry no tcp_info) its five tracked fields."""
        index = len(self._chunks)
        inodes = memoryview(data).cast("I")[_INODE_WORD :: step >> 2].tolist()
        self._chunks.append((data, full, health, inodes))
        base = index << _SHIFT
        rows = self._rows
        if rows:
            for inode in inodes:
                if rows.pop(inode, None) is not None and inode:
                    self._repeats = True
        where = self._where
        before, zero_before = len(where), 0 in where
        where.update(zip(inodes, range(base, base + len(data), step), strict=True))
        zeros = inodes.count(0)  # (sockets without a file: several may share inode 0)
        if len(where) - before != len(inodes) - zeros + (1 if zeros and not zero_before else 0):
            self._repeats = True
        self._health = self._all = self._image = None

    def add_row(self, inode: int, row: Row) -> None:
        """One socket's row, decoded already."""
        if (self._where.pop(inode, None) is not None or inode in self._rows) and inode:
            self._repeats = True  # (inode 0, no file: nothing follows it, several may have it)
        self._rows[inode] = row
        self._health = self._all = self._image = None

    def update(self, other: StatsTable) -> None:
        """Add ``other``'s sockets (another namespace's read): they win over ours."""
        for inode, row in other.items():
            self.add_row(inode, row)

    # -- reading ---------------------------------------------------------------------------

    def get(self, inode: int | None, default: Row | None = None) -> Row | None:  # type: ignore[override]
        """One socket's row. A reader that goes through most sockets (a whole table, the JSON of
        every socket) gets them all decoded, chunk by chunk, once it has asked for an eighth of them."""
        every = self._all
        if every is not None:
            return every.get(inode, default)  # type: ignore[arg-type]
        row = self._rows.get(inode)  # type: ignore[arg-type]
        if row is not None:
            return row
        place = self._where.get(inode)  # type: ignore[arg-type]
        if place is None:
            return default
        self._looked += 1
        if self._looked > 256 and self._looked * 8 > len(self._where):
            self._all = dict(self._items())
        data, full, _health, _inodes = self._chunks[place >> _SHIFT]
        return full.unpack_from(data, place & 0xFFFFFFFF)

    def queues(self, inode: int) -> Row | None:
        """``get(inode)[:2]`` (rqueue, wqueue), reading only those two words of the message."""
        every = self._all
        row = every.get(inode) if every is not None else self._rows.get(inode)
        if row is not None:
            return row[:2]
        place = self._where.get(inode)
        if place is None:
            return None
        return _QUEUES.unpack_from(self._chunks[place >> _SHIFT][0], place & 0xFFFFFFFF)

    def __getitem__(self, inode: int) -> Row:
        row = self.get(inode)
        if row is None:
            raise KeyError(inode)
        return row

    def __contains__(self, inode: object) -> bool:
        return inode in self._where or inode in self._rows

    def __len__(self) -> int:
        return len(self._where) + len(self._rows)

    def __bool__(self) -> bool:
        return bool(self._where) or bool(self._rows)

    def __iter__(self) -> Iterator[int]:
        yield from self._where
        yield from self._rows

    def items(self) -> ItemsView[int, Row]:
        """Every socket's row (each chunk decoded in one pass)."""
        return _Items(self)

    def _items(self) -> Iterator[tuple[int, Row]]:
        where = self._where
        for index, (data, full, _health, _inodes) in enumerate(self._chunks):
            base = index << _SHIFT
            step = full.size
            for off, row in zip(range(0, len(data), step), full.iter_unpack(data), strict=True):
                inode = row[2]
                if where.get(inode) == base | off:  # (not a socket listed again later)
                    yield inode, row
        yield from self._rows.items()

    def health(self) -> dict[int, Tracked]:
        """inode -> (unacked, rtt µs, total_retrans, bytes_acked, bytes_received) of every socket
        with a tcp_info (not inode 0: no file, nothing follows it); made once per table."""
        out = self._health
        if out is not None:
            return out
        out = {}
        for data, _full, health, inodes in self._chunks:
            if health is not None:
                out.update(zip(inodes, health.iter_unpack(data), strict=True))
        out.pop(0, None)
        if self._rows:
            out.update(health_of_rows(self._rows.items()))
        self._health = out
        return out

    # -- what moved since an earlier poll, without a Python object per socket -----------------

    def health_image(self) -> bytes | None:
        """The five tracked fields (and the inode) of every socket of a chunk with tcp_info, in
        dump order: :data:`_IMAGE_WORDS` 4-byte words each, copied column by column from the
        kernel's bytes (in C). What :meth:`health_moved` of a later table compares with; a
        fraction of the size of :meth:`health`'s dictionary. None when a socket is listed twice
        (which of its messages counts is then a question for :meth:`health`)."""
        if self._repeats:
            return None
        image = self._image
        if image is not None:
            return image
        chunks = [
            (data, full.size >> 2, health) for data, full, health, _i in self._chunks if health is not None
        ]
        total = sum(len(data) // (words << 2) for data, words, _h in chunks)
        out = bytearray(total * _IMAGE_BYTES)
        words_out = memoryview(out).cast("I")
        at = 0
        for data, words, health in chunks:
            n = len(data) // (words << 2)
            mv = memoryview(data).cast("I")
            end = (at + n) * _IMAGE_WORDS
            for k, word in enumerate(_image_words(health)):
                words_out[at * _IMAGE_WORDS + k : end : _IMAGE_WORDS] = mv[word::words]
            at += n
        self._image = image = bytes(out)
        return image

    def health_moved(self, before: bytes) -> tuple[list[int], list[int]] | None:
        """What moved since ``before`` (an earlier table's :meth:`health_image`): the inodes of the
        sockets whose tracked fields differ or that it lacks, and of every decoded row (a superset
        of what moved: the health tracker looks at each again, an unmoved one costs it a compare);
        and the inodes of ``before`` no longer listed here (more may be gone: the earlier table's
        rows). The two dumps are walked side by side: a run of sockets unchanged since then is
        one comparison of bytes (found by doubling, then halving), a socket that came, went or
        moved costs a few steps in Python. None without an image, or when so much moved (or the
        order changed) that comparing every socket is cheaper."""
        image = self.health_image()
        if image is None:
            return None
        size = _IMAGE_BYTES
        n, m = len(image) // size, len(before) // size
        now_inodes = memoryview(image).cast("I")[::_IMAGE_WORDS]
        was_inodes = memoryview(before).cast("I")[::_IMAGE_WORDS]
        here = self._where
        limit = max(64, n >> 3)
        out: list[int] = []
        gone: list[int] = []
        i = j = 0

        def same(a: int, b: int) -> bool:
            """Sockets a..b after (i, j) are the same in both images."""
            return image[(i + a) * size : (i + b) * size] == before[(j + a) * size : (j + b) * size]

        while i < n and j < m:
            if same(0, 1):
                good, bad = 1, 0  # the first `good` sockets from (i, j) are the same
                while True:
                    step = min(good * 2, n - i, m - j)
                    if step == good:
                        break
                    if same(good, step):
                        good = step
                    else:
                        bad = step
                        break
                while bad - good > 1:
                    mid = (good + bad) >> 1
                    if same(good, mid):
                        good = mid
                    else:
                        bad = mid
                i += good
                j += good
                continue
            now, was = now_inodes[i], was_inodes[j]
            if now == was:  # its fields moved
                out.append(now)
                i += 1
                j += 1
            elif was not in here:  # gone since then
                gone.append(was)
                j += 1
            else:  # new here (or moved in the dump)
                out.append(now)
                i += 1
            if len(out) + len(gone) > limit:
                return None
        out.extend(now_inodes[i:n].tolist())
        gone.extend(was_inodes[j:m].tolist())
        if len(out) + len(gone) > limit:
            return None
        out.extend(self.row_inodes())
        return [inode for inode in out if inode], gone

    def row_inodes(self) -> list[int]:
        """The inodes of the decoded rows (uneven chunks, other namespaces) with a tcp_info."""
        return [inode for inode, row in self._rows.items() if inode and len(row) > 3]

    def health_of(self, inode: int) -> Tracked | None:
        """One socket's tracked fields, None without a tcp_info (or not here)."""
        place = self._where.get(inode)
        if place is not None:
            data, _full, health, _inodes = self._chunks[place >> _SHIFT]
            return health.unpack_from(data, place & 0xFFFFFFFF) if health is not None else None
        row = self._rows.get(inode)
        if row is None or len(row) <= 3:
            return None
        return health_of_rows(((inode, row),)).get(inode)


_IMAGE_WORDS = (
    8  # a socket in health_image: inode, unacked, rtt, total_retrans, bytes_acked (2), bytes_received (2)
)
_IMAGE_BYTES = _IMAGE_WORDS * 4
_WORDS: dict[str, tuple[int, ...]] = {}


def _image_words(health: struct.Struct) -> tuple[int, ...]:
    """The message words of health_image's columns for chunks read with ``health`` (which skips
    the tcp_info's offset in the message first: its format starts ``=<offset>x``)."""
    words = _WORDS.get(health.format)
    if words is None:
        info = int(health.format.lstrip("=@<>!").split("x", 1)[0]) >> 2
        words = (_INODE_WORD, *(info + (off >> 2) for off in _HEALTH_OFFSETS))
        _WORDS[health.format] = words
    return words


class _Items(ItemsView[int, Row]):
    """``StatsTable.items()``: iterated chunk by chunk."""

    _mapping: StatsTable

    def __iter__(self) -> Iterator[tuple[int, Row]]:
        return self._mapping._items()
