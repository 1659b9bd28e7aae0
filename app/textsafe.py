"""Make untrusted text (process names, command lines, interface names, file contents) safe to show.

Process names and command lines are chosen by whoever started the process; interface names by
whoever created the interface; a baseline file by whoever wrote it. They may hold terminal
escapes, control characters, invisible or reordering characters, invalid UTF-8 (as surrogate
escapes) or be huge. Every place that prints them goes through :func:`printable`, so they
display as themselves and never change the terminal's state or hide what they say.

What is escaped is decided by Unicode category, not by a list (a list always misses one):
control (Cc), format (Cf: zero-width characters, bidi controls, tags, soft hyphen), line and
paragraph separators (Zl, Zp), private use (Co), unassigned (Cn), surrogates (Cs), and the
Hangul filler letters, which render as nothing. Rich markup is a separate concern: the dashboard
renders these strings as ``rich.text.Text`` (never as markup), so ``[red]x`` stays literal there.
"""

from __future__ import annotations

_CONTROL_NAMES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\"}
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"})
# Letters (category Lo) that a terminal draws as blank: used to fake empty or look-alike names.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_verdicts: dict[str, bool] = {}  # per character: escape it? (bounded by the code points seen)


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if ch in _CONTROL_NAMES:
        return _CONTROL_NAMES[ch]
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape'd byte from invalid UTF-8
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    verdict = _verdicts.get(ch)
    if verdict is None:
        import unicodedata  # only for text that is not plain printable ASCII

        verdict = unicodedata.category(ch) in _UNSAFE_CATEGORIES or ch in _BLANK_LETTERS
        if len(_verdicts) < 65536:
            _verdicts[ch] = verdict
    return verdict


def printable(text: str | None, limit: int | None = None, *, backslashes: bool = True) -> str:
    """Return ``text`` with every control, invisible and reordering character, escape and invalid
    byte escaped (``\\x1b``, ``\\u200b``, ``\\U000e0041``, ``\\xff`` for an invalid byte).

    Backslashes are doubled so the escaping is unambiguous (``backslashes=False`` keeps them, for
    text that is already partly escaped, like an error message). With ``limit``, the result is
    cut to at most ``limit`` characters, ending in an ellipsis when cut.
    """
    if not text:
        return ""
    # Escaping never shortens text, so the first ``limit`` characters decide what is kept: a
    # megabyte command line cut to 400 costs 400 characters' work.
    cut = limit is not None and len(text) > limit
    if cut:
        text = text[:limit]
    if text.isascii() and text.isprintable() and (not backslashes or "\\" not in text):
        out = text  # the common case: plain ASCII, nothing to do
    elif backslashes:
        out = "".join(_escape_char(ch) if (ch == "\\" or _unsafe(ch)) else ch for ch in text)
    else:
        out = "".join(_escape_char(ch) if (ch != "\\" and _unsafe(ch)) else ch for ch in text)
    if limit is not None and (cut or len(out) > limit):
        out = out[: max(0, limit - 1)] + "…"
    return out


def escape_bytes(data: bytes, limit: int | None = None) -> str:
    """Show raw bytes (a banner) as printable ASCII with escapes for everything else."""
    out = []
    for b in data:
        ch = chr(b)
        if ch in _CONTROL_NAMES:
            out.append(_CONTROL_NAMES[ch])
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\x{b:02x}")
    text = "".join(out)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not evaluate as a formula (CWE-1236)."""
    text = printable(str(value)) if value is not None else ""
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def quoted(text: object, limit: int = 60) -> str:
    """``text`` escaped (:func:`printable`) and quoted for an error message, cut to about ``limit``
    characters (a 10,000-character argument must not become a 10,000-character error line)."""
    shown = "'" + printable(str(text)[: limit + 1]) + "'"
    return shown if len(shown) <= limit else shown[:limit] + "…"


# A diagnostic line: no word (a run of non-space characters) longer than LONG_WORD (a 10 KB
# argument quoted by argparse), no line longer than DIAGNOSTIC_LIMIT.
LONG_WORD = 80
DIAGNOSTIC_LIMIT = 500


def _cut_long_words(text: str) -> str:
    """Each run of more than :data:`LONG_WORD` non-space characters cut to 60 and an ellipsis
    (what ``re.sub(r"\\S{81,}", ...)`` does, without importing re on every command's path)."""
    if len(text) <= LONG_WORD:
        return text
    parts: list[str] = []
    kept = 0  # text[kept:i] is copied unchanged
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        j = i + 1
        while j < n and not text[j].isspace():
            j += 1
        if j - i > LONG_WORD:
            parts.append(text[kept:i])
            parts.append(text[i : i + 60] + "…")
            kept = j
        i = j
    parts.append(text[kept:])
    return "".join(parts)


def diagnostic(text: str, limit: int = DIAGNOSTIC_LIMIT) -> str:
    """One line for stderr: unsafe characters escaped (backslashes kept: the message may quote
    text that is already escaped), each huge word cut to 60 characters, the line to ``limit``."""
    out = _cut_long_words(printable(text, backslashes=False))
    return out if len(out) <= limit else out[: limit - 1] + "…"
