"""Running async code from sync code: the one place the package does it.

- :func:`run_sync` runs a coroutine function on an event loop of its own, in a thread
  of its own if this thread already runs one (a sync call made from inside async code
  must not nest loops): for what is async by nature (a check's own async calls).
- :func:`run_inline` runs a coroutine that cannot wait to its end, now, with no event
  loop: an adapter's translator step over sync push runs, whose every await is done
  when it is made (one ``send``, so it costs no more than a call).

The sync twins (``stream_sync``, ``push_sync``, the sync adapters) are otherwise not
written over async code: they run the same sans-IO core with plain calls.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, TypeVarTuple

import anyio

from .closing import event_loop

__all__ = ["run_inline", "run_sync"]

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


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end now; it must not wait (``RuntimeError`` if it does)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        value: T = stop.value
        return value
    coro.close()
    raise RuntimeError("a coroutine run inline waited for an event loop")
