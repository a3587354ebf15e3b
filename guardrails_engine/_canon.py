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

import re
import unicodedata
from bisect import bisect_right

__all__ = ["OffsetMap", "canonical"]


class _Table(dict[int, str]):
    """``str.translate`` table, filled on demand."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        cat = unicodedata.category(ch)
        if cat == "Cf":
            rep = ""
        elif cat in ("Zs", "Zl", "Zp"):
            rep = " "
        else:
            rep = unicodedata.normalize("NFKC", ch)
        self[code] = rep
        return rep


_TABLE = _Table()


_ESCAPE = re.compile(r'\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt])')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# The end of a text that may be the start of an escape.
_OPEN_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{0,3})?\Z")


def _decoded(escape: str) -> str:
    """The canonical view of one escape."""
    if escape[1] != "u":
        return _TABLE[ord(_SIMPLE[escape[1]])]
    code = int(escape[2:], 16)
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"  # half a surrogate pair: not a character on its own
    return _TABLE[code]


def canonical(text: str) -> str:
    """The canonical view of ``text``."""
    if "\\" in text:
        m = OffsetMap()
        return m.add(text) + m.flush()
    if text.isascii():
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

    def add(self, chunk: str) -> str:
        """Append an original chunk; return its canonical view.

        A chunk that ends in what may be the start of an escape keeps it back
        until the next chunk (or :meth:`flush`) says what it is.
        """
        if self._held:
            chunk = self._held + chunk
            self._held = ""
        if "\\" not in chunk:
            return self._plain(chunk)
        out: list[str] = []
        pos = 0
        for m in _ESCAPE.finditer(chunk):
            s, e = m.span()
            if s > pos:
                out.append(self._plain(chunk[pos:s]))
            rep = _decoded(m.group())
            c, o, n = self.canon_end, self.orig_end, len(rep)
            for k in range(n):
                self._break(c + k, o)
            self._break(c + n, o + (e - s))
            for k in range(n):
                self._ends[c + k] = o + (e - s)
            self.canon_end, self.orig_end = c + n, o + (e - s)
            out.append(rep)
            pos = e
        tail = _OPEN_ESCAPE.search(chunk, pos)
        if tail is not None:
            self._held = chunk[tail.start() :]
            out.append(self._plain(chunk[pos : tail.start()]))
        else:
            out.append(self._plain(chunk[pos:]))
        return "".join(out)

    def flush(self) -> str:
        """The text is complete: the canonical view of what was kept back."""
        held, self._held = self._held, ""
        return self._plain(held) if held else ""

    def _plain(self, chunk: str) -> str:
        """Append text without escapes; return its canonical view."""
        if chunk.isascii():
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
