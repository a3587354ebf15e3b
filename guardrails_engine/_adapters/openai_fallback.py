"""The OpenAI API as the fallback of a guarded stream sees it (see ``fallback.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from openai import AsyncStream, Stream
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import (
    ResponseError,
    ResponseFailedEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)
from pydantic import TypeAdapter

from .. import Policy
from .._observe.calls import CallRecorder
from ._stream import source_stream
from .openai import _make

__all__ = ["OpenAIApi"]

_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)

_TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
    }
)


class OpenAIApi:
    """Chat Completions and Responses (which one: the first source's stream or events)."""

    __slots__ = (
        "_at_text",
        "_created",
        "_last",
        "_last_seq",
        "_model",
        "_n",
        "_open",
        "_policy",
        "_refusals",
        "_seq",
        "_texts",
        "responses",
    )

    provider = "openai"

    def __init__(self, policy: Policy, refusals: str) -> None:
        self._policy = policy
        self._refusals = refusals
        self.responses: bool | None = None  # the primary is a Responses stream
        self._n = 0
        self._model = "fallback"
        self._seq = 0  # the sequence number of the next Responses event written
        self._texts: list[str] = []  # the text written so far (a Responses ending repeats it)
        self._last: ChatCompletionChunk | None = None  # the last chunk shown
        self._open: set[int] = set()  # the choices shown and not finished
        # Responses: the reply's response (as created), where its open text part is, and
        # the last sequence number shown.
        self._created: Any = None
        self._at_text: dict[str, Any] | None = None
        self._last_seq = -1

    def guarded(
        self,
        source: Any,
        wrap: Callable[[Any, Any], tuple[Any, Any]],
        *,
        sync: bool,
        rec: CallRecorder | None = None,
    ) -> Any:
        if self.responses is None and getattr(source, "_cast_to", None) is not None:
            self.responses = source._cast_to is not ChatCompletionChunk
        translator = _make(self._policy, source, self._refusals, sync=sync, rec=rec)
        return source_stream(source, translator, wrap, sync=sync)

    def is_stream(self, value: Any) -> bool:
        return isinstance(value, AsyncStream | Stream)

    def _kind(self, event: Any) -> None:
        if self.responses is None:
            self.responses = not isinstance(event, ChatCompletionChunk)

    def token(self, event: Any) -> bool:
        self._kind(event)
        if isinstance(event, ChatCompletionChunk):
            return any(
                c.delta.content or c.delta.refusal or c.delta.tool_calls or c.delta.function_call
                for c in event.choices
            )
        return getattr(event, "type", None) in _TEXT_DELTAS

    def refusal(self, event: Any) -> bool:
        if isinstance(event, ChatCompletionChunk):
            return any(c.delta.refusal for c in event.choices)
        return getattr(event, "type", None) == "response.refusal.delta"

    def shows(self, event: Any) -> bool:
        return self.token(event)

    def model(self, event: Any) -> str | None:
        if isinstance(event, ChatCompletionChunk):
            return event.model
        response = getattr(event, "response", None)
        return getattr(response, "model", None)

    def note(self, event: Any) -> None:
        if isinstance(event, ChatCompletionChunk):
            self._last = event
            for choice in event.choices:
                if choice.finish_reason is None:
                    self._open.add(choice.index)
                else:
                    self._open.discard(choice.index)
            return
        kind = getattr(event, "type", "")
        self._last_seq = max(self._last_seq, getattr(event, "sequence_number", -1))
        if kind in ("response.created", "response.in_progress"):
            self._created = event.response
        elif kind == "response.output_text.delta":
            self._at_text = {
                "item_id": event.item_id,
                "output_index": event.output_index,
                "content_index": event.content_index,
            }
        elif kind in ("response.output_text.done", "response.content_part.done"):
            self._at_text = None
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self._created = None

    def interrupt(self, message: str) -> list[Any] | None:
        """Chat: the message on the first open choice, then ``stop`` on every open one.
        Responses: the message as a delta of the open text part, then ``response.failed``
        (``server_error``); with no text part open, nothing: the failure is raised."""
        if self.responses:
            return self._failed(message)
        last = self._last
        if last is None or not self._open:
            return None
        first = min(self._open)
        out = [
            _like(last, [{"index": first, "delta": {"content": message}, "finish_reason": None}])
        ]
        ends = [{"index": i, "delta": {}, "finish_reason": "stop"} for i in sorted(self._open)]
        self._open.clear()
        return [*out, _like(last, ends)]

    def _failed(self, message: str) -> list[Any] | None:
        created, at = self._created, self._at_text
        if created is None or at is None:
            return None
        self._created = self._at_text = None
        seq = self._last_seq + 1
        # (Constructed, not validated: the response is the SDK's, as it came.)
        delta = ResponseTextDeltaEvent.model_construct(
            type="response.output_text.delta", sequence_number=seq, delta=message, logprobs=[], **at
        )
        error = ResponseError.model_construct(
            code="server_error", message="the stream was interrupted"
        )
        response = created.model_copy(update={"status": "failed", "error": error})
        failed = ResponseFailedEvent.model_construct(
            type="response.failed", sequence_number=seq + 1, response=response
        )
        return [delta, failed]

    # Plain text is written as the primary's API: Chat chunks, or (a Responses primary)
    # the events of a streamed response with one message of one output_text part.
    def opening(self, model: str | None) -> list[Any]:
        self._n += 1
        self._model = model or "fallback"
        if not self.responses:
            return [self._chunk({"role": "assistant", "content": ""}, None)]
        self._seq = 0
        self._texts = []
        return [
            self._event("response.created", response=self._response([], "in_progress")),
            self._event("response.in_progress", response=self._response([], "in_progress")),
            self._event("response.output_item.added", output_index=0, item=self._item([], False)),
            self._event("response.content_part.added", **self._at(), part=_part("")),
        ]

    def piece(self, text: str) -> Any:
        if not self.responses:
            return self._chunk({"content": text}, None)
        self._texts.append(text)
        return self._event("response.output_text.delta", **self._at(), delta=text, logprobs=[])

    def closing(self) -> list[Any]:
        if not self.responses:
            return [self._chunk({}, "stop")]
        text = "".join(self._texts)
        item = self._item([_part(text)], True)
        return [
            self._event("response.output_text.done", **self._at(), text=text, logprobs=[]),
            self._event("response.content_part.done", **self._at(), part=_part(text)),
            self._event("response.output_item.done", output_index=0, item=item),
            self._event("response.completed", response=self._response([item], "completed")),
        ]

    def _event(self, kind: str, **fields: Any) -> Any:
        self._seq += 1
        return _EVENT.validate_python({"type": kind, "sequence_number": self._seq - 1, **fields})

    def _at(self) -> dict[str, Any]:
        return {"item_id": f"msg_fallback_{self._n}", "output_index": 0, "content_index": 0}

    def _item(self, content: list[dict[str, Any]], done: bool) -> dict[str, Any]:
        return {
            "id": f"msg_fallback_{self._n}",
            "type": "message",
            "role": "assistant",
            "status": "completed" if done else "in_progress",
            "content": content,
        }

    def _response(self, output: list[dict[str, Any]], status: str) -> dict[str, Any]:
        return {
            "id": f"resp_fallback_{self._n}",
            "object": "response",
            "created_at": int(time.time()),
            "model": self._model,
            "status": status,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> Any:
        return ChatCompletionChunk.model_validate(
            {
                "id": f"chatcmpl-fallback-{self._n}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self._model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _like(last: ChatCompletionChunk, choices: list[dict[str, Any]]) -> ChatCompletionChunk:
    """A chunk of the reply ``last`` belongs to (its id, model and time)."""
    return ChatCompletionChunk.model_validate(
        {
            "id": last.id,
            "object": "chat.completion.chunk",
            "created": last.created,
            "model": last.model,
            "choices": choices,
        }
    )
