"""The canonical view that detection runs on, with a map back to the original.

Model output and adversarial prompts disguise values: a zero-width character
inside an e-mail address, full-width digits in a card number, non-breaking
spaces in a phone number.  Detection (``pii`` and ``content``) runs on a
canonical view of the text:

* format characters (Unicode category Cf: zero-width spaces and joiners,
  word joiner, soft hyphen, byte-order mark, bidi controls) are removed;
* every other space separator (no-break, figure, thin, ideographic, ...) and
  the line and paragraph separators become a plain space;
* everything else is NFKC-normalised, one character at a time (full-width
  digits become ASCII digits, ligatures are spelled out);
* JSON string escapes are read as the character they stand for (``\\n``,
  ``\\t``, ``\\"``, ``\\u0040``, ...): in a JSON answer, a card number after
  ``\\n`` starts a word, and an address written ``bob\\u0040example.com`` is
  an address.  A repair then covers the whole escape, so it never breaks one.

Each character (or escape) is canonicalised on its own, so the view of a text
is the concatenation of the views of its chunks, whatever the chunking (an
escape cut by a chunk boundary waits for the next chunk).  A
:class:`OffsetMap` turns canonical offsets back into offsets of the original,
so findings and repairs cover the original characters, disguise included.
"""

from __future__ import annotations

import html.entities
import re
import unicodedata
from bisect import bisect_right

__all__ = ["OffsetMap", "canonical", "has_escape"]


# Letters of other scripts that look like Latin ones (Unicode's confusables
# of the Latin alphabet among Cyrillic and Greek letters): a Cyrillic o
# (U+043E) in the top-level domain "com" reads as a Latin o.
_CONFUSABLE = dict(
    zip(
        "аАвВеЕһНіІјЈкКмМоОрРсСтТуУхХѕЅԁԛԝӏүҮɡѵ"
        "αΑβΒεΕζΖηΗιΙκΚμΜνΝοΟρΡτΤυΥχΧωϲϳ"
        "\u0131\u0251\u0269\u0585\u0578\u057d\u0570",
        "aABBeEhHiIjJkKmMoOpPcCTTyYxXsSdqwlyYgvaABBeEZZnHiIkKuMvNoOpPtTuYxXwcjiaiounh",
        strict=True,
    )
)

# Characters that render as nothing (or as a blank) but are not format
# characters: Hangul fillers, the braille blank.
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800")

# Dashes that are not in the dash punctuation category (minus signs, the
# prolonged sound mark, box-drawing lines, the swung dash).
_DASHES = frozenset(
    "\u2212\u2796\u02d7\u2043\ufe63\uff0d\u30fc\uff70\u2500\u2501\u2053\u23af\u2e3a\u2e3b"
)
# Dots that are not the full stop: middle dots, bullets, ideographic full stops.
_DOTS = frozenset("\u00b7\u2022\u2219\u22c5\u30fb\uff65\u3002\uff61\u2027\u0387")
# Control characters that are whitespace (the others are removed).
_CONTROL_SPACE = frozenset("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85")


class _Table(dict[int, str]):
    """``str.translate`` table, filled on demand."""

    def __missing__(self, code: int) -> str:
        rep = self[code] = _view(chr(code))
        return rep


def _view(ch: str) -> str:
    """The canonical view of one character."""
    cat = unicodedata.category(ch)
    if cat in ("Cf", "Mn", "Me") or ch in _BLANKS:
        return ""  # invisible: format characters, combining marks, fillers
    if cat == "Cc":
        return ch if ch in _CONTROL_SPACE else ""
    if ch in _DOTS:
        return "."
    if cat in ("Zs", "Zl", "Zp"):
        return " "
    if cat == "Nd":
        return str(unicodedata.decimal(ch))  # Arabic-Indic, Devanagari, ... digits
    if cat == "Pd" or ch in _DASHES:
        return "-"
    if ch in _CONFUSABLE:
        return _CONFUSABLE[ch]
    rep = unicodedata.normalize("NFKC", ch)
    if rep == ch:
        return rep
    # What NFKC made may itself need the rules above (a circled digit, a
    # full-width dash, a compatibility character with a combining mark).
    return "".join(c if c.isascii() else _view(c) for c in rep)


_TABLE = _Table()


# Escapes read as the character they stand for: JSON string escapes, HTML
# character references (numeric, and named ones with their semicolon), and
# percent escapes of printable ASCII (``%40`` is "@"; ``%20`` stays as it is).
_ESCAPE = re.compile(
    r'\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt])'
    r"|&(?:#[0-9]{1,7};?|#[xX][0-9a-fA-F]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};)"
    r"|%(?:[2-6][0-9a-fA-F]|7[0-9a-eA-E])"
    r"|</?[A-Za-z][A-Za-z0-9]{0,9}[ \t]*/?>"
)
# HTML tags (without attributes) that format a word: read as nothing; those
# that break a line or a block: read as a space.
_INLINE_TAGS = frozenset(
    "b i u s em strong code span mark small del ins tt kbd samp var sup sub font big q cite "
    "abbr".split()
)
_BLOCK_TAGS = frozenset(
    "br p div li ul ol tr td th table hr h1 h2 h3 h4 h5 h6 pre blockquote".split()
)
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# The end of a text that may be the start of an escape.
_OPEN_ESCAPE = re.compile(
    r"(?:\\(?:u[0-9a-fA-F]{0,3})?"
    r"|&(?:#[0-9]{0,7}|#[xX][0-9a-fA-F]{0,6}|[A-Za-z][A-Za-z0-9]{0,31})?"
    r"|%[2-7]?"
    r"|</?(?:[A-Za-z][A-Za-z0-9]{0,9}[ \t]*/?)?)\Z"
)


def _decoded(escape: str) -> str | None:
    """The canonical view of one escape, or None if it stands for nothing
    (an unknown entity name, a percent escape of a space)."""
    lead = escape[0]
    if lead == "<":
        name = escape.strip("</> \t").lower()
        if name in _INLINE_TAGS:
            return ""
        return " " if name in _BLOCK_TAGS else None
    if lead == "%":
        code = int(escape[1:], 16)
        return None if code == 0x20 else _TABLE[code]
    if lead == "&":
        if escape[1] == "#":
            digits = escape[2:].rstrip(";")
            code = int(digits[1:], 16) if digits[:1] in ("x", "X") else int(digits)
            if code > 0x10FFFF:
                return None
        else:
            named = html.entities.html5.get(escape[1:])
            return None if named is None else "".join(_TABLE[ord(c)] for c in named)
    elif escape[1] != "u":
        return _TABLE[ord(_SIMPLE[escape[1]])]
    else:
        code = int(escape[2:], 16)
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"  # half a surrogate pair: not a character on its own
    return _TABLE[code]


# ASCII control characters that are not whitespace: removed from the view.
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")


def _plain_ascii(text: str) -> bool:
    """Whether ``text`` is its own view: ASCII without a control character."""
    return text.isascii() and _ASCII_CONTROL.search(text) is None


def has_escape(text: str) -> bool:
    """Whether ``text`` may hold an escape (JSON, HTML, percent, a tag)."""
    return "\\" in text or "&" in text or "%" in text or "<" in text


def canonical(text: str) -> str:
    """The canonical view of ``text``."""
    if has_escape(text):
        m = OffsetMap()
        return m.add(text) + m.flush()
    if _plain_ascii(text):
        return text
    return text.translate(_TABLE)


class OffsetMap:
    """Canonical offsets to original offsets, built chunk by chunk.

    The map is piecewise linear: between breaks, canonical and original
    advance together.  Only removed or expanded characters add breaks, so an
    undisguised text has none and maps by identity.
    """

    __slots__ = ("_canon", "_ends", "_held", "_orig", "canon_end", "orig_end")

    def __init__(self) -> None:
        self._canon: list[int] = [0]
        self._orig: list[int] = [0]
        self.canon_end = 0
        self.orig_end = 0
        # The original end of each canonical character that an escape became.
        self._ends: dict[int, int] = {}
        self._held = ""  # the end of the last chunk, if it may start an escape

    @property
    def identity(self) -> bool:
        return len(self._canon) == 1 and self._orig[0] == 0

    def add(self, chunk: str, *, last: bool = False) -> str:
        """Append an original chunk; return its canonical view.

        A chunk that ends in what may be the start of an escape keeps it back
        until the next chunk (or :meth:`flush`) says what it is; with ``last``
        nothing more comes.
        """
        if self._held:
            chunk = self._held + chunk
            self._held = ""
        if not has_escape(chunk):
            return self._plain(chunk)
        out: list[str] = []
        pos = 0
        for m in _ESCAPE.finditer(chunk):
            s, e = m.span()
            if e == len(chunk) and chunk[s + 1] == "#" and chunk[e - 1] != ";" and not last:
                break  # "&#64" may go on ("&#645;"): the next chunk says
            rep = _decoded(m.group())
            if rep is None:
                continue  # not an escape after all: plain text
            if s > pos:
                out.append(self._plain(chunk[pos:s]))
            c, o, n = self.canon_end, self.orig_end, len(rep)
            for k in range(n):
                self._break(c + k, o)
            self._break(c + n, o + (e - s))
            for k in range(n):
                self._ends[c + k] = o + (e - s)
            self.canon_end, self.orig_end = c + n, o + (e - s)
            out.append(rep)
            pos = e
        tail = None if last else _OPEN_ESCAPE.search(chunk, pos)
        if tail is not None:
            self._held = chunk[tail.start() :]
            out.append(self._plain(chunk[pos : tail.start()]))
        else:
            out.append(self._plain(chunk[pos:]))
        return "".join(out)

    def flush(self) -> str:
        """The text is complete: the canonical view of what was kept back."""
        held, self._held = self._held, ""
        return self.add(held, last=True) if held else ""

    def _plain(self, chunk: str) -> str:
        """Append text without escapes; return its canonical view."""
        if _plain_ascii(chunk):
            self.canon_end += len(chunk)
            self.orig_end += len(chunk)
            return chunk
        out = chunk.translate(_TABLE)
        if len(out) == len(chunk) and all(len(_TABLE[ord(ch)]) == 1 for ch in chunk):
            self.canon_end += len(out)
            self.orig_end += len(chunk)
            return out
        c, o = self.canon_end, self.orig_end
        for ch in chunk:
            rep = _TABLE[ord(ch)]
            n = len(rep)
            if n == 1:
                c += 1
            elif n == 0:
                self._break(c, o + 1)
            else:
                for k in range(n):
                    self._break(c + k, o)
                c += n
                self._break(c, o + 1)
            o += 1
        self.canon_end, self.orig_end = c, o
        return out

    def _break(self, c: int, o: int) -> None:
        if self._canon[-1] == c:
            self._orig[-1] = o
        else:
            self._canon.append(c)
            self._orig.append(o)

    def to_orig(self, c: int) -> int:
        """The original offset of canonical offset ``c`` (a start)."""
        if c >= self.canon_end:
            return self.orig_end + (c - self.canon_end)
        k = bisect_right(self._canon, c) - 1
        return self._orig[k] + (c - self._canon[k])

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the canonical span ``[start, end)``."""
        if end <= start:
            s = self.to_orig(start)
            return s, s
        last = self._ends.get(end - 1) if self._ends else None
        return self.to_orig(start), (self.to_orig(end - 1) + 1 if last is None else last)

    def forget_before(self, c: int) -> None:
        """Drop breaks no longer needed for offsets at or after ``c``."""
        k = bisect_right(self._canon, c) - 1
        if k > 64:
            del self._canon[:k]
            del self._orig[:k]
        if len(self._ends) > 64:
            self._ends = {i: e for i, e in self._ends.items() if i >= c}
