"""Many phrases as one pattern: a trie compiled into one regular expression.

A phrase (a content term) matches as a whole word, case-insensitively, with
any run of whitespace between its words: ``(?<!\\w)w1\\s+w2(?!\\w)`` under
``IGNORECASE`` (:func:`term_pattern`).  Ten thousand of them as ten thousand
patterns cost the scanner ten thousand searches a scan; :class:`TermSet`
compiles them into one pattern that shares their common beginnings, so a
position costs one walk down the trie, whatever the number of terms.

The finds are the same as those of the terms one by one (``finditer`` of each
term: leftmost, non-overlapping for that term; different terms may overlap).
The pattern is a trie of the first words of the terms, then up to as many
more words (``\\s+`` and a trie of their later words) as the longest term has: it matches at
every position where a term matches, and may still be in progress wherever a
term may (the engine searches a trie of words quickly; a trie of whole
phrases, with ``\\s+`` inside, it searches twenty times slower).  It is
searched for *overlapping* matches (the scanner knows it by the comment it
ends with, :data:`OVERLAPPING`): at each position where it matches,
:meth:`TermSet.at` lists every term that matches there (a walk of the trie of
terms over the text with the engine's own case folding), and :class:`Overlaps`
drops a find of a term that overlaps the term's previous find, as ``finditer``
would.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import regex

__all__ = ["OVERLAPPING", "Overlaps", "TermSet", "term_pattern"]

#: A pattern ending with this comment is searched for overlapping matches.
OVERLAPPING = "(?#overlapping)"

_WORD = regex.compile(r"\w")
_NAMES = itertools.count()
_SPACE = regex.compile(r"\s")


def term_pattern(term: str) -> regex.Pattern[str]:
    """A phrase as a whole-word, case-insensitive pattern; any run of spaces matches a space."""
    words = [regex.escape(w) for w in term.split()]
    return regex.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", regex.IGNORECASE)


def _keys(ch: str) -> set[str]:
    """Case variants of ``ch``: two characters the engine's ``IGNORECASE`` equates share one."""
    keys = {ch, ch.lower(), ch.upper(), ch.casefold()}
    return keys | {k.lower() for k in keys} | {k.upper() for k in keys}


@functools.lru_cache(maxsize=65536)
def _same(term_char: str, text_char: str) -> bool:
    """Whether ``term_char`` as a literal matches ``text_char`` under ``IGNORECASE``."""
    return regex.fullmatch(regex.escape(term_char), text_char, regex.IGNORECASE) is not None


class _Node:
    __slots__ = ("children", "terms")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}  # " " stands for a run of whitespace
        self.terms: list[int] = []  # indices of the terms that end here


class TermSet:
    """Terms compiled once; immutable once built."""

    __slots__ = ("_alike", "_fold", "_root", "pattern")

    def __init__(self, terms: Sequence[str]) -> None:
        # The trie of terms, and tries of the first words and of the later ones.
        root, firsts, laters = _Node(), _Node(), _Node()
        most = 1
        for index, term in enumerate(terms):
            node = root
            for ch in " ".join(term.split()):
                node = node.children.setdefault(ch, _Node())
            node.terms.append(index)
            words = term.split()
            most = max(most, len(words))
            for k, word in enumerate(words):
                node = laters if k else firsts
                for ch in word:
                    node = node.children.setdefault(ch, _Node())
                node.terms.append(index)
        self._root = root
        # The characters of the terms, by case variant (to find those a text character matches).
        self._fold: dict[str, set[str]] = {}
        stack = [root]
        while stack:
            node = stack.pop()
            for ch, child in node.children.items():
                for key in _keys(ch):
                    self._fold.setdefault(key, set()).add(ch)
                stack.append(child)
        self._alike: dict[str, tuple[str, ...]] = {}
        more = ""
        if most > 1:
            # The third word on calls the trie of later words (compiled once).
            name = f"terms{next(_NAMES)}"
            later = rf"\s+(?P<{name}>{_render(laters)})"
            again = rf"(?:\s+(?&{name})){{0,{most - 2}}}" if most > 2 else ""
            more = f"(?:{later}{again})?"
        self.pattern = regex.compile(
            rf"(?<!\w){_render(firsts)}{more}(?!\w){OVERLAPPING}", regex.IGNORECASE
        )

    def at(self, text: str, start: int) -> list[tuple[int, int]]:
        """(term index, end) of every term that matches ``text`` at ``start`` (where
        a term may start: no word character before it), in term order."""
        found: list[tuple[int, int]] = []
        todo = [(self._root, start)]
        n = len(text)
        while todo:
            node, q = todo.pop()
            if node.terms and (q >= n or _WORD.match(text, q) is None):
                found += [(t, q) for t in node.terms]
            if q >= n:
                continue
            children = node.children
            space = children.get(" ")
            if space is not None:
                # \s+ gives back what the next word may need: try every end of the run.
                r = q
                while r < n and _SPACE.match(text, r) is not None:
                    r += 1
                    todo.append((space, r))
            t = text[q]
            alike = self._alike.get(t)
            if alike is None:
                near = set().union(*(self._fold.get(k, ()) for k in _keys(t)))
                alike = tuple(ch for ch in near if _same(ch, t))
                if len(self._alike) < 4096:  # a cache, bounded whatever the text
                    self._alike[t] = alike
            for ch in alike:
                child = children.get(ch)
                if child is not None and ch != " ":
                    todo.append((child, q + 1))
        found.sort()
        return found


def _render(root: _Node) -> str:
    """A trie of words as a pattern: at each node its continuations, then (if a
    word ends there) the end; iterative, so long words do not recurse deeply."""
    out: dict[int, str] = {}
    stack: list[tuple[_Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in node.children.values())
            continue
        alts = [
            (r"\s+" if ch == " " else regex.escape(ch)) + out.pop(id(child))
            for ch, child in node.children.items()
        ]
        if node.terms:
            alts.append("")
        out[id(node)] = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    return out[id(root)]


class Overlaps:
    """Per run: drops a find of a term that overlaps the term's previous find."""

    __slots__ = ("_ends",)

    def __init__(self) -> None:
        self._ends: dict[int, int] = {}

    def keep(self, term: int, start: int, end: int) -> bool:
        if start < self._ends.get(term, 0):
            return False
        self._ends[term] = end
        return True
