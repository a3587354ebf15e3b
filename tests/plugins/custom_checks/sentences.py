"""A sentence check: competitors' names, repaired as <RIVAL>."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from guardrails_engine.checks import Found, unit_check


class RivalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    names: list[str] = Field(min_length=1)


@unit_check(unit="sentence", options=RivalOptions)
def rivals(sentence: str, options: RivalOptions) -> list[Found]:
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, options.names)) + r")\b", re.I)
    return [
        Found(m.start(), m.end(), label="RIVAL", reason="competitor name")
        for m in pattern.finditer(sentence)
    ]


calls: list[str] = []


@unit_check(unit="sentence")
def recorded(sentence: str) -> None:
    """Records the units it is given (tests read `calls`)."""
    calls.append(sentence)
