"""The SDK-agnostic core of the provider adapters: push text in, get released text out.

A policy run is driven by pulling (``policy.stream(source)``); an adapter reads an SDK
stream and has deltas to *push* into one run per choice, content block or tool call.
These guards turn the public stream API into push objects, with no task and no queue
(the block message is told from text by the stream's result: it is the last piece of a
blocked stream):

``TextGuard(policy, *, trace_id=None, on_trace=None)`` (async)
    ``await g.feed(delta) -> str``   released text for this delta ("" while held back)
    ``await g.finish() -> str``      the text is complete: the rest of the released text
    ``g.blocked -> Blocked | None``  set once the run is blocked: show ``blocked.message``
                                     (after the text returned so far), then end natively
    ``g.done -> bool``               the run ended (finished, blocked or closed):
                                     ``feed`` returns "" from then on
    ``g.result -> Result | None``    the run's result once it ended (``None`` if closed early)
    ``await g.aclose()``             stop early (idempotent; call it in ``finally``)

``ToolArgsGuard(policy, name, *, trace_id=None, on_trace=None)`` (async)
    One tool call's arguments (JSON text).  ``policy`` is the main policy: the rule is
    ``policy.tools[name]``; a tool without one passes (``mode == "pass"``), or is blocked
    at once when ``policy.unknown_tools == "block"`` (``mode == "block"``, ``blocked`` set).
    ``mode`` is ``"pass"``, ``"block"``, ``"complete"`` or ``"incremental"`` (the rule's
    ``release``).  ``feed``/``finish``/``blocked``/``done``/``result``/``aclose`` as above,
    except that in ``complete`` mode ``feed`` returns "" and ``finish`` returns all the
    guarded arguments, once they are complete and the run did not block.

``SyncTextGuard``, ``SyncToolArgsGuard``: the same with plain calls and ``close()``.
    They run the async guard on a private event loop (a :class:`LoopRunner`, shared by
    the guards of one SDK stream: pass ``runner=``), so they cannot be used from a thread
    whose event loop is running.  Each call is one turn of that loop (about 13 us): an
    adapter that can, runs several feeds in one turn (``runner.run(coroutine)``).

A guard is used by one task at a time (no concurrent ``feed``).  Under the hood the
run's ``policy.stream(...)`` ``__anext__`` coroutine is resumed by hand: its source hands it
the pushed delta, or pauses it (a private sentinel, never seen by the event loop); any
other await inside (NER in a worker thread) goes to the running event loop as usual.
Nothing here logs or keeps text beyond the run; reprs show no text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Final, TypeVar

from .. import Action, Blocked, Finding, Policy, Result, Stream, Trace

__all__ = [
    "LoopRunner",
    "SyncTextGuard",
    "SyncToolArgsGuard",
    "TextGuard",
    "ToolArgsGuard",
    "unknown_tool",
]

T = TypeVar("T")
_TraceCallback = Callable[[Trace], None]

_log = logging.getLogger("guardrails_engine")
_PAUSE: Final = object()  # the run wants the next delta: control goes back to feed()


class _Source:
    """The run's async source: the delta pushed by ``feed``, the end, or a pause."""

    __slots__ = ("ended", "pending")

    def __init__(self) -> None:
        self.pending: str | None = None
        self.ended = False

    def __aiter__(self) -> _Source:
        return self

    def __anext__(self) -> _Next:
        return _Next(self)


class _Next:
    __slots__ = ("_source",)

    def __init__(self, source: _Source) -> None:
        self._source = source

    def __await__(self) -> Generator[Any, Any, str]:
        source = self._source
        while True:
            delta = source.pending
            if delta is not None:
                source.pending = None
                return delta
            if source.ended:
                raise StopAsyncIteration
            yield _PAUSE


class _Ready:
    """An awaitable that is already done."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __await__(self) -> Generator[Any, Any, str]:
        return self._value
        yield  # a generator  # pragma: no cover


_EMPTY: Final = _Ready("")


class _Drive:
    """Resume the run until it wants the next delta (or ends); the released text."""

    __slots__ = ("_guard",)

    def __init__(self, guard: TextGuard) -> None:
        self._guard = guard

    def __await__(self) -> Generator[Any, Any, str]:
        g = self._guard
        text = last = ""
        value: Any = None
        error: BaseException | None = None
        while True:
            step = g._step
            if step is None:
                step = g._step = g._stream.__anext__().__await__()
            try:
                if error is not None:
                    exc, error = error, None
                    got = step.throw(exc)
                else:
                    got = step.send(value)
            except StopIteration as stop:  # a released piece
                g._step = None
                last = stop.value
                text += last
                value = None
                continue
            except StopAsyncIteration:  # the run ended (or was decided)
                g._step = None
                g._ended = True
                result = g._stream.result
                if result is not None and result.blocked:
                    # The stream's last piece is the block message: it is not text.
                    g.blocked = Blocked(result.text, result.findings)
                    if result.text and last == result.text:
                        text = text[: len(text) - len(last)]
                break
            except BaseException:
                g._step = None
                g._ended = True
                raise
            value = None
            if got is _PAUSE:
                break
            try:  # an await of the run's own (a worker thread): the event loop's business
                value = yield got
            except BaseException as exc:
                error = exc
        return text


class TextGuard:
    """One run of a policy over text pushed delta by delta (async); see the module doc."""

    __slots__ = (
        "__weakref__",
        "_closed",
        "_ended",
        "_loop",
        "_source",
        "_step",
        "_stream",
        "blocked",
    )

    def __init__(
        self,
        policy: Policy,
        *,
        trace_id: str | None = None,
        on_trace: _TraceCallback | None = None,
    ) -> None:
        self._source = _Source()
        self._stream: Stream = policy.stream(self._source, trace_id=trace_id, on_trace=on_trace)
        self._step: Generator[Any, Any, Any] | None = None
        self._ended = False
        self._closed = False
        try:  # where to close a guard dropped without aclose() (asyncio only)
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        #: The block, once the run is blocked (show its ``message``).
        self.blocked: Blocked | None = None

    @property
    def done(self) -> bool:
        """The run ended: finished, blocked or closed."""
        return self._ended or self._closed

    @property
    def result(self) -> Result | None:
        """The run's result once it ended; ``None`` while it runs or if it was closed early."""
        return self._stream.result

    def feed(self, delta: str) -> Awaitable[str]:
        """Push one delta; await the text it releases ("" while held back or after the end)."""
        if self._ended or self._closed:
            if not isinstance(delta, str):
                raise TypeError(f"a delta must be str, got {type(delta).__name__}")
            return _EMPTY
        self._source.pending = delta
        return _Drive(self)

    def finish(self) -> Awaitable[str]:
        """The text is complete: await the rest of the released text."""
        if self._ended or self._closed:
            return _EMPTY
        self._source.ended = True
        return _Drive(self)

    async def aclose(self) -> None:
        """Stop (the run's decision is block unless it had ended); idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._stream.aclose()
        step, self._step = self._step, None
        if step is not None:
            step.close()

    def __del__(self) -> None:
        # Dropped while the run waits for a delta: close it on its event loop (a run
        # must be closed where an event loop runs).  aclose() in `finally` is the way.
        step, loop = self._step, self._loop
        if step is None or self._closed or loop is None:
            return
        self._closed = True
        self._step = None
        try:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_close_later, self._stream, step)
        except RuntimeError:  # pragma: no cover - the loop ended meanwhile
            pass

    async def __aenter__(self) -> TextGuard:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


_CLOSING: set[asyncio.Task[None]] = set()  # tasks closing dropped guards (need a reference)


def _close_later(stream: Stream, step: Generator[Any, Any, Any]) -> None:
    task = asyncio.ensure_future(_close_dropped(stream, step))
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


async def _close_dropped(stream: Stream, step: Generator[Any, Any, Any]) -> None:
    await stream.aclose()
    step.close()


def unknown_tool(policy: Policy) -> Blocked:
    """The block of a call of a tool that has no rule, under ``unknown_tools: block``."""
    finding = Finding(
        check_id="unknown_tools",
        check_type="tools",
        action=Action.BLOCK,
        reason="tools: a call of a tool that has no rule (unknown_tools: block)",
        start=0,
        end=0,
    )
    return Blocked(policy.block_message, (finding,))


class ToolArgsGuard:
    """The arguments of one tool call, checked as they stream; see the module doc."""

    __slots__ = ("_held", "_text", "blocked", "mode")

    def __init__(
        self,
        policy: Policy,
        name: str | None,
        *,
        trace_id: str | None = None,
        on_trace: _TraceCallback | None = None,
    ) -> None:
        tool = policy.tools.get(name) if name is not None else None
        self._text: TextGuard | None = None
        self._held = ""
        self.blocked: Blocked | None = None
        if tool is None:
            self.mode = "block" if policy.unknown_tools == "block" else "pass"
            if self.mode == "block":
                self.blocked = unknown_tool(policy)
        else:
            self.mode = tool.release
            self._text = TextGuard(tool.policy, trace_id=trace_id, on_trace=on_trace)

    @property
    def done(self) -> bool:
        return self.mode == "block" or (self._text is not None and self._text.done)

    @property
    def result(self) -> Result | None:
        """The arguments' result (``None`` for a tool without a rule, or one closed early)."""
        return None if self._text is None else self._text.result

    def feed(self, delta: str) -> Awaitable[str]:
        """Push a piece of the arguments; await what may be shown now."""
        text = self._text
        if text is None:
            return _EMPTY if self.mode == "block" else _Ready(delta)
        if self.mode == "incremental":
            return self._checked(text.feed(delta))
        return self._kept(text.feed(delta))

    def finish(self) -> Awaitable[str]:
        """The call's arguments are complete: await the rest (``complete``: all of them)."""
        text = self._text
        if text is None:
            return _EMPTY
        if self.mode == "incremental":
            return self._checked(text.finish())
        return self._all(text.finish())

    async def _checked(self, released: Awaitable[str]) -> str:
        out = await released
        text = self._text
        if text is not None and text.blocked is not None:
            self.blocked = text.blocked
        return out

    async def _kept(self, released: Awaitable[str]) -> str:
        self._held += await self._checked(released)
        return ""

    async def _all(self, released: Awaitable[str]) -> str:
        held = self._held + await self._checked(released)
        self._held = ""
        return "" if self.blocked is not None else held

    async def aclose(self) -> None:
        self._held = ""
        if self._text is not None:
            await self._text.aclose()


class LoopRunner:
    """A private event loop that runs the async guards for sync callers.

    One per sync SDK stream; ``close()`` it at the end (the sync guards made without
    ``runner=`` own one and close it themselves).
    """

    __slots__ = ("_closed", "_loop")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def run(self, awaitable: Awaitable[T]) -> T:
        loop = self._loop
        if loop is None:
            if self._closed:
                _discard(awaitable)
                raise RuntimeError("this LoopRunner is closed")
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                _discard(awaitable)
                raise RuntimeError(
                    "a sync guard cannot run in a thread whose event loop is running: "
                    "use the async SDK client and the async guard"
                )
            loop = self._loop = asyncio.new_event_loop()
        return loop.run_until_complete(_wrap(awaitable))

    def close(self) -> None:
        self._closed = True
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()


def _discard(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)  # a coroutine that will not run
    if close is not None:
        close()


async def _wrap(awaitable: Awaitable[T]) -> T:
    return await awaitable


class SyncTextGuard:
    """:class:`TextGuard` for sync callers (see the module doc)."""

    __slots__ = ("_closed", "_guard", "_own", "_runner")

    def __init__(
        self,
        policy: Policy,
        *,
        runner: LoopRunner | None = None,
        trace_id: str | None = None,
        on_trace: _TraceCallback | None = None,
    ) -> None:
        self._own = runner is None
        self._closed = False
        self._runner = LoopRunner() if runner is None else runner
        self._guard = TextGuard(policy, trace_id=trace_id, on_trace=on_trace)

    @property
    def blocked(self) -> Blocked | None:
        return self._guard.blocked

    @property
    def done(self) -> bool:
        return self._guard.done

    @property
    def result(self) -> Result | None:
        return self._guard.result

    def feed(self, delta: str) -> str:
        if self._guard.done:
            return ""
        return self._runner.run(self._guard.feed(delta))

    def finish(self) -> str:
        if self._guard.done:
            return ""
        return self._runner.run(self._guard.finish())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        guard = self._guard
        try:
            if guard._step is None:  # not waiting for a delta: nothing to run on the loop
                guard._closed = True
            else:
                self._runner.run(guard.aclose())
        finally:
            if self._own:
                self._runner.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            _log.warning("closing a dropped guard failed", exc_info=True)

    def __enter__(self) -> SyncTextGuard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncToolArgsGuard:
    """:class:`ToolArgsGuard` for sync callers (see the module doc)."""

    __slots__ = ("_closed", "_guard", "_own", "_runner")

    def __init__(
        self,
        policy: Policy,
        name: str | None,
        *,
        runner: LoopRunner | None = None,
        trace_id: str | None = None,
        on_trace: _TraceCallback | None = None,
    ) -> None:
        self._own = runner is None
        self._closed = False
        self._runner = LoopRunner() if runner is None else runner
        self._guard = ToolArgsGuard(policy, name, trace_id=trace_id, on_trace=on_trace)

    @property
    def mode(self) -> str:
        return self._guard.mode

    @property
    def blocked(self) -> Blocked | None:
        return self._guard.blocked

    @property
    def done(self) -> bool:
        return self._guard.done

    @property
    def result(self) -> Result | None:
        return self._guard.result

    def feed(self, delta: str) -> str:
        guard = self._guard
        if guard._text is None:  # no run: nothing to drive
            return "" if guard.mode == "block" else delta
        return self._runner.run(guard.feed(delta))

    def finish(self) -> str:
        if self._guard._text is None:
            return ""
        return self._runner.run(self._guard.finish())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        text = self._guard._text
        try:
            if text is not None:
                if text._step is None:
                    text._closed = True
                else:
                    self._runner.run(self._guard.aclose())
        finally:
            if self._own:
                self._runner.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            _log.warning("closing a dropped guard failed", exc_info=True)
