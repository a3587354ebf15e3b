"""The ``length`` check: a limit on characters and/or words.

``repair`` truncates on a word boundary: the cut moves back from the limit to
the last whitespace within :data:`WORD_LOOKBACK` characters (a single longer
word is cut at the limit), and trailing whitespace is dropped.  The check
holds back nothing until the text comes within that window of the limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from .._common.model import Action, done
from .._spec.config import LengthSpec
from ._base import Check, Hit, RunContext, Session

__all__ = ["WORD_LOOKBACK", "LengthCheck"]

#: How far back from the limit a truncation looks for a word boundary.
WORD_LOOKBACK = 32
_NEVER = 1 << 62
_WORD = regex.compile(r"\S+")
_SPACE = regex.compile(r"\s")


def _is_space(ch: str) -> bool:
    """Whitespace as ``_WORD`` sees it (``str.isspace`` differs on some controls)."""
    return _SPACE.match(ch) is not None


class LengthCheck(Check):
    type = "length"
    blocking = False

    def __init__(self, spec: LengthSpec, on_error: str) -> None:
        self.id = spec.id
        self.action = Action(spec.action)
        self.on_error = spec.on_error or on_error
        self.max_chars = spec.max_chars
        self.max_words = spec.max_words

    def session(self) -> Session:
        return _LengthSession(self)

    def render(self, hit: Hit, context: RunContext) -> str:
        raise TypeError("a truncation has no replacement")

    def outcome(self, hit: Hit) -> str:
        return f"truncated at {hit.start}" if hit.action is Action.REPAIR else done(hit.action)


class _LengthSession(Session):
    __slots__ = (
        "_char_cut",
        "_check",
        "_end",
        "_in_word",
        "_lo",
        "_tail",
        "_word_cut",
        "_word_end",
        "_words",
        "done",
        "hold",
    )

    capped = False
    scans = False

    def __init__(self, check: LengthCheck) -> None:
        self._check = check
        self._end = 0
        m = check.max_chars
        self._lo = _NEVER if m is None else max(0, m - WORD_LOOKBACK)
        self._tail: list[str] = []  # text from _lo on, up to the limit + 1
        self._char_cut: tuple[int, int] | None = None
        self._words = 0
        self._in_word = False
        self._word_end = _NEVER  # end of word number max_words, once it has ended
        self._word_cut: tuple[int, int] | None = None
        self.done = False
        self.hold = min(self._lo, _NEVER)

    # -- characters ---------------------------------------------------------
    def _chars(self, chunk: str, start: int) -> None:
        m = self._check.max_chars
        if m is None or self._char_cut is not None:
            return
        end = start + len(chunk)
        if end > self._lo:
            self._tail.append(chunk[max(0, self._lo - start) : max(0, m + 1 - start)])
        if end <= m:
            return
        window = "".join(self._tail)  # text[_lo : m + 1]
        at = m - self._lo  # index of the limit in window
        if _is_space(window[at]):
            cut = at
        else:
            space = max((i for i in range(at) if _is_space(window[i])), default=-1)
            cut = at if space < 0 else space
        while cut > 0 and _is_space(window[cut - 1]):
            cut -= 1
        self._char_cut = (self._lo + cut, m + 1)

    # -- words ---------------------------------------------------------------
    def _count_words(self, chunk: str, start: int) -> None:
        k = self._check.max_words
        if k is None or self._word_cut is not None:
            return
        for w in _WORD.finditer(chunk):
            ws, we = w.span()
            continues = ws == 0 and self._in_word
            if not continues:
                if self._words == k:
                    self._word_cut = (self._word_end, start + ws + 1)
                    return
                self._words += 1
            if self._words == k:
                self._word_end = start + we
        if chunk:
            self._in_word = not _is_space(chunk[-1])

    def _word_hold(self) -> int:
        if self._check.max_words is None or self._word_cut is not None:
            return _NEVER
        if self._words == self._check.max_words and not self._in_word:
            return self._word_end
        return _NEVER  # any cut still to come is at or after the end of the text so far

    # -- session -------------------------------------------------------------
    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        if self.done:
            return ()
        start = self._end
        self._end += len(chunk)
        if self._end <= self._lo and self._check.max_words is None:
            return ()  # characters only, and far from the limit: nothing changes

        self._chars(chunk, start)
        self._count_words(chunk, start)
        return self._settle(final=False)

    def _settle(self, *, final: bool) -> Sequence[Hit]:
        char_hold = self._lo if self._char_cut is None else _NEVER
        word_hold = self._word_hold()
        if final:
            char_hold = word_hold = _NEVER
        cuts = []
        if self._char_cut is not None and self._char_cut[0] <= word_hold:
            m = self._check.max_chars
            cuts.append((*self._char_cut, f"longer than {m} characters"))
        if self._word_cut is not None and self._word_cut[0] <= char_hold:
            k = self._check.max_words
            cuts.append((*self._word_cut, f"more than {k} words"))
        if cuts:
            start, end, what = min(cuts)
            self.done = True
            self.hold = _NEVER
            hit = Hit(self._check, start, end, what, kind="truncate")
            # Held since: the look-back window of a character cut, the cut itself
            # for a word cut (see the holds above).
            hit.floor = self._lo if what.startswith("longer") else start
            return (hit,)
        self.hold = min(char_hold, word_hold)
        return ()

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        if self.done:
            return ()
        found = self._settle(final=True)
        self.done = True
        self.hold = _NEVER
        return found

    def force(self, buf: str, base: int, upto: int) -> Sequence[Hit]:
        return ()
