"""Duplicate findings of one check and entity: presidio's rule, kept linear."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from guardrails_engine._common.model import Action
from guardrails_engine._runtime.repairs import dedup as _dedup
from guardrails_engine.checks._base import Hit

CHECKS: dict[str, Any] = {
    name: SimpleNamespace(id=name, action=Action.REPAIR) for name in ("pii", "other")
}

spans = st.tuples(
    st.sampled_from(sorted(CHECKS)),
    st.sampled_from(["EMAIL_ADDRESS", "PHONE_NUMBER"]),
    st.integers(0, 40),
    st.integers(1, 12),
    st.sampled_from([0.4, 0.6, 0.85, 1.0]),
)


def naive(hits: list[Hit]) -> set[int]:
    """Hits that no other hit of the same check and entity contains with at least its
    score (ties: the first in start, longest, highest-score order stays)."""
    order = sorted(hits, key=lambda h: (h.start, -h.end, -(h.score or 0.0)))
    kept: list[Hit] = []
    for h in order:
        if not any(
            k.check.id == h.check.id
            and k.entity == h.entity
            and k.start <= h.start
            and h.end <= k.end
            and (h.score or 0.0) <= (k.score or 0.0)
            for k in kept
        ):
            kept.append(h)
    return {id(h) for h in kept}


@given(st.lists(spans, max_size=30))
def test_dedup_keeps_what_nothing_contains(raw: list[tuple[str, str, int, int, float]]) -> None:
    hits = [Hit(CHECKS[c], s, s + n, e, entity=e, score=score) for c, e, s, n, score in raw]
    assert {id(h) for h in _dedup(hits)} == naive(hits)
