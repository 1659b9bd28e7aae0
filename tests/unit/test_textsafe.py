"""app.textsafe: one escaping function by Unicode category, quoted() and diagnostic lines."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.textsafe import diagnostic, printable, quoted

# Invisible or reordering characters that a category list keeps out and an ad-hoc list missed.
INVISIBLE = [
    "\u200b",  # zero width space (Cf)
    "\u200c",  # zero width non-joiner (Cf)
    "\u200d",  # zero width joiner (Cf)
    "\u2060",  # word joiner (Cf)
    "\u061c",  # arabic letter mark (Cf, bidi)
    "\u00ad",  # soft hyphen (Cf)
    "\u180e",  # mongolian vowel separator (Cf)
    "\U000e0001",  # language tag (Cf)
    "\U000e0041",  # tag latin capital A (Cf)
    "\U000e007f",  # cancel tag (Cf)
    "\U000e0002",  # unassigned inside the tag block (Cn)
    "\u115f",  # hangul choseong filler (Lo, renders as nothing)
    "\u3164",  # hangul filler (Lo, renders as nothing)
    "\uffa0",  # halfwidth hangul filler
    "\ue000",  # private use (Co)
    "\U0010fffd",  # private use plane 16 (Co)
    "\u0378",  # unassigned (Cn)
    "\u2028",  # line separator (Zl)
    "\u2029",  # paragraph separator (Zp)
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u2069",  # pop directional isolate
    "\u200e",  # left-to-right mark
    "\ufeff",  # zero width no-break space / BOM
    "\x85",  # NEL (C1)
    "\x9b",  # CSI (C1)
    "\x1b",
    "\x7f",
    "\x00",
]


@pytest.mark.parametrize("ch", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_invisible_and_control_characters_are_escaped(ch: str) -> None:
    out = printable(f"a{ch}b")
    assert ch not in out
    assert out.startswith("a\\") and out.endswith("b")
    assert out.isascii()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\u200b", "\\u200b"),
        ("\x1b", "\\x1b"),
        ("\U000e0041", "\\U000e0041"),
        ("\udcff", "\\xff"),  # an invalid byte, as os.fsdecode / surrogateescape gives it
        ("\n\t\r\\", "\\n\\t\\r\\\\"),
    ],
)
def test_escape_forms(text: str, expected: str) -> None:
    assert printable(text) == expected


@pytest.mark.parametrize(
    "text", ["naïve", "日本語", "Ελληνικά", "emoji 🙂", "a b", "café au lait", "x\u0301", "\u00a0nbsp"]
)
def test_visible_text_is_kept(text: str) -> None:
    assert printable(text) == text


def test_every_bidi_control_is_escaped() -> None:
    bidi_controls = [
        chr(c)
        for c in range(sys.maxunicode + 1)
        if unicodedata.bidirectional(chr(c))
        in ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI")
    ]
    assert len(bidi_controls) >= 9
    for ch in [*bidi_controls, "\u200e", "\u200f", "\u061c"]:
        assert ch not in printable(ch)


@given(st.text())
def test_nothing_unsafe_survives(text: str) -> None:
    out = printable(text)
    for ch in out:
        assert unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"), repr(ch)
    assert "\u115f" not in out and "\u3164" not in out


def test_plain_ascii_is_returned_as_is() -> None:
    text = "nginx: worker process"
    assert printable(text) is text


def test_quoted_escapes_like_printable_and_cuts() -> None:
    assert quoted("-1") == "'-1'"
    assert quoted("a\u200bb") == "'a\\u200bb'"
    assert quoted("\u3164") == "'\\u3164'"
    long = quoted("x" * 10_000)
    assert len(long) <= 61 and long.endswith("…")


def test_diagnostic_cuts_huge_tokens_and_lines_without_doubling_backslashes() -> None:
    line = diagnostic("argument --signal: invalid signal '" + "A" * 10_000 + "' (see 'kill -l')")
    assert len(line) < 200
    assert line.startswith("argument --signal: invalid signal 'AAAA") and line.endswith("(see 'kill -l')")
    assert diagnostic("invalid port '\\x1b'") == "invalid port '\\x1b'"  # already escaped: kept
    assert diagnostic("raw \x1b]0;x\x07 \u202e") == "raw \\x1b]0;x\\x07 \\u202e"
    assert len(diagnostic("word " * 5000)) <= 500


@given(
    st.lists(
        st.one_of(
            st.text(st.characters(blacklist_categories=("Zs", "Cc")), min_size=70, max_size=130),
            st.sampled_from([" ", "  ", "\t", "\u3000", "\u00a0", "\u2028", "\x1c", "\n"]),
            st.text(max_size=20),
        ),
        max_size=12,
    )
)
def test_long_words_are_cut_as_the_regex_cut_them(parts: list[str]) -> None:
    """The regex-free cut (re is not imported on the CLI's path) equals re.sub(r"\\S{81,}", ...)."""
    import re

    from app.textsafe import _cut_long_words

    text = "".join(parts)
    assert _cut_long_words(text) == re.sub(r"\S{81,}", lambda m: m.group(0)[:60] + "…", text)


@given(st.text(max_size=60), st.one_of(st.none(), st.integers(0, 50)), st.booleans())
def test_a_limit_cuts_as_escaping_everything_first_would(
    text: str, limit: int | None, backslashes: bool
) -> None:
    """printable escapes only the part a limit keeps; the result is what escaping the whole
    text and then cutting it gives."""
    from app.textsafe import _escape_char, _unsafe

    if backslashes:
        whole = "".join(_escape_char(ch) if (ch == "\\" or _unsafe(ch)) else ch for ch in text)
    else:
        whole = "".join(_escape_char(ch) if (ch != "\\" and _unsafe(ch)) else ch for ch in text)
    if limit is not None and len(whole) > limit:
        whole = whole[: max(0, limit - 1)] + "…"
    assert printable(text, limit, backslashes=backslashes) == (whole if text else "")
