"""A guarded OpenAI-compatible proxy: Chat Completions in, guarded Server-Sent Events out.

Run it from the repository's root (needs the ``[openai]`` extra, starlette and uvicorn)::

    UPSTREAM_BASE_URL=http://127.0.0.1:8001/v1 UPSTREAM_API_KEY=... uvicorn examples.service:app

``UPSTREAM_BASE_URL`` (default ``https://api.openai.com/v1``), ``UPSTREAM_API_KEY`` and
``GUARDRAILS_POLICY`` (default ``policies/support-chat.yaml``) are read, and the policy loaded,
once, when uvicorn loads ``app``.  No authentication of its own: put it behind yours.

``POST /v1/chat/completions`` goes to the upstream as it came; the reply comes back guarded in
the OpenAI wire format: a ``chat.completion``, or (``"stream": true``) ``data: {chunk}`` events
ending with ``data: [DONE]``.  A block shows the block message as content, then the API's own
end, ``finish_reason: "content_filter"``, then ``data: [DONE]``.  To tell it from the model's own
filter, the chunk (or ``chat.completion``) of that end also carries ``"guardrails": {"blocked":
true, "message": ...}``, an extra field that OpenAI clients ignore (the Python SDK keeps it in
``chunk.model_extra``); not an ``event:``, which the SDK would hand its caller as a chunk with
``choices=None``.  Why it blocked is not sent (it would help probe the policy): it is in the
decision trace (logger ``guardrails_engine``, INFO).  When the client leaves mid-stream, the
response is cancelled and the guard closed, which closes the upstream's HTTP response: the model
stops generating.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import guardrails_engine as ge
from guardrails_engine import openai as ge_openai

FILTERED = "content_filter"


def sse(data: object) -> bytes:
    """One Server-Sent Event: ``data: <json>`` (or ``data: [DONE]``)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "proxy_error"}}, status)


class Upstream:
    """The SDK stream as the guard reads it, noting the choices the model's own filter
    ended, so that only the guard's blocks are marked.  ``close()`` closes the SDK stream."""

    def __init__(self, stream: AsyncStream[ChatCompletionChunk]) -> None:
        self.stream = stream
        self.filtered: set[int] = set()

    def __aiter__(self) -> Upstream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        chunk = await self.stream.__anext__()
        self.filtered.update(c.index for c in chunk.choices if c.finish_reason == FILTERED)
        return chunk

    async def close(self) -> None:
        await self.stream.close()


def create_app(policy: ge.Policy, client: AsyncOpenAI) -> Starlette:
    """The service: guard with ``policy`` what ``client`` (pointed at the upstream) answers.
    The app owns the client: it is closed when the app shuts down."""
    mark = {"blocked": True, "message": policy.block_message}

    async def events(
        guarded: ge_openai.GuardedStream[ChatCompletionChunk], upstream: Upstream
    ) -> AsyncIterator[bytes]:
        try:
            async with guarded:  # closes the upstream at the end, at a block, on cancellation
                async for chunk in guarded:
                    data = chunk.model_dump(mode="json", exclude_unset=True)
                    if any(
                        c.finish_reason == FILTERED and c.index not in upstream.filtered
                        for c in chunk.choices
                    ):
                        data["guardrails"] = mark
                    yield sse(data)
        except openai.APIError as exc:  # the upstream failed mid-stream: say so as the API does
            yield sse({"error": {"message": exc.message, "type": "upstream_error"}})
            return
        yield sse("[DONE]")

    async def chat_completions(request: Request) -> Response:
        try:
            body = await request.json()
            model, messages = body.pop("model"), body.pop("messages")
        except (ValueError, KeyError, TypeError, AttributeError):
            return error(400, "expected a JSON object with 'model' and 'messages'")
        stream = bool(body.pop("stream", False))
        try:  # every other field goes to the upstream as it came
            reply = await client.chat.completions.create(
                model=model, messages=messages, stream=stream, extra_body=body
            )
        except openai.APIStatusError as exc:
            return error(exc.status_code, exc.message)
        except openai.APIError as exc:  # no answer from the upstream
            return error(502, exc.message)
        if isinstance(reply, AsyncStream):
            upstream = Upstream(reply)
            guarded = ge_openai.guard(policy, upstream)
            # The guard is also closed after the response: when the client left while an
            # event was being sent, or before the first one.
            return StreamingResponse(
                events(guarded, upstream),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
                background=BackgroundTask(guarded.aclose),
            )
        checked = await ge_openai.guard_reply(policy, reply)
        data = checked.model_dump(mode="json", exclude_unset=True)
        if any(
            c.finish_reason == FILTERED != u.finish_reason
            for c, u in zip(checked.choices, reply.choices, strict=True)
        ):
            data["guardrails"] = mark
        return JSONResponse(data)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.close()

    routes = [Route("/v1/chat/completions", chat_completions, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


@cache
def from_env() -> Starlette:
    """The service as the environment configures it (built once)."""
    policy = ge.load_policy(os.environ.get("GUARDRAILS_POLICY", "policies/support-chat.yaml"))
    client = AsyncOpenAI(
        base_url=os.environ.get("UPSTREAM_BASE_URL", "https://api.openai.com/v1"),
        api_key=os.environ.get("UPSTREAM_API_KEY", "none"),  # a local server may want none
    )
    return create_app(policy, client)


def __getattr__(name: str) -> Any:
    # ``app`` is built when uvicorn asks for it, so importing create_app costs nothing.
    if name == "app":
        return from_env()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
