"""The check interface: compiled checks, their per-run sessions, and hits.

A *check* is compiled once from its spec and shared by every run of a policy;
it holds no per-text state.  Each ``validate`` or stream gets a *session* per
check.  Checks report :class:`Hit`\\ s; the pipeline decides, places them in the
original text, renders repairs and turns them into public findings.

A session is fed text as it arrives and returns hits as soon as they are
final.  Its ``hold`` is monotonic: no hit still to come starts before it.
Sessions that ``scan`` see the canonical view of the text (see ``_scanning/canon.py``)
and report canonical offsets; the others see the original chunks.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from .._common.deadline import Deadline
from .._common.model import Action
from .._scanning.cap import Undecided
from .._scanning.scan import PatternSet, ScanMatch, ScanState, ScanView

__all__ = [
    "Applied",
    "Check",
    "CheckConfig",
    "Hit",
    "PartialFailure",
    "PatternCheck",
    "PatternSession",
    "RunContext",
    "Session",
]

#: ``span``: a found span; ``truncate``: everything from ``start`` on is cut;
#: ``whole``: a verdict on the whole text (no span in the reason).
HitKind = Literal["span", "truncate", "whole"]

#: Per-run state that repairs may keep (pseudonym numbering), keyed by check id.
RunContext = dict[str, Any]


class Hit:
    """What a check found, before the pipeline places it.

    ``value`` is the canonical text of the span, kept only to render repairs
    (hash, pseudonym, partial); it never leaves the library.
    """

    __slots__ = (
        "action",
        "check",
        "end",
        "entity",
        "floor",
        "joins",
        "kind",
        "ner",
        "proposed",
        "replacement",
        "score",
        "start",
        "value",
        "what",
    )

    def __init__(
        self,
        check: Check,
        start: int,
        end: int,
        what: str,
        *,
        entity: str | None = None,
        score: float | None = None,
        value: str | None = None,
        kind: HitKind = "span",
        ner: bool = False,
    ) -> None:
        self.check = check
        #: What the pipeline does with it: the check's action unless it says otherwise.
        self.action: Action = check.action
        #: Found by NER; a pattern hit of the same check that overlaps it wins.
        self.ner = ner
        self.start = start
        self.end = end
        self.what = what
        self.entity = entity
        self.score = score
        self.value = value
        self.kind: HitKind = kind
        #: The text the pipeline writes for a repair, once rendered (kept here).
        self.replacement: str | None = None
        #: A replacement the session proposes for this hit (rendered like any other:
        #: JSON-escaped when the output is JSON); the check's ``render`` decides.
        self.proposed: str | None = None
        #: For a truncation: the text from here on was held until the cut was known.
        self.floor = start
        #: Continues the hit of the same check that ends where it starts (an
        #: undecided stretch past the hold-back cap): one finding, one replacement.
        self.joins = False

    def moved(self, start: int, end: int) -> Hit:
        hit = Hit(
            self.check,
            start,
            end,
            self.what,
            entity=self.entity,
            score=self.score,
            value=self.value,
            kind=self.kind,
            ner=self.ner,
        )
        hit.floor = self.floor
        hit.action = self.action
        hit.joins = self.joins
        hit.proposed = self.proposed
        return hit

    def __repr__(self) -> str:  # never shows the value
        return f"<Hit {self.check.id} {self.what} {self.start}-{self.end}>"


@dataclass(slots=True)
class Applied:
    """A repair as applied to the output: the original span and what replaced it."""

    start: int
    end: int
    replacement: str
    check_id: str


class PartialFailure(Exception):
    """A session failed after finding ``hits`` (in the same call): the run keeps them,
    then ``on_error`` decides about ``cause`` from the session's hold on."""

    def __init__(self, cause: BaseException, hits: Sequence[Hit]) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause
        self.hits = list(hits)


class Session:
    """Per-run state of one check: fed text as it arrives, it returns hits as
    soon as they are final.

    What a session can do beyond feed, finish and force is *declared* by the
    class attributes below (the run reads them once), never probed.
    """

    #: No hit still to come starts before this offset (monotonic).
    hold: int
    #: When the session's work must stop.  The run gives every session a deadline
    #: of its own before it feeds it, and sets it before each call; a session that
    #: loops over many pieces of work (units, matches) calls ``deadline.check()``
    #: between them, which raises ``TimeoutError`` once it has passed.
    deadline: Deadline
    #: Whether ``max_holdback_chars`` applies (pattern checks: yes; schema: no).
    capped: bool = True
    #: Whether the session reads the canonical scan buffer (else it only sees chunks).
    scans: bool = True
    #: Whether the session holds release back beyond its hold, up to :attr:`barrier`
    #: (a schema check that releases the document on completion).
    holds_release: bool = False
    #: Whether the session judges the output as repaired: :meth:`judge_repaired`.
    judges_output: bool = False
    #: Whether the session can say where the JSON numbers are: :meth:`is_number`.
    knows_numbers: bool = False
    #: Whether the session reads canonical text before its hold: :attr:`needed`.
    reads_back: bool = False
    #: Whether the session defers work to the driver (async or blocking calls):
    #: :attr:`jobs` and :meth:`collect`.
    defers: bool = False

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        """Text was appended: ``buf`` is the text from ``base`` on, ``chunk`` the new part."""
        raise NotImplementedError

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        """The text is complete; return the remaining hits."""
        raise NotImplementedError

    def force(self, buf: str, base: int, upto: int) -> Sequence[Hit]:
        """Decide everything before ``upto`` on the text as it stands."""
        raise NotImplementedError

    # -- declared capabilities ------------------------------------------------------------
    #: With ``holds_release``: release stops here even when the hold is past it.
    barrier: int
    #: With ``reads_back``: the first canonical offset the session may still read.
    needed: int

    #: Whether the session keeps numbers for the run's trace: :meth:`trace_numbers`.
    traces_numbers: bool = False

    #: With ``defers``: the calls waiting for the driver (each has ``error``, ``result``).
    jobs: list[Any]

    def collect(self) -> Sequence[Hit]:
        """With ``defers``: the hits of the jobs the driver ran (a failed one raises)."""
        raise NotImplementedError

    def trace_numbers(self) -> dict[str, float]:
        """With ``traces_numbers``: numbers of this run for its trace (never text)."""
        raise NotImplementedError

    def judge_repaired(self, applied: Sequence[Applied]) -> Sequence[Hit]:
        """With ``judges_output``: the last word on the output as repaired."""
        raise NotImplementedError

    def record_numbers(self) -> None:
        """With ``knows_numbers``: start recording where the numbers are."""
        raise NotImplementedError

    def is_number(self, start: int, end: int) -> bool:
        """With ``knows_numbers``: whether ``start``-``end`` is a whole JSON number."""
        raise NotImplementedError

    def forget(self, before: int) -> None:
        """With ``knows_numbers``: numbers before ``before`` are no longer asked about."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """What the policy says about one check: given to a check class to build it."""

    #: The check's ``id`` (names its findings).
    id: str
    #: Its type: ``custom``, or the name it is registered under.
    type: str
    #: What its findings ask for: repair, block or flag.
    action: Action
    #: ``block`` or ``pass``: what a failure of the check means.
    on_error: str
    #: The validated ``options:`` (an instance of the class's ``Options``), or ``None``.
    options: Any
    #: ``replacement:`` from the policy, if given.
    replacement: str | None
    #: The policy's ``stream.max_holdback_chars``: keep :attr:`Session.hold` within
    #: this many characters of the end, or :meth:`Session.force` is called.
    max_holdback_chars: int


class Check:
    """A compiled check, shared by every run of a policy: no per-text state.

    Every check, built in or yours, is one: :meth:`session` makes the per-run
    state, :meth:`render` writes the replacement of a repair, :meth:`outcome`
    says what was done.  A check class of your own (an *incremental* check)
    declares its ``Options`` (a pydantic model) and is built from a
    :class:`CheckConfig`.
    """

    id: str
    type: str
    action: Action
    on_error: str
    #: Whether the session does blocking work (NER) that belongs in a worker thread.
    blocking: bool = False
    #: Whether the check's work per unit is costly (a model call per sentence): an
    #: async ``validate`` then runs in a worker thread whatever the text's length.  A
    #: stream still feeds it on the event loop, in slices sized by their measured cost.
    costly: bool = False
    #: Whether the check reads the output as JSON (a schema check).  If one does,
    #: the run writes every other check's replacement JSON-escaped, and blocks a
    #: truncation (cut JSON is not JSON); this check's own replacements are JSON.
    json_output: bool = False
    #: What the policy said, for a check built from a :class:`CheckConfig` (the built-in
    #: checks are built from their specs, and write their own replacements).
    config: CheckConfig
    #: The pydantic model that validates ``options:`` (``None``: the check takes none).
    Options: ClassVar[builtins.type[BaseModel] | None] = None

    def __init__(self, config: CheckConfig) -> None:
        self.id = config.id
        self.type = config.type
        self.action = config.action
        self.on_error = config.on_error
        self.config = config

    def session(self) -> Session:
        """A new session, for one run."""
        raise NotImplementedError

    def render(self, hit: Hit, context: RunContext) -> str:
        """The replacement of a repair hit: what the session proposed
        (``hit.proposed``), else the policy's ``replacement``, else ``<ENTITY>``, else
        ``[removed]``."""
        if hit.proposed is not None:
            return hit.proposed
        if self.config.replacement is not None:
            return self.config.replacement
        return f"<{hit.entity}>" if hit.entity else "[removed]"

    def outcome(self, hit: Hit) -> str:
        """What was done, in the past tense, for the reason."""
        return _OUTCOME[hit.action]


#: Matches interpreted between two looks at the deadline.
_BATCH = 16

_OUTCOME = {Action.REPAIR: "replaced", Action.BLOCK: "blocked", Action.FLAG: "flagged"}


class PatternSession(Session):
    """A session over a :class:`PatternSet`, for checks that find spans by pattern.

    Past the hold-back cap, a match that may be in progress is *undecided*
    (``_scanning/cap.py``): the stretch it may cover is reported as a hit of the check,
    so a stream is never less careful than ``validate``.
    """

    __slots__ = ("_check", "_open", "_seen", "_state", "deadline", "hold")

    capped = True
    scans = True

    def __init__(
        self, check: PatternCheck, scan: ScanView | None = None, deadline: Deadline | None = None
    ) -> None:
        self._check = check
        # Its own scanner, or its view of one the run shares between checks.
        self._state: ScanState | ScanView = (
            scan if scan is not None else check.patterns.state(deadline)
        )
        # (The scanner's: checks that share a scanner share its deadline.)
        self.deadline = self.scanner.deadline
        self._open: Undecided | None = None  # an undecided stretch past the cap
        self._seen: dict[int, int] = {}  # per pattern: no match in progress before it
        self.hold = 0

    @property
    def scanner(self) -> ScanState:
        """The scanning state behind this session (shared with other checks or not)."""
        state = self._state
        return state if isinstance(state, ScanState) else state.state

    @property
    def eager(self) -> bool:
        """Whether the next chunk must be fed even if it has no whitespace.

        Otherwise such a chunk changes nothing (the scanner waits for a word to
        end), and the run does not feed it.
        """
        return self._state.eager or self._open is not None

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        matches = self._state.feed(buf, base)
        hits = self.interpret(matches) if matches else []
        if self._open is not None:
            self._close(buf, base, hits, final=False)
        self._update()
        return hits

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        matches = self._state.finish(buf, base)
        hits = self.interpret(matches)
        if self._open is not None:
            self._close(buf, base, hits, final=True)
        self.hold = base + len(buf)
        return hits

    def force(self, buf: str, base: int, upto: int) -> Sequence[Hit]:
        state = self._state
        # (A scanner shared with other checks may have been forced by one of them already.)
        before = (
            state.hold_before_force(buf, base, upto) if isinstance(state, ScanView) else state.hold
        )
        hits: list[Hit] = []
        if self._open is not None:
            # Report it up to the cap (or to its end, if that is known by now).
            self._close(buf, base, hits, final=False, upto=upto)
        hits += self.interpret(state.force(buf, base, upto))
        if self._open is None and before < upto:
            begun = Undecided.begin(
                self._check.patterns.patterns, buf, base, before, upto, self._seen, self.deadline
            )
            if begun is not None:
                start, self._open = begun
                hits.append(self._stretch(self._open, buf, base, start, upto, joins=False))
                self._close(buf, base, hits, final=False)
        self._update()
        return hits

    def interpret(self, matches: Sequence[ScanMatch]) -> list[Hit]:
        """Hits of final matches (a session that keeps per-run state overrides it)."""
        if len(matches) <= _BATCH:
            return self._check.interpret(matches)
        # Many matches (a run of digits): interpreting one may cost a millisecond
        # (a phone number is parsed), so the deadline is looked at between batches.
        hits: list[Hit] = []
        for i in range(0, len(matches), _BATCH):
            self.deadline.check()
            hits += self._check.interpret(matches[i : i + _BATCH])
        return hits

    def _stretch(
        self, undecided: Undecided, buf: str, base: int, start: int, end: int, *, joins: bool
    ) -> Hit:
        hit = self._check.undecided(undecided.index, start, end, buf[start - base : end - base])
        hit.joins = joins
        return hit

    def _close(self, buf: str, base: int, hits: list[Hit], *, final: bool, upto: int = -1) -> None:
        """Report the rest of the undecided stretch once its end is known (or,
        with ``upto``, its part before ``upto``)."""
        undecided = self._open
        assert undecided is not None
        end = undecided.end(buf, base, undecided.at)
        if end is None and final:
            end = base + len(buf)
        if end is None:
            if upto > undecided.at:
                hits.append(self._stretch(undecided, buf, base, undecided.at, upto, joins=True))
                undecided.at = upto
            return
        if end > undecided.at:
            hits.append(self._stretch(undecided, buf, base, undecided.at, end, joins=True))
            undecided.at = end
        self._open = None

    def _update(self) -> None:
        hold = self._state.hold
        if self._open is not None and self._open.at < hold:
            hold = self._open.at
        self.hold = hold


class PatternCheck(Check):
    """Base of checks that find spans with regular expressions."""

    patterns: PatternSet

    def session(self, scan: ScanView | None = None, deadline: Deadline | None = None) -> Session:
        """A session of its own scanner (with ``deadline``), or over ``scan``."""
        return PatternSession(self, scan, deadline)

    def interpret(self, matches: Sequence[ScanMatch]) -> list[Hit]:
        raise NotImplementedError

    def undecided(self, index: int, start: int, end: int, value: str) -> Hit:
        """A stretch that pattern ``index`` may have matched, undecided at the
        hold-back cap (see ``_scanning/cap.py``)."""
        return Hit(self, start, end, "match in progress at the hold-back cap", value=value)

    def render(self, hit: Hit, context: RunContext) -> str:
        raise NotImplementedError

    def outcome(self, hit: Hit) -> str:
        return _OUTCOME[self.action]
