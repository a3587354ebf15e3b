"""A guarded OpenAI-compatible proxy: Chat Completions in, guarded Server-Sent Events out.

Run it from the repository's root (``pip install 'guardrails-engine[service]'`` installs
openai, starlette and uvicorn)::

    UPSTREAM_BASE_URL=http://127.0.0.1:8001/v1 UPSTREAM_API_KEY=... uvicorn examples.service:app

``UPSTREAM_BASE_URL`` (default ``https://api.openai.com/v1``), ``UPSTREAM_API_KEY``,
``GUARDRAILS_POLICY`` (default ``policies/support-chat.yaml``), ``GUARDRAILS_TRACES`` (the
trace database, default ``guardrails-traces.db``; empty: none), ``GUARDRAILS_MAX_BODY`` (bytes,
default 1 MiB), ``UPSTREAM_TIMEOUT_S`` (default 60) and ``GUARDRAILS_CAPTURE_CONTENT`` (``1``:
keep prompts and replies in the traces, after the policy's pii and content checks) are read,
and the policy loaded, once, when uvicorn loads ``app``.  No authentication of its own: put it
behind yours.

A request body larger than the limit gets a 413; a body that is not a JSON object with a
string ``model``, a list of message objects and (if given) a boolean ``stream``, or that holds
``NaN``/``Infinity`` or nests deeper than 32 levels, gets a 400.  The upstream gets at most
``UPSTREAM_TIMEOUT_S`` per request (then a 504).

Every call is traced (``ge.TraceStore``; ``guardrails-engine traces guardrails-traces.db``
reports on it) under a trace id sent back in the ``x-guardrails-trace-id`` response header;
each block is logged at INFO (logger ``examples.service``, on by default) with that id and
the reasons (which check, which entity: never the value).

``POST /v1/chat/completions`` goes to the upstream as it came; the reply comes back guarded in
the OpenAI wire format: a ``chat.completion``, or (``"stream": true``) ``data: {chunk}`` events
ending with ``data: [DONE]``.  A block shows the block message as content, then the API's own
end, ``finish_reason: "content_filter"``, then ``data: [DONE]``.  To tell it from the model's own
filter, the chunk (or ``chat.completion``) of that end also carries ``"guardrails": {"blocked":
true, "message": ...}``, an extra field that OpenAI clients ignore (the Python SDK keeps it in
``chunk.model_extra``); not an ``event:``, which the SDK would hand its caller as a chunk with
``choices=None``.  Why it blocked is not sent (it would help probe the policy): it is in the
call's trace (under the id of the ``x-guardrails-trace-id`` header) and in the service's log.
When the client leaves mid-stream, the response is cancelled and the guard closed, which closes
the upstream's HTTP response: the model stops generating.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
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
TRACE_HEADER = "x-guardrails-trace-id"
MAX_BODY = 1 << 20  # bytes
MAX_DEPTH = 32  # nesting of the request body
UPSTREAM_TIMEOUT_S = 60.0
log = logging.getLogger("examples.service")


class BadBody(ValueError):
    """The request body is not what the API takes (a 400 or a 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _no_constants(name: str) -> None:
    raise BadBody(f"{name} is not JSON")


def _depth(value: object) -> int:
    """How deeply ``value`` nests (iteratively: a deep body cannot exhaust the stack)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
            todo.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request as a dict, checked: what the API takes, or :class:`BadBody`."""
    try:
        body = json.loads(raw, parse_constant=_no_constants)
    except BadBody:
        raise
    except RecursionError:
        raise BadBody(f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # JSON errors and bodies that are not UTF-8
        raise BadBody("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadBody("expected a JSON object with 'model' and 'messages'")
    if _depth(body) > MAX_DEPTH:
        raise BadBody(f"the body nests deeper than {MAX_DEPTH} levels")
    if not isinstance(body.get("model"), str):
        raise BadBody("'model' must be a string")
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise BadBody("'messages' must be a list of objects")
    if not isinstance(body.get("stream", False), bool):
        raise BadBody("'stream' must be true or false")
    _check_values(body)
    return body


def _check_values(value: object) -> None:
    """Numbers are finite (``1e999`` parses as inf) and strings are Unicode text (a lone
    surrogate such as ``"\\ud800"`` parses, and could not be sent on as UTF-8)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise BadBody("numbers must be finite")
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadBody("strings must be Unicode text (no lone surrogates)") from None
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or :class:`BadBody` (413) as soon as it is longer than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadBody(f"the body is larger than {limit} bytes", 413)
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise BadBody(f"the body is larger than {limit} bytes", 413)
        parts.append(part)
    return b"".join(parts)


class Call:
    """The call being served: its recorder, and how many of its runs ended."""

    def __init__(self, recorder: ge.CallRecorder) -> None:
        self.recorder = recorder
        self.runs = 0


_CALL: ContextVar[Call | None] = ContextVar("service_call", default=None)


def route_runs(trace: Any) -> None:
    """The policy's ``on_trace``: a run's trace goes into the call being served.

    Until the adapters take ``trace_id=``/``on_trace=`` themselves, the service finds the
    call through a context variable (the response is sent in the request's task, or in
    tasks that copy its context); runs are numbered in the order they end.
    """
    call = _CALL.get()
    if call is not None and isinstance(trace, ge.Trace):
        call.recorder.run_ended(trace, part="run", index=call.runs)
        call.runs += 1


def log_block(record: ge.CallTrace) -> None:
    """One INFO line per blocked call: the trace id, the model and the reasons (no values)."""
    if record.decision != "block":
        return
    reasons = [  # a reason names its check, what it found and where: never the value
        f["reason"] for run in record.runs for f in run.trace.findings if f["action"] == "block"
    ]
    log.info(
        "blocked trace_id=%s model=%r reasons: %s",  # %r: a model name cannot forge lines
        record.trace_id,
        record.request_model,
        "; ".join(reasons) or record.ending,
    )


def sse(data: object) -> bytes:
    """One Server-Sent Event: ``data: <json>`` (or ``data: [DONE]``)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "proxy_error"}}, status, headers)


class Upstream:
    """The SDK stream as the guard reads it, noting the choices the model's own filter
    ended, so that only the guard's blocks are marked, and what the call's trace needs
    (chunks, id, model, usage, finish reasons).  ``close()`` closes the SDK stream."""

    def __init__(self, stream: AsyncStream[ChatCompletionChunk], recorder: ge.CallRecorder) -> None:
        self.stream = stream
        self.recorder = recorder
        self.filtered: set[int] = set()

    def __aiter__(self) -> Upstream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        chunk = await self.stream.__anext__()
        rec = self.recorder
        rec.upstream_chunk()
        rec.response(id=chunk.id, model=chunk.model)
        for c in chunk.choices:
            rec.finish_reason(c.finish_reason)
        if chunk.usage is not None:
            rec.usage(
                input_tokens=chunk.usage.prompt_tokens, output_tokens=chunk.usage.completion_tokens
            )
        self.filtered.update(c.index for c in chunk.choices if c.finish_reason == FILTERED)
        return chunk

    async def close(self) -> None:
        await self.stream.close()


def create_app(
    policy: ge.Policy,
    client: AsyncOpenAI,
    *,
    traces: ge.TraceStore | None = None,
    max_body: int = MAX_BODY,
    upstream_timeout_s: float = UPSTREAM_TIMEOUT_S,
    capture_content: bool = False,
) -> Starlette:
    """The service: guard with ``policy`` what ``client`` (pointed at the upstream) answers.

    ``traces`` receives each call's trace; ``max_body`` bounds a request body (bytes);
    ``upstream_timeout_s`` bounds each upstream request; ``capture_content`` keeps the
    prompt and the reply in the trace, after the policy's pii and content checks.  The app
    owns the client and the trace store: both are closed when the app shuts down.  Blocks
    are logged at INFO.  Load ``policy`` with ``on_trace=route_runs`` so that each run's
    decision joins its call's trace (:func:`from_env` does).
    """
    mark = {"blocked": True, "message": policy.block_message}
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)

    def on_call(record: ge.CallTrace) -> None:
        if traces is not None:
            traces(record)
        log_block(record)

    async def events(
        guarded: ge_openai.GuardedStream[ChatCompletionChunk], upstream: Upstream
    ) -> AsyncIterator[bytes]:
        ending: str | None = None
        failed: BaseException | None = None
        try:
            async with guarded:  # closes the upstream at the end, at a block, on cancellation
                async for chunk in guarded:
                    data = chunk.model_dump(mode="json", exclude_unset=True)
                    if any(
                        c.finish_reason == FILTERED and c.index not in upstream.filtered
                        for c in chunk.choices
                    ):
                        data["guardrails"] = mark
                    text = "".join(c.delta.content or "" for c in chunk.choices)
                    if text:
                        upstream.recorder.released(text)
                    yield sse(data)
        except openai.APIError as exc:  # the upstream failed mid-stream: say so as the API does
            failed = exc
            yield sse({"error": {"message": exc.message, "type": "upstream_error"}})
            return
        except GeneratorExit:  # the client left
            ending = "closed"
            raise
        except BaseException:
            ending = "cancelled"
            raise
        finally:
            upstream.recorder.finish(ending=ending, error=failed)
        yield sse("[DONE]")

    async def chat_completions(request: Request) -> Response:
        try:
            body = parse_body(await read_body(request, max_body))
        except BadBody as exc:
            return error(exc.status, str(exc))
        model, messages = body.pop("model"), body.pop("messages")
        stream = body.pop("stream", False)
        recorder = ge.CallRecorder(
            policy,
            provider="openai",
            request_model=model,
            streamed=stream,
            parameters=body,
            on_trace=on_call,
            capture_content=capture_content,
        )
        recorder.prompt(
            "\n".join(m["content"] for m in messages if isinstance(m.get("content"), str))
        )  # (kept only when capturing, and checked first)
        headers = {TRACE_HEADER: recorder.trace_id}
        _CALL.set(Call(recorder))
        try:  # every other field goes to the upstream as it came
            reply = await client.chat.completions.create(
                model=model,
                messages=messages,
                stream=stream,
                extra_body=body,
                timeout=upstream_timeout_s,
            )
        except openai.APIStatusError as exc:
            recorder.finish(error=exc)
            return error(exc.status_code, exc.message, headers)
        except openai.APITimeoutError as exc:
            recorder.finish(error=exc)
            return error(504, "the upstream did not answer in time", headers)
        except openai.APIError as exc:  # no answer from the upstream
            recorder.finish(error=exc)
            return error(502, exc.message, headers)
        if isinstance(reply, AsyncStream):
            upstream = Upstream(reply, recorder)
            guarded = ge_openai.guard(policy, upstream)
            # The guard is also closed after the response: when the client left while an
            # event was being sent, or before the first one.
            return StreamingResponse(
                events(guarded, upstream),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", **headers},
                background=BackgroundTask(guarded.aclose),
            )
        recorder.response(id=reply.id, model=reply.model)
        if reply.usage is not None:
            recorder.usage(
                input_tokens=reply.usage.prompt_tokens,
                output_tokens=reply.usage.completion_tokens,
            )
        try:
            checked = await ge_openai.guard_reply(policy, reply)
        except BaseException as exc:
            recorder.finish(error=exc)
            raise
        for c in checked.choices:
            recorder.finish_reason(c.finish_reason)
        recorder.released("".join(c.message.content or "" for c in checked.choices))
        recorder.finish()
        data = checked.model_dump(mode="json", exclude_unset=True)
        if any(
            c.finish_reason == FILTERED != u.finish_reason
            for c, u in zip(checked.choices, reply.choices, strict=True)
        ):
            data["guardrails"] = mark
        return JSONResponse(data, headers=headers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.close()
        if traces is not None:
            await traces.aclose()

    routes = [Route("/v1/chat/completions", chat_completions, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


@cache
def from_env() -> Starlette:
    """The service as the environment configures it (built once)."""
    policy = ge.load_policy(
        os.environ.get("GUARDRAILS_POLICY", "policies/support-chat.yaml"), on_trace=route_runs
    )
    timeout = float(os.environ.get("UPSTREAM_TIMEOUT_S", UPSTREAM_TIMEOUT_S))
    client = AsyncOpenAI(
        base_url=os.environ.get("UPSTREAM_BASE_URL", "https://api.openai.com/v1"),
        api_key=os.environ.get("UPSTREAM_API_KEY", "none"),  # a local server may want none
        timeout=timeout,
    )
    path = os.environ.get("GUARDRAILS_TRACES", "guardrails-traces.db")
    if not log.handlers:  # uvicorn configures its own loggers only: show blocks on stderr
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        log.addHandler(handler)
    return create_app(
        policy,
        client,
        traces=ge.TraceStore(path) if path else None,
        max_body=int(os.environ.get("GUARDRAILS_MAX_BODY", MAX_BODY)),
        upstream_timeout_s=timeout,
        capture_content=os.environ.get("GUARDRAILS_CAPTURE_CONTENT", "") == "1",
    )


def __getattr__(name: str) -> Any:
    # ``app`` is built when uvicorn asks for it, so importing create_app costs nothing.
    if name == "app":
        return from_env()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
