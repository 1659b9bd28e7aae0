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

from app.fast.tcpinfo import health_of_rows

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from app.health import Tracked

Row = tuple[int | None, ...]
_INODE_WORD = 21  # the inode's 4-byte word in a diag message (offset 84)
_SHIFT = 32  # a place: chunk number << _SHIFT | offset in the chunk


class StatsTable(Mapping[int, Row]):
    """Queues and tcp_info by socket inode (see the module docstring)."""

    __slots__ = ("_all", "_chunks", "_health", "_looked", "_rows", "_where")

    def __init__(self) -> None:
        # (kernel bytes, row struct, health struct, the messages' inodes): the inodes listed once
        # (a list per chunk, for this poll: the table does not outlive the poll's preparation)
        self._chunks: list[tuple[bytes, struct.Struct, struct.Struct | None, list[int]]] = []
        self._where: dict[int, int] = {}  # inode -> place of its message in a chunk
        self._rows: dict[int, Row] = {}  # inode -> decoded row (messages of uneven chunks)
        self._health: dict[int, Tracked] | None = None
        self._looked = 0  # sockets decoded one by one so far
        self._all: dict[int, Row] | None = None  # every row, once most are asked for

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
                rows.pop(inode, None)
        self._where.update(zip(inodes, range(base, base + len(data), step), strict=True))
        self._health = self._all = None

    def add_row(self, inode: int, row: Row) -> None:
        """One socket's row, decoded already."""
        self._where.pop(inode, None)
        self._rows[inode] = row
        self._health = self._all = None

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


class _Items(ItemsView[int, Row]):
    """``StatsTable.items()``: iterated chunk by chunk."""

    _mapping: StatsTable

    def __iter__(self) -> Iterator[tuple[int, Row]]:
        return self._mapping._items()
