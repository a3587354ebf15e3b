r"""Catastrophic backtracking (ReDoS): which patterns a policy refuses.

A backtracking engine explores every way a failing match can split the text
between the parts of a pattern.  That number explodes when a part that is
repeated without bound can match the same text in more than one way: a
variable-width item of the repeated body (``a+``, ``\s?``, ``(a|)``) that can
consume a character which may also come right after it, in the body or at
the start of the next repetition (``(a+)+``, ``(\w+\s?)+``, ``(x+x+)+``), or
two alternatives of the body that can start with the same character
(``(ab|a|b)+``).  A body repeated a fixed number of times (``(.*a){20}``)
with an unbounded item of that kind costs the text's length to that power.
Character sets are compared on a sample alphabet (ASCII, Latin-1, a few
characters of other scripts, and every character the pattern names): an
overlap outside it goes unseen, which is what the run-time deadline is for.

The analysis reads the standard library's parse tree (:mod:`.analysis` says how).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .analysis import WHITESPACE, parse_with

__all__ = ["POWER_LIMIT", "backtracking"]

_SAMPLE = [chr(i) for i in range(256)] + list(
    "\u0100\u0131\u0391\u03c3\u03c2\u0430\u05d0\u0627\u0660\u0966\u1e9e\u2013\u2028"
    "\u200b\u3000\u4e2d\uff10\uff21\ufeff\U0001f600"
)

#: A body repeated at least this many times, with an unbounded ambiguous item
#: in it, is refused (cost: length of the text to this power).
POWER_LIMIT = 3


def _category_bits(c: Any, av: Any, sample: Sequence[str]) -> int:
    tests: dict[Any, Callable[[str], bool]] = {
        c.CATEGORY_DIGIT: str.isdecimal,
        c.CATEGORY_SPACE: lambda ch: ch.isspace() or ch in WHITESPACE,
        c.CATEGORY_WORD: lambda ch: ch.isalnum() or ch == "_",
    }
    negated = {
        c.CATEGORY_NOT_DIGIT: c.CATEGORY_DIGIT,
        c.CATEGORY_NOT_SPACE: c.CATEGORY_SPACE,
        c.CATEGORY_NOT_WORD: c.CATEGORY_WORD,
    }
    if av in negated:
        return (1 << len(sample)) - 1 & ~_category_bits(c, negated[av], sample)
    test = tests.get(av)
    if test is None:
        return (1 << len(sample)) - 1
    return sum(1 << i for i, ch in enumerate(sample) if test(ch))


def _named(c: Any, node: Any) -> set[str]:
    """Every character that a parse tree names (literals, range ends)."""
    out: set[str] = set()
    if isinstance(node, tuple) and len(node) == 2 and node[0] in (c.LITERAL, c.NOT_LITERAL):
        out.add(chr(node[1]))
    elif isinstance(node, tuple) and len(node) == 2 and node[0] is c.RANGE:
        out.update((chr(node[1][0]), chr(node[1][1])))
    elif isinstance(node, (tuple, list)) or hasattr(node, "data"):
        for item in getattr(node, "data", node):
            out |= _named(c, item)
    return out


class _Ambiguity:
    """Finds, in one parse tree, a repeat that can match the same text in many ways."""

    def __init__(self, c: Any, sre: Any, tree: Any, ignorecase: bool) -> None:
        self.c = c
        self.sre = sre
        self.state = tree.state
        self.ignorecase = ignorecase
        self.repeats = (c.MAX_REPEAT, c.MIN_REPEAT)
        self.sample = _SAMPLE + sorted(_named(c, tree) - set(_SAMPLE))
        self.all = (1 << len(self.sample)) - 1
        self.folds = [(ch, ch.lower(), ch.upper()) for ch in self.sample]
        self.categories: dict[Any, int] = {}

    # -- character sets as bit masks over _SAMPLE --------------------------
    def code(self, test: Any) -> int:
        bits = 0
        for i, (ch, low, up) in enumerate(self.folds):
            if test(ch) or (self.ignorecase and (test(low) or test(up))):
                bits |= 1 << i
        return bits

    def literal(self, code: int) -> int:
        return self.code(lambda ch: len(ch) == 1 and ord(ch) == code)

    def klass(self, items: Any) -> int:
        c = self.c
        bits = 0
        negate = False
        for op, av in items:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                bits |= self.literal(av)
            elif op is c.RANGE:
                lo, hi = av
                bits |= self.code(lambda ch, lo=lo, hi=hi: len(ch) == 1 and lo <= ord(ch) <= hi)
            elif op is c.CATEGORY:
                if av not in self.categories:
                    self.categories[av] = _category_bits(c, av, self.sample)
                bits |= self.categories[av]
            else:
                bits = self.all
        return self.all & ~bits if negate else bits

    def one(self, op: Any, av: Any) -> int | None:
        """The characters of a one-character item, or None for other items."""
        c = self.c
        if op is c.LITERAL:
            return self.literal(av)
        if op is c.NOT_LITERAL:
            return self.all & ~self.literal(av)
        if op is c.ANY:
            return self.all
        if op is c.IN:
            return self.klass(av)
        return None

    def body(self, op: Any, av: Any) -> list[Any]:
        c = self.c
        if op is c.SUBPATTERN:
            return list(av[3])
        if op in (*self.repeats, c.POSSESSIVE_REPEAT):
            return list(av[2])
        if op is c.ATOMIC_GROUP:
            return list(av)
        return []

    def first(self, seq: Sequence[Any]) -> tuple[int, bool]:
        """Characters a match of ``seq`` can start with, and whether it can be empty."""
        c = self.c
        bits = 0
        for op, av in seq:
            one = self.one(op, av)
            if one is not None:
                return bits | one, False
            if op in (c.AT, c.ASSERT, c.ASSERT_NOT):
                continue
            if op is c.BRANCH:
                empty = False
                for branch in av[1]:
                    b, e = self.first(branch)
                    bits |= b
                    empty = empty or e
                if not empty:
                    return bits, False
            elif op is c.GROUPREF_EXISTS:
                _, yes, no = av
                b1, e1 = self.first(yes)
                b2, e2 = self.first(no) if no is not None else (0, True)
                bits |= b1 | b2
                if not (e1 or e2):
                    return bits, False
            elif op in (*self.repeats, c.POSSESSIVE_REPEAT):
                b, e = self.first(av[2])
                bits |= b
                if av[0] > 0 and not e:
                    return bits, False
            elif op in (c.SUBPATTERN, c.ATOMIC_GROUP):
                b, e = self.first(self.body(op, av))
                bits |= b
                if not e:
                    return bits, False
            else:  # a back-reference: anything, possibly nothing
                bits = self.all
        return bits, True

    def chars(self, item: tuple[Any, Any]) -> int:
        """Every character a match of ``item`` can consume."""
        c = self.c
        op, av = item
        one = self.one(op, av)
        if one is not None:
            return one
        if op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            return 0
        if op is c.BRANCH:
            return self.seqs_chars(av[1])
        if op is c.GROUPREF_EXISTS:
            return self.seqs_chars([s for s in av[1:] if s is not None])
        if op in (*self.repeats, c.POSSESSIVE_REPEAT, c.SUBPATTERN, c.ATOMIC_GROUP):
            return self.seqs_chars([self.body(op, av)])
        return self.all

    def seqs_chars(self, seqs: Sequence[Sequence[Any]]) -> int:
        bits = 0
        for seq in seqs:
            for item in seq:
                bits |= self.chars(item)
        return bits

    def width(self, item: tuple[Any, Any]) -> tuple[int, int]:
        lo, hi = self.sre.SubPattern(self.state, [item]).getwidth()
        return int(lo), int(hi)

    # -- the search ----------------------------------------------------------
    def find(self, seq: Sequence[Any]) -> str | None:
        """A reason if some repeat anywhere in ``seq`` backtracks catastrophically."""
        c = self.c
        for op, av in seq:
            if op in self.repeats and av[1] >= 2:
                why = self.repeat(av)
                if why is not None:
                    return why
            if op is c.BRANCH:
                subs: list[Sequence[Any]] = list(av[1])
            elif op is c.GROUPREF_EXISTS:
                subs = [s for s in av[1:] if s is not None]
            elif op in (c.ASSERT, c.ASSERT_NOT):
                subs = [av[1]]
            else:
                subs = [self.body(op, av)]
            for sub in subs:
                why = self.find(sub)
                if why is not None:
                    return why
        return None

    def repeat(self, av: Any) -> str | None:
        """Whether the body of a repeat can be matched in many ways."""
        _, hi, body = av
        unbounded = hi >= self.c.MAXREPEAT
        if not unbounded and hi < POWER_LIMIT:
            return None
        wrap, _ = self.first(body)
        return self.within(list(body), wrap, unbounded, hi)

    @staticmethod
    def why(unbounded: bool, times: int) -> str:
        if unbounded:
            return (
                "nested quantifiers: a part of a repeated group can match the same "
                "characters as what comes after it, so a failing match tries "
                "exponentially many ways to split the text"
            )
        return (
            f"an unbounded quantifier inside a group repeated {times} times can "
            "match the same characters as what comes after it, so a failing match "
            f"tries about n^{times} ways to split the text"
        )

    def within(self, seq: list[Any], follow: int, unbounded: bool, times: int) -> str | None:
        """An ambiguous item of ``seq``, which ``follow`` may come after, inside a
        repeat (``unbounded``, or repeated ``times`` times)."""
        c = self.c
        for i, item in enumerate(seq):
            op, av = item
            after, empty = self.first(seq[i + 1 :])
            if empty:
                after |= follow
            if op in (c.AT, c.ASSERT, c.ASSERT_NOT) or self.one(op, av) is not None:
                continue
            if op in self.repeats:
                lo, hi = self.width(item)
                again, _ = self.first(self.body(op, av))
                # It may stop or go on with a character that may also come next.
                if lo != hi and (unbounded or hi >= c.MAXREPEAT) and again & after:
                    return self.why(unbounded, times)
            if op is c.BRANCH:
                if unbounded:
                    seen, empty = 0, False
                    for branch in av[1]:
                        b, e = self.first(branch)
                        # Two branches that start alike, or two that match the
                        # empty string, or one that does while another starts
                        # with what may come next.
                        alike = b & seen or (e and empty)
                        if alike or (e and seen & after) or (empty and b & after):
                            return (
                                "overlapping alternatives under a quantifier: two branches of "
                                "a repeated group can match the same text, so a failing match "
                                "tries exponentially many ways"
                            )
                        seen |= b
                        empty = empty or e
                for branch in av[1]:
                    why = self.within(list(branch), after, unbounded, times)
                    if why is not None:
                        return why
            elif op is c.GROUPREF_EXISTS:
                for sub in av[1:]:
                    if sub is not None:
                        why = self.within(list(sub), after, unbounded, times)
                        if why is not None:
                            return why
            elif op in (c.SUBPATTERN, c.ATOMIC_GROUP):
                why = self.within(self.body(op, av), after, unbounded, times)
                if why is not None:
                    return why
            elif op in self.repeats:
                inner = self.body(op, av)
                again, _ = self.first(inner)
                why = self.within(inner, after | (again if av[1] >= 2 else 0), unbounded, times)
                if why is not None:
                    return why
        return None


def backtracking(pattern: str, flags: int = 0) -> str | None:
    """Why ``pattern`` may backtrack catastrophically (nested or overlapping
    unbounded quantifiers), or None if no such construct was found (or the
    pattern uses syntax the standard library's parser does not read)."""
    try:
        with warnings.catch_warnings():  # ("possible nested set": the policy's to hear)
            warnings.simplefilter("ignore", FutureWarning)
            c, sre, tree = parse_with(pattern, flags)
    except Exception:
        return None
    ignorecase = bool((flags | tree.state.flags) & c.SRE_FLAG_IGNORECASE)
    return _Ambiguity(c, sre, tree, ignorecase).find(list(tree))
