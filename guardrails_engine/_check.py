"""The check interface: compiled checks and their per-run sessions.

A *check* is compiled once from its spec and shared by every run of a policy;
it holds no per-text state.  Each ``validate`` or stream gets a *session* per
check.  Checks report; the pipeline decides (see ``_pipeline.py``).

A session is fed text as it arrives and returns findings as soon as they are
final.  Its ``hold`` is monotonic: no finding still to come starts before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ._model import Action, Finding, done
from ._scan import PatternSet, ScanMatch, ScanState

__all__ = ["Check", "PatternSession", "Session"]


class Session(Protocol):
    """Per-run state of one check."""

    #: No finding still to come starts before this offset.
    hold: int
    #: Whether ``max_holdback_chars`` applies (pattern checks: yes; schema: no).
    capped: bool
    #: Whether the session reads the scan buffer (else it only sees chunks).
    scans: bool

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Finding]:
        """Text was appended: ``buf`` is the text from ``base`` on, ``chunk`` the new part."""

    def finish(self, buf: str, base: int) -> Sequence[Finding]:
        """The text is complete; return the remaining findings."""

    def force(self, buf: str, base: int, upto: int) -> Sequence[Finding]:
        """Decide everything before ``upto`` on the text as it stands."""


class Check(Protocol):
    """A compiled check, shared by every run of a policy."""

    id: str
    type: str
    action: Action
    on_error: str

    def session(self) -> Session: ...


class PatternSession:
    """A session over a :class:`PatternSet`, for checks that find spans by pattern."""

    __slots__ = ("_check", "_state", "hold")

    capped = True
    scans = True

    def __init__(self, check: PatternCheck) -> None:
        self._check = check
        self._state: ScanState = check.patterns.state()
        self.hold = 0

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Finding]:
        matches = self._state.feed(buf, base)
        self.hold = self._state.hold
        return self._check.interpret(matches) if matches else ()

    def finish(self, buf: str, base: int) -> Sequence[Finding]:
        matches = self._state.finish(buf, base)
        self.hold = base + len(buf)
        return self._check.interpret(matches)

    def force(self, buf: str, base: int, upto: int) -> Sequence[Finding]:
        matches = self._state.force(buf, base, upto)
        self.hold = self._state.hold
        return self._check.interpret(matches)


class PatternCheck:
    """Base of checks that find spans with regular expressions."""

    id: str
    type: str
    action: Action
    on_error: str
    patterns: PatternSet

    def session(self) -> Session:
        return PatternSession(self)

    def interpret(self, matches: Sequence[ScanMatch]) -> list[Finding]:
        raise NotImplementedError

    def finding(
        self,
        what: str,
        start: int,
        end: int,
        replacement: str | None,
        *,
        entity_type: str | None = None,
        score: float | None = None,
        repaired: str = "repaired",
    ) -> Finding:
        outcome = repaired if self.action is Action.REPAIR else done(self.action)
        return Finding(
            check_id=self.id,
            check_type=self.type,
            action=self.action,
            reason=f"{self.id}: {what} at {start}-{end}, {outcome}",
            start=start,
            end=end,
            entity_type=entity_type,
            score=score,
            replacement=replacement if self.action is Action.REPAIR else None,
        )
