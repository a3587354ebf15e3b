"""guardrails_engine.anthropic: the real Anthropic SDK clients against a fake server.

Every test drives ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic`` pointed at
the fake server of ``_fake_anthropic`` (127.0.0.1, port 0) and asserts on the SDK's
own types.  The server records how many events it had sent when the client left,
so the tests see the upstream closed on a block, an early stop and a cancellation.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import anthropic
import anyio
import pydantic
import pytest
from _fake_anthropic import (
    MODEL,
    Event,
    FakeAnthropic,
    Reply,
    Text,
    Thinking,
    Tool,
    message_json,
    sse_events,
)
from anthropic.types import (
    Message,
    MessageDeltaUsage,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    RawMessageStreamEvent,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ToolUseBlock,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge
from guardrails_engine import anthropic as ge_anthropic

MESSAGE = "Sorry, I can't share that."
SLOW = 0.05  # seconds between events when a test looks at when the client left
ARGS = {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}]}

TOOLS_POLICY = f"""
version: 1
name: tools-chat
block_message: "{MESSAGE}"
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS, PHONE_NUMBER]}}
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
            email: {{type: string}}
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
    return "asyncio"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def policy(support_policy: ge.Policy) -> ge.Policy:
    return support_policy


@pytest.fixture(scope="module")
def tools_policy() -> ge.Policy:
    return ge.Policy.from_yaml(TOOLS_POLICY)


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(fake: FakeAnthropic) -> Any:
    async with anthropic.AsyncAnthropic(base_url=fake.url, api_key="x", max_retries=0) as c:
        yield c


RAW_TYPES = {
    RawMessageStartEvent,
    RawContentBlockStartEvent,
    RawContentBlockDeltaEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStopEvent,
}


# -- helpers ------------------------------------------------------------------------------
def texts(events: Sequence[RawMessageStreamEvent]) -> dict[int, str]:
    """The text of each text block, joined from its text deltas."""
    out: dict[int, str] = {}
    for e in events:
        if isinstance(e, RawContentBlockStartEvent) and isinstance(e.content_block, TextBlock):
            out[e.index] = e.content_block.text
        if isinstance(e, RawContentBlockDeltaEvent) and e.delta.type == "text_delta":
            out[e.index] += e.delta.text
    return out


def all_text(events: Sequence[RawMessageStreamEvent]) -> str:
    return "".join(texts(events).values())


def tool_inputs(events: Sequence[RawMessageStreamEvent]) -> dict[int, str]:
    """The arguments of each tool_use block, joined from its input_json deltas."""
    out: dict[int, str] = {}
    for e in events:
        if isinstance(e, RawContentBlockStartEvent) and isinstance(e.content_block, ToolUseBlock):
            out[e.index] = ""
        if isinstance(e, RawContentBlockDeltaEvent) and e.delta.type == "input_json_delta":
            out[e.index] += e.delta.partial_json
    return out


def end_of(events: Sequence[RawMessageStreamEvent]) -> RawMessageDeltaEvent:
    deltas = [e for e in events if isinstance(e, RawMessageDeltaEvent)]
    assert len(deltas) == 1
    return deltas[0]


def assert_well_formed(events: Sequence[RawMessageStreamEvent]) -> None:
    """The order a client expects: message_start, blocks opened and closed, then
    message_delta and message_stop, every event of the SDK's own raw types."""
    assert {type(e) for e in events} <= RAW_TYPES
    assert isinstance(events[0], RawMessageStartEvent)
    assert isinstance(events[-1], RawMessageStopEvent)
    assert isinstance(events[-2], RawMessageDeltaEvent)
    open_blocks: set[int] = set()
    for e in events[1:-2]:
        if isinstance(e, RawContentBlockStartEvent):
            assert e.index not in open_blocks
            open_blocks.add(e.index)
        elif isinstance(e, RawContentBlockDeltaEvent):
            assert e.index in open_blocks
        else:
            assert isinstance(e, RawContentBlockStopEvent), type(e)
            open_blocks.remove(e.index)
    assert not open_blocks


def decision_chunk(policy: ge.Policy, chunks: Sequence[str]) -> int:
    """How many chunks the library pulls before it decides (all of them if it does not)."""
    pulled = 0

    def source() -> Iterator[str]:
        nonlocal pulled
        for chunk in chunks:
            pulled += 1
            yield chunk

    for _ in policy.stream_sync(source()):
        pass
    return pulled


def server_position(events: list[Event], index: int, nth: int) -> int:
    """The number of events the server has sent once it sent delta ``nth`` (1-based)
    of block ``index``."""
    seen = 0
    for position, (name, data) in enumerate(events, 1):
        if name == "content_block_delta" and data["index"] == index:
            seen += 1
            if seen == nth:
                return position
    raise AssertionError("no such delta")


def assert_left_near(fake: FakeAnthropic, decided_at: int) -> None:
    exchange = fake.last()
    assert not exchange.completed
    assert exchange.left_after is not None
    assert decided_at <= exchange.left_after <= decided_at + 2, (exchange.left_after, decided_at)


PII_CHUNKS = ["Hello! Write to jd", "oe@exam", "ple.com or call 415-", "555-01", "32. Bye."]
PII_MASKED = "Hello! Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER>. Bye."
SECRET_CHUNKS = ["Our plan ", "is internal ", "use only", " so ", "I ", "stop ", "here ", "now."]


# -- streamed text ------------------------------------------------------------------------
@pytest.mark.anyio
async def test_async_stream_masks_pii_and_keeps_the_sdk_types(
    fake: FakeAnthropic, aclient: anthropic.AsyncAnthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(PII_CHUNKS)], msg_id="msg_A1", output_tokens=17))
    upstream = await aclient.messages.create(**ARGS, stream=True)
    events = [e async for e in ge_anthropic.guard(policy, upstream)]
    assert_well_formed(events)
    start = events[0]
    assert isinstance(start, RawMessageStartEvent)
    assert start.message.id == "msg_A1" and start.message.model == MODEL
    assert start.message.usage.input_tokens == 21
    assert start.message.usage.cache_read_input_tokens == 5
    assert texts(events) == {0: PII_MASKED}
    end = end_of(events)
    assert end.delta.stop_reason == "end_turn"
    assert isinstance(end.usage, MessageDeltaUsage) and end.usage.output_tokens == 17
    deltas = [e.delta for e in events if isinstance(e, RawContentBlockDeltaEvent)]
    assert deltas and all(isinstance(d, TextDelta) and d.text for d in deltas)
    assert fake.last().completed


def test_sync_stream_masks_pii(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(PII_CHUNKS)], output_tokens=9))
    upstream = client.messages.create(**ARGS, stream=True)
    with ge_anthropic.guard_sync(policy, upstream) as guarded:
        events = list(guarded)
    assert_well_formed(events)
    assert texts(events) == {0: PII_MASKED}
    assert end_of(events).usage.output_tokens == 9
    assert fake.last().completed


def test_each_block_is_its_own_run_and_thinking_passes_through(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    blocks = [Thinking(["I think jdoe@", "example.com"]), Text(["a@b", ".com"]), Text(["ok"])]
    fake.stream(sse_events(blocks))
    events = list(ge_anthropic.guard_sync(policy, client.messages.create(**ARGS, stream=True)))
    assert_well_formed(events)
    assert texts(events) == {1: "<EMAIL_ADDRESS>", 2: "ok"}
    thinking = [
        e.delta
        for e in events
        if isinstance(e, RawContentBlockDeltaEvent) and e.delta.type == "thinking_delta"
    ]
    assert "".join(d.thinking for d in thinking) == "I think jdoe@example.com"  # type: ignore[union-attr]
    starts = [e for e in events if isinstance(e, RawContentBlockStartEvent)]
    assert isinstance(starts[0].content_block, ThinkingBlock)


NER_POLICY = "version: 1\nname: ner\nchecks:\n  - {id: pii, type: pii, entities: [PERSON]}\n"
NER_CHUNKS = ["Thanks. My name is Jo", "hn Sm", "ith and I will call back."]


@pytest.fixture(scope="module")
def ner_policy() -> ge.Policy:
    policy = ge.Policy.from_yaml(NER_POLICY)
    assert policy.blocking  # NER runs in worker threads
    return policy


@pytest.mark.anyio
async def test_ner_in_worker_threads_async(
    fake: FakeAnthropic, aclient: anthropic.AsyncAnthropic, ner_policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(NER_CHUNKS)]))
    upstream = await aclient.messages.create(**ARGS, stream=True)
    events = [e async for e in ge_anthropic.guard(ner_policy, upstream)]
    assert texts(events) == {0: ner_policy.validate_sync("".join(NER_CHUNKS)).text}
    assert "<PERSON>" in texts(events)[0]


def test_ner_in_worker_threads_sync(
    fake: FakeAnthropic, client: anthropic.Anthropic, ner_policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(NER_CHUNKS)]))
    events = list(ge_anthropic.guard_sync(ner_policy, client.messages.create(**ARGS, stream=True)))
    assert texts(events) == {0: ner_policy.validate_sync("".join(NER_CHUNKS)).text}


def test_text_outside_a_text_block_is_not_shown(policy: ge.Policy) -> None:
    # A malformed reply: text deltas for a thinking block and for a block that never
    # started (the SDK's own accumulation ignores the first and fails on the second).
    script = [data for _, data in sse_events([Thinking([])], ping=False)]
    stray = [
        {
            "type": "content_block_delta",
            "index": i,
            "delta": {"type": "text_delta", "text": "a@b.com"},
        }
        for i in (0, 7)
    ]
    parse = pydantic.TypeAdapter(RawMessageStreamEvent).validate_python
    events = [parse(data) for data in [*script[:2], *stray, *script[2:]]]
    out = list(ge_anthropic.guard_sync(policy, iter(events)))
    assert_well_formed(out)
    assert not [
        e for e in out if isinstance(e, RawContentBlockDeltaEvent) and e.delta.type == "text_delta"
    ]


# -- a block ------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_async_block_ends_with_refusal_and_closes_upstream(
    fake: FakeAnthropic, aclient: anthropic.AsyncAnthropic, policy: ge.Policy
) -> None:
    chunks = ["Hi there. ", *SECRET_CHUNKS]
    script = sse_events([Text(chunks)], output_tokens=40)
    fake.stream(script, delay=SLOW)
    upstream = await aclient.messages.create(**ARGS, stream=True)
    events = [e async for e in ge_anthropic.guard(policy, upstream)]
    assert_well_formed(events)
    text = texts(events)[0]
    assert text.endswith(MESSAGE)
    assert "internal" not in text
    assert text.startswith("Hi there.")
    end = end_of(events)
    assert end.delta.stop_reason == "refusal"
    if hasattr(end.delta, "stop_details"):  # SDKs that have it
        assert end.delta.stop_details is not None and end.delta.stop_details.type == "refusal"
    # Usage: the last the upstream reported (its message_start), as it was cut short.
    assert end.usage.input_tokens == 21 and end.usage.output_tokens == 1
    tail = events[-4:]
    assert isinstance(tail[0], RawContentBlockDeltaEvent) and tail[0].delta.text == MESSAGE  # type: ignore[union-attr]
    assert isinstance(tail[1], RawContentBlockStopEvent) and tail[1].index == 0
    assert_left_near(fake, server_position(script, 0, decision_chunk(policy, chunks)))


def test_sync_block_ends_with_refusal_and_closes_upstream(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    script = sse_events([Text(["fine "]), Text(SECRET_CHUNKS), Text(["never sent"])])
    fake.stream(script, delay=SLOW)
    events = list(ge_anthropic.guard_sync(policy, client.messages.create(**ARGS, stream=True)))
    assert_well_formed(events)
    assert texts(events) == {0: "fine ", 1: "Our plan is " + MESSAGE}
    assert end_of(events).delta.stop_reason == "refusal"
    assert_left_near(fake, server_position(script, 1, decision_chunk(policy, SECRET_CHUNKS)))


def test_an_upstream_refusal_passes_through(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(["I can't help with that."])], stop_reason="refusal"))
    events = list(ge_anthropic.guard_sync(policy, client.messages.create(**ARGS, stream=True)))
    assert_well_formed(events)
    assert texts(events) == {0: "I can't help with that."}
    assert end_of(events).delta.stop_reason == "refusal"
    assert fake.last().completed


# -- early stop and cancellation ----------------------------------------------------------
LONG = [f"word{i} " for i in range(40)]


@pytest.mark.anyio
async def test_async_early_stop_closes_upstream(
    fake: FakeAnthropic, aclient: anthropic.AsyncAnthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(LONG)]), delay=SLOW)
    upstream = await aclient.messages.create(**ARGS, stream=True)
    seen = 0
    async with ge_anthropic.guard(policy, upstream) as guarded:
        async for _ in guarded:
            seen += 1
            if seen == 6:
                sent = fake.exchanges[-1].sent
                break
    assert_left_near(fake, sent)


def test_sync_early_stop_closes_upstream(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(LONG)]), delay=SLOW)
    guarded = ge_anthropic.guard_sync(policy, client.messages.create(**ARGS, stream=True))
    for seen, _ in enumerate(guarded, 1):
        if seen == 6:
            sent = fake.exchanges[-1].sent
            break
    guarded.close()
    assert_left_near(fake, sent)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_consumer_cancellation_closes_upstream(
    fake: FakeAnthropic, aclient: anthropic.AsyncAnthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(LONG)]), delay=SLOW)
    upstream = await aclient.messages.create(**ARGS, stream=True)
    guarded = ge_anthropic.guard(policy, upstream)
    seen = 0
    sent = 0
    with anyio.CancelScope() as scope:
        async for _ in guarded:
            seen += 1
            if seen == 6:
                sent = fake.exchanges[-1].sent
                scope.cancel()  # delivered at the next await: inside the guard's pull
    assert scope.cancelled_caught
    assert_left_near(fake, sent)


@pytest.mark.anyio
async def test_a_dropped_async_stream_closes_upstream_when_collected(
    fake: FakeAnthropic, aclient: anthropic.AsyncAnthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(LONG)]), delay=SLOW)
    upstream = await aclient.messages.create(**ARGS, stream=True)
    seen = 0
    async for _ in ge_anthropic.guard(policy, upstream):
        seen += 1
        if seen == 5:
            sent = fake.exchanges[-1].sent
            break  # no aclose(), no async with
    del upstream
    gc.collect()
    for _ in range(100):  # the SDK's finalizer closes the response on the event loop
        await anyio.sleep(0.01)
        if fake.exchanges[-1].done.is_set():
            break
    assert_left_near(fake, sent)


def test_a_dropped_sync_stream_closes_upstream_when_collected(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(LONG)]), delay=SLOW)
    for seen, _ in enumerate(
        ge_anthropic.guard_sync(policy, client.messages.create(**ARGS, stream=True))
    ):
        if seen == 5:
            sent = fake.exchanges[-1].sent
            break
    gc.collect()
    assert_left_near(fake, sent)


@pytest.mark.anyio
async def test_the_sync_stream_works_where_an_event_loop_runs(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    # The sync guard needs no event loop of its own: it runs in this one's thread too.
    fake.stream(sse_events([Text(["Write to jd", "oe@example.com today."])]))
    guarded = ge_anthropic.guard_sync(policy, client.messages.create(**ARGS, stream=True))
    events = list(guarded)
    text = "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == policy.validate_sync("Write to jdoe@example.com today.").text
    assert events[-1].type == "message_stop"


@pytest.mark.anyio
async def test_an_upstream_error_mid_stream_releases_no_held_text(
    fake: FakeAnthropic, aclient: anthropic.AsyncAnthropic, policy: ge.Policy
) -> None:
    script = sse_events([Text(["Write to jd", "oe@exam"])])
    error = ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    fake.stream([*script[:5], error, *script[5:]])
    upstream = await aclient.messages.create(**ARGS, stream=True)
    events: list[RawMessageStreamEvent] = []
    with pytest.raises(anthropic.APIStatusError):
        async for event in ge_anthropic.guard(policy, upstream):
            events.append(event)
    assert "jd" not in all_text(events) and "oe@" not in all_text(events)
    fake.last()


# -- non-streamed messages ----------------------------------------------------------------
def test_sync_message_is_guarded_into_a_new_message(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    fake.reply(Reply(message=message_json([Text(PII_CHUNKS), Thinking(["x@y.com"])])))
    message = client.messages.create(**ARGS)
    guarded = ge_anthropic.guard_reply_sync(policy, message)
    assert isinstance(guarded, Message) and guarded is not message
    assert guarded.id == message.id and guarded.model == MODEL
    assert guarded.usage == message.usage and guarded.stop_reason == "end_turn"
    first = guarded.content[0]
    assert isinstance(first, TextBlock) and first.text == PII_MASKED
    assert guarded.content[1] == message.content[1]  # thinking passes through
    assert isinstance(message.content[0], TextBlock)
    assert "jdoe" in message.content[0].text  # the original is left as it was


def test_a_parsed_output_of_repaired_text_is_dropped(policy: ge.Policy) -> None:
    from anthropic.types import ParsedMessage, ParsedTextBlock

    body = message_json([Text(['{"mail": "jdoe@example.com"}']), Text(["fine"])])
    message = ParsedMessage[Any](**body)
    for block in message.content:
        assert isinstance(block, ParsedTextBlock)
        block.parsed_output = json.loads(block.text) if block.text.startswith("{") else "fine"
    guarded = ge_anthropic.guard_reply_sync(policy, message)
    assert isinstance(guarded, ParsedMessage)
    first, second = guarded.content
    assert isinstance(first, ParsedTextBlock) and isinstance(second, ParsedTextBlock)
    assert first.text == '{"mail": "<EMAIL_ADDRESS>"}' and first.parsed_output is None
    assert second.parsed_output == "fine"  # unchanged text keeps its parse


@pytest.mark.anyio
async def test_async_message_block_is_a_refusal(
    fake: FakeAnthropic, aclient: anthropic.AsyncAnthropic, policy: ge.Policy
) -> None:
    blocks = [Text(["fine"]), Text(SECRET_CHUNKS), Tool("lookup_order", ['{"order_id": "1"}'])]
    fake.reply(Reply(message=message_json(blocks)))
    message = await aclient.messages.create(**ARGS)
    guarded = await ge_anthropic.guard_reply(policy, message)
    assert isinstance(guarded, Message)
    assert guarded.stop_reason == "refusal"
    assert [b.type for b in guarded.content] == ["text", "text"]
    assert [b.text for b in guarded.content] == ["fine", MESSAGE]  # type: ignore[union-attr]
    assert guarded.usage == message.usage


def test_message_tool_input_is_guarded_as_json(
    fake: FakeAnthropic, client: anthropic.Anthropic, tools_policy: ge.Policy
) -> None:
    good = Tool("lookup_order", ['{"order_id": "12", "email": "jdoe@example.com"}'])
    fake.reply(Reply(message=message_json([Text(["Looking."]), good], stop_reason="tool_use")))
    guarded = ge_anthropic.guard_reply_sync(tools_policy, client.messages.create(**ARGS))
    tool = guarded.content[1]
    assert isinstance(tool, ToolUseBlock)
    assert tool.input == {"order_id": "12", "email": "<EMAIL_ADDRESS>"}
    assert tool.id == "toolu_01FAKE" and guarded.stop_reason == "tool_use"

    bad = Tool("lookup_order", ['{"order_id": "12x"}'])
    fake.reply(Reply(message=message_json([Text(["Looking."]), bad], stop_reason="tool_use")))
    guarded = ge_anthropic.guard_reply_sync(tools_policy, client.messages.create(**ARGS))
    assert guarded.stop_reason == "refusal"
    assert [(b.type, getattr(b, "text", None)) for b in guarded.content] == [
        ("text", "Looking."),
        ("text", MESSAGE),
    ]


# -- the messages.stream() helper ---------------------------------------------------------
def test_sync_stream_helper_yields_raw_events(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(PII_CHUNKS)]))
    with client.messages.stream(**ARGS) as helper:
        events = list(ge_anthropic.guard_sync(policy, helper))
    assert_well_formed(events)
    assert texts(events) == {0: PII_MASKED}
    # The manager itself is accepted too (entered and left by the guard).
    script = sse_events([Text(SECRET_CHUNKS)])
    fake.stream(script, delay=SLOW)
    events = list(ge_anthropic.guard_sync(policy, client.messages.stream(**ARGS)))
    assert_well_formed(events)
    assert end_of(events).delta.stop_reason == "refusal"
    assert_left_near(fake, server_position(script, 0, decision_chunk(policy, SECRET_CHUNKS)))


def test_a_helper_without_a_raw_stream_is_read_through_its_own_events(
    fake: FakeAnthropic,
    client: anthropic.Anthropic,
    policy: ge.Policy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import guardrails_engine._adapters.messages as adapter

    monkeypatch.setattr(adapter, "_raw_of", lambda helper: None)  # an SDK without one
    fake.stream(sse_events([Text(PII_CHUNKS), Tool("search", ['{"q": 1}'])]))
    with client.messages.stream(**ARGS) as helper:
        events = list(ge_anthropic.guard_sync(policy, helper))
    assert_well_formed(events)
    # (assert_well_formed: only raw events, not the helper's text events nor its stop
    # events, which carry the unguarded snapshot)
    assert texts(events) == {0: PII_MASKED}
    assert tool_inputs(events) == {1: '{"q": 1}'}


@pytest.mark.anyio
async def test_async_stream_helper_yields_raw_events(
    fake: FakeAnthropic, aclient: anthropic.AsyncAnthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(PII_CHUNKS)]))
    async with aclient.messages.stream(**ARGS) as helper:
        events = [e async for e in ge_anthropic.guard(policy, helper)]
    assert_well_formed(events)
    assert texts(events) == {0: PII_MASKED}
    fake.stream(sse_events([Text(LONG)]), delay=SLOW)
    async with ge_anthropic.guard(policy, aclient.messages.stream(**ARGS)) as guarded:
        async for event in guarded:
            if isinstance(event, RawContentBlockDeltaEvent):
                sent = fake.exchanges[-1].sent
                break
    assert_left_near(fake, sent)


# -- tool use -----------------------------------------------------------------------------
VIOLATION = [
    '{"order_id": "1',
    '23", ',
    '"email": "jdoe',
    '@example.com", ',
    '"no',
    'te"',
    ': "hi", ',
    '"more": 1',
    "}",
]


@pytest.mark.anyio
async def test_tool_schema_violation_stops_at_the_revealing_token(
    fake: FakeAnthropic, aclient: anthropic.AsyncAnthropic, tools_policy: ge.Policy
) -> None:
    script = sse_events([Text(["Let me look."]), Tool("lookup_order", VIOLATION)])
    fake.stream(script, delay=SLOW)
    upstream = await aclient.messages.create(**ARGS, stream=True)
    events = [e async for e in ge_anthropic.guard(tools_policy, upstream)]
    assert_well_formed(events)
    revealing = decision_chunk(tools_policy.tools["lookup_order"].policy, VIOLATION)
    # The key "note" is not allowed: the library sees it once the key is followed by ":".
    assert VIOLATION[revealing - 1] == ': "hi", '
    assert_left_near(fake, server_position(script, 1, revealing))
    # Release "complete": nothing of the arguments was released.
    assert tool_inputs(events) == {1: ""}
    assert texts(events) == {0: "Let me look.", 2: MESSAGE}
    assert end_of(events).delta.stop_reason == "refusal"


def test_tool_pii_is_repaired_and_released_complete(
    fake: FakeAnthropic, client: anthropic.Anthropic, tools_policy: ge.Policy
) -> None:
    chunks = ['{"order_id": "1', '23", ', '"email": "jdoe', '@example.com"', "}"]
    fake.stream(sse_events([Tool("lookup_order", chunks)], stop_reason="tool_use"))
    events = list(
        ge_anthropic.guard_sync(tools_policy, client.messages.create(**ARGS, stream=True))
    )
    assert_well_formed(events)
    deltas = [e for e in events if isinstance(e, RawContentBlockDeltaEvent)]
    # Released once complete and valid: just before the block's content_block_stop.
    position = events.index(deltas[-1])
    assert isinstance(events[position + 1], RawContentBlockStopEvent)
    assert json.loads(tool_inputs(events)[0]) == {"order_id": "123", "email": "<EMAIL_ADDRESS>"}
    assert end_of(events).delta.stop_reason == "tool_use"
    start = events[1]
    assert isinstance(start, RawContentBlockStartEvent)
    assert (
        isinstance(start.content_block, ToolUseBlock) and start.content_block.id == "toolu_01FAKE"
    )


def test_tool_release_incremental(
    fake: FakeAnthropic, client: anthropic.Anthropic, tools_policy: ge.Policy
) -> None:
    chunks = ['{"to": "jdoe', '@example.com", ', '"body": "a long note ', "about things", '"}']
    fake.stream(sse_events([Tool("send_note", chunks)], stop_reason="tool_use"))
    events = list(
        ge_anthropic.guard_sync(tools_policy, client.messages.create(**ARGS, stream=True))
    )
    assert_well_formed(events)
    deltas = [e for e in events if isinstance(e, RawContentBlockDeltaEvent)]
    assert len(deltas) > 1  # released as it became safe
    assert json.loads(tool_inputs(events)[0]) == {
        "to": "<EMAIL_ADDRESS>",
        "body": "a long note about things",
    }


def test_an_incremental_tool_call_blocked_midway_is_closed_then_refused(
    fake: FakeAnthropic, client: anthropic.Anthropic, tools_policy: ge.Policy
) -> None:
    chunks = ['{"body": "the plan ', "is here and ", "internal use ", 'only", ', '"to": "x"}']
    script = sse_events([Text(["Sending."]), Tool("send_note", chunks)], stop_reason="tool_use")
    fake.stream(script, delay=SLOW)
    events = list(
        ge_anthropic.guard_sync(tools_policy, client.messages.create(**ARGS, stream=True))
    )
    assert_well_formed(events)
    args = tool_inputs(events)[1]
    assert args.startswith('{"body": "the plan') and "internal" not in args
    assert texts(events) == {0: "Sending.", 2: MESSAGE}
    assert end_of(events).delta.stop_reason == "refusal"
    decided = decision_chunk(tools_policy.tools["send_note"].policy, chunks)
    assert_left_near(fake, server_position(script, 1, decided))


def test_a_closed_stream_cannot_be_iterated_and_shows_no_text(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(LONG)]), delay=SLOW)
    guarded = ge_anthropic.guard_sync(policy, client.messages.create(**ARGS, stream=True))
    next(guarded)
    guarded.close()
    assert "word" not in repr(guarded)
    with pytest.raises(ge.StreamStateError):
        next(guarded)
    assert fake.last().left_after is not None


def test_unknown_tools_pass_or_block(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy, tools_policy: ge.Policy
) -> None:
    chunks = ['{"q": "jdoe@', 'example.com"}']
    script = sse_events([Tool("search", chunks)], stop_reason="tool_use")
    fake.stream(script)
    events = list(ge_anthropic.guard_sync(policy, client.messages.create(**ARGS, stream=True)))
    # no rule, unknown_tools: check (the default): the policy's pii check masks the value
    assert tool_inputs(events) == {0: '{"q": "<EMAIL_ADDRESS>"}'}
    fake.stream(script, delay=SLOW)
    events = list(
        ge_anthropic.guard_sync(tools_policy, client.messages.create(**ARGS, stream=True))
    )
    assert_well_formed(events)
    # unknown_tools: block: the call never starts; the block message takes its place.
    assert tool_inputs(events) == {}
    assert texts(events) == {0: MESSAGE}
    assert end_of(events).delta.stop_reason == "refusal"
    assert_left_near(fake, 3)  # message_start, ping, content_block_start


# -- the stream guarantees through the adapter --------------------------------------------
TEXTS = [
    "Hello, mail jdoe@example.com or call 415-555-0132 today.",
    "The key is sk-abcdefghijklmnopqrstuvwxyz012345, keep it.",
    "Plain prose with nothing to hide, and a comma.",
    "This is internal use only: do not forward.",
]


@st.composite
def chunked(draw: st.DrawFn) -> list[str]:
    text = draw(st.sampled_from(TEXTS))
    cuts = sorted(draw(st.sets(st.integers(1, len(text) - 1), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(chunks=chunked())
def test_any_chunking_gives_validate_of_the_joined_text(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy, chunks: list[str]
) -> None:
    fake.stream(sse_events([Text(chunks)]))
    events = list(ge_anthropic.guard_sync(policy, client.messages.create(**ARGS, stream=True)))
    assert_well_formed(events)
    expected = policy.validate_sync("".join(chunks))
    text = texts(events)[0]
    if expected.blocked:
        assert text.endswith(MESSAGE)
        assert end_of(events).delta.stop_reason == "refusal"
    else:
        assert text == expected.text
        assert end_of(events).delta.stop_reason == "end_turn"


ARG_TEXTS = [
    '{"order_id": "123", "email": "jdoe@example.com"}',
    '{"order_id": "12x", "email": "a@b.com"}',
    '{"order_id": "7", "note": "extra"}',
]


@st.composite
def chunked_args(draw: st.DrawFn) -> list[str]:
    text = draw(st.sampled_from(ARG_TEXTS))
    cuts = sorted(draw(st.sets(st.integers(1, len(text) - 1), max_size=10)))
    return [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(chunks=chunked_args())
def test_any_chunking_of_tool_arguments_gives_validate_of_the_joined_text(
    fake: FakeAnthropic, client: anthropic.Anthropic, tools_policy: ge.Policy, chunks: list[str]
) -> None:
    fake.stream(sse_events([Tool("lookup_order", chunks)], stop_reason="tool_use"))
    events = list(
        ge_anthropic.guard_sync(tools_policy, client.messages.create(**ARGS, stream=True))
    )
    assert_well_formed(events)
    expected = tools_policy.tools["lookup_order"].policy.validate_sync("".join(chunks))
    if expected.blocked:
        assert tool_inputs(events) == {0: ""}
        assert texts(events) == {1: MESSAGE}
        assert end_of(events).delta.stop_reason == "refusal"
    else:
        assert tool_inputs(events) == {0: expected.text}
        json.loads(expected.text)
        assert end_of(events).delta.stop_reason == "tool_use"


# -- packaging ----------------------------------------------------------------------------
def test_the_entry_points_refuse_the_wrong_kind_of_stream(
    fake: FakeAnthropic, client: anthropic.Anthropic, policy: ge.Policy
) -> None:
    fake.stream(sse_events([Text(["hi"])]))
    upstream = client.messages.create(**ARGS, stream=True)
    with upstream:
        with pytest.raises(TypeError, match="guard_sync"):
            ge_anthropic.guard(policy, upstream)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Policy"):
        ge_anthropic.guard_sync("policy.yaml", [])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="guard_reply_sync"):
        ge_anthropic.guard_sync(policy, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="use guard"):
        ge_anthropic.guard_reply_sync(policy, [])  # type: ignore[arg-type]


def test_import_without_the_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "anthropic" or name.startswith(("anthropic.", "guardrails_engine.anthropic")):
            monkeypatch.delitem(sys.modules, name)
        if name.startswith(
            ("guardrails_engine._adapters.anthropic", "guardrails_engine._adapters.messages")
        ):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "anthropic", None)  # type: ignore[arg-type]
    with pytest.raises(ImportError, match=r"pip install 'guardrails-engine\[anthropic\]'"):
        importlib.import_module("guardrails_engine.anthropic")
