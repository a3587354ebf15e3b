"""guardrails_engine.openai: the real OpenAI SDK clients against a local fake server.

Every test drives ``openai.OpenAI`` / ``openai.AsyncOpenAI`` pointed at the fake server of
``_fake_openai`` (127.0.0.1, port 0, the API's wire format) and asserts on the SDK's own
types.  The server records how many events it had sent when the client left, so the
tests see the upstream closed on a block, an early stop and a cancellation.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import openai
import pytest
from _fake_openai import (
    CREATED,
    MODEL,
    FakeOpenAI,
    chat_chunks,
    completion,
    message_item,
    response_events,
    response_obj,
    text_part,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import (
    Response,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseOutputMessage,
    ResponseTextDeltaEvent,
)

import guardrails_engine as ge
from guardrails_engine import openai as ge_openai

MESSAGE = "Sorry, I can't share that."
SLOW = 0.03  # seconds between events when a test looks at when the client left
EMAIL = "jdoe@example.com"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}

TOOLS_POLICY = f"""
version: 1
name: tools-chat
block_message: "{MESSAGE}"
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
  - {{id: secrets, type: content, terms: ["internal use only"], action: block}}
tools:
  lookup_order:
    checks:
      - id: args
        type: schema
        schema:
          type: object
          properties:
            order_id: {{type: string, pattern: "^[0-9]+$"}}
            note: {{type: string}}
          required: [order_id]
          additionalProperties: false
      - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
  send_note:
    release: incremental
    checks:
      - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
      - {{id: secrets, type: content, terms: ["internal use only"], action: block}}
unknown_tools: block
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the SDK streams' own generators warn when collected under trio


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(fake: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake.replies.clear()
    yield fake
    assert not fake.replies, "a scripted reply was not used"


@pytest.fixture(scope="module")
def policy() -> ge.Policy:
    return ge.Policy.from_yaml(TOOLS_POLICY)


@pytest.fixture
def client(server: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(server: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
        yield c


def words(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def content_of(chunks: list[ChatCompletionChunk], index: int = 0) -> str:
    return "".join(
        c.delta.content or "" for chunk in chunks for c in chunk.choices if c.index == index
    )


def finish_of(chunks: list[ChatCompletionChunk], index: int = 0) -> list[str]:
    return [
        c.finish_reason
        for chunk in chunks
        for c in chunk.choices
        if c.index == index and c.finish_reason is not None
    ]


# -- Chat Completions, streamed ---------------------------------------------------------------
TEXT = f"Hello! Write to {EMAIL} and we will answer within a day."


@pytest.mark.anyio
async def test_chat_stream_masks_and_keeps_the_sdk_shape(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}
    server.add("chat", chat_chunks([(0, {"content": w}) for w in words(TEXT)], usage=usage))
    stream = await aclient.chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    )
    async with ge_openai.guard(policy, stream) as guarded:
        chunks = [chunk async for chunk in guarded]
    assert all(type(c) is ChatCompletionChunk for c in chunks)
    assert {(c.id, c.model, c.created, c.system_fingerprint) for c in chunks} == {
        ("chatcmpl-fake1", MODEL, CREATED, "fp_fake")
    }
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content_of(chunks) == policy.validate_sync(TEXT).text
    assert EMAIL not in content_of(chunks) and "<EMAIL_ADDRESS>" in content_of(chunks)
    assert finish_of(chunks) == ["stop"]
    # usage passthrough: the last chunk has no choices and the upstream's usage
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 12
    assert not server.last().left
    # Round trip through the SDK's own validation: the shape is the API's.
    for c in chunks:
        ChatCompletionChunk.model_validate(c.model_dump())


def test_chat_stream_sync_keeps_logprobs_only_where_text_is_unchanged(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    deltas = ["Hello ", "there, ", "mail ", "jdoe@", "example.com ", "now."]
    server.add("chat", chat_chunks([(0, {"content": d}) for d in deltas], logprobs=True))
    stream = client.chat.completions.create(**CHAT, stream=True, logprobs=True)
    with ge_openai.guard_sync(policy, stream) as guarded:
        chunks = list(guarded)
    assert all(type(c) is ChatCompletionChunk for c in chunks)
    text = "".join(deltas)
    assert content_of(chunks) == policy.validate_sync(text).text
    kept = [c.choices[0] for c in chunks if c.choices and c.choices[0].logprobs is not None]
    assert kept, "the chunks shown as written keep their logprobs"
    for choice in kept:  # they go out with the release that shows their tokens
        assert choice.logprobs is not None and choice.logprobs.content is not None
        assert "".join(t.token for t in choice.logprobs.content) == choice.delta.content
    assert [t.token for c in kept for t in c.logprobs.content] == deltas[:3]  # type: ignore[union-attr]
    masked = [
        c.choices[0] for c in chunks if c.choices and "<EMAIL" in (c.choices[0].delta.content or "")
    ]
    assert masked and all(c.logprobs is None for c in masked)


@pytest.mark.anyio
async def test_chat_n2_each_choice_is_its_own_run(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    a = f"First: {EMAIL} is mine."
    b = "Second: nothing to hide here."
    deltas: list[tuple[int, dict[str, Any]]] = []
    for x, y in zip(words(a, 3), words(b, 5), strict=False):
        deltas += [(0, {"content": x}), (1, {"content": y})]
    deltas += [(0, {"content": w}) for w in words(a, 3)[len(words(b, 5)) :]]
    deltas += [(1, {"content": w}) for w in words(b, 5)[len(words(a, 3)) :]]
    server.add("chat", chat_chunks(deltas, finish={0: "stop", 1: "length"}))
    stream = await aclient.chat.completions.create(**CHAT, n=2, stream=True)
    async with ge_openai.guard(policy, stream) as guarded:
        chunks = [chunk async for chunk in guarded]
    assert content_of(chunks, 0) == policy.validate_sync(a).text
    assert content_of(chunks, 1) == b
    assert finish_of(chunks, 0) == ["stop"] and finish_of(chunks, 1) == ["length"]


def _planted_block(n: int = 40) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """Deltas with a secret revealed at event ``k`` (1-based, counting the role chunk)."""
    deltas = [(0, {"content": "Some text, "}), (0, {"content": "this is internal"})]
    deltas += [(0, {"content": " use"}), (0, {"content": " only and"})]
    deltas += [(0, {"content": " more words"}) for _ in range(n)]
    return deltas, 5  # role chunk + 4: " only" reveals the term


@pytest.mark.anyio
async def test_chat_block_ends_with_content_filter_and_closes_upstream(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    deltas, k = _planted_block()
    server.add("chat", chat_chunks(deltas), delay=SLOW)
    stream = await aclient.chat.completions.create(**CHAT, stream=True)
    guarded = ge_openai.guard(policy, stream)
    assert guarded.blocked is None
    chunks = [chunk async for chunk in guarded]
    assert guarded.blocked is not None and guarded.blocked.message == MESSAGE
    assert [f.action for f in guarded.blocked.findings] == [ge.Action.BLOCK]
    assert content_of(chunks) == "Some text, this is " + MESSAGE
    assert content_of(chunks).endswith(MESSAGE)
    assert finish_of(chunks) == ["content_filter"]
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    served = server.last()
    assert served.left and served.sent <= k + 2, (served.sent, k)
    assert stream.response.is_closed


def test_chat_block_sync_closes_upstream(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    deltas, k = _planted_block()
    server.add("chat", chat_chunks(deltas), delay=SLOW)
    stream = client.chat.completions.create(**CHAT, stream=True)
    guarded = ge_openai.guard_sync(policy, stream)
    chunks = list(guarded)
    assert guarded.blocked is not None and guarded.blocked.message == MESSAGE
    assert content_of(chunks).endswith(MESSAGE)
    assert finish_of(chunks) == ["content_filter"]
    served = server.last()
    assert served.left and served.sent <= k + 2, (served.sent, k)


@pytest.mark.anyio
async def test_chat_early_stop_closes_upstream(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    server.add("chat", chat_chunks([(0, {"content": f"word{i} "}) for i in range(60)]), delay=SLOW)
    stream = await aclient.chat.completions.create(**CHAT, stream=True)
    got = 0
    async with ge_openai.guard(policy, stream) as guarded:
        async for _chunk in guarded:
            got += 1
            if got == 4:
                break
        at_stop = server.served[-1].sent
    served = server.last()
    assert served.left and served.sent <= at_stop + 2 < served.total


def test_chat_early_stop_sync_closes_upstream(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    server.add("chat", chat_chunks([(0, {"content": f"word{i} "}) for i in range(60)]), delay=SLOW)
    stream = client.chat.completions.create(**CHAT, stream=True)
    guarded = ge_openai.guard_sync(policy, stream)
    for got, _chunk in enumerate(guarded):
        if got == 3:
            break
    guarded.close()
    at_stop = server.served[-1].sent
    served = server.last()
    assert served.left and served.sent <= at_stop + 2 < served.total


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_chat_cancellation_closes_upstream(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    server.add("chat", chat_chunks([(0, {"content": f"word{i} "}) for i in range(200)]), delay=SLOW)
    stream = await aclient.chat.completions.create(**CHAT, stream=True)
    guarded = ge_openai.guard(policy, stream)
    got = 0
    with anyio.move_on_after(0.25) as scope:
        async for _chunk in guarded:  # no aclose: the cancellation must close upstream
            got += 1
    assert scope.cancelled_caught and got > 0
    at_cancel = server.served[-1].sent
    served = server.last()
    assert served.left and served.sent <= at_cancel + 2 < served.total


# -- tool calls -------------------------------------------------------------------------------
def _call(
    index: int, args: str, *, name: str | None = None, call_id: str | None = None
) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": args}
    tc: dict[str, Any] = {"index": index, "function": fn}
    if name is not None:
        fn["name"] = name
        tc.update(id=call_id, type="function")
    return {"tool_calls": [tc]}


def _tool_stream(
    name: str, pieces: list[str], *, call_id: str = "call_1"
) -> list[tuple[int, dict[str, Any]]]:
    return [(0, _call(0, "", name=name, call_id=call_id))] + [(0, _call(0, p)) for p in pieces]


def tool_calls_of(chunks: list[ChatCompletionChunk]) -> dict[int, dict[str, Any]]:
    """The tool calls as a client accumulates them from the deltas."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or ():
                call = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                if tc.id:
                    call["id"] = tc.id
                if tc.function is not None:
                    if tc.function.name:
                        call["name"] = tc.function.name
                    call["arguments"] += tc.function.arguments or ""
    return calls


@pytest.mark.anyio
async def test_tool_schema_violation_stops_at_the_revealing_token(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    pieces = ['{"order_', 'id": "12', "3x", '4", "note": "', "hello", '"}'] + ["  "] * 30
    server.add(
        "chat",
        chat_chunks(_tool_stream("lookup_order", pieces), finish={0: "tool_calls"}),
        delay=SLOW,
    )
    stream = await aclient.chat.completions.create(**CHAT, stream=True)
    chunks = [chunk async for chunk in ge_openai.guard(policy, stream)]
    assert tool_calls_of(chunks) == {}  # release complete: never shown
    assert content_of(chunks) == MESSAGE
    assert finish_of(chunks) == ["content_filter"]
    served = server.last()
    # role chunk, the call's first delta, then the 4th piece closes the string "123x4":
    # the pattern check decides there (a string is checked once it is complete)
    k = 1 + 1 + 4
    assert served.left and served.sent <= k + 2, (served.sent, k)


def test_tool_pii_is_repaired_and_the_json_stays_valid(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    args = json.dumps({"order_id": "12345", "note": f"mail {EMAIL} today"})
    deltas = [(0, {"content": "Let me look."}), *_tool_stream("lookup_order", words(args, 5))]
    server.add("chat", chat_chunks(deltas, finish={0: "tool_calls"}))
    stream = client.chat.completions.create(**CHAT, stream=True)
    chunks = list(ge_openai.guard_sync(policy, stream))
    calls = tool_calls_of(chunks)
    assert list(calls) == [0]
    assert calls[0]["id"] == "call_1" and calls[0]["name"] == "lookup_order"
    assert json.loads(calls[0]["arguments"]) == {
        "order_id": "12345",
        "note": "mail <EMAIL_ADDRESS> today",
    }
    assert finish_of(chunks) == ["tool_calls"]
    assert content_of(chunks) == "Let me look."


@pytest.mark.anyio
async def test_incremental_tool_release_and_two_calls(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    note = json.dumps({"text": f"for {EMAIL}: a note that is long enough to stream"})
    order = json.dumps({"order_id": "7"})
    deltas = _tool_stream("send_note", words(note, 6), call_id="call_a")
    deltas += [(0, _call(1, "", name="lookup_order", call_id="call_b"))]
    deltas += [(0, _call(1, p)) for p in words(order, 4)]
    server.add("chat", chat_chunks(deltas, finish={0: "tool_calls"}))
    stream = await aclient.chat.completions.create(**CHAT, stream=True)
    chunks = [chunk async for chunk in ge_openai.guard(policy, stream)]
    calls = tool_calls_of(chunks)
    assert calls[0]["name"] == "send_note" and calls[1]["name"] == "lookup_order"
    assert json.loads(calls[0]["arguments"])["text"].startswith("for <EMAIL_ADDRESS>:")
    assert json.loads(calls[1]["arguments"]) == {"order_id": "7"}
    note_chunks = [
        c for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or () if tc.index == 0
    ]
    assert len(note_chunks) > 2, "incremental: the arguments are shown as they are released"
    # complete: the second call is shown at once, when the choice finishes
    order_chunks = [
        tc for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or () if tc.index == 1
    ]
    assert len(order_chunks) == 1 and order_chunks[0].id == "call_b"


def test_unknown_tool_is_blocked_and_a_tool_without_rule_passes(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    server.add(
        "chat", chat_chunks(_tool_stream("rm_rf", ['{"path": "/"}']), finish={0: "tool_calls"})
    )
    chunks = list(ge_openai.guard_sync(policy, client.chat.completions.create(**CHAT, stream=True)))
    assert tool_calls_of(chunks) == {} and content_of(chunks) == MESSAGE
    assert finish_of(chunks) == ["content_filter"]
    lenient = ge.Policy.from_yaml(
        "version: 1\nname: lenient\nunknown_tools: pass\n"
        "checks:\n  - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}\n"
    )
    pieces = ['{"to": "', EMAIL, '"}']
    server.add("chat", chat_chunks(_tool_stream("anything", pieces), finish={0: "tool_calls"}))
    chunks = list(
        ge_openai.guard_sync(lenient, client.chat.completions.create(**CHAT, stream=True))
    )
    assert tool_calls_of(chunks)[0]["arguments"] == "".join(pieces)  # unchanged


@pytest.mark.anyio
async def test_refusals_are_guarded_or_passed(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    refusal = f"I can't help with {EMAIL} today."
    for mode, expected in (("guard", policy.validate_sync(refusal).text), ("pass", refusal)):
        server.add("chat", chat_chunks([(0, {"refusal": w}) for w in words(refusal)]))
        stream = await aclient.chat.completions.create(**CHAT, stream=True)
        chunks = [c async for c in ge_openai.guard(policy, stream, refusals=mode)]
        got = "".join(c.delta.refusal or "" for chunk in chunks for c in chunk.choices)
        assert got == expected
        assert content_of(chunks) == ""  # content stays empty (not None on the role chunk)
    server.add("chat", chat_chunks([(0, {"refusal": "No: internal use only."})]))
    stream = await aclient.chat.completions.create(**CHAT, stream=True)
    chunks = [c async for c in ge_openai.guard(policy, stream)]
    assert content_of(chunks) == MESSAGE and finish_of(chunks) == ["content_filter"]


# -- non-streamed replies ---------------------------------------------------------------------
def _reply_payload() -> dict[str, Any]:
    args = json.dumps({"order_id": "9", "note": EMAIL})
    return completion(
        [
            {
                "message": {
                    "content": f"Reach me at {EMAIL}.",
                    "annotations": [
                        {
                            "type": "url_citation",
                            "url_citation": {
                                "start_index": 0,
                                "end_index": 5,
                                "title": "t",
                                "url": "u",
                            },
                        }
                    ],
                },
                "logprobs": {"content": [], "refusal": None},
            },
            {"message": {"content": "This is internal use only."}},
            {
                "message": {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "lookup_order", "arguments": args},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            },
            {
                "message": {"content": "Plain and fine."},
                "logprobs": {"content": [], "refusal": None},
            },
        ]
    )


def _check_reply(reply: ChatCompletion, guarded: ChatCompletion, policy: ge.Policy) -> None:
    assert type(guarded) is ChatCompletion and guarded is not reply
    assert guarded.id == reply.id and guarded.usage == reply.usage and guarded.created == CREATED
    first, blocked, tool, plain = guarded.choices
    assert first.message.content == "Reach me at <EMAIL_ADDRESS>."
    assert first.message.annotations is None and first.logprobs is None  # offsets moved
    assert blocked.message.content == MESSAGE and blocked.finish_reason == "content_filter"
    assert tool.message.content is None and tool.finish_reason == "tool_calls"
    assert tool.message.tool_calls is not None
    call = tool.message.tool_calls[0]
    assert call.type == "function"
    assert json.loads(call.function.arguments) == {"order_id": "9", "note": "<EMAIL_ADDRESS>"}
    assert plain.message.content == "Plain and fine." and plain.logprobs is not None
    # the original is not changed
    assert reply.choices[0].message.content == f"Reach me at {EMAIL}."


@pytest.mark.anyio
async def test_chat_reply_async(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    server.add("json", _reply_payload())
    reply = await aclient.chat.completions.create(**CHAT)
    _check_reply(reply, await ge_openai.guard_reply(policy, reply), policy)


def test_chat_reply_sync(server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy) -> None:
    server.add("json", _reply_payload())
    reply = client.chat.completions.create(**CHAT)
    _check_reply(reply, ge_openai.guard_reply_sync(policy, reply), policy)


# -- Responses --------------------------------------------------------------------------------
RESP = {"model": MODEL, "input": "hi"}


def _text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


@pytest.mark.anyio
async def test_responses_stream_masks(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    server.add("responses", response_events([("text", words(TEXT, 5))]))
    stream = await aclient.responses.create(**RESP, stream=True)
    async with ge_openai.guard(policy, stream) as guarded:
        events = [e async for e in guarded]
    expected = policy.validate_sync(TEXT).text
    assert _text_of(events) == expected
    assert all(
        type(e) is ResponseTextDeltaEvent for e in events if e.type == "response.output_text.delta"
    )
    seq = [e.sequence_number for e in events]
    assert seq == list(range(len(events)))
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == expected
    item = next(e for e in events if e.type == "response.output_item.done").item
    assert isinstance(item, ResponseOutputMessage) and item.content[0].type == "output_text"
    assert item.content[0].text == expected
    final = events[-1]
    assert final.type == "response.completed" and isinstance(final.response, Response)
    assert final.response.output_text == expected and final.response.usage is not None


def test_responses_stream_sync_block_is_incomplete_content_filter(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    pieces = ["Some text, ", "this is internal", " use", " only and"] + [" more"] * 40
    server.add("responses", response_events([("text", pieces)]), delay=SLOW)
    stream = client.responses.create(**RESP, stream=True)
    events = list(ge_openai.guard_sync(policy, stream))
    assert _text_of(events) == "Some text, this is " + MESSAGE
    last = events[-1]
    assert isinstance(last, ResponseIncompleteEvent)
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "content_filter"
    assert last.response.output_text == "Some text, this is " + MESSAGE
    types = [e.type for e in events[-5:]]
    assert types == [
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    served = server.last()
    k = 4 + 4  # created, in_progress, item added, part added, then " only" is the 4th delta
    assert served.left and served.sent <= k + 2, (served.sent, k)


@pytest.mark.anyio
async def test_responses_tool_calls(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    args = json.dumps({"order_id": "42", "note": f"to {EMAIL}"})
    server.add(
        "responses",
        response_events([("text", ["Checking."]), ("call", ("lookup_order", words(args, 5)))]),
    )
    stream = await aclient.responses.create(**RESP, stream=True)
    events = [e async for e in ge_openai.guard(policy, stream)]
    final = events[-1]
    assert final.type == "response.completed"
    call = final.response.output[1]
    assert isinstance(call, ResponseFunctionToolCall) and call.name == "lookup_order"
    assert json.loads(call.arguments) == {"order_id": "42", "note": "to <EMAIL_ADDRESS>"}
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) == 1 and json.loads(deltas[0]) == json.loads(call.arguments)
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [a.item.type for a in added] == ["message", "function_call"]
    # a violation: stopped, a message item carries the block message, response incomplete
    bad = ['{"order_id": "4', "2x", '"}'] + [" "] * 30
    server.add("responses", response_events([("call", ("lookup_order", bad))]), delay=SLOW)
    stream = await aclient.responses.create(**RESP, stream=True)
    events = [e async for e in ge_openai.guard(policy, stream)]
    assert not [e for e in events if e.type.startswith("response.function_call")]
    last = events[-1]
    assert isinstance(last, ResponseIncompleteEvent)
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "content_filter"
    assert last.response.output_text == MESSAGE
    served = server.last()
    k = 3 + 2  # created, in_progress, item added, then "2x"
    assert served.left and served.sent <= k + 2, (served.sent, k)


@pytest.mark.anyio
async def test_responses_refusal(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    refusal = f"No, not {EMAIL}."
    server.add("responses", response_events([("refusal", words(refusal, 3))]))
    stream = await aclient.responses.create(**RESP, stream=True)
    events = [e async for e in ge_openai.guard(policy, stream)]
    got = "".join(e.delta for e in events if e.type == "response.refusal.delta")
    assert got == policy.validate_sync(refusal).text
    part = events[-1].response.output[0].content[0]
    assert part.type == "refusal" and part.refusal == got


def _response_payload() -> dict[str, Any]:
    return response_obj(
        [
            message_item("msg_1", [text_part(f"Write to {EMAIL}.")], "completed"),
            {
                "id": "fc_1",
                "type": "function_call",
                "call_id": "call_1",
                "name": "lookup_order",
                "arguments": json.dumps({"order_id": "1", "note": EMAIL}),
                "status": "completed",
            },
            message_item("msg_2", [text_part("Then internal use only.")], "completed"),
            message_item("msg_3", [text_part("Never shown.")], "completed"),
        ]
    )


def _check_response(reply: Response, guarded: Response) -> None:
    assert type(guarded) is Response and guarded.id == reply.id
    assert guarded.status == "incomplete"
    assert guarded.incomplete_details is not None
    assert guarded.incomplete_details.reason == "content_filter"
    assert len(guarded.output) == 3  # cut after the blocked item
    assert guarded.output_text == "Write to <EMAIL_ADDRESS>." + MESSAGE
    call = guarded.output[1]
    assert isinstance(call, ResponseFunctionToolCall)
    assert json.loads(call.arguments) == {"order_id": "1", "note": "<EMAIL_ADDRESS>"}
    assert reply.status == "completed" and len(reply.output) == 4


@pytest.mark.anyio
async def test_response_reply_async(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    server.add("json", _response_payload())
    reply = await aclient.responses.create(**RESP)
    _check_response(reply, await ge_openai.guard_reply(policy, reply))


def test_response_reply_sync(server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy) -> None:
    server.add("json", _response_payload())
    reply = client.responses.create(**RESP)
    _check_response(reply, ge_openai.guard_reply_sync(policy, reply))


# -- chunking: the guarded text is validate() of the joined text --------------------------------
SAMPLES = [
    f"Contact {EMAIL} or call later, thanks.",
    "This is internal use only, do not share.",
    "Nothing special in this answer at all.",
    f"Two: {EMAIL} and ann.lee@example.org end.",
]


def _cut(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sample=st.sampled_from(SAMPLES), cuts=st.lists(st.integers(0, 200), max_size=12))
def test_chat_chunking_property(
    fake: FakeOpenAI, policy: ge.Policy, sample: str, cuts: list[int]
) -> None:
    fake.replies.clear()
    fake.add("chat", chat_chunks([(0, {"content": p}) for p in _cut(sample, cuts)]))
    with openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as client:
        chunks = list(
            ge_openai.guard_sync(policy, client.chat.completions.create(**CHAT, stream=True))
        )
    expected = policy.validate_sync(sample)
    if expected.blocked:
        assert content_of(chunks).endswith(MESSAGE)
        assert finish_of(chunks) == ["content_filter"]
    else:
        assert content_of(chunks) == expected.text
        assert finish_of(chunks) == ["stop"]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    note=st.sampled_from(["plain", EMAIL, f"a {EMAIL} b", 'x\n"q" \\ end', f'"{EMAIL}"']),
    order=st.sampled_from(["123", "12x"]),
    cuts=st.lists(st.integers(0, 200), max_size=10),
)
def test_tool_arguments_chunking_property(
    fake: FakeOpenAI, policy: ge.Policy, note: str, order: str, cuts: list[int]
) -> None:
    args = json.dumps({"order_id": order, "note": note})
    fake.replies.clear()
    fake.add("responses", response_events([("call", ("lookup_order", _cut(args, cuts)))]))
    with openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as client:
        events = list(ge_openai.guard_sync(policy, client.responses.create(**RESP, stream=True)))
    expected = policy.tools["lookup_order"].policy.validate_sync(args)
    last = events[-1]
    if expected.blocked:
        assert last.type == "response.incomplete" and last.response.output_text == MESSAGE
    else:
        assert last.type == "response.completed"
        call = last.response.output[0]
        assert isinstance(call, ResponseFunctionToolCall)
        assert call.arguments == expected.text
        json.loads(call.arguments)


# -- API edges --------------------------------------------------------------------------------
def test_wrong_stream_kind_and_arguments(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    server.add("chat", chat_chunks([(0, {"content": "hi"})]))
    stream = client.chat.completions.create(**CHAT, stream=True)
    with pytest.raises(TypeError, match="guard_sync"):
        ge_openai.guard(policy, stream)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="refusals"):
        ge_openai.guard_sync(policy, stream, refusals="maybe")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Policy"):
        ge_openai.guard_sync("policy.yaml", stream)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ChatCompletion or a Response"):
        ge_openai.guard_reply_sync(policy, {"choices": []})  # type: ignore[type-var]
    guarded = ge_openai.guard_sync(policy, stream)
    first = next(guarded)
    assert EMAIL not in repr(guarded) and type(first) is ChatCompletionChunk
    guarded.close()
    with pytest.raises(ge.StreamStateError):  # closed early: not taken for a whole reply
        next(guarded)


def test_import_without_the_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("guardrails_engine.openai", "guardrails_engine._adapters.openai"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ImportError, match=r"pip install 'guardrails-engine\[openai\]'"):
        importlib.import_module("guardrails_engine.openai")


# -- more endings -----------------------------------------------------------------------------
@pytest.mark.anyio
async def test_a_block_in_one_choice_ends_every_open_choice(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    deltas: list[tuple[int, dict[str, Any]]] = [
        (1, {"content": "Choice one says hello "}),
        (0, {"content": "Zero: this is internal"}),
        (1, {"content": "and then some"}),
        (0, {"content": " use only."}),
    ] + [(1, {"content": " more"}) for _ in range(30)]
    server.add("chat", chat_chunks(deltas), delay=SLOW)
    stream = await aclient.chat.completions.create(**CHAT, n=2, stream=True)
    chunks = [c async for c in ge_openai.guard(policy, stream)]
    assert content_of(chunks, 0) == "Zero: this is " + MESSAGE
    one = content_of(chunks, 1)
    assert one.startswith("Choice one says hello") and MESSAGE not in one
    assert finish_of(chunks, 0) == ["content_filter"] and finish_of(chunks, 1) == ["content_filter"]
    served = server.last()
    k = 2 + 4  # two role chunks, then the 4th delta
    assert served.left and served.sent <= k + 2, (served.sent, k)


@pytest.mark.anyio
async def test_a_dropped_guarded_stream_closes_upstream_when_collected(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    server.add("chat", chat_chunks([(0, {"content": f"word{i} "}) for i in range(100)]), delay=SLOW)
    stream = await aclient.chat.completions.create(**CHAT, stream=True)
    got = 0
    async for _ in ge_openai.guard(policy, stream):  # never closed by the consumer
        got += 1
        if got == 3:
            break
    gc.collect()
    for _ in range(50):
        if server.served[-1].done.is_set():
            break
        await anyio.sleep(0.02)
    served = server.last()
    assert served.left and served.sent < served.total


def test_an_upstream_that_ends_without_finish_reason_still_releases_the_rest(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    server.add("chat", chat_chunks([(0, {"content": w}) for w in words(TEXT)], finish={}))
    chunks = list(ge_openai.guard_sync(policy, client.chat.completions.create(**CHAT, stream=True)))
    assert content_of(chunks) == policy.validate_sync(TEXT).text
    assert finish_of(chunks) == []


@pytest.mark.anyio
async def test_responses_early_stop_closes_upstream(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    server.add("responses", response_events([("text", [f"w{i} " for i in range(80)])]), delay=SLOW)
    stream = await aclient.responses.create(**RESP, stream=True)
    async with ge_openai.guard(policy, stream) as guarded:
        async for event in guarded:
            if event.type == "response.output_text.delta":
                break
        at_stop = server.served[-1].sent
    served = server.last()
    assert served.left and served.sent <= at_stop + 2 < served.total


def test_responses_incremental_call_blocked_midway(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    note = json.dumps({"text": "fine words first, then internal use only, then more"})
    server.add("responses", response_events([("call", ("send_note", words(note, 6)))]), delay=SLOW)
    events = list(ge_openai.guard_sync(policy, client.responses.create(**RESP, stream=True)))
    shown = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert shown and "internal use only" not in shown  # incremental: shown up to the block
    cut = [e for e in events if e.type == "response.output_item.done"]
    assert cut[0].item.type == "function_call" and cut[0].item.status == "incomplete"
    assert cut[1].item.type == "message" and cut[1].output_index == 1
    last = events[-1]
    assert isinstance(last, ResponseIncompleteEvent) and last.response.output_text == MESSAGE
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert server.last().left


@pytest.mark.parametrize("mode", ["guard", "pass"])
def test_chat_reply_refusal(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy, mode: str
) -> None:
    refusal = f"I won't mail {EMAIL}."
    server.add("json", completion([{"message": {"content": None, "refusal": refusal}}]))
    reply = client.chat.completions.create(**CHAT)
    guarded = ge_openai.guard_reply_sync(policy, reply, refusals=mode)  # type: ignore[arg-type]
    want = policy.validate_sync(refusal).text if mode == "guard" else refusal
    assert guarded.choices[0].message.refusal == want
    assert guarded.choices[0].message.content is None


def test_nothing_detected_reaches_logs_or_reprs(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.add(
        "chat", chat_chunks([(0, {"content": w}) for w in words(f"Hi {EMAIL}, internal use only")])
    )
    guarded = ge_openai.guard_sync(policy, client.chat.completions.create(**CHAT, stream=True))
    chunks = list(guarded)
    assert content_of(chunks).endswith(MESSAGE)
    assert EMAIL not in caplog.text and EMAIL not in repr(guarded)
    assert "jdoe" not in content_of(chunks)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    a=st.sampled_from(SAMPLES),
    b=st.sampled_from(SAMPLES),
    cuts_a=st.lists(st.integers(0, 200), max_size=8),
    cuts_b=st.lists(st.integers(0, 200), max_size=8),
    order=st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_two_choices_chunking_property(
    fake: FakeOpenAI,
    policy: ge.Policy,
    a: str,
    b: str,
    cuts_a: list[int],
    cuts_b: list[int],
    order: list[bool],
) -> None:
    pa, pb = _cut(a, cuts_a), _cut(b, cuts_b)
    deltas: list[tuple[int, dict[str, Any]]] = []
    for first in itertools.cycle(order):
        if not pa and not pb:
            break
        src, index = (pa, 0) if (first and pa) or not pb else (pb, 1)
        deltas.append((index, {"content": src.pop(0)}))
    fake.replies.clear()
    fake.add("chat", chat_chunks(deltas, finish={0: "stop", 1: "stop"}))
    with openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as client:
        stream = client.chat.completions.create(**CHAT, n=2, stream=True)
        chunks = list(ge_openai.guard_sync(policy, stream))
    results = {0: policy.validate_sync(a), 1: policy.validate_sync(b)}
    if any(r.blocked for r in results.values()):
        blocked = [i for i in (0, 1) if content_of(chunks, i).endswith(MESSAGE)]
        assert len(blocked) == 1 and results[blocked[0]].blocked
        assert finish_of(chunks, 0) == finish_of(chunks, 1) == ["content_filter"]
    else:
        for i in (0, 1):
            assert content_of(chunks, i) == results[i].text
            assert finish_of(chunks, i) == ["stop"]


@pytest.mark.anyio
async def test_a_policy_with_ner_runs_its_work_in_threads_through_the_adapter(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI
) -> None:
    ner = ge.Policy.from_yaml(
        "version: 1\nname: ner\nchecks:\n"
        "  - {id: pii, type: pii, entities: [PERSON, EMAIL_ADDRESS]}\n"
    )
    assert ner.blocking
    text = f"Yesterday John Smith wrote to {EMAIL} about the order."
    server.add("chat", chat_chunks([(0, {"content": w}) for w in words(text, 6)]))
    stream = await aclient.chat.completions.create(**CHAT, stream=True)
    async with ge_openai.guard(ner, stream) as guarded:
        chunks = [c async for c in guarded]
    assert content_of(chunks) == ner.validate_sync(text).text
    assert "John" not in content_of(chunks) and "<PERSON>" in content_of(chunks)


def test_text_released_in_the_chunk_of_a_tool_block_is_kept(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    chunk = {"content": "One moment. ", **_call(0, "", name="rm_rf", call_id="call_x")}
    server.add("chat", chat_chunks([(0, chunk)], finish={0: "tool_calls"}))
    chunks = list(ge_openai.guard_sync(policy, client.chat.completions.create(**CHAT, stream=True)))
    text = content_of(chunks)
    assert text.startswith("One moment.") and text.endswith(MESSAGE)
    assert tool_calls_of(chunks) == {} and finish_of(chunks) == ["content_filter"]


def test_the_deprecated_function_call_goes_through_the_tool_rules(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    args = json.dumps({"order_id": "5", "note": EMAIL})
    deltas: list[tuple[int, dict[str, Any]]] = [
        (0, {"function_call": {"name": "lookup_order", "arguments": ""}})
    ] + [(0, {"function_call": {"arguments": p}}) for p in words(args, 5)]
    server.add("chat", chat_chunks(deltas, finish={0: "function_call"}))
    chunks = list(ge_openai.guard_sync(policy, client.chat.completions.create(**CHAT, stream=True)))
    shown = [c.delta.function_call for ch in chunks for c in ch.choices if c.delta.function_call]
    assert len(shown) == 1 and shown[0].name == "lookup_order"  # release complete
    assert shown[0].arguments is not None
    assert json.loads(shown[0].arguments) == {"order_id": "5", "note": "<EMAIL_ADDRESS>"}
    assert finish_of(chunks) == ["function_call"]
    server.add("chat", chat_chunks([(0, {"function_call": {"name": "rm_rf", "arguments": "{}"}})]))
    chunks = list(ge_openai.guard_sync(policy, client.chat.completions.create(**CHAT, stream=True)))
    assert content_of(chunks) == MESSAGE and finish_of(chunks) == ["content_filter"]
    assert not [c for ch in chunks for c in ch.choices if c.delta.function_call]


@pytest.mark.anyio
async def test_responses_text_that_was_not_streamed_is_checked_too(
    server: FakeOpenAI, aclient: openai.AsyncOpenAI, policy: ge.Policy
) -> None:
    def whole(items: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        """Events without the part's own events: the text comes only with the item."""
        return [
            e
            for e in response_events(items)
            if not e["type"].startswith(("response.output_text", "response.content_part"))
        ]

    events = whole([("text", [])])
    for e in events:
        if e["type"] == "response.output_item.done":
            e["item"]["content"] = [text_part(f"Write to {EMAIL}.")]
        if e["type"] == "response.completed":
            e["response"]["output"][0]["content"] = [text_part(f"Write to {EMAIL}.")]
    server.add("responses", events)
    stream = await aclient.responses.create(**RESP, stream=True)
    got = [e async for e in ge_openai.guard(policy, stream)]
    done = next(e for e in got if e.type == "response.output_item.done")
    assert done.item.content[0].text == "Write to <EMAIL_ADDRESS>."
    assert got[-1].type == "response.completed"
    assert got[-1].response.output_text == "Write to <EMAIL_ADDRESS>."
    blocked = whole([("text", [])])
    for e in blocked:
        if e["type"] == "response.completed":
            e["response"]["output"][0]["content"] = [text_part("Oops: internal use only.")]
    server.add("responses", blocked)
    stream = await aclient.responses.create(**RESP, stream=True)
    got = [e async for e in ge_openai.guard(policy, stream)]
    assert isinstance(got[-1], ResponseIncompleteEvent)
    assert got[-1].response.output_text == MESSAGE


def test_a_chunk_with_two_choices_keeps_the_text_before_a_block(
    server: FakeOpenAI, client: openai.OpenAI, policy: ge.Policy
) -> None:
    chunks = chat_chunks([(0, {"content": "Hello and "}), (1, {"content": "x"})])
    both = {
        **chunks[0],
        "choices": [
            {"index": 0, "delta": {"content": "welcome, friend. "}, "finish_reason": None},
            {"index": 1, "delta": {"content": "internal use only!"}, "finish_reason": None},
        ],
    }
    server.add("chat", [*chunks[:3], both, *chunks[3:]])
    stream = client.chat.completions.create(**CHAT, n=2, stream=True)
    got = list(ge_openai.guard_sync(policy, stream))
    assert content_of(got, 0).startswith("Hello and welcome")
    assert content_of(got, 1).endswith(MESSAGE)
    assert finish_of(got, 0) == finish_of(got, 1) == ["content_filter"]
