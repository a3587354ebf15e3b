"""Scenarios for ``test_adapter_limits.py``, run in a child process each (a read that is
not bounded would hang): the real SDK clients against the fake servers, a guarded
stream under ``stream.deadline_ms`` or ``stream.idle_timeout_ms``, and what came of it
as JSON (``python -c`` prints :func:`main`'s result)."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
from _fake_anthropic import FakeAnthropic, Text, sse_events
from _fake_openai import FakeOpenAI, chat_chunks, response_events

import guardrails_engine as ge
from guardrails_engine import anthropic as ge_anthropic
from guardrails_engine import openai as ge_openai

MESSAGE = "[stopped]"
POLICY = """
version: 1
name: limited
block_message: "{message}"
stream: {{{limit}}}
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
"""
#: An upstream that does not end: far more events than the limit lets through.
ENDLESS = 3000
#: Between two events of an upstream that stalls (the fake waits this long).
STALL = 5.0
#: The sync client's own read timeout: it bounds how long an abandoned read keeps the
#: connection open (the guarded stream ends on its own limit, well before).
CLIENT_TIMEOUT = 1.5


def _policy(limit: str) -> ge.Policy:
    return ge.Policy.from_yaml(POLICY.format(message=MESSAGE, limit=limit))


def _words(n: int) -> list[str]:
    return [f"word{i} " for i in range(n)]


def _ending_of(provider: str, events: list[Any]) -> str | None:
    """How the guarded stream ended, the provider's way (its last native ending)."""
    for event in reversed(events):
        if provider == "chat":
            for choice in event.choices:
                if choice.finish_reason is not None:
                    return str(choice.finish_reason)
        elif provider == "responses":
            if event.type in ("response.completed", "response.incomplete"):
                details = event.response.incomplete_details
                return f"{event.type}:{details.reason if details else ''}"
        elif event.type == "message_delta":
            return f"message_delta:{event.delta.stop_reason}"
    return None


def _text_of(provider: str, events: list[Any]) -> str:
    if provider == "chat":
        return "".join(c.delta.content or "" for e in events for c in e.choices)
    if provider == "responses":
        return "".join(e.delta for e in events if e.type == "response.output_text.delta")
    return "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )


def _script(fake: Any, provider: str, words: list[str], delay: float) -> None:
    if not words:  # chatter: events that carry no text, without end
        if provider == "chat":
            fake.add("chat", chat_chunks([(0, {})] * ENDLESS), delay=delay)
        else:
            start = sse_events([])[0]
            fake.stream([start] + [("ping", {"type": "ping"})] * ENDLESS, delay=delay)
        return
    if provider == "chat":
        fake.add("chat", chat_chunks([(0, {"content": w}) for w in words]), delay=delay)
    elif provider == "responses":
        fake.add("responses", response_events([("text", words)]), delay=delay)
    else:
        fake.stream(sse_events([Text(words)]), delay=delay)


def _served(fake: Any, provider: str) -> dict[str, Any]:
    """What the server saw of the request: events sent, whether the client left."""
    if provider == "anthropic":
        exchange = fake.last(timeout=15)
        return {"sent": exchange.sent, "left": exchange.left_after is not None}
    served = fake.last(timeout=15)
    return {"sent": served.sent, "left": served.left, "total": served.total}


def _guard_sync(provider: str, policy: ge.Policy, fake: Any, records: list[Any]) -> Any:
    timeout = CLIENT_TIMEOUT
    if provider == "anthropic":
        client: Any = anthropic.Anthropic(
            base_url=fake.url, api_key="x", max_retries=0, timeout=timeout
        )
        stream = client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return ge_anthropic.guard_sync(policy, stream, on_trace=records.append)
    client = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, timeout=timeout)
    if provider == "chat":
        stream = client.chat.completions.create(model="m", messages=[], stream=True)
    else:
        stream = client.responses.create(model="m", input="hi", stream=True)
    return ge_openai.guard_sync(policy, stream, on_trace=records.append)


async def _guard_async(provider: str, policy: ge.Policy, fake: Any, records: list[Any]) -> Any:
    if provider == "anthropic":
        client: Any = anthropic.AsyncAnthropic(base_url=fake.url, api_key="x", max_retries=0)
        stream = await client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return ge_anthropic.guard(policy, stream, on_trace=records.append)
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
    if provider == "chat":
        stream = await client.chat.completions.create(model="m", messages=[], stream=True)
    else:
        stream = await client.responses.create(model="m", input="hi", stream=True)
    return ge_openai.guard(policy, stream, on_trace=records.append)


def _outcome(provider: str, guarded: Any, events: list[Any], records: list[Any]) -> dict[str, Any]:
    blocked = guarded.blocked
    return {
        "ending": _ending_of(provider, events),
        "text_end": _text_of(provider, events)[-len(MESSAGE) :],
        "reasons": [f.reason for f in blocked.findings] if blocked is not None else None,
        "record": records[-1].ending if records else None,
        "record_decision": records[-1].decision if records else None,
    }


CASES = [(case, mode) for case in ("endless", "stall") for mode in ("async", "sync")]
#: Also an endless upstream of events without text: Chat's empty chunks (async, sync),
#: Anthropic's pings (async: the sync SDK drops pings inside one read, which then never
#: returns while they come; the guarded stream still ends on time, but the abandoned
#: read keeps the connection until the upstream ends: see ``_adapters/_reader.py``).
CHATTER = {
    "chat": [("chatter", "async"), ("chatter", "sync")],
    "anthropic": [("chatter", "async")],
    "responses": [],
}


def _case(fake: Any, provider: str, case: str, mode: str) -> dict[str, Any]:
    if case == "endless":
        policy, words, delay = _policy("deadline_ms: 300"), _words(ENDLESS), 0.01
    elif case == "chatter":
        policy, words, delay = _policy("deadline_ms: 300"), [], 0.01
    else:
        policy, words, delay = _policy("idle_timeout_ms: 300"), _words(3), STALL
    _script(fake, provider, words, delay)
    records: list[Any] = []
    if mode == "sync":
        guarded = _guard_sync(provider, policy, fake, records)
        events = list(guarded)
    else:

        async def read() -> tuple[Any, list[Any]]:
            guarded = await _guard_async(provider, policy, fake, records)
            return guarded, [e async for e in guarded]

        guarded, events = asyncio.run(read())
    return {**_outcome(provider, guarded, events, records), **_served(fake, provider)}


def run(provider: str) -> dict[str, dict[str, Any]]:
    """Every case of :data:`CASES` against one fake server: ``endless`` (``deadline_ms:
    300``, an event every 10 ms) and ``stall`` (``idle_timeout_ms: 300``, the upstream
    waits 5 s after each event), async and sync, and :data:`CHATTER` for Chat and
    Anthropic; by ``"case mode"``."""
    fake: Any = FakeAnthropic().start() if provider == "anthropic" else FakeOpenAI()
    if provider != "anthropic":
        fake.start()
    try:
        # A first stream, read whole and unguarded: the SDK builds its event types on
        # first use (over a second for Responses, here), which is no upstream's wait.
        _script(fake, provider, ["warm "], 0.0)
        list(_guard_sync(provider, _policy("max_holdback_chars: 1024"), fake, []))
        cases = CASES + CHATTER[provider]
        return {f"{case} {mode}": _case(fake, provider, case, mode) for case, mode in cases}
    finally:
        fake.stop()
