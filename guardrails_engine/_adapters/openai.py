"""Guard OpenAI SDK streams and replies: Chat Completions and Responses, sync and async.

Public API (re-exported by ``guardrails_engine.openai``)::

    guard(policy, stream, *, refusals="guard", **traced) -> GuardedStream   # async SDK stream
    guard_sync(policy, stream, *, refusals="guard", **traced) -> SyncGuardedStream  # sync
    await guard_reply(policy, reply, *, refusals="guard", **traced)  # ChatCompletion | Response
    guard_reply_sync(policy, reply, *, refusals="guard", **traced)   # the same, sync

``traced``: the call's trace (docs/tracing.md): ``trace_id=None, on_trace=None,
capture_content=False, request_model=None, parameters=None, started=None``.

What comes out has the SDK's own types.  See ``guardrails_engine/openai.py`` for the
semantics.  The events are translated by :mod:`.chat` and :mod:`.responses`; the
stream itself is :mod:`._stream`'s, the same for every provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

try:
    from openai import AsyncStream as _AsyncStream
    from openai import Stream as _SyncStream
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent
except ImportError as exc:  # pragma: no cover - tested with the SDK hidden
    raise ImportError(
        "guardrails_engine.openai needs the OpenAI SDK: pip install 'guardrails-engine[openai]'"
    ) from exc

from .. import Breaker, Policy
from .._observe.calls import CallRecorder, TraceSink
from . import chat, responses
from ._calls import Call, reply_async, reply_sync
from ._guard import Refusals, Runs, refusals_guarded
from ._stream import GuardedStream, Step, SyncGuardedStream, Translator
from ._trace import recorder

if TYPE_CHECKING:
    from .fallback import FallbackGuardedStream, SyncFallbackGuardedStream

__all__ = [
    "GuardedStream",
    "Refusals",
    "SyncGuardedStream",
    "guard",
    "guard_reply",
    "guard_reply_sync",
    "guard_sync",
]

Chunk = TypeVar("Chunk", ChatCompletionChunk, ResponseStreamEvent)
Reply = TypeVar("Reply", ChatCompletion, Response)


def _translator(runs: Runs, chunks: bool, refusals: bool) -> Translator[Any]:
    if chunks:
        return chat.ChatTranslator(runs, refusals)
    runs.part = "output_item"
    return responses.ResponsesTranslator(runs, refusals)


class _Pick(Translator[Any]):
    """Chat or Responses, decided by the first event (for plain iterables)."""

    __slots__ = ("_refusals",)

    def __init__(self, runs: Runs, refusals: bool) -> None:
        super().__init__(runs)
        self._refusals = refusals

    def first(self, event: Any) -> Translator[Any]:
        chunks = isinstance(event, ChatCompletionChunk)
        return _translator(self.runs, chunks, self._refusals)

    async def finish(self) -> list[Any]:
        return []


def _make(
    policy: Policy,
    stream: object,
    refusals: object,
    traced: dict[str, Any] | None = None,
    *,
    sync: bool,
    rec: CallRecorder | None = None,
) -> Translator[Any]:
    """The translator of a guarded stream; ``traced``: the call's tracing arguments
    (``None``: the recorder ``rec`` is the call's, made by a stream with fallbacks)."""
    if not isinstance(policy, Policy):
        raise TypeError(f"guard() takes a Policy first, got {type(policy).__name__}")
    guarded = refusals_guarded(refusals)
    if traced is not None:
        rec = recorder(policy, "openai", streamed=True, **traced)
    runs = Runs(policy, sync=sync, rec=rec)
    cast_to = getattr(stream, "_cast_to", None)  # what the SDK stream says it yields
    if cast_to is None:
        return _Pick(runs, guarded)
    return _translator(runs, cast_to is ChatCompletionChunk, guarded)


def _api(policy: Policy, refusals: str) -> Any:
    from .openai_fallback import OpenAIApi

    return OpenAIApi(policy, refusals)


def _stream(policy: Policy, stream: Any, call: Call, *, sync: bool) -> Any:
    """The guarded stream of one call (with fallbacks when it asks for them)."""
    fallback = call.with_fallbacks(policy, stream, _api, sync=sync)
    if fallback is not None:
        return fallback
    if sync and (isinstance(stream, _AsyncStream) or not isinstance(stream, Iterable)):
        raise TypeError(
            f"guard_sync() takes a sync SDK stream, got {type(stream).__name__}: "
            "use guard() for the async client"
        )
    if not sync and (isinstance(stream, _SyncStream) or not isinstance(stream, AsyncIterable)):
        raise TypeError(
            f"guard() takes an async SDK stream, got {type(stream).__name__}: "
            "use guard_sync() for the sync client"
        )
    translator = _make(policy, stream, call.refusals, call.traced, sync=sync)
    return SyncGuardedStream(stream, translator) if sync else GuardedStream(stream, translator)


def guard(
    policy: Policy,
    stream: AsyncIterable[Chunk],
    *,
    refusals: Refusals = "guard",
    trace_id: str | None = None,
    on_trace: TraceSink | None = None,
    capture_content: bool = False,
    request_model: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    started: float | None = None,
    fallbacks: Any = None,
    breaker: Breaker | None = None,
) -> GuardedStream[Chunk] | FallbackGuardedStream:
    """Guard an async SDK stream (``AsyncStream[ChatCompletionChunk]`` or Responses events).

    Iterate the result as the SDK stream; ``async with`` or ``aclose()`` to stop early.
    ``fallbacks``: callables that take a :class:`~guardrails_engine.Fallback` and return
    the next source (docs/fallback.md); ``stream`` may then be the coroutine of the
    request, so that its failure (a 500) falls back too.  The call's trace
    (``stream.trace_id``; ``stream.record`` once it ended) goes to ``on_trace`` and
    the policy's sink (docs/tracing.md); with fallbacks, one record for the whole
    call, an attempt per source (docs/fallback.md).  The policy's
    ``stream.deadline_ms`` and ``stream.idle_timeout_ms`` bound the call
    (docs/adapters.md).
    """
    call = Call.of(
        "openai", "guard", refusals, trace_id, on_trace, capture_content, request_model,
        parameters, started, fallbacks, breaker,
    )  # fmt: skip
    return cast("GuardedStream[Chunk]", _stream(policy, stream, call, sync=False))


def guard_sync(
    policy: Policy,
    stream: Iterable[Chunk],
    *,
    refusals: Refusals = "guard",
    trace_id: str | None = None,
    on_trace: TraceSink | None = None,
    capture_content: bool = False,
    request_model: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    started: float | None = None,
    fallbacks: Any = None,
    breaker: Breaker | None = None,
) -> SyncGuardedStream[Chunk] | SyncFallbackGuardedStream:
    """Guard a sync SDK stream (``Stream[ChatCompletionChunk]`` or Responses events);
    traced as :func:`guard`; ``fallbacks`` as in :func:`guard` (``stream`` may then be a
    function making the request)."""
    call = Call.of(
        "openai", "guard_sync", refusals, trace_id, on_trace, capture_content, request_model,
        parameters, started, fallbacks, breaker,
    )  # fmt: skip
    return cast("SyncGuardedStream[Chunk]", _stream(policy, stream, call, sync=True))


def _reply(policy: Policy, reply: Any, call: Call, *, sync: bool) -> tuple[Runs, Step[Any]]:
    policy = call.policy(policy)
    guarded = call.guarded_refusals
    if isinstance(reply, ChatCompletion):
        rec = call.recorder(policy, streamed=False)
        chat.note_reply(rec, reply)
        runs = Runs(policy, sync=sync, rec=rec)
        return runs, chat.reply(runs, reply, guarded)
    if isinstance(reply, Response):
        rec = call.recorder(policy, streamed=False)
        responses.note_reply(rec, reply)
        runs = Runs(policy, sync=sync, rec=rec, part="output_item")
        return runs, responses.reply(runs, reply, guarded)
    raise TypeError(
        f"guard_reply() takes a ChatCompletion or a Response, got {type(reply).__name__}"
    )


def _reply_text(out: Any) -> str:
    return chat.reply_text(out) if isinstance(out, ChatCompletion) else responses.reply_text(out)


async def guard_reply(
    policy: Policy,
    reply: Reply,
    *,
    refusals: Refusals = "guard",
    trace_id: str | None = None,
    on_trace: TraceSink | None = None,
    capture_content: bool = False,
    request_model: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    started: float | None = None,
) -> Reply:
    """A new ``ChatCompletion`` / ``Response`` with every text checked (async: long texts
    and NER run in worker threads); traced as :func:`guard`."""
    call = Call.of(
        "openai", "guard_reply", refusals, trace_id, on_trace, capture_content, request_model,
        parameters, started,
    )  # fmt: skip
    runs, step = _reply(policy, reply, call, sync=False)
    out: Reply = await reply_async(runs, step, _reply_text)
    return out


def guard_reply_sync(
    policy: Policy,
    reply: Reply,
    *,
    refusals: Refusals = "guard",
    trace_id: str | None = None,
    on_trace: TraceSink | None = None,
    capture_content: bool = False,
    request_model: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    started: float | None = None,
) -> Reply:
    """:func:`guard_reply` for sync callers (no event loop)."""
    call = Call.of(
        "openai", "guard_reply", refusals, trace_id, on_trace, capture_content, request_model,
        parameters, started,
    )  # fmt: skip
    runs, step = _reply(policy, reply, call, sync=True)
    out: Reply = reply_sync(runs, step, _reply_text)
    return out
