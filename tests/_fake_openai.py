"""A local fake of the OpenAI HTTP API for the adapter tests (real wire format).

Replies are scripted: each request takes the next one of ``FakeOpenAI.replies``.  Streams
are Server-Sent Events as the API sends them: Chat Completions ``data: {...}`` lines ending
with ``data: [DONE]``, Responses ``event: <type>`` + ``data: {...}``.  Every stream is
bounded (its events, and a deadline); the server records, per request, how many events it
had sent when the client left (``Served.sent``, ``Served.left``).  Bound to 127.0.0.1 on
port 0; started and stopped by a fixture.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

#: No stream of the fake lasts longer than this (seconds).
DEADLINE = 10.0


@dataclass
class Reply:
    """One scripted reply: ``kind`` is ``chat`` / ``responses`` (streamed) or ``json``."""

    kind: str
    payload: Any
    delay: float = 0.0  # seconds between two events (and the time to notice a leave)


@dataclass
class Served:
    """What the server saw of one request."""

    path: str
    body: dict[str, Any]
    total: int = 0  # events in the script
    sent: int = 0  # events sent before the client left (or all of them)
    left: bool = False  # the client went away before the end
    done: threading.Event = field(default_factory=threading.Event)


class FakeOpenAI:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.served: list[Served] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- scripting -----------------------------------------------------------------------
    def add(self, kind: str, payload: Any, delay: float = 0.0) -> None:
        self.replies.append(Reply(kind, payload, delay))

    def last(self, timeout: float = 5.0) -> Served:
        """The last request, once its reply has ended (or the client left)."""
        served = self.served[-1]
        assert served.done.wait(timeout), "the fake server's reply did not end"
        return served

    # -- the ASGI app --------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        served = Served(scope["path"], json.loads(raw or b"{}"))
        self.served.append(served)
        try:
            reply = self.replies.popleft()
        except IndexError:
            await _json(send, 500, {"error": {"message": "no scripted reply"}})
            served.done.set()
            return
        try:
            if reply.kind == "json":
                await _json(send, 200, reply.payload)
                return
            await self._stream(reply, served, receive, send)
        finally:
            served.done.set()

    async def _stream(self, reply: Reply, served: Served, receive: Any, send: Any) -> None:
        events = [_sse(reply.kind, e) for e in reply.payload]
        served.total = len(events)
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        watcher = asyncio.ensure_future(watch())
        deadline = time.monotonic() + DEADLINE
        try:
            for payload in events:
                if gone.is_set() or time.monotonic() > deadline:
                    break
                await send({"type": "http.response.body", "body": payload, "more_body": True})
                served.sent += 1
                if reply.delay:
                    try:
                        await asyncio.wait_for(gone.wait(), reply.delay)
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(0)
            if not gone.is_set():
                tail = b"data: [DONE]\n\n" if reply.kind == "chat" else b""
                await send({"type": "http.response.body", "body": tail, "more_body": False})
                # A client that closes right after the last event is not "leaving early".
        finally:
            served.left = gone.is_set()
            watcher.cancel()

    # -- running -------------------------------------------------------------------------
    def start(self) -> None:
        config = uvicorn.Config(
            self, host="127.0.0.1", port=0, log_level="error", lifespan="off", http="h11"
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, name="fake-openai", daemon=True)
        self._thread.start()
        began = time.monotonic()
        while not server.started:
            if time.monotonic() - began > 10 or not self._thread.is_alive():
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            assert not self._thread.is_alive(), "the fake OpenAI server did not stop"


def serving() -> Iterator[FakeOpenAI]:
    """A started fake, stopped when the generator is closed (``yield from`` in a fixture)."""
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _json(send: Any, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


def _sse(kind: str, event: dict[str, Any]) -> bytes:
    data = json.dumps(event)
    if kind == "responses":
        return f"event: {event['type']}\ndata: {data}\n\n".encode()
    return f"data: {data}\n\n".encode()


# -- building the API's payloads ------------------------------------------------------------
CREATED = 1_700_000_000
MODEL = "gpt-fake"


def chat_chunks(
    deltas: list[tuple[int, dict[str, Any]]],
    *,
    finish: dict[int, str] | None = None,
    usage: dict[str, int] | None = None,
    logprobs: bool = False,
) -> list[dict[str, Any]]:
    """Chunks of a streamed chat completion: a role chunk per choice, ``deltas`` (choice
    index, delta) in order, a finish chunk per choice, and a usage chunk if given."""
    finish = finish if finish is not None else {i: "stop" for i, _ in deltas}
    indices = sorted({i for i, _ in deltas} | set(finish))

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake1",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_fake",
            "choices": choices,
            **extra,
        }

    def lp(delta: dict[str, Any]) -> dict[str, Any] | None:
        text = delta.get("content")
        if not logprobs or not text:
            return None
        return {"content": [{"token": text, "logprob": -0.5, "bytes": None, "top_logprobs": []}]}

    out = [
        chunk(
            [
                {
                    "index": i,
                    "delta": {"role": "assistant", "content": ""},
                    "finish_reason": None,
                    "logprobs": None,
                }
            ]
        )
        for i in indices
    ]
    for i, delta in deltas:
        out.append(
            chunk([{"index": i, "delta": delta, "finish_reason": None, "logprobs": lp(delta)}])
        )
    for i in indices:
        if i in finish:
            out.append(
                chunk([{"index": i, "delta": {}, "finish_reason": finish[i], "logprobs": None}])
            )
    if usage is not None:
        out.append(chunk([], usage=usage))
    return out


def completion(
    choices: list[dict[str, Any]], *, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    """A non-streamed chat completion with these ``message``s (and finish reasons)."""
    return {
        "id": "chatcmpl-fake2",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", **c["message"]},
                "finish_reason": c.get("finish_reason", "stop"),
                "logprobs": c.get("logprobs"),
            }
            for i, c in enumerate(choices)
        ],
        "usage": usage or {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }


def response_obj(output: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {
        "id": "resp_fake1",
        "object": "response",
        "created_at": CREATED,
        "model": MODEL,
        "status": status,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 5,
            "output_tokens": 7,
            "total_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def message_item(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": parts,
    }


def text_part(text: str, annotations: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}


def response_events(items: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Events of a streamed response.  ``items``: ``("text", [deltas])``,
    ``("refusal", [deltas])`` or ``("call", (name, [argument deltas]))``, one output item
    each (a message with one content part, or a function call)."""
    seq = iter(range(10_000))
    events: list[dict[str, Any]] = [
        {
            "type": "response.created",
            "sequence_number": next(seq),
            "response": response_obj([], "in_progress"),
        },
        {
            "type": "response.in_progress",
            "sequence_number": next(seq),
            "response": response_obj([], "in_progress"),
        },
    ]
    done_items: list[dict[str, Any]] = []
    for oi, (kind, body) in enumerate(items):
        if kind == "call":
            name, deltas = body
            item = {
                "id": f"fc_{oi}",
                "type": "function_call",
                "call_id": f"call_{oi}",
                "name": name,
                "arguments": "",
                "status": "in_progress",
            }
            events.append(
                {
                    "type": "response.output_item.added",
                    "sequence_number": next(seq),
                    "output_index": oi,
                    "item": item,
                }
            )
            for d in deltas:
                events.append(
                    {
                        "type": "response.function_call_arguments.delta",
                        "sequence_number": next(seq),
                        "item_id": item["id"],
                        "output_index": oi,
                        "delta": d,
                    }
                )
            args = "".join(deltas)
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "sequence_number": next(seq),
                    "item_id": item["id"],
                    "output_index": oi,
                    "arguments": args,
                }
            )
            done = {**item, "arguments": args, "status": "completed"}
        else:
            item_id = f"msg_{oi}"
            text = "".join(body)
            empty: dict[str, Any] = (
                text_part("") if kind == "text" else {"type": "refusal", "refusal": ""}
            )
            full: dict[str, Any] = (
                text_part(text) if kind == "text" else {"type": "refusal", "refusal": text}
            )
            events.append(
                {
                    "type": "response.output_item.added",
                    "sequence_number": next(seq),
                    "output_index": oi,
                    "item": message_item(item_id, [], "in_progress"),
                }
            )
            events.append(
                {
                    "type": "response.content_part.added",
                    "sequence_number": next(seq),
                    "item_id": item_id,
                    "output_index": oi,
                    "content_index": 0,
                    "part": empty,
                }
            )
            ev = "response.output_text" if kind == "text" else "response.refusal"
            for d in body:
                e = {
                    "type": f"{ev}.delta",
                    "sequence_number": next(seq),
                    "item_id": item_id,
                    "output_index": oi,
                    "content_index": 0,
                    "delta": d,
                }
                if kind == "text":
                    e["logprobs"] = []
                events.append(e)
            end = {
                "type": f"{ev}.done",
                "sequence_number": next(seq),
                "item_id": item_id,
                "output_index": oi,
                "content_index": 0,
            }
            if kind == "text":
                end.update(text=text, logprobs=[])
            else:
                end["refusal"] = text
            events.append(end)
            events.append(
                {
                    "type": "response.content_part.done",
                    "sequence_number": next(seq),
                    "item_id": item_id,
                    "output_index": oi,
                    "content_index": 0,
                    "part": full,
                }
            )
            done = message_item(item_id, [full], "completed")
        events.append(
            {
                "type": "response.output_item.done",
                "sequence_number": next(seq),
                "output_index": oi,
                "item": done,
            }
        )
        done_items.append(done)
    events.append(
        {
            "type": "response.completed",
            "sequence_number": next(seq),
            "response": response_obj(done_items),
        }
    )
    return events
