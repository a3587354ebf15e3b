"""One run of a policy over one text: the sans-IO core of validate and stream.

The run is fed chunks and returns the text that became safe to release.  It
does no I/O; the async and sync drivers (``drive.py``) and ``validate``
(one chunk, then ``finish``) are thin loops around it.

Detection runs on the canonical view of the text (``_scanning/canon.py``); hits are
placed back in the original text before anything else looks at them.

How text is released (here).  Every check session reports a *hold*: no hit
still to come starts before it.  The smallest hold over all sessions is the
point up to which every hit is known; text before it is released
(``release.py``), except that a cluster of overlapping repairs that straddles
it waits until it is whole (``repairs.py``, which also says how repairs
merge).  How the run ends is ``decision.py``; what it measures, ``stats.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .._common.deadline import Deadline
from .._common.model import Finding, Result
from .._scanning.canon import OffsetMap, has_escape
from .._scanning.scan import ScanView, SharedScan
from ..checks._base import Check, Hit, PartialFailure, PatternCheck, PatternSession, Session
from ..checks._unit import MOST_RUN_FINDINGS, MalformedFinding
from .decision import Decisions, Ending, Failure, StreamLimit
from .plan import Plan
from .release import Release
from .repairs import Repairs
from .stats import Holdbacks, RunStats

__all__ = ["Ending", "Run"]

_NEVER = 1 << 62
_TRIM_AT = 1024
_MARGIN = 256


_STREAM_LIMIT = StreamLimit()


def _budgets(policy: Plan) -> list[int]:
    """The time (ms) each check may spend on one run: its timeout_ms, else the policy's."""
    spec = policy.spec
    limits = {c.id: c.timeout_ms for c in spec.checks}
    return [limits.get(c.id) or spec.check_timeout_ms for c in policy.checks]


def _sessions(
    policy: Plan, budget_ms: Sequence[int]
) -> tuple[list[tuple[Check, Session]], tuple[int, ...]]:
    """A session per check, each with a deadline of its own; checks that only scan
    patterns share one scanner (if they have the same time: they share it, and its
    deadline, too).  Also: the indices of the checks that share it."""
    shared = policy.shared_patterns
    views: dict[int, ScanView] = {}
    shared_deadline = Deadline()
    if shared is not None and len({budget_ms[i] for i in shared[1]}) == 1:
        patterns, indices, sizes = shared
        scan = SharedScan(patterns, sizes, shared_deadline)
        views = {i: scan.view(k) for k, i in enumerate(indices)}
    out: list[tuple[Check, Session]] = []
    for i, c in enumerate(policy.checks):
        view = views.get(i)
        session: Session
        if isinstance(c, PatternCheck):
            deadline = shared_deadline if view is not None else Deadline()
            session = c.session(view, deadline)
        else:
            session = c.session()
            deadline = Deadline()
        session.deadline = deadline
        out.append((c, session))
    return out, tuple(views)


class Run:
    """Per-text state of a policy: feed chunks, get released text, then a result.

    The run holds the check sessions and their holds, and the canonical view
    they scan; what to release is in :class:`Release`, how repairs merge in
    :class:`Repairs`, how the run ends in :class:`Decisions`, and what it
    measured in :class:`RunStats`.
    """

    __slots__ = (
        "_barriers",
        "_base",
        "_budget",
        "_budget_ms",
        "_buf",
        "_cap",
        "_chunk_at",
        "_decisions",
        "_deferring",
        "_drift_room",
        "_drift_text",
        "_end",
        "_ending",
        "_failed",
        "_finishing",
        "_found",
        "_hold_seen",
        "_lazy_only",
        "_live",
        "_map",
        "_numbers",
        "_out",
        "_policy",
        "_repairs",
        "_scanners",
        "_scanning",
        "_sessions",
        "_sharing",
        "_waiting",
        "stats",
    )

    def __init__(self, policy: Plan) -> None:
        self._policy = policy
        # The first characters of the text, for the policy's drift reference (if any).
        drift = policy.drift
        self._drift_text: list[str] = []
        self._drift_room = drift.max_chars if drift is not None else 0
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
        # Sessions that hold back release beyond their hold (release on completion).
        self._barriers = [s for _, s in self._sessions if s.holds_release]
        order = {c.id: i for i, c in enumerate(policy.checks)}
        # A check that reads JSON (schema) means JSON output: replacements are written
        # JSON-escaped, and sessions that know where the numbers are say so, if another
        # check may repair.
        json_output = any(c.json_output for c in policy.checks)
        self._numbers: list[Session] = []
        if json_output and not all(c.json_output for c in policy.checks):
            self._numbers = [s for _, s in self._sessions if s.knows_numbers]
            for s in self._numbers:
                s.record_numbers()
        self._repairs = Repairs(order, json_output=json_output, numbers=self._numbers)
        self._waiting = self._repairs.waiting  # (the same list: read on every chunk)
        self._decisions = Decisions(order, self._repairs, policy.block_message)
        self.stats = RunStats(len(self._sessions))
        self._out = Release(self.stats)
        self._cap = policy.max_holdback_chars
        self._map = OffsetMap()
        self._buf = ""  # canonical scan buffer, from canonical offset _base
        self._base = 0
        self._end = 0  # original characters received
        self._chunk_at = 0  # where the last chunk received starts (original offsets)
        self._failed: set[int] = set()
        self._found = [0] * len(self._sessions)  # hits per check so far
        self._ending: Ending | None = None
        # Sessions that defer calls (async or blocking unit checks) to the driver,
        # and whether the text ended while some were waiting.
        self._deferring = [(i, c, s) for i, (c, s) in enumerate(self._sessions) if s.defers]
        self._finishing = False

    # -- public ------------------------------------------------------------
    @property
    def decided(self) -> bool:
        """The outcome is known: pull no more text."""
        return self._ending is not None

    @property
    def ending(self) -> Ending | None:
        return self._ending

    @property
    def cap(self) -> int:
        """The policy's ``max_holdback_chars``: a longer chunk is read whole."""
        return self._cap

    def forcing(self, n: int) -> bool:
        """Whether feeding ``n`` more characters may decide held text at the cap
        (``n == 0``: whether more than a quarter of the cap is held), which costs
        up to the cap's worth of work at once (a driver on an event loop does it
        in a worker thread)."""
        held = self._end - self._hold_seen
        return held + n > self._cap if n else held > self._cap // 4

    @property
    def received(self) -> int:
        return self._end

    @property
    def released(self) -> int:
        return self._out.released

    @property
    def holdbacks(self) -> Holdbacks:
        return self.stats.holdbacks

    @property
    def defers(self) -> bool:
        """Whether some check of the run defers calls to the driver (see :attr:`deferred`)."""
        return bool(self._deferring)

    @property
    def deferred(self) -> bool:
        """Calls are waiting: the driver runs :meth:`jobs`, then calls :meth:`resume`."""
        if not self._deferring or self._ending is not None:
            return False
        return any(s.jobs for i, _, s in self._deferring if i not in self._failed)

    def jobs(self) -> list[tuple[int, Any]]:
        """The waiting calls, each with the index of its check."""
        return [(i, job) for i, _, s in self._deferring if i not in self._failed for job in s.jobs]

    def remaining(self, i: int) -> float:
        """The time (s) check ``i`` may still spend on this run."""
        return max(0.0, self._budget[i] - self.stats.check_seconds[i])

    def charge(self, i: int, seconds: float) -> None:
        """Check ``i`` spent ``seconds`` outside the run (its deferred calls)."""
        self.stats.check_seconds[i] += seconds

    def resume(self) -> str:
        """The driver ran the waiting calls: take their hits, return what became safe."""
        if self._ending is not None:
            return ""
        for i, _, session in self._deferring:
            if i in self._failed or not session.jobs:
                continue
            self._call(i, session.collect)
        if self.deferred:
            return ""
        return self._advance(final=self._finishing)

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the text that became safe (possibly "").

        Held text is decided as it stands at the hold-back cap only once a
        later chunk came (:meth:`_force`): the source may end after this one.
        A chunk longer than the cap is read as ``validate`` reads a text
        (:meth:`_feed_long`), so a source that gives the whole text as one
        chunk (an SDK reading a full socket) gets what ``validate`` gives, and
        a length limit or a block stops the work early.
        """
        if self._ending is not None or not chunk:
            return ""
        self._chunk_at = self._end
        if len(chunk) > self._cap and not self._deferring:
            # (Calls deferred to the driver are run between chunks.)
            return self._feed_long(chunk)
        return self._feed(chunk)

    def _feed_long(self, chunk: str) -> str:
        """:meth:`feed` of a chunk longer than the hold-back cap: the checks that
        do not scan read it first, then, unless they decided the outcome early
        (:meth:`_decided_early`), the scanning ones, once."""
        self._receive(chunk)
        self._feed_sessions(self._buf, chunk, scans=False)
        if not self._decided_early():
            self._feed_sessions(self._buf, chunk, scans=True)
        return self._advance(final=False)

    def _feed(self, chunk: str) -> str:
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
        if quiet and self._lazy_only and not self._decisions.pending:
            # Only pattern sessions, and none would scan: no hold moves, so
            # nothing new is safe unless the hold-back cap is passed.
            if not any(scanner.eager for scanner in self._scanners):
                if self._end - self._hold_seen <= self._cap:
                    self.stats.holdbacks.add(self._end - self._out.released)
                    return ""
        self._feed_sessions(self._buf, chunk, quiet=quiet)
        return self._advance(final=False)

    def _receive(self, chunk: str) -> None:
        stats = self.stats
        if stats.first_in_at is None:
            stats.first_in_at = time.perf_counter()
        stats.chunks_in += 1
        self._out.receive(chunk)
        self._end += len(chunk)
        if self._drift_room > 0:
            self._drift_text.append(chunk[: self._drift_room])
            self._drift_room -= len(self._drift_text[-1])
        if self._scanning:
            self._buf += self._map.add(chunk)
            if self._map.pending > self._cap:
                # A token still open (a comment, a bidi run) would hold back more than
                # the cap: read what is kept back as it stands.
                self._buf += self._map.flush()

    def _feed_sessions(
        self, buf: str, chunk: str, *, scans: bool | None = None, quiet: bool = False
    ) -> None:
        """Feed the sessions (only those that scan, or only those that do not,
        with ``scans``); with ``quiet``, skip pattern sessions that would not scan."""
        base = self._base
        for i, _, session, lazy in self._live:
            if scans is not None and session.scans != scans:
                continue
            if quiet and lazy is not None and not lazy.eager:
                continue
            self._call(i, session.feed, buf, base, chunk)

    def check(self, text: str) -> str:
        """Check a whole text at once: the same answer as feeding it in any chunks.

        Sessions that scan skip the work that only a stream needs (finding
        where a match may still be in progress) and scan once in ``finish``.
        """
        if self._ending is None and text:
            self._receive(text)
            self._feed_sessions(self._buf, text, scans=False)
            if self._decided_early():
                return self._final()
        return self.finish()

    def _final(self) -> str:
        """Every session has read the text: decide, unless calls are waiting."""
        if self.deferred:
            self._finishing = True
            return ""
        return self._advance(final=True)

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
        decided = [h.start for h in (self._decisions.cut, self._decisions.block) if h is not None]
        if not decided or not self._scanning:
            return False
        at = min(decided)
        self._buf += self._map.flush()
        full, base = self._buf, self._base
        end = base + len(full)
        # Every hit that starts at or before ``at`` must be known: the
        # canonical offsets before ``upto`` are those of the text up to ``at``.
        upto = self._canonical(at + 1)
        size = upto + 256  # (canonical offsets, from the start of the text)
        if size >= end:
            return False
        while True:
            prefix = full[: size - base]
            self._feed_sessions(prefix, "", scans=True)
            hold = min((s.hold for _, _, s, _ in self._live if s.scans), default=_NEVER)
            if hold < upto and size - hold > self._cap and end > 4 * size:
                # (Only when the rest is long: on a short one scanning it all costs less.)
                self._force(prefix)
                hold = min((s.hold for _, _, s, _ in self._live if s.scans), default=_NEVER)
            if hold >= upto:
                return True  # every hit that starts up to the decision is known
            if size >= end:
                return False  # a match in progress runs to the end: scan it all
            size = min(2 * size, end)

    def finish(self) -> str:
        """The text is complete; return the rest of the safe text."""
        if self._ending is not None or self._finishing:
            return ""
        if self._scanning:
            self._buf += self._map.flush()  # an escape the text ended in the middle of
        buf, base = self._buf, self._base
        for i, _, session, _ in self._live:
            self._call(i, session.finish, buf, base)
        return self._final()

    def abort(self, ending: Ending) -> None:
        """The source failed or the consumer stopped: release nothing more."""
        if self._ending is None:
            self._ending = ending
            self._out.clear()
            self.stats.ended_at = time.perf_counter()

    def expire(self, ending: Ending, what: str) -> None:
        """The stream's own time limit passed (``ending``: timed out, or idle): the run
        ends blocked; what was released stays released, the finding says ``what``."""
        if self._ending is not None:
            return
        at = self._out.released
        hit = Hit(_STREAM_LIMIT, at, at, what, kind="whole")
        self._decisions.add([hit])
        self._conclude(ending, [h for h in self._decisions.hits if h.start < at] + [hit])

    def trace_numbers(self) -> dict[str, dict[str, float]]:
        """What the sessions that keep numbers for the trace kept, by check id (read
        once, when the trace is built: nothing per chunk)."""
        return {c.id: s.trace_numbers() for c, s in self._sessions if s.traces_numbers}

    def drift_text(self) -> str:
        """The first characters of the text (as many as the drift reference embeds)."""
        return "".join(self._drift_text)

    def findings_so_far(self) -> list[Finding]:
        return self._decisions.findings(self._decisions.hits)

    def result(self) -> Result:
        """The result of a run that ended; a run aborted or still open counts as a block."""
        result = self._decisions.result
        return result if result is not None else self._decisions.unfinished()

    # -- checks: time, failure -------------------------------------------------
    def _call(self, i: int, work: Callable[..., Sequence[Hit]], *args: Any) -> None:
        """Call a method of check ``i``'s session within what the check has left of
        its time: its deadline is set for the call, the time is charged to it, its
        hits are taken; if it raises or runs past its time, on_error decides.

        The one way the run calls a session (feed, finish, force, collect).
        """
        if i in self._failed:
            return  # (it shared a scanner with a check that ran out of time)
        check, session = self._sessions[i]
        seconds = self.stats.check_seconds
        t0 = time.perf_counter()
        session.deadline.at = t0 + self._budget[i] - seconds[i]
        try:
            found = work(*args)
        except Exception as exc:
            found = self._fail(i, check, session, exc)
        finally:
            session.deadline.at = None
        seconds[i] += time.perf_counter() - t0
        if found:
            self._found[i] += len(found)
            if self._found[i] > MOST_RUN_FINDINGS:
                # Findings are bounded per run (memory): past it the check stops.
                what = f"more than {MOST_RUN_FINDINGS:,} findings in one run"
                found = self._fail(i, check, session, MalformedFinding(what))
            self._add(found, session.scans)
        if seconds[i] > self._budget[i]:
            self._overrun(i, check, session)

    def _overrun(self, i: int, check: Check, session: Session) -> None:
        """A check spent more than its time on this run: it stops, on_error decides."""
        if i not in self._failed:
            self._add(self._fail(i, check, session, TimeoutError()), False)

    def _fail(self, i: int, check: Check, session: Session, exc: Exception) -> list[Hit]:
        """A check raised (or ran out of time): on_error decides.  The reason names
        the check, never the text."""
        if isinstance(exc, PartialFailure):
            # What the session found before it failed stands.
            self._add(exc.hits, session.scans)
            cause = exc.cause
            exc = cause if isinstance(cause, Exception) else RuntimeError(type(cause).__name__)
        self._failed.add(i)
        self._live = [entry for entry in self._live if entry[0] != i]
        self._lazy_only = all(entry[3] is not None for entry in self._live)
        start = self._to_orig(session.hold) if session.scans else min(session.hold, self._end)
        start = min(start, self._end)
        session.hold = _NEVER
        if session.holds_release:
            # It vouched for nothing past its barrier (a schema check that releases the
            # document on completion: nothing), whatever its hold.
            start = min(start, session.barrier)
            session.barrier = _NEVER  # a failed check holds nothing back (on_error decides)
        failure = Failure(check, exc)
        if isinstance(exc, MalformedFinding):  # (its message names offsets and types only)
            what = f"check returned a malformed finding ({exc})"
            return [Hit(failure, start, start, what, kind="whole")]
        if not isinstance(exc, TimeoutError):
            what = f"check failed ({failure.kind})"
            return [Hit(failure, start, start, what, kind="whole")]
        what = f"check timed out after {self._budget_ms[i]:,} ms"
        # (From where the check stopped; not to the text received so far, which
        # depends on the chunking.)
        out = [Hit(failure, start, start, what, kind="whole")]
        if i in self._sharing:
            # Its scanner also scans for the checks it shares with: they share its time.
            for j in self._sharing:
                if j not in self._failed:
                    other, other_session = self._sessions[j]
                    out += self._fail(j, other, other_session, TimeoutError())
        return out

    # -- hits and holds ---------------------------------------------------------
    def _to_orig(self, c: int) -> int:
        return c if self._map.identity else self._map.to_orig(c)

    def _add(self, found: Sequence[Hit], canonical: bool) -> None:
        if canonical and not self._map.identity:
            span = self._map.span
            found = [h.moved(*span(h.start, h.end)) for h in found]
        self._decisions.add(found)

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
        """The release rule, the one place text is released: up to the smallest hold
        (all of it, if ``final``), bounded by an undecided block or cut and by the
        barriers; a decided block or cut ends the run; past the hold-back cap, held
        text is decided as it stands first."""
        hold = self._end if final else self._hold()
        if not final and self._end - hold > self._cap:
            self._force()
            hold = self._hold()
        self._hold_seen = hold
        decisions, out = self._decisions, self._out
        if final or decisions.pending:
            due = decisions.due(hold, final=final)
            if due is not None:
                return self._end_with(*due)
            target = decisions.limit(hold)
        else:
            target = hold  # nothing may end the run yet: the common case
        for session in self._barriers:
            if session.barrier < target:
                target = session.barrier  # e.g. a schema check that releases on completion
        if not final and target <= out.released and not self._waiting:
            self.stats.holdbacks.add(self._end - out.released)
            return ""  # nothing new is safe: the common case for a chunk mid-word
        piece = out.release(target, self._repairs, final=final)
        if final:
            self._add(self._judge_repaired(), False)
            block = decisions.block
            if block is not None:
                # The repaired output breaks a schema: block; what this call
                # would have released is not.
                out.unemit(piece)
                self._conclude(
                    Ending.BLOCKED, [h for h in decisions.hits if h.start <= block.start]
                )
                return ""
            self._conclude(Ending.COMPLETED, decisions.hits)
        else:
            self.stats.holdbacks.add(self._end - out.released)
            self._trim()
        return piece

    def _end_with(self, ending: Ending, hit: Hit) -> str:
        """A block or a cut is decided: end the run; return the text released."""
        decisions, out = self._decisions, self._out
        if ending is Ending.BLOCKED:
            self._conclude(Ending.BLOCKED, [h for h in decisions.hits if h.start <= hit.start])
            return ""
        # A repair that crosses the cut goes whole, and so does the
        # whitespace before it; the finding says where the text really ends.
        at = out.back_over_space(self._repairs.straddle(hit.start), hit.floor)
        piece = out.release(at, self._repairs, final=True)
        moved = hit.moved(at, hit.end)
        self._conclude(
            Ending.TRUNCATED,
            [h for h in decisions.hits if h.start < hit.start and h is not hit] + [moved],
        )
        return piece

    def _judge_repaired(self) -> list[Hit]:
        """Checks that judge the output as repaired (a schema check) say their last word."""
        out: list[Hit] = []
        for i, (check, session) in enumerate(self._sessions):
            if not session.judges_output or i in self._failed:
                continue
            try:
                out.extend(session.judge_repaired(self._repairs.applied))
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
            # (Not in the last chunk received: the source may end after it, and
            # a source that gives the whole text at once gets validate's answer.)
            upto_orig = min(self._end - self._cap, self._chunk_at)
            upto = self._canonical(upto_orig)
        else:
            upto = self._base + len(prefix) - self._cap
            upto_orig = self._to_orig(upto)
        for i, (_, session) in enumerate(self._sessions):
            if not session.capped or i in self._failed:
                continue
            if prefix is not None and not session.scans:
                continue
            limit = upto if session.scans else upto_orig
            if session.hold >= limit:
                continue
            self._call(i, session.force, buf, self._base, limit)

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

    def _trim(self) -> None:
        for s in self._numbers:
            s.forget(self._out.released)
        if not self._scanning or len(self._buf) <= _TRIM_AT + _MARGIN:
            return
        keep = _NEVER
        for _, s in self._sessions:
            if s.scans:
                # A session may read before its hold (NER reads the sentence before).
                needed = s.needed if s.reads_back else s.hold
                if needed < keep:
                    keep = needed
        keep = min(keep, self._base + len(self._buf)) - _MARGIN
        if keep - self._base > _TRIM_AT:
            self._buf = self._buf[keep - self._base :]
            self._base = keep
            self._map.forget_before(keep)

    def _conclude(self, ending: Ending, hits: Sequence[Hit]) -> None:
        self._ending = ending
        self._out.clear()
        self.stats.ended_at = time.perf_counter()
        self._decisions.conclude(hits, self._out.out)
