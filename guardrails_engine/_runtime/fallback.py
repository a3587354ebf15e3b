"""Fallback: the values and the rule of a stream that may replace its source.

A stream with fallbacks runs each source in a stream of the policy of its own
(the same checks, the same guarantees) and keeps one rule, here in
:class:`Rule`, for both drivers (``fallback_drive.py``):

- While nothing has been released, a trigger that ``fallback.on`` lists (the
  source raised, stalled, refused, or was blocked) abandons the source (it is
  closed) and starts the next one, whose text replaces the stream entirely.
- Once text has been released there is no replay: a block ends with the block
  message (a :class:`Blocked` event), a failure or a time limit with an
  :class:`Interrupted` event and the policy's ``fallback.closing_message``.
- At most ``fallback.max_attempts`` sources are tried; the last one's failure
  ends the stream the same way.
- A :class:`Breaker` shared across calls skips the first source for a while
  after it failed or stalled too often (blocks and refusals never count).

What a trigger tells the next source (:class:`Fallback`) never holds a value of
the text: findings keep their check, place and reason (paths and keywords),
not their replacement.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._common.model import Decision, Finding, Result
from .._spec.fallback import FallbackSpec
from .decision import Ending
from .drive import Blocked, Ended, Released
from .plan import Plan

__all__ = [
    "Attempt",
    "Breaker",
    "Fallback",
    "FallbackEvent",
    "FallbackResult",
    "FallbackSource",
    "Interrupted",
    "Refusal",
    "Rule",
]

#: Why a source was abandoned: its own triggers, and ``breaker`` (skipped).
Reason = Literal["error", "timeout", "refusal", "block", "breaker"]


class Refusal(Exception):
    """Raised by a source whose model declined to answer: the ``refusal`` trigger.

    The message is for the application; it is not shown to the reader and never
    copied into a :class:`Fallback` or a result.
    """


@dataclass(frozen=True, slots=True)
class Fallback:
    """Why the next source is asked, given to a fallback callable.

    ``reason``: ``error``, ``timeout``, ``refusal``, ``block`` or ``breaker`` (the
    first source was skipped); ``attempt``: the number of the attempt about to
    start (1 for the first fallback); ``findings``: the abandoned run's findings
    (check ids, places, reasons that name paths and keywords: never a value, and
    no replacement); ``detail``: a short readable cause (an exception's type, the
    time limit), never text of the output.
    """

    reason: Reason
    attempt: int
    findings: tuple[Finding, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One source a stream tried: what started it, how it ended, what it released.

    ``trigger`` is what abandoned the previous source (``None`` for the first);
    ``ending``: ``completed``, ``blocked``, ``truncated``, or the trigger that
    abandoned it (``error``, ``timeout``, ``refusal``, ``block``), or ``skipped``
    (the breaker was open) or ``cancelled``; ``released``: characters released
    from it (through an adapter: the events that showed something);
    ``first_release_ms``: from its start to its first released piece.
    """

    number: int
    trigger: Reason | None
    ending: str
    released: int = 0
    first_release_ms: float | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The stream ended before its source did (a failure or a time limit after text
    was released, or with no source left): ``reason`` is ``error``, ``timeout`` or
    ``refusal``; ``message`` is the policy's ``fallback.closing_message`` (may be
    empty); ``detail`` a short cause, never text of the output."""

    reason: Reason
    message: str
    detail: str


#: What the events of a stream with fallbacks are.
FallbackEvent = Released | Blocked | Interrupted | Ended


@dataclass(frozen=True, slots=True)
class FallbackResult(Result):
    """The result of a stream with fallbacks: a :class:`Result` (the released
    source's), plus ``ending`` (``completed``, ``blocked``, ``truncated``, or for
    an interrupted stream ``error``, ``timeout``, ``refusal``), ``source`` (the
    number of the attempt whose text was released) and every :class:`Attempt`.

    An interrupted stream's decision is ``block`` (the text did not complete) and
    its ``text`` the closing message; its findings are those found so far.
    """

    ending: str = "completed"
    source: int = 0
    attempts: tuple[Attempt, ...] = ()

    @property
    def interrupted(self) -> bool:
        return self.ending in ("error", "timeout", "refusal")

    def to_dict(self) -> dict[str, Any]:
        out = Result.to_dict(self)
        out["ending"] = self.ending
        out["source"] = self.source
        out["attempts"] = [dataclasses.asdict(a) for a in self.attempts]
        return out


#: A fallback: called with the :class:`Fallback`, returns a source (an iterable,
#: sync or async, of ``str``) or an awaitable of one (async streams only).
FallbackSource = Callable[[Fallback], Any]


class Breaker:
    """Skips a primary source that keeps failing: shared across calls (and threads).

    After ``failures`` errors or timeouts of first sources within ``window_s``
    seconds, streams given this breaker skip their first source for
    ``cooldown_s`` seconds and start with their fallback (``reason: breaker``).
    Blocks and refusals never count: they say nothing about the provider's health.
    A first source that completes clears the count.

    :raises TypeError: for a count or duration that is not a number.
    :raises ValueError: for one below 1 (count) or not above 0 (durations).
    """

    __slots__ = ("_cooldown", "_failures", "_lock", "_open_until", "_times", "_window")

    def __init__(self, *, failures: int = 3, window_s: float = 60.0, cooldown_s: float = 30.0):
        if isinstance(failures, bool) or not isinstance(failures, int):
            raise TypeError(f"failures must be an int, got {type(failures).__name__}")
        for name, value in (("window_s", window_s), ("cooldown_s", cooldown_s)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not value > 0:
                raise ValueError(f"{name} must be above 0, got {value!r}")
        if failures < 1:
            raise ValueError(f"failures must be at least 1, got {failures}")
        self._failures = failures
        self._window = float(window_s)
        self._cooldown = float(cooldown_s)
        self._times: list[float] = []
        self._open_until = 0.0
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """Whether first sources are skipped now."""
        with self._lock:
            return time.monotonic() < self._open_until

    def allows(self) -> bool:
        """Whether a stream may try its first source now."""
        return not self.open

    def failed(self) -> None:
        """A first source failed or stalled: count it; open at the threshold."""
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._times if now - t < self._window]
            times.append(now)
            if len(times) >= self._failures:
                self._open_until = now + self._cooldown
                times = []
            self._times = times

    def succeeded(self) -> None:
        """A first source completed: the count starts again."""
        with self._lock:
            self._times = []

    def __repr__(self) -> str:
        state = "open" if self.open else "closed"
        limits = f"{self._failures} in {self._window:g} s, cooldown {self._cooldown:g} s"
        return f"<Breaker {state}: {limits}>"


def fallbacks_of(value: object, call: str) -> tuple[FallbackSource, ...]:
    """The fallbacks given to ``call``: one callable, or a sequence of them.

    :raises TypeError: naming what was passed.
    """
    if value is None:
        return ()
    items: Sequence[object] = (
        value if isinstance(value, Sequence) and not isinstance(value, str) else (value,)
    )
    for item in items:
        if not callable(item):
            raise TypeError(
                f"{call}(fallback=...) takes a callable or a sequence of callables, "
                f"got {type(item).__name__}"
            )
    return tuple(items)  # type: ignore[arg-type]


def breaker_of(value: object, call: str) -> Breaker | None:
    if value is None or isinstance(value, Breaker):
        return value
    raise TypeError(f"{call}(breaker=...) takes a Breaker, got {type(value).__name__}")


def uses_fallback(policy: Plan, fallbacks: object, breaker: object) -> bool:
    """Whether a stream of ``policy`` needs the fallback machinery."""
    spec = policy.spec
    return (
        fallbacks is not None
        or breaker is not None
        or spec.fallback is not None
        or spec.stream.first_chunk_timeout_ms is not None
    )


_ENDINGS = {
    Ending.COMPLETED: "completed",
    Ending.BLOCKED: "blocked",
    Ending.TRUNCATED: "truncated",
}


class Rule:
    """The rule of a stream with fallbacks, for both drivers: which source comes
    next, whether a trigger falls back, and the events that end the stream."""

    __slots__ = (
        "_attempts",
        "_closing",
        "_first_release",
        "_max",
        "_on",
        "_policy",
        "_released_chars",
        "_started",
        "attempt",
        "breaker",
        "first_chunk_s",
        "limited",
        "released",
        "result",
        "sources",
        "trigger",
    )

    def __init__(
        self, policy: Plan, fallbacks: tuple[FallbackSource, ...], breaker: Breaker | None
    ) -> None:
        spec = policy.spec.fallback or FallbackSpec.model_validate({})
        self._policy = policy
        self._on = frozenset(spec.on)
        #: The sources after the first: callables, then the policy's fixed text.
        self.sources: tuple[FallbackSource | str, ...] = (
            *fallbacks,
            *(() if spec.text is None else (spec.text,)),
        )
        total = 1 + len(self.sources)
        self._max = total if spec.max_attempts is None else min(spec.max_attempts, total)
        self._closing = spec.closing_message
        ms = policy.spec.stream.first_chunk_timeout_ms
        self.first_chunk_s = None if ms is None else ms / 1000
        stream = policy.spec.stream
        #: The sources' streams have time limits of their own (deadline, idle).
        self.limited = stream.deadline_ms is not None or stream.idle_timeout_ms is not None
        self.breaker = breaker
        self.attempt = 0  # the attempt running (0: the first source)
        self.trigger: Reason | None = None  # what started it
        self.released = False  # some text of the stream has been released
        self._attempts: list[Attempt] = []
        self._started = time.perf_counter()
        self._first_release: float | None = None
        self._released_chars = 0
        self.result: FallbackResult | None = None

    # -- sources ---------------------------------------------------------------------
    def skips_first(self) -> bool:
        """The breaker is open and there is a fallback to go to."""
        return self.breaker is not None and self._max > 1 and not self.breaker.allows()

    def falls_back(self, reason: Reason) -> bool:
        """Whether ``reason`` abandons the current source for the next one."""
        if self.released or self.attempt + 1 >= self._max:
            return False
        return reason == "breaker" or reason in self._on

    def next_source(self) -> FallbackSource | str:
        """Start the next attempt; its source (a callable, or the fixed text)."""
        self.attempt += 1
        self._started = time.perf_counter()
        self._first_release = None
        self._released_chars = 0
        return self.sources[self.attempt - 1]

    def why(self, reason: Reason, findings: Sequence[Finding], detail: str) -> Fallback:
        safe = tuple(dataclasses.replace(f, replacement=None) for f in findings)
        return Fallback(reason, self.attempt + 1, safe, detail)

    # -- what the current source did -----------------------------------------------------
    @property
    def fast(self) -> bool:
        """Text was released and no time limit can end the source's stream: its text
        can be handed out as it is."""
        return self.released and not self.limited

    def took(self, chars: int) -> None:
        """The current source released ``chars`` characters (at least one)."""
        self.released = True
        if self._first_release is None:
            self._first_release = time.perf_counter()
        self._released_chars += chars

    def abandoned(self, reason: Reason, detail: str) -> None:
        """The current source ends by ``reason`` (it is being closed)."""
        self._record("skipped" if reason == "breaker" else reason, detail)
        breaker = self.breaker
        if breaker is not None and self.attempt == 0 and reason in ("error", "timeout"):
            breaker.failed()
        self.trigger = reason

    def _record(self, ending: str, detail: str = "") -> None:
        first = self._first_release
        ms = None if first is None else round((first - self._started) * 1000, 3)
        self._attempts.append(
            Attempt(self.attempt, self.trigger, ending, self._released_chars, ms, detail)
        )

    # -- endings -------------------------------------------------------------------------
    def ended(self, result: Result | None, ending: Ending | None) -> Ended:
        """The current source's stream ended (completed, blocked or truncated)."""
        name = _ENDINGS.get(ending, "blocked") if ending is not None else "blocked"
        self._record(name)
        if self.attempt == 0 and name == "completed" and self.breaker is not None:
            self.breaker.succeeded()
        base = result if result is not None else self._unfinished(())
        self.result = FallbackResult(
            base.decision,
            base.text,
            base.findings,
            ending=name,
            source=self.attempt,
            attempts=tuple(self._attempts),
        )
        return Ended(self.result)

    def interrupted(
        self, reason: Reason, detail: str, findings: Sequence[Finding]
    ) -> list[Interrupted | Ended]:
        """The events that end a stream whose source failed and cannot fall back."""
        self.result = FallbackResult(
            Decision.BLOCK,
            self._closing,
            tuple(findings),
            ending=reason,
            source=self.attempt,
            attempts=tuple(self._attempts),
        )
        return [Interrupted(reason, self._closing, detail), Ended(self.result)]

    def cancelled(self) -> None:
        self._record("cancelled")

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt that ended so far."""
        return tuple(self._attempts)

    def closed(self, ending: str) -> tuple[Attempt, ...]:
        """The current source ended by ``ending`` (an adapter's stream): every attempt."""
        self._record(ending)
        if self.attempt == 0 and ending == "completed" and self.breaker is not None:
            self.breaker.succeeded()
        return tuple(self._attempts)

    def _unfinished(self, findings: tuple[Finding, ...]) -> Result:
        return Result(Decision.BLOCK, self._policy.block_message, findings)


def describe(exc: BaseException) -> str:
    """A short cause for an exception of a source: its type, never its message."""
    if isinstance(exc, Refusal):
        return "the model refused"
    return f"the source raised {type(exc).__name__}"


class Stalled(Exception):
    """A source gave no first chunk within ``stream.first_chunk_timeout_ms`` (its
    message, which quotes only the limit, is the attempt's detail)."""


def failure_reason(exc: BaseException) -> Reason:
    """The trigger an exception of a source stands for."""
    if isinstance(exc, Refusal):
        return "refusal"
    if isinstance(exc, Stalled):
        return "timeout"
    return "error"


def failure_detail(exc: BaseException) -> str:
    """What an attempt records of an exception of its source (never its message,
    unless it is a :class:`Stalled` of ours)."""
    return str(exc) if isinstance(exc, Stalled) else describe(exc)


def fixed(text: str) -> tuple[str, ...]:
    """The source of a fixed fallback text."""
    return (text,) if text else ()


def is_awaitable(value: object) -> bool:
    return isinstance(value, Awaitable)
