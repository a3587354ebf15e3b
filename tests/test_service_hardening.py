"""examples/service.py: bounded and strict about its input, traced, and installable.

A body over the limit gets a 413 before it is read whole; every malformed body (not
JSON, NaN, deep nesting, wrong types, ``"stream": "false"``) a 400 that never reaches the
upstream; the upstream has a timeout; every call is written to a TraceStore under the
trace id the response carries in ``x-guardrails-trace-id``; each block is logged at INFO
(with no value); the ``[service]`` extra holds what the documented command needs.
"""

from __future__ import annotations

import ast
import logging
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from _fake_openai import MODEL, FakeOpenAI, chat_chunks, completion
from test_service import CHAT, EMAIL, MESSAGE, ROOT, SECRET, Service, service, sse_events

import guardrails_engine as ge

LIMIT = 4096


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def traced_policy(policies_dir: Path) -> ge.Policy:
    return ge.load_policy(policies_dir / "support-chat.yaml", on_trace=service.route_runs)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ge.TraceStore:
    return ge.TraceStore(tmp_path_factory.mktemp("traces") / "service.db")


@pytest.fixture(scope="module")
def svc(fake: FakeOpenAI, traced_policy: ge.Policy, store: ge.TraceStore) -> Iterator[Service]:
    def make_app() -> Any:
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
        return service.create_app(
            traced_policy, client, traces=store, max_body=LIMIT, upstream_timeout_s=0.5
        )

    running = Service(make_app)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def http(svc: Service, fake: FakeOpenAI) -> Iterator[httpx.Client]:
    fake.replies.clear()
    with httpx.Client(base_url=svc.url, timeout=10) as client:
        yield client
    assert not fake.replies, "a scripted reply was not used"


def _post(http: httpx.Client, content: bytes) -> httpx.Response:
    return http.post(
        "/v1/chat/completions", content=content, headers={"content-type": "application/json"}
    )


def _rows(store: ge.TraceStore, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    assert store.flush(10)
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


MALFORMED = {
    "not json": b"{model: 1",
    "not utf-8": b'{"model": "\xff"}',
    "empty": b"",
    "a list": b"[1, 2]",
    "NaN": b'{"model": "m", "messages": [], "temperature": NaN}',
    "Infinity": b'{"model": "m", "messages": [], "temperature": -Infinity}',
    "overflow to inf": b'{"model": "m", "messages": [], "temperature": 1e999}',
    "deep list": b'{"model": "m", "messages": [], "x": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    "deep past the stack": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"model": "m", "messages": [], "x": '
    + b'{"a": ' * 40
    + b"1"
    + b"}" * 40
    + b"}",
    "a lone surrogate": b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}',
    "a lone surrogate in a key": b'{"model": "m", "messages": [{"\\udfff": 1}]}',
    "model not a string": b'{"model": 3, "messages": []}',
    "no model": b'{"messages": []}',
    "messages a string": b'{"model": "m", "messages": "hi"}',
    "a message not an object": b'{"model": "m", "messages": [1]}',
    "stream a string": b'{"model": "m", "messages": [], "stream": "false"}',
    "stream a number": b'{"model": "m", "messages": [], "stream": 1}',
    "stream null": b'{"model": "m", "messages": [], "stream": null}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_every_malformed_body_is_a_400_that_never_reaches_the_upstream(
    http: httpx.Client, fake: FakeOpenAI, body: bytes
) -> None:
    if len(body) > LIMIT:  # the deepest body is for the default limit; shorter here
        body = body[: LIMIT // 2 - 1] + body[-(LIMIT // 2 - 1) :]
    before = len(fake.served)
    response = _post(http, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "proxy_error"
    assert len(fake.served) == before


def test_a_body_over_the_limit_is_a_413(http: httpx.Client, fake: FakeOpenAI) -> None:
    before = len(fake.served)
    big = b'{"model": "m", "messages": [], "x": "' + b"a" * LIMIT + b'"}'
    assert _post(http, big).status_code == 413

    def chunked() -> Iterator[bytes]:  # no content-length: counted as it comes
        yield big[:100]
        yield big[100:]

    response = http.post("/v1/chat/completions", content=chunked())
    assert response.status_code == 413
    assert "larger than 4096 bytes" in response.json()["error"]["message"]
    assert len(fake.served) == before


def test_the_default_limit_is_one_mebibyte(fake: FakeOpenAI, support_policy: ge.Policy) -> None:
    def make_app() -> Any:
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
        return service.create_app(support_policy, client)

    running = Service(make_app)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as http:
            filler = b"a" * (service.MAX_BODY - 60)
            body = b'{"model": "m", "messages": [], "x": "' + filler + b'"}'
            assert len(body) < service.MAX_BODY
            fake.add("json", completion([{"message": {"content": "ok"}}]))
            assert _post(http, body).status_code == 200
            over = body[:-2] + b"a" * 100 + b'"}'
            assert _post(http, over).status_code == 413
            deep = MALFORMED["deep past the stack"]
            assert _post(http, deep).status_code == 400
    finally:
        running.stop()


def test_stream_false_as_a_boolean_is_a_json_reply(http: httpx.Client, fake: FakeOpenAI) -> None:
    fake.add("json", completion([{"message": {"content": f"write to {EMAIL}"}}]))
    response = http.post("/v1/chat/completions", json={**CHAT, "stream": False})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "write to <EMAIL_ADDRESS>"
    assert fake.last().body["stream"] is False


def test_a_streamed_call_is_traced_under_the_id_in_the_header(
    http: httpx.Client, fake: FakeOpenAI, store: ge.TraceStore
) -> None:
    fake.add(
        "chat",
        chat_chunks(
            [(0, {"content": "mail jd"}), (0, {"content": "oe@example.com now"})],
            usage={"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
        ),
    )
    body = {**CHAT, "stream": True, "temperature": 0.2}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        trace_id = response.headers[service.TRACE_HEADER]
        events = list(sse_events(response))
    assert events[-1] == {"data": "[DONE]"}
    rows = _rows(
        store,
        "SELECT kind, request_model, response_model, decision, ending, input_tokens, "
        "output_tokens, finish_reasons, parameters, upstream_first_ms IS NOT NULL, "
        "first_out_ms IS NOT NULL FROM calls WHERE trace_id = ?",
        trace_id,
    )
    assert rows == [
        (
            "call",
            MODEL,
            MODEL,
            "repair",
            "completed",
            9,
            4,
            '["stop"]',
            '{"temperature": 0.2}',
            1,
            1,
        )
    ]
    assert _rows(
        store,
        "SELECT f.check_id, f.entity_type FROM findings f JOIN calls c ON c.id = f.call_id "
        "WHERE c.trace_id = ?",
        trace_id,
    ) == [("pii", "EMAIL_ADDRESS")]


def test_a_block_is_logged_at_info_with_its_reasons_and_no_value(
    http: httpx.Client, fake: FakeOpenAI, store: ge.TraceStore, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add("json", completion([{"message": {"content": f"the key is {SECRET}"}}]))
    response = http.post("/v1/chat/completions", json=CHAT)
    trace_id = response.headers[service.TRACE_HEADER]
    assert response.json()["choices"][0]["message"]["content"] == MESSAGE
    assert store.flush(10)
    lines = [r.getMessage() for r in caplog.records if r.name == "examples.service"]
    assert lines == [
        f"blocked trace_id={trace_id} model={MODEL!r} reasons: secrets: api-key at 11-44, blocked"
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "examples.service")
    assert SECRET not in caplog.text
    assert _rows(store, "SELECT decision FROM calls WHERE trace_id = ?", trace_id) == [("block",)]


def test_the_upstream_has_a_timeout(
    http: httpx.Client, fake: FakeOpenAI, store: ge.TraceStore
) -> None:
    fake.add("chat", chat_chunks([(0, {"content": "slow"}), (0, {"content": " reply"})]), delay=3)
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        trace_id = response.headers[service.TRACE_HEADER]
        events = list(sse_events(response))
    assert '"upstream_error"' in events[-1]["data"]
    assert fake.last(timeout=10).left  # the service gave up before the upstream ended
    assert _rows(store, "SELECT ending, error FROM calls WHERE trace_id = ?", trace_id) == [
        ("error", "APITimeoutError")
    ]


def test_the_service_extra_installs_what_the_command_needs() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    wanted = {r.split(">")[0].split("[")[0].split("=")[0] for r in extras["service"]}
    tree = ast.parse((ROOT / "examples/service.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
    stdlib = {"json", "logging", "math", "os", "collections", "contextlib", "contextvars"}
    stdlib |= {"functools", "typing", "__future__"}
    assert imported - stdlib - {"guardrails_engine"} <= wanted
    assert "uvicorn" in wanted  # the documented command


def test_captured_content_is_checked_before_it_is_stored(
    fake: FakeOpenAI, traced_policy: ge.Policy, tmp_path: Path
) -> None:
    store = ge.TraceStore(tmp_path / "captured.db")

    def make_app() -> Any:
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
        return service.create_app(traced_policy, client, traces=store, capture_content=True)

    running = Service(make_app)
    try:
        with httpx.Client(base_url=running.url, timeout=10) as http:
            fake.add("chat", chat_chunks([(0, {"content": "Sure, "}), (0, {"content": EMAIL})]))
            body = {**CHAT, "stream": True}
            body["messages"] = [{"role": "user", "content": f"mail {EMAIL}, key {SECRET}"}]
            with http.stream("POST", "/v1/chat/completions", json=body) as response:
                trace_id = response.headers[service.TRACE_HEADER]
                list(sse_events(response))
    finally:
        running.stop()  # (closes the store)
    conn = sqlite3.connect(store.path)
    rows = conn.execute("SELECT prompt, output FROM calls WHERE trace_id = ?", (trace_id,))
    assert rows.fetchall() == [(MESSAGE, "Sure, <EMAIL_ADDRESS>")]  # the key blocks the prompt
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert EMAIL not in dump and SECRET not in dump


def test_from_env_traces_to_the_file_it_names_and_shows_blocks(
    monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, tmp_path: Path
) -> None:
    path = tmp_path / "env-traces.db"
    monkeypatch.setenv("GUARDRAILS_TRACES", str(path))
    monkeypatch.setenv("UPSTREAM_BASE_URL", fake.base_url)
    monkeypatch.setenv("GUARDRAILS_POLICY", str(ROOT / "policies/support-chat.yaml"))
    monkeypatch.setenv("GUARDRAILS_MAX_BODY", "100")
    running = Service(service.from_env.__wrapped__)
    try:
        fake.add("json", completion([{"message": {"content": f"key {SECRET}"}}]))
        with httpx.Client(base_url=running.url, timeout=10) as http:
            big = b'{"model": "m", "messages": [], "x": "' + b"a" * 100 + b'"}'
            assert _post(http, big).status_code == 413  # GUARDRAILS_MAX_BODY
            response = http.post("/v1/chat/completions", json=CHAT)
            assert response.status_code == 200
        trace_id = response.headers[service.TRACE_HEADER]
    finally:
        running.stop()  # closes the store
    log = logging.getLogger("examples.service")
    assert log.level == logging.INFO and log.handlers  # shown without any set-up
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT decision FROM calls WHERE trace_id = ?", (trace_id,)).fetchall()
    conn.close()
    assert rows == [("block",)]
