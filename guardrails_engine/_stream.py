"""Stream drivers: pull chunks from a source, feed a run, hand out released text.

Both drivers share :class:`_Driver`; they differ only in how they pull from
and close the source.  The source is closed as soon as the outcome is
decided, when the consumer stops early, and when it raises.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread

from ._errors import StreamStateError
from ._model import Result
from ._pipeline import Ending, Run
from ._threads import thread_limiter
from ._trace import TraceCallback, record

if TYPE_CHECKING:
    from ._policy import Policy

__all__ = ["Stream", "SyncStream"]

T = TypeVar("T")

#: A stream over a sync source lets other tasks run every this many chunks.
_YIELD_EVERY = 16


class _Driver:
    __slots__ = (
        "_closed_early",
        "_done",
        "_on_trace",
        "_pieces",
        "_policy",
        "_run",
        "_trace_id",
        "_traced",
    )

    def __init__(
        self, policy: Policy, trace_id: str | None, on_trace: TraceCallback | None
    ) -> None:
        self._policy = policy
        self._run = Run(policy)
        self._pieces: deque[str] = deque()
        self._done = False
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
        piece = self._run.feed(chunk)
        if piece:
            self._pieces.append(piece)
        if self._run.decided:
            self._end()
            return True
        return False

    def _exhausted(self) -> None:
        piece = self._run.finish()
        if piece:
            self._pieces.append(piece)
        self._end()

    def _end(self) -> None:
        self._done = True
        if self._run.ending is Ending.BLOCKED:
            message = self._run.result().text
            if message:
                self._pieces.append(message)
        self._trace()

    def _failed(self, ending: Ending, error: BaseException | None = None) -> None:
        self._run.abort(ending)
        self._pieces.clear()
        self._done = True
        self._trace(error)


class Stream(_Driver):
    """Released text of an async or sync token source, as an async iterator.

    Use ``async with`` or call :meth:`aclose` to stop early; the source is
    closed then, and when the outcome is decided.
    """

    __slots__ = ("_async", "_blocking", "_closed", "_iter", "_pulls", "_source")

    def __init__(
        self,
        policy: Policy,
        source: AsyncIterable[str] | Iterable[str],
        *,
        trace_id: str | None = None,
        on_trace: TraceCallback | None = None,
    ) -> None:
        super().__init__(policy, trace_id, on_trace)
        # NER runs in worker threads, so the event loop stays responsive.
        self._blocking = policy.blocking
        self._async = False  # the source is an async iterable
        self._pulls = 0
        self._source = source
        self._iter: AsyncIterator[str] | Iterator[str] | None = None
        self._closed = False

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

    async def _pull(self) -> None:
        it = self._iter
        if it is None:
            src = self._source
            it = self._iter = aiter(src) if isinstance(src, AsyncIterable) else iter(src)
            self._async = isinstance(it, AsyncIterator)
        try:
            try:
                if self._async:
                    chunk: Any = await cast(AsyncIterator[str], it).__anext__()
                else:
                    # A sync source never yields to the event loop: do it for it,
                    # so other tasks run and cancellation is delivered.
                    self._pulls += 1
                    if self._pulls % _YIELD_EVERY == 0:
                        await anyio.lowlevel.checkpoint()
                    else:
                        await anyio.lowlevel.checkpoint_if_cancelled()
                    chunk = next(cast(Iterator[str], it))
            except (StopAsyncIteration, StopIteration):
                await self._work(self._exhausted)
                return
            if self._blocking:
                decided = await self._work(self._take, chunk)
            else:
                decided = self._take(chunk)  # no blocking work: inline
            if decided:
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

    async def _work(self, func: Callable[..., T], *args: object) -> T:
        """Run blocking work (NER) in a worker thread, the rest inline."""
        if self._blocking:
            return await anyio.to_thread.run_sync(func, *args, limiter=thread_limiter())
        return func(*args)

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
                sync_close = getattr(it, "close", None)
                if sync_close is not None:
                    sync_close()

    async def aclose(self) -> None:
        """Stop: close the source; the result's decision is block unless the run had ended."""
        if not self._done:
            self._failed(Ending.CANCELLED)
            self._closed_early = True
        await self._close_source()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class SyncStream(_Driver):
    """Released text of a sync token source, as an iterator; same guarantees as :class:`Stream`."""

    __slots__ = ("_closed", "_iter", "_source")

    def __init__(
        self,
        policy: Policy,
        source: Iterable[str],
        *,
        trace_id: str | None = None,
        on_trace: TraceCallback | None = None,
    ) -> None:
        super().__init__(policy, trace_id, on_trace)
        self._source = source
        self._iter: Iterator[str] | None = None
        self._closed = False

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

    def _pull(self) -> None:
        if self._iter is None:
            self._iter = iter(self._source)
        try:
            chunk: Any = next(self._iter)
        except StopIteration:
            self._exhausted()
            return
        except BaseException as exc:
            self._failed(Ending.SOURCE_ERROR, exc)
            self._close_source()
            raise
        if type(chunk) is str:  # _take, inlined for the common case
            piece = self._run.feed(chunk)
            if piece:
                self._pieces.append(piece)
            if self._run.decided:
                self._end()
                self._close_source()
            return
        try:
            decided = self._take(chunk)
        except TypeError:
            self._close_source()
            raise
        if decided:
            self._close_source()

    def _close_source(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self._iter, "close", None)
        if close is not None:
            close()

    def close(self) -> None:
        """Stop: close the source."""
        if not self._done:
            self._failed(Ending.CANCELLED)
            self._closed_early = True
        self._close_source()

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
