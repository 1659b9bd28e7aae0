"""The model behind :class:`widgets.vtable.VTable`: keyed rows, groups, sort, filter, marks, cursor.

Pure Python (no Textual), so ordering and change logic can be tested and benchmarked headless.

Cost model: :meth:`TableModel.apply` does Python-level work only for the rows it is handed
(added / updated / gone) and the rows whose change mark expires. Each group keeps its rows in a
sorted list of sort keys (``bisect``), so an insert or delete is a binary search plus a C-level
``memmove``; the flat list of visible lines is rebuilt (a few C-level list operations, no
per-row Python code) only when the set or order of visible rows changed. Nothing is cleared or
re-rendered wholesale: the widget renders only the lines on screen.

Two narrowings: a *filter* (any predicate, the filter box) and a *selection* (one facet, such as
a port range or a connection state, the bars above the tables). Rows carry their facets, and the
model counts them among all rows and among the rows the filter lets through, incrementally, so
the bars can show ``exposed 1/3`` and agree with the table without a pass over every row.

Whoever draws the model subscribes with :meth:`TableModel.add_listener`: each change bumps
``version`` and calls the listeners, so no caller has to remember to redraw.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import chain
from operator import attrgetter
from typing import Any, Literal

from app.churn import Churned

HEADER_PREFIX = "\x00"  # line ids starting with this are group headers, never row keys

SortKey = tuple[Any, ...]
Values = Callable[[Any], tuple[Any, ...]]  # payload -> a row's values (values_getter)


class Mark(IntEnum):
    """Change highlighting of a row (as in TCPView)."""

    NONE = 0
    NEW = 1  # appeared recently (green, for a few refreshes)
    CHANGED = 2  # state or owner changed (yellow, for a few refreshes)
    GONE = 3  # vanished (red, for one refresh, then removed)


@dataclass(frozen=True, slots=True)
class Column:
    """One column. ``priority`` 0 is kept longest when the width runs out; ``flex`` columns share
    spare width. With ``age`` the cell shows how long ago the row first appeared."""

    key: str
    label: str
    width: int
    priority: int = 0
    flex: int = 0
    align: Literal["left", "right"] = "left"
    max_width: int = 0  # 0: no limit
    # (value, now) -> cell text; only an age column's text may depend on ``now`` (the table redraws
    # a row when its values, facets, flags or mark change, or the text of its age cells)
    format: Callable[[Any, float], str] | None = None
    emphasis: Callable[[Any], bool] | None = None  # highlight this cell
    age: bool = False
    get: Callable[[Any], Any] | None = None  # the cell's value from the row's payload (see values_getter)
    badge: tuple[str, str] = ("", "")  # (facet, glyph): the glyph precedes the cell of rows with it
    # (flag, glyph): a row with that flag shows the glyph before this cell, in the alert style (a
    # mark is never colour alone); flags are not facets: the bars never count them
    marks: tuple[tuple[str, str], ...] = ()
    reverse_first: bool = False  # sorting by it starts descending (rates: the busiest first)


def _none(_payload: Any) -> None:
    return None


def values_getter(columns: Sequence[Column]) -> Callable[[Any], tuple[Any, ...]]:
    """``payload -> values``: a row's values, one per column, from each column's ``get`` (age
    columns hold None: their cell is the row's own birth time). Built once per column set: it runs
    for every row of a cold poll."""
    getters = tuple(c.get or _none for c in columns)

    def values(payload: Any) -> tuple[Any, ...]:
        return tuple([get(payload) for get in getters])

    return values


def column_index(columns: Sequence[Column], key: str) -> int:
    for i, c in enumerate(columns):
        if c.key == key:
            return i
    raise KeyError(key)


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    label: str


@dataclass(frozen=True, slots=True)
class RowSpec:
    """A row as the data source describes it."""

    key: str
    values: tuple[Any, ...]
    group: str = ""
    payload: Any = None
    facets: tuple[str, ...] = ()  # what a selection can pick this row by (range, state, ...)
    flags: frozenset[str] = frozenset()  # marks drawn by the columns' ``marks`` (stalled, queue full)


class Row:
    """One row of a model. Its values are either kept (a tuple) or, in a model made with
    ``derived=True``, computed from its payload when read (``_v`` then holds the model's
    :func:`values_getter`): the model keeps no second copy of what the payload already says."""

    __slots__ = (
        "_v",
        "born",
        "facets",
        "flags",
        "group",
        "key",
        "listed",
        "mark",
        "mark_left",
        "passes",
        "payload",
        "sort_key",
    )

    def __init__(self, spec: RowSpec, born: float, derive: Values | None = None) -> None:
        self.key = spec.key
        self._v: tuple[Any, ...] | Values = spec.values if derive is None else derive
        self.group = spec.group
        self.payload = spec.payload
        self.facets = spec.facets
        self.flags = spec.flags
        self.born = born
        self.mark = Mark.NONE
        self.mark_left = 0
        self.passes = True  # passes the filter (counted in ``TableModel.passing``)
        self.listed = False  # present in its group's ordered list (passes filter and selection)
        self.sort_key: SortKey = ()

    @property
    def values(self) -> tuple[Any, ...]:
        v = self._v
        return v if type(v) is tuple else v(self.payload)  # type: ignore[operator]


_SORT_KEY = attrgetter("sort_key")


def _remove_row(lst: list[Row], row: Row) -> None:
    """Take ``row`` out of ``lst``, rows in the order of their sort keys (no two alike)."""
    i = bisect.bisect_left(lst, row.sort_key, key=_SORT_KEY)
    if i < len(lst) and lst[i] is row:
        del lst[i]


def _norm(value: Any) -> tuple[int, Any]:
    """A total order over mixed cell values: None first, then numbers, then text."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, tuple):
        return (2, tuple(_norm(v) for v in value))
    text = str(value)
    low = text.lower()
    return (3, text if low == text else low)  # (an address is lower case already: one string, not two)


def layout_columns(columns: Sequence[Column], width: int) -> list[tuple[int, int]]:
    """Which columns fit in ``width`` cells, and how wide each is: ``[(column_index, width)]`` in
    display order. Columns are dropped by priority (highest number first); one space separates
    columns; spare width goes to flex columns."""
    if width <= 0 or not columns:
        return []
    by_priority = sorted(range(len(columns)), key=lambda i: (columns[i].priority, i))
    chosen: list[int] = []
    used = 0
    for i in by_priority:
        need = columns[i].width + (1 if chosen else 0)
        if used + need > width:
            if not chosen:  # even the first column does not fit: show it cut
                return [(i, width)]
            continue
        chosen.append(i)
        used += need
    chosen.sort()
    widths = {i: columns[i].width for i in chosen}
    spare = width - used
    flex = [i for i in chosen if columns[i].flex]
    while spare > 0 and flex:
        total = sum(columns[i].flex for i in flex)
        given = 0
        for i in list(flex):
            share = max(1, spare * columns[i].flex // total)
            cap = columns[i].max_width
            if cap:
                share = min(share, cap - widths[i])
            share = min(share, spare - given)
            widths[i] += share
            given += share
            if cap and widths[i] >= cap:
                flex.remove(i)
            if given >= spare:
                break
        spare -= given
        if given == 0:
            break
    return [(i, widths[i]) for i in chosen]


class TableModel:
    """Keyed rows in groups, sorted by one column, narrowed by a filter and a selection, with
    facet counts and a cursor by key."""

    def __init__(
        self,
        columns: Sequence[Column],
        groups: Sequence[Group] = (),
        *,
        new_ttl: int = 3,
        changed_ttl: int = 3,
        sort_column: int = 0,
        derived: bool = False,
    ) -> None:
        self.columns = list(columns)
        # derived: rows keep no values; each is computed from the row's payload with the columns'
        # ``get`` when read (the payload must then be immutable); the specs' values are not read
        # (give ``()``: nothing per row is made for them, in the poll thread or here)
        self._derive = values_getter(self.columns) if derived else None
        self.grouped = bool(groups)
        self.groups: list[Group] = list(groups) or [Group("", "")]
        self.new_ttl = new_ttl
        self.changed_ttl = changed_ttl
        self.rows: dict[str, Row] = {}
        self._churn = Churned(lambda: (self.rows,))  # kept at its size as rows come and go (app.churn)
        # per group, the sort keys of the rows listed (passing the filter and the selection), and
        # of every row (so a change of filter or selection needs no sorting)
        self._ordered: dict[str, list[SortKey]] = {g.id: [] for g in self.groups}
        # every row of each group in the order of their sort keys (the rows themselves: a pass in
        # that order reads each row without a lookup of its key)
        self._all: dict[str, list[Row]] = {g.id: [] for g in self.groups}
        # a narrowing filter looks at the passing rows alone, in sorted order, when they are
        # fewer than this share of all rows; else at every row in memory's order (_refilter)
        self.few_share = 0.25
        self._marked: set[str] = set()
        self.collapsed: set[str] = set()
        self.sort_column = sort_column
        self.sort_reverse = False
        self._filter: Callable[[Row], bool] | None = None
        self.selection: str | None = None  # a facet: only rows with it are listed
        self.facet_totals: Counter[str] = Counter()  # facet -> rows with it
        self.facet_passing: Counter[str] = Counter()  # facet -> rows with it that pass the filter
        self.passing = 0  # rows that pass the filter (whatever the selection)
        self.lines: list[str] = []
        self._lines_stale = True  # ``lines`` must be rebuilt (else rows are put in and out in place)
        self.lines_rebuilt = 0  # times the lines were rebuilt from the orders (for tests)
        self.cursor_searches = 0  # times the cursor's row was looked for along the lines (for tests)
        self.cursor_key: str | None = None
        self._cursor_index = 0
        self.cursor_chosen = False  # the user moved the cursor (or selected a key)
        self.version = 0  # bumped on every change that can alter what is drawn
        self._listeners: list[Callable[[bool], None]] = []
        self.hidden: frozenset[str] = frozenset()  # keys of columns not shown whatever the width

    # ------------------------------------------------------------------------- listeners

    def add_listener(self, listener: Callable[[bool], None]) -> None:
        """``listener(anchor)`` after every change; ``anchor`` is true for a data refresh (keep
        the cursor's row where it is on screen) and false for a user action (show the cursor)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[bool], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self, anchor: bool = False) -> None:
        self.version += 1
        for listener in list(self._listeners):
            listener(anchor)

    # --------------------------------------------------------------------------- columns

    def set_hidden(self, keys: Iterable[str]) -> None:
        """Hide the columns with these keys (a Netns column while only one namespace is read)."""
        hidden = frozenset(keys)
        if hidden != self.hidden:
            self.hidden = hidden
            self._changed()

    def shown_columns(self) -> list[int]:
        """Indices of the columns not hidden."""
        return [i for i, c in enumerate(self.columns) if c.key not in self.hidden]

    def layout(self, width: int) -> list[tuple[int, int]]:
        """:func:`layout_columns` of the columns not hidden: ``[(column_index, width)]``."""
        shown = self.shown_columns()
        return [(shown[i], w) for i, w in layout_columns([self.columns[i] for i in shown], width)]

    # ----------------------------------------------------------------- values and ordering

    def value(self, row: Row, column: int) -> Any:
        col = self.columns[column]
        if col.age:
            return row.born
        v = row._v
        if type(v) is not tuple:  # derived: this one column's value, not the whole tuple
            return col.get(row.payload) if col.get is not None else None
        return v[column] if column < len(v) else None

    def _sort_key(self, row: Row) -> SortKey:
        value = self.value(row, self.sort_column)
        if self.columns[self.sort_column].age:
            value = -value  # youngest first
        # flat: (kind, value, key) orders exactly as ((kind, value), key), in one tuple of three
        # instead of two tuples (one per row: 60 bytes a row at 100k rows)
        kind, norm = _norm(value)
        return (kind, norm, row.key)

    @property
    def narrowed(self) -> bool:
        """A filter or a selection is in force."""
        return self._filter is not None or self.selection is not None

    def _selected(self, row: Row) -> bool:
        return self.selection is None or self.selection in row.facets

    def _list_for(self, group: str) -> list[SortKey]:
        lst = self._ordered.get(group)
        if lst is None:
            self.groups.append(Group(group, group))
            lst = self._ordered[group] = []
            self._all[group] = []
            self._lines_stale = True  # (a new group header)
        return lst

    def _place(self, row: Row) -> None:
        """Give ``row`` its sort key and put it in its group's order of all rows."""
        self._list_for(row.group)
        row.sort_key = self._sort_key(row)
        bisect.insort(self._all[row.group], row, key=_SORT_KEY)

    def _unplace(self, row: Row) -> None:
        _remove_row(self._all.get(row.group, []), row)

    def _insert(self, row: Row) -> None:
        lst = self._list_for(row.group)
        i = bisect.bisect_left(lst, row.sort_key)
        lst.insert(i, row.sort_key)
        row.listed = True
        self._line_moved(row.group, i, len(lst), row.key)

    def _unlist(self, row: Row) -> None:
        lst = self._list_for(row.group)
        key = row.sort_key
        i = bisect.bisect_left(lst, key)
        row.listed = False
        if i < len(lst) and lst[i] == key:
            del lst[i]
            self._line_moved(row.group, i, len(lst), None)

    def _line_moved(self, group: str, i: int, size: int, key: str | None) -> None:
        """Follow one row put in (``key``) or taken out (None) at index ``i`` of its group's
        order (of ``size`` rows now) in the flat list of lines, in place: a C-level insert or
        delete, no pass over the rows. When a group header would appear or go (a narrowed table
        hides empty groups) the lines are marked for a rebuild instead."""
        if self._lines_stale:
            return
        grouped = self.grouped
        if grouped and self.narrowed and size == (1 if key is not None else 0):
            self._lines_stale = True  # the group's header shows or goes
            return
        pos = 0
        for g in self.groups:
            if g.id == group:
                break
            n = len(self._ordered.get(g.id, ()))
            if grouped:
                if self.narrowed and not n:
                    continue
                pos += 1
                if g.id in self.collapsed:
                    continue
            pos += n
        if grouped:
            if group in self.collapsed:
                return
            pos += 1
        if key is not None:
            pos += size - 1 - i if self.sort_reverse else i
            self.lines.insert(pos, key)
            if pos <= self._cursor_index:
                self._cursor_index += 1
        else:
            pos += size - i if self.sort_reverse else i
            del self.lines[pos]
            if pos < self._cursor_index:
                self._cursor_index -= 1

    def _tally(self, row: Row, sign: int) -> None:
        """Count ``row`` in (+1) or out of (-1) the facet counters."""
        for facet in row.facets:
            self.facet_totals[facet] += sign
        if row.passes:
            self.passing += sign
            for facet in row.facets:
                self.facet_passing[facet] += sign

    def _sync(self, row: Row) -> bool:
        """Re-evaluate the filter for ``row`` (counts follow) and put it in or out of the ordered
        lists per filter and selection; True if its listing changed."""
        passes = self._filter is None or self._filter(row)
        if passes != row.passes:
            self._tally(row, -1)
            row.passes = passes
            self._tally(row, 1)
        want = passes and self._selected(row)
        if want == row.listed:
            return False
        if want:
            self._insert(row)
        else:
            self._unlist(row)
        return True

    def _add_row(self, spec: RowSpec, now: float) -> Row:
        row = self.rows[spec.key] = Row(spec, now, self._derive)
        self._tally(row, 1)  # counted as passing until _sync says otherwise
        self._place(row)
        return row

    def _set_mark(self, row: Row, mark: Mark, ttl: int) -> None:
        row.mark = mark
        row.mark_left = ttl
        if mark is Mark.NONE:
            self._marked.discard(row.key)
        else:
            self._marked.add(row.key)

    def _remove_rows(self, keys: list[str]) -> None:
        """Drop rows for good: each by a binary search, or, when they are a good part of the
        table, in one pass per group."""
        rows = [self.rows.pop(k) for k in keys if k in self.rows]
        listed = [r for r in rows if r.listed]
        if len(rows) > 64 and len(rows) * 64 > len(self.rows):
            dead = {r.sort_key for r in rows}
            dead_rows = set(map(id, rows))
            for gid in {r.group for r in rows}:
                self._list_for(gid)
                lst = self._ordered[gid]
                lst[:] = [e for e in lst if e not in dead]
                every = self._all[gid]
                every[:] = [r for r in every if id(r) not in dead_rows]
            for r in listed:
                r.listed = False
            self._lines_stale = True
        else:
            for r in rows:
                if r.listed:
                    self._unlist(r)
                self._unplace(r)
        for r in rows:
            self._marked.discard(r.key)
            self._tally(r, -1)

    # ----------------------------------------------------------------------------- updates

    def apply(
        self,
        *,
        added: Iterable[RowSpec] = (),
        updated: Iterable[RowSpec] = (),
        changed: Iterable[str] = (),
        gone: Iterable[str] = (),
        now: float = 0.0,
        mark_new: bool = True,
        renamed: Mapping[str, str] | None = None,
        dropped: Iterable[str] = (),
    ) -> None:
        """One refresh: expire old marks (rows marked gone last time are removed now), move the
        ``renamed`` rows (old key -> new key: the row keeps its age, mark and cursor), remove the
        ``dropped`` ones at once (unmarked), then add, update (only rows whose values differ are
        touched), mark ``changed`` keys and mark ``gone`` keys (unless a row of that key was added
        or updated now). Rows not mentioned are not looked at."""
        structural = False
        expired: list[str] = []
        for key in list(self._marked):
            row = self.rows.get(key)
            if row is None:
                self._marked.discard(key)
                continue
            row.mark_left -= 1
            if row.mark_left > 0:
                continue
            if row.mark is Mark.GONE:
                expired.append(key)
            else:
                self._set_mark(row, Mark.NONE, 0)
                structural |= self._sync(row)
        if expired:
            self._remove_rows(expired)
            structural = True
        if renamed:
            structural |= self._rename(renamed)
        dropped = [k for k in dropped if k in self.rows]
        if dropped:
            self._remove_rows(dropped)
            structural = True
        added, updated = list(added), list(updated)
        for spec in added:
            row = self.rows.get(spec.key)
            if row is None:
                row = self._add_row(spec, now)
            else:  # back from the dead (or re-added): refresh in place
                row.born = now
                structural |= self._update(row, spec)
            if mark_new:
                self._set_mark(row, Mark.NEW, self.new_ttl)
            structural |= self._sync(row)
        for spec in updated:
            row = self.rows.get(spec.key)
            if row is None:
                row = self._add_row(spec, now)
                structural |= self._sync(row)
            else:
                if row.mark is Mark.GONE:  # it is back
                    self._set_mark(row, Mark.NONE, 0)
                structural |= self._update(row, spec)
        for key in changed:
            row = self.rows.get(key)
            if row is not None:
                self._set_mark(row, Mark.CHANGED, self.changed_ttl)
                structural |= self._sync(row)
        alive = {spec.key for spec in added} | {spec.key for spec in updated} if gone else set()
        for key in gone:
            row = self.rows.get(key)
            if row is not None and key not in alive:
                self._set_mark(row, Mark.GONE, 1)
                structural |= self._sync(row)
        if self._lines_stale:
            self._rebuild_lines()
        elif structural:
            self._place_cursor()
        self._churn.check()
        self._changed(anchor=True)

    def _rename(self, renamed: Mapping[str, str]) -> bool:
        """Move rows to new keys, all at once (a key may be both an old and a new one)."""
        moving = [(self.rows.pop(old), new) for old, new in renamed.items() if old in self.rows]
        if not moving:
            return False
        for row, _new in moving:
            if row.listed:
                self._unlist(row)
            self._unplace(row)
            self._marked.discard(row.key)
        for row, new in moving:
            stale = self.rows.pop(new, None)  # (a row left under the new key: superseded)
            if stale is not None:
                if stale.listed:
                    self._unlist(stale)
                self._unplace(stale)
                self._marked.discard(new)
                self._tally(stale, -1)
            if self.cursor_key == row.key:
                self.cursor_key = new
            row.key = new
            self.rows[new] = row
            if row.mark is not Mark.NONE:
                self._marked.add(new)
            self._place(row)
            self._sync(row)  # listed again, under its new key
        return True

    def _update(self, row: Row, spec: RowSpec) -> bool:
        """Replace a row's values; re-place it if its sort position, group or facets moved."""
        row.flags = spec.flags  # drawn, never sorted or counted: no re-placing
        derive = self._derive
        if derive is None:
            same = row.values == spec.values
        else:  # (a spec for a derived model carries no values: its payload says them)
            same = row.payload is spec.payload or derive(row.payload) == derive(spec.payload)
        if same and row.group == spec.group and row.facets == spec.facets:
            row.payload = spec.payload
            return False
        if row.facets != spec.facets:
            self._tally(row, -1)
            row.facets = spec.facets
            self._tally(row, 1)
        old_key, old_group = row.sort_key, row.group
        row.payload = spec.payload
        if derive is None:
            row._v = spec.values
        new_key = self._sort_key(row)
        if new_key == old_key and spec.group == old_group:
            return self._sync(row)
        was_listed = row.listed
        if was_listed:
            self._unlist(row)
        self._unplace(row)
        row.group = spec.group
        self._place(row)
        if was_listed:
            row.listed = False
        self._sync(row)
        return was_listed or row.listed

    def set_filter(self, predicate: Callable[[Row], bool] | None, narrowing: bool = False) -> None:
        """Re-filter every row (a user action: the predicate once per row, no sorting); with
        ``narrowing`` (the caller knows that no row failing the old filter can pass the new one: a
        word typed longer) only the rows that passed. The cursor stays on its row if that still
        shows, else it goes to the first row that does (never to a group header)."""
        self._filter = predicate
        self._relist(refilter=True, narrowing=narrowing)

    def set_selection(self, facet: str | None) -> None:
        """List only rows with ``facet`` (None: all); the cursor moves as for :meth:`set_filter`."""
        if facet == self.selection:
            return
        self.selection = facet
        self._relist(refilter=False)

    def _relist(self, refilter: bool, narrowing: bool = False) -> None:
        """The listed rows again from every row's order (kept sorted), after the filter or the
        selection changed: the filter over the rows (see :meth:`_refilter`), then one pass over
        that order, no sort."""
        rows = self.rows
        few = self.passing < self.few_share * len(rows)
        if refilter and narrowing and few and self.selection is None and self._filter is not None:
            self._narrow(self._filter)
            return
        if refilter:
            self._refilter(self._filter, rows.values() if not narrowing else None)
        selection = self.selection
        ordered: dict[str, list[SortKey]] = {}
        for gid, lst in self._all.items():
            kept = []
            for row in lst:
                listed = row.listed = row.passes and (selection is None or selection in row.facets)
                if listed:
                    kept.append(row.sort_key)
            ordered[gid] = kept
        self._ordered = ordered
        self._rebuild_lines()
        self._cursor_to_a_row()
        self._changed()

    def _refilter(self, flt: Callable[[Row], bool] | None, among: Iterable[Row] | None) -> None:
        """Each row's ``passes`` again, for the rows ``among`` (None: those that passed; the rest
        stay out), and the counts of what passes. The rows are taken in the order they were made,
        which is their order in memory: at 100k rows the same pass in sorted order spent most of
        its time waiting on memory (rows, payloads and haystacks far apart)."""
        if among is None:
            among = [row for row in self.rows.values() if row.passes]
        passed: list[tuple[str, ...]] = []  # the facets of each passing row, counted at the end
        if flt is None:
            for row in among:
                row.passes = True
                passed.append(row.facets)
        else:
            for row in among:
                if flt(row):
                    row.passes = True
                    passed.append(row.facets)
                else:
                    row.passes = False
        self.facet_passing, self.passing = Counter(chain.from_iterable(passed)), len(passed)

    def _narrow(self, flt: Callable[[Row], bool]) -> None:
        """:meth:`_relist` for a narrowing filter with no selection, when few rows pass: the
        listed rows are the passing ones, and only they can pass again, so only they are looked
        at (a word typed longer at 100k rows: the few that matched the last key, not every row)."""
        rows = self.rows
        passed: list[tuple[str, ...]] = []
        ordered: dict[str, list[SortKey]] = {}
        for gid, lst in self._ordered.items():
            kept = []
            for entry in lst:
                row = rows[entry[-1]]
                if flt(row):
                    kept.append(entry)
                    passed.append(row.facets)
                else:
                    row.passes = row.listed = False
            ordered[gid] = kept
        self._ordered = ordered
        self.facet_passing, self.passing = Counter(chain.from_iterable(passed)), len(passed)
        self._rebuild_lines()
        self._cursor_to_a_row()
        self._changed()

    def set_sort(self, column: int, reverse: bool = False) -> None:
        column = max(0, min(column, len(self.columns) - 1))
        if column != self.sort_column:
            self.sort_column = column
            self.sort_reverse = reverse
            self._rebuild_all()
        elif reverse != self.sort_reverse:
            self.sort_reverse = reverse
            self._rebuild_lines()
            self._changed()

    def _rebuild_all(self) -> None:
        """Every row's sort key and both orders again (the sort column changed)."""
        buckets: dict[str, list[Row]] = {g.id: [] for g in self.groups}
        for row in self.rows.values():
            row.sort_key = self._sort_key(row)
            bucket = buckets.get(row.group)
            if bucket is None:
                self.groups.append(Group(row.group, row.group))
                bucket = buckets[row.group] = []
            bucket.append(row)
        for lst in buckets.values():
            lst.sort(key=_SORT_KEY)
        self._all = buckets
        self._ordered = {gid: [r.sort_key for r in lst if r.listed] for gid, lst in buckets.items()}
        self._rebuild_lines()
        self._changed()

    # ------------------------------------------------------------------------------- lines

    def _rebuild_lines(self) -> None:
        self.lines_rebuilt += 1
        lines: list[str] = []
        hide_empty = self.narrowed
        for g in self.groups:
            lst = self._ordered.get(g.id, [])
            if self.grouped:
                if hide_empty and not lst:
                    continue  # narrowed: a group with nothing in it is noise
                lines.append(HEADER_PREFIX + g.id)
                if g.id in self.collapsed:
                    continue
            keys = [entry[-1] for entry in lst]
            if self.sort_reverse:
                keys.reverse()
            lines.extend(keys)
        self.lines = lines
        self._lines_stale = False
        self._place_cursor()

    def _first_row_index(self) -> int:
        return next((n for n, k in enumerate(self.lines) if not k.startswith(HEADER_PREFIX)), 0)

    def _cursor_to_a_row(self) -> None:
        row = self.rows.get(self.cursor_key or HEADER_PREFIX)
        if row is not None and row.listed:
            return
        if self.lines:
            self._cursor_index = self._first_row_index()
            self.cursor_key = self.lines[self._cursor_index]

    def _place_cursor(self) -> None:
        lines = self.lines
        if not lines:
            self._cursor_index = 0
            return
        if not self.cursor_chosen:
            # until the user moves it, the cursor sits on the first row (not a group header)
            first = self._first_row_index()
            self._cursor_index = first
            self.cursor_key = lines[first]
            return
        key = self.cursor_key
        i = self._cursor_index
        if key is not None and i < len(lines) and lines[i] == key:
            return
        if key is not None:
            self.cursor_searches += 1
            try:
                self._cursor_index = lines.index(key)
                return
            except ValueError:
                pass
        # the row is gone (or filtered out): stay at the same position
        self._cursor_index = min(i, len(lines) - 1)
        self.cursor_key = lines[self._cursor_index]

    def group_count(self, group: str) -> int:
        return len(self._ordered.get(group, ()))

    def group_label(self, group: str) -> str:
        for g in self.groups:
            if g.id == group:
                return g.label
        return group

    @property
    def row_count(self) -> int:
        """Rows listed (that pass the filter and the selection)."""
        return sum(len(lst) for lst in self._ordered.values())

    # ------------------------------------------------------------------------------ cursor

    @property
    def cursor_index(self) -> int:
        self._place_cursor()
        return self._cursor_index

    def cursor_row(self) -> Row | None:
        """The row under the cursor (None on a group header or an empty table)."""
        if not self.lines:
            return None
        key = self.lines[self.cursor_index]
        return self.rows.get(key) if not key.startswith(HEADER_PREFIX) else None

    def cursor_group(self) -> str | None:
        """The group of the line under the cursor (header or row)."""
        if not self.lines:
            return None
        key = self.lines[self.cursor_index]
        if key.startswith(HEADER_PREFIX):
            return key[len(HEADER_PREFIX) :]
        row = self.rows.get(key)
        return row.group if row else None

    def move_cursor_to(self, index: int) -> None:
        if not self.lines:
            return
        self._cursor_index = max(0, min(index, len(self.lines) - 1))
        self.cursor_key = self.lines[self._cursor_index]
        self.cursor_chosen = True
        self._changed()

    def move_cursor(self, delta: int) -> None:
        self.move_cursor_to(self.cursor_index + delta)

    def select_key(self, key: str) -> bool:
        if key in self.lines:
            self.move_cursor_to(self.lines.index(key))
            return True
        return False

    # ------------------------------------------------------------------------------ groups

    def set_collapsed(self, group: str, collapsed: bool) -> None:
        if collapsed == (group in self.collapsed):
            return
        if collapsed:
            self.collapsed.add(group)
            row = self.cursor_row()
            if row is not None and row.group == group:
                self.cursor_key = HEADER_PREFIX + group
                self.cursor_chosen = True
        else:
            self.collapsed.discard(group)
        self._rebuild_lines()
        self._changed()

    def toggle_group(self, group: str) -> None:
        self.set_collapsed(group, group not in self.collapsed)
