"""Worker threads for blocking work (NER, long validates), bounded per event loop."""

from __future__ import annotations

import anyio
from anyio.lowlevel import RunVar

__all__ = ["WORKER_THREADS", "thread_limiter"]

#: At most this many runs of this library use worker threads at once, per event loop.
WORKER_THREADS = 4
_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("guardrails_engine_limiter")


def thread_limiter() -> anyio.CapacityLimiter:
    """The limiter of the running event loop (a limiter belongs to one loop)."""
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(WORKER_THREADS)
        _LIMITER.set(limiter)
        return limiter
