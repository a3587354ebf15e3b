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

import anyio

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
from .._runtime.fallback import breaker_of, fallbacks_of, uses_fallback
from . import chat, responses
from ._guard import Refusals, Runs, refusals_guarded
from ._stream import GuardedStream, Step, SyncGuardedStream, Translator, drive_sync
from ._trace import recorder
from ._trace import traced_args as _traced

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
    refusals: str,
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
    call, an attempt per source (docs/fallback.md).
    """
    traced = _traced(trace_id, on_trace, capture_content, request_model, parameters, started)
    if isinstance(policy, Policy) and uses_fallback(policy, fallbacks, breaker):
        return cast(
            "FallbackGuardedStream",
            _fallback(policy, stream, refusals, fallbacks, breaker, traced, sync=False),
        )
    if isinstance(stream, _SyncStream) or not isinstance(stream, AsyncIterable):
        raise TypeError(
            f"guard() takes an async SDK stream, got {type(stream).__name__}: "
            "use guard_sync() for the sync client"
        )
    return GuardedStream(stream, _make(policy, stream, refusals, traced, sync=False))


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
    traced = _traced(trace_id, on_trace, capture_content, request_model, parameters, started)
    if isinstance(policy, Policy) and uses_fallback(policy, fallbacks, breaker):
        return cast(
            "SyncFallbackGuardedStream",
            _fallback(policy, stream, refusals, fallbacks, breaker, traced, sync=True),
        )
    if isinstance(stream, _AsyncStream) or not isinstance(stream, Iterable):
        raise TypeError(
            f"guard_sync() takes a sync SDK stream, got {type(stream).__name__}: "
            "use guard() for the async client"
        )
    return SyncGuardedStream(stream, _make(policy, stream, refusals, traced, sync=True))


def _fallback(
    policy: Policy,
    stream: Any,
    refusals: str,
    fallbacks: Any,
    breaker: Any,
    traced: dict[str, Any],
    *,
    sync: bool,
) -> Any:
    from .fallback import FallbackGuardedStream, SyncFallbackGuardedStream
    from .openai_fallback import OpenAIApi

    name = "guard_sync" if sync else "guard"
    if not isinstance(policy, Policy):
        raise TypeError(f"{name}() takes a Policy first, got {type(policy).__name__}")
    refusals_guarded(refusals)
    kind = SyncFallbackGuardedStream if sync else FallbackGuardedStream
    return kind(
        policy,
        stream,
        OpenAIApi(policy, refusals),
        fallbacks_of(fallbacks, name),
        breaker_of(breaker, name),
        recorder(policy, "openai", streamed=True, **traced),
    )


def _reply(
    policy: Policy, reply: Any, refusals: str, traced: dict[str, Any], *, sync: bool
) -> tuple[Runs, Step[Any]]:
    if not isinstance(policy, Policy):
        raise TypeError(f"guard_reply() takes a Policy first, got {type(policy).__name__}")
    guarded = refusals_guarded(refusals)
    if isinstance(reply, ChatCompletion):
        rec = recorder(policy, "openai", streamed=False, **traced)
        chat.note_reply(rec, reply)
        runs = Runs(policy, sync=sync, rec=rec)
        return runs, chat.reply(runs, reply, guarded)
    if isinstance(reply, Response):
        rec = recorder(policy, "openai", streamed=False, **traced)
        responses.note_reply(rec, reply)
        runs = Runs(policy, sync=sync, rec=rec, part="output_item")
        return runs, responses.reply(runs, reply, guarded)
    raise TypeError(
        f"guard_reply() takes a ChatCompletion or a Response, got {type(reply).__name__}"
    )


def _replied(runs: Runs, out: Any, error: BaseException | None = None) -> None:
    """The trace of a guarded reply, once its runs are closed."""
    rec: CallRecorder | None = runs.rec
    if rec is None:
        return
    if error is not None:
        cancelled = isinstance(error, anyio.get_cancelled_exc_class())
        rec.finish(ending="cancelled") if cancelled else rec.finish(error=error)
        return
    text = chat.reply_text(out) if isinstance(out, ChatCompletion) else responses.reply_text(out)
    rec.released(text)
    rec.finish()  # (blocked when a run of the reply blocked)


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
    traced = _traced(trace_id, on_trace, capture_content, request_model, parameters, started)
    runs, step = _reply(policy, reply, refusals, traced, sync=False)
    try:
        out: Reply = await step
    except BaseException as exc:
        runs.close()
        _replied(runs, None, exc)
        raise
    runs.close()
    _replied(runs, out)
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
    traced = _traced(trace_id, on_trace, capture_content, request_model, parameters, started)
    runs, step = _reply(policy, reply, refusals, traced, sync=True)
    try:
        out: Reply = drive_sync(step)
    except BaseException as exc:
        runs.close()
        _replied(runs, None, exc)
        raise
    runs.close()
    _replied(runs, out)
    return out
