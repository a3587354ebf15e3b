"""examples/service.py, run by uvicorn on 127.0.0.1 in front of a fake OpenAI upstream.

Both servers listen on 127.0.0.1 (port 0), each in its own thread; nothing reaches the
network.  The service is driven with httpx streaming (the raw Server-Sent Events) and with
the real ``openai`` SDK client pointed at it; the fake upstream records when its client (the
service) left, so the tests see the service close the upstream.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from _fake_openai import MODEL, FakeOpenAI, Served, chat_chunks, completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import guardrails_engine as ge

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = "Sorry, I can't share that."  # policies/support-chat.yaml's block_message
EMAIL = "jdoe@example.com"
SECRET = "sk-" + "a1B2c3D4e5" * 3
SLOW = 0.03  # seconds between upstream events when a test looks at when the service left
CHAT: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
MAX_EVENTS = 1000  # no test reads more events than this from the service


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_service", ROOT / "examples/service.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


service = _load_example()


class Service:
    """The example's app under uvicorn on 127.0.0.1:<free port>, in a thread of its own."""

    def __init__(self, make_app: Callable[[], Any]) -> None:
        config = uvicorn.Config(
            make_app(),
            host="127.0.0.1",
            port=0,
            log_level="error",
            lifespan="on",  # the app closes its upstream client at shutdown
            http="h11",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="service", daemon=True)
        self.thread.start()
        began = time.monotonic()
        while not self.server.started:
            if time.monotonic() - began > 10 or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "the service did not stop"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def upstream(fake: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake.replies.clear()
    yield fake
    assert not fake.replies, "a scripted reply was not used"


@pytest.fixture(scope="module")
def svc(fake: FakeOpenAI, support_policy: ge.Policy) -> Iterator[Service]:
    def make_app() -> Any:
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
        return service.create_app(support_policy, client)

    running = Service(make_app)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def http(svc: Service, upstream: FakeOpenAI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=svc.url, timeout=10) as client:
        yield client


@pytest.fixture
def sdk(svc: Service, upstream: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{svc.url}/v1", api_key="x", max_retries=0, timeout=10) as c:
        yield c


def sse_events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The Server-Sent Events of a response, as their fields (``data``, ``event``, ...)."""
    fields: dict[str, str] = {}
    for n, line in enumerate(response.iter_lines()):
        assert n < 10 * MAX_EVENTS, "the service sent too many lines"
        if not line:
            if fields:
                yield fields
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
    assert not fields, "the stream ended inside an event"


def stream_chat(http: httpx.Client, **extra: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """POST a streamed chat completion: (the JSON chunks, the raw data of every event)."""
    body = {**CHAT, "stream": True, **extra}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = []
        for event in sse_events(response):
            assert set(event) == {"data"}, event  # plain `data:` events only
            raw.append(event["data"])
            assert len(raw) <= MAX_EVENTS
    assert raw and raw[-1] == "[DONE]" and raw.count("[DONE]") == 1, raw[-3:]
    return [json.loads(d) for d in raw[:-1]], raw


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["delta"].get("content") or "" for ch in chunks for c in ch["choices"])


def finishes(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["finish_reason"] for ch in chunks for c in ch["choices"] if c.get("finish_reason")]


def split_email_deltas() -> list[tuple[int, dict[str, Any]]]:
    parts = ["Write to jd", "oe@exa", "mple.c", "om and we", " will answer", " today."]
    assert "".join(parts) == f"Write to {EMAIL} and we will answer today."
    return [(0, {"content": p}) for p in parts]


def planted_secret(n: int = 60) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """Deltas with a secret revealed at upstream event ``k`` (counting the role chunk)."""
    deltas = [(0, {"content": "Here it is: "}), (0, {"content": SECRET[:10]})]
    deltas += [(0, {"content": SECRET[10:] + " and"})]
    deltas += [(0, {"content": " more words"}) for _ in range(n)]
    return deltas, 4


def left_soon(fake: FakeOpenAI, at: int, within: int) -> Served:
    """The last request's reply, which must end (bounded wait) by the service leaving no
    more than ``within`` events after upstream event ``at``."""
    served = fake.last(timeout=5)
    assert served.left, "the service read the upstream to its end"
    assert served.sent <= at + within < served.total, (served.sent, at, served.total)
    return served


# -- masking ---------------------------------------------------------------------------------
def test_an_email_split_across_upstream_chunks_arrives_masked(
    http: httpx.Client, upstream: FakeOpenAI, support_policy: ge.Policy
) -> None:
    upstream.add("chat", chat_chunks(split_email_deltas()))
    chunks, raw = stream_chat(http)
    text = text_of(chunks)
    assert text == "Write to <EMAIL_ADDRESS> and we will answer today."
    assert text == support_policy.validate_sync(f"Write to {EMAIL} and we will answer today.").text
    assert not any("@" in d or "example" in d for d in raw)
    assert not any(p in text_of([ch]) for ch in chunks for p in ("jd", "oe", "exa", "mple"))
    masked_at = next(i for i, ch in enumerate(chunks) if "<EMAIL_ADDRESS>" in text_of([ch]))
    assert masked_at < len(chunks) - 2  # mid-stream: more text came after it
    assert finishes(chunks) == ["stop"]
    assert all(ch["id"] == "chatcmpl-fake1" and ch["model"] == MODEL for ch in chunks)
    assert all("guardrails" not in ch for ch in chunks)
    assert upstream.last().body["stream"] is True


def test_the_openai_sdk_reads_the_masked_stream(sdk: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.add("chat", chat_chunks(split_email_deltas(), usage={"prompt_tokens": 3}))
    with sdk.chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    assert all(isinstance(ch, ChatCompletionChunk) for ch in chunks)
    text = "".join(c.delta.content or "" for ch in chunks for c in ch.choices)
    assert text == "Write to <EMAIL_ADDRESS> and we will answer today."
    assert [c.finish_reason for ch in chunks for c in ch.choices if c.finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 3
    assert upstream.last().body["stream_options"] == {"include_usage": True}  # forwarded


# -- blocks ----------------------------------------------------------------------------------
def test_a_block_ends_the_stream_natively_marked_and_closes_the_upstream(
    http: httpx.Client, upstream: FakeOpenAI
) -> None:
    deltas, k = planted_secret()
    upstream.add("chat", chat_chunks(deltas), delay=SLOW)
    chunks, raw = stream_chat(http)
    assert text_of(chunks) == "Here it is: " + MESSAGE
    assert not any("sk-" in d for d in raw)
    last = chunks[-1]  # content_filter, then only [DONE]
    assert [c["finish_reason"] for c in last["choices"]] == ["content_filter"]
    assert finishes(chunks) == ["content_filter"]
    assert last["guardrails"] == {"blocked": True, "message": MESSAGE}
    assert all("guardrails" not in ch for ch in chunks[:-1])
    left_soon(upstream, k, within=2)  # the guard closed the upstream at the block


def test_the_openai_sdk_parses_a_blocked_stream_and_sees_the_marker(
    sdk: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    deltas, k = planted_secret()
    upstream.add("chat", chat_chunks(deltas), delay=SLOW)
    with sdk.chat.completions.create(**CHAT, stream=True) as stream:
        chunks = list(stream)
    assert all(isinstance(ch, ChatCompletionChunk) for ch in chunks)
    assert "".join(c.delta.content or "" for ch in chunks for c in ch.choices).endswith(MESSAGE)
    end = chunks[-1]
    assert end.choices[0].finish_reason == "content_filter"
    assert end.model_extra is not None and end.model_extra["guardrails"]["blocked"] is True
    left_soon(upstream, k, within=2)


def test_the_upstreams_own_content_filter_is_passed_on_unmarked(
    http: httpx.Client, upstream: FakeOpenAI
) -> None:
    upstream.add("chat", chat_chunks([(0, {"content": "Well"})], finish={0: "content_filter"}))
    chunks, _ = stream_chat(http)
    assert text_of(chunks) == "Well" and finishes(chunks) == ["content_filter"]
    assert all("guardrails" not in ch for ch in chunks)


def test_a_block_with_two_choices_ends_both_in_one_marked_chunk(
    http: httpx.Client, upstream: FakeOpenAI
) -> None:
    deltas = [(0, {"content": "Fine."}), (1, {"content": f"Try {SECRET} now"})]
    deltas += [(0, {"content": " more"}) for _ in range(20)]
    upstream.add("chat", chat_chunks(deltas), delay=SLOW)
    chunks, _ = stream_chat(http, n=2)
    last = chunks[-1]
    assert sorted(c["index"] for c in last["choices"]) == [0, 1]
    assert {c["finish_reason"] for c in last["choices"]} == {"content_filter"}
    assert last["guardrails"]["blocked"] is True
    assert upstream.last().body["n"] == 2


def test_an_upstream_error_mid_stream_reaches_the_client_as_the_api_sends_it(
    http: httpx.Client, sdk: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    broken = [*chat_chunks([(0, {"content": "Hello there, "})])[:2]]
    broken.append({"error": {"message": "upstream overloaded", "type": "server_error"}})
    upstream.add("chat", broken)
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        data = [json.loads(e["data"]) for e in sse_events(response)]
    assert data[-1]["error"]["message"] == "upstream overloaded"  # and no [DONE]
    assert "".join(text_of([d]) for d in data[:-1]) == "Hello there, "

    upstream.add("chat", broken)
    with pytest.raises(openai.APIError, match="upstream overloaded"):
        with sdk.chat.completions.create(**CHAT, stream=True) as stream:
            for _chunk in stream:
                pass


# -- not streamed ----------------------------------------------------------------------------
def test_a_reply_that_is_not_streamed_is_guarded(
    http: httpx.Client, sdk: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.add("json", completion([{"message": {"content": f"Mail {EMAIL} today."}}]))
    response = http.post("/v1/chat/completions", json={**CHAT, "temperature": 0.2})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and "guardrails" not in body
    assert body["choices"][0]["message"]["content"] == "Mail <EMAIL_ADDRESS> today."
    assert body["usage"]["total_tokens"] == 12
    assert upstream.last().body["temperature"] == 0.2  # other fields reach the upstream

    upstream.add("json", completion([{"message": {"content": f"Use {SECRET} to log in."}}]))
    reply = sdk.chat.completions.create(**CHAT)
    assert isinstance(reply, ChatCompletion)
    assert reply.choices[0].message.content == MESSAGE
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.model_extra is not None
    assert reply.model_extra["guardrails"] == {"blocked": True, "message": MESSAGE}


# -- the client leaves -----------------------------------------------------------------------
def test_a_client_that_leaves_mid_stream_makes_the_service_close_the_upstream(
    http: httpx.Client, upstream: FakeOpenAI
) -> None:
    words = [f"word{i} " for i in range(200)]
    upstream.add("chat", chat_chunks([(0, {"content": w}) for w in words]), SLOW)
    shown = ""
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        for n, event in enumerate(sse_events(response)):
            data = json.loads(event["data"])
            assert data["object"] == "chat.completion.chunk"
            assert [c["index"] for c in data["choices"]] == [0]
            shown += text_of([data])
            if n == 3:
                break
        at_close = upstream.served[-1].sent
    # What the client saw is the upstream's text as far as it was released, in order.
    assert shown and "".join(words).startswith(shown)
    left_soon(upstream, at_close, within=3)


def test_an_openai_sdk_client_that_closes_its_stream_makes_the_service_close_the_upstream(
    sdk: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.add("chat", chat_chunks([(0, {"content": f"word{i} "}) for i in range(200)]), SLOW)
    stream = sdk.chat.completions.create(**CHAT, stream=True)
    for n, _chunk in enumerate(stream):
        if n == 3:
            break
    stream.close()
    at_close = upstream.served[-1].sent
    left_soon(upstream, at_close, within=3)


# -- errors and configuration ----------------------------------------------------------------
def test_errors_come_back_in_the_apis_shape(http: httpx.Client, upstream: FakeOpenAI) -> None:
    bad = http.post("/v1/chat/completions", json={"messages": []})
    assert bad.status_code == 400 and "model" in bad.json()["error"]["message"]
    failed = http.post("/v1/chat/completions", json=CHAT)  # the fake has no reply: a 500
    assert failed.status_code == 500
    assert "no scripted reply" in failed.json()["error"]["message"]


def test_the_app_is_configured_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    monkeypatch.setenv("GUARDRAILS_TRACES", str(tmp_path / "traces.db"))  # not in the checkout
    monkeypatch.setenv("UPSTREAM_BASE_URL", fake.base_url)
    monkeypatch.delenv("UPSTREAM_API_KEY", raising=False)  # a local upstream needs none
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("GUARDRAILS_POLICY", str(ROOT / "policies/support-chat.yaml"))
    running = Service(service.from_env.__wrapped__)  # what `uvicorn examples.service:app` does
    try:
        upstream.add("json", completion([{"message": {"content": f"Mail {EMAIL}."}}]))
        with httpx.Client(base_url=running.url, timeout=10) as client:
            reply = client.post("/v1/chat/completions", json=CHAT).json()
        assert reply["choices"][0]["message"]["content"] == "Mail <EMAIL_ADDRESS>."
    finally:
        running.stop()


def test_an_upstream_that_does_not_answer_is_a_502(support_policy: ge.Policy) -> None:
    with socket.socket() as sock:  # a port of 127.0.0.1 that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    def make_app() -> Any:
        url = f"http://127.0.0.1:{port}/v1"
        client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, timeout=5)
        return service.create_app(support_policy, client)

    running = Service(make_app)
    try:
        with httpx.Client(base_url=running.url, timeout=10) as client:
            response = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert response.status_code == 502
        assert response.json()["error"]["message"]
    finally:
        running.stop()
