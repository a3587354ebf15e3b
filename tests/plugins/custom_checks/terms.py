"""An incremental check: a streaming multi-term matcher (the README's worked example).

It reads the canonical text as it arrives and finds whole-word terms, case
folded; its hold stays a term's length behind the end, so no match is missed
across chunks and nothing is held longer than needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from guardrails_engine.checks import Check, CheckConfig, Hit, Session


class TermOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terms: list[str] = Field(min_length=1)


class StreamingTerms(Check):
    Options = TermOptions

    def __init__(self, config: CheckConfig) -> None:
        super().__init__(config)
        self.terms = sorted({t.lower() for t in config.options.terms}, key=len, reverse=True)
        self.longest = len(self.terms[0])

    def session(self) -> Session:
        return TermSession(self)


class TermSession(Session):
    scans = True  # the canonical text: invisible characters and look-alikes undone

    def __init__(self, check: StreamingTerms) -> None:
        self.check = check
        self.hold = 0  # no match still to come starts before this

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        # A match must end before the last character (a word may go on).
        return self._scan(buf, base, base + len(buf) - 1)

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        return self._scan(buf, base, base + len(buf))

    def force(self, buf: str, base: int, upto: int) -> Sequence[Hit]:
        hits = self._scan(buf, base, base + len(buf) - 1)
        self.hold = max(self.hold, upto)
        return hits

    def _scan(self, buf: str, base: int, limit: int) -> list[Hit]:
        text = buf.lower()
        hits: list[Hit] = []
        start = self.hold
        while True:
            found = None
            for term in self.check.terms:
                i = text.find(term, start - base, limit - base)
                while i >= 0 and not _whole(text, i, i + len(term), base + len(buf) == limit):
                    i = text.find(term, i + 1, limit - base)
                if i >= 0 and (found is None or i < found[0]):
                    found = (i, i + len(term))
            if found is None:
                break
            hits.append(Hit(self.check, base + found[0], base + found[1], "listed term"))
            start = base + found[1]
        # No match still to come starts before this: the last `longest` characters may
        # begin one.
        self.hold = max(self.hold, start, limit - self.check.longest + 1)
        return hits


def _whole(text: str, i: int, j: int, at_end: bool) -> bool:
    before = i == 0 or not text[i - 1].isalnum()
    after = (j == len(text) and at_end) or (j < len(text) and not text[j].isalnum())
    return before and after
