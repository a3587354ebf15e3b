"""Unit checks: a function of one complete unit of text (a sentence, a line, the text).

The engine holds the open unit, calls the function once per unit, places its
findings in the text, and streams them with the guarantees of any check: units
are cut by a rule that reads only the text (never the chunking), so a stream
and ``validate`` call the function on the same units.

A plain function runs where the run runs.  One declared ``blocking`` runs in a
worker thread, and an ``async`` one is awaited; both are *deferred*: the
session queues the unit as a :class:`Job`, the driver runs the jobs of a run
concurrently (within the check's time), and the run takes their results.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import regex
from pydantic import BaseModel

from .._common.deadline import Deadline
from .._common.model import Action
from .._common.threads import CheckThreads
from ._base import Check, CheckConfig, Hit, PartialFailure, Session

__all__ = [
    "MOST_FINDINGS",
    "MOST_RUN_FINDINGS",
    "MOST_RUN_FINDING_CHARS",
    "USER_CODE",
    "Found",
    "Job",
    "MalformedFinding",
    "UnitCheck",
    "UnitFunction",
    "quotes",
    "stand_in",
    "unit_check",
]

Unit = Literal["sentence", "line", "text"]
UNITS: tuple[Unit, ...] = ("sentence", "line", "text")


@dataclass(frozen=True, slots=True)
class Found:
    """A finding of a unit check, in offsets of the unit it was given.

    ``end=None`` means the end of the unit (``Found()`` flags the whole unit).
    ``label`` is the finding's entity type (a repair writes ``<LABEL>`` unless
    ``replacement`` says otherwise); ``reason`` says what was found, and must
    not quote it: a reason that contains the found text is replaced by the label.
    """

    start: int = 0
    end: int | None = None
    label: str | None = None
    reason: str | None = None
    replacement: str | None = None
    score: float | None = None


class MalformedFinding(Exception):
    """A check broke its contract (a wrong type, a span outside its text).  The
    message names offsets and types only, never text."""


UnitFunction = Callable[..., Any]


class CheckRaised(Exception):
    """Stands in for what a check of your own raised that the run must not see as
    is: a :class:`MalformedFinding` of its own (whose message may quote text, where
    ours name offsets and types only), or a ``BaseException`` that is not an
    ``Exception`` (it would escape the run).  Its class is named after the original
    type, for the reason; it carries no message."""


#: The most findings one call of a unit check may return.
MOST_FINDINGS = 10_000
#: The most findings one check may report in one run, and the most characters
#: their values may cover together; past either, the check fails (on_error decides).
MOST_RUN_FINDINGS = 100_000
MOST_RUN_FINDING_CHARS = 10_000_000

_STAND_INS: dict[str, type[CheckRaised]] = {}


def stand_in(exc: BaseException) -> CheckRaised:
    """A :class:`CheckRaised` named like ``exc``, without its message."""
    name = type(exc).__name__
    kind = _STAND_INS.get(name)
    if kind is None:
        kind = _STAND_INS[name] = type(name, (CheckRaised,), {"__module__": __name__})
    return kind()


class _UserCode:
    """``with USER_CODE:`` around code of a check of your own: what it raises reaches
    the run as an ``Exception`` whose message the run may show (see :func:`stand_in`).
    ``KeyboardInterrupt`` and ``SystemExit`` go through."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, KeyboardInterrupt | SystemExit):
            return False
        if isinstance(exc, MalformedFinding) or not isinstance(exc, Exception):
            raise stand_in(exc) from None
        return False


USER_CODE = _UserCode()


def quotes(value: str, what: str) -> bool:
    """Whether ``what`` quotes ``value`` (of at least 3 characters), whatever the
    case or the spacing."""
    value = "".join(value.split()).casefold()
    return len(value) >= 3 and value in "".join(what.split()).casefold()


class UnitCheck:
    """A function declared as a unit check (what :func:`unit_check` returns).

    Calling it calls the function.
    """

    __slots__ = ("blocking", "function", "is_async", "name", "options", "unit")

    def __init__(
        self,
        function: UnitFunction,
        *,
        unit: Unit = "sentence",
        options: type[BaseModel] | None = None,
        blocking: bool = False,
    ) -> None:
        if not callable(function):
            raise TypeError(f"a unit check is a function, got {type(function).__name__}")
        if unit not in UNITS:
            raise TypeError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
        if options is not None and not (
            isinstance(options, type) and issubclass(options, BaseModel)
        ):
            raise TypeError(f"options must be a pydantic model class, got {options!r}")
        self.function = function
        self.unit: Unit = unit
        self.options = options
        self.is_async = inspect.iscoroutinefunction(function)
        if blocking and self.is_async:
            raise TypeError("an async unit check is awaited: it cannot also be blocking")
        self.blocking = blocking
        self.name = getattr(function, "__qualname__", repr(function))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<unit check {self.name} ({self.unit})>"


@overload
def unit_check(function: UnitFunction, /) -> UnitCheck: ...


@overload
def unit_check(
    *,
    unit: Unit = "sentence",
    options: type[BaseModel] | None = None,
    blocking: bool = False,
) -> Callable[[UnitFunction], UnitCheck]: ...


def unit_check(
    function: UnitFunction | None = None,
    /,
    *,
    unit: Unit = "sentence",
    options: type[BaseModel] | None = None,
    blocking: bool = False,
) -> UnitCheck | Callable[[UnitFunction], UnitCheck]:
    """Declare a unit check: ``function(text)``, or ``function(text, options)``
    when it declares ``options`` (a pydantic model that validates the policy's
    ``options:``), returns findings (:class:`Found`) or ``None``.

    ``unit``: what one call sees (``sentence``, ``line`` or ``text``; a policy may
    say otherwise).  ``blocking``: a sync function that waits (I/O, a model):
    it runs in a worker thread.  An ``async def`` is awaited; the units of one
    run are awaited concurrently.
    """
    if function is not None:
        return UnitCheck(function, unit=unit, options=options, blocking=blocking)

    def declare(f: UnitFunction) -> UnitCheck:
        return UnitCheck(f, unit=unit, options=options, blocking=blocking)

    return declare


# -- the compiled check ---------------------------------------------------------------------

#: Where a sentence ends: a run of terminators (and closing quotes or brackets)
#: before whitespace, or a line break.
_SENTENCE_END = regex.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|\n")
_LINE_END = regex.compile(r"\n")
_TRAILING = frozenset(".!?\u2026\"'\u201d\u2019)]")


class Compiled(Check):
    """A :class:`UnitCheck` as a policy configured it."""

    def __init__(
        self, config: CheckConfig, declared: UnitCheck, *, unit: Unit, max_unit_chars: int
    ) -> None:
        super().__init__(config)
        self.declared = declared
        self.unit: Unit = unit
        self.max_unit_chars = max_unit_chars
        self.deferred = declared.is_async or declared.blocking
        #: The threads of its blocking calls, for every run (bounded: see CheckThreads).
        self.threads = CheckThreads()

    def session(self) -> Session:
        return UnitSession(self)

    def call(self, text: str) -> Any:
        options = self.config.options
        with USER_CODE:
            if self.declared.options is not None:
                return self.declared.function(text, options)
            return self.declared.function(text)

    def hits(self, result: Any, text: str, offset: int) -> list[Hit]:
        """The hits of what the function returned for ``text`` (at canonical ``offset``)."""
        if result is None:
            return []
        if isinstance(result, Found):
            result = [result]
        if isinstance(result, str | bytes) or not isinstance(result, Iterable):
            raise MalformedFinding(
                f"a unit check returns findings (Found) or None, got {type(result).__name__}"
            )
        # Read what the check gave once (a generator, or a Found subclass, is its code),
        # and not forever.
        with USER_CODE:
            items = [
                (f, (f.start, f.end, f.label, f.reason, f.replacement, f.score))
                if isinstance(f, Found)
                else (f, None)
                for f in itertools.islice(result, MOST_FINDINGS + 1)
            ]
        if len(items) > MOST_FINDINGS:
            raise MalformedFinding(f"more than {MOST_FINDINGS:,} findings in one unit")
        out: list[Hit] = []
        size = len(text)
        for found, fields in items:
            if fields is None:
                raise MalformedFinding(f"a finding must be a Found, got {type(found).__name__}")
            start, end, label, reason, replacement, score = fields
            if end is None:
                end = size
            if not (_is_int(start) and _is_int(end)):
                raise MalformedFinding("a finding's start and end must be integers")
            if not 0 <= start <= end <= size or (start == end and size):
                raise MalformedFinding(
                    f"a finding's span {start}-{end} is not inside its unit (0-{size})"
                )
            for name, field in (("label", label), ("reason", reason), ("replacement", replacement)):
                if field is not None and not isinstance(field, str):
                    raise MalformedFinding(
                        f"a finding's {name} must be a str, got {type(field).__name__}"
                    )
            if score is not None and not (
                isinstance(score, int | float)
                and not isinstance(score, bool)
                and math.isfinite(score)
            ):
                raise MalformedFinding("a finding's score must be a finite number")
            value = text[start:end]
            if label is not None and quotes(value, label):
                label = None  # a label never quotes what it found either
            what = reason or label or "found"
            if quotes(value, what) or quotes(text, what):
                what = label or "found"  # a reason never quotes what it found (or its unit)
            hit = Hit(
                self,
                offset + start,
                offset + end,
                what,
                entity=label,
                score=None if score is None else float(score),
                value=value,
            )
            if replacement is not None and self.action is Action.REPAIR:
                hit.proposed = replacement  # (kept when the hit is moved)
            out.append(hit)
        return out


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class Job:
    """One deferred call of a unit check, run by the driver."""

    __slots__ = ("check", "error", "offset", "result", "seconds", "text")

    def __init__(self, check: Compiled, text: str, offset: int) -> None:
        self.check = check
        self.text = text
        self.offset = offset
        self.result: Any = None
        self.error: BaseException | None = None
        self.seconds = 0.0

    @property
    def is_async(self) -> bool:
        return self.check.declared.is_async

    def call(self) -> Any:
        """Run a sync (blocking) function."""
        return self.check.call(self.text)

    def acall(self) -> Awaitable[Any]:
        """Start an async function."""
        result = self.check.call(self.text)
        if not inspect.isawaitable(result):
            raise MalformedFinding(
                f"an async unit check must return an awaitable, got {type(result).__name__}"
            )
        return result


class UnitSession(Session):
    """Cuts the canonical text into units and calls the check on each."""

    scans = True

    def __init__(self, check: Compiled) -> None:
        self.check = check
        self.capped = check.unit != "text"  # a text check holds the whole text
        self.defers = check.deferred
        self._ends = _LINE_END if check.unit == "line" else _SENTENCE_END
        self._start = 0  # canonical offset of the open unit
        self._seen = 0  # boundaries are searched from here (less any trailing run)
        self.jobs: list[Job] = []  # deferred calls, in text order
        self.hold = 0
        self.deadline = Deadline()  # (the run gives it its own)
        self._found = 0  # findings so far in this run
        self._found_chars = 0  # and the characters they cover

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        if self.check.unit == "text":
            return ()
        return self._units(buf, base, base + len(buf), final=False)

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        end = base + len(buf)
        hits = [] if self.check.unit == "text" else self._units(buf, base, end, final=False)
        self._unit(buf, base, self._start, end, hits)
        self._start = end
        self._update()
        return hits

    def force(self, buf: str, base: int, upto: int) -> Sequence[Hit]:
        """Past the hold-back cap (a unit longer than the cap): the open unit is
        checked as it stands up to ``upto``."""
        hits: list[Hit] = []
        if upto > self._start:
            self._unit(buf, base, self._start, upto, hits)
            self._start = self._seen = upto
        self._update()
        return hits

    def collect(self) -> Sequence[Hit]:
        """The hits of the jobs that ran (the first failure raises)."""
        hits: list[Hit] = []
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            try:
                if job.error is not None:
                    raise job.error
                found = self.check.hits(job.result, job.text, job.offset)
                self._count(found)
                hits += found
            except Exception as exc:
                # The units before this one keep their findings; the failure is here.
                self.hold = max(self.hold, job.offset)
                raise PartialFailure(exc, hits) from exc
        self._update()
        return hits

    def _units(self, buf: str, base: int, end: int, *, final: bool) -> list[Hit]:
        hits: list[Hit] = []
        limit = self.check.max_unit_chars
        ends = self._ends
        at = max(self._seen, self._start)
        while True:
            stop = min(end, self._start + limit)
            m = ends.search(buf, at - base, stop - base) if at < stop else None
            if m is not None:
                unit_end = base + m.end()
                self._unit(buf, base, self._start, unit_end, hits)
                self._start = at = unit_end
                continue
            if end - self._start >= limit:  # a unit as long as allowed: cut it there
                cut = self._start + limit
                self._unit(buf, base, self._start, cut, hits)
                self._start = at = cut
                continue
            break
        # Next time, search again from the start of a trailing run of terminators
        # (the whitespace that ends a sentence may not have come yet).
        i = end
        while i > self._start and buf[i - 1 - base] in _TRAILING:
            i -= 1
        self._seen = i
        self._update()
        return hits

    def _unit(self, buf: str, base: int, start: int, end: int, hits: list[Hit]) -> None:
        """Check the unit ``start``-``end`` (canonical), without its outer whitespace;
        its hits go to ``hits``.  If the check fails, the hits of the units before it
        stay found, and the failure is placed at this unit (in every chunking)."""
        raw = buf[start - base : end - base]
        text = raw.strip()
        if not text:
            return
        offset = start + (len(raw) - len(raw.lstrip()))
        if self.defers:
            self.jobs.append(Job(self.check, text, offset))
            return
        try:
            # Between units the deadline holds: a slow function is not called on
            # every unit of a long text (validate) when a stream would stop after one.
            self.deadline.check()
            found = self.check.hits(self.call(text), text, offset)
            self._count(found)
            hits += found
        except Exception as exc:
            self.hold = max(self.hold, offset)
            raise PartialFailure(exc, hits) from exc

    def call(self, text: str) -> Any:
        """Call the check on one unit (a session may keep numbers of the call)."""
        return self.check.call(text)

    def _count(self, found: Sequence[Hit]) -> None:
        """Findings of one run are bounded in number and in the text they hold (the
        hits are checked as the units are: a validate does not build them all first)."""
        self._found += len(found)
        self._found_chars += sum(h.end - h.start for h in found)
        if self._found > MOST_RUN_FINDINGS:
            raise MalformedFinding(f"more than {MOST_RUN_FINDINGS:,} findings in one run")
        if self._found_chars > MOST_RUN_FINDING_CHARS:
            raise MalformedFinding(
                f"findings covering more than {MOST_RUN_FINDING_CHARS:,} characters in one run"
            )

    def _update(self) -> None:
        hold = self.jobs[0].offset if self.jobs else self._start
        self.hold = max(self.hold, min(hold, self._start))
