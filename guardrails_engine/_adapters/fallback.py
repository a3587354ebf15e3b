"""Fallbacks of a guarded SDK stream: the rule of ``policy.stream(..., fallback=)``
(:class:`~guardrails_engine._runtime.fallback.Rule`) over guarded streams of one API.

Each source (the primary, then each fallback's answer) is a guarded stream of its own
(``_stream.py``), over the same API and in the SDK's types.  Its upstream is read
through :class:`_Upstream`, which bounds the wait for the first token
(``stream.first_chunk_timeout_ms``) and, while a refusal may still fall back, turns the
provider's refusal into :class:`~guardrails_engine.Refusal`: the guarded stream then
closes the upstream (its HTTP response) and raises, and the next source starts.

Events that show nothing yet (a role chunk, ``message_start``) are held until the first
event that shows text: a source abandoned before that has shown nothing, so its events
are dropped and the next source's replace them.  After that, a block ends the stream as
the guarded stream does (the block message, the native ending); a failure ends it with the
policy's ``fallback.closing_message`` as the provider's text and its native ending (a
Responses stream: ``response.failed``), else by raising (the SDK's error; a time limit:
``TimeoutError``); ``interrupted`` and ``attempts`` say what happened.  One call
recorder records the whole call: an attempt per source, finished by this stream, not by
its sources.

A provider gives an :class:`Api`: how to guard a source of its API, which upstream
events carry text or a refusal, which output events show something, and how to write
plain text into its events (a fallback may return any iterable of ``str``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, NoReturn, Protocol

import anyio

from .. import Interrupted, Policy, Refusal, StreamStateError
from .._common.closing import AsyncClosing, Closing
from .._observe.calls import CallRecorder, CallTrace
from .._runtime.fallback import (
    Attempt,
    Breaker,
    FallbackSource,
    Reason,
    Rule,
    Stalled,
    failure_detail,
    failure_reason,
)
from ._reader import LATE, TimedReader
from ._trace import read_request, request_of

__all__ = ["Api", "FallbackGuardedStream", "SyncFallbackGuardedStream"]


class Api(Protocol):
    """What the fallback needs of one provider API."""

    provider: str

    def guarded(
        self,
        source: Any,
        wrap: Callable[[Any, Any], tuple[Any, Any]],
        *,
        sync: bool,
        rec: CallRecorder | None = None,
    ) -> Any:
        """A guarded stream of ``source`` (an SDK stream, or its events), whose opened
        upstream (its iterator and how to close it) is passed through ``wrap``; its runs
        feed ``rec`` (the call's recorder), which it does not finish."""

    def token(self, event: Any) -> bool:
        """An upstream event that carries text (the first token has come)."""

    def refusal(self, event: Any) -> bool:
        """An upstream event that says the model refused."""

    def shows(self, event: Any) -> bool:
        """An output event that shows something to the reader."""

    def is_stream(self, value: Any) -> bool:
        """An SDK stream of this API (else a fallback's answer is looked at: text or events)."""

    def opening(self, model: str | None) -> list[Any]:
        """The events that open a reply written from plain text."""

    def piece(self, text: str) -> Any:
        """One piece of plain text as an event."""

    def closing(self) -> list[Any]:
        """The events that end a reply written from plain text."""

    def model(self, event: Any) -> str | None:
        """The model an upstream event names, if any."""

    def note(self, event: Any) -> None:
        """An output event went out once something was shown (what a closing ends)."""

    def interrupt(self, message: str) -> list[Any] | None:
        """The events that end a reply cut off after text was shown: ``message`` as the
        provider's text, then its native ending (``None``: this API raises instead)."""


class _State:
    """Shared by a fallback stream and the upstream wrapper of its current source."""

    __slots__ = ("deadline", "idle", "limit", "model", "refuse")

    def __init__(self, policy: Policy, limit: float | None) -> None:
        stream = policy.spec.stream
        self.limit = limit  # first_chunk_timeout_ms (s)
        self.deadline = None if stream.deadline_ms is None else stream.deadline_ms / 1000
        self.idle = None if stream.idle_timeout_ms is None else stream.idle_timeout_ms / 1000
        self.refuse = False  # a refusal falls back now
        self.model: str | None = None  # the model the primary named


class _Upstream:
    """An upstream iterator read within the call's time limits (the first token, the
    deadline, the idle limit), with refusals turned into :class:`Refusal`.

    A sync upstream is read by a :class:`~._reader.TimedReader` when a limit applies:
    a read the limit abandons goes on in its worker, and the upstream is closed when
    it returns (a sync SDK stream is not closed under a read in progress)."""

    __slots__ = ("_api", "_at", "_end", "_it", "_reader", "_shut", "_state")

    def __init__(self, it: Any, shut: Any, api: Api, state: _State, at: float | None) -> None:
        self._it = it
        self._shut = shut
        self._api = api
        self._state = state
        self._at = at  # when the first token is due (None: it came, or no limit)
        # When the source's time is up (stream.deadline_ms).
        self._end = None if state.deadline is None else time.perf_counter() + state.deadline
        self._reader: TimedReader | None = None  # (sync, made at the first bounded read)

    def close(self) -> Any:
        """Close the upstream: now, or (sync) when a read the limit abandoned returns."""
        if self._reader is not None:
            self._reader.close()
            return None
        return self._shut()

    def _wait(self) -> tuple[float | None, str]:
        """How long the next read may take (None: no limit), and what passing it means."""
        now = time.perf_counter()
        state = self._state
        limits: list[tuple[float, str]] = []
        if self._at is not None:
            limits.append((self._at, _stalled(state.limit)))
        if self._end is not None:
            limits.append((self._end, f"deadline of {round((state.deadline or 0) * 1000):,} ms"))
        if state.idle is not None:
            # (from now, as a plain guarded stream's: the time the checks took between
            # two reads is not the source's)
            idle = f"no event within {round(state.idle * 1000):,} ms"
            limits.append((now + state.idle, idle))
        if not limits:
            return None, ""
        at, what = min(limits)
        return max(0.0, at - now), what

    def _seen(self, event: Any) -> Any:
        api, state = self._api, self._state
        if self._at is not None and api.token(event):
            self._at = None
        if state.model is None:
            state.model = api.model(event)
        if state.refuse and api.refusal(event):
            raise Refusal("the model refused")
        return event

    def __aiter__(self) -> _Upstream:
        return self

    async def __anext__(self) -> Any:
        wait, what = self._wait()
        if wait is None:
            return self._seen(await self._it.__anext__())
        if wait <= 0.0:  # (an event already buffered would come without a wait)
            raise Stalled(what)
        with anyio.move_on_after(wait) as scope:
            event = await self._it.__anext__()
        if scope.cancelled_caught:
            raise Stalled(what)
        return self._seen(event)

    def __iter__(self) -> _Upstream:
        return self

    def __next__(self) -> Any:
        wait, what = self._wait()
        reader = self._reader
        if wait is None and (reader is None or reader.idle):
            return self._seen(next(self._it))  # no limit (any more): read inline
        if reader is None:
            reader = self._reader = TimedReader(self._it, self._shut)
        event = reader.take(wait) if wait is None or wait > 0.0 else LATE
        if event is LATE:
            raise Stalled(what)
        return self._seen(event)


def _stalled(limit: float | None) -> str:
    return f"no first token within {round((limit or 0) * 1000):,} ms"


class _Base:
    __slots__ = (
        "_api",
        "_current",
        "_early",
        "_ended",
        "_error",
        "_held",
        "_out",
        "_policy",
        "_primary",
        "_rec",
        "_rule",
        "_started",
        "_state",
        "_why",
        "attempts",
        "interrupted",
    )

    def __init__(
        self,
        policy: Policy,
        primary: Any,
        api: Api,
        fallbacks: tuple[FallbackSource, ...],
        breaker: Breaker | None,
        rec: CallRecorder | None = None,
    ) -> None:
        self._policy = policy
        self._rec = rec  # the call's recorder: one record, an attempt per source
        self._primary = primary
        self._api = api
        self._rule = Rule(policy, fallbacks, breaker)
        self._state = _State(policy, self._rule.first_chunk_s)
        self._current: Any = None
        self._out: deque[Any] = deque()
        self._held: list[Any] = []  # events that show nothing yet
        self._started = False
        self._ended = False
        self._early = False
        self._why: Any = None
        self._error: BaseException | None = None  # raised once the events are out
        #: Set when the stream ended by a failure (the provider's way: an exception).
        self.interrupted: Interrupted | None = None
        #: Every source tried, once the stream ended.
        self.attempts: tuple[Attempt, ...] = ()

    @property
    def trace_id(self) -> str | None:
        """The id of the call's trace (``None`` if the call is not traced)."""
        return None if self._rec is None else self._rec.trace_id

    @property
    def record(self) -> CallTrace | None:
        """The call's trace (every source an attempt) once the stream has ended."""
        return None if self._rec is None else self._rec.record

    def _source(self, source: Any) -> None:
        """A source is known: what its request says (a fallback's model is its attempt's)."""
        rec = self._rec
        body = request_of(source) if rec is not None else None
        if rec is None or body is None:
            return
        read_request(rec, body)
        model = body.get("model")
        if self._why is not None and isinstance(model, str):
            rec.request(model=model, replace=True)

    def _trace_end(self, ending: str | None = None, error: BaseException | None = None) -> None:
        if self._rec is not None:
            self._rec.finish(ending=ending, error=error)

    @property
    def blocked(self) -> Any:
        """The block of the source shown, if it was blocked."""
        current = self._current
        return None if current is None else current.blocked

    def _wrap(self, it: Any, shut: Any) -> tuple[_Upstream, Any]:
        limit = self._state.limit
        at = None if limit is None else time.perf_counter() + limit
        upstream = _Upstream(it, shut, self._api, self._state, at)
        return upstream, upstream.close

    def _arm(self) -> None:
        self._state.refuse = self._rule.falls_back("refusal")

    def _take(self, event: Any) -> bool:
        """An output event of the current source; True when it falls back on a block."""
        rule = self._rule
        if rule.released:
            self._api.note(event)
            self._out.append(event)
            return False
        blocked = self._current.blocked
        if blocked is not None and rule.falls_back("block"):
            return True
        if blocked is not None or self._api.shows(event):
            rule.took(1)
            self._state.refuse = False
            for held in self._held:
                self._api.note(held)
            self._out.extend(self._held)
            self._held.clear()
            self._api.note(event)
            self._out.append(event)
        else:
            self._held.append(event)
        return False

    def _failed(
        self, reason: Reason, detail: str, findings: Any, exc: BaseException | None
    ) -> None:
        rule = self._rule
        fallback = rule.falls_back(reason)
        rule.abandoned(reason, detail)
        self._current = None
        if fallback:
            self._held.clear()
            self._why = rule.why(reason, findings, detail)
            if self._rec is not None:
                timed_out = isinstance(exc, Stalled)
                error = TimeoutError(detail) if timed_out else exc
                self._rec.attempt(provider=self._api.provider, error=error)
            return
        self._ended = True
        self.attempts = rule.attempts
        self._out.extend(self._held)
        self._held.clear()
        # A failure is raised (the SDK's error as it came, a time limit as TimeoutError),
        timed_out = exc is None or isinstance(exc, Stalled)
        self._error = TimeoutError(detail) if timed_out else exc
        self._trace_end(error=self._error)
        # unless text was shown and the policy sets a closing message: then the stream
        # ends the provider's way, that message as its text (``interrupted`` says why).
        spec = self._policy.spec.fallback
        message = (None if spec is None else spec.closing_message) or ""
        closing = self._api.interrupt(message) if message and rule.released else None
        if closing is not None:
            self._out.extend(closing)
            self._error = None
        self.interrupted = Interrupted(reason, message if closing else "", detail)

    def _finished(self) -> None:
        self._out.extend(self._held)
        self._held.clear()
        self._ended = True
        blocked = self._current is not None and self._current.blocked is not None
        self.attempts = self._rule.closed("blocked" if blocked else "completed")
        self._trace_end()

    def _over(self, stop: type[Exception]) -> NoReturn:
        """Iteration is over: the error that ended the last source, ``stop``, or
        :class:`StreamStateError` if the stream was stopped before it ended."""
        if self._early:
            raise StreamStateError("the guarded stream was closed before it ended")
        error, self._error = self._error, None
        if error is not None:
            raise error
        raise stop


class FallbackGuardedStream(_Base, AsyncClosing):
    """A guarded async SDK stream with fallbacks; iterate it as the SDK stream."""

    __slots__ = ()

    def __aiter__(self) -> FallbackGuardedStream:
        return self

    async def __anext__(self) -> Any:
        out = self._out
        while not out:
            if self._ended:
                self._over(StopAsyncIteration)
            current = self._current
            if current is None:
                await self._open()
                continue
            try:
                event = await current.__anext__()
            except StopAsyncIteration:
                self._finished()
                continue
            except anyio.get_cancelled_exc_class():
                await current.aclose()
                self._ended = self._early = True
                self._trace_end("cancelled")
                raise
            except Exception as exc:
                await current.aclose()
                self._failed(failure_reason(exc), failure_detail(exc), (), exc)
                continue
            if self._take(event):
                findings = current.blocked.findings
                await current.aclose()
                self._failed("block", "the policy blocked the text", findings, None)
        return out.popleft()

    async def _open(self) -> None:
        rule = self._rule
        try:
            if not self._started:
                self._started = True
                source = self._primary
                if rule.skips_first():
                    close = getattr(source, "close", None)
                    if close is not None:
                        result = close()
                        if isinstance(result, Awaitable):
                            await result
                    self._failed("breaker", "the breaker is open", (), None)
                    return
            else:
                factory = rule.next_source()
                source = [factory] if isinstance(factory, str) else factory(self._why)
            if isinstance(source, Awaitable) and not isinstance(source, AsyncIterable):
                source = await self._timed(source)
            self._source(source)
            source = await self._events(source)
        except anyio.get_cancelled_exc_class():
            self._ended = self._early = True
            self._trace_end("cancelled")
            raise
        except Exception as exc:
            self._failed(failure_reason(exc), failure_detail(exc), (), exc)
            return
        self._arm()
        self._current = self._api.guarded(source, self._wrap, sync=False, rec=self._rec)

    async def _events(self, source: Any) -> Any:
        """A source of this API's events: an SDK stream as it is, text written as events."""
        api = self._api
        if api.is_stream(source):
            return source
        if isinstance(source, str):
            source = (source,)
        if isinstance(source, AsyncIterable):
            it = aiter(source)
            try:
                first = await it.__anext__()
            except StopAsyncIteration:
                return _aiter(api.opening(self._state.model) + api.closing())
            if isinstance(first, str):
                return _written_async(api, self._state.model, first, it)
            return _chained_async(first, it)
        if isinstance(source, Iterable):
            return _aiter(list(_events_sync(api, self._state.model, source)))
        raise TypeError(f"a fallback returned {type(source).__name__}, not a stream")

    async def _timed(self, awaitable: Awaitable[Any]) -> Any:
        """Await a coroutine of a stream (the request) within the first-token limit."""
        limit = self._state.limit
        if limit is None:
            return await awaitable
        with anyio.move_on_after(limit) as scope:
            return await awaitable
        assert scope.cancelled_caught
        raise Stalled(_stalled(limit))

    async def aclose(self) -> None:
        """Stop: close the upstream running (idempotent)."""
        early = not self._ended
        if early:
            self._ended = self._early = True
        if self._current is not None:
            await self._current.aclose()
        if early:
            self._trace_end("closed")


async def _aiter(events: Iterable[Any]) -> AsyncIterator[Any]:
    for event in events:
        yield event


async def _chained_async(first: Any, it: AsyncIterator[Any]) -> AsyncIterator[Any]:
    try:
        yield first
        async for event in it:
            yield event
    finally:
        close = getattr(it, "aclose", None)
        if close is not None:
            await close()


async def _written_async(
    api: Api, model: str | None, first: str, it: AsyncIterator[Any]
) -> AsyncIterator[Any]:
    try:
        for event in api.opening(model):
            yield event
        yield api.piece(first)
        async for text in it:
            if not isinstance(text, str):
                raise TypeError(f"a fallback's text source yielded {type(text).__name__}")
            yield api.piece(text)
        for event in api.closing():
            yield event
    finally:
        close = getattr(it, "aclose", None)
        if close is not None:
            await close()


def _events_sync(api: Api, model: str | None, source: Iterable[Any]) -> Iterator[Any]:
    """A sync source: events as they are, or text written as events."""
    if api.is_stream(source):
        yield from source
        return
    it = iter(source)
    first = next(it, _END)
    if first is _END:
        yield from api.opening(model) + api.closing()
        return
    if not isinstance(first, str):
        yield first
        yield from it
        return
    yield from api.opening(model)
    yield api.piece(first)
    for text in it:
        if not isinstance(text, str):
            raise TypeError(f"a fallback's text source yielded {type(text).__name__}")
        yield api.piece(text)
    yield from api.closing()


_END: Any = object()


class SyncFallbackGuardedStream(_Base, Closing):
    """The sync twin of :class:`FallbackGuardedStream`."""

    __slots__ = ()

    def __iter__(self) -> SyncFallbackGuardedStream:
        return self

    def __next__(self) -> Any:
        out = self._out
        while not out:
            if self._ended:
                self._over(StopIteration)
            current = self._current
            if current is None:
                self._open()
                continue
            try:
                event = next(current)
            except StopIteration:
                self._finished()
                continue
            except Exception as exc:
                current.close()
                self._failed(failure_reason(exc), failure_detail(exc), (), exc)
                continue
            if self._take(event):
                findings = current.blocked.findings
                current.close()
                self._failed("block", "the policy blocked the text", findings, None)
        return out.popleft()

    def _open(self) -> None:
        rule = self._rule
        try:
            if not self._started:
                self._started = True
                source = self._primary
                if rule.skips_first():
                    close = getattr(source, "close", None)
                    if close is not None:
                        close()
                    self._failed("breaker", "the breaker is open", (), None)
                    return
                if callable(source) and not isinstance(source, Iterable):
                    source = source()  # a request made lazily (it may fail: a 500)
            else:
                factory = rule.next_source()
                source = [factory] if isinstance(factory, str) else factory(self._why)
            if isinstance(source, str):
                source = (source,)
            if not isinstance(source, Iterable) or isinstance(source, AsyncIterable):
                raise TypeError(f"a fallback returned {type(source).__name__}, not a stream")
            self._source(source)
            if not self._api.is_stream(source):
                source = _events_sync(self._api, self._state.model, source)
        except Exception as exc:
            self._failed(failure_reason(exc), failure_detail(exc), (), exc)
            return
        self._arm()
        self._current = self._api.guarded(source, self._wrap, sync=True, rec=self._rec)

    def close(self) -> None:
        early = not self._ended
        if early:
            self._ended = self._early = True
        if self._current is not None:
            self._current.close()
        if early:
            self._trace_end("closed")
