"""portscope's settings file, ``$XDG_CONFIG_HOME/portscope/config.toml`` (``~/.config/...`` when
the variable is unset or not an absolute path, as the XDG base directory spec says).

One flat TOML table of the keys in :data:`SETTINGS`::

    interval = 5                          # refresh of the dashboard and of `watch`, seconds
    start_view = "connections"            # listening, connections, interfaces or events
    hidden_columns = ["command", "age"]   # column keys, hidden in every view that has them
    theme = "nord"                        # a Textual theme name
    dns = true                            # reverse DNS on from the start
    kill_timeout = 5                      # how long kill waits for the exit, seconds

Reading never fails: :func:`load_config` returns a :class:`Config` whose ``warnings`` are one line
each (naming the file and the key) for a file that cannot be read or parsed, an unknown key or a
bad value; what could not be used is at its default. The CLI prints them on stderr and goes on;
the dashboard shows them as a notification. Command line flags win over the file (the CLI applies
the file as the parser's defaults: app/cli/cmd_config.py ``apply_config``).

For the dashboard: ``config = load_config()`` (or ``args.config`` from the CLI), then
``config.start_view``, ``config.hidden_columns``, ``config.theme``, ``config.dns``,
``config.interval``, ``config.kill_timeout`` and ``config.warnings``; ``save_setting("theme",
name)`` stores a chosen theme. :func:`check_theme` says whether a theme name is one the app has.

Writing (:func:`save_setting`, :func:`unset_setting`) edits the file as text, so the user's
comments, blank lines, order and other keys stay as they were: the key's own line (or lines) is
replaced, a missing key is added before the first table, the new text is parsed again and must
hold exactly the old data with that one change, else nothing is written and the error says to
edit the file by hand. The file is replaced atomically (app/fileout.py ``write_atomic``), a
symlinked file keeps its link. A file that does not parse is never rewritten.

Deliberately without platformdirs (its import costs about 0.15x the CLI's whole start-up, for
one path, bench/startup_deps.py; it would also put the file under ``~/Library/Application
Support`` on macOS, where CLI users expect ``~/.config``), and without dataclasses and typing at
run time. tomllib (as costly as platformdirs) is imported only when the file exists, so a missing
file costs one ``stat``; this module's own import is about 0.03x the start-up.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence

from app.configpath import config_path
from app.errors import UsageError
from app.textsafe import printable, quoted

TYPE_CHECKING = False  # not typing's: this module is on every command's start-up path
if TYPE_CHECKING:
    from typing import Any

MAX_BYTES = 1 << 20  # a settings file is a few hundred bytes; refuse to parse a runaway one

VIEWS = ("listening", "connections", "interfaces", "events")
# Every column key of the dashboard's tables (app/tui/columns.py; tests/unit/test_config.py keeps
# the two equal). A key hides that column in every view that has it.
COLUMNS = (
    "proto",
    "address",
    "port",
    "exposure",
    "pid",
    "process",
    "user",
    "netns",
    "service",
    "queue",
    "conns",
    "age",
    "command",
    "state",
    "local",
    "remote",
    "rtt",
    "retrans",
    "name",
    "up",
    "ipv4",
    "ipv6",
    "gateway",
    "mtu",
    "speed",
    "rx",
    "rx_spark",
    "tx",
    "tx_spark",
)
# The same bounds as the command line's --interval and --timeout (app/cli/common.py; the tests
# check the two agree).
INTERVAL_MIN, INTERVAL_MAX = 0.2, 3600.0
TIMEOUT_MAX = 86400.0
DEFAULT_THEME = "textual-dark"  # Textual's own default
_THEME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SOURCES = ("default", "file", "flag")


class _Bad(Exception):
    """A value of the right key but the wrong type or range."""


def _seconds(low: float, high: float, *, above: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _Bad
        if (value <= low if above else value < low) or value > high:
            raise _Bad
        return float(value)

    return check


def _choice(options: Sequence[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise _Bad
        return value

    return check


def _columns(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v in COLUMNS for v in value):
        raise _Bad
    return tuple(dict.fromkeys(value))  # duplicates dropped, order kept


def _theme(value: Any) -> str:
    if not isinstance(value, str) or not _THEME_NAME.fullmatch(value):
        raise _Bad
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad
    return value


class Setting:
    """One key: its default, the check that turns a TOML value into the value used (or raises),
    what it expects (for the warning) and what it does (for README and ``config show``)."""

    __slots__ = ("check", "default", "doc", "expects", "key")

    def __init__(self, key: str, default: Any, check: Callable[[Any], Any], expects: str, doc: str) -> None:
        self.key = key
        self.default = default
        self.check = check
        self.expects = expects
        self.doc = doc


_SETTINGS = (
    Setting(
        "interval",
        2.0,
        _seconds(INTERVAL_MIN, INTERVAL_MAX),
        f"seconds from {INTERVAL_MIN:g} to {INTERVAL_MAX:g}",
        "refresh interval of the dashboard and of `watch` (--interval)",
    ),
    Setting(
        "start_view",
        "listening",
        _choice(VIEWS),
        "one of " + ", ".join(VIEWS),
        "the dashboard's first view",
    ),
    Setting(
        "hidden_columns",
        (),
        _columns,
        "a list of column keys (" + ", ".join(COLUMNS) + ")",
        "dashboard columns not shown, in every view that has them",
    ),
    Setting(
        "theme",
        DEFAULT_THEME,
        _theme,
        "a theme name such as textual-dark, textual-light or nord",
        "the dashboard's Textual theme (the command palette's theme switcher saves it)",
    ),
    Setting("dns", False, _bool, "true or false", "reverse DNS of remote addresses on from the start"),
    Setting(
        "kill_timeout",
        3.0,
        _seconds(0.0, TIMEOUT_MAX, above=True),
        f"seconds above 0 and at most {TIMEOUT_MAX:g}",
        "how long kill waits for the exit (kill --timeout)",
    ),
)
SETTINGS: dict[str, Setting] = {s.key: s for s in _SETTINGS}


# ------------------------------------------------------------------------------------------- path


# ------------------------------------------------------------------------------------- the values


class Config:
    """The settings in force: each key's value and where it came from (``default``, ``file`` or,
    set by the CLI, ``flag``), the file's path, whether it exists, and the warnings."""

    __slots__ = ("_sources", "_values", "exists", "path", "warnings")

    def __init__(
        self,
        path: str,
        *,
        exists: bool = False,
        values: Mapping[str, Any] | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.exists = exists
        self._values = {key: s.default for key, s in SETTINGS.items()}
        self._sources = dict.fromkeys(SETTINGS, "default")
        for key, value in (values or {}).items():
            self._values[key] = value
            self._sources[key] = "file"
        self.warnings: list[str] = list(warnings)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return (self.path, self.exists, self._values, self._sources, self.warnings) == (
            other.path,
            other.exists,
            other._values,
            other._sources,
            other.warnings,
        )

    __hash__ = None  # type: ignore[assignment]

    def get(self, key: str) -> Any:
        return self._values[key]

    def source(self, key: str) -> str:
        return self._sources[key]

    def override(self, key: str, value: Any, source: str = "flag") -> None:
        """Record a value that wins over the file (a command line flag)."""
        if key not in SETTINGS or source not in _SOURCES:
            raise KeyError(key)
        self._values[key] = value
        self._sources[key] = source

    def items(self) -> Iterator[tuple[str, Any, str]]:
        """``(key, value, source)`` for every setting, in :data:`SETTINGS` order."""
        for key in SETTINGS:
            yield key, self._values[key], self._sources[key]

    @property
    def interval(self) -> float:
        return float(self._values["interval"])

    @property
    def start_view(self) -> str:
        return str(self._values["start_view"])

    @property
    def hidden_columns(self) -> tuple[str, ...]:
        return tuple(self._values["hidden_columns"])

    @property
    def theme(self) -> str:
        return str(self._values["theme"])

    @property
    def dns(self) -> bool:
        return bool(self._values["dns"])

    @property
    def kill_timeout(self) -> float:
        return float(self._values["kill_timeout"])

    def __repr__(self) -> str:
        return f"Config({self.path!r}, {dict(self._values)!r}, warnings={self.warnings!r})"


def _shown_path(path: str) -> str:
    return printable(path)


def _read(path: str) -> tuple[str | None, str | None]:
    """``(text, None)``, ``(None, None)`` when there is no file, or ``(None, problem)``. Never
    blocks (a FIFO in its place) and never reads more than :data:`MAX_BYTES`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if os.path.isdir(path):
            return None, "it is a directory"
        return None, exc.strerror or str(exc)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            return None, "not a regular file"
        data = os.read(fd, MAX_BYTES + 1)
        chunks = [data]
        while data and sum(map(len, chunks)) <= MAX_BYTES:
            data = os.read(fd, MAX_BYTES + 1)
            chunks.append(data)
    except OSError as exc:
        return None, exc.strerror or str(exc)
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > MAX_BYTES:
        return None, f"larger than {MAX_BYTES // 1024} KiB"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte {exc.start})"


def _parse(text: str) -> tuple[dict[str, Any] | None, str | None]:
    import tomllib

    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        return None, (message[:1].lower() + message[1:]) if message else "not valid TOML"


def _short(value: Any, limit: int = 40) -> str:
    """A bad value as TOML-ish text for a warning, escaped and cut."""
    try:
        text = toml_value(value)
    except TypeError:
        text = "a table" if isinstance(value, dict) else type(value).__name__
    return printable(text, limit, backslashes=False)


def _unknown(path: str, key: str, raw: Any) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(SETTINGS), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(SETTINGS)
    what = "table [" + printable(key, 40) + "]" if isinstance(raw, dict) else "key " + quoted(key, 40)
    return f"config file {_shown_path(path)}: unknown {what} ignored ({hint})"


def validate(data: Mapping[str, Any], path: str) -> tuple[dict[str, Any], list[str]]:
    """The valid settings in ``data`` (a parsed file) and one warning per unknown key or bad value."""
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for key, raw in data.items():
        setting = SETTINGS.get(key)
        if setting is None:
            warnings.append(_unknown(path, key, raw))
            continue
        try:
            values[key] = setting.check(raw)
        except _Bad:
            warnings.append(
                f"config file {_shown_path(path)}: {key} = {_short(raw)}: expected {setting.expects}; "
                f"using the default {toml_value(setting.default)}"
            )
    return values, warnings


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """The settings from ``path`` (default :func:`config_path`). Never raises: problems become
    ``warnings`` (one line each) and what they touch stays at its default."""
    path = config_path(environ) if path is None else path
    text, problem = _read(path)
    if problem is not None:
        return Config(
            path,
            exists=True,
            warnings=[f"cannot read the config file {_shown_path(path)}: {problem}; using the defaults"],
        )
    if text is None:
        return Config(path)
    data, problem = _parse(text)
    if data is None:
        return Config(
            path,
            exists=True,
            warnings=[f"config file {_shown_path(path)}: {printable(problem)}; using the defaults"],
        )
    values, warnings = validate(data, path)
    return Config(path, exists=True, values=values, warnings=warnings)


def check_theme(config: Config, available: Sequence[str]) -> str | None:
    """For the dashboard: a warning line when the configured theme is not one of ``available``
    (the app's theme names), else ``None``."""
    if config.theme in available:
        return None
    return (
        f"config file {_shown_path(config.path)}: theme = {toml_value(config.theme)}: no such theme; "
        f"using {DEFAULT_THEME}"
    )


# ------------------------------------------------------------------------------------ TOML writer


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """A setting's value as TOML: booleans, numbers (``5`` rather than ``5.0``), strings and
    lists of those. Anything else is a TypeError: the writer only writes the keys it owns."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError("not a finite number")
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a setting")


_HEADER = re.compile(r"\s*\[")


def _key_line(key: str) -> re.Pattern[str]:
    return re.compile(rf"\s*{re.escape(key)}\s*=")


def _value_extent(lines: list[str], start: int, key: str, old: Any) -> int:
    """The line after the last one of ``key``'s value, which starts at ``lines[start]`` (a value
    may span lines: a list written one item a line). -1 if no extent parses to the old value."""
    import tomllib

    for end in range(start + 1, min(len(lines), start + 200) + 1):
        try:
            if tomllib.loads("".join(lines[start:end])) == {key: old}:
                return end
        except tomllib.TOMLDecodeError:
            continue
    return -1


def _comment_after(line: str, key: str, old: Any) -> str:
    """The trailing ``  # comment`` of a one-line ``key = value  # comment`` (with the spaces
    before it), or ``""``."""
    import tomllib

    body = line.rstrip("\r\n")
    for match in re.finditer("#", body):
        head = body[: match.start()]
        try:
            if tomllib.loads(head) == {key: old}:
                return body[len(head.rstrip()) :]
        except tomllib.TOMLDecodeError:
            continue
    return ""


def _edit(text: str, data: dict[str, Any], key: str, value: Any | None) -> str:
    """``text`` with ``key`` set to ``value`` (removed when ``None``); raises ``ValueError`` when
    the change cannot be made by replacing the key's own lines."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    top = next((i for i, line in enumerate(lines) if _HEADER.match(line)), len(lines))
    pattern = _key_line(key)
    found = [i for i in range(top) if pattern.match(lines[i])]
    if len(found) > 1:
        raise ValueError(f"{key} is written more than once")
    new_line = None if value is None else f"{key} = {toml_value(value)}"
    if found:
        start = found[0]
        end = _value_extent(lines, start, key, data.get(key))
        if end < 0:
            raise ValueError(f"{key} is written in a form this writer does not keep")
        ending = lines[end - 1][len(lines[end - 1].rstrip("\r\n")) :] or newline
        if new_line is None:
            lines[start:end] = []
        else:
            comment = _comment_after(lines[start], key, data.get(key)) if end == start + 1 else ""
            lines[start:end] = [new_line + comment + ending]
    elif new_line is not None:
        # After the last line of the top-level table that holds anything (so the comments and
        # blank lines that introduce a [table] stay with it), or at the end.
        filled = [i for i in range(top) if lines[i].strip() and not lines[i].lstrip().startswith("#")]
        at = filled[-1] + 1 if filled else top
        if at == len(lines):
            if lines and not lines[-1].endswith(("\n", "\r")):
                lines[-1] += newline
            lines.append(new_line + newline)
        else:  # lines[at - 1] is followed by a line, so it ends in a newline
            lines.insert(at, new_line + newline)
    return "".join(lines)


_NEW_FILE = "# portscope settings ('portscope config show' lists every key and what is in force)\n"


def _change(key: str, value: Any | None, path: str | None) -> str:
    path = config_path() if path is None else path
    shown = _shown_path(path)
    setting = SETTINGS.get(key)
    if setting is None:
        raise UsageError(f"unknown setting {quoted(key, 40)}: expected one of {', '.join(SETTINGS)}")
    if value is not None:
        try:
            value = setting.check(value)
        except _Bad:
            raise UsageError(f"invalid {key} {_short(value)}: expected {setting.expects}") from None
        if isinstance(value, tuple):
            value = list(value)
    text, problem = _read(path)
    if problem is not None:
        raise UsageError(f"cannot read the config file {shown}: {problem}")
    if text is None:
        if value is None:
            return path  # nothing to remove
        text = _NEW_FILE
        data: dict[str, Any] = {}
    else:
        parsed, problem = _parse(text)
        if parsed is None:
            raise UsageError(f"not changing the config file {shown}: {printable(problem)}; fix it first")
        data = parsed
        if value is None and key not in data:
            return path
    import tomllib

    try:
        new_text = _edit(text, data, key, value)
        expected = dict(data)
        if value is None:
            del expected[key]
        else:
            expected[key] = tomllib.loads(f"{key} = {toml_value(value)}")[key]
        if tomllib.loads(new_text) != expected:
            raise ValueError("the rewritten file would not hold the same settings")
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        reason = str(exc) if not isinstance(exc, tomllib.TOMLDecodeError) else "it would not parse"
        raise UsageError(
            f"cannot rewrite the config file {shown} safely ({reason}): edit it by hand"
        ) from None
    from app.fileout import write_atomic

    directory = os.path.dirname(path)
    if directory:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create {printable(directory)}: {exc.strerror or exc}") from None
    write_atomic(path, new_text, what="config file")
    return path


def save_setting(key: str, value: Any, path: str | None = None) -> str:
    """Set ``key`` to ``value`` in the config file (created if missing), keeping everything else
    in it as written. Returns the file's path. Raises :class:`~app.errors.UsageError` (one line)
    for an unknown key, a bad value, a file that does not parse or cannot be rewritten safely,
    and :class:`~app.errors.OutputError` when the write itself fails."""
    if value is None:
        raise UsageError(f"invalid {key}: no value")
    return _change(key, value, path)


def unset_setting(key: str, path: str | None = None) -> str:
    """Remove ``key`` from the config file (back to its default), keeping everything else."""
    return _change(key, None, path)
