"""Running the calls a run defers (async and blocking unit checks).

A run stays sans-IO: a session that defers queues its calls, the driver runs
every waiting call of the run at once (an async one awaited, a blocking one
in a worker thread), each within what its check has left of its time, and the
run takes the results (:meth:`Run.resume`).  A call past its time is
abandoned and counts as a timeout: ``on_error`` decides.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from .._common.syncrun import run_sync
from .._common.threads import CheckThreads, source_limiter
from ..checks._unit import MalformedFinding, stand_in
from .run import Run

__all__ = ["settle", "settle_sync"]


async def settle(run: Run) -> str:
    """Run the waiting calls of ``run`` (until none waits); return what became safe."""
    pieces: list[str] = []
    while run.deferred:
        jobs = run.jobs()
        spent: dict[int, float] = {}
        async with anyio.create_task_group() as tg:
            for i, job in jobs:
                tg.start_soon(_call, run.remaining(i), job)
        for i, job in jobs:
            # Calls of one check run side by side: it is charged the longest.
            spent[i] = max(spent.get(i, 0.0), job.seconds)
        for i, seconds in spent.items():
            run.charge(i, seconds)
        pieces.append(run.resume())
    return "".join(pieces)


async def _call(limit: float, job: Any) -> None:
    began = time.perf_counter()
    with anyio.move_on_after(limit) as scope:
        try:
            if job.is_async:
                awaitable = job.acall()  # (not an awaitable: a MalformedFinding of ours)
                try:
                    job.result = await awaitable
                except MalformedFinding as exc:  # its own: the message may quote text
                    job.error = stand_in(exc)
            else:
                job.result = await _in_daemon_thread(job.call, job.check.threads)
        except Exception as exc:
            job.error = exc
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            # A BaseException of the check's own, or a cancellation: a failure,
            # never "nothing found" (even if the task ends here).
            job.error = stand_in(exc)
            if isinstance(exc, anyio.get_cancelled_exc_class()) and (
                scope.cancel_called or _cancelled()
            ):
                raise  # the deadline's (the scope takes it), or from outside
    if scope.cancel_called:
        # Past its time, even if the check caught the cancellation and returned.
        job.error = TimeoutError()
    job.seconds = time.perf_counter() - began


def _cancelled() -> bool:
    """Whether this task is being cancelled (not just handed a CancelledError that
    a check raised itself: one trio would not let it make)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # not asyncio
        return True
    return task is None or task.cancelling() > 0


async def _in_daemon_thread(call: Callable[[], Any], threads: CheckThreads) -> Any:
    """``call()`` in a thread of its own that does not keep the process alive: a
    check that hangs is abandoned at its deadline, and must not hold up the exit
    (``threads`` bounds how many it may leave behind)."""
    done = anyio.Event()
    token = anyio.lowlevel.current_token()
    outcome: list[Any] = []

    def work() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:
            outcome.append((False, exc))
        try:
            anyio.from_thread.run_sync(done.set, token=token)
        except RuntimeError:  # the event loop has ended (the call was abandoned)
            pass

    async with source_limiter():  # (per event loop)
        abandon = threads.start(work, "guardrails-engine-check")
        try:
            await done.wait()
        finally:
            abandon()  # (a no-op if the call returned)
    ok, value = outcome[0]
    if not ok:
        # (In a worker thread even KeyboardInterrupt and SystemExit are the check's.)
        raise value if isinstance(value, Exception) else stand_in(value)
    return value


def settle_sync(run: Run) -> str:
    """:func:`settle` from sync code (:func:`~.._common.syncrun.run_sync`: on an event loop
    of its own, in a thread of its own if this thread already runs one)."""
    if not run.deferred:
        return ""
    return run_sync(settle, run)
