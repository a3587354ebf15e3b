"""Stream drivers: pull chunks from a source, feed a run, hand out released text.

Both drivers share :class:`_Driver`; they differ only in how they pull from
and close the source.  The source is closed as soon as the outcome is
decided, when the consumer stops early, and when it raises.  A stream's own time
limits are :mod:`.limits`'s; its typed events (``events()``) are :mod:`.events`'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._common.closing import AsyncClosing, Closing, EventLoop, event_loop, schedule_close
from .._common.errors import StreamStateError
from .._common.model import Blocked, Result
from .._common.threads import source_limiter, thread_limiter
from .events import AsyncEvents, Ended, Released, StreamEvent, SyncEvents
from .jobs import settle, settle_sync
from .limits import Limits
from .run import Ending, Run
from .trace import TraceCallback, record

if TYPE_CHECKING:
    from .plan import Plan

__all__ = [
    "Blocked",
    "Ended",
    "Released",
    "Stream",
    "StreamEvent",
    "SyncStream",
]

T = TypeVar("T")

#: A stream on an event loop lets other tasks run once it has worked this long
#: (seconds) since it last did: by work done, not by chunks counted.
YIELD_AFTER = 0.002
#: A chunk is fed to the run in slices of this many characters by an async stream,
#: which may let other tasks run between two (one slice of hostile text costs a
#: few milliseconds at most).
ASYNC_SLICE = 1024
_MIN_SLICE = 16
_FIRST_SLICE = 256


#: Iterators over values already in memory: pulling them never blocks.
_IN_MEMORY: tuple[type, ...] = tuple(
    {type(iter(x)) for x in cast(list[Iterable[object]], [[], (), "", "\u0100", range(0), deque()])}
    | {type(iter({}.keys())), type(iter({}.values()))}
)
_END: Any = object()  # the source is exhausted (StopIteration does not cross threads)
_log = logging.getLogger("guardrails_engine")


# How a sync source is pulled by an async stream.
_INLINE = 0  # on the event loop: a sequence, or declared never to block
_THREAD = 1  # in a worker thread: declared or seen to block
_PROBE = 2  # the first pull in a worker thread, timed: then _THREAD or _WATCH
_WATCH = 3  # on the event loop, timed: a pull that was slow moves it to _THREAD

#: A pull that takes longer than this (seconds) marks a sync source as one that blocks.
SLOW_PULL = 0.001


def _pull_mode(source: object, it: Iterator[str], declared: bool | None) -> int:
    if declared is not None:
        return _THREAD if declared else _INLINE
    if isinstance(source, Sequence) or isinstance(it, _IN_MEMORY):
        return _INLINE
    return _PROBE


class _Driver:
    __slots__ = (
        "_closed_early",
        "_done",
        "_limits",
        "_message",
        "_on_trace",
        "_pieces",
        "_policy",
        "_run",
        "_trace_id",
        "_traced",
    )

    def __init__(
        self,
        policy: Plan,
        trace_id: str | None,
        on_trace: TraceCallback | None,
        limits: Limits | None = None,
    ) -> None:
        self._policy = policy
        self._done = False  # (first: a finalizer reads it if Run() raises)
        self._run = Run(policy)
        if limits is None:  # (else the clock of a call this run is one of)
            stream = policy.spec.stream
            limits = Limits(stream.deadline_ms, stream.idle_timeout_ms)
        self._limits = limits
        self._pieces: deque[str] = deque()
        self._message = False  # the block message is the last piece
        self._closed_early = False  # closed by the consumer before it ended
        self._trace_id = trace_id
        self._on_trace = on_trace
        self._traced = False

    def _trace(self, error: BaseException | None = None) -> None:
        if not self._traced:
            self._traced = True
            record(
                self._policy,
                self._run,
                kind="stream",
                trace_id=self._trace_id,
                callback=self._on_trace,
                error=error,
            )

    @property
    def result(self) -> Result | None:
        """The final result once the stream has ended.

        ``None`` while it runs, and for a stream that did not end (its source
        raised, or it was closed early): such a stream has no final answer.
        """
        if not self._done or self._run.ending in (Ending.SOURCE_ERROR, Ending.CANCELLED):
            return None
        return self._run.result()

    @property
    def run(self) -> Run:
        return self._run

    def _take(self, chunk: object) -> bool:
        """Feed one chunk; return True when the source should be closed."""
        if not isinstance(chunk, str):
            self._failed(Ending.SOURCE_ERROR)
            raise TypeError(f"a stream source must yield str, got {type(chunk).__name__}")
        return self._resumed(self._run.feed(chunk))

    def _exhausted(self) -> None:
        piece = self._run.finish()
        if piece:
            self._pieces.append(piece)
        if not self._run.deferred:
            self._end()

    def _resumed(self, piece: str) -> bool:
        """The run gave ``piece`` (from a chunk, or from the deferred calls once they
        ran): True when the source should be closed."""
        if piece:
            self._pieces.append(piece)
        if self._run.decided:
            self._end()
            return True
        return False

    def _expired(self, *, waiting: bool) -> bool:
        """Whether the stream's own time limit passed: it then ends blocked."""
        passed = self._limits.passed(waiting=waiting)
        if passed is None:
            return False
        self._run.expire(*passed)
        self._end()
        return True

    def _end(self) -> None:
        self._done = True
        ending = self._run.ending
        if ending is not None and ending.blocks:
            message = self._run.result().text
            if message:
                self._pieces.append(message)
                self._message = True
        self._trace()

    def _event(self, piece: str) -> StreamEvent:
        """The event of a piece just taken from the queue."""
        if self._message and not self._pieces:
            self._message = False
            return Blocked(piece, self._run.result().findings)
        return Released(piece)

    def _last_events(self) -> list[StreamEvent]:
        """The events of a stream that ended with an empty queue."""
        result = self.result
        ending = self._run.ending
        if ending is not None and ending.blocks and not self._message and result is not None:
            if not result.text:  # an empty block message: no piece, still an event
                self._message = True  # (reported once)
                return [Blocked("", result.findings), Ended(result)]
        return [Ended(result)]

    def _failed(self, ending: Ending, error: BaseException | None = None) -> None:
        self._run.abort(ending)
        self._pieces.clear()
        self._done = True
        self._trace(error)


class Stream(_Driver, AsyncClosing):
    """Released text of an async or sync token source, as an async iterator.

    Use ``async with`` or call :meth:`aclose` to stop early; the source is
    closed then, and when the outcome is decided.
    """

    __slots__ = (
        "_async",
        "_blocking",
        "_busy",
        "_cap",
        "_close_pending",
        "_closed",
        "_cost",
        "_declared",
        "_iter",
        "_lock",
        "_loop",
        "_mode",
        "_slice",
        "_source",
        "_yielded",
    )

    def __init__(
        self,
        policy: Plan,
        source: AsyncIterable[str] | Iterable[str],
        *,
        trace_id: str | None = None,
        on_trace: TraceCallback | None = None,
        blocking_source: bool | None = None,
    ) -> None:
        self._iter: AsyncIterator[str] | Iterator[str] | None = None
        self._closed = False
        super().__init__(policy, trace_id, on_trace)
        # NER runs in worker threads, so the event loop stays responsive.
        self._blocking = policy.blocking
        self._async = False  # the source is an async iterable
        self._yielded = 0.0  # when other tasks last ran (by this stream's doing)
        self._slice = _FIRST_SLICE  # the size of the next slice of a long chunk
        self._cap = self._run.cap  # a longer chunk is fed whole, in a thread
        self._cost = 0.0  # seconds per character of the recent slices (the most)
        self._source = source
        # A sync source that may block is pulled in a worker thread (see _pull_mode).
        self._declared = blocking_source
        self._mode = _INLINE
        self._lock = threading.Lock()
        self._busy = False  # a worker thread is pulling from the source
        self._close_pending = False  # close the source when that pull returns
        self._loop: EventLoop | None = None  # where to close it from a finalizer

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> str:
        while not self._pieces:
            if self._closed_early:
                raise StreamStateError("the stream was closed before it ended")
            if self._done:
                raise StopAsyncIteration
            await self._pull()
        return self._pieces.popleft()

    def events(self) -> AsyncEvents:
        """The stream as typed events: :class:`Released` text, then :class:`Blocked`
        if the run was blocked, then :class:`Ended` with the result.

        The same text as iterating the stream (pieces are not repeated: use one or
        the other); a source error or a close raises as iteration does.
        """
        return AsyncEvents(self)

    async def _pull(self) -> None:
        it = self._iter
        if it is None:
            src = self._source
            it = self._iter = aiter(src) if isinstance(src, AsyncIterable) else iter(src)
            self._async = isinstance(it, AsyncIterator)
            if not self._async:
                self._mode = _pull_mode(src, cast(Iterator[str], it), self._declared)
            self._loop = event_loop()
            self._yielded = time.perf_counter()
        limits = self._limits
        try:
            if limits.active:
                # (the idle limit counts from here: the consumer's time between two
                # pulls is not the source's)
                with anyio.move_on_after(limits.waiting()) as scope:
                    chunk = await self._next(it)
                if scope.cancelled_caught:
                    self._run.expire(*limits.due())  # the source kept it waiting too long
                    self._end()
                    await self._close_source()
                    return
                limits.chunk()
            else:
                chunk = await self._next(it)
            if chunk is _END:
                if self._blocking or self._run.forcing(0):
                    # (Much held text: deciding it may take long, in a worker thread.)
                    await anyio.to_thread.run_sync(self._exhausted, limiter=thread_limiter())
                else:
                    self._exhausted()
                if self._run.deferred:
                    self._resumed(await settle(self._run))
                return
            if await self._feed(chunk):
                await self._close_source()
        except anyio.get_cancelled_exc_class():
            self._failed(Ending.CANCELLED)
            await self._close_source()
            raise
        except BaseException as exc:
            if not self._done:
                self._failed(Ending.SOURCE_ERROR, exc)
            await self._close_source()
            raise

    async def _next(self, it: AsyncIterator[str] | Iterator[str]) -> Any:
        """The next chunk of the source, or ``_END``."""
        try:
            if self._async:
                return await cast(AsyncIterator[str], it).__anext__()
            if self._mode in (_THREAD, _PROBE):
                # Pulled in a worker thread that a cancellation abandons (the
                # source is closed when that pull returns), so deadlines hold.
                chunk, took = await anyio.to_thread.run_sync(
                    self._next_in_thread,
                    cast(Iterator[str], it),
                    abandon_on_cancel=True,
                    limiter=source_limiter(),
                )
                if self._mode == _PROBE:
                    self._mode = _THREAD if took > SLOW_PULL else _WATCH
                return chunk
            # A sync source never yields to the event loop: cancellation is
            # delivered here, and other tasks run when the work calls for it.
            await anyio.lowlevel.checkpoint_if_cancelled()
            if self._mode == _WATCH:
                began = time.perf_counter()
                chunk = next(cast(Iterator[str], it))
                if time.perf_counter() - began > SLOW_PULL:
                    self._mode = _THREAD  # it blocks after all: threads from now on
                return chunk
            return next(cast(Iterator[str], it))
        except (StopAsyncIteration, StopIteration):
            return _END

    async def _feed(self, chunk: object) -> bool:
        """Feed a chunk; True when the source should be closed.

        Other tasks run once the work has taken :data:`YIELD_AFTER` since they
        last did (by work done, not by chunks counted), and a chunk is fed in
        slices sized by the cost per character of the last one, so that one
        slice takes about that long even on hostile text.
        """
        clock = time.perf_counter
        size = self._slice
        if type(chunk) is str and len(chunk) > self._cap and not self._run.defers:
            # Longer than the hold-back cap: the run reads it whole, as validate
            # reads a text (the same answer if the source ends after it), in a
            # worker thread, so that the loop runs meanwhile.
            decided = await anyio.to_thread.run_sync(self._take, chunk, limiter=thread_limiter())
            self._yielded = clock()
            return decided or (self._limits.active and self._expired(waiting=False))
        if type(chunk) is not str or len(chunk) <= size or self._run.defers:
            pieces: Sequence[object] = (chunk,)
        else:
            pieces = [chunk[at : at + size] for at in range(0, len(chunk), size)]
        for piece in pieces:
            began = clock()
            if self._blocking or (type(piece) is str and self._run.forcing(len(piece))):
                # (Deciding held text at the cap costs up to its whole length at
                # once: hundreds of ms on hostile text; a worker thread does it.)
                decided = await anyio.to_thread.run_sync(
                    self._take, piece, limiter=thread_limiter()
                )
            else:
                decided = self._take(piece)  # no blocking work: inline
            if not decided and self._run.deferred:
                decided = self._resumed(await settle(self._run))
            if decided or (self._limits.active and self._expired(waiting=False)):
                return True
            now = clock()
            if type(piece) is str and len(piece) >= _MIN_SLICE:
                # The cost per character, as the most of the recent slices (a slice
                # that decides held text costs more than one that only holds it).
                cost = max((now - began) / len(piece), self._cost * 0.9)
                self._cost = cost
                self._slice = max(_MIN_SLICE, min(ASYNC_SLICE, int(YIELD_AFTER / (cost + 1e-9))))
            if now - self._yielded >= YIELD_AFTER:
                await anyio.lowlevel.checkpoint()
                self._yielded = clock()
        return False

    async def _work(self, func: Callable[..., T], *args: object) -> T:
        """Run blocking work (NER) in a worker thread, the rest inline."""
        if self._blocking:
            return await anyio.to_thread.run_sync(func, *args, limiter=thread_limiter())
        return func(*args)

    def _next_in_thread(self, it: Iterator[str]) -> tuple[Any, float]:
        """The next chunk (or ``_END``) and how long the source took to give it."""
        with self._lock:
            if self._closed:
                return _END, 0.0  # closed before this thread started
            self._busy = True
        try:
            began = time.perf_counter()
            chunk = next(it, _END)
            return chunk, time.perf_counter() - began
        finally:
            with self._lock:
                self._busy = False
                pending, self._close_pending = self._close_pending, False
            if pending:
                _close_sync(it)

    def _close_sync_source(self, it: object) -> None:
        """Close a sync source now, or when the worker thread pulling from it returns."""
        with self._lock:
            if self._busy:
                self._close_pending = True
                return
        close = getattr(it, "close", None)
        if close is not None:
            close()

    async def _close_source(self) -> None:
        it = self._iter
        if it is None or self._closed:
            self._closed = True
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            close = getattr(it, "aclose", None)
            if close is not None:
                await close()
            else:
                self._close_sync_source(it)

    def __del__(self) -> None:
        # Dropped without being closed (a consumer that broke out of its loop):
        # close the source anyway; `async with` or aclose() close it promptly.
        it = self._iter
        if it is None or self._closed or self._done:
            return  # (a stream that ended has closed its source, or the source ended)
        self._closed = True
        try:
            self._failed(Ending.CANCELLED)
            close = getattr(it, "aclose", None)
            if close is not None:
                schedule_close(self._loop, close)
            else:
                self._close_sync_source(it)
        except Exception:
            _log.warning("closing a dropped stream's source failed", exc_info=True)

    async def aclose(self) -> None:
        """Stop: close the source; the result's decision is block unless the run had ended."""
        if not self._done:
            self._failed(Ending.CANCELLED)
            self._closed_early = True
        await self._close_source()


class SyncStream(_Driver, Closing):
    """Released text of a sync token source, as an iterator; same guarantees as :class:`Stream`."""

    __slots__ = ("_closed", "_iter", "_source")

    def __init__(
        self,
        policy: Plan,
        source: Iterable[str],
        *,
        trace_id: str | None = None,
        on_trace: TraceCallback | None = None,
    ) -> None:
        self._source = source
        self._iter: Iterator[str] | None = None
        self._closed = False
        super().__init__(policy, trace_id, on_trace)

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> str:
        while not self._pieces:
            if self._closed_early:
                raise StreamStateError("the stream was closed before it ended")
            if self._done:
                raise StopIteration
            self._pull()
        return self._pieces.popleft()

    def events(self) -> SyncEvents:
        """The stream as typed events; see :meth:`Stream.events`."""
        return SyncEvents(self)

    def _pull(self) -> None:
        if self._iter is None:
            self._iter = iter(self._source)
        limits = self._limits
        if limits.active:
            limits.waiting()  # (the idle limit counts from here, as the async pull's)
        try:
            chunk: Any = next(self._iter)
        except StopIteration:
            self._exhausted()
            if self._run.deferred:
                self._settle()
            return
        except BaseException as exc:
            self._failed(Ending.SOURCE_ERROR, exc)
            self._close_source()
            raise
        if limits.active:
            # (A sync source cannot be interrupted: the limits are looked at when it returns.)
            if self._expired(waiting=True):
                self._close_source()
                return
            limits.chunk()
        if type(chunk) is str:  # _take, inlined for the common case
            piece = self._run.feed(chunk)
            if piece:
                self._pieces.append(piece)
            if self._run.decided:
                self._end()
                self._close_source()
            elif self._run.deferred and self._settle():
                self._close_source()
            elif limits.active and self._expired(waiting=False):
                self._close_source()
            return
        try:
            decided = self._take(chunk)
        except TypeError:
            self._close_source()
            raise
        if not decided and self._run.deferred:
            decided = self._settle()
        if decided:
            self._close_source()

    def _settle(self) -> bool:
        """Run the deferred calls; True when the source should be closed."""
        try:
            return self._resumed(settle_sync(self._run))
        except BaseException as exc:
            self._failed(Ending.CANCELLED, exc)
            self._close_source()
            raise

    def _close_source(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self._iter, "close", None)
        if close is not None:
            close()

    def __del__(self) -> None:
        # Dropped without being closed: close the source (`with` closes it promptly).
        if self._closed or self._iter is None or self._done:
            return  # (a stream that ended has closed its source, or the source ended)
        try:
            self._failed(Ending.CANCELLED)
            self._close_source()
        except Exception:
            _log.warning("closing a dropped stream's source failed", exc_info=True)

    def close(self) -> None:
        """Stop: close the source."""
        if not self._done:
            self._failed(Ending.CANCELLED)
            self._closed_early = True
        self._close_source()


def _close_sync(it: object) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            _log.warning("closing a stream's source failed", exc_info=True)
