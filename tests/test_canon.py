"""The canonical view and its offset map do not depend on chunking."""

from __future__ import annotations

import unicodedata
from unittest import mock

from hypothesis import event, given, settings
from hypothesis import strategies as st

from guardrails_engine._scanning.canon import OffsetMap, canonical

# Plain characters, removed ones (Cf), spaces that become " ", and characters
# that NFKC expands (ligature, circled digit, full-width digit).
ALPHABET = "ab1 .@\u200b\u200c\u2060\u00ad\ufeff\u00a0\u202f\u3000\ufb01\u2460\uff11"


# JSON string escapes, whole, cut short, and invalid; a backslash escaping a backslash.
ESCAPES = [
    "\\n",
    "\\t",
    '\\"',
    "\\\\",
    "\\/",
    "\\u0040",
    "\\u200b",
    "\\u00a0",
    "\\uFB01",
    "\\ud83d",
    "\\u12",
    "\\q",
    "\\",
    "u",
    "0",
]
PIECES = list(ALPHABET) + ESCAPES
SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
MARKDOWN = "!#$%&'()*+,-.:;<=>?@[]^_`{|}~ "
MARKDOWN_SPACING = {",": " ", ";": " ", ":": " ", " ": " ", "!": ""}


def canon_char(ch: str) -> str:
    cat = unicodedata.category(ch)
    if cat == "Cf":
        return ""
    if cat == "Cc":  # control characters other than whitespace are removed
        return ch if ch in "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85" else ""
    if cat in ("Zs", "Zl", "Zp"):
        return " "
    return unicodedata.normalize("NFKC", ch)


def reference(text: str) -> tuple[str, list[int], list[int]]:
    """The canonical text and, for each of its characters, the original span."""
    out, starts, ends = [], [], []
    i = 0
    while i < len(text):
        ch, n = text[i], 1
        if ch == "\\" and text[i + 1 : i + 2] in SIMPLE and text[i + 1 : i + 2]:
            ch, n = SIMPLE[text[i + 1]], 2
        elif ch == "\\" and text[i + 1 : i + 2] == "u":
            digits = text[i + 2 : i + 6]
            if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
                code = int(digits, 16)
                ch, n = ("\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)), 6
        elif ch == "\\" and text[i + 1 : i + 2] and text[i + 1] in MARKDOWN:
            # A markdown escape of ASCII punctuation (LaTeX spacing: a space, or nothing).
            ch, n = MARKDOWN_SPACING.get(text[i + 1], text[i + 1]), 2
        rep = canon_char(ch) if ch else ""
        out.append(rep)
        starts.extend([i] * len(rep))
        ends.extend([i + n] * len(rep))
        i += n
    return "".join(out), starts, ends


@given(
    st.lists(st.sampled_from(PIECES), max_size=20).map("".join),
    st.lists(st.integers(1, 5), min_size=1, max_size=10),
)
def test_map_matches_reference_for_any_chunking(text: str, sizes: list[int]) -> None:
    m = OffsetMap()
    canon, i, k = "", 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        canon += m.add(text[i : i + n])
        i += n
        k += 1
    canon += m.flush()
    expected, starts, ends = reference(text)
    assert canon == expected == canonical(text)
    plain = starts == list(range(len(starts))) and ends == [s + 1 for s in starts]
    assert m.identity == (plain and len(expected) == len(text))
    for s in range(len(canon)):
        for e in range(s + 1, len(canon) + 1):
            assert m.span(s, e) == (starts[s], ends[e - 1])
    # The end of the canonical text maps to the end of the original.
    assert m.to_orig(len(canon)) == len(text)


# -- a flood of overrides costs a few scans of the window each -----------------------------

# (mostly overrides and letters: a window with a line break or a tag takes the walk)
_BIDI_TEXT = st.one_of(
    st.text(alphabet="\u202e\u202e\u202e\u202d\u202ca", min_size=200, max_size=700),
    st.text(alphabet="\u202e\u202d\u202ca \n<", max_size=700),
)


@settings(max_examples=300, deadline=None)
@given(rest=_BIDI_TEXT, opener=st.sampled_from(["\u202e", "\u202d"]), last=st.booleans())
def test_the_override_shortcut_answers_as_the_walk_does(rest: str, opener: str, last: bool) -> None:
    from guardrails_engine._scanning import canon

    chunk = opener + rest
    event("shortcut" if len(rest) > 257 and canon._overrides_never_close(rest[:257]) else "walk")
    fast = canon._bidi_run(chunk, 0, 1, len(chunk), last)
    with mock.patch.object(canon, "_overrides_never_close", lambda window: False):
        walked = canon._bidi_run(chunk, 0, 1, len(chunk), last)
    assert fast == walked
