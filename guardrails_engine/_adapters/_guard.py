"""The SDK-agnostic core of the provider adapters: push text in, get released text out.

A policy run is driven by pulling (``policy.stream(source)``); an adapter reads an SDK
stream and has deltas to *push* into one run per choice, content block or tool call.
These guards are push runs of the policy (``policy.push()``), with what an adapter
needs on top (tool-argument rules and release modes):

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
    ``policy.tool_rule(name)``; a call it passes has ``mode == "pass"``, one it refuses is
    blocked at once (``mode == "block"``, ``blocked`` set).
    ``mode`` is ``"pass"``, ``"block"``, ``"complete"`` or ``"incremental"`` (the rule's
    ``release``).  ``feed``/``finish``/``blocked``/``done``/``result``/``aclose`` as above,
    except that in ``complete`` mode ``feed`` returns "" and ``finish`` returns all the
    guarded arguments, once they are complete and the run did not block.

``SyncTextGuard``, ``SyncToolArgsGuard``: the same with plain calls and ``close()``.
``LoopRunner``: runs an adapter's async steps for sync callers, inline: guards made
    inside ``runner.run(step)`` are sync-backed (``policy.push_sync()``), so the step never
    waits and needs no event loop (the same adapter code serves the sync and the async
    SDK streams).

A guard is used by one task at a time (no concurrent ``feed``).  Each is a push run of
the policy (``policy.push()`` / ``policy.push_sync()``): the run's guarantees and trace
are those of a stream.  Nothing here logs or keeps text beyond the run; reprs show no text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final, TypeVar

from .. import Action, Blocked, Finding, Policy, Push, Result, SyncPush, Trace
from .._core.closing import AsyncClosing, Closing

__all__ = [
    "MAX_RUNS",
    "LoopRunner",
    "RunCount",
    "SyncTextGuard",
    "SyncToolArgsGuard",
    "TextGuard",
    "ToolArgsGuard",
    "inline",
    "tool_renamed",
    "unknown_tool",
]

T = TypeVar("T")
_TraceCallback = Callable[[Trace], None]


class _Ready:
    """An awaitable that is already done."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __await__(self) -> Generator[Any, Any, str]:
        return self._value
        yield  # a generator  # pragma: no cover


_EMPTY: Final = _Ready("")

#: Set while a :class:`LoopRunner` runs an adapter step: guards made then are sync-backed.
_INLINE: ContextVar[bool] = ContextVar("guardrails_engine_inline", default=False)


class _PushGuard:
    """What a text guard is: one push run of the policy, and whether it was closed."""

    __slots__ = ("_closed", "_push")

    _push: Push | SyncPush | _Refused
    _closed: bool

    @property
    def blocked(self) -> Blocked | None:
        """The block, once the run is blocked (show its ``message``)."""
        return self._push.blocked

    @property
    def done(self) -> bool:
        """The run ended: finished, blocked or closed."""
        return self._closed or self._push.done

    @property
    def result(self) -> Result | None:
        """The run's result once it ended; ``None`` while it runs or if it was closed early."""
        return self._push.result

    def close(self) -> None:
        """Stop (the run's decision is block unless it had ended); idempotent."""
        if not self._closed:
            self._closed = True
            self._push.close()


class TextGuard(_PushGuard, AsyncClosing):
    """One run of a policy over text pushed delta by delta; see the module doc.

    A push run of the policy (``policy.push()``, or ``policy.push_sync()`` when made
    inside :meth:`LoopRunner.run`, whose steps then never wait).
    """

    __slots__ = ("_inline",)

    def __init__(
        self,
        policy: Policy,
        *,
        runs: RunCount | None = None,
        trace_id: str | None = None,
        on_trace: _TraceCallback | None = None,
    ) -> None:
        self._inline = _INLINE.get()
        self._closed = False
        if runs is not None and not runs.take():
            self._push = _Refused(too_many_runs(policy))
            return
        self._push = (
            policy.push_sync(trace_id=trace_id, on_trace=on_trace)
            if self._inline
            else policy.push(trace_id=trace_id, on_trace=on_trace)
        )

    def feed(self, delta: str) -> Awaitable[str]:
        """Push one delta; await the text it releases ("" while held back or after the end)."""
        if not isinstance(delta, str):
            raise TypeError(f"a delta must be str, got {type(delta).__name__}")
        push = self._push
        if self._closed or isinstance(push, _Refused) or push.done:
            return _EMPTY
        if isinstance(push, SyncPush):
            return _Ready(push.feed(delta))
        return push.feed(delta)

    def finish(self) -> Awaitable[str]:
        """The text is complete: await the rest of the released text."""
        push = self._push
        if self._closed or isinstance(push, _Refused) or push.done:
            return _EMPTY
        if isinstance(push, SyncPush):
            return _Ready(push.finish())
        return push.finish()

    async def aclose(self) -> None:
        """Stop (the run's decision is block unless it had ended); idempotent."""
        self.close()


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


def tool_renamed(policy: Policy) -> Blocked:
    """The block of a call whose name came late or changed while it streamed: its
    arguments cannot be trusted to the rule of either name."""
    finding = Finding(
        check_id="tools",
        check_type="tools",
        action=Action.BLOCK,
        reason="tools: a tool call whose name came late or changed",
        start=0,
        end=0,
    )
    return Blocked(policy.block_message, (finding,))


#: The most runs (choices, content parts, tool calls with a rule) one guarded reply opens;
#: past it the reply is blocked, so that an upstream cannot make one reply cost without bound.
MAX_RUNS = 1024


class RunCount:
    """How many runs a guarded reply has opened (one per reply)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def take(self) -> bool:
        """One more run: whether it is within :data:`MAX_RUNS`."""
        self.n += 1
        return self.n <= MAX_RUNS


def too_many_runs(policy: Policy) -> Blocked:
    """The block of a reply that opens more than :data:`MAX_RUNS` runs."""
    finding = Finding(
        check_id="runs",
        check_type="adapter",
        action=Action.BLOCK,
        reason=f"adapter: the reply opens more than {MAX_RUNS:,} runs (choices, parts, calls)",
        start=0,
        end=0,
    )
    return Blocked(policy.block_message, (finding,))


class _Refused:
    """Stands in for the run of a guard refused by :class:`RunCount`: blocked, done."""

    __slots__ = ("blocked",)

    done = True
    result = None

    def __init__(self, blocked: Blocked) -> None:
        self.blocked = blocked

    def close(self) -> None:
        pass


def names_matter(policy: Policy) -> bool:
    """Whether a call's name decides how its arguments are checked."""
    return bool(policy.tools) or policy.unknown_tools == "block"


class ToolArgsGuard:
    """The arguments of one tool call, checked as they stream; see the module doc."""

    __slots__ = ("_held", "_text", "blocked", "mode")

    def __init__(
        self,
        policy: Policy,
        name: str | None,
        *,
        runs: RunCount | None = None,
        trace_id: str | None = None,
        on_trace: _TraceCallback | None = None,
        json: bool = True,
    ) -> None:
        tool = policy.tool_rule(name, json=json)
        self._text: TextGuard | None = None
        self._held = ""
        self.blocked: Blocked | None = None
        if tool is None:
            self.mode = "pass"
        elif isinstance(tool, Blocked):
            self.mode = "block"
            self.blocked = tool
        elif runs is not None and not runs.take():
            self.mode = "block"
            self.blocked = too_many_runs(policy)
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
    """Runs an adapter's steps (coroutines) for sync callers, inline.

    Guards made while it runs a step are sync-backed (``policy.push_sync()``), so a step
    never waits: it runs to its end in one ``send`` (no event loop, so a sync adapter also
    works in a thread whose event loop is running).  Checks that defer calls (async
    checks of your own) run on an event loop of their own (see ``SyncPush``).
    """

    __slots__ = ("_closed",)

    def __init__(self) -> None:
        self._closed = False

    def run(self, awaitable: Awaitable[T]) -> T:
        if self._closed:
            _discard(awaitable)
            raise RuntimeError("this LoopRunner is closed")
        return _inline(awaitable)

    def close(self) -> None:
        self._closed = True


@contextmanager
def inline() -> Iterator[None]:
    """Guards made inside are sync-backed (see :class:`LoopRunner`)."""
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)


def _inline(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to its end now; it must not wait for anything."""
    token = _INLINE.set(True)
    step = _wrap(awaitable)
    try:
        step.send(None)
    except StopIteration as stop:
        value: T = stop.value
        return value
    finally:
        _INLINE.reset(token)
    step.close()
    raise RuntimeError("an adapter step waited for an event loop in a sync stream")


def _discard(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)  # a coroutine that will not run
    if close is not None:
        close()


async def _wrap(awaitable: Awaitable[T]) -> T:
    return await awaitable


class SyncTextGuard(_PushGuard, Closing):
    """:class:`TextGuard` for sync callers (see the module doc)."""

    __slots__ = ()

    def __init__(
        self,
        policy: Policy,
        *,
        trace_id: str | None = None,
        on_trace: _TraceCallback | None = None,
    ) -> None:
        self._push = policy.push_sync(trace_id=trace_id, on_trace=on_trace)
        self._closed = False

    def feed(self, delta: str) -> str:
        if not isinstance(delta, str):
            raise TypeError(f"a delta must be str, got {type(delta).__name__}")
        push = self._push
        assert isinstance(push, SyncPush)
        return "" if self.done else push.feed(delta)

    def finish(self) -> str:
        push = self._push
        assert isinstance(push, SyncPush)
        return "" if self.done else push.finish()


class SyncToolArgsGuard(Closing):
    """:class:`ToolArgsGuard` for sync callers (see the module doc)."""

    __slots__ = ("_guard",)

    def __init__(
        self,
        policy: Policy,
        name: str | None,
        *,
        trace_id: str | None = None,
        on_trace: _TraceCallback | None = None,
    ) -> None:
        token = _INLINE.set(True)  # its run is sync-backed
        try:
            self._guard = ToolArgsGuard(policy, name, trace_id=trace_id, on_trace=on_trace)
        finally:
            _INLINE.reset(token)

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
        return _inline(self._guard.feed(delta))

    def finish(self) -> str:
        return _inline(self._guard.finish())

    def close(self) -> None:
        _inline(self._guard.aclose())
