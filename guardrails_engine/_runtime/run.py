"""One run of a policy over one text: the sans-IO core of validate and stream.

The run is fed chunks and returns the text that became safe to release.  It
does no I/O; the async and sync drivers (``_stream.py``) and ``validate``
(one chunk, then ``finish``) are thin loops around it.

Detection runs on the canonical view of the text (``_canon.py``); hits are
placed back in the original text before anything else looks at them.

How text is released.  Every check session reports a *hold*: no hit still
to come starts before it.  The smallest hold over all sessions is the point
up to which every hit is known; text before it is released, except that a
cluster of overlapping repairs that straddles it waits until it is whole.
Repairs are applied once, on the original text: overlapping ones merge into
one span whose replacement is that of the hit that starts first (the
longest, then the first check), so the order of checks never matters.

How the run ends.  A *terminal* hit ends it: the first block, or a length
truncation.  It is decided once every hit that starts at or before it is
known (hold past it); the result then lists exactly those findings, which
depend only on the text, so a whole text and every chunking of it agree.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._core.model import Action, Decision, Finding, Result
from .._core.pieces import BLOCK, join_tail
from .._scanning.canon import OffsetMap, has_escape
from .._scanning.scan import DEADLINE, ScanView, SharedScan
from ..checks._base import Check, Hit, PatternCheck, PatternSession, RunContext, Session
from .stats import Holdbacks

if TYPE_CHECKING:
    from .._policy.policy import Policy

__all__ = ["Applied", "Ending", "Run"]

_NEVER = 1 << 62
_TRIM_AT = 1024
_MARGIN = 256


class Ending(enum.StrEnum):
    """How a run ended."""

    COMPLETED = "completed"
    BLOCKED = "blocked"
    TRUNCATED = "truncated"
    SOURCE_ERROR = "source_error"
    CANCELLED = "cancelled"


class _Failure:
    """Stands in for a check that raised, so its hit reads like any other."""

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


def _dedup(hits: Sequence[Hit]) -> list[Hit]:
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


@dataclass(slots=True)
class Applied:
    """A repair as applied to the output: the original span and what replaced it."""

    start: int
    end: int
    replacement: str
    check_id: str


def _unshadowed(hits: Sequence[Hit]) -> list[Hit]:
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


def _joined(hits: Sequence[Hit]) -> Sequence[Hit]:
    """Hits that continue another (an undecided stretch past the cap, reported
    as it grew) merged into it: one finding."""
    if not any(h.joins for h in hits):
        return hits
    out: list[Hit] = []
    last: dict[str, int] = {}
    for h in sorted(hits, key=lambda h: (h.start, h.joins)):
        k = last.get(h.check.id)
        if h.joins and k is not None and out[k].end <= h.start:
            joined = out[k].moved(out[k].start, h.end)
            joined.joins = out[k].joins
            out[k] = joined
            continue
        last[h.check.id] = len(out)
        out.append(h)
    return out


def _budgets(policy: Policy) -> list[int]:
    """The time (ms) each check may spend on one run: its timeout_ms, else the policy's."""
    spec = policy.spec
    limits = {c.id: c.timeout_ms for c in spec.checks}
    return [limits.get(c.id) or spec.check_timeout_ms for c in policy.checks]


def _sessions(
    policy: Policy, budget_ms: Sequence[int]
) -> tuple[list[tuple[Check, Session]], tuple[int, ...]]:
    """A session per check; checks that only scan patterns share one scanner
    (if they have the same time: they share it too).  Also: the indices of the
    checks that share it."""
    shared = policy.shared_patterns
    views: dict[int, ScanView] = {}
    if shared is not None and len({budget_ms[i] for i in shared[1]}) == 1:
        patterns, indices, sizes = shared
        scan = SharedScan(patterns, sizes)
        views = {i: scan.view(k) for k, i in enumerate(indices)}
    out: list[tuple[Check, Session]] = []
    for i, c in enumerate(policy.checks):
        view = views.get(i)
        if view is not None and isinstance(c, PatternCheck):
            out.append((c, c.session(view)))
        else:
            out.append((c, c.session()))
    return out, tuple(views)


class Run:
    """Per-text state of a policy: feed chunks, get released text, then a result."""

    __slots__ = (
        "_applied",
        "_barriers",
        "_base",
        "_block",
        "_budget",
        "_budget_ms",
        "_buf",
        "_cap",
        "_context",
        "_cut",
        "_end",
        "_ending",
        "_failed",
        "_hits",
        "_hold_seen",
        "_json",
        "_lazy_only",
        "_live",
        "_map",
        "_numbers",
        "_order",
        "_out",
        "_out_limit",
        "_pending",
        "_pending_limit",
        "_pending_start",
        "_policy",
        "_released",
        "_repairs",
        "_result",
        "_scanners",
        "_scanning",
        "_sessions",
        "_sharing",
        "chars_out",
        "check_seconds",
        "chunks_in",
        "chunks_out",
        "ended_at",
        "first_in_at",
        "first_out_at",
        "holdbacks",
        "started_at",
    )

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        # The time each check may spend on this run; past it, on_error decides.
        self._budget_ms = _budgets(policy)
        self._budget = [ms / 1000 for ms in self._budget_ms]
        # Checks that share a scanner share its time: the check that feeds it is
        # charged, and when it runs out, they all stop.
        self._sessions, self._sharing = _sessions(policy, self._budget_ms)
        # The sessions still running (not failed), with their index, and
        # whether text without whitespace may skip them.
        self._live = [
            (i, c, s, s if isinstance(s, PatternSession) else None)
            for i, (c, s) in enumerate(self._sessions)
        ]
        self._lazy_only = all(entry[3] is not None for entry in self._live)
        # The scanners behind the pattern sessions (one if they share it).
        self._scanners = list(
            {id(p.scanner): p.scanner for *_, p in self._live if p is not None}.values()
        )
        self._hold_seen = 0  # the hold at the last advance (original offsets)
        self._scanning = any(s.scans for _, s in self._sessions)
        # Sessions that may hold back release beyond their hold (release on completion).
        self._barriers: list[Any] = [s for _, s in self._sessions if hasattr(s, "barrier")]
        self._order = {c.id: i for i, c in enumerate(policy.checks)}
        # A schema check means JSON output: replacements are written JSON-escaped.
        self._json = any(c.type == "schema" for c in policy.checks)
        # Schema sessions that say where the numbers are, if another check may repair.
        self._numbers: list[Any] = []
        if self._json and any(c.type != "schema" for c in policy.checks):
            self._numbers = [s for _, s in self._sessions if hasattr(s, "is_number")]
            for s in self._numbers:
                s.record_numbers()
        self._cap = policy.max_holdback_chars
        self._map = OffsetMap()
        self._buf = ""  # canonical scan buffer, from canonical offset _base
        self._base = 0
        self._end = 0  # original characters received
        self._pending: list[str] = []  # unreleased original text, from _pending_start
        self._pending_limit = BLOCK  # (see _pieces)
        self._pending_start = 0
        self._released = 0  # original offset released so far
        self._out: list[str] = []  # released pieces
        self._out_limit = BLOCK  # (see _pieces)
        self._hits: list[Hit] = []  # every hit, in original offsets
        self._repairs: list[Hit] = []  # repairs not yet applied, any order
        # Repairs applied, one per merged span.
        self._applied: list[Applied] = []
        self._block: Hit | None = None  # first block so far
        self._cut: Hit | None = None  # length truncation
        self._failed: set[int] = set()
        self._context: RunContext = {}
        self._ending: Ending | None = None
        self._result: Result | None = None
        self.check_seconds = [0.0] * len(self._sessions)
        self.holdbacks = Holdbacks()
        # Statistics for traces.
        self.started_at = time.perf_counter()
        self.ended_at: float | None = None
        self.first_in_at: float | None = None
        self.first_out_at: float | None = None
        self.chunks_in = 0
        self.chunks_out = 0
        self.chars_out = 0

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
        self._receive(chunk)
        # ASCII without whitespace or an escape (JSON, HTML, percent): its canonical
        # view has no whitespace.
        # (Only pattern sessions care.)
        quiet = (
            bool(self._scanners)
            and chunk.isascii()
            and " " not in chunk
            and "\n" not in chunk
            and "\t" not in chunk
            and "\r" not in chunk
            and not has_escape(chunk)
        )
        if quiet and self._lazy_only and self._block is None and self._cut is None:
            # Only pattern sessions, and none would scan: no hold moves, so
            # nothing new is safe unless the hold-back cap is passed.
            if not any(scanner.eager for scanner in self._scanners):
                if self._end - self._hold_seen <= self._cap:
                    self.holdbacks.add(self._end - self._released)
                    return ""
        self._feed_sessions(self._buf, chunk, quiet=quiet)
        if self._block is not None or self._cut is not None:
            return self._advance(final=False)
        # Nothing decided yet: _advance, the common case.
        end = self._end
        hold = self._hold_seen = self._hold()
        if end - hold > self._cap:
            return self._advance(final=False)
        for barrier in self._barriers:
            if barrier.barrier < hold:
                hold = barrier.barrier  # e.g. a schema check that releases on completion
        released = self._released
        if hold > released or self._repairs:
            piece = self._release(hold, final=False)
            self._trim()
        else:
            piece = ""
        self.holdbacks.add(end - self._released)
        return piece

    def _receive(self, chunk: str) -> None:
        if self.first_in_at is None:
            self.first_in_at = time.perf_counter()
        self.chunks_in += 1
        pending = self._pending
        if len(pending) >= self._pending_limit:
            self._pending_limit = join_tail(pending, self._pending_limit)
        pending.append(chunk)
        self._end += len(chunk)
        if self._scanning:
            self._buf += self._map.add(chunk)

    def _feed_sessions(
        self, buf: str, chunk: str, *, scans: bool | None = None, quiet: bool = False
    ) -> None:
        """Feed the sessions (only those that scan, or only those that do not,
        with ``scans``); with ``quiet``, skip pattern sessions that would not scan."""
        base = self._base
        clock = time.perf_counter
        seconds = self.check_seconds
        budget = self._budget
        for i, check, session, lazy in self._live:
            if scans is not None and session.scans != scans:
                continue
            if quiet and lazy is not None and not lazy.eager:
                continue
            t0 = clock()
            if session.scans:  # (the others read each character once: linear)
                DEADLINE.at = t0 + budget[i] - seconds[i]
            try:
                found = session.feed(buf, base, chunk)
            except Exception as exc:
                found = self._fail(i, check, session, exc)
            seconds[i] += clock() - t0
            if found:
                self._add(found, session.scans)
            if seconds[i] > budget[i]:
                self._overrun(i, check, session)
        DEADLINE.at = None

    def check(self, text: str) -> str:
        """Check a whole text at once: the same answer as feeding it in any chunks.

        Sessions that scan skip the work that only a stream needs (finding
        where a match may still be in progress) and scan once in ``finish``.
        """
        if self._ending is None and text:
            self._receive(text)
            self._feed_sessions(self._buf, text, scans=False)
            if self._decided_early():
                return self._advance(final=True)
        return self.finish()

    def _decided_early(self) -> bool:
        """A length limit (or a block by a check that does not scan) decides the
        outcome well before the end of the text: scan only as far as a stream
        would have read, not the whole text.

        The scanning sessions are fed ever longer prefixes, as a stream in big
        chunks would feed them, until every match that starts before the
        decision is final; the answer is the stream's, hence the whole text's.
        A match in progress past ``max_holdback_chars`` is decided as the
        prefix stands, as the stream decides it (a run of spaced digits would
        otherwise be read to the end of the text, and cost far more than the
        stream that stops at the limit).
        """
        decided = [h.start for h in (self._cut, self._block) if h is not None]
        if not decided or not self._scanning:
            return False
        at = min(decided)
        self._buf += self._map.flush()
        full = self._buf
        # Every hit that starts at or before ``at`` must be known: the
        # canonical offsets before ``upto`` are those of the text up to ``at``.
        upto = self._canonical(at + 1)
        size = upto + 256
        if size >= len(full):
            return False
        while True:
            prefix = full[:size]
            self._feed_sessions(prefix, "", scans=True)
            hold = min((s.hold for _, _, s, _ in self._live if s.scans), default=_NEVER)
            if hold < upto and self._base + size - hold > self._cap and len(full) > 4 * size:
                # (Only when the rest is long: on a short one scanning it all costs less.)
                self._force(prefix)
                hold = min((s.hold for _, _, s, _ in self._live if s.scans), default=_NEVER)
            if hold >= upto:
                return True  # every hit that starts up to the decision is known
            if size >= len(full):
                return False  # a match in progress runs to the end: scan it all
            size = min(2 * size, len(full))

    def finish(self) -> str:
        """The text is complete; return the rest of the safe text."""
        if self._ending is not None:
            return ""
        if self._scanning:
            self._buf += self._map.flush()  # an escape the text ended in the middle of
        buf, base = self._buf, self._base
        for i, check, session, _ in self._live:
            t0 = self._start(i)
            try:
                found = session.finish(buf, base)
            except Exception as exc:
                found = self._fail(i, check, session, exc)
            self._stop(i, t0)
            if found:
                self._add(found, session.scans)
            if self.check_seconds[i] > self._budget[i]:
                self._overrun(i, check, session)
        DEADLINE.at = None
        return self._advance(final=True)

    def abort(self, ending: Ending) -> None:
        """The source failed or the consumer stopped: release nothing more."""
        if self._ending is None:
            self._ending = ending
            self._pending, self._pending_limit = [], BLOCK
            self.ended_at = time.perf_counter()

    def findings_so_far(self) -> list[Finding]:
        return self._findings(self._hits)

    def result(self) -> Result:
        """The result of a run that ended; a run aborted or still open counts as a block."""
        if self._result is not None:
            return self._result
        findings = self._findings(self._hits)
        return Result(Decision.BLOCK, self._policy.block_message, tuple(findings))

    # -- internals -----------------------------------------------------------
    def _start(self, i: int) -> float:
        """Check ``i`` starts work: its deadline is set; returns the clock."""
        t0 = time.perf_counter()
        DEADLINE.at = t0 + self._budget[i] - self.check_seconds[i]
        return t0

    def _stop(self, i: int, t0: float) -> None:
        self.check_seconds[i] += time.perf_counter() - t0

    def _overrun(self, i: int, check: Check, session: Session) -> None:
        """A check spent more than its time on this run: it stops, on_error decides."""
        if i not in self._failed:
            self._add(self._fail(i, check, session, TimeoutError()), False)

    def _fail(self, i: int, check: Check, session: Session, exc: Exception) -> list[Hit]:
        """A check raised (or ran out of time): on_error decides.  The reason names
        the check, never the text."""
        self._failed.add(i)
        self._live = [entry for entry in self._live if entry[0] != i]
        self._lazy_only = all(entry[3] is not None for entry in self._live)
        start = self._to_orig(session.hold) if session.scans else min(session.hold, self._end)
        start = min(start, self._end)
        session.hold = _NEVER
        if hasattr(session, "barrier"):
            session.barrier = _NEVER  # a failed check holds nothing back (on_error decides)
        failure = _Failure(check, exc)
        if not isinstance(exc, TimeoutError):
            what = f"check failed ({failure.kind})"
            return [Hit(failure, start, max(self._end, start + 1), what, kind="whole")]
        what = f"check timed out after {self._budget_ms[i]:,} ms"
        out = [Hit(failure, start, max(self._end, start + 1), what, kind="whole")]
        if i in self._sharing:
            # Its scanner also scans for the checks it shares with: they share its time.
            for j in self._sharing:
                if j not in self._failed:
                    other, other_session = self._sessions[j]
                    out += self._fail(j, other, other_session, TimeoutError())
        return out

    def _to_orig(self, c: int) -> int:
        return c if self._map.identity else self._map.to_orig(c)

    def _add(self, found: Sequence[Hit], canonical: bool) -> None:
        if canonical and not self._map.identity:
            span = self._map.span
            found = [h.moved(*span(h.start, h.end)) for h in found]
        order = self._order
        for h in found:
            self._hits.append(h)
            action = h.action
            if action is Action.REPAIR:
                if h.kind == "truncate":
                    if self._cut is None or h.start < self._cut.start:
                        self._cut = h
                else:
                    self._repairs.append(h)
            elif action is Action.BLOCK:
                b = self._block
                if b is None or (h.start, order.get(h.check.id, 0)) < (
                    b.start,
                    order.get(b.check.id, 0),
                ):
                    self._block = h

    def _hold(self) -> int:
        hold = self._end
        scan_hold = _NEVER
        for _, s in self._sessions:
            h = s.hold
            if s.scans:
                if h < scan_hold:
                    scan_hold = h
            elif h < hold:
                hold = h
        if scan_hold < _NEVER:
            scan_hold = self._to_orig(scan_hold)
            if scan_hold < hold:
                hold = scan_hold
        return hold

    def _advance(self, *, final: bool) -> str:
        hold = self._end if final else self._hold()
        if not final and self._end - hold > self._cap:
            self._force()
            hold = self._hold()
        self._hold_seen = hold

        block, cut = self._block, self._cut
        if cut is not None and block is not None and block.start >= cut.start:
            block = None  # in text the truncation removes
        if block is not None and (final or hold > block.start):
            self._conclude(Ending.BLOCKED, [h for h in self._hits if h.start <= block.start])
            return ""
        if cut is not None and (final or hold >= cut.start):
            # A repair that crosses the cut goes whole, and so does the
            # whitespace before it; the finding says where the text really ends.
            at = self._back_over_space(self._straddle(cut.start), cut.floor)
            piece = self._release(at, final=True)
            moved = cut.moved(at, cut.end)
            self._conclude(
                Ending.TRUNCATED,
                [h for h in self._hits if h.start < cut.start and h is not cut] + [moved],
            )
            return piece

        target = hold
        if block is not None and block.start < target:
            target = block.start
        if cut is not None and cut.floor < target:
            # Until the cut is decided, hold what it may still drop.
            target = cut.floor
        for session in self._barriers:
            if session.barrier < target:
                target = session.barrier  # e.g. a schema check that releases on completion
        if not final and target <= self._released and not self._repairs:
            self.holdbacks.add(self._end - self._released)
            return ""  # nothing new is safe: the common case for a chunk mid-word
        piece = self._release(target, final=final)
        if final:
            late = self._judge_repaired()
            self._add(late, False)
            block = self._block
            if block is not None:
                # The repaired output breaks a schema: block; what this call
                # would have released is not.
                if piece and self._out and self._out[-1] == piece:
                    self._out.pop()
                self._conclude(Ending.BLOCKED, [h for h in self._hits if h.start <= block.start])
                return ""
            self._conclude(Ending.COMPLETED, self._hits)
        else:
            self.holdbacks.add(self._end - self._released)
            self._trim()
        return piece

    def _judge_repaired(self) -> list[Hit]:
        """Checks that judge the output as repaired (a schema check) say their last word."""
        out: list[Hit] = []
        for i, (check, session) in enumerate(self._sessions):
            judge = getattr(session, "judge_repaired", None)
            if judge is None or i in self._failed:
                continue
            try:
                out.extend(judge(self._applied))
            except Exception as exc:
                out.extend(self._fail(i, check, session, exc))
        return out

    def _force(self, prefix: str | None = None) -> None:
        """The hold-back cap is exceeded: decide scanned text before it as it stands.

        ``prefix``: only the scanning sessions, which have read this prefix of
        the scan buffer (validate reading as a stream would).
        """
        buf = self._buf if prefix is None else prefix
        if prefix is None:
            upto_orig = self._end - self._cap
            upto = self._canonical(upto_orig)
        else:
            upto = self._base + len(prefix) - self._cap
            upto_orig = self._to_orig(upto)
        for i, (check, session) in enumerate(self._sessions):
            if not session.capped or i in self._failed:
                continue
            if prefix is not None and not session.scans:
                continue
            limit = upto if session.scans else upto_orig
            if session.hold >= limit:
                continue
            t0 = self._start(i)
            try:
                found = session.force(buf, self._base, limit)
            except Exception as exc:
                found = self._fail(i, check, session, exc)
            self._stop(i, t0)
            if found:
                self._add(found, session.scans)
            if self.check_seconds[i] > self._budget[i]:
                self._overrun(i, check, session)
        DEADLINE.at = None

    def _canonical(self, orig: int) -> int:
        """The first canonical offset at or after original offset ``orig``."""
        if self._map.identity:
            return orig
        # The map is monotonic: search it.
        lo, hi = self._base, self._base + len(self._buf)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._map.to_orig(mid) < orig:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _straddle(self, target: int) -> int:
        """Move ``target`` back to the start of any repair cluster that crosses it."""
        changed = bool(self._repairs)
        while changed:
            changed = False
            for r in self._repairs:
                if r.start < target < r.end:
                    target = r.start
                    changed = True
        return target

    def _render(self, hit: Hit) -> str:
        if hit.joins:
            return ""  # the hit it continues wrote the replacement
        if hit.replacement is None:
            text = hit.check.render(hit, self._context)
            if self._json and hit.check.type != "schema":
                # The output is JSON: a replacement inside a string value must
                # not end it (a quote) or start an escape (a backslash); one
                # for a whole number (a card written as 4111111111111111) is
                # a string of its own.
                text = json.dumps(text, ensure_ascii=False)
                if not any(s.is_number(hit.start, hit.end) for s in self._numbers):
                    text = text[1:-1]
            hit.replacement = text
        return hit.replacement

    def _back_over_space(self, target: int, floor: int) -> int:
        """Move ``target`` back over whitespace, not below ``floor``.

        Nothing at or after ``floor`` was released before the cut was known (the
        length check held it), so every chunking drops the same whitespace.
        """
        offset = self._pending_start
        pending = self._pending
        if target <= max(offset, floor) or not pending:
            return target
        text = pending[0] if len(pending) == 1 else "".join(pending)
        i, low = target - offset, max(floor, offset) - offset
        while i > low and text[i - 1].isspace():
            i -= 1
        return offset + i

    def _release(self, target: int, *, final: bool) -> str:
        start = self._released
        pending = self._pending
        offset = self._pending_start
        if not self._repairs:
            # Nothing to replace: the common case, a plain slice.
            if target <= start:
                return ""
            text = pending[0] if len(pending) == 1 else "".join(pending)
            piece = text[start - offset : target - offset]
            rest = text[target - offset :]
            self._pending, self._pending_limit = ([rest] if rest else []), BLOCK
            self._pending_start = self._released = target
            return self._emit(piece)
        if not final:
            target = self._straddle(target)
        if target <= start:
            return ""
        text = "".join(pending) if len(pending) != 1 else pending[0]
        now = _unshadowed([r for r in self._repairs if r.start < target])
        self._repairs = [r for r in self._repairs if r.start >= target]
        order = self._order
        now.sort(key=lambda h: (h.start, -h.end, order.get(h.check.id, 0), h.entity or ""))
        parts: list[str] = []
        pos = start
        span_end = -1
        for r in now:
            if r.start < span_end:  # inside the merged span being replaced
                span_end = max(span_end, r.end)
                self._applied[-1].end = span_end
                continue
            if span_end > pos:
                pos = span_end
            parts.append(text[pos - offset : r.start - offset])
            replacement = self._render(r)
            parts.append(replacement)
            span_end = r.end
            self._applied.append(Applied(r.start, r.end, replacement, r.check.id))
        if span_end > pos:
            pos = span_end
        if pos < target:
            parts.append(text[pos - offset : target - offset])
        new_start = max(target, pos)
        rest = text[new_start - offset :]
        self._pending, self._pending_limit = ([rest] if rest else []), BLOCK
        self._pending_start = new_start
        self._released = new_start
        return self._emit("".join(parts))

    def _emit(self, piece: str) -> str:
        """Record a released piece (for the result and the trace) and return it."""
        if piece:
            out = self._out
            if len(out) >= self._out_limit:
                self._out_limit = join_tail(out, self._out_limit)
            out.append(piece)
            self.chunks_out += 1
            self.chars_out += len(piece)
            if self.first_out_at is None:
                self.first_out_at = time.perf_counter()
        return piece

    def _trim(self) -> None:
        for s in self._numbers:
            s.forget(self._released)
        if not self._scanning or len(self._buf) <= _TRIM_AT + _MARGIN:
            return
        keep = _NEVER
        for _, s in self._sessions:
            if s.scans:
                # A session may read before its hold (NER reads the sentence before).
                needed = getattr(s, "needed", s.hold)
                if needed < keep:
                    keep = needed
        keep = min(keep, self._base + len(self._buf)) - _MARGIN
        if keep - self._base > _TRIM_AT:
            self._buf = self._buf[keep - self._base :]
            self._base = keep
            self._map.forget_before(keep)

    def _findings(self, hits: Sequence[Hit]) -> list[Finding]:
        order = self._order
        kept = sorted(
            _dedup(_unshadowed(_joined(hits))),
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
                replacement = self._render(h)
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

    def _conclude(self, ending: Ending, hits: Sequence[Hit]) -> None:
        self._ending = ending
        self._pending, self._pending_limit = [], BLOCK
        self.ended_at = time.perf_counter()
        findings = self._findings(hits)
        if any(f.action is Action.BLOCK for f in findings):
            result = Result(Decision.BLOCK, self._policy.block_message, tuple(findings))
        else:
            repaired = any(f.action is Action.REPAIR for f in findings)
            decision = Decision.REPAIR if repaired else Decision.PASS
            result = Result(decision, "".join(self._out), tuple(findings))
        self._result = result
