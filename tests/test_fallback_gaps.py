"""Gaps of the adapters' fallbacks, against fake servers speaking the real wire formats,
driven by the real SDK clients: a stream with fallbacks is traced (one record, an
attempt per source), and a text fallback of a Responses primary is written as
Responses events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from _fake_anthropic import FakeAnthropic, Text, sse_events
from _fake_openai import FakeOpenAI, chat_chunks, response_events
from anthropic.types import RawContentBlockDeltaEvent
from openai.types.chat import ChatCompletionChunk

import guardrails_engine as ge
from guardrails_engine import anthropic as ge_anthropic
from guardrails_engine import openai as ge_openai

# (No first-chunk limit: under load a fake server's first event may take over a second.)
POLICY = ge.Policy.from_yaml(
    """
version: 1
name: fallback-gaps
block_message: "[blocked]"
fallback: {on: [error, timeout, refusal, block]}
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}
  - {id: words, type: content, terms: [forbidden], action: block}
"""
)
SECOND = ["Second model: ", "mail ann@", "example.com ", "today."]
SECOND_OUT = "Second model: mail <EMAIL_ADDRESS> today."


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def oai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ant() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


def _chat(pieces: list[str]) -> list[dict[str, Any]]:
    return chat_chunks([(0, {"content": p}) for p in pieces])


def _oai_text(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _ant_text(events: list[Any]) -> str:
    return "".join(
        e.delta.text
        for e in events
        if isinstance(e, RawContentBlockDeltaEvent) and e.delta.type == "text_delta"
    )


# -- tracing -------------------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("trigger", ["500", "block"])
async def test_openai_stream_with_fallbacks_is_one_record(oai: FakeOpenAI, trigger: str) -> None:
    if trigger == "block":
        oai.add("chat", _chat(["Mail jdoe@example.com: forbidden. "]))
    records: list[Any] = []
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:

        def ask(model: str) -> Any:
            messages = [{"role": "user", "content": "hi"}]
            return client.chat.completions.create(
                model=model, messages=messages, stream=True, temperature=0.5
            )

        def second(why: ge.Fallback) -> Any:
            oai.add("chat", _chat(SECOND))
            return ask("b")

        stream = ge_openai.guard(
            POLICY, ask("a"), fallbacks=[second], trace_id="t-1", on_trace=records.append
        )
        assert stream.trace_id == "t-1" and stream.record is None
        async with stream:
            chunks = [c async for c in stream]
    assert _oai_text(chunks) == SECOND_OUT
    (record,) = records  # one record for the whole call, sent once
    assert record is stream.record and record.trace_id == "t-1"
    assert record.ending == "completed" and record.decision == "repair"
    first, last = record.attempts
    assert last.request_model == "b" and last.error is None
    assert last.runs and last.chunks > 0
    assert record.parameters == {"temperature": 0.5}
    if trigger == "500":
        assert first.error == "InternalServerError" and not first.runs
    else:
        assert first.request_model == "a" and first.chunks > 0
        assert [r.trace.decision for r in first.runs] == ["block"]
        assert "jdoe" not in str(record.to_dict())  # no value, in any attempt


def test_anthropic_sync_stream_with_fallbacks_is_traced(ant: FakeAnthropic) -> None:
    ant.stream(sse_events([], stop_reason="refusal"))
    records: list[Any] = []
    with anthropic.Anthropic(base_url=ant.url, api_key="x", max_retries=0) as client:
        primary = client.messages.create(
            model="a", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        stream = ge_anthropic.guard_sync(
            POLICY, primary, fallbacks=[lambda why: SECOND], on_trace=records.append
        )
        with stream:
            events = list(stream)
    assert _ant_text(events) == SECOND_OUT
    (record,) = records
    assert stream.trace_id == record.trace_id and record.ending == "completed"
    first, last = record.attempts
    assert (first.provider, first.request_model, first.error) == ("anthropic", "a", "Refusal")
    assert last.request_model == "a"  # (a text fallback made no request of its own)
    assert [r.part for r in last.runs] == ["content_block"]


@pytest.mark.anyio
async def test_a_fallback_stream_closed_early_is_recorded_closed(ant: FakeAnthropic) -> None:
    records: list[Any] = []
    async with anthropic.AsyncAnthropic(base_url=ant.url, api_key="x", max_retries=0) as client:
        primary = client.messages.create(
            model="a", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
        )  # unscripted: a 500
        stream = ge_anthropic.guard(
            POLICY, primary, fallbacks=[lambda why: SECOND], on_trace=records.append
        )
        async with stream:
            async for _event in stream:
                break
    (record,) = records
    assert record.ending == "closed" and len(record.attempts) == 2
    assert record.attempts[0].error == "InternalServerError"


@pytest.mark.anyio
async def test_every_source_failing_is_one_record_with_the_error(oai: FakeOpenAI) -> None:
    records: list[Any] = []
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:

        def ask() -> Any:
            messages = [{"role": "user", "content": "hi"}]
            return client.chat.completions.create(model="a", messages=messages, stream=True)

        stream = ge_openai.guard(
            POLICY, ask(), fallbacks=[lambda why: ask()], on_trace=records.append
        )
        with pytest.raises(openai.InternalServerError):
            async with stream:
                _ = [c async for c in stream]
    (record,) = records
    assert record.ending == "error" and record.error == "InternalServerError"
    assert [a.error for a in record.attempts] == ["InternalServerError"] * 2


# -- a text fallback of a Responses primary ------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("trigger", ["refuse", "block"])
async def test_responses_text_fallback_is_written_as_responses_events(
    oai: FakeOpenAI, trigger: str
) -> None:
    first = ["I can't ", "do that."] if trigger == "refuse" else ["All forbidden. "]
    oai.add("responses", response_events([("refusal" if trigger == "refuse" else "text", first)]))
    records: list[Any] = []
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
        primary = client.responses.create(model="m", input="hi", stream=True)
        stream = ge_openai.guard(
            POLICY, primary, fallbacks=[lambda why: iter(SECOND)], on_trace=records.append
        )
        async with stream:
            events = [e async for e in stream]
    assert all(type(e).__module__.startswith("openai.types.responses") for e in events)
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == SECOND_OUT
    # The ending says the text as released (repaired), never the value.
    assert events[-4].text == SECOND_OUT
    assert events[-1].response.output[0].content[0].text == SECOND_OUT
    assert "ann@" not in str([e.model_dump() for e in events])
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert [a.ending for a in stream.attempts] == [
        "refusal" if trigger == "refuse" else "block",
        "completed",
    ]
    assert records[0].attempts[-1].runs  # the written text went through the policy


def test_sync_responses_text_fallback_after_a_block(oai: FakeOpenAI) -> None:
    oai.add("responses", response_events([("text", ["All forbidden. "])]))
    with openai.OpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
        primary = client.responses.create(model="m", input="hi", stream=True)
        stream = ge_openai.guard_sync(POLICY, primary, fallbacks=[lambda why: "Plain text."])
        with stream:
            events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert sum(k == "response.created" for k in kinds) == 1  # nothing of the primary
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Plain text."
    assert "forbidden" not in str([e.model_dump() for e in events])
    assert [a.ending for a in stream.attempts] == ["block", "completed"]


# -- a closing message after released text --------------------------------------------------
CLOSING = ge.Policy.from_yaml(
    """
version: 1
name: closing
stream: {idle_timeout_ms: 300}
fallback: {on: [error, timeout], closing_message: "[answer interrupted]"}
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}
"""
)


@pytest.mark.anyio
async def test_chat_cut_off_after_release_ends_with_the_closing_message(oai: FakeOpenAI) -> None:
    oai.add("chat", [*_chat(["Hello there. "])[1:2], *_chat(["More. "])[1:]], delay=2)
    records: list[Any] = []
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
        primary = client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        stream = ge_openai.guard(CLOSING, primary, fallbacks=[], on_trace=records.append)
        chunks = [c async for c in stream]  # no exception: the provider's own ending
    assert _oai_text(chunks) == "Hello there. [answer interrupted]"
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1  # (the closing belongs to the same reply)
    assert stream.interrupted is not None and stream.interrupted.reason == "timeout"
    assert stream.interrupted.message == "[answer interrupted]"
    (record,) = records
    assert record.ending == "error" and record.error == "TimeoutError"
    assert oai.last(timeout=10).left


def _cut_anthropic(events: list[Any], error: BaseException, *, tool: bool = False) -> Any:
    from anthropic.types import RawMessageStreamEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)

    async def breaks() -> Any:
        for _, data in events:
            if data["type"] != "ping":
                yield adapter.validate_python(data)
        raise error

    return breaks()


@pytest.mark.anyio
async def test_anthropic_cut_off_after_release_ends_natively() -> None:
    good = sse_events([Text(["Hello ", "there, ", "all is well. "])])
    cut = [e for e in good if e[1]["type"] not in ("content_block_stop", "message_delta")][:-1]
    error = anthropic.APIConnectionError(request=httpx.Request("POST", "http://x"))
    stream = ge_anthropic.guard(CLOSING, _cut_anthropic(cut, error), fallbacks=[])
    events = [e async for e in stream]  # no exception
    assert _ant_text(events) == "Hello there, all is well. [answer interrupted]"
    kinds = [e.type for e in events]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_start") == 1  # written into the open text block
    assert events[-2].delta.stop_reason == "end_turn"
    assert stream.interrupted is not None and stream.interrupted.reason == "error"


@pytest.mark.anyio
async def test_without_a_closing_message_a_cut_off_still_raises() -> None:
    good = sse_events([Text(["Hello ", "there. "])])
    cut = [e for e in good if e[1]["type"] not in ("content_block_stop", "message_delta")][:-1]
    error = anthropic.APIConnectionError(request=httpx.Request("POST", "http://x"))
    stream = ge_anthropic.guard(POLICY, _cut_anthropic(cut, error), fallbacks=[])
    events: list[Any] = []
    with pytest.raises(anthropic.APIConnectionError):
        async for event in stream:
            events.append(event)
    assert _ant_text(events) == "Hello there. "
    assert stream.interrupted is not None and stream.interrupted.reason == "error"


@pytest.mark.anyio
async def test_responses_cut_off_after_release_ends_failed() -> None:
    from openai._models import construct_type  # (how the SDK reads its events)
    from openai.types.responses import ResponseStreamEvent

    good = response_events([("text", ["Hello ", "there. "])])
    cut = good[: next(i for i, e in enumerate(good) if e["type"] == "response.output_text.done")]

    async def breaks() -> Any:
        for data in cut:
            yield construct_type(type_=ResponseStreamEvent, value=data)
        raise ConnectionError("reset")

    stream = ge_openai.guard(CLOSING, breaks(), fallbacks=[])
    events = [e async for e in stream]  # no exception
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Hello there. [answer interrupted]"
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed"
    assert events[-1].response.error.code == "server_error"
    numbers = [e.sequence_number for e in events]
    assert len(set(numbers)) == len(numbers)
    assert stream.interrupted is not None and stream.interrupted.reason == "error"


def test_sync_chat_cut_off_after_release_ends_with_the_closing_message() -> None:
    chunks = [ChatCompletionChunk.model_validate(c) for c in _chat(["Hello ", "there. "])]

    def breaks() -> Iterator[ChatCompletionChunk]:
        yield from (c for c in chunks if not (c.choices and c.choices[0].finish_reason))
        raise ConnectionError("reset")

    records: list[Any] = []
    stream = ge_openai.guard_sync(CLOSING, breaks(), fallbacks=[], on_trace=records.append)
    out = list(stream)  # no exception
    assert _oai_text(out) == "Hello there. [answer interrupted]"
    assert [c.choices[0].finish_reason for c in out if c.choices][-1] == "stop"
    assert stream.interrupted is not None and stream.interrupted.reason == "error"
    assert records[0].error == "ConnectionError"
