"""The ``content`` check: forbidden phrases and regular expressions."""

from __future__ import annotations

from collections.abc import Sequence

import regex

from ._check import Hit, PatternCheck, RunContext
from ._config import ContentPatternSpec, ContentSpec
from ._model import Action
from ._scan import PatternSet, ScanMatch

__all__ = ["ContentCheck", "term_pattern"]


def term_pattern(term: str) -> regex.Pattern[str]:
    """A phrase as a whole-word, case-insensitive pattern; any run of spaces matches a space."""
    words = [regex.escape(w) for w in term.split()]
    return regex.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", regex.IGNORECASE)


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
        for i, term in enumerate(spec.terms):
            compiled.append(term_pattern(term))
            # A term can itself be sensitive (a project's code name): quoted only on request.
            labels.append(f"term {term!r}" if spec.show_terms else f"terms[{i}]")
        for i, pattern in enumerate(spec.patterns):
            if isinstance(pattern, ContentPatternSpec):
                compiled.append(regex.compile(pattern.regex))
                labels.append(pattern.name)
            else:
                compiled.append(regex.compile(pattern))
                labels.append(f"patterns[{i}]")
        self.labels = tuple(labels)
        self.patterns = PatternSet(compiled)

    def interpret(self, matches: Sequence[ScanMatch]) -> list[Hit]:
        labels = self.labels
        return [Hit(self, m.start, m.end, labels[m.index]) for m in matches]

    def render(self, hit: Hit, context: RunContext) -> str:
        return self.replacement
