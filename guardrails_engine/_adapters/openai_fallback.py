"""The OpenAI API as the fallback of a guarded stream sees it (see ``fallback.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from openai import AsyncStream, Stream
from openai.types.chat import ChatCompletionChunk

from .. import Policy
from .._observe.calls import CallRecorder
from ._stream import GuardedStream, SyncGuardedStream, open_async, open_sync
from .openai import _make

__all__ = ["OpenAIApi"]

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

    __slots__ = ("_model", "_n", "_policy", "_refusals", "responses")

    provider = "openai"

    def __init__(self, policy: Policy, refusals: str) -> None:
        self._policy = policy
        self._refusals = refusals
        self.responses: bool | None = None  # the primary is a Responses stream
        self._n = 0
        self._model = "fallback"

    def guarded(
        self,
        source: Any,
        wrap: Callable[[Any, Any], tuple[Any, Any]],
        *,
        sync: bool,
        rec: CallRecorder | None = None,
    ) -> Any:
        translator = _make(self._policy, source, self._refusals, sync=sync, rec=rec)
        if sync:

            def opener_sync(src: Any) -> tuple[Any, Any]:
                it, shut = open_sync(src)
                return wrap(it, shut)

            return SyncGuardedStream(source, translator, opener_sync, finishes=False)

        async def opener(src: Any) -> tuple[Any, Any]:
            it, shut = await open_async(src)
            return wrap(it, shut)

        return GuardedStream(source, translator, opener, finishes=False)

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

    def _check(self) -> None:
        if self.responses:
            raise TypeError("a text fallback of a Responses stream: return a Responses stream")

    def opening(self, model: str | None) -> list[Any]:
        self._check()
        self._n += 1
        self._model = model or "fallback"
        return [self._chunk({"role": "assistant", "content": ""}, None)]

    def piece(self, text: str) -> Any:
        return self._chunk({"content": text}, None)

    def closing(self) -> list[Any]:
        return [self._chunk({}, "stop")]

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
