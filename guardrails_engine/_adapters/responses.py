"""OpenAI Responses: events in, guarded events out (one run per content part and call).

A translator for :mod:`._stream` (see ``guardrails_engine/openai.py`` for the
semantics), and the non-streamed ``Response`` through the same runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from openai.types.responses import (
    Response,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCustomToolCall,
    ResponseCustomToolCallInputDeltaEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseRefusalDeltaEvent,
    ResponseRefusalDoneEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from openai.types.responses.response import IncompleteDetails

from .. import Blocked

if TYPE_CHECKING:
    from .._observe.calls import CallRecorder
from ._guard import Guard, Runs, ToolGuard, names_matter
from ._logprobs import Logprobs
from ._stream import Translator, tool_text, whole

__all__ = ["ResponsesTranslator", "note_reply", "reply", "reply_text"]


class _Stop(Exception):
    """A run was blocked: end the stream (internal control flow, never escapes)."""

    def __init__(self, key: int, released: str, blocked: Blocked, *, part: bool = False) -> None:
        super().__init__("blocked")
        self.key = key
        self.released = released
        self.blocked = blocked
        #: A text or refusal part was blocked (``key`` is not used: an output index is
        #: whatever int the upstream sent).
        self.part = part


class _Part:
    """One content part of a message item (output text or refusal): its own run."""

    __slots__ = ("guard", "item_id", "kind", "logprobs", "text")

    def __init__(self, guard: Guard | None, kind: str, item_id: str) -> None:
        self.guard = guard  # None: passed as is (refusals="pass")
        self.kind = kind  # "text" | "refusal"
        self.item_id = item_id
        self.text = ""  # what was shown
        self.logprobs = Logprobs()


class _RCall:
    """One function or custom tool call item: its arguments (or input) are one run."""

    __slots__ = ("added", "guard", "item", "text")

    def __init__(self, guard: ToolGuard, event: ResponseOutputItemAddedEvent) -> None:
        self.guard = guard
        self.added = event
        self.item = event.item
        self.text = ""


_ARG_DELTAS = ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta")
_ARG_DONES = ("response.function_call_arguments.done", "response.custom_tool_call_input.done")


class ResponsesTranslator(Translator[ResponseStreamEvent]):
    """Turns upstream Responses events into guarded events.

    Each content part (output text, refusal) and each tool call is its own run.  Events
    are numbered again (``sequence_number``) since some are dropped or added.
    """

    __slots__ = ("_calls", "_ended", "_items", "_parts", "_refusals", "_seq", "_snapshot")

    def __init__(self, runs: Runs, refusals: bool) -> None:
        super().__init__(runs)
        self._refusals = refusals
        self._parts: dict[tuple[int, int], _Part] = {}
        self._calls: dict[int, _RCall] = {}
        self._items: dict[int, Any] = {}  # done output items, as shown
        self._snapshot: Response | None = None
        self._ended = False  # the response's last event went out
        self._seq = 0

    def _num(self, event: Any) -> Any:
        event.sequence_number = self._seq
        self._seq += 1
        return event

    async def process(self, event: ResponseStreamEvent) -> list[ResponseStreamEvent]:
        if event.type == "response.output_text.delta":  # the common case, inline
            part = self._parts.get((event.output_index, event.content_index))
            if part is not None and part.guard is not None:
                delta = event.delta
                guard = part.guard
                released = guard.pushed(delta)
                if not isinstance(released, str):
                    released = await released
                if guard.done:  # the run ended: blocked, or cut by a length check
                    if guard.blocked is not None:
                        return self._block(_Stop(0, released, guard.blocked, part=True))
                    return self._cut(part, (event.output_index, event.content_index), released)
                part.logprobs.add(delta, event.logprobs)
                if not released:
                    return []
                part.text += released
                event.logprobs = part.logprobs.take(released)
                event.delta = released
                event.sequence_number = self._seq
                self._seq += 1
                return [event]
        try:
            return await self._process(event)
        except _Stop as stop:
            return self._block(stop)

    async def _process(self, event: Any) -> list[Any]:
        kind = event.type
        if kind == "response.output_text.delta" or (
            kind == "response.refusal.delta" and self._refusals
        ):
            part = self._part(event, "text" if kind == "response.output_text.delta" else "refusal")
            assert part.guard is not None
            delta = event.delta
            released = await part.guard.push(delta)
            if part.guard.blocked is not None:
                raise _Stop(0, released, part.guard.blocked, part=True)
            if part.guard.done:  # cut by a length check: the response ends here
                return self._cut(part, (event.output_index, event.content_index), released)
            part.text += released
            if kind == "response.output_text.delta":
                part.logprobs.add(delta, event.logprobs)
                if not released:
                    return []
                event.logprobs = part.logprobs.take(released)
            elif not released:
                return []
            event.delta = released
            return [self._num(event)]
        if kind == "response.output_text.done" or (
            kind == "response.refusal.done" and self._refusals
        ):
            text_kind = kind == "response.output_text.done"
            part = self._part(event, "text" if text_kind else "refusal")
            assert part.guard is not None
            tail = await part.guard.push(None)
            if part.guard.blocked is not None:
                raise _Stop(0, tail, part.guard.blocked, part=True)
            out: list[Any] = []
            if tail:
                part.text += tail
                tail_event = _part_delta(part, event, tail)
                if text_kind:
                    tail_event.logprobs = part.logprobs.take(tail)
                out.append(self._num(tail_event))
            if text_kind:
                if part.text != event.text:
                    event.logprobs = []
                event.text = part.text
            else:
                event.refusal = part.text
            out.append(self._num(event))
            return out
        if kind == "response.content_part.done":
            shown_part = self._parts.get((event.output_index, event.content_index))
            if shown_part is not None:
                _show_part(event.part, shown_part)
            return [self._num(event)]
        if kind in _ARG_DELTAS or kind in _ARG_DONES:
            call = self._calls.get(event.output_index)
            if call is None and names_matter(self.runs.policy):
                return []  # arguments of no announced call: no rule to check them by
        if kind in _ARG_DELTAS:
            call = self._calls.get(event.output_index)
            if call is None or call.guard.mode == "pass":
                return [self._num(event)]
            released = await call.guard.push(event.delta)
            if call.guard.blocked is not None:
                raise _Stop(event.output_index, "", call.guard.blocked)
            call.text += released
            if call.guard.mode == "complete" or not released:
                return []
            event.delta = released
            return [self._num(event)]
        if kind in _ARG_DONES:
            call = self._calls.get(event.output_index)
            if call is None or call.guard.mode == "pass":
                return [self._num(event)]
            tail = await call.guard.push(None)
            if call.guard.blocked is not None:
                raise _Stop(event.output_index, "", call.guard.blocked)
            out = []
            if call.guard.mode == "complete":
                call.text = tail
                out.append(self._num(call.added))
            else:
                call.text += tail
            if tail:
                out.append(self._num(_arg_delta(event, tail)))
            setattr(event, "arguments" if kind == _ARG_DONES[0] else "input", call.text)
            out.append(self._num(event))
            return out
        if kind == "response.content_part.added":
            _blank(event.part, self._refusals)  # its text comes as deltas, checked
            return [self._num(event)]
        if kind == "response.output_item.added":
            item = event.item
            if isinstance(item, ResponseOutputMessage):
                for content in item.content:  # its text comes as deltas, checked
                    _blank(content, self._refusals)
            if isinstance(item, (ResponseFunctionToolCall, ResponseCustomToolCall)):
                json = isinstance(item, ResponseFunctionToolCall)
                guard = self.runs.tool(item.name, event.output_index, json=json)
                call = self._calls[event.output_index] = _RCall(guard, event)
                if call.guard.blocked is not None:
                    raise _Stop(event.output_index, "", call.guard.blocked)
                if call.guard.mode != "pass":  # its arguments come as deltas, checked
                    if isinstance(item, ResponseFunctionToolCall):
                        item.arguments = ""
                    else:
                        item.input = ""
                if call.guard.mode == "complete":
                    return []  # shown with its arguments, once they are complete
            return [self._num(event)]
        if kind == "response.output_item.done":
            await self._guard_item(event.output_index, event.item)
            self._items[event.output_index] = event.item
            return [self._num(event)]
        if kind == "response.output_text.annotation_added":
            annotated = self._parts.get((event.output_index, event.content_index))
            if annotated is not None and not annotated.logprobs.ok:
                return []  # its offsets are into text that was changed
            return [self._num(event)]
        if kind in ("response.created", "response.in_progress"):
            response = event.response
            if self.runs.rec is not None:
                self.runs.rec.response(id=response.id or None, model=response.model or None)
            if response.output:  # output comes in its own events, checked there
                response.output = []
            self._snapshot = response
            return [self._num(event)]
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            self._ended = True
            response = event.response
            if self.runs.rec is not None:
                note_reply(self.runs.rec, response)
            for index, item in enumerate(response.output):
                await self._guard_item(index, item)
            return [self._num(event)]
        return [self._num(event)]

    def _part(self, event: Any, kind: str) -> _Part:
        key = (event.output_index, event.content_index)
        part = self._parts.get(key)
        if part is None:
            part = self._parts[key] = _Part(
                self.runs.text(index=event.output_index), kind, event.item_id
            )
        return part

    async def _guard_item(self, index: int, item: Any) -> None:
        """Write the guarded texts into an output item (done, or in the final response);
        text that was not streamed (no deltas came for it) goes through a run here."""
        if isinstance(item, ResponseOutputMessage):
            for ci, content in enumerate(item.content):
                part = self._parts.get((index, ci))
                if part is None:
                    if isinstance(content, ResponseOutputText):
                        text, kind = content.text, "text"
                    elif isinstance(content, ResponseOutputRefusal) and self._refusals:
                        text, kind = content.refusal, "refusal"
                    else:
                        continue
                    guard = self.runs.text(index=index)
                    part = self._parts[(index, ci)] = _Part(guard, kind, item.id)
                    part.logprobs.ok = False
                    released = await whole(guard, text)
                    if guard.blocked is not None:
                        raise _Stop(0, released, guard.blocked, part=True)
                    part.text = released
                _show_part(content, part)
        elif isinstance(item, (ResponseFunctionToolCall, ResponseCustomToolCall)):
            call = self._calls.get(index)
            if call is None:  # not streamed: its arguments are checked whole
                text = item.arguments if isinstance(item, ResponseFunctionToolCall) else item.input
                json = isinstance(item, ResponseFunctionToolCall)
                checked = await tool_text(self.runs, item.name, text, index, json=json)
                if isinstance(checked, Blocked):
                    raise _Stop(index, "", checked)
            elif call.guard.mode == "pass":
                return
            else:
                checked = call.text
            if isinstance(item, ResponseFunctionToolCall):
                item.arguments = checked
            else:
                item.input = checked

    def _show_item(self, index: int, item: Any) -> None:
        """The guarded texts of the streamed parts and calls, into an item being cut."""
        if isinstance(item, ResponseOutputMessage):
            for ci, content in enumerate(item.content):
                part = self._parts.get((index, ci))
                if part is not None:
                    _show_part(content, part)
        elif isinstance(item, (ResponseFunctionToolCall, ResponseCustomToolCall)):
            call = self._calls.get(index)
            if call is not None and call.guard.mode != "pass":
                if isinstance(item, ResponseFunctionToolCall):
                    item.arguments = call.text
                else:
                    item.input = call.text

    async def finish(self) -> list[ResponseStreamEvent]:
        """The upstream ended without its last events: the rest of every open part."""
        if self.blocked is not None:
            return []
        out: list[Any] = []
        try:
            for part in self._parts.values():
                if part.guard is None or part.guard.done:
                    continue
                tail = await part.guard.push(None)
                if part.guard.blocked is not None:
                    raise _Stop(0, tail, part.guard.blocked, part=True)
                if tail:
                    part.text += tail
                    key = next(k for k, v in self._parts.items() if v is part)
                    out.append(self._num(_new_delta(part, key, tail)))
        except _Stop as stop:
            return self._block(stop)
        return out

    def shown(self, events: list[Any]) -> str | None:
        got: str | None = None
        for event in events:
            kind = event.type
            if kind == "response.output_text.delta" or kind == "response.refusal.delta":
                got = (got or "") + event.delta
            elif kind in _ARG_DELTAS:
                got = got or ""
        return got

    def _block(self, stop: _Stop) -> list[ResponseStreamEvent]:
        """The block message as output text, the items' incomplete ends, then
        ``response.incomplete`` with ``incomplete_details.reason == "content_filter"``."""
        self.blocked = stop.blocked
        out: list[Any] = []
        message = stop.released + stop.blocked.message
        shown = dict(sorted(self._items.items()))
        if stop.part:  # a text or refusal part: the message goes into it
            key, part = next(
                (k, p)
                for k, p in self._parts.items()
                if p.guard is not None and p.guard.blocked is not None
            )
            out += self._end_part(part, key, message, shown)
        else:  # a tool call: a message item after it carries the block message
            call = self._calls.get(stop.key)
            if call is not None and call.guard.mode != "complete" and call.guard.mode != "block":
                cut: Any = call.item.model_copy(update={"status": "incomplete"})
                self._show_item(stop.key, cut)
                out.append(self._num(_item_done(stop.key, cut)))
                shown[stop.key] = cut
            index = max([stop.key, *self._calls, *(k[0] for k in self._parts)]) + 1
            base = call.item.id if call is not None and call.item.id else "msg"
            item = _message_item(f"{base}_blocked", message)
            out.extend(self._num(e) for e in _message_events(index, item, message))
            shown[index] = item
        return out + self._incomplete_end(shown, "content_filter")

    def _cut(self, part: _Part, key: tuple[int, int], released: str) -> list[Any]:
        """A length check cut a part's text: the part, its item and the response end
        here, the API's way for a length cut (``response.incomplete``, reason
        ``max_output_tokens``), and the stream stops reading."""
        self.cut = True
        shown = dict(sorted(self._items.items()))
        return self._end_part(part, key, released, shown) + self._incomplete_end(
            shown, "max_output_tokens"
        )

    def expired(self, blocked: Blocked) -> list[ResponseStreamEvent] | None:
        """The block message in the open text part (or in a new message item), then
        ``response.incomplete`` (``content_filter``), as for a block."""
        self.blocked = blocked
        if self._snapshot is None:
            return None
        if self._ended:
            return []
        blocked_part = any(p.guard is not None and p.guard.blocked for p in self._parts.values())
        if blocked_part:
            return self._block(_Stop(0, "", blocked, part=True))
        calls = [i for i, call in self._calls.items() if call.guard.blocked is not None]
        return self._block(_Stop(calls[0] if calls else -1, "", blocked))

    def _end_part(
        self, part: _Part, key: tuple[int, int], text: str, shown: dict[int, Any]
    ) -> list[Any]:
        """The events that end a part with ``text`` (its last piece) and its message
        item (``incomplete``), which goes into ``shown``."""
        out: list[Any] = []
        part.text += text
        if text:
            out.append(self._num(_new_delta(part, key, text)))
        out.extend(self._num(e) for e in _part_end(part, key))
        index = key[0]
        contents = [_content(p) for (oi, _ci), p in sorted(self._parts.items()) if oi == index]
        item = ResponseOutputMessage.model_construct(
            id=part.item_id,
            content=contents,
            role="assistant",
            status="incomplete",
            type="message",
        )
        out.append(self._num(_item_done(index, item)))
        shown[index] = item
        return out

    def _incomplete_end(self, shown: dict[int, Any], reason: str) -> list[Any]:
        """``response.incomplete`` with the items shown, ``reason`` its ``incomplete_details``."""
        response = self._incomplete_response(list(shown.values()), reason)
        self._ended = True
        event = ResponseIncompleteEvent.model_construct(
            response=response, sequence_number=0, type="response.incomplete"
        )
        return [self._num(event)]

    def _incomplete_response(self, output: list[Any], reason: str) -> Response:
        snap = self._snapshot
        if snap is None:
            response = Response.model_construct(
                id="",
                created_at=0.0,
                model="",
                object="response",
                output=output,
                parallel_tool_calls=True,
                tool_choice="auto",
                tools=[],
            )
        else:
            response = snap.model_copy(update={"output": output})
        _incomplete(response, reason)
        return response


def _content(part: _Part) -> Any:
    if part.kind == "text":
        return _text_part(part.text)
    return ResponseOutputRefusal.model_construct(refusal=part.text, type="refusal")


def _blank(content: Any, refusals: bool) -> None:
    """Empty a part announced with text in it (the text is checked as it streams)."""
    if isinstance(content, ResponseOutputText):
        if content.text or content.annotations or content.logprobs:
            content.text = ""
            content.annotations = []
            content.logprobs = None
    elif isinstance(content, ResponseOutputRefusal) and refusals:
        content.refusal = ""


def _show_part(content: Any, part: _Part) -> None:
    if isinstance(content, ResponseOutputText):
        if content.text != part.text:
            content.annotations = []  # their offsets are into the text before repair
            content.logprobs = None
        content.text = part.text
    elif isinstance(content, ResponseOutputRefusal):
        content.refusal = part.text


def _part_delta(part: _Part, done: Any, text: str) -> Any:
    return _new_delta(part, (done.output_index, done.content_index), text)


def _new_delta(part: _Part, key: tuple[int, int], text: str) -> Any:
    if part.kind == "text":
        return ResponseTextDeltaEvent.model_construct(
            content_index=key[1],
            delta=text,
            item_id=part.item_id,
            logprobs=[],
            output_index=key[0],
            sequence_number=0,
            type="response.output_text.delta",
        )
    return ResponseRefusalDeltaEvent.model_construct(
        content_index=key[1],
        delta=text,
        item_id=part.item_id,
        output_index=key[0],
        sequence_number=0,
        type="response.refusal.delta",
    )


def _part_end(part: _Part, key: tuple[int, int]) -> list[Any]:
    """The done events of a part that ends with the block message."""
    oi, ci = key
    if part.kind == "text":
        done: Any = ResponseTextDoneEvent.model_construct(
            content_index=ci,
            item_id=part.item_id,
            logprobs=[],
            output_index=oi,
            sequence_number=0,
            text=part.text,
            type="response.output_text.done",
        )
    else:
        done = ResponseRefusalDoneEvent.model_construct(
            content_index=ci,
            item_id=part.item_id,
            output_index=oi,
            refusal=part.text,
            sequence_number=0,
            type="response.refusal.done",
        )
    part_done = ResponseContentPartDoneEvent.model_construct(
        content_index=ci,
        item_id=part.item_id,
        output_index=oi,
        part=_content(part),
        sequence_number=0,
        type="response.content_part.done",
    )
    return [done, part_done]


def _arg_delta(done: Any, text: str) -> Any:
    """The delta event of a call's arguments (or custom input) that ``done`` ends."""
    function = done.type == _ARG_DONES[0]
    make: Any = ResponseFunctionCallArgumentsDeltaEvent
    if not function:
        make = ResponseCustomToolCallInputDeltaEvent
    return make.model_construct(
        delta=text,
        item_id=done.item_id,
        output_index=done.output_index,
        sequence_number=0,
        type=_ARG_DELTAS[0] if function else _ARG_DELTAS[1],
    )


def _item_done(index: int, item: Any) -> ResponseOutputItemDoneEvent:
    return ResponseOutputItemDoneEvent.model_construct(
        item=item, output_index=index, sequence_number=0, type="response.output_item.done"
    )


def _message_events(index: int, item: ResponseOutputMessage, text: str) -> list[Any]:
    """The events of a new message item holding ``text`` (the block message)."""
    added = item.model_copy(update={"content": [], "status": "in_progress"})
    part = _Part(None, "text", item.id)
    part.text = text
    out: list[Any] = [
        ResponseOutputItemAddedEvent.model_construct(
            item=added, output_index=index, sequence_number=0, type="response.output_item.added"
        ),
        ResponseContentPartAddedEvent.model_construct(
            content_index=0,
            item_id=item.id,
            output_index=index,
            part=_text_part(""),
            sequence_number=0,
            type="response.content_part.added",
        ),
    ]
    if text:
        out.append(_new_delta(part, (index, 0), text))
    out.extend(_part_end(part, (index, 0)))
    out.append(_item_done(index, item))
    return out


def _text_part(text: str) -> ResponseOutputText:
    return ResponseOutputText.model_construct(annotations=[], text=text, type="output_text")


def _message_item(item_id: str, text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage.model_construct(
        id=item_id,
        content=[_text_part(text)],
        role="assistant",
        status="incomplete",
        type="message",
    )


def _incomplete(response: Response, reason: str = "content_filter") -> None:
    """Mark a response as ended by the content filter, or (``max_output_tokens``) cut at
    its length (the API's own incomplete endings)."""
    response.status = "incomplete"
    response.incomplete_details = IncompleteDetails.model_construct(reason=reason)


def note_reply(rec: CallRecorder, response: Response) -> None:
    """What a call's trace keeps of a response as the upstream sent it: id, model, usage
    and how it ended (``incomplete_details.reason`` if incomplete, else its status)."""
    rec.response(id=response.id or None, model=response.model or None)
    usage = response.usage
    if usage is not None:
        rec.usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    details = response.incomplete_details
    reason = details.reason if details is not None and details.reason else response.status
    rec.finish_reason(reason)


def reply_text(response: Response) -> str:
    """The text a guarded response shows (output text and refusals)."""
    texts: list[str] = []
    for item in response.output:
        if isinstance(item, ResponseOutputMessage):
            for part in item.content:
                if isinstance(part, ResponseOutputText):
                    texts.append(part.text)
                elif isinstance(part, ResponseOutputRefusal):
                    texts.append(part.refusal)
    return "".join(texts)


# -- the non-streamed reply ---------------------------------------------------------------
async def reply(runs: Runs, response: Response, refusals: bool) -> Response:
    """A copy of ``response`` with every text checked, through runs of the call (tool
    arguments by the same rule as a stream's); cut after the item that is blocked."""
    response = response.model_copy(deep=True)
    output: list[Any] = []
    for index, item in enumerate(response.output):
        blocked: Blocked | None = None
        if isinstance(item, ResponseOutputMessage):
            parts: list[Any] = []
            for part in item.content:
                if isinstance(part, ResponseOutputText):
                    text = part.text
                elif isinstance(part, ResponseOutputRefusal) and refusals:
                    text = part.refusal
                else:
                    parts.append(part)
                    continue
                guard = runs.text(index=index)
                shown = await whole(guard, text)
                if guard.blocked is not None:
                    blocked = guard.blocked
                    parts.append(_text_part(blocked.message))
                    break
                if isinstance(part, ResponseOutputRefusal):
                    part.refusal = shown
                elif shown != text:
                    part.text = shown
                    part.annotations = []
                    part.logprobs = None
                parts.append(part)
            item.content = parts
            if blocked is not None:
                item.status = "incomplete"
            output.append(item)
        elif isinstance(item, (ResponseFunctionToolCall, ResponseCustomToolCall)):
            function = isinstance(item, ResponseFunctionToolCall)
            text = item.arguments if isinstance(item, ResponseFunctionToolCall) else item.input
            checked = await tool_text(runs, item.name, text, index, json=function)
            if isinstance(checked, Blocked):
                blocked = checked
                output.append(_message_item(f"{item.id or item.call_id}_blocked", checked.message))
            else:
                setattr(item, "arguments" if function else "input", checked)
                output.append(item)
        else:
            output.append(item)
        if blocked is not None:
            _incomplete(response)
            break
    response.output = output
    return response
