"""Repairs: which hits count, how overlapping repairs merge, and what replaces them.

Repairs are applied once, on the original text: overlapping ones merge into
one span whose replacement is that of the hit that starts first (the
longest, then the first check), so the order of checks never matters.  A
cluster of overlapping repairs that straddles the release point waits until
it is whole (:meth:`Repairs.straddle`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..checks._base import Applied, Hit, RunContext, Session

__all__ = ["Repairs", "dedup", "joined", "unshadowed"]


def dedup(hits: Sequence[Hit]) -> list[Hit]:
    """Drop a hit that another of the same check and entity contains with at least its score.

    presidio's ``remove_duplicates`` rule, applied per check.
    """
    out: list[Hit] = []
    groups: dict[tuple[str, str | None], list[Hit]] = {}
    for h in hits:
        groups.setdefault((h.check.id, h.entity), []).append(h)
    for group in groups.values():
        if len(group) == 1:
            out.extend(group)
            continue
        group.sort(key=lambda h: (h.start, -h.end, -(h.score or 0.0)))
        kept: list[Hit] = []
        # Kept hits that reach the current start: only they can contain it (in
        # start order, the others end before it), so this stays linear.
        active: list[Hit] = []
        for h in group:
            if active:
                active = [k for k in active if k.end >= h.start]
            contained = any(h.end <= k.end and (h.score or 0.0) <= (k.score or 0.0) for k in active)
            if not contained:
                kept.append(h)
                active.append(h)
        out.extend(kept)
    return out


def unshadowed(hits: Sequence[Hit]) -> list[Hit]:
    """Drop NER hits that a pattern hit of the same check overlaps.

    spaCy reads the country code of an IBAN as a place and the name in an
    e-mail address as a person; the pattern knows better.
    """
    if not any(h.ner for h in hits):
        return list(hits)
    patterns: dict[str, list[Hit]] = {}
    for h in hits:
        if not h.ner and h.kind == "span":
            patterns.setdefault(h.check.id, []).append(h)
    return [
        h
        for h in hits
        if not h.ner
        or not any(p.start < h.end and h.start < p.end for p in patterns.get(h.check.id, ()))
    ]


def joined(hits: Sequence[Hit]) -> Sequence[Hit]:
    """Hits that continue another (an undecided stretch past the cap, reported
    as it grew) merged into it: one finding."""
    if not any(h.joins for h in hits):
        return hits
    out: list[Hit] = []
    last: dict[str, int] = {}
    for h in sorted(hits, key=lambda h: (h.start, h.joins)):
        k = last.get(h.check.id)
        if h.joins and k is not None and out[k].end <= h.start:
            merged = out[k].moved(out[k].start, h.end)
            merged.joins = out[k].joins
            out[k] = merged
            continue
        last[h.check.id] = len(out)
        out.append(h)
    return out


class Repairs:
    """The repairs of one run: those waiting, those applied, and their replacements."""

    __slots__ = ("_context", "_numbers", "_order", "applied", "json_output", "waiting")

    def __init__(self, order: dict[str, int], *, json_output: bool, numbers: list[Session]):
        #: Repairs not yet applied, any order (mutated in place: the run keeps a reference).
        self.waiting: list[Hit] = []
        #: Repairs applied, one per merged span.
        self.applied: list[Applied] = []
        self._order = order
        #: A check reads the output as JSON: replacements are written JSON-escaped,
        #: and nothing is truncated.
        self.json_output = json_output
        # Sessions of JSON checks that say where the numbers are.
        self._numbers = numbers
        self._context: RunContext = {}

    def render(self, hit: Hit) -> str:
        """The replacement of a repair hit (rendered once, then kept on the hit)."""
        if hit.joins:
            return ""  # the hit it continues wrote the replacement
        if hit.replacement is None:
            text = hit.check.render(hit, self._context)
            if self.json_output and not hit.check.json_output:
                # The output is JSON: a replacement inside a string value must
                # not end it (a quote) or start an escape (a backslash); one
                # for a whole number (a card written as 4111111111111111) is
                # a string of its own.
                text = json.dumps(text, ensure_ascii=False)
                if not any(s.is_number(hit.start, hit.end) for s in self._numbers):
                    text = text[1:-1]
            hit.replacement = text
        return hit.replacement

    def straddle(self, target: int) -> int:
        """Move ``target`` back to the start of any repair cluster that crosses it."""
        changed = bool(self.waiting)
        while changed:
            changed = False
            for r in self.waiting:
                if r.start < target < r.end:
                    target = r.start
                    changed = True
        return target

    def apply(self, text: str, offset: int, start: int, target: int) -> tuple[str, int]:
        """Release ``start``-``target`` of ``text`` (which begins at ``offset``) with the
        waiting repairs that start before ``target`` applied; returns the piece and
        where the released text now ends (past ``target`` if a repair reaches past it)."""
        waiting = self.waiting
        now = unshadowed([r for r in waiting if r.start < target])
        waiting[:] = [r for r in waiting if r.start >= target]
        order = self._order
        now.sort(key=lambda h: (h.start, -h.end, order.get(h.check.id, 0), h.entity or ""))
        parts: list[str] = []
        pos = start
        span_end = -1
        for r in now:
            if r.start < span_end:  # inside the merged span being replaced
                span_end = max(span_end, r.end)
                self.applied[-1].end = span_end
                continue
            if span_end > pos:
                pos = span_end
            parts.append(text[pos - offset : r.start - offset])
            replacement = self.render(r)
            parts.append(replacement)
            span_end = r.end
            self.applied.append(Applied(r.start, r.end, replacement, r.check.id))
        if span_end > pos:
            pos = span_end
        if pos < target:
            parts.append(text[pos - offset : target - offset])
        return "".join(parts), max(target, pos)
