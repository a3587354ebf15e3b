"""Drivers of streams with fallbacks: each source runs in a stream of the policy of
its own (``drive.py``); :class:`~.fallback.Rule` says what a trigger does.

Both drivers share :class:`_Driver` and differ only where I/O differs: how a
fallback's source is obtained (awaited or not), how the first chunk is waited for
(``stream.first_chunk_timeout_ms``), and how a source is closed.

The first chunk of a source is pulled here, within its time limit, and handed to
the source's stream with the rest: an async source is interrupted at the limit; a
sync source that may block is pulled in a worker thread that the limit abandons
(the source is closed when that pull returns).  Sources already in memory (a
list, a tuple, the fixed text) cannot stall and are handed over as they are.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, cast

import anyio
import anyio.to_thread

from .._common.closing import AsyncClosing, Closing
from .._common.errors import StreamStateError, check_source
from .._common.model import Finding
from .._common.threads import source_limiter
from .decision import Ending
from .drive import _IN_MEMORY, Blocked, Ended, Released, Stream, SyncStream, _close_sync
from .fallback import (
    Breaker,
    Fallback,
    FallbackEvent,
    FallbackResult,
    FallbackSource,
    Reason,
    Rule,
    Stalled,
    failure_detail,
    failure_reason,
    fixed,
    is_awaitable,
)
from .plan import Plan
from .trace import TraceCallback

__all__ = ["FallbackStream", "SyncFallbackStream"]

#: The endings of a source's stream that its time limits (``stream.deadline_ms``,
#: ``stream.idle_timeout_ms``) caused: a ``timeout``, not a block.
_LIMITS = {
    Ending.TIMED_OUT: "the stream's deadline passed",
    Ending.IDLE: "no chunk within the idle timeout",
}
_NONE: Any = object()  # no first chunk held
_END: Any = object()  # the source is exhausted


def _in_memory(source: object) -> bool:
    return isinstance(source, Sequence) or isinstance(source, _IN_MEMORY)


class _Driver:
    """What both drivers share: the rule, the queue of events, taking an event of
    the current source's stream, and what a failed source leads to."""

    __slots__ = (
        "_closed_early",
        "_declared",
        "_finished",
        "_on_trace",
        "_policy",
        "_queue",
        "_rule",
        "_source",
        "_started",
        "_trace_id",
        "_why",
    )

    def __init__(
        self,
        policy: Plan,
        source: object,
        fallbacks: tuple[FallbackSource, ...],
        breaker: Breaker | None,
        trace_id: str | None,
        on_trace: TraceCallback | None,
    ) -> None:
        self._policy = policy
        self._source = source
        self._rule = Rule(policy, fallbacks, breaker)
        self._trace_id = trace_id
        self._on_trace = on_trace
        self._queue: deque[FallbackEvent] = deque()
        self._finished = False  # the last event is queued (or the stream was stopped)
        self._closed_early = False
        self._started = False  # the first source was opened (or skipped)
        self._why: Fallback | None = None  # what the next fallback is told
        self._declared: bool | None = None

    @property
    def result(self) -> FallbackResult | None:
        """The result once the stream has ended (``None`` while it runs, and for a
        stream that was closed or cancelled before it ended)."""
        return self._rule.result

    @property
    def attempt(self) -> int:
        """The number of the attempt running (0: the first source)."""
        return self._rule.attempt

    @staticmethod
    def _text(event: FallbackEvent) -> str | None:
        """The text an event shows, if any (iterating a stream yields these)."""
        if isinstance(event, Released):
            return event.text
        if isinstance(event, Ended):
            return None
        return event.message or None

    def _take(self, event: object, ending: Any) -> bool:
        """An event of the current source's stream; True when that stream is done with
        (ended, or abandoned for the next source)."""
        rule = self._rule
        if isinstance(event, Released):
            rule.took(len(event.text))
            self._queue.append(event)
            return False
        if isinstance(event, Blocked):
            if ending in _LIMITS:  # the stream's own deadline or idle limit: a timeout
                self._failed("timeout", _LIMITS[ending], event.findings)
                return True
            if rule.falls_back("block"):
                self._failed("block", "the policy blocked the text", event.findings)
                return True
            self._queue.append(event)
            return False
        assert isinstance(event, Ended)
        self._queue.append(rule.ended(event.result, ending))
        self._finished = True
        return True

    def _failed(self, reason: Reason, detail: str, findings: Sequence[Finding]) -> None:
        """The current source ended by ``reason`` (it is closed): the next one, or the end."""
        rule = self._rule
        fallback = rule.falls_back(reason)
        rule.abandoned(reason, detail)
        if fallback:
            self._why = rule.why(reason, findings, detail)
        else:
            self._queue.extend(rule.interrupted(reason, detail, findings))
            self._finished = True

    def _next_source(self) -> object:
        """The source of the next attempt: the fixed text, or a fallback's answer."""
        factory = self._rule.next_source()
        if isinstance(factory, str):
            return fixed(factory)
        assert self._why is not None
        return factory(self._why)

    def _stopped(self) -> None:
        if not self._finished:
            self._rule.cancelled()
            self._finished = True


class _Puller:
    """Pulls the first chunk of a sync source in a worker thread that a time limit
    may abandon: the source is then closed when the pull returns."""

    __slots__ = ("_abandoned", "_done", "_it", "_lock")

    def __init__(self, it: Iterator[str]) -> None:
        self._it = it
        self._lock = threading.Lock()
        self._abandoned = False
        self._done = False

    def pull(self) -> tuple[Any, BaseException | None]:
        try:
            value, error = next(self._it, _END), None
        except BaseException as exc:
            value, error = None, exc
        with self._lock:
            self._done = True
            abandoned = self._abandoned
        if abandoned:
            _close_sync(self._it)
        return value, error

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            done = self._done
        if done:
            _close_sync(self._it)


class _SyncRest:
    """A sync source whose first chunk was pulled already."""

    __slots__ = ("_first", "_it")

    def __init__(self, first: Any, it: Iterator[str]) -> None:
        self._first = first
        self._it = it

    def __iter__(self) -> _SyncRest:
        return self

    def __next__(self) -> str:
        first = self._first
        if first is not _NONE:
            self._first = _NONE
            if first is _END:
                raise StopIteration
            return cast(str, first)
        return next(self._it)

    def close(self) -> None:
        _close_sync(self._it)


class _AsyncRest:
    """An async source whose first chunk was pulled already."""

    __slots__ = ("_first", "_it")

    def __init__(self, first: Any, it: AsyncIterator[str]) -> None:
        self._first = first
        self._it = it

    def __aiter__(self) -> _AsyncRest:
        return self

    async def __anext__(self) -> str:
        first = self._first
        if first is not _NONE:
            self._first = _NONE
            if first is _END:
                raise StopAsyncIteration
            return cast(str, first)
        return await self._it.__anext__()

    async def aclose(self) -> None:
        await _aclose(self._it)


async def _aclose(it: object) -> None:
    close = getattr(it, "aclose", None)
    with anyio.CancelScope(shield=True):
        if close is not None:
            await close()
        else:
            _close_sync(it)


def _stalled(seconds: float) -> Stalled:
    return Stalled(f"no first chunk within {round(seconds * 1000):,} ms")


class FallbackStream(_Driver, AsyncClosing):
    """Released text of a source with fallbacks, as an async iterator.

    Made by ``policy.stream(source, fallback=...)``.  Iterating gives the text to
    show (released text, then a block or closing message if any);
    :meth:`events` gives typed events.  ``async with`` or :meth:`aclose` stops it
    early and closes the source running.
    """

    __slots__ = ("_current", "_events")

    def __init__(
        self,
        policy: Plan,
        source: AsyncIterable[str] | Iterable[str],
        fallbacks: tuple[FallbackSource, ...] = (),
        *,
        breaker: Breaker | None = None,
        trace_id: str | None = None,
        on_trace: TraceCallback | None = None,
        blocking_source: bool | None = None,
    ) -> None:
        super().__init__(policy, source, fallbacks, breaker, trace_id, on_trace)
        self._declared = blocking_source
        self._current: Stream | None = None
        self._events: AsyncIterator[Any] | None = None

    def __aiter__(self) -> FallbackStream:
        return self

    async def __anext__(self) -> str:
        current = self._current
        if current is not None and self._rule.fast and not self._queue:
            # Past the first release nothing falls back: the source's stream's text as
            # it is (the block message included), the end and failures taken as events.
            try:
                piece = await current.__anext__()
                self._rule.took(len(piece))
                return piece
            except StopAsyncIteration:
                self._current = None
                self._take(Ended(current.result), current.run.ending)
            except anyio.get_cancelled_exc_class():
                self._current = None
                self._stopped()
                await current.aclose()
                raise
            except Exception as exc:
                self._current = None
                await current.aclose()
                self._failed(
                    failure_reason(exc), failure_detail(exc), current.run.findings_so_far()
                )
        while True:
            text = self._text(await self._next_event())
            if text:
                return text

    def events(self) -> _AsyncEvents:
        """The stream as typed events: :class:`Released` text, then :class:`Blocked` or
        :class:`Interrupted` if it ended so, then :class:`Ended` with the result."""
        return _AsyncEvents(self)

    async def _next_event(self) -> FallbackEvent:
        while not self._queue:
            if self._closed_early:
                raise StreamStateError("the stream was closed before it ended")
            if self._finished:
                raise StopAsyncIteration
            await self._step()
        return self._queue.popleft()

    async def _step(self) -> None:
        current = self._current
        if current is None:
            await self._open()
            return
        assert self._events is not None
        try:
            event = await self._events.__anext__()
        except anyio.get_cancelled_exc_class():
            self._current = None
            self._stopped()
            await current.aclose()
            raise
        except Exception as exc:
            self._current = None
            findings = current.run.findings_so_far()
            await current.aclose()
            self._failed(failure_reason(exc), failure_detail(exc), findings)
            return
        if self._take(event, current.run.ending):
            self._current = None

    async def _open(self) -> None:
        """Open the next source (the first, or a fallback) and its stream."""
        rule = self._rule
        first = not self._started
        try:
            if first:
                self._started = True
                source: Any = self._source
                if rule.skips_first():
                    await _aclose(source)
                    self._failed("breaker", "the breaker is open", ())
                    return
            else:
                source = self._next_source()
                if is_awaitable(source):
                    source = await source
                check_source(source, "a fallback's answer: stream")
            source = await self._first_chunk(source)
        except anyio.get_cancelled_exc_class():
            self._stopped()
            raise
        except Exception as exc:
            self._failed(failure_reason(exc), failure_detail(exc), ())
            return
        self._current = Stream(
            self._policy,
            source,
            trace_id=self._trace_id,
            on_trace=self._on_trace,
            blocking_source=self._declared if first else None,
        )
        self._events = cast(AsyncIterator[Any], self._current.events())

    async def _first_chunk(self, source: Any) -> Any:
        """``source`` with its first chunk pulled within the time limit."""
        limit = self._rule.first_chunk_s
        if limit is None or (not isinstance(source, AsyncIterable) and _in_memory(source)):
            return source
        if isinstance(source, AsyncIterable):
            ait = aiter(source)
            try:
                with anyio.move_on_after(limit) as scope:
                    try:
                        chunk = await ait.__anext__()
                    except StopAsyncIteration:
                        chunk = _END
            except BaseException:
                await _aclose(ait)
                raise
            if scope.cancelled_caught:
                await _aclose(ait)
                raise _stalled(limit)
            return _AsyncRest(chunk, ait)
        it = iter(source)
        puller = _Puller(it)
        with anyio.move_on_after(limit) as scope:
            chunk, error = await anyio.to_thread.run_sync(
                puller.pull, abandon_on_cancel=True, limiter=source_limiter()
            )
        if scope.cancelled_caught:
            puller.abandon()
            raise _stalled(limit)
        if error is not None:
            _close_sync(it)
            raise error
        return _SyncRest(chunk, it)

    async def aclose(self) -> None:
        """Stop: close the source running; the result is ``None`` unless it had ended."""
        if not self._finished:
            self._closed_early = True
        self._stopped()
        current, self._current = self._current, None
        if current is not None:
            await current.aclose()


class SyncFallbackStream(_Driver, Closing):
    """The sync twin of :class:`FallbackStream` (``policy.stream_sync(source, fallback=...)``).

    A fallback must return a sync iterable of ``str`` here.
    """

    __slots__ = ("_current", "_events")

    def __init__(
        self,
        policy: Plan,
        source: Iterable[str],
        fallbacks: tuple[FallbackSource, ...] = (),
        *,
        breaker: Breaker | None = None,
        trace_id: str | None = None,
        on_trace: TraceCallback | None = None,
    ) -> None:
        super().__init__(policy, source, fallbacks, breaker, trace_id, on_trace)
        self._current: SyncStream | None = None
        self._events: Iterator[Any] | None = None

    def __iter__(self) -> SyncFallbackStream:
        return self

    def __next__(self) -> str:
        current = self._current
        if current is not None and self._rule.fast and not self._queue:
            # (As in FallbackStream.__anext__: past the first release, the text as it is.)
            try:
                piece = next(current)
                self._rule.took(len(piece))
                return piece
            except StopIteration:
                self._current = None
                self._take(Ended(current.result), current.run.ending)
            except Exception as exc:
                self._current = None
                current.close()
                self._failed(
                    failure_reason(exc), failure_detail(exc), current.run.findings_so_far()
                )
            except BaseException:
                self._current = None
                self._stopped()
                current.close()
                raise
        while True:
            text = self._text(self._next_event())
            if text:
                return text

    def events(self) -> _SyncEvents:
        """The stream as typed events; see :meth:`FallbackStream.events`."""
        return _SyncEvents(self)

    def _next_event(self) -> FallbackEvent:
        while not self._queue:
            if self._closed_early:
                raise StreamStateError("the stream was closed before it ended")
            if self._finished:
                raise StopIteration
            self._step()
        return self._queue.popleft()

    def _step(self) -> None:
        current = self._current
        if current is None:
            self._open()
            return
        assert self._events is not None
        try:
            event = next(self._events)
        except Exception as exc:
            self._current = None
            findings = current.run.findings_so_far()
            current.close()
            self._failed(failure_reason(exc), failure_detail(exc), findings)
            return
        except BaseException:
            self._current = None
            self._stopped()
            current.close()
            raise
        if self._take(event, current.run.ending):
            self._current = None

    def _open(self) -> None:
        rule = self._rule
        try:
            if not self._started:
                self._started = True
                source: Any = self._source
                if rule.skips_first():
                    _close_sync(source)
                    self._failed("breaker", "the breaker is open", ())
                    return
            else:
                source = self._next_source()
                if is_awaitable(source) or isinstance(source, AsyncIterable):
                    _close_sync(source)  # (a coroutine: closed, so never "not awaited")
                    raise TypeError(
                        "a fallback of a sync stream must return a sync iterable of str, "
                        f"got {type(source).__name__}"
                    )
                check_source(source, "a fallback's answer: stream_sync")
            source = self._first_chunk(source)
        except Exception as exc:
            self._failed(failure_reason(exc), failure_detail(exc), ())
            return
        self._current = SyncStream(
            self._policy, source, trace_id=self._trace_id, on_trace=self._on_trace
        )
        self._events = cast(Iterator[Any], self._current.events())

    def _first_chunk(self, source: Any) -> Any:
        limit = self._rule.first_chunk_s
        if limit is None or _in_memory(source):
            return source
        it = iter(source)
        puller = _Puller(it)
        box: list[tuple[Any, BaseException | None]] = []
        done = threading.Event()

        def pull() -> None:
            box.append(puller.pull())
            done.set()

        threading.Thread(target=pull, name="guardrails-engine first chunk", daemon=True).start()
        if not done.wait(limit):
            puller.abandon()
            raise _stalled(limit)
        chunk, error = box[0]
        if error is not None:
            _close_sync(it)
            raise error
        return _SyncRest(chunk, it)

    def close(self) -> None:
        """Stop: close the source running; the result is ``None`` unless it had ended."""
        if not self._finished:
            self._closed_early = True
        self._stopped()
        current, self._current = self._current, None
        if current is not None:
            current.close()


class _AsyncEvents:
    __slots__ = ("_stream",)

    def __init__(self, stream: FallbackStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _AsyncEvents:
        return self

    async def __anext__(self) -> FallbackEvent:
        return await self._stream._next_event()

    async def aclose(self) -> None:
        await self._stream.aclose()


class _SyncEvents:
    __slots__ = ("_stream",)

    def __init__(self, stream: SyncFallbackStream) -> None:
        self._stream = stream

    def __iter__(self) -> _SyncEvents:
        return self

    def __next__(self) -> FallbackEvent:
        return self._stream._next_event()

    def close(self) -> None:
        self._stream.close()
