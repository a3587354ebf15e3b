"""A local fake of both providers whose answers are scripted per model and prompt
(model evaluation: many concurrent calls, a judge), speaking the real wire formats:
OpenAI Chat Completions at ``/v1/chat/completions`` (streamed SSE with a usage chunk,
or JSON) and Anthropic Messages at ``/v1/messages`` (SSE events, or JSON).

``FakeModels(answer)`` where ``answer(provider, model, body) -> Scripted``.  Bound to
127.0.0.1 on port 0, every reply bounded in time; started and stopped by the caller.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from _fake_anthropic import Text, message_json, sse_events
from _fake_openai import chat_chunks, completion

#: No reply lasts longer than this (seconds), whatever a script says.
DEADLINE = 10.0


@dataclass(frozen=True)
class Scripted:
    """An answer: its text in ``chunks``, or an HTTP ``status`` error; ``delay``
    seconds before the first byte."""

    chunks: tuple[str, ...] = ()
    status: int = 200
    delay: float = 0.0
    input_tokens: int = 11
    output_tokens: int = 7


def say(text: str, *, size: int = 4, delay: float = 0.0) -> Scripted:
    return Scripted(
        tuple(text[i : i + size] for i in range(0, len(text), size)) or ("",), delay=delay
    )


Answer = Callable[[str, str, dict[str, Any]], Scripted]


def prompt_of(body: dict[str, Any]) -> str:
    """The last user message of a request, as text."""
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else json.dumps(c)
    return ""


class FakeModels:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = json.loads(raw or b"{}")
        path = scope["path"]
        provider = "anthropic" if path.endswith("/messages") else "openai"
        with self._lock:
            self.requests.append((provider, body))
        script = self.answer(provider, str(body.get("model")), body)
        await asyncio.sleep(min(script.delay, DEADLINE))
        if script.status != 200:
            error = {"type": "error", "error": {"type": "api_error", "message": "scripted"}}
            await _send(send, script.status, "application/json", json.dumps(error).encode())
            return
        usage = {
            "prompt_tokens": script.input_tokens,
            "completion_tokens": script.output_tokens,
            "total_tokens": script.input_tokens + script.output_tokens,
        }
        text = "".join(script.chunks)
        if provider == "openai":
            if body.get("stream"):
                chunks = chat_chunks([(0, {"content": c}) for c in script.chunks], usage=usage)
                frames = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
                await _stream(send, frames)
            else:
                reply = completion([{"message": {"content": text}}], usage=usage)
                await _send(send, 200, "application/json", json.dumps(reply).encode())
        else:
            tokens = {"input_tokens": script.input_tokens, "output_tokens": script.output_tokens}
            if body.get("stream"):
                events = sse_events([Text(script.chunks)], **tokens)
                frames = [f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events]
                await _stream(send, frames)
            else:
                reply = message_json([Text(script.chunks)], **tokens)
                await _send(send, 200, "application/json", json.dumps(reply).encode())

    def start(self) -> FakeModels:
        config = uvicorn.Config(self, host="127.0.0.1", port=0, log_level="error", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the fake server did not start"
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


async def _send(send: Any, status: int, ctype: str, data: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype.encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _stream(send: Any, frames: list[str]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    for frame in frames:
        await send({"type": "http.response.body", "body": frame.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b""})
