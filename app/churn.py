"""Maps whose keys come and go while their size stays (sockets by inode, rows by key), kept at the
size CPython gives a new dict of their length.

Why: CPython appends every insert to a dict's entry table and leaves a dead slot for every
delete; when the table is full it is rebuilt for three times the live entries, where a dict
built from that many items gets one and a half times. A map of 100k sockets with 1% of them
replaced each poll so doubles (about 5 MB to 10 MB) after some 75k replacements, and stays
doubled; the dashboard holds about ten such maps, which double one after the other, so its
resident memory climbed for hundreds of polls at 100k sockets (`bench/dashcpu.py` memory runs).

:class:`Churned` looks at its owner's maps once per update (``sys.getsizeof``: no walk) and
rebuilds in place (the same dict: views of it and references to it stay valid) each one whose
table grew since its last look: one copy each time CPython grew it, so at most as often as
CPython itself copies it. Only the thread that changes a map may check it (it is empty for a
moment while rebuilt).
"""

from __future__ import annotations

from sys import getsizeof

TYPE_CHECKING = False  # on the CLI's start-up path: no typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

MIN_ENTRIES = 1024  # smaller maps are not worth a copy


def compact(table: dict[Any, Any]) -> None:
    """Rebuild ``table`` in place, its entries in the same order, at the size a dict of its
    length is built with."""
    keep = dict(table)  # (sized for its length: a copy of a dict with dead slots is not a clone)
    table.clear()
    table.update(keep)  # (into an empty dict: the copy's compact table, cloned)


class Churned:
    """``Churned(lambda: (self._by_inode, ...))``: the maps the callable returns at each
    :meth:`check` (asked again each time, so their owner may replace them or hand out maps
    that come and go, such as the values of a map of maps)."""

    __slots__ = ("_sizes", "_tables", "compactions")

    def __init__(self, tables: Callable[[], Iterable[dict[Any, Any]]]) -> None:
        self._tables = tables
        self._sizes: dict[int, int] = {}  # id(map) -> its getsizeof at the last check
        self.compactions = 0

    def check(self) -> None:
        """Compact each map whose table grew since the last check (one ``getsizeof`` each; a
        map seen for the first time at :data:`MIN_ENTRIES` or more is compacted once)."""
        last = self._sizes
        sizes: dict[int, int] = {}
        for table in self._tables():
            if len(table) < MIN_ENTRIES:
                continue
            size = getsizeof(table)
            if size > last.get(id(table), 0):
                compact(table)
                self.compactions += 1
                size = getsizeof(table)
            sizes[id(table)] = size
        self._sizes = sizes
