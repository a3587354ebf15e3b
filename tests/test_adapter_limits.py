"""Guarded SDK streams under the policy's own time limits, and after a length cut.

``stream.deadline_ms`` and ``stream.idle_timeout_ms`` bound a plain guarded stream of
every provider (OpenAI Chat and Responses, Anthropic), sync and async: an upstream that
never ends, or that stalls, is no longer read; the stream ends as a block ends it, the
provider's way, with the limit as the reason (in ``blocked`` and in the call's trace:
ending ``timed_out`` or ``idle``), and the upstream is closed.  Those cases run in a child
process each (``_adapter_limits.py``): a read that is not bounded would hang.

A length check's truncation is final too: the reply ends the provider's way for a length
cut (Chat ``finish_reason: "length"``, Responses ``response.incomplete`` with
``max_output_tokens``, Anthropic ``stop_reason: "max_tokens"``), what it shows is what
``validate`` gives, and the upstream is closed there (it was read to its end before).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import openai
import pytest
from _adapter_limits import MESSAGE, _ending_of, _text_of
from _child import run_limited
from _fake_anthropic import FakeAnthropic, Text, sse_events
from _fake_anthropic import serving as anthropic_serving
from _fake_openai import FakeOpenAI, chat_chunks, response_events
from _fake_openai import serving as openai_serving

import guardrails_engine as ge
from guardrails_engine import anthropic as ge_anthropic
from guardrails_engine import openai as ge_openai

TESTS = Path(__file__).resolve().parent
SLOW = 0.01  # seconds between two events of the fake: the client's leaving is seen
NATIVE_BLOCK = {
    "chat": "content_filter",
    "responses": "response.incomplete:content_filter",
    "anthropic": "message_delta:refusal",
}
NATIVE_CUT = {
    "chat": "length",
    "responses": "response.incomplete:max_output_tokens",
    "anthropic": "message_delta:max_tokens",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the SDK streams' own generators warn when collected under trio


# -- time limits, in a child process per provider ------------------------------------------


@pytest.mark.slow  # (a child process each, about 15 s)
@pytest.mark.parametrize("provider", ["chat", "responses", "anthropic"])
def test_time_limits_end_a_guarded_stream_the_provider_s_way(provider: str) -> None:
    out = run_limited(
        f"""
        import json, sys
        sys.path.insert(0, {str(TESTS)!r})
        from _adapter_limits import run
        print(json.dumps(run({provider!r})))
        """,
        seconds=120,
    )
    cases = json.loads(out.splitlines()[-1])
    assert {"endless async", "endless sync", "stall async", "stall sync"} <= set(cases)
    for name, got in cases.items():
        deadline = not name.startswith("stall")
        what = "deadline of 300 ms passed" if deadline else "no text from the source for 300 ms"
        # Ended as a block is, the provider's way, the block message last shown ...
        assert got["ending"] == NATIVE_BLOCK[provider], name
        assert got["text_end"] == MESSAGE, name
        # ... with the limit as the reason, in `blocked` and in the call's trace ...
        assert got["reasons"] == [f"stream: {what}, blocked"], name
        assert got["record"] == ("timed_out" if deadline else "idle"), name
        assert got["record_decision"] == "block", name
        # ... and the upstream was closed long before its end (an endless one: after
        # a few dozen events of thousands; one that stalled: after its first event).
        assert got["left"], name
        assert got["sent"] <= (200 if deadline else 2), name


# -- before any event: nothing to end, the stream raises ----------------------------------

LIMITED = f"""
version: 1
name: limited
block_message: "{MESSAGE}"
stream: {{idle_timeout_ms: 200}}
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
"""


@pytest.mark.anyio
async def test_an_upstream_silent_from_the_start_raises_timeout_async() -> None:
    async def silent() -> AsyncIterator[Any]:
        await anyio.sleep(3600)
        yield None  # pragma: no cover

    records: list[ge.CallTrace] = []
    guarded = ge_openai.guard(ge.Policy.from_yaml(LIMITED), silent(), on_trace=records.append)
    with anyio.fail_after(30), pytest.raises(TimeoutError, match="no text from the source"):
        [event async for event in guarded]
    assert guarded.blocked is not None
    assert records[-1].ending == "idle" and records[-1].error == "TimeoutError"


def test_an_upstream_silent_from_the_start_raises_timeout_sync() -> None:
    closed: list[bool] = []

    def silent() -> Iterator[Any]:
        try:
            time.sleep(1.0)  # (the read is abandoned at 200 ms; it returns later)
            yield from ()
        finally:
            closed.append(True)

    records: list[ge.CallTrace] = []
    policy = ge.Policy.from_yaml(LIMITED)
    guarded = ge_anthropic.guard_sync(policy, silent(), on_trace=records.append)
    with pytest.raises(TimeoutError, match="no text from the source for 200 ms"):
        list(guarded)
    assert records[-1].ending == "idle" and records[-1].decision == "block"
    for _ in range(300):  # the abandoned read returns, then the upstream is closed
        if closed:
            break
        time.sleep(0.01)
    assert closed


# -- a length cut is final: the upstream is no longer read ---------------------------------

CUT = f"""
version: 1
name: cut
block_message: "{MESSAGE}"
checks:
  - {{id: length, type: length, max_chars: 60}}
"""
WORDS = [f"word{i} " for i in range(300)]


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    yield from openai_serving()


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    yield from anthropic_serving()


def _open_sync(provider: str, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> Any:
    if provider == "anthropic":
        fake_anthropic.stream(sse_events([Text(WORDS)]), delay=SLOW)
        client: Any = anthropic.Anthropic(base_url=fake_anthropic.url, api_key="x", max_retries=0)
        return client.messages.create(
            model="m", max_tokens=9, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    client = openai.OpenAI(base_url=fake_openai.base_url, api_key="x", max_retries=0)
    if provider == "chat":
        fake_openai.add("chat", chat_chunks([(0, {"content": w}) for w in WORDS]), delay=SLOW)
        return client.chat.completions.create(model="m", messages=[], stream=True)
    fake_openai.add("responses", response_events([("text", WORDS)]), delay=SLOW)
    return client.responses.create(model="m", input="hi", stream=True)


async def _open_async(provider: str, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> Any:
    if provider == "anthropic":
        fake_anthropic.stream(sse_events([Text(WORDS)]), delay=SLOW)
        client: Any = anthropic.AsyncAnthropic(
            base_url=fake_anthropic.url, api_key="x", max_retries=0
        )
        return await client.messages.create(
            model="m", max_tokens=9, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    client = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="x", max_retries=0)
    if provider == "chat":
        fake_openai.add("chat", chat_chunks([(0, {"content": w}) for w in WORDS]), delay=SLOW)
        return await client.chat.completions.create(model="m", messages=[], stream=True)
    fake_openai.add("responses", response_events([("text", WORDS)]), delay=SLOW)
    return await client.responses.create(model="m", input="hi", stream=True)


def _sent(provider: str, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> int:
    if provider == "anthropic":
        return fake_anthropic.exchanges[-1].sent
    return fake_openai.served[-1].sent


def _left(
    provider: str, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> tuple[bool, int]:
    """Whether the client left before the end, and how many events were sent."""
    if provider == "anthropic":
        exchange = fake_anthropic.last()
        return exchange.left_after is not None, exchange.sent
    served = fake_openai.last()
    return served.left, served.sent


def _check_cut(provider: str, events: list[Any], records: list[ge.CallTrace]) -> None:
    policy = ge.Policy.from_yaml(CUT)
    assert _text_of(provider, events) == policy.validate_sync("".join(WORDS)).text
    assert _ending_of(provider, events) == NATIVE_CUT[provider]
    assert records[-1].ending == "truncated" and records[-1].decision == "repair"


@pytest.mark.parametrize("provider", ["chat", "responses", "anthropic"])
def test_a_length_cut_ends_the_reply_and_stops_reading_sync(
    provider: str, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    stream = _open_sync(provider, fake_openai, fake_anthropic)
    records: list[ge.CallTrace] = []
    guard = ge_anthropic.guard_sync if provider == "anthropic" else ge_openai.guard_sync
    guarded: Any = guard(ge.Policy.from_yaml(CUT), stream, on_trace=records.append)
    events = list(guarded)
    at_cut = _sent(provider, fake_openai, fake_anthropic)
    _check_cut(provider, events, records)
    left, sent = _left(provider, fake_openai, fake_anthropic)
    assert left and sent <= at_cut + 2 < len(WORDS)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["chat", "responses", "anthropic"])
async def test_a_length_cut_ends_the_reply_and_stops_reading_async(
    provider: str, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    stream = await _open_async(provider, fake_openai, fake_anthropic)
    records: list[ge.CallTrace] = []
    guard = ge_anthropic.guard if provider == "anthropic" else ge_openai.guard
    guarded: Any = guard(ge.Policy.from_yaml(CUT), stream, on_trace=records.append)
    with anyio.fail_after(30):
        events = [event async for event in guarded]
    at_cut = _sent(provider, fake_openai, fake_anthropic)
    _check_cut(provider, events, records)
    left, sent = _left(provider, fake_openai, fake_anthropic)
    assert left and sent <= at_cut + 2 < len(WORDS)


def test_a_cut_choice_ends_alone_and_the_stream_ends_with_the_last(
    fake_openai: FakeOpenAI,
) -> None:
    # n=2: choice 0 is cut by the length check while choice 1 goes on; choice 0's later
    # deltas and the upstream's own finish of it are not shown; choice 1 ends as the
    # upstream ends it.
    deltas = [(0, {"content": w}) for w in WORDS[:30]] + [(1, {"content": "short reply "})]
    fake_openai.add("chat", chat_chunks(deltas + [(0, {"content": w}) for w in WORDS[30:60]]))
    client = openai.OpenAI(base_url=fake_openai.base_url, api_key="x", max_retries=0)
    stream = client.chat.completions.create(model="m", messages=[], stream=True, n=2)
    policy = ge.Policy.from_yaml(CUT)
    events = list(ge_openai.guard_sync(policy, stream))
    shown = {
        i: "".join(c.delta.content or "" for e in events for c in e.choices if c.index == i)
        for i in (0, 1)
    }
    assert shown == {0: policy.validate_sync("".join(WORDS[:60])).text, 1: "short reply "}
    finishes = [(c.index, c.finish_reason) for e in events for c in e.choices if c.finish_reason]
    assert finishes == [(0, "length"), (1, "stop")]
    fake_openai.last()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
