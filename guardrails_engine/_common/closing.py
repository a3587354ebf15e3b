"""Closing: ``with`` and ``async with`` for the objects that close, and closing an
async object dropped without being closed on the event loop it ran in."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

__all__ = ["AsyncClosing", "Closing", "EventLoop", "event_loop", "schedule_close"]

_log = logging.getLogger("guardrails_engine")

#: How to reach an event loop later, from any thread: ("asyncio", loop) or ("trio", token).
EventLoop = tuple[str, Any]
_PENDING: set[Any] = set()  # asyncio tasks closing dropped objects (a task needs a reference)


def event_loop() -> EventLoop | None:
    """The running event loop (asyncio or trio), or ``None`` outside one."""
    try:
        return "asyncio", asyncio.get_running_loop()
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return "trio", trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
    return None


async def _quietly(close: Callable[[], Awaitable[object]]) -> None:
    try:
        await close()
    except Exception:
        _log.warning("closing a dropped stream failed", exc_info=True)


def schedule_close(loop: EventLoop | None, close: Callable[[], Awaitable[object]]) -> None:
    """Run ``close()`` on ``loop`` (from ``__del__``: any thread); nothing if it has ended."""
    if loop is None:
        return
    kind, handle = loop
    try:
        if kind == "asyncio":
            if handle.is_closed():
                return

            def start() -> None:
                task = handle.create_task(_quietly(close))
                _PENDING.add(task)
                task.add_done_callback(_PENDING.discard)

            handle.call_soon_threadsafe(start)
        else:
            trio = sys.modules["trio"]
            handle.run_sync_soon(lambda: trio.lowlevel.spawn_system_task(_quietly, close))
    except Exception:  # the loop has ended: nothing left to close it on
        return


class Closing:
    """``with obj:`` calls ``obj.close()`` at the end."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClosing:
    """``async with obj:`` awaits ``obj.aclose()`` at the end."""

    __slots__ = ()

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
