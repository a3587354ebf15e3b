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
from ._stream import source_stream
from .messages import AnthropicTranslator, open_async, open_sync

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

    __slots__ = ("_blocks", "_n", "_next", "_policy", "_refusals", "_stopped")

    provider = "anthropic"

    def __init__(self, policy: Policy, refusals: str) -> None:
        refusals_guarded(refusals)
        self._policy = policy
        self._refusals = refusals
        self._n = 0
        self._blocks: dict[int, str] = {}  # the content blocks started and not stopped: type
        self._next = 0  # the index of the next content block
        self._stopped = False  # message_delta or message_stop went out

    def guarded(
        self,
        source: Any,
        wrap: Callable[[Any, Any], tuple[Any, Any]],
        *,
        sync: bool,
        rec: CallRecorder | None = None,
    ) -> Any:
        runs = Runs(self._policy, sync=sync, rec=rec, part="content_block")
        return source_stream(
            source,
            AnthropicTranslator(runs),
            wrap,
            sync=sync,
            open_sync=open_sync,
            open_async=open_async,
        )

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

    def note(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "content_block_start":
            self._blocks[event.index] = getattr(event.content_block, "type", "")
            self._next = max(self._next, event.index + 1)
        elif kind == "content_block_stop":
            self._blocks.pop(event.index, None)
        elif kind in ("message_delta", "message_stop"):
            self._stopped = True

    def interrupt(self, message: str) -> list[Any] | None:
        """The message as text (in the open text block, else a block of its own), every
        open block stopped, then ``end_turn`` and ``message_stop``."""
        if self._stopped:
            return None
        out: list[Any] = []
        texts = [i for i, kind in self._blocks.items() if kind == "text"]
        at = texts[-1] if texts else self._next
        if not texts:
            block = {"type": "content_block_start", "index": at}
            out.append(
                _EVENT.validate_python({**block, "content_block": {"type": "text", "text": ""}})
            )
            self._blocks[at] = "text"
        delta = {"type": "text_delta", "text": message}
        out.append(
            _EVENT.validate_python({"type": "content_block_delta", "index": at, "delta": delta})
        )
        for index in sorted(self._blocks):
            out.append(_EVENT.validate_python({"type": "content_block_stop", "index": index}))
        self._blocks.clear()
        self._stopped = True
        return out + self.closing()[1:]

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
