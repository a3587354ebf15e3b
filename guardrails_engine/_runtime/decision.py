"""The decision: which hit ends a run, and the result it ends with.

A *terminal* hit ends a run: the first block, or a length truncation.  It is
decided once every hit that starts at or before it is known (the hold is past
it); the result then lists exactly those findings, which depend only on the
text, so a whole text and every chunking of it agree.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from .._common.model import Action, Decision, Finding, Result
from ..checks._base import Check, Hit, RunContext, Session
from .repairs import Repairs, dedup, joined, unshadowed

__all__ = ["Decisions", "Ending", "Failure", "StreamLimit"]


class Ending(enum.StrEnum):
    """How a run ended."""

    COMPLETED = "completed"
    BLOCKED = "blocked"
    TRUNCATED = "truncated"
    #: ``stream.deadline_ms`` passed: blocked (what was released stays released).
    TIMED_OUT = "timed_out"
    #: ``stream.idle_timeout_ms`` passed without a chunk from the source: blocked.
    IDLE = "idle"
    SOURCE_ERROR = "source_error"
    CANCELLED = "cancelled"

    @property
    def blocks(self) -> bool:
        """The run ended with a block (the block message is shown)."""
        return self in (Ending.BLOCKED, Ending.TIMED_OUT, Ending.IDLE)


class Failure(Check):
    """Stands in for a check that raised or ran out of time, so that its hit reads
    like any other; ``on_error`` decides its action."""

    type: str
    blocking = False

    def __init__(self, check: Check, exc: BaseException) -> None:
        self.id = check.id
        self.type = check.type
        self.on_error = check.on_error
        self.action = Action.FLAG if check.on_error == "pass" else Action.BLOCK
        self.kind = type(exc).__name__

    def session(self) -> Session:  # pragma: no cover - never run
        raise NotImplementedError

    def render(self, hit: Hit, context: RunContext) -> str:  # pragma: no cover
        raise NotImplementedError

    def outcome(self, hit: Hit) -> str:
        if self.action is Action.FLAG:
            return "skipped (on_error: pass)"
        return "blocked"


def _never_cut(hit: Hit) -> Hit:
    """A truncation of JSON output, as the block it becomes: cut JSON is not JSON,
    so no valid output can be made by truncating."""
    block = Hit(hit.check, hit.start, hit.end, f"{hit.what} (JSON output is never truncated)")
    block.kind = "whole"
    block.action = Action.BLOCK
    return block


class StreamLimit(Check):
    """Stands in for the stream's own time limits (``stream.deadline_ms``,
    ``stream.idle_timeout_ms``) in the finding that ends a run past one."""

    type: str = "stream"
    blocking = False

    def __init__(self) -> None:
        self.id = "stream"
        self.on_error = "block"
        self.action = Action.BLOCK

    def session(self) -> Session:  # pragma: no cover - never run
        raise NotImplementedError

    def render(self, hit: Hit, context: RunContext) -> str:  # pragma: no cover
        raise NotImplementedError

    def outcome(self, hit: Hit) -> str:
        return "blocked"


class Decisions:
    """Every hit of a run (in original offsets), the terminal ones, and the result."""

    __slots__ = ("_block_message", "_order", "_repairs", "block", "cut", "hits", "result")

    def __init__(self, order: dict[str, int], repairs: Repairs, block_message: str) -> None:
        self._order = order
        self._repairs = repairs
        self._block_message = block_message
        self.hits: list[Hit] = []
        self.block: Hit | None = None  # the first block so far
        self.cut: Hit | None = None  # the first length truncation
        self.result: Result | None = None

    def add(self, found: Sequence[Hit]) -> None:
        """Record hits: a repair waits to be applied, a block or a cut may end the run."""
        order = self._order
        waiting = self._repairs.waiting
        for h in found:
            if h.kind == "truncate" and h.action is Action.REPAIR and self._repairs.json_output:
                h = _never_cut(h)
            self.hits.append(h)
            action = h.action
            if action is Action.REPAIR:
                if h.kind == "truncate":
                    if self.cut is None or h.start < self.cut.start:
                        self.cut = h
                else:
                    waiting.append(h)
            elif action is Action.BLOCK:
                b = self.block
                if b is None or (h.start, order.get(h.check.id, 0)) < (
                    b.start,
                    order.get(b.check.id, 0),
                ):
                    self.block = h

    @property
    def pending(self) -> bool:
        """A block or a cut is known, not yet decided."""
        return self.block is not None or self.cut is not None

    def due(self, hold: int, *, final: bool) -> tuple[Ending, Hit] | None:
        """The terminal hit decided now that the hold is ``hold``, if any."""
        block, cut = self.block, self.cut
        if cut is not None and block is not None and block.start >= cut.start:
            block = None  # in text the truncation removes
        if block is not None and (final or hold > block.start):
            return Ending.BLOCKED, block
        if cut is not None and (final or hold >= cut.start):
            return Ending.TRUNCATED, cut
        return None

    def limit(self, target: int) -> int:
        """How far text may be released while a block or cut is undecided."""
        block, cut = self.block, self.cut
        if block is not None and block.start < target:
            target = block.start
        if cut is not None and cut.floor < target:
            target = cut.floor  # until the cut is decided, hold what it may still drop
        return target

    def unfinished(self) -> Result:
        """The result of a run that did not end (aborted, or still open): a block."""
        return Result(Decision.BLOCK, self._block_message, tuple(self.findings(self.hits)))

    def conclude(self, hits: Sequence[Hit], out: Sequence[str]) -> Result:
        """The result of a run that ends with ``hits`` found and ``out`` released."""
        findings = self.findings(hits)
        if any(f.action is Action.BLOCK for f in findings):
            result = Result(Decision.BLOCK, self._block_message, tuple(findings))
        else:
            repaired = any(f.action is Action.REPAIR for f in findings)
            decision = Decision.REPAIR if repaired else Decision.PASS
            result = Result(decision, "".join(out), tuple(findings))
        self.result = result
        return result

    def findings(self, hits: Sequence[Hit]) -> list[Finding]:
        """Public findings of hits: joined, deduplicated, sorted; reasons never hold values."""
        order = self._order
        kept = sorted(
            dedup(unshadowed(joined(hits))),
            key=lambda h: (h.start, -h.end, order.get(h.check.id, 0), h.entity or ""),
        )
        out = []
        for h in kept:
            check = h.check
            action = h.action
            outcome = check.outcome(h)
            if h.kind == "span":
                reason = f"{check.id}: {h.what} at {h.start}-{h.end}, {outcome}"
            else:
                reason = f"{check.id}: {h.what}, {outcome}"
            replacement = None
            if action is Action.REPAIR and h.kind == "span":
                replacement = self._repairs.render(h)
            out.append(
                Finding(
                    check_id=check.id,
                    check_type=check.type,
                    action=action,
                    reason=reason,
                    start=h.start,
                    end=h.end,
                    entity_type=h.entity,
                    score=h.score,
                    replacement=replacement,
                )
            )
        return out
