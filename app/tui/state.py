"""The dashboard's tables, without Textual: prepared snapshots applied to the table models.

:class:`Dashboard` owns the three table models and applies each poll's deltas (from
:class:`app.tui.rows.Preparer`, run in the poll thread) on the UI thread;
``Dashboard.apply_snapshot`` does both and is the headless entry point the benchmark times.
Formatting lives in :mod:`app.tui.formatting`, the column specs in :mod:`app.tui.columns`, row
preparation in :mod:`app.tui.rows`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from app.filtering import Filter, Filterable, Memo, contains
from app.health import HealthTracker
from app.model import Snapshot, Sock
from app.tui.columns import C_LOCAL, IFACE_COLUMNS, L_PORT, LISTEN_COLUMNS, NETNS, RANGE_GROUPS, conn_columns
from app.tui.formatting import fmt_remote
from app.tui.rows import Classifier, Facts, HealthView, Prepared, Preparer, RowView, SockRow
from widgets.table_model import Mark, Row, TableModel

__all__ = ["RANGE_CHOICES", "Dashboard", "Prepared", "text_predicate"]

# what the range bar and `[` `]` select among listeners (facets of their rows); "all" selects none
RANGE_CHOICES = ("all", "well-known", "registered", "dynamic", "exposed", "ephemeral")


def text_predicate(flt: Filter | None) -> Callable[[Row], bool] | None:
    """The table predicate of a filter box text (None: no filter)."""
    if flt is None or flt.is_empty:
        return None
    words = flt.words
    if words is not None:
        return _words_predicate(words)
    # one term, the usual case while typing: no generator per row
    matches: Callable[[Filterable], bool] = flt.predicates[0] if len(flt.predicates) == 1 else flt.matches
    new = Mark.NEW
    # one view, pointed at each row in turn (the table filters on the UI thread, one row at a
    # time, and no predicate keeps the row it was given)
    view = RowView.__new__(RowView)  # (its row is set before each use)
    view.memo = {}  # what each process's part of the haystack holds, searched once per word

    def ok(r: Row) -> bool:
        view.p = r.payload
        view.new = r.mark is new
        return matches(view)

    return ok


def _words_predicate(words: tuple[str, ...]) -> Callable[[Row], bool]:
    """The predicate of plain words (what typing makes): each word in the row's haystack, read
    from the two parts its payload holds (app.tui.rows.SockRow), with one Python call a row
    instead of four (filter, word, view, contains): a key typed at 100k rows is that many calls.
    :func:`app.filtering.contains` stays the one definition: this only answers before calling it
    when its memo already knows the process's part."""
    memos = tuple((needle, Memo(), " " in needle) for needle in words)
    if len(memos) > 1:

        def ok_all(r: Row) -> bool:
            p = r.payload
            if not p._own_hay:
                p.prepare_filter()
            own, owner = p._own_hay, p._owner_hay
            return all(needle in own or contains(owner, own, needle, memo) for needle, memo, _ in memos)

        return ok_all
    ((needle, memo, spaced),) = memos
    seen = memo.get

    def ok(r: Row) -> bool:
        p = r.payload
        own = p._own_hay
        if not own:
            p.prepare_filter()
            own = p._own_hay
        if needle in own:
            return True
        owner = p._owner_hay
        found = seen(owner)
        if found is None or (spaced and not found):
            return contains(owner, own, needle, memo)
        return found

    return ok


# the terms whose value is looked for as a substring: typing more of the value can only narrow
_SUBSTRING_TERMS = ("user:", "proc:", "process:", "name:", "unit:", "container:", "netns:")
_KEYWORDS = ("exposed", "new", "tunnel", "tcp", "udp")


def narrows(before: str, after: str) -> bool:
    """True when filter ``after`` can only let through rows that ``before`` lets through: the same
    text with more typed at the end of its last word, when that word is looked for as a substring
    (a plain word, ``user:``, ``proc:``, ``unit:``, ...). Then only the rows that passed need to be
    looked at again (each key typed into a word costs what its matches cost)."""
    if not before or not after.startswith(before) or after == before:
        return False
    extra = after[len(before) :]
    if before[-1].isspace() or any(c.isspace() for c in extra) or any(c in "\"'\\" for c in after):
        return False
    last, now = before.split()[-1].lower(), after.split()[-1].lower()
    if last.startswith("-") or last in _KEYWORDS or now in _KEYWORDS:
        return False
    if ":" not in now:
        return True  # a plain word, longer
    if ":" not in last:
        return False  # a word became a term
    return any(last.startswith(term) and len(last) > len(term) for term in _SUBSTRING_TERMS)


class Dashboard:
    """The dashboard's tables. ``apply`` is what one refresh costs on the UI side."""

    def __init__(
        self,
        exposure: Classifier,
        clock: Callable[[], float] = time.time,
        remote_format: Callable[[Any, float], str] = fmt_remote,
        facts: Facts | None = None,
        health: HealthTracker | None = None,
        hidden_columns: Iterable[str] = (),
    ) -> None:
        self.clock = clock
        # columns the user hid (config hidden_columns): never shown, whatever the width
        self.hidden_columns = frozenset(hidden_columns)
        conn_cols = conn_columns(remote_format)
        self.preparer = Preparer(exposure, facts, health)
        # (derived: a row's cells are read from its SockRow, which is frozen; no tuple of them is
        # kept per row, some 160 bytes a socket)
        self.listening = TableModel(LISTEN_COLUMNS, RANGE_GROUPS, sort_column=L_PORT, derived=True)
        self.connections = TableModel(conn_cols, sort_column=C_LOCAL, derived=True)
        self.interfaces = TableModel(IFACE_COLUMNS)
        self.interfaces.set_hidden(self.hidden_columns)
        self.show_netns_column(False)
        self.snapshot: Snapshot | None = None
        self.previous: Snapshot | None = None
        self.health = HealthView({})  # the last applied poll's

    def apply(self, prepared: Prepared) -> None:
        self.show_netns_column(prepared.netns_rows)  # the column follows what the rows say
        now = self.clock()
        mark = not prepared.first
        for model, delta in ((self.listening, prepared.listen), (self.connections, prepared.conns)):
            model.apply(
                added=delta.added,
                updated=delta.updated,
                changed=delta.changed,
                gone=delta.gone,
                now=now,
                mark_new=mark,
                renamed=delta.renamed,
                dropped=delta.dropped,
            )
        if prepared.interfaces is not None:
            names = {s.key for s in prepared.interfaces}
            gone = [k for k in self.interfaces.rows if k not in names]
            self.interfaces.apply(updated=prepared.interfaces, gone=gone, now=now, mark_new=False)
        self.previous, self.snapshot = self.snapshot, prepared.snapshot
        self.health = prepared.health

    def apply_snapshot(self, snap: Snapshot) -> Prepared:
        """Prepare and apply one snapshot (headless; what the benchmark times)."""
        prepared = self.preparer.prepare(snap)
        self.apply(prepared)
        return prepared

    def show_netns(self, on: bool) -> None:
        """Fill each row's namespace from the next prepared poll on, and show the Netns column
        (headless callers; the app sets the preparer's side in its poll thread)."""
        self.preparer.netns_rows = on
        self.show_netns_column(on)

    def show_netns_column(self, on: bool) -> None:
        hidden = self.hidden_columns if on else self.hidden_columns | {NETNS}
        self.listening.set_hidden(hidden)
        self.connections.set_hidden(hidden)

    def socket_for(self, model: TableModel, key: str) -> tuple[Sock, Snapshot] | None:
        """The socket of row ``key`` and the snapshot it came from (the previous one for a row
        that has just vanished). A row's payload holds its socket as of the last poll applied (a
        row is rebuilt whenever its socket is another object), so no map of the snapshot's
        sockets by key is kept beside the tables."""
        row = model.rows.get(key)
        if row is None or not isinstance(row.payload, SockRow):
            return None
        if row.mark is not Mark.GONE:
            return (row.payload.sock, self.snapshot) if self.snapshot is not None else None
        snap = self.previous or self.snapshot
        return (row.payload.sock, snap) if snap is not None else None
