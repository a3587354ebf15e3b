"""Call traces from the adapters: the real SDK clients against the fake servers.

Both providers, streamed and not (Chat Completions, Responses, Messages), with usage:
the record has the request and response model, the tokens, the upstream's first chunk
and the first release, the duration, the finish reason and every run's decision; a
TraceStore as ``on_trace=`` gets the call with its runs and findings; planted PII never
reaches the database, the spans or the logs, with or without content capture.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import openai
import pytest
from _fake_anthropic import FakeAnthropic, Text, Tool, message_json, sse_events
from _fake_anthropic import Reply as AnthropicReply
from _fake_openai import (
    MODEL,
    FakeOpenAI,
    chat_chunks,
    completion,
    message_item,
    response_events,
    response_obj,
    text_part,
)
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import guardrails_engine as ge
from guardrails_engine import anthropic as ge_anthropic
from guardrails_engine import openai as ge_openai

EMAIL = "jdoe@example.com"
SECRET = "sk-" + "a1B2c3D4e5" * 3
ASKED = "gpt-4o-mini"
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the SDK streams' own generators warn when collected under trio


@pytest.fixture(scope="module")
def ofake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def afake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def oclient(ofake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    ofake.replies.clear()
    with openai.OpenAI(base_url=ofake.base_url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture
async def aoclient(ofake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    ofake.replies.clear()
    async with openai.AsyncOpenAI(base_url=ofake.base_url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture
def aclient(afake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=afake.url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture
async def aaclient(afake: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=afake.url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def policy(policies_dir: Path) -> ge.Policy:
    return ge.load_policy(policies_dir / "support-chat.yaml")


def _email_deltas() -> list[tuple[int, dict[str, Any]]]:
    return [(0, {"content": "Write to jd"}), (0, {"content": "oe@example.com today."})]


def _common(record: ge.CallTrace, *, streamed: bool) -> None:
    """What every traced call that repaired the e-mail has."""
    assert record.streamed is streamed
    assert record.decision == "repair" and record.ending == "completed"
    assert record.first_out_ms is not None and record.first_out_ms <= record.duration_ms
    if streamed:
        assert record.upstream_first_ms is not None
        assert record.upstream_first_ms <= record.first_out_ms
    else:
        assert record.upstream_first_ms is None
    [run] = record.runs
    assert run.trace.decision == "repair" and run.trace.trace_id == record.trace_id
    assert [f["entity_type"] for f in run.trace.findings] == ["EMAIL_ADDRESS"]
    assert EMAIL not in json.dumps(record.to_dict())


# -- OpenAI -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_chat_stream_is_traced(
    aoclient: openai.AsyncOpenAI, ofake: FakeOpenAI, policy: ge.Policy
) -> None:
    ofake.add("chat", chat_chunks(_email_deltas(), usage=USAGE))
    got: list[Any] = []
    stream = await aoclient.chat.completions.create(
        model=ASKED,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        temperature=0.2,
        user=EMAIL,  # not a parameter a trace keeps
        stream_options={"include_usage": True},
    )
    guarded = ge_openai.guard(policy, stream, trace_id="call-1", on_trace=got.append)
    assert guarded.trace_id == "call-1" and guarded.record is None
    text = "".join([c.choices[0].delta.content or "" async for c in guarded if c.choices])
    assert text == "Write to <EMAIL_ADDRESS> today."
    record = guarded.record
    assert got == [record] and record is not None
    _common(record, streamed=True)
    assert (record.provider, record.request_model, record.response_model) == (
        "openai",
        ASKED,
        MODEL,
    )
    assert (record.response_id, record.finish_reasons) == ("chatcmpl-fake1", ("stop",))
    assert (record.input_tokens, record.output_tokens) == (9, 4)
    assert record.parameters == {"temperature": 0.2}
    assert (record.runs[0].part, record.runs[0].index) == ("choice", 0)
    assert record.prompt is None and record.output is None


def test_a_chat_reply_is_traced_sync(
    oclient: openai.OpenAI, ofake: FakeOpenAI, policy: ge.Policy
) -> None:
    ofake.add("json", completion([{"message": {"content": f"Write to {EMAIL}"}}], usage=USAGE))
    got: list[Any] = []
    kwargs: dict[str, Any] = {
        "model": ASKED,
        "messages": [{"role": "user", "content": f"I am {EMAIL}"}],
        "max_tokens": 50,
    }
    reply = oclient.chat.completions.create(**kwargs)
    checked = ge_openai.guard_reply_sync(
        policy, reply, on_trace=got.append, parameters=kwargs, capture_content=True
    )
    assert checked.choices[0].message.content == "Write to <EMAIL_ADDRESS>"
    [record] = got
    _common(record, streamed=False)
    assert (record.request_model, record.response_model, record.response_id) == (
        ASKED,
        MODEL,
        "chatcmpl-fake2",
    )
    assert (record.input_tokens, record.output_tokens) == (9, 4)
    assert record.finish_reasons == ("stop",)
    assert record.parameters == {"max_tokens": 50}
    assert (record.prompt, record.output) == ("I am <EMAIL_ADDRESS>", "Write to <EMAIL_ADDRESS>")


def test_a_responses_stream_is_traced_sync(
    oclient: openai.OpenAI, ofake: FakeOpenAI, policy: ge.Policy
) -> None:
    ofake.add("responses", response_events([("text", ["Write to jd", "oe@example.com"])]))
    stream = oclient.responses.create(model=ASKED, input="hi", stream=True, top_p=0.5)
    with ge_openai.guard_sync(policy, stream) as guarded:
        deltas = [e.delta for e in guarded if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Write to <EMAIL_ADDRESS>"
    record = guarded.record
    assert record is not None and record.trace_id == guarded.trace_id
    _common(record, streamed=True)
    assert (record.request_model, record.response_model, record.response_id) == (
        ASKED,
        MODEL,
        "resp_fake1",
    )
    assert (record.input_tokens, record.output_tokens) == (5, 7)
    assert record.finish_reasons == ("completed",)
    assert record.parameters == {"top_p": 0.5}
    assert (record.runs[0].part, record.runs[0].index) == ("output_item", 0)


@pytest.mark.anyio
async def test_a_responses_reply_is_traced(
    aoclient: openai.AsyncOpenAI, ofake: FakeOpenAI, policy: ge.Policy
) -> None:
    item = message_item("msg_0", [text_part(f"Write to {EMAIL}")], "completed")
    ofake.add("json", response_obj([item]))
    got: list[Any] = []
    reply = await aoclient.responses.create(model=ASKED, input="hi")
    await ge_openai.guard_reply(policy, reply, on_trace=got.append, request_model="mine")
    [record] = got
    _common(record, streamed=False)
    assert (record.request_model, record.response_model) == ("mine", MODEL)
    assert (record.input_tokens, record.output_tokens) == (5, 7)
    assert record.finish_reasons == ("completed",)


# -- Anthropic ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_anthropic_stream_is_traced(
    aaclient: anthropic.AsyncAnthropic, afake: FakeAnthropic, policy: ge.Policy
) -> None:
    afake.stream(sse_events([Text(["Write to jd", "oe@example.com"])]))
    got: list[Any] = []
    stream = await aaclient.messages.create(
        model="claude-asked",
        max_tokens=100,
        system=f"The user is {EMAIL}",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
    )
    async with ge_anthropic.guard(
        policy, stream, on_trace=got.append, capture_content=True
    ) as guarded:
        deltas = [e.delta.text async for e in guarded if e.type == "content_block_delta"]
    assert "".join(deltas) == "Write to <EMAIL_ADDRESS>"
    [record] = got
    _common(record, streamed=True)
    assert (record.provider, record.request_model, record.response_model) == (
        "anthropic",
        "claude-asked",
        "claude-fake-1",
    )
    assert (record.response_id, record.finish_reasons) == ("msg_01FAKE", ("end_turn",))
    assert (record.input_tokens, record.output_tokens) == (21, 34)
    assert record.parameters == {"max_tokens": 100}
    assert (record.runs[0].part, record.runs[0].index) == ("content_block", 0)
    assert record.prompt == "The user is <EMAIL_ADDRESS>\nhi"
    assert record.output == "Write to <EMAIL_ADDRESS>"


def test_an_anthropic_reply_is_traced_sync(
    aclient: anthropic.Anthropic, afake: FakeAnthropic, policy: ge.Policy
) -> None:
    blocks = [Text([f"Write to {EMAIL}"])]
    afake.reply(AnthropicReply(message=message_json(blocks, stop_reason="max_tokens")))
    got: list[Any] = []
    message = aclient.messages.create(
        model="claude-asked", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    ge_anthropic.guard_reply_sync(policy, message, on_trace=got.append)
    [record] = got
    _common(record, streamed=False)
    assert (record.request_model, record.response_model) == (None, "claude-fake-1")
    assert (record.input_tokens, record.output_tokens) == (21, 34)
    assert record.finish_reasons == ("max_tokens",)


def test_a_tool_without_a_rule_is_a_block_of_the_adapter_in_the_trace(
    aclient: anthropic.Anthropic, afake: FakeAnthropic
) -> None:
    strict = ge.Policy.from_yaml(
        "version: 1\nname: strict\nunknown_tools: block\n"
        "checks:\n  - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}\n"
    )
    afake.stream(sse_events([Text(["Calling."]), Tool("delete_all", ['{"a": 1}'])]))
    stream = aclient.messages.create(
        model="claude-asked",
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
    )
    with ge_anthropic.guard_sync(strict, stream) as guarded:
        list(guarded)
    record = guarded.record
    assert record is not None and (record.decision, record.ending) == ("block", "blocked")
    parts = {(r.part, r.index, r.name): r.trace.decision for r in record.runs}
    assert parts == {("adapter", 0, None): "block", ("content_block", 0, None): "pass"}
    adapter = next(r for r in record.runs if r.part == "adapter")
    assert adapter.trace.findings[0]["check_id"] == "unknown_tools"


# -- endings, sinks, privacy ----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_block_an_early_close_a_cancellation_and_an_upstream_failure_are_endings(
    aoclient: openai.AsyncOpenAI, ofake: FakeOpenAI, policy: ge.Policy
) -> None:
    ofake.add("chat", chat_chunks([(0, {"content": f"the key is {SECRET} ok"})], usage=USAGE))
    stream = await aoclient.chat.completions.create(model=ASKED, messages=[], stream=True)
    guarded = ge_openai.guard(policy, stream)
    shown = [c async for c in guarded]
    record = guarded.record
    assert record is not None and (record.decision, record.ending) == ("block", "blocked")
    assert record.first_out_ms is not None  # the block message went out
    assert record.runs[0].trace.findings[0]["check_id"] == "secrets"
    assert shown[-1].choices[0].finish_reason == "content_filter"
    assert record.finish_reasons == ()  # the upstream's own end never came

    ofake.add("chat", chat_chunks([(0, {"content": "Hello there. "})] * 5), delay=0.05)
    stream = await aoclient.chat.completions.create(model=ASKED, messages=[], stream=True)
    guarded = ge_openai.guard(policy, stream)
    await guarded.__anext__()
    await guarded.aclose()
    assert guarded.record is not None and guarded.record.ending == "closed"

    ofake.add("chat", chat_chunks([(0, {"content": "Hello there. "})] * 5), delay=0.5)
    stream = await aoclient.chat.completions.create(model=ASKED, messages=[], stream=True)
    guarded = ge_openai.guard(policy, stream)
    with anyio.move_on_after(0.2):  # cancels the read of the next chunk
        async for _ in guarded:
            pass
    assert guarded.record is not None and guarded.record.ending == "cancelled"

    ofake.add("chat", chat_chunks([(0, {"content": "slow"})] * 3), delay=2)
    stream = await aoclient.chat.completions.create(
        model=ASKED, messages=[], stream=True, timeout=0.3
    )
    guarded = ge_openai.guard(policy, stream)
    with pytest.raises(openai.APITimeoutError):
        async for _ in guarded:
            pass
    record = guarded.record
    assert record is not None and (record.ending, record.error) == ("error", "APITimeoutError")


def test_the_policy_sink_gets_the_call_and_not_its_runs_and_bad_arguments_are_refused(
    oclient: openai.OpenAI, ofake: FakeOpenAI, policies_dir: Path
) -> None:
    got: list[Any] = []
    traced = ge.load_policy(policies_dir / "support-chat.yaml", on_trace=got.append)
    ofake.add("chat", chat_chunks(_email_deltas()))
    stream = oclient.chat.completions.create(model=ASKED, messages=[], stream=True)
    guarded = ge_openai.guard_sync(traced, stream)
    list(guarded)
    assert got == [guarded.record]
    for bad in ({"trace_id": 5}, {"on_trace": "x"}, {"capture_content": 1}, {"parameters": []}):
        with pytest.raises(TypeError):
            ge_openai.guard_sync(traced, iter([]), **bad)
        with pytest.raises(TypeError):
            ge_anthropic.guard_sync(traced, iter([]), **bad)


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """An in-memory exporter on the global tracer provider (which can be set only once)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel_trace.set_tracer_provider(provider)
    current = otel_trace.get_tracer_provider()
    if current is not provider:  # another test set it first: listen on that one
        assert isinstance(current, TracerProvider)
        current.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.mark.anyio
@pytest.mark.parametrize("capture", [False, True])
async def test_planted_pii_never_reaches_the_store_the_spans_or_the_logs(
    capture: bool,
    aoclient: openai.AsyncOpenAI,
    aaclient: anthropic.AsyncAnthropic,
    ofake: FakeOpenAI,
    afake: FakeAnthropic,
    policy: ge.Policy,
    spans: InMemorySpanExporter,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spans.clear()
    caplog.set_level(logging.INFO, logger="guardrails_engine")
    prompt = f"I am {EMAIL}, my key is {SECRET}"
    store = ge.TraceStore(tmp_path / "traces.db")
    traced: dict[str, Any] = {"on_trace": store, "capture_content": capture}
    with store:
        ofake.add("chat", chat_chunks(_email_deltas(), usage=USAGE))
        stream = await aoclient.chat.completions.create(
            model=ASKED, messages=[{"role": "user", "content": prompt}], stream=True, user=EMAIL
        )
        async with ge_openai.guard(policy, stream, **traced) as guarded:
            [c async for c in guarded]
        ofake.add("json", completion([{"message": {"content": f"key {SECRET}"}}]))
        kwargs: dict[str, Any] = {"model": ASKED, "messages": [{"role": "user", "content": prompt}]}
        reply = await aoclient.chat.completions.create(**kwargs)
        await ge_openai.guard_reply(policy, reply, parameters={**kwargs, "user": EMAIL}, **traced)
        afake.stream(sse_events([Text(["Mail jd", "oe@example.com"])]))
        astream = await aaclient.messages.create(
            model="claude-asked",
            max_tokens=10,
            system=prompt,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
        )
        async with ge_anthropic.guard(policy, astream, **traced) as aguarded:
            [e async for e in aguarded]
    db = sqlite3.connect(tmp_path / "traces.db")
    try:
        calls = db.execute("SELECT decision, prompt, output FROM calls ORDER BY id").fetchall()
        dump = "\n".join(db.iterdump())
        findings = db.execute("SELECT DISTINCT check_id FROM findings").fetchall()
    finally:
        db.close()
    assert [c[0] for c in calls] == ["repair", "block", "repair"]
    assert sorted(findings) == [("pii",), ("secrets",)]
    if capture:  # the prompt holds a key: withheld (the block message); the e-mail masked
        assert calls[0][1:] == (policy.block_message, "Write to <EMAIL_ADDRESS> today.")
    else:
        assert all(c[1:] == (None, None) for c in calls)
    exported = json.dumps(
        [
            {**dict(s.attributes or {}), "events": [dict(e.attributes or {}) for e in s.events]}
            for s in spans.get_finished_spans()
        ],
        default=str,
    )
    assert "gen_ai.guardrail.result" in "".join(
        e.name for s in spans.get_finished_spans() for e in s.events
    )
    for value in (EMAIL, SECRET, "oe@example.com"):
        assert value not in dump and value not in exported and value not in caplog.text
