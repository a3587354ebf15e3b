"""Incremental multi-pattern scanning with chunk-independent results.

A :class:`PatternSet` is compiled once per policy; each stream gets a
:class:`ScanState`.  Feeding a growing text to the state yields exactly the
matches that ``finditer`` would give for every pattern on the whole text
(leftmost-first, non-overlapping within one pattern), as soon as no later text
can change them, and a *hold*: the smallest position at which a match may
still be in progress.

How a match is known to be final.  The ``regex`` package's partial matching
prefers a complete match to a partial one, so a complete match at the end of
the buffer (``\\d+`` on ``"12"``) says nothing about the whole text.  Patterns
therefore also run as a *probe*, ``(?:R)(?!)``: it can never match, so with
``partial=True`` it reports a position whose outcome depends on text not yet
seen.  A complete match starting before the hold is final.

Keeping the cost low.  What is known of each pattern before any text
(``analysis.py``) decides where a probe is needed at all:

- a match can only start at a *candidate*: its leading assertion holds and its
  first character is one it can start with; the candidates of a group are
  found with one class search, and only they are probed (or, for a large group,
  the first one simply holds; ``finder.py``);
- a pattern whose matches never contain whitespace can only be in progress in
  the trailing word (or, if it reads further than one character past its
  match, in the word before);
- a match must consume one of its *required* characters (``@`` for an e-mail
  address): without one in the unsettled text, its pattern is not searched;
- what a pattern's author declares (``hints.py``: what every match contains, what
  none does, what is surely a match in progress) saves searches and probes;
- over long stretches a probe can cost milliseconds (presidio's URL patterns):
  a whitespace-free stretch longer than 256 characters is held from its first
  candidate, unasked, and a match in progress over more than 256 characters is
  asked about again only once the text after it has grown by a quarter.

Text without whitespace rarely settles anything, so a scan waits for the next
space.  Complete matches of the settled stretch are found by each pattern on
its own, with the engine's literal prefilters.  Settled text is never scanned
again.  A run shares one scanner between the checks that only scan patterns
(:class:`SharedScan`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import regex

from .._common.deadline import Deadline
from .analysis import Facts, facts
from .compose import any_required, ascii_first, ascii_gate, classes, combinable, streamable
from .finder import GUARD_FROM, LONG_WORD, Finder, none_of
from .hints import Known, either
from .terms import OVERLAPPING

__all__ = [
    "PatternSet",
    "ScanMatch",
    "ScanState",
    "ScanView",
    "SharedScan",
    "streamable",
]


@dataclass(frozen=True, slots=True)
class ScanMatch:
    """One final match: the pattern's index and the match, offset by ``base``; and
    the deadline of the scan that found it (for work on the match that may be long)."""

    index: int
    match: regex.Match[str]
    base: int
    deadline: Deadline | None = None

    @property
    def start(self) -> int:
        return self.match.start() + self.base

    @property
    def end(self) -> int:
        return self.match.end() + self.base

    def span(self, group: int | str = 0) -> tuple[int, int]:
        s, e = self.match.span(group)
        if s < 0:
            return s, e
        return s + self.base, e + self.base


class _Group:
    """Patterns scanned together (same flags, no back-references)."""

    __slots__ = (
        "digits",
        "far",
        "far_gate",
        "far_reach",
        "finder",
        "gates",
        "indices",
        "needles",
        "overlapping",
        "patterns",
        "reach",
        "starts",
        "trigger",
        "trigger_gate",
        "ungated",
    )

    def __init__(
        self,
        indices: Sequence[int],
        patterns: Sequence[regex.Pattern[str]],
        known: Sequence[Facts],
    ) -> None:
        self.indices = tuple(indices)
        # Complete matches are searched with the patterns as written (same
        # meaning, and the engine's prefilters work best on them).
        self.patterns = tuple(patterns)
        # Patterns searched for overlapping matches (a term set: every start counts).
        self.overlapping = tuple(p.pattern.endswith(OVERLAPPING) for p in patterns)
        # Lookahead reach past a match that never contains whitespace, or None.
        reaches = [f.reach for f in known]
        self.reach = None if None in reaches else max(r for r in reaches if r is not None)
        # Every match consumes one of these: without one, nothing matches.
        self.trigger = any_required(patterns, [f.required for f in known])
        # Per pattern, what every match contains (hints.py), if its author said.
        self.needles = Known(patterns).needles
        if None not in self.needles:
            self.trigger = either(self.needles)
        # The same per pattern, for text that is all ASCII: the ASCII characters
        # of which every match of the pattern there holds one.
        gates = [ascii_gate(p, f.required) for p, f in zip(patterns, known, strict=True)]
        # And the ASCII characters a non-empty match starts with (it holds one of
        # them too): a pattern of digits and a hyphen is not searched for a hyphen
        # between words.
        starts = [ascii_first([p], [f.first]) for p, f in zip(patterns, known, strict=True)]
        # And how many digits a match holds at least (a card number, 13): "in 2026"
        # gets the patterns of short numbers searched, not those of long ones.
        self.gates = tuple(
            (j, g, starts[j], known[j].digits) for j, g in enumerate(gates) if g is not None
        )
        self.digits = any(f.digits for f in known)
        self.ungated = [j for j, g in enumerate(gates) if g is None]
        # The trigger's answer for ASCII text without a search (a set test is
        # cheaper): every pattern's gate, unless the trigger is the needles'.
        self.trigger_gate: frozenset[str] | None = None
        if None in self.needles:
            parts = gates
        else:  # (the needles' own required characters)
            parts = [
                ascii_gate(n, facts(n.pattern, n.flags).required)
                for n in self.needles
                if n is not None
            ]
        if None not in parts:
            self.trigger_gate = frozenset().union(*(g for g in parts if g is not None))
        small = 4 if self.reach is None or len(patterns) <= 2 else 0
        self.finder = Finder(patterns, known, small)
        # Every position where a non-empty match can start (None if unknown).
        finder = self.finder
        self.starts = (
            finder.first  # already with the leading assertions
            if finder.probes > 0
            else classes(patterns, [f.first for f in known], lead=True)
        )
        # Whitespace-free patterns that read two or more characters past their
        # match (``(?!\.\d)``): in the word before the trailing one, only they
        # may still be in progress.
        far = [i for i, f in enumerate(known) if f.reach is not None and f.reach > 1]
        self.far: Finder | None = None
        self.far_reach = 0
        # The ASCII characters one of which such a match holds (None: unknown).
        self.far_gate: frozenset[str] | None = None
        if self.reach is not None and far:
            self.far = Finder(
                [patterns[i] for i in far], [known[i] for i in far], 4 if len(far) <= 2 else 0
            )
            self.far_reach = max(known[i].reach or 0 for i in far)
            far_gates = [gates[i] for i in far]
            if all(g is not None for g in far_gates):
                self.far_gate = frozenset().union(*(g for g in far_gates if g is not None))


# A call of a named group, ``(?&name)``, which the standard library's parser
# cannot read (a trie of terms calls its trie of words, see terms.py).
_CALL = regex.compile(r"\(\?&\w+\)")


def _readable(pattern: str) -> str:
    """``pattern`` for the analysis: in a term set, a call of the trie of words
    read as ``\\S+`` (a looser pattern, with the same first characters and also
    spanning whitespace, is all the analysis needs to know)."""
    if pattern.endswith(OVERLAPPING) and "(?&" in pattern:
        return _CALL.sub(lambda m: r"\S+", pattern)
    return pattern


def _wordy(pattern: regex.Pattern[str], known: Facts) -> bool:
    """Whether a match may start with a lowercase letter (at any word of prose)."""
    first = classes([pattern], [known.first], lead=False)
    return first is None or first.match("e") is not None


_NO_DIGITS = str.maketrans("", "", "0123456789")


class PatternSet:
    """Compiled patterns, shared by every stream; immutable once built."""

    __slots__ = ("_groups", "_trigger", "patterns")

    def __init__(self, patterns: Sequence[regex.Pattern[str]]) -> None:
        self.patterns = tuple(patterns)
        known = [facts(_readable(p.pattern), p.flags) for p in self.patterns]
        by_key: dict[tuple[bool, bool], list[int]] = {}
        alone: list[int] = []
        for i, p in enumerate(self.patterns):
            if not combinable(p):
                alone.append(i)
                continue
            # Patterns whose matches never contain whitespace are in progress
            # only in the trailing word; the others may span words.  Among
            # those, patterns that may start at any word (an address written
            # in words) are a group of their own: in a group with the others
            # they would make every word a candidate for the others' probe.
            spanning = known[i].reach is None
            by_key.setdefault((not spanning, spanning and _wordy(p, known[i])), []).append(i)
        groups = [
            _Group(ids, [self.patterns[i] for i in ids], [known[i] for i in ids])
            for ids in by_key.values()
        ]
        groups += [_Group([i], [self.patterns[i]], [known[i]]) for i in alone]
        self._groups = tuple(groups)
        # One search for every group's required characters, unless a group searches
        # for needles (an alternation, which the engine tries at every character: with
        # them, 2.6 us on ten characters of prose): then each group searches for its
        # own, only where it has text to settle.
        self._trigger = any_required(self.patterns, [f.required for f in known])
        if any(n is not None for g in groups for n in g.needles):
            self._trigger = None

    def state(self, deadline: Deadline | None = None) -> ScanState:
        """A scanning state for one run; ``deadline`` stops its long calls."""
        return ScanState(self, deadline)


# Text longer than this read for the gates only where it is read once (validate).
_GATE_WITHIN = 256

# How far before the end of the buffer a stretch to collect must end for
# matching at candidate starts to beat one search per pattern.
_FAR = 128

_LAST_SPACE = regex.compile(r"[ \n\t\r]", regex.REVERSE)


def _after_space(buf: str, lo: int, hi: int) -> int:
    """Index after the last space, tab or line break in ``buf[lo:hi]``, or -1."""
    i = buf.rfind(" ", lo, hi)
    after = lo if i < 0 else i + 1
    tail = buf[after:hi]
    if "\n" in tail or "\t" in tail or "\r" in tail:  # (rare in prose: one search)
        m = _LAST_SPACE.search(buf, after, hi)
        assert m is not None
        return m.end()
    return -1 if i < 0 else i + 1


def _run_start(buf: str, lo: int, hi: int) -> int:
    """Index after the last space, tab or line break in ``buf[lo:hi]``, or ``lo``."""
    at = _after_space(buf, lo, hi)
    return lo if at < 0 else at


class _GroupState:
    __slots__ = (
        "dead",
        "deadline",
        "eager",
        "group",
        "hold",
        "long_at",
        "long_until",
        "pos",
        "rare",
        "space_at",
        "space_upto",
    )

    def __init__(self, group: _Group, deadline: Deadline) -> None:
        self.group = group
        # The ASCII characters a match of a group that may span words starts with,
        # if few (the group's finder's).
        self.rare = group.finder.rare if group.reach is None else None
        self.deadline = deadline
        self.pos = [0] * len(group.patterns)
        self.dead = 0
        self.hold = 0
        self.eager = False  # scan at the next feed, whatever it brings
        # A match in progress over a long stretch (a run of spaced digits) is
        # probed again only once the text after it has grown by a quarter:
        # where it starts, and the end of the text at which to look again.
        self.long_at = -1
        self.long_until = 0
        # The text before ``space_upto`` was searched for whitespace: the last
        # found ends at ``space_at`` (-1: none), so a long word is not read
        # again at every chunk (absolute offsets).
        self.space_upto = 0
        self.space_at = -1

    def _run_start(self, buf: str, base: int, lo: int, stop: int) -> int:
        """:func:`_run_start` of ``buf[lo:stop]``, reading only what is new since the last call."""
        if stop + base < self.space_upto:  # (a shorter text than last time: no memory)
            self.space_upto, self.space_at = 0, -1
        found = _after_space(buf, max(lo, self.space_upto - base), stop)
        at = self.space_at if found < 0 else found + base
        self.space_upto, self.space_at = stop + base, at
        return max(lo, at - base)

    def feed(self, buf: str, base: int, end: int, out: list[ScanMatch], maybe: bool = True) -> None:
        """Scan what arrived.  ``maybe``: False if the caller knows that no
        required character of any pattern is in the text from the hold on."""
        group = self.group
        x = self.dead
        lo = x - base
        stop = end - base
        self.eager = False
        rare = self.rare
        if rare is not None and none_of(rare, buf, lo, stop):
            # No match starts in what arrived: none in progress, none to collect.
            self.dead = self.hold = end
            return
        if group.reach is None:
            if x == self.long_at and end < self.long_until:
                h = lo  # still in progress there, as far as it is worth asking
            else:
                h = group.finder.find(buf, lo, stop, self.deadline)
                if stop - h > LONG_WORD:
                    self.long_at = h + base
                    self.long_until = end + (stop - h) // 4
                elif h < stop and buf[stop - 1] in " \t\n\r":
                    # In progress up to a space at the end ("jdoe " may go on as
                    # "jdoe [at] ..."): the next character, space or not, may settle it.
                    self.eager = True
        elif group.far is None and buf[stop - 1] in " \t\n\r":
            # A match in progress consumes no whitespace, nor reads two characters
            # past its end: none is in progress after a text that ends in one.
            h = stop
        else:
            # A match in progress consumes no whitespace: it starts in the
            # trailing word ...
            run = self._run_start(buf, base, lo, stop)
            finder = group.finder
            if run < stop and buf[run] in finder.ascii_first and stop - run <= LONG_WORD:
                h = run  # (what find_in_word says, without asking it)
            else:
                h = finder.find_in_word(buf, run, stop, self.deadline)
            far = group.far
            if far is not None:
                # ... or, for a pattern that reads further than one character
                # past its match, in the word before, if it consumed ``u`` or later.
                u = stop - group.far_reach
                if u < run - 1:
                    if u < lo:
                        before = lo
                    elif buf[u] in " \n\t\r":
                        before = u + 1
                    else:
                        before = _run_start(buf, lo, u)
                    word = buf[before:run]
                    gate = group.far_gate
                    if gate is not None and word.isascii() and gate.isdisjoint(word):
                        h2 = run  # no character that such a match must hold
                    else:
                        h2 = far.find_in_word(buf, before, run, self.deadline)
                    if h2 < h:
                        h = h2
                        self.eager = True  # the next chunk settles it
        h += base
        if h > x and maybe:
            # Positions before h are settled: their complete matches are final.
            # Each pattern searches on its own, with the regex engine's literal
            # prefilters, which a shared alternation would lose.  Without a
            # character that every match consumes there is nothing to find.
            gate = group.trigger_gate
            if gate is not None and (region := buf[lo:]).isascii():
                if not gate.isdisjoint(region):
                    self._collect(buf, base, x, h, out)
            elif group.trigger is None or group.trigger.search(buf, lo) is not None:
                self._collect(buf, base, x, h, out)
        self.dead = h
        self.hold = h

    def _collect(
        self,
        buf: str,
        base: int,
        start: int,
        limit: int,
        out: list[ScanMatch],
        which: Sequence[int] | None = None,
        gated: bool = True,
    ) -> None:
        """Matches that start in ``[start, limit)`` of every pattern (or of those
        in ``which``), each pattern from where it stopped; only of the patterns whose
        gates the text from ``start`` on passes, if ``gated`` or if that text is short.

        The caller knows them to be final (no match in progress starts before ``limit``).
        """
        group = self.group
        patterns = group.patterns
        if which is None and group.gates and (gated or len(buf) + base - start <= _GATE_WITHIN):
            region = buf[start - base :]
            if region.isascii():
                # Only the patterns whose own required characters are there (a
                # match that starts in the region ends in it).
                present = set(region)
                n = len(region) - len(region.translate(_NO_DIGITS)) if group.digits else 0
                which = [
                    j
                    for j, gate, first, digits in group.gates
                    if not present.isdisjoint(gate)
                    and (first is None or not present.isdisjoint(first))
                    and n >= digits
                ]
                if group.ungated:
                    which += group.ungated
        if group.starts is not None and len(buf) - (limit - base) > _FAR:
            # Far from the end (the hold-back cap forced a decision): a search
            # would read on to the end of the buffer, every chunk.  Try the
            # candidate starts before the limit instead.
            self._collect_at_starts(buf, base, start, limit, out, which)
            return
        far = len(buf) + base - GUARD_FROM
        deadline = self.deadline
        for j in range(len(patterns)) if which is None else which:
            pattern = patterns[j]
            p = max(self.pos[j], start)
            needle = group.needles[j]
            if needle is not None and p < limit and needle.search(buf, p - base) is None:
                p = limit  # (a match from p on would contain one)
            index = group.indices[j]
            overlapping = group.overlapping[j]
            while p < limit:
                if p < far:
                    m = pattern.search(buf, p - base, timeout=deadline.cpu_left(), concurrent=True)
                else:
                    m = pattern.search(buf, p - base)
                if m is None or m.start() + base >= limit:
                    break
                s, e = m.start() + base, m.end() + base
                if e > s:
                    out.append(ScanMatch(index, m, base, deadline))
                    p = s + 1 if overlapping else e
                else:
                    p = s + 1
            self.pos[j] = max(p, limit)

    def _collect_at_starts(
        self,
        buf: str,
        base: int,
        start: int,
        limit: int,
        out: list[ScanMatch],
        which: Sequence[int] | None,
    ) -> None:
        """:meth:`_collect` by matching at each candidate start: a non-empty match
        can only start where its leading assertion holds on one of its first
        characters, so this finds what ``finditer`` finds."""
        group = self.group
        starts = group.starts
        assert starts is not None
        lo, lim = start - base, limit - base
        found: list[int] = []
        m = starts.search(buf, lo, lim)
        while m is not None:
            found.append(m.start())
            m = starts.search(buf, m.start() + 1, lim)
        patterns = group.patterns
        deadline = self.deadline
        for j in range(len(patterns)) if which is None else which:
            pattern = patterns[j]
            index = group.indices[j]
            q = max(self.pos[j], start) - base
            needle = group.needles[j]
            if needle is not None and needle.search(buf, q) is None:
                q = lim
            for c in found:
                if c < q:
                    continue
                # (Far from the end, by design.)
                mm = pattern.match(buf, c, timeout=deadline.cpu_left(), concurrent=True)
                if mm is not None and mm.end() > c:
                    out.append(ScanMatch(index, mm, base, deadline))
                    q = c + 1 if group.overlapping[j] else mm.end()
            self.pos[j] = max(q + base, limit)

    def finish(self, buf: str, base: int, end: int, out: list[ScanMatch]) -> None:
        self._collect(buf, base, self.dead, end, out)
        self.dead = self.hold = end

    def force(self, buf: str, base: int, end: int, upto: int, out: list[ScanMatch]) -> None:
        """Decide every match starting before ``upto`` on the text as it is now."""
        if self.hold >= upto:
            return
        # (Past the cap this runs at every chunk: reading all the held text for the
        # gates would cost more than the searches it saves, 36 us a chunk of base64.)
        self._collect(buf, base, self.dead, upto, out, gated=False)
        self.dead = max(self.dead, upto)
        self.feed(buf, base, end, out)


class ScanState:
    """Per-stream scanning state over a :class:`PatternSet`.

    The caller owns the text.  ``buf`` is the text from absolute offset
    ``base`` to ``end``; it must reach back a little before :attr:`hold`
    (lookbehind and ``\\b`` read earlier characters; the pipeline keeps 256).
    """

    __slots__ = ("_seen", "_states", "_trigger", "deadline", "eager", "hold")

    def __init__(self, patterns: PatternSet, deadline: Deadline | None = None) -> None:
        #: When long calls into the engine must stop (the run sets ``deadline.at``).
        self.deadline = Deadline() if deadline is None else deadline
        self._states = tuple(_GroupState(g, self.deadline) for g in patterns._groups)
        # Any group's required characters: one search tells every group that
        # it has nothing to find (the common case), or not.
        self._trigger = patterns._trigger if len(self._states) > 1 else None
        self._seen = 0  # end of the text at the last scan
        #: No match still to come starts before this absolute offset.
        self.hold = 0 if self._states else 1 << 62
        #: The next feed scans even if it brings no whitespace.
        self.eager = False

    def feed(self, buf: str, base: int) -> list[ScanMatch]:
        """Scan after text was appended; return the matches that became final."""
        end = base + len(buf)
        out: list[ScanMatch] = []
        seen = self._seen
        if seen >= end:
            return out
        # Text with no whitespace rarely settles anything (a word goes on):
        # wait for the next space, so that a word costs one scan, not one a
        # chunk.  Holding longer is always safe: the hold stays where it was,
        # and matches are only found later, never lost.
        new = buf[seen - base :] if seen > base else buf
        states = self._states
        if " " in new or "\n" in new or "\t" in new or "\r" in new:
            self._seen = end
            maybe = True
            trigger = self._trigger
            if trigger is not None:
                lo = end
                for st in states:
                    if st.dead < lo:
                        lo = st.dead
                maybe = trigger.search(buf, lo - base) is not None
            for st in states:
                st.feed(buf, base, end, out, maybe)
        elif self.eager:
            for st in states:
                if st.eager:
                    st.feed(buf, base, end, out)
        else:
            return out
        hold, eager = 1 << 62, False
        for st in states:
            if st.hold < hold:
                hold = st.hold
            if st.eager:
                eager = True
        self.hold, self.eager = hold, eager
        return out

    def finish(self, buf: str, base: int) -> list[ScanMatch]:
        """The text is complete: return every remaining match."""
        end = base + len(buf)
        out: list[ScanMatch] = []
        for st in self._states:
            st.finish(buf, base, end, out)
        self._seen = end
        self.hold = min((st.hold for st in self._states), default=1 << 62)
        return out

    def force(self, buf: str, base: int, upto: int) -> list[ScanMatch]:
        """Decide matches starting before ``upto`` as the text stands (hold-back cap)."""
        end = base + len(buf)
        out: list[ScanMatch] = []
        for st in self._states:
            st.force(buf, base, end, upto, out)
        self._seen = end
        self.hold = min((st.hold for st in self._states), default=1 << 62)
        return out


class SharedScan:
    """One scanning state over the patterns of several checks of one run.

    Each check reads its own matches through a :class:`ScanView`; the first
    view asked about a text scans it for all of them, so a chunk costs one scan
    of a few large groups instead of one per check.  The hold is shared: the
    smallest over all the patterns, which only ever holds a check longer.
    """

    __slots__ = ("_before", "_fed", "_last", "_offsets", "_owner", "_pending", "_state")

    def __init__(
        self, patterns: PatternSet, sizes: Sequence[int], deadline: Deadline | None = None
    ) -> None:
        self._state = patterns.state(deadline)
        offsets, owner, at = [], [], 0
        for k, n in enumerate(sizes):
            offsets.append(at)
            owner += [k] * n
            at += n
        self._offsets = tuple(offsets)
        self._owner = tuple(owner)
        self._pending: list[list[ScanMatch]] = [[] for _ in sizes]
        self._last: tuple[int, int, int] = (-1, -1, -1)  # the last finish or force
        self._before = 0  # the hold before the last force
        self._fed = -1  # the end of the text at the last feed

    def view(self, k: int) -> ScanView:
        """What check ``k`` (in the order of ``sizes``) sees."""
        return ScanView(self, k)

    def _spread(self, found: list[ScanMatch]) -> None:
        owner, offsets, pending = self._owner, self._offsets, self._pending
        for m in found:
            k = owner[m.index]
            pending[k].append(ScanMatch(m.index - offsets[k], m.match, m.base, m.deadline))

    def _take(self, k: int) -> list[ScanMatch]:
        out = self._pending[k]
        if out:
            self._pending[k] = []
        return out

    def finish(self, k: int, buf: str, base: int) -> list[ScanMatch]:
        key = (1, base + len(buf), 0)
        if key != self._last:
            self._last = key
            self._spread(self._state.finish(buf, base))
        return self._take(k)

    def force(self, k: int, buf: str, base: int, upto: int) -> list[ScanMatch]:
        key = (2, base + len(buf), upto)
        if key != self._last:
            self._last = key
            self._before = self._state.hold
            self._spread(self._state.force(buf, base, upto))
        return self._take(k)

    @property
    def hold(self) -> int:
        return self._state.hold


class ScanView:
    """One check's view of a :class:`SharedScan`; used like a :class:`ScanState`."""

    __slots__ = ("_k", "_shared")

    def __init__(self, shared: SharedScan, k: int) -> None:
        self._shared = shared
        self._k = k

    def feed(self, buf: str, base: int) -> list[ScanMatch]:
        shared = self._shared
        end = base + len(buf)
        if shared._fed != end:
            shared._fed = end
            found = shared._state.feed(buf, base)
            if found:
                shared._spread(found)
        pending = shared._pending
        out = pending[self._k]
        if out:
            pending[self._k] = []
        return out

    def finish(self, buf: str, base: int) -> list[ScanMatch]:
        return self._shared.finish(self._k, buf, base)

    def force(self, buf: str, base: int, upto: int) -> list[ScanMatch]:
        return self._shared.force(self._k, buf, base, upto)

    def hold_before_force(self, buf: str, base: int, upto: int) -> int:
        """The hold before a force at ``upto`` (that another view may already have run)."""
        shared = self._shared
        if shared._last == (2, base + len(buf), upto):
            return shared._before
        return shared._state.hold

    @property
    def hold(self) -> int:
        return self._shared._state.hold

    @property
    def eager(self) -> bool:
        return self._shared._state.eager

    @property
    def state(self) -> ScanState:
        """The shared scanning state."""
        return self._shared._state
