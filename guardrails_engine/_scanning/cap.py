"""What a pattern check decides when a match in progress passes the hold-back cap.

A stream holds text back while a match may still be in progress there.  When
that stretch grows past ``max_holdback_chars`` the text before the cap must be
decided as it stands.  Deciding it "as it stands" must never be *less*
careful than ``validate``: a match that started before the cap and ends after
it (an e-mail address glued to the end of a long token) would otherwise be
released unmasked, since what is left of it after the cap is no match.

So the stretch is *undecided*: from where such a match may have started, to
where it must have ended, it is treated as one finding of the check (masked
by a repair check, a block by a block check).  Where it must have ended is
read off the pattern before any text:

- a pattern whose matches are at most as long as the cap cannot be in progress
  over more than the cap: nothing is undecided;
- otherwise a match consumes only characters of the pattern's *alphabet*
  (the union of every character class it consumes), so it has ended by the
  first character outside it (whitespace for an e-mail address, a letter
  other than ``ext`` for a phone number);
- a pattern that may consume any character (``.`` under DOTALL, a
  back-reference, syntax the parser does not know) may run to the end of the
  text: everything after the cap is undecided.

Each pattern is considered on its own: it may be in progress only from one of
its candidate starts after its last alphabet break.  This is the one place
where a stream may disagree with ``validate``, and only by masking or blocking
more, never less.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import regex

from .._common.deadline import Deadline
from .analysis import char, facts, parse_tree
from .compose import classes, probe

__all__ = ["CapFacts", "cap_facts"]

_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
    "CATEGORY_LINEBREAK": r"\n",
    "CATEGORY_NOT_LINEBREAK": r"[^\n]",
}


class _Everything(Exception):
    """The pattern may consume any character (or the parser cannot tell)."""


class _Alphabet:
    """The classes a pattern consumes: ``plus`` (class bodies) and ``minus``
    (bodies of negated classes: everything but them)."""

    def __init__(self, dotall: bool) -> None:
        self.plus: list[str] = []
        self.minus: list[str] = []
        self.dotall = dotall

    def walk(self, seq: Iterable[tuple[Any, Any]]) -> None:
        for op, av in seq:
            name = str(op)
            if name == "LITERAL":
                self.plus.append(char(av))
            elif name == "NOT_LITERAL":
                self.minus.append(char(av))
            elif name == "ANY":
                if self.dotall:
                    raise _Everything
                self.minus.append(r"\n")
            elif name == "IN":
                self._klass(av)
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                self.walk(av[2])
            elif name == "SUBPATTERN":
                self.walk(av[3])
            elif name == "ATOMIC_GROUP":
                self.walk(av)
            elif name == "BRANCH":
                for branch in av[1]:
                    self.walk(branch)
            elif name == "GROUPREF_EXISTS":
                self.walk(av[1])
                if av[2] is not None:
                    self.walk(av[2])
            elif name in ("AT", "ASSERT", "ASSERT_NOT"):
                continue  # consumes nothing
            else:  # GROUPREF, FAILURE, anything new
                raise _Everything

    def _klass(self, items: list[tuple[Any, Any]]) -> None:
        body: list[str] = []
        negate = False
        for op, av in items:
            name = str(op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                body.append(char(av))
            elif name == "RANGE":
                body.append(f"{char(av[0])}-{char(av[1])}")
            elif name == "CATEGORY":
                rendered = _CATEGORIES.get(str(av))
                if rendered is None or rendered.startswith("["):
                    raise _Everything
                body.append(rendered)
            else:
                raise _Everything
        if not body:
            raise _Everything
        (self.minus if negate else self.plus).append("".join(body))

    def outside(self, flags: int) -> regex.Pattern[str] | None:
        """A class of the characters no match consumes, or None if there are none known."""
        if not self.minus and not self.plus:
            return None
        parts = []
        if self.plus:
            parts.append("[^" + "".join(self.plus) + "]")
        parts += ["[" + m + "]" for m in self.minus]
        body = parts[0] if len(parts) == 1 else "[" + "&&".join(parts) + "]"
        scoped = "i" if flags & regex.IGNORECASE else ""
        return regex.compile(f"(?V1{scoped}){body}")


@dataclass(frozen=True, slots=True)
class CapFacts:
    """What one pattern says about a match in progress at the cap."""

    #: The longest match (None: unbounded or unknown).
    width: int | None
    #: Where a match may start (None: anywhere).
    starts: regex.Pattern[str] | None
    #: Characters no match consumes (None: the match may run to the end of the text).
    outside: regex.Pattern[str] | None
    #: The same, searching backwards.
    outside_back: regex.Pattern[str] | None
    #: ``(?:R)(?!)``: with partial matching, where a match may be in progress.
    probe: regex.Pattern[str]

    def wide(self, cap: int) -> bool:
        """Whether a match may be longer than the cap."""
        return self.width is None or self.width > cap


@functools.lru_cache(maxsize=4096)
def cap_facts(pattern: regex.Pattern[str]) -> CapFacts:
    """What ``pattern`` says about a match in progress at the cap (cached per pattern)."""
    try:
        tree = parse_tree(pattern.pattern, pattern.flags)
    except Exception:  # syntax only ``regex`` knows: nothing is known
        return CapFacts(None, None, None, None, probe([pattern]))
    _, hi = tree.getwidth()
    width = None if hi >= 1 << 30 else int(hi)
    first = facts(pattern.pattern, pattern.flags).first
    starts = classes([pattern], [first], lead=True) if first is not None else None
    alphabet = _Alphabet(bool(pattern.flags & regex.DOTALL))
    try:
        alphabet.walk(tree)
        outside = alphabet.outside(pattern.flags)
    except (_Everything, regex.error):
        outside = None
    back = regex.compile(outside.pattern, outside.flags | regex.REVERSE) if outside else None
    return CapFacts(width, starts, outside, back, probe([pattern]))


class Undecided:
    """A stretch of one check's text undecided at the cap, as it grows.

    ``at`` is where the part not yet reported begins; the stretch ends where
    every pattern that may have been in progress must have ended.
    """

    __slots__ = ("at", "index", "open", "scanned", "until")

    def __init__(self, at: int, index: int, outside: list[regex.Pattern[str] | None]) -> None:
        self.at = at
        #: The pattern the stretch is reported as (the first in progress).
        self.index = index
        #: Per pattern still in progress: the class that ends it (None: never).
        self.open = outside
        #: The furthest end found so far.
        self.until = at
        #: The text up to here holds no end of a pattern still open.
        self.scanned = at

    @classmethod
    def begin(
        cls,
        patterns: Iterable[regex.Pattern[str]],
        buf: str,
        base: int,
        hold: int,
        upto: int,
        seen: dict[int, int] | None = None,
        deadline: Deadline | None = None,
    ) -> tuple[int, Undecided] | None:
        """A match of one of ``patterns`` may be in progress from ``hold`` on
        past ``upto`` (the cap): where the undecided stretch starts, and the
        stretch; None if no pattern can be.

        ``seen`` (per run, kept by the caller) remembers per pattern the first
        offset where a match may still be in progress: the text only grows, so
        no match can start before it later either.  A stream past the cap asks
        at every chunk; without it each question would read the held text again
        (the cost per character would grow with the cap).  ``deadline`` stops the
        probe (a pattern that slipped through the load-time analysis may take
        exponential time on the held text)."""
        cap = base + len(buf) - upto
        lo0, hi = max(hold, base) - base, upto - base
        best: tuple[int, int] | None = None
        open_: list[regex.Pattern[str] | None] = []
        for j, p in enumerate(patterns):
            f = cap_facts(p)
            if not f.wide(cap):
                continue  # no match of it is longer than the cap: decided exactly
            lo = lo0
            if seen is not None and j in seen:
                lo = max(lo, seen[j] - base)
            if f.outside_back is not None:
                # A match in progress has consumed nothing outside its alphabet.
                m = f.outside_back.search(buf, lo, hi)
                if m is not None:
                    lo = m.end()
            if lo >= hi:
                continue
            if f.starts is not None:
                m = f.starts.search(buf, lo, hi)
                if m is None:
                    continue
                lo = m.start()
            # Where a match may really be in progress (once per stretch: the
            # probe reads to the end of the text).
            left = None if deadline is None else deadline.cpu_left()
            pm = f.probe.search(buf, lo, partial=True, timeout=left, concurrent=True)
            if seen is not None:
                seen[j] = base + (len(buf) if pm is None else pm.start())
            if pm is None or pm.start() >= hi:
                continue
            x = pm.start()
            open_.append(f.outside)
            if best is None or x < best[0]:
                best = (x, j)
        if best is None:
            return None
        return best[0] + base, cls(upto, best[1], open_)

    def end(self, buf: str, base: int, frm: int) -> int | None:
        """Where the stretch ends, if the text from ``frm`` on says so (else None).

        Each pattern's match has ended at the first character outside its
        alphabet; patterns whose end is found are dropped from ``open``.
        """
        still: list[regex.Pattern[str] | None] = []
        # (The text before ``scanned`` was searched already: the patterns still
        # open found no end there, and it does not change.)
        lo = max(frm, base, self.scanned) - base
        for outside in self.open:
            m = outside.search(buf, lo) if outside is not None else None
            if m is None:
                still.append(outside)
            elif m.start() + base > self.until:
                self.until = m.start() + base
        self.open = still
        self.scanned = base + len(buf)
        return None if still else self.until
