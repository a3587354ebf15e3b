"""One run of a policy over one text: the sans-IO core of validate and stream.

The run is fed chunks and returns the text that became safe to release.  It
does no I/O; the async and sync drivers (``_stream.py``) and ``validate``
(one chunk, then ``finish``) are thin loops around it.

How text is released.  Every check session reports a *hold*: no finding still
to come starts before it.  The smallest hold over all sessions is the point
up to which every finding is known; text before it is released, except that
a cluster of overlapping repairs that straddles it waits until it is whole.
Repairs are applied once, on the original text: overlapping ones merge into
one span whose replacement is that of the finding that starts first (the
longest, then the first check), so the order of checks never matters.

How the run ends.  A *terminal* finding ends it: the first block, or a length
truncation.  It is decided once every finding that starts at or before it is
known (hold past it); the result then lists exactly those findings, which
depend only on the text, so a whole text and every chunking of it agree.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._check import Session
from ._model import Action, Decision, Finding, Result

if TYPE_CHECKING:
    from ._policy import Policy

__all__ = ["Ending", "Run"]

_NEVER = 1 << 62
_TRIM_AT = 1024


class Ending(enum.StrEnum):
    """How a run ended."""

    COMPLETED = "completed"
    BLOCKED = "blocked"
    TRUNCATED = "truncated"
    SOURCE_ERROR = "source_error"
    CANCELLED = "cancelled"


def _sort_key(f: Finding, order: dict[str, int]) -> tuple[int, int, int, str]:
    return (f.start, -f.end, order.get(f.check_id, 0), f.entity_type or "")


def _dedup(findings: Sequence[Finding]) -> list[Finding]:
    """Drop a finding that another of the same check and entity contains with at least its score.

    presidio's ``remove_duplicates`` rule, applied per check.
    """
    out: list[Finding] = []
    groups: dict[tuple[str, str | None], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.check_id, f.entity_type), []).append(f)
    for group in groups.values():
        group.sort(key=lambda f: (f.start, -f.end, -(f.score or 0.0)))
        kept: list[Finding] = []
        for f in group:
            contained = any(
                k.start <= f.start and f.end <= k.end and (f.score or 0.0) <= (k.score or 0.0)
                for k in kept
                if k.end >= f.start
            )
            if not contained:
                kept.append(f)
        out.extend(kept)
    return out


class Run:
    """Per-text state of a policy: feed chunks, get released text, then a result."""

    __slots__ = (
        "_base",
        "_block",
        "_buf",
        "_cap",
        "_cut",
        "_end",
        "_ending",
        "_failed",
        "_findings",
        "_order",
        "_out",
        "_pending",
        "_pending_start",
        "_policy",
        "_released",
        "_repairs",
        "_result",
        "_scanning",
        "_sessions",
        "check_seconds",
        "holdbacks",
    )

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._sessions: list[tuple[object, Session]] = [(c, c.session()) for c in policy.checks]
        self._scanning = any(s.scans for _, s in self._sessions)
        self._order = {c.id: i for i, c in enumerate(policy.checks)}
        self._cap = policy.max_holdback_chars
        self._buf = ""  # scan buffer: the text from _base to _end
        self._base = 0
        self._end = 0
        self._pending: list[str] = []  # unreleased text, from _pending_start
        self._pending_start = 0
        self._released = 0  # offset in the original text released so far
        self._out: list[str] = []  # released pieces
        self._findings: list[Finding] = []
        self._repairs: list[Finding] = []  # repairs not yet applied, any order
        self._block: Finding | None = None  # first block so far
        self._cut: Finding | None = None  # length truncation
        self._failed: set[int] = set()
        self._ending: Ending | None = None
        self._result: Result | None = None
        self.check_seconds = [0.0] * len(self._sessions)
        self.holdbacks: list[int] = []

    # -- public ------------------------------------------------------------
    @property
    def decided(self) -> bool:
        """The outcome is known: pull no more text."""
        return self._ending is not None

    @property
    def ending(self) -> Ending | None:
        return self._ending

    @property
    def received(self) -> int:
        return self._end

    @property
    def released(self) -> int:
        return self._released

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the text that became safe (possibly "")."""
        if self._ending is not None or not chunk:
            return ""
        self._pending.append(chunk)
        self._end += len(chunk)
        if self._scanning:
            self._buf += chunk
        buf, base = self._buf, self._base
        for i, (check, session) in enumerate(self._sessions):
            if i in self._failed:
                continue
            try:
                found = session.feed(buf, base, chunk)
            except Exception as exc:
                found = self._fail(i, check, session, exc)
            if found:
                self._add(found)
        return self._advance(final=False)

    def finish(self) -> str:
        """The text is complete; return the rest of the safe text."""
        if self._ending is not None:
            return ""
        buf, base = self._buf, self._base
        for i, (check, session) in enumerate(self._sessions):
            if i in self._failed:
                continue
            try:
                found = session.finish(buf, base)
            except Exception as exc:
                found = self._fail(i, check, session, exc)
            if found:
                self._add(found)
        return self._advance(final=True)

    def abort(self, ending: Ending) -> None:
        """The source failed or the consumer stopped: release nothing more."""
        if self._ending is None:
            self._ending = ending
            self._pending = []

    def result(self) -> Result:
        """The result of a run that ended; a run aborted or still open counts as a block."""
        if self._result is not None:
            return self._result
        findings = self._final_findings(None)
        return Result(Decision.BLOCK, self._policy.block_message, tuple(findings))

    # -- internals -----------------------------------------------------------
    def _fail(self, i: int, check: object, session: Session, exc: Exception) -> list[Finding]:
        """A check raised: on_error decides.  The reason names the check, not the text."""
        self._failed.add(i)
        cid = getattr(check, "id", "?")
        ctype = getattr(check, "type", "?")
        fail_open = getattr(check, "on_error", "block") == "pass"
        start = min(session.hold, self._end)
        session.hold = _NEVER
        kind = type(exc).__name__
        if fail_open:
            return [
                Finding(
                    cid,
                    ctype,
                    Action.FLAG,
                    f"{cid}: check failed ({kind}); skipped, on_error is pass",
                    start,
                    self._end,
                )
            ]
        return [
            Finding(
                cid,
                ctype,
                Action.BLOCK,
                f"{cid}: check failed ({kind}), blocked",
                start,
                max(self._end, start + 1),
            )
        ]

    def _add(self, found: Sequence[Finding]) -> None:
        self._findings.extend(found)
        for f in found:
            if f.action is Action.REPAIR:
                if f.replacement is None:
                    if self._cut is None or f.start < self._cut.start:
                        self._cut = f
                else:
                    self._repairs.append(f)
            elif f.action is Action.BLOCK:
                b = self._block
                if b is None or _sort_key(f, self._order) < _sort_key(b, self._order):
                    self._block = f

    def _hold(self) -> int:
        hold = self._end
        for _, s in self._sessions:
            if s.hold < hold:
                hold = s.hold
        return hold

    def _advance(self, *, final: bool) -> str:
        hold = self._end if final else self._hold()
        if not final and self._end - hold > self._cap:
            upto = self._end - self._cap
            for i, (check, session) in enumerate(self._sessions):
                if session.capped and session.hold < upto and i not in self._failed:
                    try:
                        found = session.force(self._buf, self._base, upto)
                    except Exception as exc:
                        found = self._fail(i, check, session, exc)
                    if found:
                        self._add(found)
            hold = self._hold()

        block, cut = self._block, self._cut
        if cut is not None and block is not None and block.start >= cut.start:
            block = None  # in text the truncation removes
        if block is not None and (final or hold > block.start):
            self._ending = Ending.BLOCKED
            self._result = self._finish_block(block)
            self._pending = []
            return ""
        if cut is not None and (final or hold >= cut.start):
            self._ending = Ending.TRUNCATED
            piece = self._release(self._straddle(cut.start), final=True)
            self._pending = []
            self._result = self._make_result(self._final_findings(cut))
            return piece

        target = hold
        if block is not None and block.start < target:
            target = block.start
        if cut is not None and cut.start < target:
            target = cut.start
        piece = self._release(target, final=final)
        if final:
            self._ending = Ending.COMPLETED
            self._result = self._make_result(self._final_findings(None))
        else:
            self.holdbacks.append(self._end - self._released)
            self._trim(hold)
        return piece

    def _straddle(self, target: int) -> int:
        """Move ``target`` back to the start of any repair cluster that crosses it."""
        if not self._repairs:
            return target
        changed = True
        while changed:
            changed = False
            for r in self._repairs:
                if r.start < target < r.end:
                    target = r.start
                    changed = True
        return target

    def _release(self, target: int, *, final: bool) -> str:
        if not final:
            target = self._straddle(target)
        start = self._released
        if target <= start:
            return ""
        text = "".join(self._pending) if len(self._pending) != 1 else self._pending[0]
        offset = self._pending_start
        repairs = self._repairs
        if repairs:
            now = [r for r in repairs if r.start < target]
            self._repairs = [r for r in repairs if r.start >= target]
            now.sort(key=lambda f: _sort_key(f, self._order))
        else:
            now = []
        parts: list[str] = []
        pos = start
        span_end = -1
        for r in now:
            if r.start < span_end:  # overlaps the current merged span
                span_end = max(span_end, r.end)
                continue
            if span_end > pos:
                pos = span_end
            parts.append(text[pos - offset : r.start - offset])
            parts.append(r.replacement or "")
            span_end = r.end
        if span_end > pos:
            pos = span_end
        if pos < target:
            parts.append(text[pos - offset : target - offset])
        rest = text[max(target, pos) - offset :]
        self._pending = [rest] if rest else []
        self._pending_start = max(target, pos)
        self._released = max(target, pos)
        piece = "".join(parts)
        if piece:
            self._out.append(piece)
        return piece

    def _trim(self, hold: int) -> None:
        if not self._scanning:
            return
        keep = min(hold, self._released) - 256
        if keep - self._base > _TRIM_AT:
            self._buf = self._buf[keep - self._base :]
            self._base = keep

    def _final_findings(self, cut: Finding | None) -> list[Finding]:
        found = self._findings
        if self._block is not None and self._ending is Ending.BLOCKED:
            limit = self._block.start
            found = [f for f in found if f.start <= limit]
        elif cut is not None:
            found = [f for f in found if f.start < cut.start or f is cut]
        order = self._order
        return sorted(_dedup(found), key=lambda f: _sort_key(f, order))

    def _finish_block(self, block: Finding) -> Result:
        self._ending = Ending.BLOCKED
        findings = self._final_findings(None)
        return Result(Decision.BLOCK, self._policy.block_message, tuple(findings))

    def _make_result(self, findings: list[Finding]) -> Result:
        if any(f.action is Action.BLOCK for f in findings):
            return Result(Decision.BLOCK, self._policy.block_message, tuple(findings))
        repaired = any(f.action is Action.REPAIR for f in findings)
        decision = Decision.REPAIR if repaired else Decision.PASS
        return Result(decision, "".join(self._out), tuple(findings))


def now() -> float:
    return time.perf_counter()
