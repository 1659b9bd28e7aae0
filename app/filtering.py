"""The filter language shared by the dashboard's tables and the events view.

Plain words match the process name, user, command line, address and port (case-insensitive
substring). Terms narrow further; all terms must match:

| term                          | matches                                                      |
|-------------------------------|--------------------------------------------------------------|
| ``:8080`` / ``port:8080``     | local or remote port 8080 (``port:8000-8100`` a range)        |
| ``pid:123``                   | sockets owned by pid 123                                     |
| ``user:root``                 | owner's user name contains ``root``                          |
| ``proc:nginx``                | owner's process name or command contains ``nginx``           |
| ``range:dynamic``             | local port in that IANA range (well-known/registered/dynamic)|
| ``state:close_wait``          | that state (``listen``, ``established``, ``bound``...)        |
| ``proto:udp`` / ``tcp``/``udp``| that protocol                                                |
| ``exposed``                   | reachable beyond loopback                                    |
| ``new``                       | appeared recently (highlighted as new)                       |
| ``unit:nginx``                | the owner's systemd unit (or socket unit) contains ``nginx``  |
| ``container:web``             | the owner's container (name, id or image) contains ``web``    |
| ``netns:host``                | the socket's network namespace (label or name) contains it   |
| ``tunnel``                    | the owner is a forwarder (``ssh -L``, kubectl, docker-proxy…) |
| ``-TERM``                     | negation of any term or word                                 |

:func:`parse_filter` raises :class:`~app.errors.UsageError` with one line on a malformed term.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from app.errors import UsageError
from app.model import ALL_STATES, ProcessInfo, Sock
from app.parsing import parse_port, parse_range, parse_range_name
from app.ports import PortRange
from app.textsafe import printable, quoted

FILTER_TERMS = (
    "port:",
    "pid:",
    "user:",
    "proc:",
    "range:",
    "state:",
    "proto:",
    "unit:",
    "container:",
    "netns:",
    "exposed",
    "new",
    "tunnel",
    ":PORT",
)


class Filterable(Protocol):
    """What a filter looks at for one row: :class:`FilterRow`, or a dashboard row's own view of its
    payload (:class:`app.tui.rows.RowView`, which keeps no copy of these per row)."""

    @property
    def proto(self) -> str: ...
    @property
    def local_ip(self) -> str: ...
    @property
    def local_port(self) -> int: ...
    @property
    def remote_ip(self) -> str: ...
    @property
    def remote_port(self) -> int | None: ...
    @property
    def state(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def process(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def command(self) -> str: ...
    @property
    def range(self) -> PortRange: ...
    @property
    def exposed(self) -> bool: ...
    @property
    def new(self) -> bool: ...
    @property
    def unit(self) -> str: ...
    @property
    def container(self) -> str: ...
    @property
    def netns(self) -> str: ...
    @property
    def forward(self) -> str: ...

    def contains(self, needle: str) -> bool: ...


def own_text(
    local_ip: str,
    local_port: int,
    remote_ip: str,
    remote_port: int | None,
    pid: int | None,
    state: str,
    proto: str,
    unit: str = "",
    container: str = "",
    forward: str = "",
) -> str:
    """The socket's own part of the haystack plain words are looked for in (lower case): its
    addresses, ports, pid, state, protocol, unit, container and forwarder."""
    parts = (local_ip, str(local_port), remote_ip, str(remote_port or ""), str(pid or ""), state, proto)
    return " ".join((*parts, unit, container, forward)).lower()


class Memo(dict[str, bool]):
    """Owner part -> whether one needle is in it (:func:`contains`), bounded by the characters
    of the parts it holds: a filter's predicate lives across polls, and the command lines of
    processes that have since exited would otherwise stay referenced here."""

    __slots__ = ("chars",)

    def __init__(self) -> None:
        super().__init__()
        self.chars = 0


def contains(owner: str, own: str, needle: str, memo: Memo | None = None) -> bool:
    """``needle in owner + " " + own`` (the two parts of a haystack), without joining them.

    ``memo`` (owner part -> whether ``needle`` is in it, for this one needle) lets a pass over
    many rows look in each process's part once: it is one string shared by the process's rows
    (:func:`owner_texts`), and holds the command line, which can be kilobytes (a JVM's class
    path): looking for a word in it was most of a filter key's time at 100k sockets."""
    if needle in own:
        return True
    if memo is None:
        found = needle in owner
    else:
        known = memo.get(owner)
        if known is None:
            if memo.chars + len(owner) > MEMO_CHARS:
                memo.clear()
                memo.chars = 0
            memo.chars += len(owner)
            known = memo[owner] = needle in owner
        found = known
    if found:
        return True
    # a match across the space between the parts has that space in it
    n = len(needle) - 1
    return " " in needle and needle in owner[-n:] + " " + own[:n]


MEMO_CHARS = 1 << 22  # characters of owner parts a memo holds (cleared when full)


@dataclass(frozen=True, slots=True)
class FilterRow:
    """What a filter looks at for one row (an event about a socket; tests): plain values."""

    proto: str
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int | None
    state: str
    pid: int | None
    process: str
    user: str
    command: str
    range: PortRange
    exposed: bool
    new: bool = False
    # who the owner belongs to (app.owners.OwnerFacts), when the caller knows it: raw strings
    unit: str = ""  # the systemd unit (a socket unit for socket activation; a container's scope)
    container: str = ""  # the container's name, id and image, space separated
    netns: str = ""  # the network namespace's label and name, space separated
    forward: str = ""  # a forwarder's label (ssh tunnel → ..., kubectl port-forward → ...)
    # The haystack of plain words, in two parts made once: the owner's (process, user, command
    # line: shared by every socket of a process, see owner_texts) and the socket's own.
    _owner: str = field(default="", compare=False, repr=False)
    _own: str = field(default="", compare=False, repr=False)

    def _owner_part(self) -> str:
        if not self._owner:
            object.__setattr__(self, "_owner", f"{self.process} {self.user} {self.command}".lower())
        return self._owner

    def _own_part(self) -> str:
        if not self._own:
            text = own_text(
                self.local_ip,
                self.local_port,
                self.remote_ip,
                self.remote_port,
                self.pid,
                self.state,
                self.proto,
                self.unit,
                self.container,
                self.forward,
            )
            object.__setattr__(self, "_own", text)
        return self._own

    def haystack(self) -> str:
        """What plain words are looked for in, lower case."""
        return self._owner_part() + " " + self._own_part()

    def contains(self, needle: str) -> bool:
        """``needle in self.haystack()``, without joining the two parts each time."""
        return contains(self._owner_part(), self._own_part(), needle)


@lru_cache(maxsize=4096)
def owner_texts(owner: ProcessInfo) -> tuple[str, str]:
    """(command line, owner part of the haystack) of a process: made once, shared by its rows."""
    command = owner.command
    return command, f"{owner.name} {owner.username} {command}".lower()


def row_for(
    sock: Sock,
    owner: ProcessInfo | None,
    exposed: bool,
    new: bool = False,
    *,
    unit: str = "",
    container: str = "",
    netns: str = "",
    forward: str = "",
) -> FilterRow:
    command, owner_part = owner_texts(owner) if owner is not None else ("", "")
    return FilterRow(
        proto=sock.proto.value,
        local_ip=sock.laddr.ip,
        local_port=sock.laddr.port,
        remote_ip=sock.raddr.ip if sock.raddr else "",
        remote_port=sock.raddr.port if sock.raddr else None,
        state=sock.status,
        pid=sock.pid,
        process=owner.name if owner else "",
        user=owner.username if owner else "",
        command=command,
        range=sock.range,
        exposed=exposed,
        new=new,
        unit=unit,
        container=container,
        netns=netns,
        forward=forward,
        _owner=owner_part,
    )


Predicate = Callable[[Filterable], bool]


class Word:
    """A plain word's predicate: ``needle`` (lower case) anywhere in the row's haystack. A table
    that holds the two parts of each row's haystack can look for it there itself (see
    :attr:`Filter.words` and app.tui.state.text_predicate)."""

    __slots__ = ("needle",)

    def __init__(self, needle: str) -> None:
        self.needle = needle

    def __call__(self, r: Filterable) -> bool:
        return r.contains(self.needle)


@dataclass(frozen=True)
class Filter:
    text: str
    predicates: tuple[Predicate, ...]

    @property
    def is_empty(self) -> bool:
        return not self.predicates

    @property
    def words(self) -> tuple[str, ...] | None:
        """The needles when every term is a plain word (what typing makes), else None."""
        if all(isinstance(p, Word) for p in self.predicates):
            return tuple(p.needle for p in self.predicates)  # type: ignore[attr-defined]
        return None

    def matches(self, row: Filterable) -> bool:
        return all(p(row) for p in self.predicates)


def _port_pred(value: str) -> Predicate:
    if "-" in value:
        lo, hi = parse_range(value)
    else:
        lo = hi = parse_port(value, allow_zero=True)
    return lambda r: lo <= r.local_port <= hi or (r.remote_port is not None and lo <= r.remote_port <= hi)


def _state_pred(value: str) -> Predicate:
    wanted = value.upper().replace("-", "_")
    aliases = {
        "LISTENING": "LISTEN",
        "ESTAB": "ESTABLISHED",
        "TIMEWAIT": "TIME_WAIT",
        "CLOSEWAIT": "CLOSE_WAIT",
    }
    wanted = aliases.get(wanted, wanted)
    if wanted not in ALL_STATES:
        raise UsageError(
            f"unknown state {quoted(value)}: try listen, established, time_wait, close_wait, bound"
        )
    return lambda r: r.state == wanted


def _term(token: str) -> Predicate:
    low = token.lower()
    if low == "exposed":
        return lambda r: r.exposed
    if low == "new":
        return lambda r: r.new
    if low == "tunnel":
        return lambda r: bool(r.forward)
    if low in ("tcp", "udp"):
        return lambda r: r.proto == low
    if low.startswith(":") and len(low) > 1:
        return _port_pred(low[1:])
    key, sep, value = token.partition(":")
    if sep:
        key = key.lower()
        if not value:
            raise UsageError(f"filter term {quoted(token)} needs a value, e.g. {printable(key, 20)}:…")
        if key == "port":
            return _port_pred(value)
        if key == "pid":
            if not value.isdigit() or not value.isascii() or len(value) > 10:
                raise UsageError(f"invalid pid in {quoted(token)}: expected a number")
            pid = int(value)
            return lambda r: r.pid == pid
        if key == "user":
            needle = value.lower()
            return lambda r: needle in r.user.lower()
        if key in ("proc", "process", "name"):
            needle = value.lower()
            return lambda r: needle in r.process.lower() or needle in r.command.lower()
        if key in ("unit", "container", "netns"):
            needle = value.lower()
            return lambda r: needle in getattr(r, key).lower()
        if key == "range":
            rng = parse_range_name(value)
            return lambda r: r.range is rng
        if key == "state":
            return _state_pred(value)
        if key == "proto":
            if value.lower() not in ("tcp", "udp"):
                raise UsageError(f"invalid protocol in {quoted(token)}: expected tcp or udp")
            proto = value.lower()
            return lambda r: r.proto == proto
        if "." in key or key.isdigit() or key.startswith("["):
            # an address like 127.0.0.1:8080 typed as plain text
            needle = token.lower()
            return lambda r: needle in f"{r.local_ip}:{r.local_port}".lower() or r.contains(needle)
        raise UsageError(
            f"unknown filter term {key + ':'!r}: use port:, pid:, user:, proc:, range:, state:, proto:, "
            "unit:, container:, netns:"
        )
    return Word(low)


def _negate(pred: Predicate) -> Predicate:
    return lambda r: not pred(r)


def parse_filter(text: str) -> Filter:
    """Parse the filter box's text. Raises UsageError (one line) on a malformed term."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    preds: list[Predicate] = []
    for token in tokens:
        if token.startswith("-") and len(token) > 1:
            preds.append(_negate(_term(token[1:])))
        else:
            preds.append(_term(token))
    return Filter(text, tuple(preds))
