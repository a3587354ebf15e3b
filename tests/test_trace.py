"""Decision traces: one record per validate and per stream, to callbacks, logging and OpenTelemetry.

Every run leaves exactly one trace, however it ends: completed, blocked, truncated, closed
early by the consumer, cancelled, or failed by its source.  A trace never holds a raw PII
value (nor the text a content pattern matched), wherever it is delivered.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import guardrails_engine as ge

POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"
CHAT = POLICIES_DIR / "support-chat.yaml"
SECRET = "sk-AbC123xYz456DeF789gHi012"
BLOCK_MESSAGE = "Sorry, I can't share that."
TEXT = "Mail jdoe@example.com or call +1 415 555 0132 and we will help."
LONG = "Thanks for your patience while we look into this. " * 45
TRACE_KEYS = {
    "trace_id",
    "kind",
    "policy",
    "policy_hash",
    "decision",
    "ending",
    "findings",
    "check_ms",
    "duration_ms",
    "chunks_in",
    "chars_in",
    "chunks_out",
    "chars_out",
    "holdback_max",
    "holdback_median",
    "first_out_ms",
    "error",
}
FINDING_KEYS = {"check_id", "check_type", "action", "entity_type", "start", "end", "reason"}
CHECK_IDS = ["pii", "secrets", "max-length"]  # support-chat's checks, in order


class Recorder:
    """A trace callback that keeps what it receives."""

    def __init__(self) -> None:
        self.traces: list[ge.Trace] = []

    def __call__(self, trace: ge.Trace) -> None:
        self.traces.append(trace)

    @property
    def one(self) -> ge.Trace:
        assert len(self.traces) == 1, [t.to_dict() for t in self.traces]
        return self.traces[0]


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class Source:
    """A sync token source that counts what was pulled and whether it was closed."""

    def __init__(self, chunks: list[str], *, fail_after: int | None = None) -> None:
        self.chunks = chunks
        self.fail_after = fail_after
        self.pulled = 0
        self.closed = False

    def __iter__(self) -> Iterator[str]:
        try:
            for chunk in self.chunks:
                if self.fail_after is not None and self.pulled >= self.fail_after:
                    raise RuntimeError("the model went away")
                self.pulled += 1
                yield chunk
        finally:
            self.closed = True


class AsyncSource:
    """The async twin of :class:`Source`; ``hang`` waits forever after the chunks."""

    def __init__(
        self, chunks: list[str], *, fail_after: int | None = None, hang: bool = False
    ) -> None:
        self.chunks = chunks
        self.fail_after = fail_after
        self.hang = hang
        self.pulled = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            for chunk in self.chunks:
                if self.fail_after is not None and self.pulled >= self.fail_after:
                    raise RuntimeError("the model went away")
                self.pulled += 1
                await anyio.lowlevel.checkpoint()
                yield chunk
            if self.hang:
                await anyio.sleep_forever()
        finally:
            self.closed = True


@pytest.fixture(scope="module")
def chat() -> ge.Policy:
    return ge.load_policy(CHAT)


def _finding_dicts(result: ge.Result) -> list[dict[str, Any]]:
    return [
        {
            "check_id": f.check_id,
            "check_type": f.check_type,
            "action": f.action.value,
            "entity_type": f.entity_type,
            "start": f.start,
            "end": f.end,
            "reason": f.reason,
        }
        for f in result.findings
    ]


def _check_common(trace: ge.Trace, policy: ge.Policy, kind: str) -> dict[str, Any]:
    data = trace.to_dict()
    assert set(data) == TRACE_KEYS
    assert data["kind"] == kind
    assert data["policy"] == policy.name
    assert data["policy_hash"] == policy.content_hash
    assert re.fullmatch(r"[0-9a-f]{16}", data["policy_hash"])
    assert list(data["check_ms"]) == [c.id for c in policy.checks]
    assert all(isinstance(v, float) and v >= 0 for v in data["check_ms"].values())
    assert data["duration_ms"] >= 0
    assert data["holdback_max"] >= data["holdback_median"] >= 0
    for f in data["findings"]:
        assert set(f) == FINDING_KEYS
    json.dumps(data)  # plain JSON all the way down
    return data


# -- validate ----------------------------------------------------------------------------------


def test_validate_trace_via_load_policy_callback() -> None:
    rec = Recorder()
    policy = ge.load_policy(CHAT, on_trace=rec)
    assert policy.on_trace is rec
    result = policy.validate_sync(TEXT, trace_id="req-42")
    t = rec.one
    data = _check_common(t, policy, "validate")
    assert t.trace_id == "req-42"
    assert (t.decision, t.ending) == ("repair", "completed")
    assert data["findings"] == _finding_dicts(result)
    assert [(f["check_id"], f["entity_type"]) for f in data["findings"]] == [
        ("pii", "EMAIL_ADDRESS"),
        ("pii", "PHONE_NUMBER"),
    ]
    assert data["findings"][0]["reason"] == "pii: EMAIL_ADDRESS at 5-21, masked"
    assert (t.chunks_in, t.chars_in) == (1, len(TEXT))
    assert t.chunks_out >= 1 and t.chars_out == len(result.text)
    assert t.first_out_ms is not None and 0 <= t.first_out_ms <= t.duration_ms + 0.001
    assert list(t.check_ms) == CHECK_IDS
    assert t.error is None


def test_validate_trace_via_call_callback(chat: ge.Policy) -> None:
    rec = Recorder()
    result = chat.validate_sync("Nothing to see here.", on_trace=rec)
    t = rec.one
    _check_common(t, chat, "validate")
    assert (t.decision, t.ending, t.findings) == ("pass", "completed", ())
    assert result.decision is ge.Decision.PASS


def test_trace_ids_are_generated(chat: ge.Policy) -> None:
    rec = Recorder()
    chat.validate_sync("one", on_trace=rec)
    chat.validate_sync("two", on_trace=rec)
    ids = [t.trace_id for t in rec.traces]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert ids[0] != ids[1]


def test_from_yaml_callback_and_hash_tells_versions_apart() -> None:
    text = CHAT.read_text(encoding="utf-8")
    rec = Recorder()
    one = ge.Policy.from_yaml(text, on_trace=rec)
    two = ge.Policy.from_yaml(text.replace("max_chars: 2000", "max_chars: 1999"), on_trace=rec)
    one.validate_sync("hi")
    two.validate_sync("hi")
    assert [t.policy_hash for t in rec.traces] == [one.content_hash, two.content_hash]
    assert one.content_hash != two.content_hash


def test_validate_block_trace(chat: ge.Policy) -> None:
    rec = Recorder()
    result = chat.validate_sync(f"Mail jdoe@example.com, key {SECRET}.", on_trace=rec)
    t = rec.one
    data = _check_common(t, chat, "validate")
    assert (t.decision, t.ending) == ("block", "blocked")
    assert [f["check_id"] for f in data["findings"]] == ["pii", "secrets"]
    assert data["findings"] == _finding_dicts(result)
    assert t.chars_out == 0 and t.first_out_ms is None  # nothing of the text went out


def test_validate_truncation_trace(chat: ge.Policy) -> None:
    rec = Recorder()
    result = chat.validate_sync(LONG, on_trace=rec)
    t = rec.one
    _check_common(t, chat, "validate")
    assert (t.decision, t.ending) == ("repair", "truncated")
    assert [f["check_id"] for f in t.findings] == ["max-length"]
    assert t.chars_in == len(LONG) and t.chars_out == len(result.text) < 2000


@pytest.mark.anyio
async def test_async_validate_traces_short_and_long_texts(chat: ge.Policy) -> None:
    rec = Recorder()
    await chat.validate(TEXT, on_trace=rec, trace_id="short")
    long_text = "All good here. " * 1200  # past THREAD_THRESHOLD: checked in a worker thread
    await chat.validate(long_text, on_trace=rec, trace_id="long")
    assert [(t.trace_id, t.kind, t.ending) for t in rec.traces] == [
        ("short", "validate", "completed"),
        ("long", "validate", "truncated"),
    ]
    assert rec.traces[1].chars_in == len(long_text)


# -- streams -------------------------------------------------------------------------------------


def _check_stream_stats(t: ge.Trace, stream: ge.SyncStream | ge.Stream, chunks: list[str]) -> None:
    holdbacks = stream.run.holdbacks
    assert t.chunks_in == len(chunks)
    assert t.chars_in == sum(map(len, chunks))
    assert t.holdback_max == max(holdbacks, default=0)
    assert t.holdback_median == (float(statistics.median(holdbacks)) if holdbacks else 0.0)


def test_sync_stream_trace(chat: ge.Policy) -> None:
    rec = Recorder()
    chunks = _chunks(TEXT, 3)
    stream = chat.stream_sync(chunks, trace_id="s-1", on_trace=rec)
    pieces = list(stream)
    t = rec.one
    data = _check_common(t, chat, "stream")
    assert stream.result is not None
    assert (t.trace_id, t.decision, t.ending) == ("s-1", "repair", "completed")
    assert data["findings"] == _finding_dicts(stream.result)
    _check_stream_stats(t, stream, chunks)
    assert t.holdback_max > 0  # a stream over PII holds text back
    assert t.chunks_out == len(pieces) and t.chars_out == len("".join(pieces))
    assert t.first_out_ms is not None and t.first_out_ms <= t.duration_ms + 0.001


@pytest.mark.anyio
async def test_async_stream_trace(chat: ge.Policy) -> None:
    rec = Recorder()
    chunks = _chunks(TEXT, 5)
    stream = chat.stream(AsyncSource(chunks), trace_id="a-1", on_trace=rec)
    pieces = [piece async for piece in stream]
    t = rec.one
    data = _check_common(t, chat, "stream")
    assert stream.result is not None
    assert (t.trace_id, t.decision, t.ending) == ("a-1", "repair", "completed")
    assert data["findings"] == _finding_dicts(stream.result)
    _check_stream_stats(t, stream, chunks)
    assert t.chunks_out == len(pieces) and t.chars_out == len("".join(pieces))


def test_sync_stream_block_trace(chat: ge.Policy) -> None:
    rec = Recorder()
    source = Source(_chunks(f"Mail jdoe@example.com and use {SECRET} to log in. " * 3, 4))
    stream = chat.stream_sync(source, on_trace=rec)
    out = "".join(stream)
    t = rec.one
    _check_common(t, chat, "stream")
    assert (t.decision, t.ending) == ("block", "blocked")
    assert [(f["check_id"], f["entity_type"]) for f in t.findings] == [
        ("pii", "EMAIL_ADDRESS"),
        ("secrets", None),
    ]
    assert out.endswith(BLOCK_MESSAGE)
    assert t.chars_out == len(out) - len(BLOCK_MESSAGE)  # the block message is not output text
    assert source.closed and t.chunks_in == source.pulled < len(source.chunks)


@pytest.mark.anyio
async def test_async_stream_block_and_truncation_traces(chat: ge.Policy) -> None:
    rec = Recorder()
    blocked = chat.stream(AsyncSource(_chunks(f"This is {SECRET}.", 4)), on_trace=rec)
    [piece async for piece in blocked]
    cut = AsyncSource(_chunks(LONG, 7))
    truncated = chat.stream(cut, on_trace=rec)
    out = "".join([piece async for piece in truncated])
    assert [(t.decision, t.ending) for t in rec.traces] == [
        ("block", "blocked"),
        ("repair", "truncated"),
    ]
    t = rec.traces[1]
    _check_common(t, chat, "stream")
    assert [f["check_id"] for f in t.findings] == ["max-length"]
    assert t.chars_out == len(out) < 2000
    assert cut.closed and t.chunks_in == cut.pulled < len(cut.chunks)


def test_sync_stream_truncation_trace(chat: ge.Policy) -> None:
    rec = Recorder()
    stream = chat.stream_sync(_chunks(LONG, 11), on_trace=rec)
    out = "".join(stream)
    assert (rec.one.decision, rec.one.ending, rec.one.chars_out) == (
        "repair",
        "truncated",
        len(out),
    )


# -- streams that did not end: cancelled, failed --------------------------------------------------


def test_sync_stream_close_is_traced_once(chat: ge.Policy) -> None:
    rec = Recorder()
    source = Source(_chunks("Hello there, this is a long and friendly answer. " * 4, 6))
    stream = chat.stream_sync(source, trace_id="c-1", on_trace=rec)
    next(stream)
    stream.close()
    stream.close()
    t = rec.one
    data = _check_common(t, chat, "stream")
    assert (t.trace_id, t.decision, t.ending) == ("c-1", None, "cancelled")
    assert data["decision"] is None
    assert t.chunks_in == source.pulled >= 1 and source.closed
    assert stream.result is None


def test_sync_stream_with_block_exit_is_traced(chat: ge.Policy) -> None:
    rec = Recorder()
    with chat.stream_sync(Source(_chunks("Hello there, friend. " * 5, 4)), on_trace=rec) as s:
        next(s)
    assert (rec.one.ending, rec.one.decision) == ("cancelled", None)


def test_sync_stream_closed_after_it_ended_is_traced_once(chat: ge.Policy) -> None:
    rec = Recorder()
    with chat.stream_sync(_chunks(TEXT, 4), on_trace=rec) as stream:
        list(stream)
    assert rec.one.ending == "completed"


@pytest.mark.anyio
async def test_async_stream_aclose_is_traced(chat: ge.Policy) -> None:
    rec = Recorder()
    source = AsyncSource(_chunks("Hello there, this is a long and friendly answer. " * 4, 6))
    stream = chat.stream(source, trace_id="c-2", on_trace=rec)
    await stream.__anext__()
    await stream.aclose()
    await stream.aclose()
    t = rec.one
    _check_common(t, chat, "stream")
    assert (t.trace_id, t.decision, t.ending) == ("c-2", None, "cancelled")
    assert t.chunks_in == source.pulled and source.closed


@pytest.mark.anyio
async def test_async_with_exit_is_traced(chat: ge.Policy) -> None:
    rec = Recorder()
    async with chat.stream(AsyncSource(_chunks("Hello there, friend. " * 5, 4)), on_trace=rec) as s:
        async for _ in s:
            break
    assert (rec.one.ending, rec.one.decision) == ("cancelled", None)


@pytest.mark.anyio
async def test_cancelled_task_is_traced(chat: ge.Policy) -> None:
    rec = Recorder()
    source = AsyncSource(["Hello ", "there, ", "friend"], hang=True)
    got = []
    with anyio.move_on_after(0.2) as scope:
        async for piece in chat.stream(source, on_trace=rec):
            got.append(piece)
    assert scope.cancelled_caught
    t = rec.one
    assert (t.ending, t.decision, t.chunks_in) == ("cancelled", None, 3)
    assert source.closed


def test_sync_source_error_is_traced(chat: ge.Policy) -> None:
    rec = Recorder()
    source = Source(_chunks("Hello there, my friend. " * 3, 5), fail_after=3)
    stream = chat.stream_sync(source, trace_id="e-1", on_trace=rec)
    with pytest.raises(RuntimeError, match="the model went away"):
        list(stream)
    t = rec.one
    _check_common(t, chat, "stream")
    assert (t.trace_id, t.decision, t.ending, t.chunks_in) == ("e-1", None, "source_error", 3)
    assert stream.result is None


@pytest.mark.anyio
async def test_async_source_error_is_traced(chat: ge.Policy) -> None:
    rec = Recorder()
    stream = chat.stream(AsyncSource(_chunks(TEXT, 5), fail_after=2), on_trace=rec)
    with pytest.raises(RuntimeError, match="the model went away"):
        [piece async for piece in stream]
    assert (rec.one.decision, rec.one.ending, rec.one.chunks_in) == (None, "source_error", 2)


def test_non_str_chunk_is_traced_as_a_source_error(chat: ge.Policy) -> None:
    rec = Recorder()
    stream = chat.stream_sync(["fine ", b"bytes"], on_trace=rec)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        list(stream)
    assert (rec.one.decision, rec.one.ending) == (None, "source_error")


# -- callbacks -----------------------------------------------------------------------------------


def test_policy_and_run_callbacks_both_receive_the_trace() -> None:
    policy_rec, run_rec = Recorder(), Recorder()
    policy = ge.load_policy(CHAT, on_trace=policy_rec)
    policy.validate_sync(TEXT, on_trace=run_rec)
    list(policy.stream_sync(_chunks(TEXT, 6), on_trace=run_rec))
    assert len(policy_rec.traces) == len(run_rec.traces) == 2
    assert all(a is b for a, b in zip(policy_rec.traces, run_rec.traces, strict=True))
    # the policy's callback alone
    policy.validate_sync("hi")
    assert len(policy_rec.traces) == 3 and len(run_rec.traces) == 2


def _boom(trace: ge.Trace) -> None:
    raise ValueError("callback bug")


@pytest.mark.anyio
async def test_a_callback_that_raises_does_not_break_the_run(
    chat: ge.Policy, caplog: pytest.LogCaptureFixture
) -> None:
    policy = ge.load_policy(CHAT, on_trace=_boom)
    rec = Recorder()
    assert policy.validate_sync(TEXT, on_trace=rec) == chat.validate_sync(TEXT)
    assert policy.validate_sync(TEXT, on_trace=_boom) == chat.validate_sync(TEXT)
    assert await policy.validate(TEXT, on_trace=rec) == chat.validate_sync(TEXT)
    sync_stream = policy.stream_sync(_chunks(TEXT, 3), on_trace=_boom)
    assert "".join(sync_stream) == chat.validate_sync(TEXT).text
    async_stream = policy.stream(AsyncSource(_chunks(TEXT, 3)), on_trace=rec)
    assert "".join([p async for p in async_stream]) == chat.validate_sync(TEXT).text
    closed = policy.stream_sync(Source(_chunks(TEXT * 3, 3)), on_trace=_boom)
    next(closed)
    closed.close()
    assert len(rec.traces) == 3  # the run's callback still ran after the policy's raised
    warnings = [r for r in caplog.records if r.name == "guardrails_engine"]
    assert warnings and all(r.levelno == logging.WARNING for r in warnings)
    assert all("trace callback raised ValueError" in r.getMessage() for r in warnings)
    assert all("callback bug" not in r.getMessage() for r in warnings)


# -- logging -------------------------------------------------------------------------------------


def _trace_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "guardrails_engine" and r.levelno == logging.INFO
    ]


def test_logger_writes_one_json_object_per_line(
    chat: ge.Policy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="guardrails_engine")
    chat.validate_sync(TEXT, trace_id="log-1")
    list(chat.stream_sync(_chunks(f"Key: {SECRET}\nmore", 4), trace_id="log-2"))
    stream = chat.stream_sync(_chunks(TEXT, 4), trace_id="log-3")
    next(stream)
    stream.close()
    records = _trace_records(caplog)
    assert len(records) == 3
    parsed = []
    for record in records:
        message = record.getMessage()
        assert "\n" not in message
        data = json.loads(message)
        assert set(data) == TRACE_KEYS
        parsed.append(data)
    assert [(d["trace_id"], d["kind"], d["ending"]) for d in parsed] == [
        ("log-1", "validate", "completed"),
        ("log-2", "stream", "blocked"),
        ("log-3", "stream", "cancelled"),
    ]
    # and as a handler writes them: one line each
    text = "".join(logging.Formatter("%(message)s").format(r) + "\n" for r in records)
    assert [json.loads(line)["trace_id"] for line in text.splitlines()] == [
        "log-1",
        "log-2",
        "log-3",
    ]


def test_logger_is_silent_when_not_configured(
    chat: ge.Policy, caplog: pytest.LogCaptureFixture
) -> None:
    logger, root = logging.getLogger("guardrails_engine"), logging.getLogger()
    saved = logger.level, root.level
    logger.setLevel(logging.NOTSET)  # as an application that configures nothing leaves them
    root.setLevel(logging.WARNING)
    try:
        assert not logger.isEnabledFor(logging.INFO)
        chat.validate_sync(TEXT)
        list(chat.stream_sync(_chunks(TEXT, 4)))
        stream = chat.stream_sync(_chunks(TEXT, 4))
        next(stream)
        stream.close()
    finally:
        logger.setLevel(saved[0])
        root.setLevel(saved[1])
    assert [r for r in caplog.records if r.name == "guardrails_engine"] == []


# -- OpenTelemetry -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
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


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    span_exporter.clear()
    yield span_exporter
    span_exporter.clear()


def _ours(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("guardrails_engine.")]


def test_otel_span_per_run(chat: ge.Policy, spans: InMemorySpanExporter) -> None:
    rec = Recorder()
    result = chat.validate_sync(TEXT, trace_id="o-1", on_trace=rec)
    list(
        chat.stream_sync(
            _chunks(f"Mail jdoe@example.com, key {SECRET}.", 5), trace_id="o-2", on_trace=rec
        )
    )
    stream = chat.stream_sync(_chunks(TEXT, 5), trace_id="o-3", on_trace=rec)
    next(stream)
    stream.close()
    got = _ours(spans)
    assert [s.name for s in got] == [
        "guardrails_engine.validate",
        "guardrails_engine.stream",
        "guardrails_engine.stream",
    ]
    for span, trace in zip(got, rec.traces, strict=True):
        attrs = dict(span.attributes or {})
        assert attrs["guardrails_engine.trace_id"] == trace.trace_id
        assert attrs["guardrails_engine.kind"] == trace.kind
        assert attrs["guardrails_engine.policy"] == "support-chat"
        assert attrs["guardrails_engine.policy_hash"] == chat.content_hash
        assert attrs["guardrails_engine.decision"] == (trace.decision or "")
        assert attrs["guardrails_engine.ending"] == trace.ending
        assert attrs["guardrails_engine.findings"] == len(trace.findings)
        for stat in ("chunks_in", "chars_in", "chunks_out", "chars_out", "holdback_max"):
            assert attrs[f"guardrails_engine.{stat}"] == getattr(trace, stat), stat
        assert attrs["guardrails_engine.holdback_median"] == trace.holdback_median
        assert attrs["guardrails_engine.duration_ms"] == trace.duration_ms
        assert {k for k in attrs if k.startswith("guardrails_engine.check_ms.")} == {
            f"guardrails_engine.check_ms.{c}" for c in CHECK_IDS
        }
        if trace.first_out_ms is None:
            assert "guardrails_engine.first_out_ms" not in attrs
        else:
            assert attrs["guardrails_engine.first_out_ms"] == trace.first_out_ms
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time <= span.end_time
        events = list(span.events)
        assert [e.name for e in events] == ["guardrails_engine.finding"] * len(trace.findings)
        for event, finding in zip(events, trace.findings, strict=True):
            assert dict(event.attributes or {}) == {
                k: v for k, v in finding.items() if v is not None
            }
    validate_span = got[0]
    assert [dict(e.attributes or {})["reason"] for e in validate_span.events] == list(
        result.reasons
    )
    assert dict(got[1].attributes or {})["guardrails_engine.decision"] == "block"
    assert dict(got[2].attributes or {})["guardrails_engine.decision"] == ""


@pytest.mark.anyio
async def test_otel_span_for_async_runs(chat: ge.Policy, spans: InMemorySpanExporter) -> None:
    await chat.validate("All good.", trace_id="oa-1")
    [p async for p in chat.stream(AsyncSource(_chunks(TEXT, 4)), trace_id="oa-2")]
    attrs = [dict(s.attributes or {}) for s in _ours(spans)]
    assert [(a["guardrails_engine.trace_id"], a["guardrails_engine.ending"]) for a in attrs] == [
        ("oa-1", "completed"),
        ("oa-2", "completed"),
    ]


# -- no raw PII in any trace -----------------------------------------------------------------------

PLANTED = {
    "EMAIL_ADDRESS": ["jdoe@example.com", "billing@example.org", "agent42@support.example.net"],
    "PHONE_NUMBER": ["+1 415 555 0132", "(212) 555-0147", "+44 20 7946 0958"],
    "CREDIT_CARD": ["4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005"],
    "US_SSN": ["536-90-4399", "401-22-8675", "772 14 0391"],
    "IP_ADDRESS": ["192.0.2.10", "198.51.100.23", "2001:db8:85a3::8a2e:370:7334"],
    "IBAN_CODE": ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "CH9300762011623852957"],
}
DISGUISED = [
    "jdoe\u200b@example.com",
    "+1\u00a0415\u00a0555\u00a00132",
    "\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 "
    "\uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11",
    "536-90\u2060-4399",
    "198.51.\u200c100.23",
    "GB82\u00a0WEST\u00a01234\u00a05698\u00a07654\u00a032",
]
URL = "https://status.example.com/incidents/42"


def _compact(value: str) -> str:
    return re.sub(r"[\s\-().+]", "", value)


def _needles() -> set[str]:
    values = [v for vs in PLANTED.values() for v in vs] + DISGUISED + [URL, SECRET]
    out = set(values)
    out |= {_compact(v) for v in values if len(_compact(v)) >= 8}
    return out


def _texts(policy: str) -> list[str]:
    sentences = [
        f"Please call {v} today." if entity == "PHONE_NUMBER" else f"The value is {v} today."
        for entity, values in PLANTED.items()
        for v in values
    ]
    sentences += [f"Also {v} again." for v in DISGUISED]
    if policy == "strict-redact":
        sentences.append(f"See {URL} now.")
    texts = [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)]
    texts.append(f"The card is {PLANTED['CREDIT_CARD'][0]} and the key is {SECRET}.")
    if policy == "support-json":
        texts = [json.dumps({"answer": t}, ensure_ascii=False) for t in texts]
        texts.append("Not JSON: " + PLANTED["EMAIL_ADDRESS"][0])
    return texts


@pytest.mark.anyio
async def test_no_trace_holds_a_raw_pii_value(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="guardrails_engine")
    rec = Recorder()
    entities_seen: set[str] = set()
    for name in ("support-chat", "support-json", "strict-redact"):
        policy = ge.load_policy(POLICIES_DIR / f"{name}.yaml", on_trace=rec)
        for text in _texts(name):
            policy.validate_sync(text)
            await policy.validate(text)
            list(policy.stream_sync(_chunks(text, 3)))
            [p async for p in policy.stream(AsyncSource(_chunks(text, 7)))]
            early = policy.stream_sync(_chunks(text, 40))
            next(early, None)
            early.close()
            failing = policy.stream(AsyncSource(_chunks(text, 9), fail_after=2))
            with pytest.raises(RuntimeError):
                [p async for p in failing]
    for trace in rec.traces:
        entities_seen |= {f["entity_type"] for f in trace.findings if f["entity_type"]}
    assert set(PLANTED) <= entities_seen  # the traces did record the planted values
    assert {t.ending for t in rec.traces} >= {"completed", "blocked", "cancelled", "source_error"}

    haystacks: list[str] = []
    for trace in rec.traces:
        haystacks.append(json.dumps(trace.to_dict(), ensure_ascii=False))
        haystacks.append(repr(trace))
    haystacks += [r.getMessage() for r in caplog.records if r.name == "guardrails_engine"]
    otel = _ours(spans)
    assert len(otel) == len(rec.traces)
    for span in otel:
        haystacks.append(span.name)
        haystacks += [f"{k}={v!s}" for k, v in (span.attributes or {}).items()]
        for event in span.events:
            haystacks.append(event.name)
            haystacks += [f"{k}={v!s}" for k, v in (event.attributes or {}).items()]
    assert len(_trace_records(caplog)) == len(rec.traces)
    leaks = sorted({n for n in _needles() for h in haystacks if n in h})
    assert leaks == []


def test_trace_callback_type_is_exported() -> None:
    check: Callable[[ge.Trace], None] = Recorder()
    policy = ge.load_policy(CHAT, on_trace=check)
    assert policy.on_trace is check
