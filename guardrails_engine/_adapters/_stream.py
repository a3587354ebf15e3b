"""The one guarded stream of every provider, over a small per-provider protocol.

A provider module only translates events.  Its :class:`Translator` is sans-IO: for an
upstream event it gives the events to hand out, and when a run of the policy is to take
text it awaits the run (``released = await guard.push(delta)``; ``await
guard.push(None)`` for the end of the text).  The translator decides what an event
contributes (text deltas per run, tool-call argument deltas, fields passed through)
and how the provider ends a stream natively: on a block it sets
:attr:`Translator.blocked` and returns the events of the native ending (the block
message, then the provider's own "stopped by a filter" end).  A run of text that ends
early without a block (a length check's truncation) ends the reply the provider's way
for a length cut, and the translator sets :attr:`Translator.cut` once nothing more can
be shown: the stream stops reading there.

:class:`GuardedStream` (async) and :class:`SyncGuardedStream` own everything else,
the same for every provider and differing only in I/O:

- the runs are the call's (:class:`~._guard.Runs`): async push runs for the async
  stream (awaited on its event loop), sync push runs for the sync stream, whose
  ``push`` is done when it returns, so a step of the sync stream never waits: it is
  driven to its end in one go by :func:`drive_sync` (no event loop);
- the upstream is read in one place (``__anext__``/``__next__``), opened lazily by
  the provider's opener, and closed by one helper (:func:`aclose_upstream` /
  :func:`close_upstream`, or the opener's own for a manager it entered): at a block
  (before the ending goes out), at its end, on an early stop (``aclose()``/``close()``,
  ``async with``/``with``), when the consumer is cancelled or anything raises, and
  when the guarded stream is dropped unclosed;
- the policy's ``stream.deadline_ms`` and ``stream.idle_timeout_ms`` are the call's:
  one :class:`~.._runtime.limits.Limits` clock shared by its runs, each read bounded by
  it (async: a cancel scope; sync: a :class:`~._reader.TimedReader`); past it, the open
  runs end blocked and the translator ends the reply (:meth:`Translator.expired`), or,
  before any event, iterating raises ``TimeoutError``;
- after an early stop, iterating raises :class:`~guardrails_engine.StreamStateError`
  (as a ``policy.stream`` does: a reader must not take a cut reply for a whole one);
  after a block or the end, iteration just ends.

Seams for what lands next: ``__anext__``/``__next__`` is where every upstream event
of a call is seen (its arrival time), the translator sees the reply's fields (model,
id, usage, finish reason), and :class:`~._guard.Runs` makes (and closes) every run of
the call, so each run's decision is seen there.  The upstream is opened and closed only
here, through the opener: an upstream that has released nothing can be closed and
replaced by another source of the same API (a new translator over new runs).
"""

from __future__ import annotations

from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
)
from functools import partial
from typing import Any, ClassVar, Generic, NoReturn, TypeAlias, TypeVar

import anyio

from .. import Blocked, StreamStateError
from .._common.closing import AsyncClosing, Closing, event_loop, schedule_close
from .._common.syncrun import run_inline
from .._observe.calls import CallTrace
from .._runtime.limits import Limits
from ._guard import Guard, Runs, ToolGuard
from ._reader import LATE, TimedReader
from ._trace import ended

__all__ = [
    "AsyncOpener",
    "GuardedStream",
    "Step",
    "SyncGuardedStream",
    "SyncOpener",
    "Translator",
    "aclose_upstream",
    "close_upstream",
    "drive_sync",
    "tool_text",
    "whole",
]

E = TypeVar("E")
T = TypeVar("T")
#: A translator's step: a coroutine whose only waits are its runs' ``push``.
Step: TypeAlias = Coroutine[Any, Any, T]
#: Opens a source: the iterator of its events, and how to close it.
AsyncOpener: TypeAlias = Callable[
    [Any], Awaitable[tuple[AsyncIterator[Any], Callable[[], Awaitable[None]]]]
]
SyncOpener: TypeAlias = Callable[[Any], tuple[Iterator[Any], Callable[[], None]]]


class Translator(Generic[E]):
    """A provider's events in, guarded events out (sans-IO; see the module doc).

    Every run it pushes text into is made by the call's :class:`~._guard.Runs`.
    """

    __slots__ = ("blocked", "cut", "runs")

    def __init__(self, runs: Runs) -> None:
        self.runs = runs
        #: Set once a run of the reply is blocked: the events just returned end it natively.
        self.blocked: Blocked | None = None
        #: Set once a truncation (a length check) has ended the reply: the events just
        #: returned end it natively, and nothing the upstream sends next could be shown.
        self.cut = False

    def first(self, event: Any) -> Translator[E]:
        """The translator for a stream that starts with ``event`` (by default, this one)."""
        return self

    async def process(self, event: Any) -> list[E]:
        """The events to hand out for one upstream event."""
        raise NotImplementedError

    async def finish(self) -> list[E]:
        """The upstream ended: the rest (the tails of the runs that did not end)."""
        raise NotImplementedError

    def expired(self, blocked: Blocked) -> list[E] | None:
        """The call's time limit passed (its open runs ended ``blocked``): set
        :attr:`blocked` and return the events of the native ending after what was
        shown, or ``None`` when no reply has begun (no event came: the stream raises)."""
        return None

    def close(self) -> None:
        """Close every run still open (idempotent)."""
        self.runs.close()

    def shown(self, events: list[E]) -> str | None:
        """The text these events show the reader (``""`` for tool arguments alone), or
        ``None`` when they show no piece of the reply (what a call's trace times)."""
        return None


async def whole(guard: Guard | ToolGuard, text: str) -> str:
    """A whole text through ``guard``: all that it releases (``guard.blocked`` says
    whether it was blocked)."""
    out = await guard.push(text) if text else ""
    if guard.blocked is None:
        out += await guard.push(None)
    return out


async def tool_text(
    runs: Runs, name: str, text: str, index: int = 0, *, json: bool = True
) -> str | Blocked:
    """A tool call's whole arguments (or custom input, ``json=False``) through the rule
    of ``name`` (the ``index``-th call, in the trace): the checked text, or the block."""
    guard = runs.tool(name, index, json=json)
    if guard.blocked is not None:
        return guard.blocked
    out = await whole(guard, text)
    return out if guard.blocked is None else guard.blocked


#: Run a step over sync runs to its end, now: their ``push`` is done on return, so the
#: step never waits and needs no event loop.
drive_sync = run_inline


async def aclose_upstream(upstream: object) -> None:
    """Close an async upstream, shielded from cancellation: its ``aclose()`` (the async
    name; an object with both has a sync ``close``), else the SDKs' async ``close()``."""
    close = getattr(upstream, "aclose", None) or getattr(upstream, "close", None)
    if close is None:
        return
    with anyio.CancelScope(shield=True):
        result = close()
        if isinstance(result, Awaitable):
            await result


def close_upstream(upstream: object) -> None:
    """Close a sync upstream (its ``close()``, if it has one)."""
    close = getattr(upstream, "close", None)
    if close is not None:
        close()


async def open_async(source: Any) -> tuple[AsyncIterator[Any], Callable[[], Awaitable[None]]]:
    """An async iterable read as it is (an SDK stream is its own iterator)."""
    it = source if isinstance(source, AsyncIterator) else aiter(source)
    return it, partial(aclose_upstream, source)


def open_sync(source: Any) -> tuple[Iterator[Any], Callable[[], None]]:
    """An iterable read as it is (an SDK stream is its own iterator)."""
    it = source if isinstance(source, Iterator) else iter(source)
    return it, partial(close_upstream, source)


class _Base(Generic[E]):
    """What the twins share: state, ``blocked``, the call's limits and trace, the repr."""

    __slots__ = (
        "_closed",
        "_early",
        "_ended",
        "_finishes",
        "_it",
        "_limits",
        "_look",
        "_opener",
        "_out",
        "_rec",
        "_shut",
        "_tr",
        "_upstream",
        "_wait",
    )

    #: Opens the upstream on the first read (the twin's own, unless one is given).
    _OPENS: ClassVar[Any]

    def __init__(
        self,
        source: Any,
        translator: Translator[E],
        opener: Any = None,
        *,
        finishes: bool = True,
    ) -> None:
        self._upstream = source
        self._opener = self._OPENS if opener is None else opener
        # Whether this stream finishes the call's record (not one source of several:
        # a stream with fallbacks finishes it once its last source ended).
        self._finishes = finishes
        self._tr = translator
        # The call's recorder (its runs'), and whether what goes out is still looked at
        # (until the first piece, or all along when content is captured).
        self._rec = rec = translator.runs.rec
        self._look = rec is not None
        self._wait = True  # the first event is still to come (``Translator.first``)
        self._it: Any = None
        self._shut: Any = None  # closes the opened upstream
        self._out: deque[E] = deque()
        self._ended = False
        self._early = False  # stopped before the end: iterating raises
        self._closed = False
        # The call's time limits (``stream.deadline_ms``, ``stream.idle_timeout_ms``):
        # one clock for the call, shared by its runs.  (A fallback's source has none of
        # its own: the stream with fallbacks bounds its reads.)
        limits = Limits.of(translator.runs.policy.spec.stream) if finishes else None
        if limits is not None:
            translator.runs.limits = limits
        elif not finishes:  # (the runs keep no clock: their reads are bounded for them)
            translator.runs.limits = Limits(None, None)
        self._limits = limits

    @property
    def blocked(self) -> Blocked | None:
        """The block (message and findings) once the reply was blocked, else ``None``."""
        return self._tr.blocked

    def _over(self, stop: type[Exception]) -> NoReturn:
        """Iteration is over: ``stop`` (``StopIteration`` or ``StopAsyncIteration``), or
        :class:`StreamStateError` if the stream was stopped before it ended."""
        if self._early:
            raise StreamStateError("the guarded stream was closed before it ended")
        raise stop

    @property
    def trace_id(self) -> str | None:
        """The id of the call's trace (``None`` if the call is not traced)."""
        return self._rec.trace_id if self._rec is not None else None

    @property
    def record(self) -> CallTrace | None:
        """The call's trace once the stream has ended (closed, blocked or at its end)."""
        return self._rec.record if self._rec is not None else None

    def _seen(self, events: Any) -> None:
        """Note the first piece that goes out (and the text, when captured)."""
        text = self._tr.shown(events)
        if text is not None:
            rec: Any = self._rec
            rec.released(text)
            self._look = rec.capturing

    def _expired(self) -> list[E]:
        """The call's time limit passed while it waited for the upstream: its open runs
        end blocked, and the translator ends the reply natively; ``TimeoutError`` when
        no event had come (there is no reply to end)."""
        limits: Any = self._limits
        tr = self._tr
        _ending, what = limits.due()
        blocked = tr.runs.expire() or tr.runs.limit_passed(what)
        events = tr.expired(blocked)
        tr.blocked = blocked
        if events is None:
            raise TimeoutError(f"guarded stream: {what}, before the upstream sent anything")
        if self._look:
            self._seen(events)
        return events

    def _finish(self, ending: str | None, error: BaseException | None) -> None:
        """The call's trace, once its guards are closed."""
        rec = self._rec
        if rec is None:
            return
        tr = self._tr
        ended(rec, tr.runs.policy, tr.blocked, self._it)
        if not self._finishes:
            return
        if ending is None:
            hit = None if self._limits is None else self._limits.hit
            if hit is not None:  # (a run, or a wait for the upstream, passed the call's limit)
                ending = hit.value
            elif error is None:
                ending = "blocked" if tr.blocked else "truncated" if tr.cut else "completed"
        rec.finish(ending=ending, error=error)

    def _first(self, event: Any) -> Translator[E]:
        """The translator for the first upstream event (:meth:`Translator.first`)."""
        self._wait = False
        return self._tr.first(event)

    def __repr__(self) -> str:
        state = "closed" if self._early else "ended" if self._ended else "open"
        if self._tr.blocked:
            state = "blocked"
        return f"<{type(self).__name__} {state}>"


class GuardedStream(_Base[E], AsyncClosing):
    """The guarded events of an async SDK stream, as an async iterator of the SDK's types.

    ``async with`` it, or ``await aclose()`` to stop early: the SDK stream (and its HTTP
    response) is closed then, at a block, at the end, and when the consumer is cancelled.
    """

    __slots__ = ("_loop",)
    _opener: AsyncOpener

    _OPENS = staticmethod(open_async)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._loop = event_loop()  # where to close it if it is dropped unclosed

    def __aiter__(self) -> GuardedStream[E]:
        return self

    async def __anext__(self) -> E:
        out = self._out
        while not out:
            if self._ended:
                self._over(StopAsyncIteration)
            try:
                # Read one upstream event (the one place a call's events are seen).
                it = self._it
                if it is None:
                    it, self._shut = await self._opener(self._upstream)
                    self._it = it
                try:
                    if self._limits is None:
                        event = await it.__anext__()
                    else:
                        event = await self._timed(it)
                        if event is LATE:
                            out.extend(self._expired())
                            await self._end()
                            continue
                except StopAsyncIteration:
                    out.extend(await self._tr.finish())
                    if self._look:
                        self._seen(out)
                    await self._end()
                    continue
                if self._rec is not None:
                    self._rec.upstream_chunk()
                if self._wait:
                    self._tr = self._first(event)
                shown = await self._tr.process(event)
                if self._look:
                    self._seen(shown)
                tr = self._tr
                if tr.blocked is not None or tr.cut:  # the outcome is final: stop pulling
                    await self._end()  # (the upstream is closed before the ending goes out)
            except BaseException as exc:
                await self._end(error=exc)
                raise
            if len(shown) == 1:
                return shown[0]  # (the common case: no queue)
            out.extend(shown)
        return out.popleft()

    async def _timed(self, it: AsyncIterator[Any]) -> Any:
        """The next upstream event within the call's limits, or :data:`LATE`."""
        limits: Any = self._limits
        wait = limits.waiting()
        if wait is not None and wait <= 0.0:
            return LATE
        with anyio.move_on_after(wait):
            event = await it.__anext__()
            limits.chunk()
            return event
        return LATE

    async def _end(self, ending: str | None = None, error: BaseException | None = None) -> None:
        self._ended = True
        if self._closed:
            return
        self._closed = True
        try:
            await (self._shut() if self._shut is not None else aclose_upstream(self._upstream))
        finally:
            self._tr.close()
            if isinstance(error, anyio.get_cancelled_exc_class()):
                ending, error = "cancelled", None
            self._finish(ending, error)

    async def aclose(self) -> None:
        """Stop: close the SDK stream and the policy runs (idempotent)."""
        if not self._ended:
            self._ended = self._early = True
        self._out.clear()
        await self._end("closed")

    def __del__(self) -> None:
        # Dropped without aclose() (a consumer that broke out of its loop): close on
        # the event loop it ran in.  `async with` / aclose() close it at once.
        if self._closed or self._it is None:
            return
        schedule_close(self._loop, self.aclose)


class SyncGuardedStream(_Base[E], Closing):
    """The guarded events of a sync SDK stream, as an iterator of the SDK's types.

    ``with`` it, or call :meth:`close` to stop early: the SDK stream is closed then, at a
    block and at the end.  The policy runs inline (sync push runs: no event loop, so it
    also works in a thread whose event loop is running).  With the policy's time limits,
    the upstream is read by a worker thread of the stream's, each wait bounded
    (:mod:`._reader`); without, inline.
    """

    __slots__ = ("_reader",)
    _opener: SyncOpener

    _OPENS = staticmethod(open_sync)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._reader: TimedReader | None = None

    def __iter__(self) -> SyncGuardedStream[E]:
        return self

    def __next__(self) -> E:
        out = self._out
        while not out:
            if self._ended:
                self._over(StopIteration)
            try:
                it = self._it
                if it is None:
                    it, self._shut = self._opener(self._upstream)
                    self._it = it
                    if self._limits is not None:
                        self._reader = TimedReader(it, self._shut)
                        self._shut = self._reader.close
                try:
                    if self._reader is None:
                        event = next(it)
                    else:
                        event = self._timed(self._reader)
                        if event is LATE:
                            out.extend(self._expired())
                            self._end()
                            continue
                except StopIteration:
                    out.extend(drive_sync(self._tr.finish()))
                    if self._look:
                        self._seen(out)
                    self._end()
                    continue
                if self._rec is not None:
                    self._rec.upstream_chunk()
                if self._wait:
                    self._tr = self._first(event)
                step = self._tr.process(event)
                try:  # (drive_sync(step), inline: the path of every chunk)
                    step.send(None)
                except StopIteration as stop:
                    shown: list[E] = stop.value
                else:  # pragma: no cover - a bug: a step over sync runs waited
                    step.close()
                    raise RuntimeError("a step of a sync guarded stream waited")
                if self._look:
                    self._seen(shown)
                tr = self._tr
                if tr.blocked is not None or tr.cut:  # the outcome is final: stop pulling
                    self._end()  # (the upstream is closed before the ending goes out)
            except BaseException as exc:
                self._end(error=exc)
                raise
            if len(shown) == 1:
                return shown[0]
            out.extend(shown)
        return out.popleft()

    def _timed(self, reader: TimedReader) -> Any:
        """The next upstream event within the call's limits, or :data:`LATE`."""
        limits: Any = self._limits
        wait = limits.waiting()
        if wait is not None and wait <= 0.0:
            return LATE
        event = reader.take(wait)
        if event is not LATE:
            limits.chunk()
        return event

    def _end(self, ending: str | None = None, error: BaseException | None = None) -> None:
        self._ended = True
        if self._closed:
            return
        self._closed = True
        try:
            if self._shut is not None:
                self._shut()
            else:
                close_upstream(self._upstream)
        finally:
            self._tr.close()
            self._finish(ending, error)

    def close(self) -> None:
        """Stop: close the SDK stream and the policy runs (idempotent)."""
        if not self._ended:
            self._ended = self._early = True
        self._out.clear()
        self._end("closed")

    def __del__(self) -> None:
        if not self._closed:
            try:
                self.close()
            except Exception:  # pragma: no cover - nothing to report it to
                pass


def source_stream(
    source: Any,
    translator: Translator[Any],
    wrap: Callable[[Any, Any], tuple[Any, Any]],
    *,
    sync: bool,
    open_sync: Callable[[Any], tuple[Iterator[Any], Callable[[], None]]] = open_sync,
    open_async: Callable[
        [Any], Awaitable[tuple[AsyncIterator[Any], Callable[[], Awaitable[None]]]]
    ] = open_async,
) -> Any:
    """One source of a stream with fallbacks, guarded: opened by the provider's opener,
    its events and its closing passed through ``wrap`` (the fallback stream watches
    them), and not finishing the call's record (the fallback stream does)."""
    if sync:

        def opener_sync(src: Any) -> tuple[Any, Any]:
            it, shut = open_sync(src)
            return wrap(it, shut)

        return SyncGuardedStream(source, translator, opener_sync, finishes=False)

    async def opener(src: Any) -> tuple[Any, Any]:
        it, shut = await open_async(src)
        return wrap(it, shut)

    return GuardedStream(source, translator, opener, finishes=False)
