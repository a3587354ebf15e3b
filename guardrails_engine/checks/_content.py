"""The ``content`` check: forbidden phrases and regular expressions."""

from __future__ import annotations

from collections.abc import Sequence

import regex

from .._common.deadline import Deadline
from .._common.model import Action
from .._scanning.scan import PatternSet, ScanMatch, ScanView
from .._scanning.terms import Overlaps, TermSet, term_pattern
from .._spec.config import ContentPatternSpec, ContentSpec
from ._base import Hit, PatternCheck, PatternSession, RunContext, Session

__all__ = ["ContentCheck", "term_pattern"]


#: From this many terms on, a content check compiles them into one trie pattern.
TRIE_FROM = 16


class ContentCheck(PatternCheck):
    """Finds the policy's terms and patterns; replaces, blocks or flags them."""

    type = "content"

    def __init__(self, spec: ContentSpec, on_error: str) -> None:
        self.id = spec.id
        self.action = Action(spec.action)
        self.on_error = spec.on_error or on_error
        self.replacement = spec.replacement
        labels: list[str] = []
        compiled: list[regex.Pattern[str]] = []
        # A term can itself be sensitive (a project's code name): quoted only on request.
        self.term_labels = tuple(
            f"term {term!r}" if spec.show_terms else f"terms[{i}]"
            for i, term in enumerate(spec.terms)
        )
        # Many terms are one pattern, a trie (pattern 0): see _scanning/terms.py.  A few
        # are a pattern each, which the scanner's required characters gate better.
        self.terms = TermSet(spec.terms) if len(spec.terms) >= TRIE_FROM else None
        if self.terms is not None:
            compiled.append(self.terms.pattern)
            labels.append("terms")
        else:
            compiled += [term_pattern(term) for term in spec.terms]
            labels += self.term_labels
        for i, pattern in enumerate(spec.patterns):
            if isinstance(pattern, ContentPatternSpec):
                compiled.append(regex.compile(pattern.regex))
                labels.append(pattern.name)
            else:
                compiled.append(regex.compile(pattern))
                labels.append(f"patterns[{i}]")
        self.labels = tuple(labels)
        self.patterns = PatternSet(compiled)

    def session(self, scan: ScanView | None = None, deadline: Deadline | None = None) -> Session:
        return _ContentSession(self, scan, deadline)

    def interpret(
        self, matches: Sequence[ScanMatch], overlaps: Overlaps | None = None
    ) -> list[Hit]:
        labels, terms = self.labels, self.terms
        if terms is None:
            return [Hit(self, m.start, m.end, labels[m.index]) for m in matches]
        overlaps = Overlaps() if overlaps is None else overlaps
        out: list[Hit] = []
        for m in matches:
            if m.index:
                out.append(Hit(self, m.start, m.end, labels[m.index]))
                continue
            # Every term that matches there, each as its own finditer would find it.
            s = m.match.start()
            for t, e in terms.at(m.match.string, s):
                if overlaps.keep(t, s + m.base, e + m.base):
                    out.append(Hit(self, s + m.base, e + m.base, self.term_labels[t]))
        return out

    def render(self, hit: Hit, context: RunContext) -> str:
        return self.replacement


class _ContentSession(PatternSession):
    """Remembers each term's last find in this run (finds of one term do not overlap)."""

    __slots__ = ("_overlaps",)

    def __init__(
        self, check: ContentCheck, scan: ScanView | None, deadline: Deadline | None
    ) -> None:
        super().__init__(check, scan, deadline)
        self._overlaps = Overlaps()

    def interpret(self, matches: Sequence[ScanMatch]) -> list[Hit]:
        check = self._check
        assert isinstance(check, ContentCheck)
        return check.interpret(matches, self._overlaps)
