"""Where a match of some patterns may be in progress (the scanner's finder).

A :class:`Finder` answers one question for a group of patterns (``scan.py``):
the first position of a text from which a match, complete or not yet, may
run on to the end of the text.  It looks for *candidates* (positions where the
patterns' leading assertion holds on one of their first characters, read by
``analysis.py``), rules some out with what the patterns' authors declared
(``hints.py``) and asks the engine's partial matching (a *probe*) about the
rest, or lets the first one hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from .._common.deadline import Deadline
from .analysis import Facts
from .compose import ascii_chars, ascii_first, classes, probe
from .hints import Known, unspoiled

__all__ = ["GUARD_FROM", "LONG_WORD", "Finder", "none_of"]


# A call into the engine with a user's pattern that may read more than this
# many characters is given the time left before the run's deadline for the check (``timeout=``,
# about 2 us a call); shorter ones are not: a pattern that passed the
# load-time analysis runs in bounded time on them, and one that slipped
# through it is stopped after such a call (most calls on prose are shorter:
# guarding every one would add 2-3 us per 4-character chunk).  Those calls also
# let other threads run meanwhile (``concurrent=``): a long call in a worker
# thread (async validate) would otherwise hold the interpreter, and stall the
# event loop, for as long as it takes.
GUARD_FROM = 24


# A whitespace-free stretch longer than this is held from its first candidate.
LONG_WORD = 256


class Finder:
    """Finds where a match of some patterns may be in progress."""

    __slots__ = ("ascii_first", "first", "known", "probe", "probes", "rare", "seek", "settle")

    def __init__(
        self, patterns: Sequence[regex.Pattern[str]], known: Sequence[Facts], probes: int
    ) -> None:
        # Where a match, complete or in progress, may start: its first
        # character is one it can start with (and, when candidates are probed
        # one by one, its leading assertion holds: fewer of them).
        self.first = classes(patterns, [f.first for f in known], lead=probes > 0)
        self.probe = probe(patterns)
        # How many candidates to ask the probe about, one by one, before one
        # search for all the rest.  0: do not ask, the first candidate holds
        # (a probe of a large alternation costs microseconds).
        self.probes = probes
        # Without probes the first candidate holds: the ASCII characters of
        # the class, to answer the common case without a search.
        first = self.first
        self.ascii_first = ascii_chars(first) if probes == 0 and first is not None else frozenset()
        # Where candidates are asked about, what the patterns' authors know (hints.py).
        self.known = Known(patterns) if probes > 0 else None
        # Where they are asked about and no match starts with a lowercase "e"
        # (not at every word of prose): the ASCII characters a match may start
        # with, so that ASCII text without one needs no search.
        self.rare: frozenset[str] | None = None
        if probes > 0 and first is not None:
            chars = ascii_first(patterns, [f.first for f in known]) or frozenset()
            self.rare = None if "e" in chars else chars
        # With a sure hint, one search finds the next candidate and tells whether
        # the text from it on is surely in progress (group 1: the sure prefix
        # matches up to the end), instead of a search and a match.
        sure = None if self.known is None else self.known.sure
        # Where the patterns' authors declared it, one search backwards from the end
        # answers where a match is in progress, in the common case.
        self.settle = None if self.known is None else self.known.settle
        self.seek = (
            None
            if sure is None or first is None
            else regex.compile(f"(?=(?:{first.pattern}))(?:({sure.pattern})\\Z)?")
        )

    def find(self, buf: str, p: int, stop: int, deadline: Deadline) -> int:
        """The first index in ``[p, stop)`` where a match may be in progress, or ``stop``."""
        if p >= stop:
            return stop
        if buf[p] in self.ascii_first:
            return p
        first = self.first
        far = len(buf) - p > GUARD_FROM
        if first is None:
            left = deadline.cpu_left() if far else None
            pm = self.probe.search(buf, p, partial=True, timeout=left, concurrent=far)
            return stop if pm is None else min(pm.start(), stop)
        rare = self.rare
        if rare is not None and none_of(rare, buf, p, stop):
            return stop  # (no candidate: no search)
        settle = self.settle
        if settle is not None and stop == len(buf):
            sm = settle.search(buf, p)
            if sm is not None:
                return sm.start()  # (in progress there, and nowhere before)
        budget = self.probes
        spoilers = () if self.known is None else self.known.spoilers
        if spoilers:
            if len(spoilers) == 1:  # (unspoiled(), without the call)
                sm = spoilers[0].search(buf, p)
                q = p if sm is None else max(p, sm.start() + 1)
            else:
                q = unspoiled(spoilers, buf, p)
            if q > p and rare is not None and none_of(rare, buf, q, stop):
                return stop  # (candidates only before a spoiler: ruled out)
            p = q
        seek = self.seek
        if seek is not None:
            first = seek
        m = first.search(buf, p)
        while m is not None:
            c = m.start()
            if c >= stop:
                break
            if seek is not None and m.start(1) >= 0:
                return c  # (surely in progress from c)
            if budget == 0:
                if self.probes == 0:
                    return c
                left = deadline.cpu_left() if far else None
                pm = self.probe.search(buf, c, partial=True, timeout=left, concurrent=far)
                return stop if pm is None else min(pm.start(), stop)
            budget -= 1
            if far and len(buf) - c > GUARD_FROM:
                pm = self.probe.match(
                    buf, c, partial=True, timeout=deadline.cpu_left(), concurrent=True
                )
            else:
                pm = self.probe.match(buf, c, partial=True)
            if pm is not None:
                return c
            m = first.search(buf, c + 1)
        return stop

    def find_in_word(self, buf: str, p: int, stop: int, deadline: Deadline) -> int:
        """:meth:`find` in a whitespace-free stretch ``[p, stop)``.  In a long
        one (an unbroken token) a probe can cost milliseconds a candidate, and
        an address may be in progress from its first character anyway: there
        the first candidate holds (``p`` if candidates are not known), unasked."""
        if stop - p <= LONG_WORD:
            sure = None if self.known is None or p >= stop else self.known.sure
            if sure is not None and sure.fullmatch(buf, p) is not None:
                return p  # (the trailing word, surely in progress: no search for it)
            return self.find(buf, p, stop, deadline)
        if self.first is None:
            return p
        m = self.first.search(buf, p, stop)
        return stop if m is None else m.start()


def none_of(chars: frozenset[str], buf: str, p: int, stop: int) -> bool:
    """Whether ``buf[p:stop]`` is ASCII and holds none of ``chars``."""
    region = buf[p:stop]
    return region.isascii() and chars.isdisjoint(region)
