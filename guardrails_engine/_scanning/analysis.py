"""What the scanner can know about a pattern before it reads any text.

Three facts, each read from the parse tree of the pattern (the standard
library's private ``re._parser``, hence the care: anything it does not know
for sure is reported as unknown, and unknown only costs speed):

- the *shape*: whether a match can ever consume whitespace, and if not, how
  far past the end of what it consumed it may read (lookahead, ``\\b``);
- the *first characters*: a class holding every character a match can start
  with (a match in progress included);
- the *required characters*: a class that every match must consume at least
  one character of (``@`` for an e-mail address), chosen to be rare in prose.

Classes are rendered in the ``regex`` syntax with every character spelled as
``\\UXXXXXXXX``, so no flag (verbose mode included) changes their meaning;
``IGNORECASE`` is kept as a scoped flag by the caller.  :func:`union` merges
classes into one pattern.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import regex

__all__ = ["WHITESPACE", "Facts", "facts", "parse_tree", "parse_with", "union"]

WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85"

# Syntax where the standard library's parser and ``regex`` may disagree about
# which characters a class holds (POSIX and nested sets, properties, version 1).
_FOREIGN = ("[[", "[:", "\\p", "\\P", "\\X", "\\N", "(?V1", "(?r", "(?f", "(?w", "--", "&&", "||")

# Rough share of each character in English prose, to pick rare required sets.
_LETTERS = dict(
    zip(
        "etaoinshrdlcumwfgypbvkjxqz",
        (
            0.1,
            0.072,
            0.065,
            0.06,
            0.056,
            0.054,
            0.05,
            0.049,
            0.048,
            0.034,
            0.032,
            0.022,
            0.022,
            0.019,
            0.019,
            0.018,
            0.016,
            0.016,
            0.015,
            0.012,
            0.008,
            0.006,
            0.001,
            0.001,
            0.001,
            0.001,
        ),
        strict=True,
    )
)


#: More required strings than this are not worth a search (nor the compiling).
_MOST_REQUIRED = 64


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known of one pattern; ``None`` means unknown."""

    #: How far past the end of what a match consumes it may read, if matches
    #: never consume whitespace; ``None`` if they may (or if unsure).
    reach: int | None
    #: Classes (``[...]``, ``[^...]``) holding every character a match can start
    #: with; ``None`` if unknown or if the pattern can match the empty string.
    first: tuple[str, ...] | None
    #: Classes of characters (or literal strings) of which every match
    #: consumes at least one.
    required: tuple[str, ...] | None
    #: Estimated share of prose characters in ``required``.
    rarity: float
    #: How many ASCII digits every match consumes at least, in ASCII text (0: none,
    #: or unknown).
    digits: int = 0


def _char(code: int) -> str:
    return f"\\U{code:08x}"


def share(code: int) -> float:
    """Rough share of prose characters that are ``chr(code)``, in any case."""
    return _char_share(code, True)


def _char_share(code: int, ignorecase: bool) -> float:
    ch = chr(code)
    low = ch.lower()
    if low in _LETTERS:
        lower, upper = _LETTERS[low] * 0.8, 0.003
        if ignorecase:
            return lower + upper
        return lower if ch.islower() else upper
    if ch == " ":
        return 0.17
    if ch in ".,":
        return 0.02
    if ch.isdigit():
        return 0.001
    if ch.isascii():
        return 0.002
    return 0.0001


class _Unknown(Exception):
    pass


class _Tree:
    """Walks one parse tree; raises :class:`_Unknown` where it cannot be sure."""

    def __init__(self, c: Any, ignorecase: bool) -> None:
        self.c = c
        self.ignorecase = ignorecase

    # -- classes -------------------------------------------------------------
    def category(self, av: Any) -> tuple[str, float]:
        c = self.c
        table = {
            c.CATEGORY_DIGIT: ("\\d", 0.01),
            c.CATEGORY_NOT_DIGIT: ("\\D", 0.99),
            c.CATEGORY_SPACE: ("\\s", 0.17),
            c.CATEGORY_NOT_SPACE: ("\\S", 0.83),
            c.CATEGORY_WORD: ("\\w", 0.8),
            c.CATEGORY_NOT_WORD: ("\\W", 0.2),
        }
        if av not in table:
            raise _Unknown
        return table[av]

    def klass(self, items: Any) -> tuple[str, float]:
        """A character class of the parse tree, rendered, with its share of prose."""
        c = self.c
        negate = bool(items) and items[0][0] is c.NEGATE
        parts: list[str] = []
        share = 0.0
        for op, av in items[1:] if negate else items:
            if op is c.LITERAL:
                parts.append(_char(av))
                share += _char_share(av, self.ignorecase)
            elif op is c.RANGE:
                lo, hi = av
                parts.append(f"{_char(lo)}-{_char(hi)}")
                share += sum(
                    _char_share(x, self.ignorecase) for x in range(lo, min(hi, lo + 512) + 1)
                )
            elif op is c.CATEGORY:
                text, s = self.category(av)
                parts.append(text)
                share += s
            else:
                raise _Unknown
        if not parts:
            raise _Unknown
        share = min(share, 1.0)
        if negate:
            return "[^" + "".join(parts) + "]", max(1.0 - share, 0.05)
        return "[" + "".join(parts) + "]", share

    def single(self, op: Any, av: Any) -> tuple[str, float] | None:
        """The class of a one-character item, or None if the item is something else."""
        c = self.c
        if op is c.LITERAL:
            return "[" + _char(av) + "]", _char_share(av, self.ignorecase)
        if op is c.IN:
            return self.klass(av)
        if op in (c.NOT_LITERAL, c.ANY):
            raise _Unknown
        return None

    def group(self, av: Any) -> Any:
        """The body of a group; inline flags inside a pattern make it unknown."""
        _, add, delete, body = av
        if add or delete:
            raise _Unknown
        return body

    # -- first characters ------------------------------------------------------
    def first(self, seq: Any) -> tuple[list[str], bool]:
        """Classes a match of ``seq`` can start with, and whether it can be empty."""
        c = self.c
        out: list[str] = []
        for op, av in seq:
            if op in (c.ASSERT, c.ASSERT_NOT, c.AT):
                continue  # zero-width: consumes nothing
            one = self.single(op, av)
            if one is not None:
                out.append(one[0])
                return out, False
            if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                lo, _, body = av
                classes, empty = self.first(body)
                out += classes
                if lo > 0 and not empty:
                    return out, False
            elif op is c.SUBPATTERN or op is c.ATOMIC_GROUP:
                body = self.group(av) if op is c.SUBPATTERN else av
                classes, empty = self.first(body)
                out += classes
                if not empty:
                    return out, False
            elif op is c.BRANCH:
                any_empty = False
                for branch in av[1]:
                    classes, empty = self.first(branch)
                    out += classes
                    any_empty = any_empty or empty
                if not any_empty:
                    return out, False
            else:
                raise _Unknown
        return out, True

    # -- digits ----------------------------------------------------------------
    def is_digit(self, op: Any, av: Any) -> bool:
        """Whether a one-character item matches only digits (only ASCII ones, in
        ASCII text)."""
        c = self.c
        if op is c.LITERAL:
            return bool(0x30 <= av <= 0x39)
        if op is not c.IN or not av or av[0][0] is c.NEGATE:
            return False
        for iop, iav in av:
            if iop is c.LITERAL and 0x30 <= iav <= 0x39:
                continue
            if iop is c.RANGE and 0x30 <= iav[0] <= iav[1] <= 0x39:
                continue
            if iop is c.CATEGORY and iav is c.CATEGORY_DIGIT:
                continue
            return False
        return True

    def digits(self, seq: Any) -> int:
        """The fewest digits a match of ``seq`` consumes (counting only items that
        match nothing else; anything unknown counts none)."""
        c = self.c
        n = 0
        for op, av in seq:
            if self.is_digit(op, av):
                n += 1
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                n += av[0] * self.digits(av[2])
            elif op is c.SUBPATTERN:
                n += self.digits(av[-1])
            elif op is c.ATOMIC_GROUP:
                n += self.digits(av)
            elif op is c.BRANCH:
                n += min((self.digits(b) for b in av[1]), default=0)
        return n

    # -- required characters ---------------------------------------------------
    def required(self, seq: Any) -> tuple[list[str], float] | None:
        """The rarest set of classes (or literal strings) that every match of
        ``seq`` consumes one of."""
        c = self.c
        best: tuple[list[str], float] | None = None
        # Consecutive literal characters: a string every match contains.
        run: list[int] = []
        for op, av in [*seq, (None, None)]:
            if op is c.LITERAL:
                run.append(av)
                continue
            if len(run) >= 2:
                text = "".join(_char(code) for code in run)
                share = min(_char_share(code, self.ignorecase) for code in run) ** 2 / len(run)
                if best is None or share < best[1]:
                    best = [text], share
            run = []
            if op is None:
                break
        for op, av in seq:
            found: tuple[list[str], float] | None = None
            try:
                one = self.single(op, av)
            except _Unknown:
                continue
            if one is not None:
                found = [one[0]], one[1]
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                if av[0] > 0:
                    found = self.required(av[2])
            elif op is c.SUBPATTERN:
                try:
                    found = self.required(self.group(av))
                except _Unknown:
                    found = None
            elif op is c.ATOMIC_GROUP:
                found = self.required(av)
            elif op is c.BRANCH:
                union: list[str] = []
                share = 0.0
                for branch in av[1]:
                    sub = self.required(branch)
                    if sub is None:
                        break
                    union += sub[0]
                    share += sub[1]
                else:
                    found = union, min(share, 1.0)
            if found is not None and (best is None or found[1] < best[1]):
                best = found
        return best


def _reach(c: Any, sre: Any, tree: Any) -> int | None:
    """How far a match of ``tree`` may read past what it consumes, if its matches
    never consume whitespace; ``None`` if they may (or if unsure).

    An assertion reads from where it stands; what the pattern must still consume
    after it is subtracted (a leading ``\\b`` reads nothing past the match).
    """

    def space_in(items: list[tuple[Any, Any]]) -> bool:
        negate = bool(items) and items[0][0] is c.NEGATE
        found = set()
        for op, av in items:
            if op is c.LITERAL:
                found.add(chr(av))
            elif op is c.RANGE:
                found.update(ch for ch in WHITESPACE if av[0] <= ord(ch) <= av[1])
            elif op is c.CATEGORY:
                if av not in (c.CATEGORY_WORD, c.CATEGORY_DIGIT, c.CATEGORY_NOT_SPACE):
                    found.update(WHITESPACE)
            elif op is not c.NEGATE:
                found.update(WHITESPACE)
        hits = any(ch in found for ch in WHITESPACE)
        return not all(ch in found for ch in WHITESPACE) if negate else hits

    backward = (c.AT_BEGINNING, c.AT_BEGINNING_LINE, c.AT_BEGINNING_STRING)

    def at(av: Any) -> int:
        # \b and \Z read the next character, $ the next two (a final newline).
        if av in backward:
            return 0
        return 2 if av in (c.AT_END, c.AT_END_LINE) else 1

    def reads(seq: Any) -> int:
        """An upper bound on how far lookarounds nested in ``seq`` read past it."""
        total = 0
        for op, av in seq:
            if op in (c.ASSERT, c.ASSERT_NOT):
                width = av[1].getwidth()[1]
                if width >= c.MAXREPEAT:
                    raise _Unknown
                total += int(width) + 1 + reads(av[1])
            elif op is c.AT:
                total += at(av)
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                total += reads(av[2])
            elif op is c.SUBPATTERN:
                total += reads(av[3])
            elif op is c.ATOMIC_GROUP:
                total += reads(av)
            elif op is c.BRANCH:
                total += max((reads(b) for b in av[1]), default=0)
        return total

    reach = 0

    def walk(seq: Any, after: int) -> bool:
        """True if something in ``seq`` may consume whitespace.

        ``after``: the least the pattern consumes after ``seq``.
        """
        nonlocal reach
        items = list(seq)
        rests = [0] * len(items)
        rest = after
        for i in range(len(items) - 1, -1, -1):
            rests[i] = rest
            rest += int(sre.SubPattern(tree.state, [items[i]]).getwidth()[0])
        for (op, av), aft in zip(items, rests, strict=True):
            if op is c.LITERAL:
                if chr(av) in WHITESPACE:
                    return True
            elif op in (c.NOT_LITERAL, c.ANY, c.GROUPREF_EXISTS):
                return True
            elif op is c.IN:
                if space_in(av):
                    return True
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                if walk(av[2], aft):
                    return True
            elif op is c.SUBPATTERN:
                if walk(av[3], aft):
                    return True
            elif op is c.ATOMIC_GROUP:
                if walk(av, aft):
                    return True
            elif op is c.BRANCH:
                if any(walk(b, aft) for b in av[1]):
                    return True
            elif op in (c.ASSERT, c.ASSERT_NOT):
                direction, sub = av
                read = reads(sub)
                if direction == 1:
                    width = sub.getwidth()[1]
                    if width >= c.MAXREPEAT:
                        return True
                    read += int(width)
                reach = max(reach, read - aft)
            elif op is c.AT:
                reach = max(reach, at(av) - aft)
            elif op is c.GROUPREF:
                continue
            else:
                return True
        return False

    if walk(tree, 0):
        return None
    return reach


# Flags under which a class means what the standard library's parser says.
_PLAIN = regex.IGNORECASE | regex.MULTILINE | regex.DOTALL | regex.VERBOSE | regex.UNICODE
_PLAIN |= regex.VERSION0


def _parser() -> tuple[Any, Any]:
    """The standard library's private regular expression parser's constants and parser."""
    return importlib.import_module("re._constants"), importlib.import_module("re._parser")


# A fuzzy constraint of the ``regex`` package (``(?:abc){e<=1}``, ``{i<=1,d<=1}``,
# ``{2i+2d+1s<=4}``): the standard library reads it as literal characters, but a
# match may then hold fewer, other or more characters than the pattern says (a
# literal brace that looks like one is read as one too: nothing is lost).
_FUZZY = regex.compile(r"\{[\d\s<=+,]*[eisd]\s*[<=+,:}]")


def _parse(sre: Any, c: Any, pattern: str, flags: int) -> Any:
    """The parse tree of ``pattern`` under the flags the standard library reads alike.

    :raises ValueError: for fuzzy matching, which the standard library misreads."""
    if _FUZZY.search(pattern):
        raise ValueError("fuzzy matching: the standard library's parser misreads it")
    keep = c.SRE_FLAG_IGNORECASE | c.SRE_FLAG_MULTILINE | c.SRE_FLAG_DOTALL | c.SRE_FLAG_VERBOSE
    return sre.parse(pattern, flags & keep)


def parse_tree(pattern: str, flags: int) -> Any:
    """The standard library's parse tree of ``pattern`` (raises if it cannot read it)."""
    return parse_with(pattern, flags)[2]


def parse_with(pattern: str, flags: int) -> tuple[Any, Any, Any]:
    """The parser's constants, the parser, and the parse tree of ``pattern`` (raises
    if it cannot read it)."""
    c, sre = _parser()
    return c, sre, _parse(sre, c, pattern, flags)


#: A character as a class member that no flag changes (``\\UXXXXXXXX``).
char = _char


@functools.lru_cache(maxsize=1024)
def facts(pattern: str, flags: int) -> Facts:
    """Everything this module can tell about ``pattern`` compiled with ``flags``
    (the flags of the compiled ``regex`` pattern, inline ones included)."""
    c, sre = _parser()
    unknown = Facts(None, None, None, 1.0)
    try:
        tree = _parse(sre, c, pattern, flags)
    except Exception:
        return unknown
    try:
        reach = _reach(c, sre, tree)
    except Exception:
        reach = None
    if (
        any(s in pattern for s in _FOREIGN)
        or flags & ~_PLAIN
        or tree.state.flags & c.SRE_FLAG_ASCII
    ):
        return Facts(reach, None, None, 1.0)
    walker = _Tree(c, bool(flags & regex.IGNORECASE))
    first: tuple[str, ...] | None
    try:
        classes, empty = walker.first(tree)
        first = None if empty or not classes else tuple(classes)
    except (_Unknown, Exception):
        first = None
    try:
        req = walker.required(tree)
    except Exception:
        req = None
    try:
        digits = walker.digits(tree)
    except Exception:
        digits = 0
    if req is None or len(req[0]) > _MOST_REQUIRED:
        return Facts(reach, first, None, 1.0, digits)  # (many strings: a trie of terms)
    return Facts(reach, first, tuple(req[0]), req[1], digits)


def union(classes: Iterable[tuple[str, bool]]) -> str:
    """One pattern matching any of ``classes``: (class or literal string, ignorecase) pairs.

    Plain classes merge into one class (one for those under ``IGNORECASE``);
    negated ones and strings stay alternatives.
    """
    plain: dict[bool, list[str]] = {False: [], True: []}
    alts: list[str] = []
    for cls, ignorecase in classes:
        if not cls.startswith("[") or cls.startswith("[^"):
            alts.append(f"(?i:{cls})" if ignorecase else f"(?-i:{cls})")
        else:
            plain[ignorecase].append(cls[1:-1])
    if plain[False]:
        alts.insert(0, "(?-i:[" + "".join(dict.fromkeys(plain[False])) + "])")
    if plain[True]:
        alts.insert(0, "(?i:[" + "".join(dict.fromkeys(plain[True])) + "])")
    return "|".join(alts)
