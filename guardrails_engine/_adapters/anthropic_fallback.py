"""The Anthropic Messages API as the fallback of a guarded stream sees it (``fallback.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anthropic import AsyncStream, Stream
from anthropic.lib.streaming import (
    AsyncMessageStream,
    AsyncMessageStreamManager,
    MessageStream,
    MessageStreamManager,
)
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from .. import Policy
from .._observe.calls import CallRecorder
from ._guard import Runs, refusals_guarded
from ._stream import GuardedStream, SyncGuardedStream
from .anthropic import AnthropicTranslator, _open_async, _open_sync

__all__ = ["AnthropicApi"]

_STREAMS = (
    AsyncStream,
    Stream,
    AsyncMessageStream,
    AsyncMessageStreamManager,
    MessageStream,
    MessageStreamManager,
)
_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


class AnthropicApi:
    """Messages: raw events, the ``messages.stream()`` helper, or any iterable of events."""

    __slots__ = ("_n", "_policy", "_refusals")

    provider = "anthropic"

    def __init__(self, policy: Policy, refusals: str) -> None:
        refusals_guarded(refusals)
        self._policy = policy
        self._refusals = refusals
        self._n = 0

    def guarded(
        self,
        source: Any,
        wrap: Callable[[Any, Any], tuple[Any, Any]],
        *,
        sync: bool,
        rec: CallRecorder | None = None,
    ) -> Any:
        runs = Runs(self._policy, sync=sync, rec=rec, part="content_block")
        translator = AnthropicTranslator(runs)
        if sync:

            def opener_sync(src: Any) -> tuple[Any, Any]:
                it, shut = _open_sync(src)
                return wrap(it, shut)

            return SyncGuardedStream(source, translator, opener_sync, finishes=False)

        async def opener(src: Any) -> tuple[Any, Any]:
            it, shut = await _open_async(src)
            return wrap(it, shut)

        return GuardedStream(source, translator, opener, finishes=False)

    def is_stream(self, value: Any) -> bool:
        return isinstance(value, _STREAMS)

    def token(self, event: Any) -> bool:
        return getattr(event, "type", None) == "content_block_delta"

    def refusal(self, event: Any) -> bool:
        if getattr(event, "type", None) != "message_delta":
            return False
        return getattr(event.delta, "stop_reason", None) == "refusal"

    def shows(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            delta = event.delta
            return bool(getattr(delta, "text", None) or getattr(delta, "partial_json", None))
        if kind == "content_block_start":
            return getattr(event.content_block, "type", None) == "tool_use"
        return False

    def model(self, event: Any) -> str | None:
        if getattr(event, "type", None) == "message_start":
            return str(event.message.model)
        return None

    def opening(self, model: str | None) -> list[Any]:
        self._n += 1
        message: dict[str, Any] = {
            "id": f"msg_fallback_{self._n}",
            "type": "message",
            "role": "assistant",
            "model": model or "fallback",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            _EVENT.validate_python({"type": "message_start", "message": message}),
            _EVENT.validate_python(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }
            ),
        ]

    def piece(self, text: str) -> Any:
        return _EVENT.validate_python(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            }
        )

    def closing(self) -> list[Any]:
        return [
            _EVENT.validate_python({"type": "content_block_stop", "index": 0}),
            _EVENT.validate_python(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 0},
                }
            ),
            _EVENT.validate_python({"type": "message_stop"}),
        ]
