"""Incremental multi-pattern scanning with chunk-independent results.

A :class:`PatternSet` is compiled once per policy; each stream gets a
:class:`ScanState`.  Feeding a growing text to the state yields exactly the
matches that ``finditer`` would give for every pattern on the whole text
(leftmost-first, non-overlapping within one pattern), as soon as no later text
can change them, and a *hold*: the smallest position at which a match may
still be in progress.

How a match is known to be final.  The ``regex`` package's partial matching
prefers a complete match to a partial one, so a complete match at the end of
the buffer (``\\d+`` on ``"12"``) says nothing about the whole text.  Each
pattern ``R`` therefore also gets a *probe*, ``(?:R)(?!)``: it can never
match, so with ``partial=True`` it reports the leftmost position at which some
path of ``R`` reads past the end of the buffer, i.e. the leftmost position
whose outcome depends on text not yet seen.  A complete match starting before
that position is final.

Keeping the cost linear.  Running two searches per pattern per chunk would
cost more than the scan itself for small chunks, so all patterns of a group
share one alternation and its probe.  Positions before both the leftmost
complete match of the alternation and its leftmost partial are dead for every
pattern; only when the alternation completes somewhere do the patterns run one
by one, each from where it stopped.  Settled text is never scanned again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import regex

__all__ = ["PatternSet", "ScanMatch", "ScanState", "streamable"]

# Back-references and conditionals refer to group numbers, which an
# alternation renumbers; inline global flags would leak into the other patterns.
_UNCOMBINABLE = regex.compile(r"\\[1-9]|\\g<|\(\?P=|\(\?\(|\(\?[a-zA-Z]+\)")

# Zero-width assertions that the ``regex`` package evaluates at the end of the
# buffer without reporting a partial match, spelled with lookarounds, which it
# does report.  Same meaning for ``str`` patterns.
_WORD_BOUNDARY = r"(?:(?<=\w)(?!\w)|(?<!\w)(?=\w))"
_NOT_WORD_BOUNDARY = r"(?:(?<=\w)(?=\w)|(?<!\w)(?!\w))"
_END = r"(?!(?s:.))"
_DOLLAR = r"(?=\n?(?!(?s:.)))"
_DOLLAR_MULTILINE = r"(?=\n|(?!(?s:.)))"


def streamable(pattern: str, flags: int = 0) -> regex.Pattern[str]:
    """Compile ``pattern`` with end-of-text assertions that partial matching sees.

    ``\\b``, ``\\B``, ``\\Z`` and ``$`` are rewritten to equivalent lookarounds;
    everything else is kept as written.

    :raises regex.error: if the pattern does not compile.
    """
    regex.compile(pattern, flags)
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    multiline = bool(regex.compile(pattern, flags).flags & regex.MULTILINE)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if not in_class and nxt in "bBZ":
                out.append({"b": _WORD_BOUNDARY, "B": _NOT_WORD_BOUNDARY, "Z": _END}[nxt])
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            out.append(pattern[i:j])
            i = j
            continue
        if c == "$":
            out.append(_DOLLAR_MULTILINE if multiline else _DOLLAR)
        else:
            out.append(c)
        i += 1
    return regex.compile("".join(out), flags)


@dataclass(frozen=True, slots=True)
class ScanMatch:
    """One final match: the pattern's index and the match, offset by ``base``."""

    index: int
    match: regex.Match[str]
    base: int

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
    """Patterns that share one alternation (same flags, no back-references)."""

    __slots__ = ("any", "indices", "patterns", "probe", "probes")

    def __init__(self, indices: Sequence[int], patterns: Sequence[regex.Pattern[str]]) -> None:
        self.indices = tuple(indices)
        self.patterns = tuple(patterns)
        flags = patterns[0].flags
        self.probes = tuple(regex.compile(f"(?:{p.pattern})(?!)", p.flags) for p in patterns)
        if len(patterns) == 1:
            self.any = patterns[0]
            self.probe = self.probes[0]
        else:
            alternation = "|".join(f"(?:{p.pattern})" for p in patterns)
            self.any = regex.compile(alternation, flags)
            self.probe = regex.compile(f"(?:{alternation})(?!)", flags)


class PatternSet:
    """Compiled patterns, shared by every stream; immutable once built."""

    __slots__ = ("_groups", "patterns")

    def __init__(self, patterns: Sequence[regex.Pattern[str]]) -> None:
        self.patterns = tuple(streamable(p.pattern, p.flags) for p in patterns)
        by_flags: dict[int, list[int]] = {}
        alone: list[int] = []
        for i, p in enumerate(self.patterns):
            if _UNCOMBINABLE.search(p.pattern):
                alone.append(i)
            else:
                by_flags.setdefault(p.flags, []).append(i)
        groups = [_Group(ids, [self.patterns[i] for i in ids]) for ids in by_flags.values()]
        groups += [_Group([i], [self.patterns[i]]) for i in alone]
        self._groups = tuple(groups)

    def state(self) -> ScanState:
        return ScanState(self)


class _GroupState:
    __slots__ = ("dead", "group", "hold", "pos")

    def __init__(self, group: _Group) -> None:
        self.group = group
        self.pos = [0] * len(group.patterns)
        self.dead = 0
        self.hold = 0

    def feed(self, buf: str, base: int, end: int, out: list[ScanMatch]) -> None:
        group = self.group
        x = max(self.dead, min(self.pos))
        pm = group.probe.search(buf, x - base, partial=True)
        h = end if pm is None else pm.start() + base
        am = group.any.search(buf, x - base)
        if am is None or am.start() + base >= h:
            self.dead = h
            self.hold = h
            return
        self.dead = am.start() + base
        hold = end
        for j, pattern in enumerate(group.patterns):
            p = self._exact(j, pattern, buf, base, end, out)
            self.pos[j] = p
            hold = min(hold, p)
        self.hold = hold

    def _exact(
        self,
        j: int,
        pattern: regex.Pattern[str],
        buf: str,
        base: int,
        end: int,
        out: list[ScanMatch],
    ) -> int:
        """Run pattern ``j`` from where it stopped; return its new position (its hold)."""
        p = max(self.pos[j], self.dead)
        probe = self.group.probes[j]
        index = self.group.indices[j]
        h = -1
        while p < end:
            if h < p:
                pm = probe.search(buf, p - base, partial=True)
                h = end if pm is None else pm.start() + base
            m = pattern.search(buf, p - base)
            if m is None or m.start() + base >= h:
                return h
            s, e = m.start() + base, m.end() + base
            if e > s:
                out.append(ScanMatch(index, m, base))
                p = e
            else:
                p = s + 1
        return end

    def finish(self, buf: str, base: int, end: int, out: list[ScanMatch]) -> None:
        for j, pattern in enumerate(self.group.patterns):
            p = max(self.pos[j], self.dead)
            index = self.group.indices[j]
            while p < end:
                m = pattern.search(buf, p - base)
                if m is None:
                    break
                s, e = m.start() + base, m.end() + base
                if e > s:
                    out.append(ScanMatch(index, m, base))
                    p = e
                else:
                    p = s + 1
            self.pos[j] = end
        self.dead = self.hold = end

    def force(self, buf: str, base: int, end: int, upto: int, out: list[ScanMatch]) -> None:
        """Decide every match starting before ``upto`` on the text as it is now."""
        if self.hold >= upto:
            return
        for j, pattern in enumerate(self.group.patterns):
            p = max(self.pos[j], self.dead)
            index = self.group.indices[j]
            while p < upto:
                m = pattern.search(buf, p - base)
                if m is None or m.start() + base >= upto:
                    break
                s, e = m.start() + base, m.end() + base
                if e > s:
                    out.append(ScanMatch(index, m, base))
                    p = e
                else:
                    p = s + 1
            self.pos[j] = max(p, upto)
        self.dead = max(self.dead, upto)
        self.feed(buf, base, end, out)


class ScanState:
    """Per-stream scanning state over a :class:`PatternSet`.

    The caller owns the text.  ``buf`` is the text from absolute offset
    ``base`` to ``end``; it must reach back at least ``margin`` characters
    before :attr:`needed` (lookbehind and ``\\b`` read earlier characters).
    """

    __slots__ = ("_states",)

    margin = 256

    def __init__(self, patterns: PatternSet) -> None:
        self._states = tuple(_GroupState(g) for g in patterns._groups)

    def feed(self, buf: str, base: int) -> list[ScanMatch]:
        """Scan after text was appended; return the matches that became final."""
        end = base + len(buf)
        out: list[ScanMatch] = []
        for st in self._states:
            st.feed(buf, base, end, out)
        return out

    def finish(self, buf: str, base: int) -> list[ScanMatch]:
        """The text is complete: return every remaining match."""
        end = base + len(buf)
        out: list[ScanMatch] = []
        for st in self._states:
            st.finish(buf, base, end, out)
        return out

    def force(self, buf: str, base: int, upto: int) -> list[ScanMatch]:
        """Decide matches starting before ``upto`` as the text stands (hold-back cap)."""
        end = base + len(buf)
        out: list[ScanMatch] = []
        for st in self._states:
            st.force(buf, base, end, upto, out)
        return out

    @property
    def hold(self) -> int:
        """No match still to come starts before this absolute offset."""
        return min((st.hold for st in self._states), default=1 << 62)
