"""Guard Anthropic Messages: streamed events, the ``messages.stream()`` helper, replies.

>>> from guardrails_engine import anthropic as ge_anthropic          # doctest: +SKIP
>>> stream = await client.messages.create(..., stream=True)          # doctest: +SKIP
>>> async for event in ge_anthropic.guard(policy, stream):           # doctest: +SKIP
...     ...                               # RawMessageStreamEvent objects, text repaired

Public API (re-exported by ``guardrails_engine.anthropic``)::

    guard(policy, stream) -> GuardedStream            # AsyncAnthropic: messages.create(
                                                      # stream=True), messages.stream(...)
    guard_sync(policy, stream) -> SyncGuardedStream   # the same for the sync client
    await guard_reply(policy, message) -> Message     # a non-streamed Message
    guard_reply_sync(policy, message) -> Message      # the same, sync

What comes out has the SDK's own types and shape (``message_start``,
``content_block_start``/``_delta``/``_stop``, ``message_delta``, ``message_stop``),
with the ids, model and usage of the reply.

- Each content block (by ``index``) is its own run of the policy.  ``text_delta``s are
  guarded and the released text is written back into ``text_delta`` events (a delta
  held back gives no event; text released at the block's end comes just before its
  ``content_block_stop``).  Blocks that are neither text nor ``tool_use`` (thinking,
  server tools, their results) pass through; a citation's ``cited_text`` (in a
  ``citations_delta`` or a text block's ``citations``) is checked by the policy on its
  own: repaired, or the citation dropped if it is blocked.
- ``tool_use`` blocks: the arguments (``input_json_delta``) are checked by the tool's
  rule in ``policy.tools`` as they stream.  Release ``complete`` (the default): the
  block starts at once (id, name) and its guarded arguments come as one
  ``input_json_delta`` just before its ``content_block_stop``, once complete and
  valid; ``incremental``: as released.  A tool without a rule passes through, or is a
  block when ``unknown_tools: block`` (its block never starts).
- A block: the text released so far, then the block message as text (in the blocked
  text block, or in a new text block after a blocked tool call), then the native end:
  ``content_block_stop`` for every open block, ``message_delta`` with
  ``stop_reason: "refusal"`` (usage: the last the upstream reported, in its
  ``message_start``), ``message_stop``.  The upstream SDK stream is closed at once,
  before those events are handed out (its HTTP response closes).
- The upstream is also closed when the consumer stops early (``close()``/``aclose()``,
  ``with``/``async with``), when it is cancelled, and when anything raises.  Iterating
  a guarded stream after closing it early raises :class:`guardrails_engine.StreamStateError`.
- The sync stream runs the policy inline (sync push runs, ``_guard.LoopRunner``): no
  event loop is needed, so it also works in a thread whose event loop is running.
- The ``messages.stream()`` helper: the guard reads the helper's raw event stream, so
  the helper's own ``text_stream``, ``get_final_message()`` and snapshots (which
  would hold the unguarded reply) are not filled: use the guarded events.
- A ``Message`` (not streamed) gives a new ``Message``: text blocks guarded, each
  ``tool_use.input`` guarded as ``json.dumps(input)`` and parsed back; a block keeps
  the blocks before it, puts the block message in a text block and drops the rest,
  with ``stop_reason: "refusal"``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from dataclasses import dataclass
from typing import Any, TypeAlias

try:
    import anthropic as _sdk
    from anthropic.lib.streaming import (
        AsyncMessageStream,
        AsyncMessageStreamManager,
        MessageStream,
        MessageStreamManager,
    )
    from anthropic.types import (
        InputJSONDelta,
        Message,
        MessageDeltaUsage,
        RawContentBlockDeltaEvent,
        RawContentBlockStartEvent,
        RawContentBlockStopEvent,
        RawMessageDeltaEvent,
        RawMessageStopEvent,
        RawMessageStreamEvent,
        TextBlock,
        TextDelta,
    )
    from anthropic.types.raw_message_delta_event import Delta
except ImportError as exc:  # pragma: no cover - tested with the SDK hidden
    raise ImportError(
        "guardrails_engine.anthropic needs the Anthropic SDK: "
        "pip install 'guardrails-engine[anthropic]'"
    ) from exc

import anyio

from .. import Blocked, Policy, StreamStateError
from .._core.closing import AsyncClosing, Closing, event_loop, schedule_close
from ._guard import LoopRunner, RunCount, TextGuard, ToolArgsGuard, inline, unknown_tool

__all__ = [
    "GuardedStream",
    "SyncGuardedStream",
    "guard",
    "guard_reply",
    "guard_reply_sync",
    "guard_sync",
]

Event: TypeAlias = RawMessageStreamEvent
#: What the core asks its driver to await (a guard's feed or finish).
_Step: TypeAlias = Generator[Awaitable[str], str, list[Any]]

#: Events the ``messages.stream()`` helper adds to the raw ones (dropped when it is
#: iterated as a generic source; the guard reads its raw stream when it can).
_HELPER_EVENTS = frozenset({"text", "input_json", "citation", "thinking", "signature"})


# -- building events of the SDK's types --------------------------------------------------
def _text_delta(index: int, text: str) -> RawContentBlockDeltaEvent:
    return RawContentBlockDeltaEvent(
        type="content_block_delta", index=index, delta=TextDelta(type="text_delta", text=text)
    )


def _json_delta(index: int, partial_json: str) -> RawContentBlockDeltaEvent:
    return RawContentBlockDeltaEvent(
        type="content_block_delta",
        index=index,
        delta=InputJSONDelta(type="input_json_delta", partial_json=partial_json),
    )


def _stop(index: int) -> RawContentBlockStopEvent:
    return RawContentBlockStopEvent(type="content_block_stop", index=index)


def _refusal_details() -> dict[str, Any]:
    """``stop_details`` of a refusal, where this SDK has the field."""
    if "stop_details" not in Delta.model_fields:  # pragma: no cover - older SDKs
        return {}
    from anthropic.types import RefusalStopDetails

    return {"stop_details": RefusalStopDetails(type="refusal")}


def _refusal_end(usage: Any) -> list[Any]:
    """``message_delta`` (``stop_reason: "refusal"``) and ``message_stop``."""
    counts: dict[str, Any] = {"output_tokens": 0}
    if usage is not None:
        for name in MessageDeltaUsage.model_fields:
            value = getattr(usage, name, None)
            if value is not None:
                counts[name] = value
    delta = Delta(stop_reason="refusal", stop_sequence=None, **_refusal_details())
    return [
        RawMessageDeltaEvent(type="message_delta", delta=delta, usage=MessageDeltaUsage(**counts)),
        RawMessageStopEvent(type="message_stop"),
    ]


# -- the per-message state machine (sans-IO: the driver awaits what it yields) -------------
@dataclass(slots=True)
class _Open:
    """A content block that started and has not stopped."""

    index: int
    text: TextGuard | None = None  # a text block
    tool: ToolArgsGuard | None = None  # a tool_use block with a rule
    shown: bool = True  # its content_block_start went out


class _Core:
    """Events in, guarded events out: one run per text block and tool call."""

    __slots__ = ("_open", "_policy", "_runs", "_top", "_usage", "blocked")

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._open: dict[int, _Open] = {}
        self._runs = RunCount()  # (the runs this reply opened: at most MAX_RUNS)
        self._top = -1  # the highest block index seen
        self._usage: Any = None
        self.blocked: Blocked | None = None

    def forget(self) -> list[TextGuard | ToolArgsGuard]:
        """The guards of the blocks still open (to close); the blocks are forgotten."""
        out: list[TextGuard | ToolArgsGuard] = []
        for block in self._open.values():
            if block.text is not None:
                out.append(block.text)
            if block.tool is not None:
                out.append(block.tool)
        self._open.clear()
        return out

    def process(self, event: Any) -> _Step:
        kind = event.type
        if kind == "content_block_delta":
            return (yield from self._delta(event))
        if kind == "content_block_start":
            return (yield from self._start(event))
        if kind == "content_block_stop":
            return (yield from self._block_stop(event))
        if kind == "message_start":
            message = event.message
            self._usage = getattr(message, "usage", None)
            if getattr(message, "content", None):  # content comes as blocks, checked
                event = event.model_copy(
                    update={"message": message.model_copy(update={"content": []})}
                )
        return [event]  # message_start, message_delta, message_stop, anything new

    def _start(self, event: Any) -> _Step:
        index: int = event.index
        block = event.content_block
        if block.type == "tool_use":
            tool = ToolArgsGuard(self._policy, block.name, runs=self._runs)
            if tool.mode == "block" and tool.blocked is not None:
                # The call never starts: the block message takes its place.
                self._open[index] = _Open(index, shown=False)
                return self._block(tool.blocked, index)
            self._top = max(self._top, index)
            return (yield from self._start_tool(event, tool))
        self._top = max(self._top, index)  # the highest index handed out
        if block.type == "text":
            return (yield from self._start_text(event))
        self._open[index] = _Open(index)
        return [event]

    def _start_text(self, event: Any) -> _Step:
        index: int = event.index
        block = event.content_block
        guard = TextGuard(self._policy, runs=self._runs)
        self._open[index] = _Open(index, text=guard)
        citations = getattr(block, "citations", None)
        if citations:  # quoted text is text too: each citation is checked on its own
            kept = []
            for citation in citations:
                checked = yield from self._cited(citation)
                if checked is not None:
                    kept.append(checked)
            if kept != citations:
                block = block.model_copy(update={"citations": kept or None})
                event = event.model_copy(update={"content_block": block})
        if not block.text:
            return [event]
        # Text in the start event itself: guarded like a delta.
        out: list[Any] = [
            event.model_copy(update={"content_block": block.model_copy(update={"text": ""})})
        ]
        piece = yield guard.feed(block.text)
        if piece:
            out.append(_text_delta(index, piece))
        if guard.blocked is not None:
            out += self._block(guard.blocked, index)
        return out

    def _start_tool(self, event: Any, tool: ToolArgsGuard) -> _Step:
        index: int = event.index
        block = event.content_block
        if tool.mode == "pass":
            self._open[index] = _Open(index)
            return [event]
        self._open[index] = _Open(index, tool=tool)
        if not block.input:  # the API starts a call with {}: arguments come as deltas
            return [event]
        out: list[Any] = [
            event.model_copy(update={"content_block": block.model_copy(update={"input": {}})})
        ]
        piece = yield tool.feed(json.dumps(block.input, ensure_ascii=False))
        return out + (yield from self._tool_piece(tool, index, piece))

    def _delta(self, event: Any) -> _Step:
        index: int = event.index
        block = self._open.get(index)
        delta = event.delta
        if block is not None and block.tool is not None and delta.type == "input_json_delta":
            piece = yield block.tool.feed(delta.partial_json)
            return (yield from self._tool_piece(block.tool, index, piece))
        if block is None or (block.tool is not None):
            # A delta outside any open block, or one that is not arguments in a checked
            # tool call (the SDK ignores it too), is not shown unchecked.
            return []
        if block.text is None:
            return [] if delta.type == "text_delta" else [event]
        if delta.type not in ("text_delta", "citations_delta"):
            return []  # arguments, thinking... in a text block: not shown unchecked
        if delta.type == "text_delta":
            guard = block.text
            piece = yield guard.feed(delta.text)
            out: list[Any] = []
            if piece == delta.text:
                out.append(event)  # released as it came (the common case): the same event
            elif piece:
                out.append(
                    event.model_copy(update={"delta": delta.model_copy(update={"text": piece})})
                )
            if guard.blocked is not None:
                out += self._block(guard.blocked, index)
            return out
        # citations_delta: its quoted text is checked on its own (dropped if blocked).
        checked = yield from self._cited(delta.citation)
        if checked is None:
            return []
        if checked is delta.citation:
            return [event]
        return [event.model_copy(update={"delta": delta.model_copy(update={"citation": checked})})]

    def _cited(self, citation: Any) -> Generator[Awaitable[str], str, Any]:
        """``citation`` with its ``cited_text`` checked by the policy (a run of its own):
        repaired, or ``None`` if it is blocked."""
        text = getattr(citation, "cited_text", None)
        if not isinstance(text, str) or not text:
            return citation
        guard = TextGuard(self._policy)
        shown = yield guard.feed(text)
        shown += yield guard.finish()
        if guard.blocked is not None:
            return None
        return citation if shown == text else citation.model_copy(update={"cited_text": shown})

    def _tool_piece(self, tool: ToolArgsGuard, index: int, piece: str) -> _Step:
        out: list[Any] = [_json_delta(index, piece)] if piece else []
        if tool.blocked is not None:
            out += self._block(tool.blocked, index)
        return out
        yield  # a generator  # pragma: no cover

    def _block_stop(self, event: Any) -> _Step:
        index: int = event.index
        block = self._open.get(index)
        if block is None:
            return [event]
        out: list[Any] = []
        if block.text is not None:
            guard = block.text
            piece = yield guard.finish()
            if piece:
                out.append(_text_delta(index, piece))
            if guard.blocked is not None:
                return out + self._block(guard.blocked, index)
        elif block.tool is not None:
            tool = block.tool
            piece = yield tool.finish()
            if tool.blocked is not None:
                return out + self._block(tool.blocked, index)
            if piece:
                out.append(_json_delta(index, piece))
        del self._open[index]
        out.append(event)
        return out

    def _block(self, blocked: Blocked, at: int) -> list[Any]:
        """The native end of a blocked reply; the run at ``at`` blocked."""
        self.blocked = blocked
        message = blocked.message
        out: list[Any] = []
        placed = False
        for index in sorted(self._open):
            block = self._open[index]
            if not block.shown:
                continue
            if index == at and block.text is not None and message:
                out.append(_text_delta(index, message))
                placed = True
            out.append(_stop(index))
        if message and not placed:
            index = self._top + 1
            self._top = index
            out.append(
                RawContentBlockStartEvent(
                    type="content_block_start",
                    index=index,
                    content_block=TextBlock(type="text", text=""),
                )
            )
            out.append(_text_delta(index, message))
            out.append(_stop(index))
        return out + _refusal_end(self._usage)


# -- reading the SDK's stream objects -----------------------------------------------------
def _raw_of(helper: object) -> object | None:
    """The raw event stream of a ``messages.stream()`` helper stream.

    Read directly: the helper's own iteration keeps a snapshot of the unguarded reply
    and raises, on arguments that are not JSON, an error that quotes them.
    """
    raw = getattr(helper, "_raw_stream", None)
    if isinstance(raw, _sdk.Stream | _sdk.AsyncStream):
        return raw
    return None


def _raw_event(event: Any) -> Any | None:
    """A raw event of a helper's iteration (``None`` for the events it adds)."""
    kind = getattr(event, "type", None)
    if kind in _HELPER_EVENTS:
        return None
    # The helper's stop events are subclasses that carry the unguarded snapshot.
    if kind == "message_stop":
        return RawMessageStopEvent(type="message_stop")
    if kind == "content_block_stop":
        return _stop(event.index)
    return event


# -- the sync stream ----------------------------------------------------------------------
class SyncGuardedStream(Closing):
    """Guarded raw events of a sync Anthropic stream (see the module doc).

    Iterate it; ``close()`` (or ``with``) stops early and closes the upstream.
    """

    __slots__ = (
        "_closed",
        "_core",
        "_done",
        "_early",
        "_helper",
        "_iter",
        "_manager",
        "_pending",
        "_runner",
        "_source",
        "_upstream",
    )

    def __init__(self, policy: Policy, source: Any) -> None:
        self._source = source
        self._core = _Core(policy)
        self._runner = LoopRunner()
        self._pending: deque[Any] = deque()
        self._iter: Iterator[Any] | None = None
        self._upstream: Any = None  # what close() is called on
        self._manager: Any = None  # a helper's manager that the guard entered
        self._helper = False  # events come from a helper's own iteration
        self._done = False
        self._early = False
        self._closed = False

    @property
    def blocked(self) -> Blocked | None:
        """The block (message and findings) once the reply was blocked, else ``None``."""
        return self._core.blocked

    def __repr__(self) -> str:
        state = "blocked" if self._core.blocked else "done" if self._done else "open"
        return f"<{type(self).__name__} {state}>"

    def __iter__(self) -> SyncGuardedStream:
        return self

    def __next__(self) -> Event:
        while not self._pending:
            if self._early:
                raise StreamStateError("the guarded stream was closed before it ended")
            if self._done:
                raise StopIteration
            self._pull()
        event: Event = self._pending.popleft()
        return event

    def _open(self) -> Iterator[Any]:
        source = self._source
        if isinstance(source, MessageStreamManager):
            self._manager = source
            source = source.__enter__()
        raw = _raw_of(source) if isinstance(source, MessageStream) else None
        if raw is None and isinstance(source, MessageStream):
            self._helper = True
        self._upstream = source
        target: Any = raw if raw is not None else source
        return target if hasattr(target, "__next__") else iter(target)

    def _pull(self) -> None:
        try:
            if self._iter is None:
                self._iter = self._open()
            try:
                event = next(self._iter)
            except StopIteration:
                self._done = True
                self._close()
                return
            if self._helper:
                event = _raw_event(event)
                if event is None:
                    return
            out = self._drive(self._core.process(event))
            if self._core.blocked is not None:
                self._done = True
                self._close()  # before the closing events go out
            self._pending.extend(out)
        except BaseException:
            self._done = True
            self._close()
            raise

    def _drive(self, step: _Step) -> list[Any]:
        try:
            with inline():  # the guards it makes are sync-backed: no event loop
                awaitable = next(step)
                while True:
                    awaitable = step.send(self._runner.run(awaitable))
        except StopIteration as stop:
            result: list[Any] = stop.value
            return result
        finally:
            step.close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            upstream = self._upstream if self._upstream is not None else self._source
            if self._manager is not None:
                self._manager.__exit__(None, None, None)
            else:
                close = getattr(upstream, "close", None)
                if close is not None:
                    close()
        finally:
            try:
                for guard in self._core.forget():
                    self._runner.run(guard.aclose())
            finally:
                self._runner.close()

    def close(self) -> None:
        """Stop: close the upstream stream (and its HTTP response)."""
        if not self._done:
            self._done = True
            self._early = True
        self._close()

    def __del__(self) -> None:
        # Dropped without being closed (a consumer that broke out of its loop).
        if not self._closed and self._iter is not None:
            try:
                self._close()
            except Exception:  # pragma: no cover - nothing to report it to
                pass


# -- the async stream ---------------------------------------------------------------------
class GuardedStream(AsyncClosing):
    """Guarded raw events of an async Anthropic stream (see the module doc).

    Iterate it with ``async for``; ``aclose()`` (or ``async with``) stops early and
    closes the upstream, as does a cancellation of the consumer.
    """

    __slots__ = (
        "_closed",
        "_core",
        "_done",
        "_early",
        "_helper",
        "_iter",
        "_loop",
        "_manager",
        "_pending",
        "_source",
        "_upstream",
    )

    def __init__(self, policy: Policy, source: Any) -> None:
        self._source = source
        self._core = _Core(policy)
        self._pending: deque[Any] = deque()
        self._iter: AsyncIterator[Any] | None = None
        self._loop = event_loop()  # where to close it if it is dropped unclosed
        self._upstream: Any = None
        self._manager: Any = None
        self._helper = False
        self._done = False
        self._early = False
        self._closed = False

    @property
    def blocked(self) -> Blocked | None:
        """The block (message and findings) once the reply was blocked, else ``None``."""
        return self._core.blocked

    def __repr__(self) -> str:
        state = "blocked" if self._core.blocked else "done" if self._done else "open"
        return f"<{type(self).__name__} {state}>"

    def __aiter__(self) -> GuardedStream:
        return self

    async def __anext__(self) -> Event:
        while not self._pending:
            if self._early:
                raise StreamStateError("the guarded stream was closed before it ended")
            if self._done:
                raise StopAsyncIteration
            await self._pull()
        event: Event = self._pending.popleft()
        return event

    async def _open(self) -> AsyncIterator[Any]:
        source = self._source
        if isinstance(source, AsyncMessageStreamManager):
            self._manager = source
            source = await source.__aenter__()
        raw = _raw_of(source) if isinstance(source, AsyncMessageStream) else None
        if raw is None and isinstance(source, AsyncMessageStream):
            self._helper = True
        self._upstream = source
        target: Any = raw if raw is not None else source
        return target if hasattr(target, "__anext__") else aiter(target)

    async def _pull(self) -> None:
        try:
            if self._iter is None:
                self._iter = await self._open()
            try:
                event = await self._iter.__anext__()
            except StopAsyncIteration:
                self._done = True
                await self._close()
                return
            if self._helper:
                event = _raw_event(event)
                if event is None:
                    return
            out = await self._drive(self._core.process(event))
            if self._core.blocked is not None:
                self._done = True
                await self._close()  # before the closing events go out
            self._pending.extend(out)
        except BaseException:
            self._done = True
            await self._close()
            raise

    @staticmethod
    async def _drive(step: _Step) -> list[Any]:
        try:
            awaitable = next(step)
            while True:
                awaitable = step.send(await awaitable)
        except StopIteration as stop:
            result: list[Any] = stop.value
            return result
        finally:
            step.close()

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            try:
                if self._manager is not None:
                    await self._manager.__aexit__(None, None, None)
                else:
                    upstream = self._upstream if self._upstream is not None else self._source
                    await _aclose(upstream)
            finally:
                for guard in self._core.forget():
                    await guard.aclose()

    async def aclose(self) -> None:
        """Stop: close the upstream stream (and its HTTP response)."""
        if not self._done:
            self._done = True
            self._early = True
        await self._close()

    def __del__(self) -> None:
        # Dropped without being closed (a consumer that broke out of its loop): close
        # the upstream on the event loop it ran in.
        if self._closed or self._iter is None:
            return
        schedule_close(self._loop, self.aclose)


async def _aclose(upstream: Any) -> None:
    """Close an async source: ``aclose()``, or the SDK's async ``close()``."""
    close: Callable[[], Any] | None = getattr(upstream, "aclose", None)
    if close is None:
        close = getattr(upstream, "close", None)
    if close is None:
        return
    result = close()
    if isinstance(result, Awaitable):
        await result


# -- non-streamed replies ----------------------------------------------------------------
@dataclass(slots=True)
class _Check:
    """One text to check in a reply: a text block's text or a tool call's arguments."""

    policy: Policy
    text: str
    tool: bool


def _checks(policy: Policy, message: Message) -> Iterator[tuple[int, _Check | Blocked | None]]:
    """What to check for each block: ``None`` passes, a ``Blocked`` blocks at once."""
    for position, block in enumerate(message.content):
        if block.type == "text":
            yield position, _Check(policy, block.text, False)
        elif block.type == "tool_use":
            rule = policy.tools.get(block.name)
            if rule is not None:
                args = json.dumps(block.input, ensure_ascii=False)
                yield position, _Check(rule.policy, args, True)
            elif policy.unknown_tools == "block":
                yield position, unknown_tool(policy)
        else:
            yield position, None


def _rebuilt(message: Message, checked: list[tuple[int, Any]]) -> Message:
    """``message`` with ``checked`` (position, new block or ``Blocked``) applied."""
    content = list(message.content)
    for position, value in checked:
        if isinstance(value, Blocked):
            kept = content[:position]
            if value.message:
                kept.append(TextBlock(type="text", text=value.message))
            update = {"content": kept, "stop_reason": "refusal", "stop_sequence": None}
            if "stop_details" in type(message).model_fields:
                update.update(_refusal_details())
            return message.model_copy(update=update)
        content[position] = value
    return message.model_copy(update={"content": content})


def _apply(block: Any, check: _Check, text: str, blocked: bool, policy: Policy) -> Any:
    """The block rebuilt with its checked text, or a ``Blocked``."""
    if blocked:
        return Blocked(text, ())
    if not check.tool:
        update: dict[str, Any] = {"text": text}
        if text != block.text and "parsed_output" in type(block).model_fields:
            update["parsed_output"] = None  # messages.parse(): parsed from the unguarded text
        citations = getattr(block, "citations", None)
        if citations:  # quoted text is text too: each is checked on its own
            update["citations"] = _cited_sync(policy, citations) or None
        return block.model_copy(update=update)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):  # repaired into something else: fail closed
        return Blocked(policy.block_message, ())
    return block.model_copy(update={"input": value})


def _cited_sync(policy: Policy, citations: list[Any]) -> list[Any]:
    """The citations with their ``cited_text`` checked (repaired; dropped if blocked)."""
    kept = []
    for citation in citations:
        text = getattr(citation, "cited_text", None)
        if not isinstance(text, str) or not text:
            kept.append(citation)
            continue
        result = policy.validate_sync(text)
        if result.blocked:
            continue
        kept.append(
            citation
            if result.text == text
            else citation.model_copy(update={"cited_text": result.text})
        )
    return kept


def _check_reply(policy: object, message: object, name: str) -> None:
    _check_policy(policy, name)
    if not isinstance(message, Message):
        raise TypeError(
            f"{name}() takes an Anthropic Message, got {type(message).__name__}"
            + (
                ": use guard() or guard_sync() for a stream"
                if hasattr(message, "__iter__") or hasattr(message, "__aiter__")
                else ""
            )
        )


def guard_reply_sync(policy: Policy, message: Message) -> Message:
    """A new ``Message`` with its text and tool arguments guarded (see the module doc)."""
    _check_reply(policy, message, "guard_reply_sync")
    checked: list[tuple[int, Any]] = []
    for position, check in _checks(policy, message):
        if check is None:
            continue
        if isinstance(check, Blocked):
            checked.append((position, check))
            break
        result = check.policy.validate_sync(check.text)
        blocked = result.blocked is not None
        value = _apply(message.content[position], check, result.text, blocked, policy)
        checked.append((position, value))
        if isinstance(value, Blocked):
            break
    return _rebuilt(message, checked)


async def guard_reply(policy: Policy, message: Message) -> Message:
    """:func:`guard_reply_sync` with ``await policy.validate`` (long texts and NER run in
    worker threads)."""
    _check_reply(policy, message, "guard_reply")
    checked: list[tuple[int, Any]] = []
    for position, check in _checks(policy, message):
        if check is None:
            continue
        if isinstance(check, Blocked):
            checked.append((position, check))
            break
        result = await check.policy.validate(check.text)
        blocked = result.blocked is not None
        value = _apply(message.content[position], check, result.text, blocked, policy)
        checked.append((position, value))
        if isinstance(value, Blocked):
            break
    return _rebuilt(message, checked)


# -- the entry points ---------------------------------------------------------------------
_AsyncSource: TypeAlias = (
    "_sdk.AsyncStream[RawMessageStreamEvent] | AsyncMessageStream[Any]"
    " | AsyncMessageStreamManager[Any] | AsyncIterable[RawMessageStreamEvent]"
)
_SyncSource: TypeAlias = (
    "_sdk.Stream[RawMessageStreamEvent] | MessageStream[Any] | MessageStreamManager[Any]"
    " | Iterable[RawMessageStreamEvent]"
)
_SYNC_KINDS = (_sdk.Stream, MessageStream, MessageStreamManager)
_ASYNC_KINDS = (_sdk.AsyncStream, AsyncMessageStream, AsyncMessageStreamManager)


def _check_policy(policy: object, name: str) -> None:
    if not isinstance(policy, Policy):
        raise TypeError(f"{name}() takes a Policy first, got {type(policy).__name__}")


def guard(policy: Policy, stream: _AsyncSource) -> GuardedStream:
    """Guard an async Anthropic stream: ``await client.messages.create(..., stream=True)``
    of ``AsyncAnthropic``, its ``messages.stream(...)`` helper (the manager, which the
    guard enters and leaves, or the stream it gives), or any async iterable of raw
    events.  Iterate the result with ``async for``; ``async with`` or ``aclose()`` to
    stop early.
    """
    _check_policy(policy, "guard")
    if isinstance(stream, _SYNC_KINDS) or not (
        isinstance(stream, _ASYNC_KINDS) or hasattr(stream, "__aiter__")
    ):
        raise TypeError(
            f"guard() takes an async Anthropic stream, got {type(stream).__name__}: "
            "use guard_sync() for the sync client, guard_reply() for a Message"
        )
    return GuardedStream(policy, stream)


def guard_sync(policy: Policy, stream: _SyncSource) -> SyncGuardedStream:
    """Guard a sync Anthropic stream (``Anthropic``'s ``messages.create(..., stream=True)``,
    its ``messages.stream(...)`` helper, or any iterable of raw events)."""
    _check_policy(policy, "guard_sync")
    if isinstance(stream, _ASYNC_KINDS) or not (
        isinstance(stream, _SYNC_KINDS) or hasattr(stream, "__iter__")
    ):
        raise TypeError(
            f"guard_sync() takes a sync Anthropic stream, got {type(stream).__name__}: "
            "use guard() for the async client, guard_reply_sync() for a Message"
        )
    return SyncGuardedStream(policy, stream)
