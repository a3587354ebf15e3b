"""The one guarded stream: every provider (Chat, Responses, Anthropic), sync and async,
ends, stops early, blocks and closes its upstream the same way; the keyword arguments
are the same for both providers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from anthropic.types import RawMessageStreamEvent
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

import guardrails_engine as ge
from guardrails_engine import anthropic as ge_anthropic
from guardrails_engine import openai as ge_openai

MESSAGE = "BLOCKED"
EMAIL = "jdoe@example.com"
POLICY = ge.Policy.from_yaml(
    f"""
version: 1
name: stream
block_message: "{MESSAGE}"
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
  - {{id: secrets, type: content, terms: ["internal use only"], action: block}}
"""
)
PIECES = ["Hello, write ", "to jdoe@exa", "mple.com and ", "all is well. "]
SECRET = ["Hello, this is ", "internal use ", "only, sorry. ", "More words. "]
_RESPONSES: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
_ANTHROPIC: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def chat(pieces: list[str]) -> list[Any]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate(
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    return [chunk({"content": p}) for p in pieces] + [chunk({}, "stop")]


def responses(pieces: list[str]) -> list[Any]:
    ids = {"output_index": 0, "content_index": 0, "item_id": "m1", "sequence_number": 0}
    part = {"type": "output_text", "text": "", "annotations": []}
    return [
        _RESPONSES.validate_python({"type": "response.content_part.added", **ids, "part": part}),
        *(
            _RESPONSES.validate_python(
                {"type": "response.output_text.delta", **ids, "delta": p, "logprobs": []}
            )
            for p in pieces
        ),
        _RESPONSES.validate_python(
            {"type": "response.output_text.done", **ids, "text": "".join(pieces), "logprobs": []}
        ),
    ]


def anthropic(pieces: list[str]) -> list[Any]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "c",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    block = {"type": "text", "text": ""}
    return [
        _ANTHROPIC.validate_python(e)
        for e in [
            {"type": "message_start", "message": message},
            {"type": "content_block_start", "index": 0, "content_block": block},
            *(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": p},
                }
                for p in pieces
            ),
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 3},
            },
            {"type": "message_stop"},
        ]
    ]


def chat_text(out: list[Any]) -> str:
    return "".join(c.delta.content or "" for ch in out for c in ch.choices)


def responses_text(out: list[Any]) -> str:
    return "".join(e.delta for e in out if e.type == "response.output_text.delta")


def anthropic_text(out: list[Any]) -> str:
    return "".join(
        e.delta.text
        for e in out
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )


def chat_blocked(out: list[Any]) -> bool:
    return out[-1].choices[0].finish_reason == "content_filter"


def responses_blocked(out: list[Any]) -> bool:
    return out[-1].type == "response.incomplete"


def anthropic_blocked(out: list[Any]) -> bool:
    return [e.delta.stop_reason for e in out if e.type == "message_delta"] == ["refusal"]


Provider = tuple[Any, Callable[[list[str]], list[Any]], Callable[[list[Any]], str], Any]
PROVIDERS = {
    "chat": (ge_openai, chat, chat_text, chat_blocked),
    "responses": (ge_openai, responses, responses_text, responses_blocked),
    "anthropic": (ge_anthropic, anthropic, anthropic_text, anthropic_blocked),
}


class SyncUp:
    def __init__(self, items: list[Any]) -> None:
        self.items = iter(items)
        self.closed = 0

    def __iter__(self) -> SyncUp:
        return self

    def __next__(self) -> Any:
        return next(self.items)

    def close(self) -> None:
        self.closed += 1


class AsyncUp:
    def __init__(self, items: list[Any]) -> None:
        self.items = iter(items)
        self.closed = 0

    def __aiter__(self) -> AsyncUp:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self.items)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.closed += 1


@pytest.mark.parametrize("name", PROVIDERS)
def test_every_provider_ends_stops_and_blocks_the_same_way(name: str) -> None:
    module, events, text_of, blocked = PROVIDERS[name]
    expected = POLICY.validate_sync("".join(PIECES)).text

    # The end: the text validate gives, the upstream closed once, then iteration ends.
    up = SyncUp(events(PIECES))
    guarded = module.guard_sync(POLICY, up)
    out = list(guarded)
    assert text_of(out) == expected and guarded.blocked is None and up.closed == 1
    assert list(guarded) == []

    # A block: the native ending, the upstream closed, then iteration ends.
    up = SyncUp(events(SECRET))
    guarded = module.guard_sync(POLICY, up)
    out = list(guarded)
    assert blocked(out) and guarded.blocked is not None and up.closed == 1
    assert text_of(out) == "Hello, this is " + MESSAGE and "internal" not in text_of(out)
    assert list(guarded) == []

    # Closed early: the upstream closed, and the stream cannot be taken for a whole one.
    up = SyncUp(events(PIECES))
    guarded = module.guard_sync(POLICY, up)
    next(guarded)
    guarded.close()
    guarded.close()
    assert up.closed == 1 and "closed" in repr(guarded) and EMAIL not in repr(guarded)
    with pytest.raises(ge.StreamStateError):
        next(guarded)


@pytest.mark.parametrize("name", PROVIDERS)
def test_every_async_provider_ends_stops_and_blocks_the_same_way(name: str) -> None:
    module, events, text_of, blocked = PROVIDERS[name]
    expected = POLICY.validate_sync("".join(PIECES)).text

    async def main() -> None:
        up = AsyncUp(events(PIECES))
        async with module.guard(POLICY, up) as guarded:
            out = [e async for e in guarded]
        assert text_of(out) == expected and up.closed == 1
        assert [e async for e in guarded] == []

        up = AsyncUp(events(SECRET))
        guarded = module.guard(POLICY, up)
        out = [e async for e in guarded]
        assert blocked(out) and guarded.blocked is not None and up.closed == 1
        assert [e async for e in guarded] == []

        up = AsyncUp(events(PIECES))
        guarded = module.guard(POLICY, up)
        await guarded.__anext__()
        await guarded.aclose()
        assert up.closed == 1
        with pytest.raises(ge.StreamStateError):
            await guarded.__anext__()

    anyio.run(main)


@pytest.mark.parametrize("name", PROVIDERS)
def test_both_providers_take_the_same_keywords(name: str) -> None:
    module, events, text_of, _ = PROVIDERS[name]
    with pytest.raises(ValueError, match="refusals"):
        module.guard_sync(POLICY, events(PIECES), refusals="maybe")
    with pytest.raises(ValueError, match="refusals"):
        module.guard(POLICY, AsyncUp(events(PIECES)), refusals="maybe")
    # Text is text: "pass" lets refusal text through, never the reply's text.
    out = list(module.guard_sync(POLICY, events(PIECES), refusals="pass"))
    assert EMAIL not in text_of(out) and "<EMAIL_ADDRESS>" in text_of(out)
