"""Running async code from sync code: the one way the package does it.

:func:`run_sync` runs a coroutine function on an event loop of its own, in a thread
of its own if this thread already runs one (a sync call made from inside async code
must not nest loops).  The sync twins of the package (``stream_sync``, ``push_sync``,
the sync adapters) are not written over it: they run the same sans-IO core with plain
calls, and come here only for what is async by nature (a check's own async calls).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import anyio

from .closing import event_loop

__all__ = ["run_sync"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def run_sync(func: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    """``await func(*args)`` from sync code; what it raises is raised here."""
    if event_loop() is None:
        return anyio.run(func, *args)
    out: list[T] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            out.append(anyio.run(func, *args))
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=work, name="guardrails-engine-sync", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return out[0]
