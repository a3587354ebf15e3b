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
  candidate is a match in progress, without asking.

A hint is a fact about the language of the pattern, so it is declared for the
pattern's text and flags, once, by the module that writes the pattern, and is
found for any pattern with that text and those flags.  Each one must be sound:
a wrong ``needle`` or ``spoiler`` would lose matches (``tests/test_scan_hints.py``
checks every declared hint against the engine on hostile texts).  The three
expressions must not look around (``needle``, ``spoiler``: a match of them in a
part of the text is a match in the whole); ``sure`` may look behind.
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


_HINTS: dict[tuple[str, int], Hint] = {}


def declare(
    pattern: regex.Pattern[str],
    *,
    needle: str | None = None,
    spoiler: str | None = None,
    sure: str | None = None,
) -> None:
    """Declare what is known of ``pattern`` (its text and flags); the hints are
    compiled without flags (scope them inline: ``(?i:at)``)."""
    _HINTS[(pattern.pattern, pattern.flags)] = Hint(
        None if needle is None else regex.compile(needle),
        None if spoiler is None else regex.compile(spoiler, regex.REVERSE),
        None if sure is None else regex.compile(sure),
    )


def hint(pattern: regex.Pattern[str]) -> Hint | None:
    """What was declared for a pattern with this text and these flags, if anything."""
    return _HINTS.get((pattern.pattern, pattern.flags))


def declared() -> list[tuple[str, int, Hint]]:
    """Every declaration (for the tests that check them)."""
    return [(text, flags, h) for (text, flags), h in _HINTS.items()]


class Known:
    """The hints of the patterns a scanner looks for together."""

    __slots__ = ("needles", "spoilers", "sure")

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
