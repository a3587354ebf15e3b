"""Fallbacks through both adapters, against fake servers speaking the real wire formats,
driven by the real SDK clients: the primary returns a 500, stalls before its first token,
refuses, or is blocked; the output keeps the SDK's types and the abandoned upstream
connection is closed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import anyio
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

POLICY = ge.Policy.from_yaml(
    """
version: 1
name: adapters-fallback
block_message: "[blocked]"
stream: {first_chunk_timeout_ms: 1000}
fallback: {on: [error, timeout, refusal, block]}
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}
  - {id: words, type: content, terms: [forbidden], action: block}
"""
)
SECOND = ["Second model: ", "mail ann@", "example.com ", "today."]
SECOND_OUT = "Second model: mail <EMAIL_ADDRESS> today."
FIRST = ["Hello ", "there, ", "all is well. "]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # (the SDKs' async clients on asyncio)


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


def _chat(pieces: list[str], key: str = "content") -> list[dict[str, Any]]:
    return chat_chunks([(0, {key: p}) for p in pieces])


def _oai_text(chunks: list[ChatCompletionChunk]) -> str:
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _ant_text(events: list[Any]) -> str:
    return "".join(
        e.delta.text
        for e in events
        if isinstance(e, RawContentBlockDeltaEvent) and e.delta.type == "text_delta"
    )


# -- OpenAI ------------------------------------------------------------------------------
def _script_openai(server: FakeOpenAI, trigger: str) -> None:
    if trigger == "500":
        return  # an unscripted request gets a 500
    if trigger == "stall":
        server.add("chat", _chat(FIRST), delay=5)  # the role chunk, then nothing for 5 s
    elif trigger == "refuse":
        server.add("chat", _chat(["I can't ", "help with that."], key="refusal"))
    else:
        server.add("chat", _chat(["This is forbidden text. "]))


TRIGGERS = {"500": "error", "stall": "timeout", "refuse": "refusal", "block": "block"}


@pytest.mark.anyio
@pytest.mark.parametrize("trigger", list(TRIGGERS))
async def test_openai_fallback_to_a_second_model(oai: FakeOpenAI, trigger: str) -> None:
    _script_openai(oai, trigger)
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
        told: list[ge.Fallback] = []

        def second(why: ge.Fallback) -> Any:
            told.append(why)
            oai.add("chat", _chat(SECOND))  # (scripted now: the primary may take none)
            messages = [{"role": "user", "content": "again"}]
            return client.chat.completions.create(model="b", messages=messages, stream=True)

        primary = client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async with ge_openai.guard(POLICY, primary, fallbacks=[second]) as stream:
            chunks = [c async for c in stream]
    assert _oai_text(chunks) == SECOND_OUT
    assert [w.reason for w in told] == [TRIGGERS[trigger]]
    assert [a.ending for a in stream.attempts] == [TRIGGERS[trigger], "completed"]
    first = oai.served[-2]
    if trigger == "stall":
        assert first.left and first.sent < first.total  # the abandoned connection was closed
    if trigger == "refuse":
        assert not any(c.choices and c.choices[0].delta.refusal for c in chunks)


@pytest.mark.anyio
async def test_openai_text_fallback_is_written_as_chunks(oai: FakeOpenAI) -> None:
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
        primary = client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async with ge_openai.guard(POLICY, primary, fallbacks=[lambda why: SECOND]) as stream:
            chunks = [c async for c in stream]
    assert _oai_text(chunks) == SECOND_OUT
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.anyio
async def test_openai_no_fallback_after_a_release(oai: FakeOpenAI) -> None:
    oai.add("chat", _chat([*FIRST, "and forbidden words. "]))
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
        stream_ = await client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        called: list[ge.Fallback] = []
        guarded = ge_openai.guard(POLICY, stream_, fallbacks=[called.append])
        async with guarded:
            chunks = [c async for c in guarded]
    text = _oai_text(chunks)
    assert text.startswith("Hello there, ") and text.endswith("[blocked]")
    assert called == [] and guarded.blocked is not None


def test_openai_sync_stall_and_block(oai: FakeOpenAI) -> None:
    oai.add("chat", _chat(["This is forbidden text. "]))
    with openai.OpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
        primary = client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with ge_openai.guard_sync(POLICY, primary, fallbacks=[lambda why: SECOND]) as stream:
            chunks = list(stream)
    assert _oai_text(chunks) == SECOND_OUT
    assert [a.ending for a in stream.attempts] == ["block", "completed"]


# -- Anthropic ---------------------------------------------------------------------------
def _script_anthropic(server: FakeAnthropic, trigger: str) -> None:
    if trigger == "500":
        return  # no reply queued: the server fails the request
    if trigger == "stall":
        server.stream(sse_events([Text(FIRST)]), delay=5)
    elif trigger == "refuse":
        server.stream(sse_events([], stop_reason="refusal"))
    else:
        server.stream(sse_events([Text(["This is forbidden text. "])]))


@pytest.mark.anyio
@pytest.mark.parametrize("trigger", list(TRIGGERS))
async def test_anthropic_fallback_to_a_second_model(ant: FakeAnthropic, trigger: str) -> None:
    _script_anthropic(ant, trigger)
    async with anthropic.AsyncAnthropic(base_url=ant.url, api_key="x", max_retries=0) as client:

        def ask(model: str) -> Any:
            messages = [{"role": "user", "content": "hi"}]
            return client.messages.create(
                model=model, max_tokens=100, messages=messages, stream=True
            )

        told: list[ge.Fallback] = []

        def second(why: ge.Fallback) -> Any:
            told.append(why)
            ant.stream(sse_events([Text(SECOND)]))
            return ask("b")

        async with ge_anthropic.guard(POLICY, ask("a"), fallbacks=[second]) as stream:
            events = [e async for e in stream]
    assert _ant_text(events) == SECOND_OUT
    assert [w.reason for w in told] == [TRIGGERS[trigger]]
    assert [a.ending for a in stream.attempts] == [TRIGGERS[trigger], "completed"]
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    assert sum(e.type == "message_start" for e in events) == 1  # nothing of the first
    if trigger == "stall":
        first = ant.exchanges[-2].wait()
        assert first.left_after is not None  # the abandoned connection was closed


@pytest.mark.anyio
async def test_anthropic_text_fallback_is_written_as_events(ant: FakeAnthropic) -> None:
    async def texts(why: ge.Fallback) -> AsyncIterator[str]:
        for piece in SECOND:
            yield piece

    async with anthropic.AsyncAnthropic(base_url=ant.url, api_key="x", max_retries=0) as client:
        primary = client.messages.create(
            model="a", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async with ge_anthropic.guard(POLICY, primary, fallbacks=[texts]) as stream:
            events = [e async for e in stream]
    assert _ant_text(events) == SECOND_OUT
    assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
    assert events[-2].delta.stop_reason == "end_turn"


@pytest.mark.anyio
async def test_anthropic_refusal_after_release_is_the_providers(ant: FakeAnthropic) -> None:
    ant.stream(sse_events([Text(FIRST)], stop_reason="refusal"))
    called: list[ge.Fallback] = []
    async with anthropic.AsyncAnthropic(base_url=ant.url, api_key="x", max_retries=0) as client:
        primary = await client.messages.create(
            model="a", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async with ge_anthropic.guard(POLICY, primary, fallbacks=[called.append]) as stream:
            events = [e async for e in stream]
    assert called == [] and _ant_text(events) == "".join(FIRST)
    assert [e.delta.stop_reason for e in events if e.type == "message_delta"] == ["refusal"]


@pytest.mark.anyio
async def test_an_error_after_release_is_raised_the_sdks_way() -> None:
    # A stream that breaks halfway (an SDK error mid-stream): no replay, the error is raised
    # after the text released, and `interrupted` says why.
    good = sse_events([Text(FIRST)])

    async def breaks() -> AsyncIterator[Any]:
        from anthropic.types import RawMessageStreamEvent
        from pydantic import TypeAdapter

        adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
        for _, data in good[:-3]:
            if data["type"] != "ping":
                yield adapter.validate_python(data)
        raise anthropic.APIConnectionError(request=httpx.Request("POST", "http://x"))

    called: list[ge.Fallback] = []
    stream = ge_anthropic.guard(POLICY, breaks(), fallbacks=[called.append])
    events: list[Any] = []
    with pytest.raises(anthropic.APIConnectionError):
        async for event in stream:
            events.append(event)
    assert called == [] and _ant_text(events) == "".join(FIRST)
    assert stream.interrupted is not None and stream.interrupted.reason == "error"


def test_openai_sync_primary_made_lazily_fails_with_a_500(oai: FakeOpenAI) -> None:
    with openai.OpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:

        def request() -> Any:  # no reply scripted: the fake answers 500
            messages = [{"role": "user", "content": "hi"}]
            return client.chat.completions.create(model="a", messages=messages, stream=True)

        with ge_openai.guard_sync(POLICY, request, fallbacks=[lambda why: SECOND]) as stream:
            chunks = list(stream)
    assert _oai_text(chunks) == SECOND_OUT
    assert (stream.attempts[0].ending, stream.attempts[0].detail) == (
        "error",
        "the source raised InternalServerError",
    )


@pytest.mark.anyio
async def test_a_breaker_skips_a_failing_primary_across_calls(oai: FakeOpenAI) -> None:
    breaker = ge.Breaker(failures=2, window_s=60, cooldown_s=60)
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:

        def request() -> Any:
            messages = [{"role": "user", "content": "hi"}]
            return client.chat.completions.create(model="a", messages=messages, stream=True)

        for _ in range(2):  # two 500s
            async with ge_openai.guard(
                POLICY, request(), fallbacks=[lambda why: SECOND], breaker=breaker
            ) as stream:
                [c async for c in stream]
        assert breaker.open
        served = len(oai.served)
        primary = request()
        async with ge_openai.guard(
            POLICY, primary, fallbacks=[lambda why: SECOND], breaker=breaker
        ) as stream:
            chunks = [c async for c in stream]
    assert _oai_text(chunks) == SECOND_OUT
    assert len(oai.served) == served  # the primary's request was never sent
    assert stream.attempts[0].ending == "skipped"


def test_openai_sync_stall_before_the_first_token(oai: FakeOpenAI) -> None:
    # The sync guard reads until the first token in a thread that the limit abandons;
    # the upstream is closed when that read returns (here, with the next event).
    oai.add("chat", _chat(FIRST), delay=2)
    with openai.OpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
        primary = client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with ge_openai.guard_sync(POLICY, primary, fallbacks=[lambda why: SECOND]) as stream:
            chunks = list(stream)
    assert _oai_text(chunks) == SECOND_OUT
    assert [a.ending for a in stream.attempts] == ["timeout", "completed"]
    first = oai.last(timeout=10)
    assert first.left and first.sent < first.total


LIMITED = """
version: 1
name: limited
stream: {{{limit}}}
fallback: {{on: [error, timeout]}}
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
"""
IDLE = ge.Policy.from_yaml(LIMITED.format(limit="idle_timeout_ms: 300"))
#: The sync clients' own read timeout: a read the guarded stream did not abandon would
#: end with the SDK's error (the ``error`` trigger) after this long, not ``timeout``.
CLIENT_TIMEOUT = 1.0


def _drain(stream: Any, pause: float) -> tuple[list[Any], TimeoutError | None]:
    """Read a sync guarded stream, ``pause`` seconds after each chunk: what it showed,
    and the ``TimeoutError`` it ended with, if it did."""
    chunks: list[Any] = []
    try:
        for chunk in stream:
            chunks.append(chunk)
            time.sleep(pause)
    except TimeoutError as exc:
        return chunks, exc
    return chunks, None


def _guard_idle_sync(
    oai: FakeOpenAI,
    ant: FakeAnthropic,
    provider: str,
    pieces: list[str],
    second: Any,
    *,
    stall: float = 0.0,
    pause: float = 0.0,
) -> tuple[Any, list[Any], BaseException | None]:
    """A sync guarded stream over ``pieces``, the upstream waiting ``stall`` seconds
    after the first, the reader ``pause`` seconds after each chunk: the stream, what it
    showed and what it raised."""
    if provider == "openai":
        oai.add("chat", _chat(pieces)[1:], delay=stall)  # (no role chunk: text first)
        client: Any = openai.OpenAI(
            base_url=oai.base_url, api_key="x", max_retries=0, timeout=CLIENT_TIMEOUT
        )
        primary = client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        guard: Any = ge_openai.guard_sync
    else:
        # message_start, ping, content_block_start and the first text at once, then the stall
        ant.stream(sse_events([Text(pieces)]), delay=stall, delay_from=4)
        client = anthropic.Anthropic(
            base_url=ant.url, api_key="x", max_retries=0, timeout=CLIENT_TIMEOUT
        )
        primary = client.messages.create(
            model="a", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        guard = ge_anthropic.guard_sync
    with client, guard(IDLE, primary, fallbacks=[second]) as stream:
        chunks, error = _drain(stream, pause)
    if provider == "openai":
        assert oai.last(timeout=10).left == (stall > 0)
        return stream, chunks, error
    assert (ant.last(timeout=10).left_after is not None) == (stall > 0)
    return stream, chunks, error


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("released_first", [False, True])
def test_sync_stall_mid_stream_is_abandoned_at_the_idle_limit(
    oai: FakeOpenAI, ant: FakeAnthropic, provider: str, released_first: bool
) -> None:
    # A sync upstream that sends text, then nothing for 5 s: the read in progress is
    # abandoned at stream.idle_timeout_ms (the trigger is ``timeout``; a read waited
    # out would end with the client's read timeout, an ``error``), and the connection
    # is closed when that read returns.  Before a release ("Hello" is held: a value
    # may go on) the fallback takes over; after one, the stream ends with a timeout.
    first = "Hello there. " if released_first else "Hello"
    told: list[ge.Fallback] = []

    def second(why: ge.Fallback) -> list[str]:
        told.append(why)
        return SECOND

    stream, chunks, error = _guard_idle_sync(oai, ant, provider, [first, "More. "], second, stall=5)
    text = _oai_text(chunks) if provider == "openai" else _ant_text(chunks)
    if released_first:
        assert text == first and told == []
        assert isinstance(error, TimeoutError)
        assert stream.interrupted is not None and stream.interrupted.reason == "timeout"
        assert [a.ending for a in stream.attempts] == ["timeout"]
    else:
        assert text == SECOND_OUT and error is None
        assert [why.reason for why in told] == ["timeout"]
        assert [a.ending for a in stream.attempts] == ["timeout", "completed"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_slow_reader_is_not_an_idle_upstream(
    oai: FakeOpenAI, ant: FakeAnthropic, provider: str
) -> None:
    # The idle limit is the upstream's: a reader that takes longer than it between two
    # chunks (a slow client of the service) does not make the next read time out.
    pieces = ["Hello there. ", "All ", "is ", "well. "]
    told: list[ge.Fallback] = []

    def second(why: ge.Fallback) -> list[str]:
        told.append(why)
        return SECOND

    # (0.4 s a chunk: past idle_timeout_ms between two reads)
    stream, chunks, error = _guard_idle_sync(oai, ant, provider, pieces, second, pause=0.4)
    text = _oai_text(chunks) if provider == "openai" else _ant_text(chunks)
    assert text == "".join(pieces) and error is None and told == []
    assert [a.ending for a in stream.attempts] == ["completed"]


@pytest.mark.anyio
async def test_a_slow_async_reader_is_not_an_idle_upstream(oai: FakeOpenAI) -> None:
    pieces = ["Hello there. ", "All ", "is ", "well. "]
    oai.add("chat", _chat(pieces)[1:])
    told: list[ge.Fallback] = []
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
        primary = client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks: list[Any] = []
        async with ge_openai.guard(IDLE, primary, fallbacks=[told.append]) as stream:
            async for chunk in stream:
                chunks.append(chunk)
                await anyio.sleep(0.4)  # past idle_timeout_ms, between two reads
    assert _oai_text(chunks) == "".join(pieces) and told == []
    assert [a.ending for a in stream.attempts] == ["completed"]


DEADLINE = ge.Policy.from_yaml(LIMITED.format(limit="deadline_ms: 300"))


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("pace", ["upstream", "reader"])
async def test_an_endless_upstream_ends_at_the_deadline(
    oai: FakeOpenAI, mode: str, pace: str
) -> None:
    # Text without end, every 10 ms (``upstream``), or all at once to a reader that
    # takes 10 ms a chunk (``reader``: every read finds its event buffered and does not
    # wait): past stream.deadline_ms the upstream is no longer read (a source's runs
    # keep no clock of their own: the reads are bounded for them).
    slow = pace == "upstream"
    words = 2000 if slow else 100  # (100 chunks come in one read of the socket)
    oai.add("chat", _chat([f"word{i} " for i in range(words)])[1:], delay=0.01 if slow else 0)
    chunks: list[Any] = []
    told: list[ge.Fallback] = []
    if mode == "sync":
        with openai.OpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
            primary = client.chat.completions.create(model="a", messages=[], stream=True)
            with ge_openai.guard_sync(DEADLINE, primary, fallbacks=[told.append]) as stream:
                chunks, error = _drain(stream, 0 if slow else 0.02)
        assert isinstance(error, TimeoutError)
    else:
        async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as aclient:
            aprimary = await aclient.chat.completions.create(model="a", messages=[], stream=True)
            async with ge_openai.guard(DEADLINE, aprimary, fallbacks=[told.append]) as stream:
                with pytest.raises(TimeoutError):
                    async for chunk in stream:
                        chunks.append(chunk)
                        await anyio.sleep(0 if slow else 0.02)
    text = _oai_text(chunks)
    assert told == [] and text.startswith("word0 word1 ") and f"word{words - 1}" not in text
    assert stream.interrupted is not None and stream.interrupted.reason == "timeout"
    assert [a.ending for a in stream.attempts] == ["timeout"]
    served = oai.last(timeout=10)
    assert served.left == slow and served.sent <= served.total


def test_anthropic_sync_block_falls_back_and_tells_no_value(ant: FakeAnthropic) -> None:
    ant.stream(sse_events([Text(["Mail jdoe@example.com, it is forbidden. "])]))
    told: list[ge.Fallback] = []

    def second(why: ge.Fallback) -> list[str]:
        told.append(why)
        return SECOND

    with anthropic.Anthropic(base_url=ant.url, api_key="x", max_retries=0) as client:
        primary = client.messages.create(
            model="a", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with ge_anthropic.guard_sync(POLICY, primary, fallbacks=[second]) as stream:
            events = list(stream)
    assert _ant_text(events) == SECOND_OUT
    assert events[0].type == "message_start"
    (why,) = told
    assert why.reason == "block" and {f.check_id for f in why.findings} == {"pii", "words"}
    assert "jdoe" not in repr(why)


@pytest.mark.anyio
async def test_openai_idle_after_a_release_ends_with_a_timeout(oai: FakeOpenAI) -> None:
    # stream.idle_timeout_ms: text, then the upstream stalls; nothing is replayed, the
    # stream ends the provider's way (an exception after the text) and the connection
    # is closed.
    policy = IDLE
    oai.add("chat", [*_chat(["Hello there. "])[1:2], *_chat(["More. "])[1:]], delay=2)
    called: list[ge.Fallback] = []
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:
        primary = client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        stream = ge_openai.guard(policy, primary, fallbacks=[called.append])
        chunks: list[Any] = []
        with pytest.raises(TimeoutError):
            async for chunk in stream:
                chunks.append(chunk)
    assert called == [] and _oai_text(chunks) == "Hello there. "
    assert stream.interrupted is not None and stream.interrupted.reason == "timeout"
    assert oai.last(timeout=10).left


@pytest.mark.anyio
@pytest.mark.parametrize("trigger", ["500", "refuse"])
async def test_openai_responses_fallback_to_a_responses_stream(
    oai: FakeOpenAI, trigger: str
) -> None:
    if trigger == "refuse":
        oai.add("responses", response_events([("refusal", ["I can't ", "do that."])]))

    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as client:

        def ask() -> Any:
            return client.responses.create(model="m", input="hi", stream=True)

        def second(why: ge.Fallback) -> Any:
            oai.add("responses", response_events([("text", SECOND)]))
            return ask()

        async with ge_openai.guard(POLICY, ask(), fallbacks=[second]) as stream:
            events = [e async for e in stream]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == SECOND_OUT
    assert not any(e.type.startswith("response.refusal") for e in events)
    assert sum(e.type == "response.created" for e in events) == 1
    assert [a.ending for a in stream.attempts] == [TRIGGERS[trigger], "completed"]
