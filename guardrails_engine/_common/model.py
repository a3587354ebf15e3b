"""Values produced by checking text: decisions, findings and results."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["Action", "Blocked", "Decision", "Finding", "Result"]


class Decision(enum.StrEnum):
    """What happened to a text: passed as is, repaired, or blocked."""

    PASS = "pass"
    REPAIR = "repair"
    BLOCK = "block"

    def __str__(self) -> str:
        return self.value


class Action(enum.StrEnum):
    """What a check asks for when it finds something."""

    REPAIR = "repair"
    BLOCK = "block"
    FLAG = "flag"

    def __str__(self) -> str:
        return self.value


_DONE = {Action.REPAIR: "repaired", Action.BLOCK: "blocked", Action.FLAG: "flagged"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found, where, and what was done about it.

    ``start``/``end`` are offsets into the text the caller passed in (half
    open).  ``reason`` never contains the raw value of a PII entity.
    ``replacement`` is the text that replaces the span when ``action`` is
    repair (``None`` for a length truncation, which removes everything from
    ``start`` on).
    """

    check_id: str
    check_type: str
    action: Action
    reason: str
    start: int
    end: int
    entity_type: str | None = None
    score: float | None = None
    replacement: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "check_type": self.check_type,
            "action": self.action.value,
            "reason": self.reason,
            "start": self.start,
            "end": self.end,
            "entity_type": self.entity_type,
            "score": self.score,
            "replacement": self.replacement,
        }


def done(action: Action) -> str:
    """The past tense used in reasons: ``repaired``, ``blocked``, ``flagged``."""
    return _DONE[action]


@dataclass(frozen=True, slots=True)
class Blocked:
    """The run was blocked: show ``message`` (the policy's ``block_message``) instead
    of anything more.  ``findings`` are the findings of the run up to the block.

    What ``blocked`` is everywhere (:attr:`Result.blocked`, a push run's, an
    adapter's guarded stream's): this value once blocked, else ``None``; it is
    always true in a boolean context.
    """

    message: str
    findings: tuple[Finding, ...]

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of checking one text, whole or streamed.

    ``text`` is what may be shown: the text itself (pass), the repaired text
    (repair), or the policy's ``block_message`` (block).
    """

    decision: Decision
    text: str
    findings: tuple[Finding, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        """One readable line per finding."""
        return tuple(f.reason for f in self.findings)

    @property
    def blocked(self) -> Blocked | None:
        """The block (its message and findings) if the decision is block, else ``None``.

        (It used to be a bool: the value is true exactly when that bool was.)
        """
        if self.decision is not Decision.BLOCK:
            return None
        return Blocked(self.text, self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "text": self.text,
            "findings": [f.to_dict() for f in self.findings],
            "reasons": list(self.reasons),
        }
