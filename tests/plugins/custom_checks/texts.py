"""A text check: advice about investing must carry the disclaimer."""

from __future__ import annotations

from guardrails_engine.checks import Found, unit_check


@unit_check(unit="text")
def disclaimer(text: str) -> Found | None:
    lowered = text.lower()
    if "invest" in lowered and "not financial advice" not in lowered:
        return Found(reason="investment advice without the disclaimer")
    return None
