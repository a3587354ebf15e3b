"""Worker threads for blocking work, bounded per event loop (a limiter belongs to one loop)."""

from __future__ import annotations

import anyio
from anyio.lowlevel import RunVar

__all__ = ["SOURCE_THREADS", "WORKER_THREADS", "source_limiter", "thread_limiter"]

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
