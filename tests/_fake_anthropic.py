"""A fake Anthropic Messages API on 127.0.0.1 that speaks the real wire format.

The tests point the real SDK clients at it (``base_url=fake.url``).  Each request
takes the next queued :class:`Reply`; a streamed reply is sent as Server-Sent Events
(``event: message_start\\ndata: {...}\\n\\n`` ...), one event per write, and the
server waits ``delay`` seconds after each event for the client to leave.  Each
request is recorded as an :class:`Exchange`: how many events had been sent when the
client left (``left_after``), or that the whole reply was sent (``completed``).

Every loop here is bounded: a reply has a finite list of events, each wait has a
timeout, a request has a deadline, and the server stops within seconds.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn

__all__ = [
    "Exchange",
    "FakeAnthropic",
    "Reply",
    "Text",
    "Thinking",
    "Tool",
    "message_json",
    "serving",
    "sse_events",
]

#: No request may take longer than this on the server (seconds).
REQUEST_DEADLINE = 20.0
MODEL = "claude-fake-1"


@dataclass(frozen=True)
class Text:
    """A text block, streamed as these ``text_delta`` chunks."""

    chunks: Sequence[str]


@dataclass(frozen=True)
class Tool:
    """A ``tool_use`` block, its arguments streamed as these ``partial_json`` chunks."""

    name: str
    chunks: Sequence[str]
    id: str = "toolu_01FAKE"


@dataclass(frozen=True)
class Thinking:
    """A ``thinking`` block (passed through by the adapter)."""

    chunks: Sequence[str]
    signature: str = "sig-fake"


Block = Text | Tool | Thinking
Event = tuple[str, dict[str, Any]]


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 5,
    }


def sse_events(
    blocks: Sequence[Block],
    *,
    msg_id: str = "msg_01FAKE",
    stop_reason: str = "end_turn",
    input_tokens: int = 21,
    output_tokens: int = 34,
    ping: bool = True,
) -> list[Event]:
    """The events of a streamed reply, in the order the API sends them."""
    message = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(input_tokens, 1),
    }
    events: list[Event] = [("message_start", {"type": "message_start", "message": message})]
    if ping:
        events.append(("ping", {"type": "ping"}))
    for index, block in enumerate(blocks):
        start: dict[str, Any]
        if isinstance(block, Text):
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in block.chunks]
        elif isinstance(block, Tool):
            start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": c} for c in block.chunks]
        else:
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": c} for c in block.chunks]
            deltas.append({"type": "signature_delta", "signature": block.signature})
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        for delta in deltas:
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def message_json(
    blocks: Sequence[Block],
    *,
    msg_id: str = "msg_01FAKE",
    stop_reason: str = "end_turn",
    input_tokens: int = 21,
    output_tokens: int = 34,
) -> dict[str, Any]:
    """The body of a non-streamed reply with the same blocks."""
    content: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, Text):
            content.append({"type": "text", "text": "".join(block.chunks)})
        elif isinstance(block, Tool):
            content.append(
                {
                    "type": "tool_use",
                    "id": block.id,
                    "name": block.name,
                    "input": json.loads("".join(block.chunks)),
                }
            )
        else:
            content.append(
                {
                    "type": "thinking",
                    "thinking": "".join(block.chunks),
                    "signature": block.signature,
                }
            )
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(input_tokens, output_tokens),
    }


@dataclass
class Reply:
    """What the server answers to one request: ``events`` if the request asks for a
    stream, else ``message``; ``delay`` seconds between events, from the ``delay_from``-th
    event sent on (the first ones come at once)."""

    events: list[Event] = field(default_factory=list)
    message: dict[str, Any] | None = None
    delay: float = 0.0
    delay_from: int = 1


@dataclass
class Exchange:
    """One request as the server saw it."""

    request: dict[str, Any] = field(default_factory=dict)
    sent: int = 0  # events written so far
    left_after: int | None = None  # events written when the client left
    completed: bool = False  # every event (or the message) was written
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float = 5.0) -> Exchange:
        """Wait until the server has finished with this request."""
        if not self.done.wait(timeout):
            raise AssertionError("the fake server did not finish the request in time")
        return self


def _frame(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic:
    """The fake server: ``start()``, queue replies with ``reply()``, ``stop()``."""

    def __init__(self) -> None:
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- test side ------------------------------------------------------------------
    def reply(self, reply: Reply) -> None:
        """Queue the answer to the next request."""
        with self._lock:
            self._replies.append(reply)

    def stream(self, events: list[Event], delay: float = 0.0, delay_from: int = 1) -> None:
        self.reply(Reply(events=events, delay=delay, delay_from=delay_from))

    def last(self, timeout: float = 5.0) -> Exchange:
        """The latest request, once the server has finished with it."""
        deadline = time.monotonic() + timeout
        while not self.exchanges:
            if time.monotonic() > deadline:
                raise AssertionError("the fake server saw no request")
            time.sleep(0.005)
        return self.exchanges[-1].wait(max(0.0, deadline - time.monotonic()))

    def start(self) -> FakeAnthropic:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="critical",
            interface="asgi3",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-anthropic", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Anthropic server did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            if self._thread.is_alive():  # pragma: no cover - would leak a thread
                self._server.force_exit = True  # type: ignore[union-attr]
                self._thread.join(5)
        self._server = self._thread = None

    # -- server side ------------------------------------------------------------------
    def _next(self) -> Reply:
        with self._lock:
            if not self._replies:
                raise RuntimeError("no reply queued")
            return self._replies.popleft()

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        exchange = Exchange()
        self.exchanges.append(exchange)
        try:
            await asyncio.wait_for(self._serve(exchange, receive, send), REQUEST_DEADLINE)
        finally:
            exchange.done.set()

    async def _serve(self, exchange: Exchange, receive: Any, send: Any) -> None:
        body = b""
        for _ in range(10_000):  # the request body, in at most this many messages
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        exchange.request = json.loads(body or b"{}")
        reply = self._next()
        if not exchange.request.get("stream"):
            data = json.dumps(reply.message).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"request-id", b"req_fake"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": data})
            exchange.completed = True
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    (b"request-id", b"req_fake"),
                ],
            }
        )
        for name, data in reply.events:
            await send(
                {"type": "http.response.body", "body": _frame(name, data), "more_body": True}
            )
            exchange.sent += 1
            delay = reply.delay if exchange.sent >= reply.delay_from else 0.0
            if await self._left(receive, delay):
                exchange.left_after = exchange.sent
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        exchange.completed = True

    @staticmethod
    async def _left(receive: Any, delay: float) -> bool:
        """Whether the client leaves within ``delay`` seconds."""
        if delay <= 0:
            await asyncio.sleep(0)
            return False
        try:
            message = await asyncio.wait_for(receive(), delay)
        except TimeoutError:
            return False
        return bool(message["type"] == "http.disconnect")


def serving() -> Iterator[FakeAnthropic]:
    """A started fake, stopped when the generator is closed (``yield from`` in a fixture)."""
    server = FakeAnthropic().start()
    try:
        yield server
    finally:
        server.stop()
