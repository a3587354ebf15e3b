"""What a pattern's author knows about its matches that the analysis cannot read.

``analysis.py`` reads a pattern's first and required *characters*.  Some patterns
need more to be scanned cheaply: an e-mail address written in words
(``jdoe [at] example [dot] com``) may start at any word of prose, and its
required characters (``@``, or "at" between brackets) are, one at a time,
everywhere.  Its author can say, in three regular expressions:

- ``needle``: every match contains a match of it (``@``, or "at" between
  brackets): where it is not found, the pattern is not searched;
- ``spoiler``: no match contains a match of it (for the words pattern, a letter,
  whitespace and a letter: inside an address, whitespace always touches a
  bracket or an ``@``): a candidate start with a spoiler after it is not a match
  in progress, and is not asked about;
- ``sure``: a text from a candidate start that it matches in full is a prefix
  of a match (a word and the spaces after it may go on as ``jdoe [at] ...``): the
  candidate is a match in progress, without asking;
- ``settle``: searched backwards from the end of the text (its author anchors it
  with ``\\Z``), a match from ``s`` says that no match is in progress from any
  position before ``s`` and that one is from ``s`` (prose: two words and a space
  between them before the trailing word, which ``sure`` matches): one search
  answers where a match may be in progress, instead of a search for the last
  spoiler and one for the next candidate;
- ``clear``: the first half of ``settle`` (nothing in progress before ``s``), for
  a pattern scanned with one that declares ``settle`` with the same text.

A hint is a fact about the language of the pattern, so it is declared for the
pattern's text and flags, once, by the module that writes the pattern, and is
found for any pattern with that text and those flags.  Each one must be sound:
a wrong ``needle`` or ``spoiler`` would lose matches (``tests/test_scan_hints.py``
checks every declared hint against the engine on hostile texts).  ``needle``
and ``spoiler`` must not look around (a match of them in a part of the text is a
match in the whole); ``sure``, ``settle`` and ``clear`` may.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import regex

__all__ = ["Hint", "Known", "declare", "declared", "either", "hint", "unspoiled"]


@dataclass(frozen=True, slots=True)
class Hint:
    """Compiled hints of one pattern (see the module's docstring); ``None``: none."""

    needle: regex.Pattern[str] | None = None
    spoiler: regex.Pattern[str] | None = None  # compiled to search backwards
    sure: regex.Pattern[str] | None = None
    settle: regex.Pattern[str] | None = None  # compiled to search backwards
    clear: regex.Pattern[str] | None = None  # compiled to search backwards


_HINTS: dict[tuple[str, int], Hint] = {}


def declare(
    pattern: regex.Pattern[str],
    *,
    needle: str | None = None,
    spoiler: str | None = None,
    sure: str | None = None,
    settle: str | None = None,
    clear: str | None = None,
) -> None:
    """Declare what is known of ``pattern`` (its text and flags); the hints are
    compiled without flags (scope them inline: ``(?i:at)``)."""
    if settle is not None and clear is not None:
        raise ValueError("declare settle or clear, not both: settle says what clear says")
    _HINTS[(pattern.pattern, pattern.flags)] = Hint(
        None if needle is None else regex.compile(needle),
        None if spoiler is None else regex.compile(spoiler, regex.REVERSE),
        None if sure is None else regex.compile(sure),
        None if settle is None else regex.compile(settle, regex.REVERSE),
        None if clear is None else regex.compile(clear, regex.REVERSE),
    )


def hint(pattern: regex.Pattern[str]) -> Hint | None:
    """What was declared for a pattern with this text and these flags, if anything."""
    return _HINTS.get((pattern.pattern, pattern.flags))


def declared() -> list[tuple[str, int, Hint]]:
    """Every declaration (for the tests that check them)."""
    return [(text, flags, h) for (text, flags), h in _HINTS.items()]


class Known:
    """The hints of the patterns a scanner looks for together."""

    __slots__ = ("needles", "settle", "spoilers", "sure")

    def __init__(self, patterns: Sequence[regex.Pattern[str]]) -> None:
        hints = [hint(p) for p in patterns]
        #: Per pattern, its needle (None: none declared).
        self.needles = tuple(None if h is None else h.needle for h in hints)
        # Spoilers only if every pattern has one: a candidate is ruled out when it
        # is ruled out for each.
        spoilers = [h.spoiler for h in hints if h is not None and h.spoiler is not None]
        # (One search for patterns that declare the same spoiler.)
        unique = {s.pattern: s for s in spoilers}
        self.spoilers = tuple(unique.values()) if len(spoilers) == len(hints) else ()
        #: One of the sure hints matches in full: one of the patterns is in progress.
        self.sure = either([h.sure for h in hints if h is not None and h.sure is not None])
        #: Searched backwards from the end: where it matches, a match of one of the
        #: patterns is in progress, and none before (every pattern declares it as its
        #: ``settle`` or ``clear``, one at least as ``settle``).
        self.settle: regex.Pattern[str] | None = None
        ends = [None if h is None else (h.settle or h.clear) for h in hints]
        texts = {e.pattern for e in ends if e is not None}
        if hints and None not in ends and len(texts) == 1:
            if any(h is not None and h.settle is not None for h in hints):
                self.settle = ends[0]


def either(patterns: Sequence[regex.Pattern[str] | None]) -> regex.Pattern[str] | None:
    """One pattern matching where any of ``patterns`` (without global flags) does; None
    if one of them is None, or if there are none."""
    if not patterns or any(p is None for p in patterns):
        return None
    return regex.compile("|".join(f"(?:{p.pattern})" for p in patterns if p is not None))


def unspoiled(spoilers: Sequence[regex.Pattern[str]], buf: str, p: int) -> int:
    """The first position from ``p`` on that no spoiler rules out: each spoiler's last
    occurrence in ``buf[p:]`` rules out every start up to it, for its pattern."""
    if not spoilers:
        return p
    last = len(buf)
    for spoiler in spoilers:
        m = spoiler.search(buf, p)
        if m is None:
            return p
        last = min(last, m.start())
    return max(p, last + 1)
