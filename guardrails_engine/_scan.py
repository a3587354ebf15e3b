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
``partial=True`` it reports the leftmost position at which some path reads
past the end of the buffer, i.e. the leftmost position whose outcome depends
on text not yet seen.  A complete match starting before that position is final.

Keeping the cost linear.  The patterns of a group share one probe; each
chunk costs that one search, which starts where the last one stopped.  For
patterns whose matches never contain whitespace (found by parsing them), it
starts at the trailing run of non-whitespace, so a chunk re-reads about a
word.  Only when the probe's position moves do the patterns search the settled
stretch, each on its own so that the engine's literal prefilters apply.
Settled text is never scanned again.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    everything else is kept as written.  A ``\\b`` that opens the pattern stays:
    it is read where a match starts, never past the end of the text, and the
    engine's prefilters depend on it.

    :raises regex.error: if the pattern does not compile.
    """
    regex.compile(pattern, flags)
    out: list[str] = []
    i, n = 0, len(pattern)
    if pattern.startswith("\\b"):
        out.append("\\b")
        i = 2
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


_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85"


def _shape(pattern: str, flags: int) -> int | None:
    """How far a match of ``pattern`` can look past what it consumes, if its
    matches never consume whitespace; ``None`` if they may (or if unsure).

    A pattern whose matches never contain whitespace can only be in progress
    at the end of the text inside the trailing run of non-whitespace (plus its
    lookahead reach), which bounds where partial matching must look.
    """
    # The standard library's parser of re syntax (private, hence the care).
    c: Any = importlib.import_module("re._constants")
    sre: Any = importlib.import_module("re._parser")

    try:
        tree = sre.parse(
            pattern,
            flags
            & (
                c.SRE_FLAG_IGNORECASE
                | c.SRE_FLAG_MULTILINE
                | c.SRE_FLAG_DOTALL
                | c.SRE_FLAG_VERBOSE
            ),
        )
    except Exception:
        return None

    def space_in(items: list[tuple[Any, Any]]) -> bool:
        negate = bool(items) and items[0][0] is c.NEGATE
        found = set()
        for op, av in items:
            if op is c.LITERAL:
                found.add(chr(av))
            elif op is c.RANGE:
                found.update(ch for ch in _WHITESPACE if av[0] <= ord(ch) <= av[1])
            elif op is c.CATEGORY:
                if av in (c.CATEGORY_SPACE, c.CATEGORY_NOT_WORD, c.CATEGORY_NOT_DIGIT):
                    found.update(_WHITESPACE)
                elif av not in (c.CATEGORY_WORD, c.CATEGORY_DIGIT, c.CATEGORY_NOT_SPACE):
                    found.update(_WHITESPACE)
            elif op is not c.NEGATE:
                found.update(_WHITESPACE)
        hits = any(ch in found for ch in _WHITESPACE)
        return not all(ch in found for ch in _WHITESPACE) if negate else hits

    reach = 0

    def walk(seq: Any) -> bool:
        """True if something in ``seq`` may consume whitespace."""
        nonlocal reach
        for op, av in seq:
            if op is c.LITERAL:
                if chr(av) in _WHITESPACE:
                    return True
            elif op in (c.NOT_LITERAL, c.ANY, c.GROUPREF_EXISTS):
                return True
            elif op is c.IN:
                if space_in(av):
                    return True
            elif op is c.CATEGORY:
                if space_in([(op, av)]):
                    return True
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                if walk(av[2]):
                    return True
            elif op is c.SUBPATTERN:
                if walk(av[3]):
                    return True
            elif op is c.ATOMIC_GROUP:
                if walk(av):
                    return True
            elif op is c.BRANCH:
                if any(walk(b) for b in av[1]):
                    return True
            elif op in (c.ASSERT, c.ASSERT_NOT):
                direction, sub = av
                if direction == 1:
                    width = sub.getwidth()[1]
                    if width >= c.MAXREPEAT:
                        return True
                    # An upper bound: lookarounds nested in it read further.
                    reach += int(width) + 1
                walk_lookaround(sub)
            elif op is c.AT:
                reach += 1  # \b, $ and the like read the next character
            elif op is c.GROUPREF:
                continue
            else:
                return True
        return False

    def walk_lookaround(seq: Any) -> None:
        """Count the reach of lookarounds nested in a lookaround."""
        nonlocal reach
        for op, av in seq:
            if op in (c.ASSERT, c.ASSERT_NOT):
                width = av[1].getwidth()[1]
                reach += (int(width) if width < c.MAXREPEAT else 1 << 20) + 1
                walk_lookaround(av[1])
            elif op is c.AT:
                reach += 1
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                walk_lookaround(av[2])
            elif op is c.SUBPATTERN:
                walk_lookaround(av[3])
            elif op is c.BRANCH:
                for b in av[1]:
                    walk_lookaround(b)

    try:
        if walk(tree):
            return None
    except Exception:
        return None
    return reach


_SCOPED = (
    (regex.IGNORECASE, "i"),
    (regex.MULTILINE, "m"),
    (regex.DOTALL, "s"),
    (regex.VERBOSE, "x"),
)
_PLAIN_FLAGS = regex.UNICODE | regex.VERSION0
_SCOPABLE = _PLAIN_FLAGS | regex.IGNORECASE | regex.MULTILINE | regex.DOTALL | regex.VERBOSE


def _scoped(flags: int) -> str:
    """Scoped inline flags that give a part of an alternation its own flags: ``ims-x``."""
    on = "".join(letter for flag, letter in _SCOPED if flags & flag)
    off = "".join(letter for flag, letter in _SCOPED if not flags & flag)
    return f"{on}-{off}" if off else on


# A leading assertion that reads only word/non-word and punctuation: the same
# whatever the flags (no letters, no '.', '^' or '$').
_LEAD = regex.compile(
    r"\\b|\(\?<[!=](?:\\[wds]|\[\^?(?:\\[wds]|[^\]\\a-zA-Z.^$])*\]|[^()\\a-zA-Z.^$\[])*\)"
)


def _alternation(parts: Sequence[tuple[str, int]]) -> str:
    """One alternation of patterns with their own flags, the shared leading assertions
    (``\\b``, a lookbehind such as ``(?<![\\w:])``) hoisted: the engine then rejects
    most positions once, not once per pattern.  Only which positions match, or may
    still match, is asked of it, so the order of the alternatives does not matter.
    """
    by_lead: dict[str, list[str]] = {}
    for pattern, flags in parts:
        m = _LEAD.match(pattern)
        lead = m.group() if m is not None else ""
        rest = pattern[len(lead) :]
        if lead and "|" in _top_level(rest):
            lead, rest = "", pattern  # the assertion binds to the first branch only
        by_lead.setdefault(lead, []).append(f"(?{_scoped(flags)}:{rest})")
    return "|".join(
        f"{lead}(?:{'|'.join(alts)})" if lead else "|".join(alts) for lead, alts in by_lead.items()
    )


def _top_level(pattern: str) -> str:
    """The characters of ``pattern`` outside groups, classes and escapes."""
    out, depth, i, in_class = [], 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0:
            out.append(c)
        i += 1
    return "".join(out)


class _Group:
    """Patterns that share one probe (same flags, no back-references)."""

    __slots__ = ("any", "indices", "patterns", "probe", "reach")

    def __init__(
        self,
        indices: Sequence[int],
        patterns: Sequence[regex.Pattern[str]],
        reach: int | None,
    ) -> None:
        self.indices = tuple(indices)
        # Complete matches are searched with the patterns as written (same
        # meaning, and the engine's prefilters work best on them).
        self.patterns = tuple(patterns)
        # Lookahead reach past a match that never contains whitespace, or None.
        self.reach = reach
        if len(patterns) == 1:
            p = patterns[0]
            alternation, flags = streamable(p.pattern, p.flags).pattern, p.flags
        else:
            alternation = _alternation(
                [(streamable(p.pattern, p.flags).pattern, p.flags) for p in patterns]
            )
            flags = 0
        # Leftmost position where any pattern matches or may still match.
        self.any = regex.compile(alternation, flags)
        # Leftmost position where any pattern may still match (it never does).
        self.probe = regex.compile(f"(?:{alternation})(?!)", flags)


class PatternSet:
    """Compiled patterns, shared by every stream; immutable once built."""

    __slots__ = ("_groups", "patterns")

    def __init__(self, patterns: Sequence[regex.Pattern[str]]) -> None:
        self.patterns = tuple(patterns)
        by_key: dict[bool, list[int]] = {}
        reach: dict[bool, int] = {}
        alone: list[int] = []
        for i, p in enumerate(self.patterns):
            shape = _shape(p.pattern, p.flags)
            if _UNCOMBINABLE.search(p.pattern) or p.flags & ~_SCOPABLE:
                alone.append(i)
                continue
            # Patterns whose matches never contain whitespace share a probe that
            # starts at the trailing word; the others share one that cannot.
            key = shape is not None
            by_key.setdefault(key, []).append(i)
            reach[key] = max(reach.get(key, 0), shape or 0)
        groups = [
            _Group(ids, [self.patterns[i] for i in ids], reach[key] if key else None)
            for key, ids in by_key.items()
        ]
        groups += [
            _Group(
                [i], [self.patterns[i]], _shape(self.patterns[i].pattern, self.patterns[i].flags)
            )
            for i in alone
        ]
        self._groups = tuple(groups)

    def state(self) -> ScanState:
        return ScanState(self)


class _GroupState:
    __slots__ = ("dead", "group", "hold", "pos", "seen")

    def __init__(self, group: _Group) -> None:
        self.group = group
        self.pos = [0] * len(group.patterns)
        self.dead = 0
        self.hold = 0
        self.seen = 0  # end of the text at the last feed

    def feed(self, buf: str, base: int, end: int, out: list[ScanMatch]) -> None:
        group = self.group
        x = self.dead
        seen, self.seen = self.seen, end
        if seen < end:
            # Text with no whitespace rarely settles anything (a word goes on):
            # wait for the next space, so that a word costs one search, not one
            # a chunk.  Holding longer is always safe: the hold stays where it
            # was, and findings are only found later, never lost.
            new = buf[seen - base :]
            if " " not in new and "\n" not in new and "\t" not in new and "\r" not in new:
                self.seen = seen
                return
        # One search usually settles it: with partial matching, the alternation
        # stops at the leftmost position where a pattern matches or may still
        # match.  No match at all, or only one in progress: everything before is
        # settled and holds nothing.
        am = group.any.search(buf, x - base, partial=True)
        if am is None:
            self.dead = self.hold = end
            return
        if am.partial:
            self.dead = self.hold = am.start() + base
            return
        # A complete match: find where the first match in progress starts.
        start = x
        if group.reach is not None:
            # A match that never contains whitespace can only be in progress in
            # the trailing run of non-whitespace, unless its lookahead reaches
            # across the whitespace before that run to the end.
            run = base + 1 + max(buf.rfind(" "), buf.rfind("\n"), buf.rfind("\t"), buf.rfind("\r"))
            if end - run > group.reach:
                start = max(x, run)
        pm = group.probe.search(buf, start - base, partial=True)
        h = end if pm is None else pm.start() + base
        if h > x:
            # Positions before h are settled: their complete matches are final.
            # Each pattern searches on its own, with the regex engine's literal
            # prefilters, which a shared alternation would lose.
            self._collect(buf, base, x, h, out)
        self.dead = h
        self.hold = h

    def _collect(self, buf: str, base: int, start: int, limit: int, out: list[ScanMatch]) -> None:
        """Every pattern's matches that start in ``[start, limit)``, each from where it stopped.

        The caller knows them to be final (no match in progress starts before ``limit``).
        """
        group = self.group
        for j, pattern in enumerate(group.patterns):
            p = max(self.pos[j], start)
            index = group.indices[j]
            while p < limit:
                m = pattern.search(buf, p - base)
                if m is None or m.start() + base >= limit:
                    break
                s, e = m.start() + base, m.end() + base
                if e > s:
                    out.append(ScanMatch(index, m, base))
                    p = e
                else:
                    p = s + 1
            self.pos[j] = max(p, limit)

    def finish(self, buf: str, base: int, end: int, out: list[ScanMatch]) -> None:
        self._collect(buf, base, self.dead, end, out)
        self.dead = self.hold = end

    def force(self, buf: str, base: int, end: int, upto: int, out: list[ScanMatch]) -> None:
        """Decide every match starting before ``upto`` on the text as it is now."""
        if self.hold >= upto:
            return
        self._collect(buf, base, self.dead, upto, out)
        self.dead = max(self.dead, upto)
        self.seen = end  # scan now, whatever the last chunk was
        self.feed(buf, base, end, out)


class ScanState:
    """Per-stream scanning state over a :class:`PatternSet`.

    The caller owns the text.  ``buf`` is the text from absolute offset
    ``base`` to ``end``; it must reach back a little before :attr:`hold`
    (lookbehind and ``\\b`` read earlier characters; the pipeline keeps 256).
    """

    __slots__ = ("_states",)

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
