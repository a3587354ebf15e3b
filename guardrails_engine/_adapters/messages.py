"""The Anthropic Messages API: events in, guarded events out (one run per text block
and tool call), the SDK's stream objects opened, and the non-streamed ``Message``
through the same runs.

A translator for :mod:`._stream` (see :mod:`.anthropic` for the semantics); the entry
points are :mod:`.anthropic`'s, as Chat's and Responses' are :mod:`.openai`'s.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeAlias

import anthropic as _sdk
import anyio
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

from .. import Blocked
from .._observe.calls import CallRecorder
from ._guard import Guard, Runs, ToolGuard
from ._stream import Translator, aclose_upstream, close_upstream, tool_text, whole

__all__ = [
    "AnthropicTranslator",
    "Event",
    "note_start",
    "open_async",
    "open_sync",
    "refused",
    "reply",
    "reply_text",
]


Event: TypeAlias = RawMessageStreamEvent

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


def _message_end(usage: Any, reason: Literal["refusal", "max_tokens"]) -> list[Any]:
    """``message_delta`` (``stop_reason``: ``"refusal"`` for a block, ``"max_tokens"``
    for a length cut) and ``message_stop``."""
    counts: dict[str, Any] = {"output_tokens": 0}
    if usage is not None:
        for name in MessageDeltaUsage.model_fields:
            value = getattr(usage, name, None)
            if value is not None:
                counts[name] = value
    details = _refusal_details() if reason == "refusal" else {}
    delta = Delta(stop_reason=reason, stop_sequence=None, **details)
    return [
        RawMessageDeltaEvent(type="message_delta", delta=delta, usage=MessageDeltaUsage(**counts)),
        RawMessageStopEvent(type="message_stop"),
    ]


# -- the translator (sans-IO: its runs are the stream's, sync or async) --------------------
@dataclass(slots=True)
class _Open:
    """A content block that started and has not stopped."""

    index: int
    text: Guard | None = None  # a text block
    tool: ToolGuard | None = None  # a tool_use block with a rule
    shown: bool = True  # its content_block_start went out


class AnthropicTranslator(Translator[Event]):
    """Events in, guarded events out: one run per text block and tool call."""

    __slots__ = ("_begun", "_ended", "_open", "_top", "_usage")

    def __init__(self, runs: Runs) -> None:
        super().__init__(runs)
        self._open: dict[int, _Open] = {}
        self._top = -1  # the highest block index seen
        self._usage: Any = None
        self._begun = False  # message_start went out
        self._ended = False  # message_delta (the stop reason) went out

    async def process(self, event: Any) -> list[Any]:
        kind = event.type
        if kind == "content_block_delta":
            return await self._delta(event)
        if kind == "content_block_start":
            return await self._start(event)
        if kind == "content_block_stop":
            return await self._block_stop(event)
        if kind == "message_start":
            self._begun = True
            message = event.message
            self._usage = getattr(message, "usage", None)
            if self.runs.rec is not None:
                note_start(self.runs.rec, message)
            if getattr(message, "content", None):  # content comes as blocks, checked
                event = event.model_copy(
                    update={"message": message.model_copy(update={"content": []})}
                )
        elif kind == "message_delta":
            self._ended = True
            if self.runs.rec is not None:
                _note_delta(self.runs.rec, event)
        elif kind == "message_stop" and type(event) is not RawMessageStopEvent:
            # A helper's stop event (a subclass): it carries the unguarded snapshot.
            return [RawMessageStopEvent(type="message_stop")]
        elif kind in _HELPER_EVENTS:
            return []  # a helper's own events (its iteration was read): not raw events
        return [event]  # message_start, message_delta, message_stop, anything new

    async def finish(self) -> list[Any]:
        return []  # (the upstream ended without its stop events: nothing more is shown)

    async def _start(self, event: Any) -> list[Any]:
        index: int = event.index
        block = event.content_block
        if block.type == "tool_use":
            tool = self.runs.tool(block.name, index)
            if tool.mode == "block" and tool.blocked is not None:
                # The call never starts: the block message takes its place.
                self._open[index] = _Open(index, shown=False)
                return self._block(tool.blocked, index)
            self._top = max(self._top, index)
            return await self._start_tool(event, tool)
        self._top = max(self._top, index)  # the highest index handed out
        if block.type == "text":
            return await self._start_text(event)
        self._open[index] = _Open(index)
        return [event]

    async def _start_text(self, event: Any) -> list[Any]:
        index: int = event.index
        block = event.content_block
        guard = self.runs.text(index=index)
        self._open[index] = _Open(index, text=guard)
        citations = getattr(block, "citations", None)
        if citations:  # quoted text is text too: each citation is checked on its own
            kept = []
            for citation in citations:
                checked = await _cited(self.runs, citation, index)
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
        piece = await guard.push(block.text)
        if piece:
            out.append(_text_delta(index, piece))
        if guard.done:  # blocked, or cut by a length check
            out += self._cut() if guard.blocked is None else self._block(guard.blocked, index)
        return out

    async def _start_tool(self, event: Any, tool: ToolGuard) -> list[Any]:
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
        piece = await tool.push(json.dumps(block.input, ensure_ascii=False))
        return out + self._tool_piece(tool, index, piece)

    async def _delta(self, event: Any) -> list[Any]:
        index: int = event.index
        block = self._open.get(index)
        delta = event.delta
        if block is not None and block.tool is not None and delta.type == "input_json_delta":
            piece = await block.tool.push(delta.partial_json)
            return self._tool_piece(block.tool, index, piece)
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
            pushed = guard.pushed(delta.text)
            text = pushed if isinstance(pushed, str) else await pushed
            out: list[Any] = []
            if text == delta.text:
                out.append(event)  # released as it came (the common case): the same event
            elif text:
                out.append(
                    event.model_copy(update={"delta": delta.model_copy(update={"text": text})})
                )
            if guard.done:  # blocked, or cut by a length check
                out += self._cut() if guard.blocked is None else self._block(guard.blocked, index)
            return out
        # citations_delta: its quoted text is checked on its own (dropped if blocked).
        checked = await _cited(self.runs, delta.citation, index)
        if checked is None:
            return []
        if checked is delta.citation:
            return [event]
        return [event.model_copy(update={"delta": delta.model_copy(update={"citation": checked})})]

    def shown(self, events: list[Any]) -> str | None:
        got: str | None = None
        for event in events:
            if event.type == "content_block_delta":
                delta = event.delta
                if delta.type == "text_delta":
                    got = (got or "") + delta.text
                elif delta.type == "input_json_delta":
                    got = got or ""
        return got

    def _tool_piece(self, tool: ToolGuard, index: int, piece: str) -> list[Any]:
        out: list[Any] = [_json_delta(index, piece)] if piece else []
        if tool.blocked is not None:
            out += self._block(tool.blocked, index)
        return out

    async def _block_stop(self, event: Any) -> list[Any]:
        index: int = event.index
        block = self._open.get(index)
        if block is None:
            return [event if type(event) is RawContentBlockStopEvent else _stop(index)]
        out: list[Any] = []
        if block.text is not None:
            guard = block.text
            piece = await guard.push(None)
            if piece:
                out.append(_text_delta(index, piece))
            if guard.blocked is not None:
                return out + self._block(guard.blocked, index)
        elif block.tool is not None:
            tool = block.tool
            piece = await tool.push(None)
            if tool.blocked is not None:
                return out + self._block(tool.blocked, index)
            if piece:
                out.append(_json_delta(index, piece))
        del self._open[index]
        out.append(event if type(event) is RawContentBlockStopEvent else _stop(index))
        return out

    def _cut(self) -> list[Any]:
        """A length check cut a text block: every open block stops, and the message ends
        the API's way for a length cut (``stop_reason: "max_tokens"``); the stream stops
        reading."""
        self.cut = True
        out: list[Any] = [_stop(i) for i, block in sorted(self._open.items()) if block.shown]
        self._open.clear()
        return out + _message_end(self._usage, "max_tokens")

    def expired(self, blocked: Blocked) -> list[Any] | None:
        """As a block: the message in the last open text block (or a new one), every
        open block stops, ``stop_reason: "refusal"``."""
        self.blocked = blocked
        if not self._begun:
            return None
        if self._ended:
            return []
        texts = [i for i, block in self._open.items() if block.text is not None]
        return self._block(blocked, max(texts, default=-1))

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
        return out + _message_end(self._usage, "refusal")


def note_start(rec: CallRecorder, message: Any) -> None:
    rec.response(id=getattr(message, "id", None) or None, model=getattr(message, "model", None))
    usage = getattr(message, "usage", None)
    if usage is not None:
        rec.usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    rec.finish_reason(getattr(message, "stop_reason", None))


def _note_delta(rec: CallRecorder, event: Any) -> None:
    usage = event.usage
    if usage is not None:
        rec.usage(
            input_tokens=getattr(usage, "input_tokens", None), output_tokens=usage.output_tokens
        )
    rec.finish_reason(event.delta.stop_reason)


def reply_text(message: Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


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


async def _cited(runs: Runs, citation: Any, index: int) -> Any:
    """``citation`` with its ``cited_text`` checked by the policy (a run of its own, not
    counted; part ``"citation"`` of block ``index`` in the trace): repaired, or ``None``
    if it is blocked."""
    text = getattr(citation, "cited_text", None)
    if not isinstance(text, str) or not text:
        return citation
    guard = runs.text(counted=False, index=index, part="citation")
    shown = await whole(guard, text)
    if guard.blocked is not None:
        return None
    return citation if shown == text else citation.model_copy(update={"cited_text": shown})


async def open_async(source: Any) -> tuple[AsyncIterator[Any], Callable[[], Awaitable[None]]]:
    """The events of an async source: a helper's raw stream where it has one (a manager
    is entered here, and left when the stream is closed)."""
    manager = None
    if isinstance(source, AsyncMessageStreamManager):
        manager = source
        source = await source.__aenter__()
    raw = _raw_of(source) if isinstance(source, AsyncMessageStream) else None
    target: Any = raw if raw is not None else source
    it = target if hasattr(target, "__anext__") else aiter(target)
    if manager is None:
        return it, partial(aclose_upstream, source)

    async def leave() -> None:
        with anyio.CancelScope(shield=True):
            await manager.__aexit__(None, None, None)

    return it, leave


def open_sync(source: Any) -> tuple[Iterator[Any], Callable[[], None]]:
    """:func:`open_async` for a sync source."""
    manager = None
    if isinstance(source, MessageStreamManager):
        manager = source
        source = source.__enter__()
    raw = _raw_of(source) if isinstance(source, MessageStream) else None
    target: Any = raw if raw is not None else source
    it = target if hasattr(target, "__next__") else iter(target)
    if manager is None:
        return it, partial(close_upstream, source)
    return it, partial(manager.__exit__, None, None, None)


# -- non-streamed replies ----------------------------------------------------------------
async def reply(runs: Runs, message: Message) -> Message:
    """A copy of ``message`` with its text blocks, their citations and each
    ``tool_use.input`` (as ``json.dumps(input)``, parsed back) checked through runs of
    the call; a block keeps the blocks before it and ends with the block message."""
    content = list(message.content)
    for position, block in enumerate(message.content):
        if block.type == "text":
            guard = runs.text(index=position)
            text = await whole(guard, block.text)
            if guard.blocked is not None:
                return refused(message, content[:position], guard.blocked.message)
            update: dict[str, Any] = {"text": text}
            if text != block.text and "parsed_output" in type(block).model_fields:
                update["parsed_output"] = None  # messages.parse(): parsed from the unguarded text
            if block.citations:  # quoted text is text too: each is checked on its own
                kept = []
                for citation in block.citations:
                    checked = await _cited(runs, citation, position)
                    if checked is not None:
                        kept.append(checked)
                update["citations"] = kept or None
            content[position] = block.model_copy(update=update)
        elif block.type == "tool_use":
            args = json.dumps(block.input, ensure_ascii=False)
            shown = await tool_text(runs, block.name, args, position)
            if isinstance(shown, Blocked):
                return refused(message, content[:position], shown.message)
            if shown == args:
                continue
            try:
                value = json.loads(shown)
            except ValueError:
                value = None
            if not isinstance(value, dict):  # repaired into something else: fail closed
                return refused(message, content[:position], runs.policy.block_message)
            content[position] = block.model_copy(update={"input": value})
    return message.model_copy(update={"content": content})


def refused(message: Message, kept: list[Any], text: str) -> Message:
    """``message`` cut at a block: the blocks before it, the block message, ``refusal``."""
    if text:
        kept.append(TextBlock(type="text", text=text))
    update: dict[str, Any] = {"content": kept, "stop_reason": "refusal", "stop_sequence": None}
    if "stop_details" in type(message).model_fields:
        update.update(_refusal_details())
    return message.model_copy(update=update)
