"""Push runs: a run you feed yourself (an adapter reading an SDK stream), with the
drivers' guarantees (see :mod:`.drive`): ``feed`` returns what became safe, ``finish``
the rest; ``blocked`` says when the run is blocked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import anyio
import anyio.to_thread

from .._common.closing import AsyncClosing, Closing
from .._common.model import Blocked
from .._common.threads import thread_limiter
from .drive import _Driver
from .jobs import settle, settle_sync
from .limits import Limits
from .run import Ending
from .trace import TraceCallback

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["Push", "SyncPush"]

_log = logging.getLogger("guardrails_engine")


class _Push(_Driver):
    """Shared by :class:`Push` and :class:`SyncPush`."""

    __slots__ = ("_blocking",)

    def __init__(
        self,
        policy: Plan,
        trace_id: str | None,
        on_trace: TraceCallback | None,
        limits: Limits | None = None,
    ) -> None:
        # ``limits``: the clock of the guarded call this run is one of (an adapter's).
        super().__init__(policy, trace_id, on_trace, limits)
        self._limits.start()  # (a push run's limits run from its creation)
        self._blocking = policy.blocking  # (NER: the async twin runs it in worker threads)

    @property
    def done(self) -> bool:
        """The run ended (completed, blocked, or closed): ``feed`` returns "" from now on."""
        return self._done

    @property
    def blocked(self) -> Blocked | None:
        """Set once the run is blocked: show ``message`` after the text returned so far."""
        ending = self._run.ending
        if ending is None or not ending.blocks:
            return None
        result = self._run.result()
        return Blocked(result.text, result.findings)

    def time_left(self) -> float | None:
        """How long (seconds) the caller may wait for its next chunk before the run's
        own limits (``stream.deadline_ms``, ``stream.idle_timeout_ms``) end it;
        ``None``: no limit.  A caller that reads a source of its own (an adapter
        reading an SDK stream) bounds its wait by it, and calls :meth:`expire` when
        that wait runs out."""
        if self._done or not self._limits.active:
            return None
        return self._limits.wait()

    def expire(self) -> None:
        """The source kept the run waiting past :meth:`time_left`: end it blocked
        (ending ``timed_out`` or ``idle``); what was returned so far stays returned."""
        if not self._done:
            self._run.expire(*self._limits.due())
            self._end()

    def _before(self) -> bool:
        """A chunk (or the end) came: whether the run's limits ended it first."""
        limits = self._limits
        if not limits.active:
            return False
        if self._expired(waiting=True):
            return True
        limits.chunk()
        return False

    def _after(self) -> None:
        """The work on a chunk is done: the deadline may have passed meanwhile."""
        if not self._done and self._limits.active:
            self._expired(waiting=False)

    def _drain(self) -> str:
        """The released text waiting (never the block message: see :attr:`blocked`)."""
        pieces = self._pieces
        if not pieces:
            return ""
        if self._message:
            self._message = False
            pieces.pop()
        text = pieces[0] if len(pieces) == 1 else "".join(pieces)
        pieces.clear()
        return text

    def _closed(self) -> None:
        if not self._done:
            self._failed(Ending.CANCELLED)

    def __del__(self) -> None:
        # Dropped before it ended (an adapter whose consumer stopped reading): the run
        # ends as cancelled, and its trace says so, as for a dropped stream.
        if getattr(self, "_done", True) or not hasattr(self, "_run"):
            return  # (ended, or its run could not be made)
        try:
            self._closed()
        except Exception:
            _log.warning("closing a dropped push run failed", exc_info=True)


class SyncPush(_Push, Closing):
    """One run that you feed text yourself (an adapter reading an SDK stream):
    ``feed`` returns the text that became safe, ``finish`` the rest.

    The same run as a stream (same guarantees, same trace); :attr:`blocked` says
    when it is blocked.  Checks that defer calls (async ones) run on an event loop
    of their own, so this is for sync code.  ``with policy.push_sync() as run:``
    closes it at the end (a run that did not finish is then a block).
    """

    __slots__ = ()

    def feed(self, text: str) -> str:
        if self._done:
            return ""
        if type(text) is not str:
            raise TypeError(f"feed() takes a str, got {type(text).__name__}")
        if self._before():
            return self._drain()
        decided = self._take(text)
        if not decided and self._run.deferred:
            self._resumed(settle_sync(self._run))
        self._after()
        return self._drain()

    def finish(self) -> str:
        """The text is complete: the rest of the safe text."""
        if self._done or self._before():
            return self._drain()
        self._exhausted()
        if self._run.deferred:
            self._resumed(settle_sync(self._run))
        self._after()
        return self._drain()

    def close(self) -> None:
        """Stop early: the result is a block unless the run had ended; idempotent."""
        self._closed()


class Push(_Push, AsyncClosing):
    """The async twin of :class:`SyncPush`: NER runs in worker threads and checks
    that defer calls are awaited, on the running event loop.  ``async with
    policy.push() as run:`` closes it at the end (:meth:`aclose`)."""

    __slots__ = ()

    async def feed(self, text: str) -> str:
        if self._done:
            return ""
        if type(text) is not str:
            raise TypeError(f"feed() takes a str, got {type(text).__name__}")
        if self._before():
            return self._drain()
        return await self._step(self._take, text)

    async def finish(self) -> str:
        """The text is complete: the rest of the safe text."""
        if self._done or self._before():
            return self._drain()
        return await self._step(self._exhausted)

    async def _step(self, work: Callable[..., object], *args: object) -> str:
        """Run ``work`` (NER in a worker thread), then the calls it deferred."""
        # A text longer than the hold-back cap is read whole (as validate reads it):
        # in a worker thread too, so that the loop runs meanwhile.
        long = bool(args) and len(cast(str, args[0])) > self._run.cap and not self._run.defers
        try:
            if self._blocking or long:
                await anyio.to_thread.run_sync(work, *args, limiter=thread_limiter())
            else:
                work(*args)
            if self._run.deferred:
                self._resumed(await settle(self._run))
        except anyio.get_cancelled_exc_class():
            self._failed(Ending.CANCELLED)
            raise
        self._after()
        return self._drain()

    async def aclose(self) -> None:
        """Stop early: the result is a block unless the run had ended; idempotent."""
        self._closed()

    def close(self) -> None:
        """:meth:`aclose` without awaiting (kept from before ``aclose`` existed; prefer
        ``aclose`` or ``async with``, as for :class:`Stream`)."""
        self._closed()
