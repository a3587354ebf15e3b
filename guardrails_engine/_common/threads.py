"""Worker threads for blocking work, bounded per event loop (a limiter belongs to one loop),
and the threads a blocking check may leave behind, bounded per check (:class:`CheckThreads`)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import anyio
from anyio.lowlevel import RunVar

from .errors import CheckThreadsExhausted

__all__ = [
    "CHECK_THREADS",
    "SOURCE_THREADS",
    "WORKER_THREADS",
    "CheckThreads",
    "source_limiter",
    "thread_limiter",
]

#: At most this many runs of this library use worker threads at once, per event loop.
WORKER_THREADS = 4
#: At most this many sync sources are pulled in worker threads at once, per event loop
#: (apart from the threads of NER and long validates, so that sources that wait do not
#: hold those up).
SOURCE_THREADS = 64
_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("guardrails_engine_limiter")
_SOURCE_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("guardrails_engine_sources")


def _per_loop(var: RunVar[anyio.CapacityLimiter], size: int) -> anyio.CapacityLimiter:
    try:
        return var.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(size)
        var.set(limiter)
        return limiter


def thread_limiter() -> anyio.CapacityLimiter:
    """The running event loop's limiter for NER and long validates."""
    return _per_loop(_LIMITER, WORKER_THREADS)


def source_limiter() -> anyio.CapacityLimiter:
    """The running event loop's limiter for pulling sync sources that block."""
    return _per_loop(_SOURCE_LIMITER, SOURCE_THREADS)


#: At most this many calls of one blocking check may have run past their time and
#: still hold a thread; past that, the check fails at once (``on_error`` decides).
CHECK_THREADS = 32


class CheckThreads:
    """The threads of one blocking check's calls (one per compiled check, for every run).

    A call runs in a daemon thread of its own.  One abandoned at its deadline
    keeps its thread until it returns (a thread cannot be stopped); at most
    ``limit`` such threads are left, after which a new call raises
    :class:`CheckThreadsExhausted` without starting one.  So a check that hangs
    costs a bounded number of threads, and other checks and policies, which
    have threads of their own, never notice.
    """

    __slots__ = ("_abandoned", "_lock", "limit")

    def __init__(self, limit: int = CHECK_THREADS) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._abandoned = 0

    @property
    def abandoned(self) -> int:
        """Calls abandoned at their deadline whose thread is still running."""
        return self._abandoned

    def start(self, work: Callable[[], None], name: str) -> Callable[[], bool]:
        """Run ``work`` in a daemon thread; returns ``abandon``, to call when the
        caller stops waiting: True if the thread is still running (it then counts
        as abandoned until it returns).

        :raises CheckThreadsExhausted: if ``limit`` abandoned threads still run,
            or no thread can be started.
        """
        if self._abandoned >= self.limit:
            raise CheckThreadsExhausted(
                f"{self._abandoned} calls of this check ran past their time and still run"
            )
        state = [False, False]  # [returned, abandoned]
        lock = self._lock

        def run() -> None:
            try:
                work()
            finally:
                with lock:
                    state[0] = True
                    if state[1]:
                        self._abandoned -= 1

        def abandon() -> bool:
            with lock:
                if state[0] or state[1]:
                    return False
                state[1] = True
                self._abandoned += 1
                return True

        try:
            threading.Thread(target=run, name=name, daemon=True).start()
        except RuntimeError as exc:  # (the process cannot start another thread)
            raise CheckThreadsExhausted("no thread could be started for this check") from exc
        return abandon
