"""Make untrusted text (process names, command lines, banners) safe to show.

Process names and command lines are chosen by whoever started the process. They may hold
terminal escapes, control characters, invalid UTF-8 (as surrogate escapes) or be huge. Every
place that prints them goes through :func:`printable`, so they display as themselves and never
change the terminal's state. Rich markup is a separate concern: the dashboard renders these
strings as ``rich.text.Text`` (never as markup), so ``[red]x`` stays literal there.
"""

from __future__ import annotations

_CONTROL_NAMES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\"}


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
    code = ord(ch)
    return (
        code < 0x20
        or 0x7F <= code < 0xA0
        or 0xD800 <= code <= 0xDFFF
        or ch in "\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
    )


def printable(text: str | None, limit: int | None = None) -> str:
    """Return ``text`` with every control character, escape and invalid byte escaped.

    Backslashes are doubled so the escaping is unambiguous. With ``limit``, the result is cut to
    at most ``limit`` characters, ending in an ellipsis when cut.
    """
    if not text:
        return ""
    if text.isprintable() and "\\" not in text and text.isascii():
        out = text
    else:
        out = "".join(_escape_char(ch) if (_unsafe(ch) or ch == "\\") else ch for ch in text)
    if limit is not None and len(out) > limit:
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
    """``text`` as a quoted, escaped Python literal for an error message, cut to about ``limit``
    characters (a 10,000-character argument must not become a 10,000-character error line)."""
    shown = repr(str(text)[: limit + 1])
    return shown if len(shown) <= limit else shown[:limit] + "…"
