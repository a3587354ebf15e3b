"""The ``fallback:`` section of a policy: when a second source replaces the first."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_TRIGGERS", "FallbackSpec", "Trigger"]

#: What makes a stream try its next source: the source raised (``error``), kept the
#: reader waiting past a time limit (``timeout``), declined to answer (``refusal``),
#: or its text was blocked by the policy (``block``).
Trigger = Literal["error", "timeout", "refusal", "block"]

#: The triggers used when the policy does not list them (a block is opt-in).
DEFAULT_TRIGGERS: tuple[Trigger, ...] = ("error", "timeout", "refusal")


class FallbackSpec(BaseModel):
    """When a stream's source is replaced by the next one (see docs/fallback.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    on: list[Trigger] = Field(
        default_factory=lambda: list(DEFAULT_TRIGGERS),
        description="What triggers the next source: error, timeout, refusal, block "
        "(default: error, timeout, refusal). Only while nothing has been released.",
    )
    max_attempts: int | None = Field(
        None,
        ge=1,
        le=16,
        description="The most sources a stream tries, the first one included (default: "
        "every source given, then `text`).",
    )
    text: str | None = Field(
        None,
        description="A fixed text tried after the fallbacks given in code, checked by the "
        "policy like any other source.",
    )
    closing_message: str = Field(
        "",
        description="Shown after the released text when a stream fails or times out and "
        "cannot fall back (default: nothing).",
    )

    @field_validator("on")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted(t for t, n in Counter(v).items() if n > 1)
        if dup:
            raise ValueError(f"trigger listed twice: {', '.join(dup)}")
        return v
