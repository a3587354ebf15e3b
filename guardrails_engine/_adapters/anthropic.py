"""Guard Anthropic Messages: streamed events, the ``messages.stream()`` helper, replies.

>>> from guardrails_engine import anthropic as ge_anthropic          # doctest: +SKIP
>>> stream = await client.messages.create(..., stream=True)          # doctest: +SKIP
>>> async for event in ge_anthropic.guard(policy, stream):           # doctest: +SKIP
...     ...                               # RawMessageStreamEvent objects, text repaired

Public API (re-exported by ``guardrails_engine.anthropic``)::

    guard(policy, stream, *, refusals="guard") -> GuardedStream   # AsyncAnthropic:
                                    # messages.create(stream=True), messages.stream(...)
    guard_sync(policy, stream, *, refusals="guard") -> SyncGuardedStream  # sync client
    await guard_reply(policy, message, *, refusals="guard") -> Message  # not streamed
    guard_reply_sync(policy, message, *, refusals="guard") -> Message   # the same, sync

The keyword arguments are the OpenAI adapter's.  ``refusals`` ("guard" or "pass", else
``ValueError``): Anthropic sends no refusal text of its own (a refusal is a
``stop_reason``; what the model wrote is in text blocks), so there is nothing to pass
as is: text blocks are always guarded, with either value.

What comes out has the SDK's own types and shape (``message_start``,
``content_block_start``/``_delta``/``_stop``, ``message_delta``, ``message_stop``),
with the ids, model and usage of the reply.

- Each content block (by ``index``) is its own run of the policy.  ``text_delta``s are
  guarded and the released text is written back into ``text_delta`` events (a delta
  held back gives no event; text released at the block's end comes just before its
  ``content_block_stop``).  Blocks that are neither text nor ``tool_use`` (thinking,
  server tools, their results) pass through; a citation's ``cited_text`` (in a
  ``citations_delta`` or a text block's ``citations``) is checked by the policy on its
  own: repaired, or the citation dropped if it is blocked.
- ``tool_use`` blocks: the arguments (``input_json_delta``) are checked by the tool's
  rule in ``policy.tools`` as they stream.  Release ``complete`` (the default): the
  block starts at once (id, name) and its guarded arguments come as one
  ``input_json_delta`` just before its ``content_block_stop``, once complete and
  valid; ``incremental``: as released.  A tool without a rule passes through, or is a
  block when ``unknown_tools: block`` (its block never starts).
- A block: the text released so far, then the block message as text (in the blocked
  text block, or in a new text block after a blocked tool call), then the native end:
  ``content_block_stop`` for every open block, ``message_delta`` with
  ``stop_reason: "refusal"`` (usage: the last the upstream reported, in its
  ``message_start``), ``message_stop``.  The upstream SDK stream is closed at once,
  before those events are handed out (its HTTP response closes).
- A length check's truncation ends the message there: every open block stops, then
  ``message_delta`` with ``stop_reason: "max_tokens"`` and ``message_stop``; the upstream
  is closed (not read to its end).  The policy's ``stream.deadline_ms`` and
  ``stream.idle_timeout_ms`` bound the call as in the OpenAI adapter: past either, the
  stream ends as on a block (``TimeoutError`` if no event had come).
- The upstream is also closed when the consumer stops early (``close()``/``aclose()``,
  ``with``/``async with``), when it is cancelled, and when anything raises.  Iterating
  a guarded stream after closing it early raises :class:`guardrails_engine.StreamStateError`.
- The sync stream runs the policy inline (sync push runs): no event loop is needed,
  so it also works in a thread whose event loop is running.
- This module holds the entry points; :mod:`.messages` only translates events
  (:class:`~.messages.AnthropicTranslator`); the stream, its endings and closing are
  :mod:`._stream`'s, the same as OpenAI's.
- The ``messages.stream()`` helper: the guard reads the helper's raw event stream, so
  the helper's own ``text_stream``, ``get_final_message()`` and snapshots (which
  would hold the unguarded reply) are not filled: use the guarded events.
- A ``Message`` (not streamed) gives a new ``Message``: text blocks guarded, each
  ``tool_use.input`` guarded as ``json.dumps(input)`` and parsed back; a block keeps
  the blocks before it, puts the block message in a text block and drops the rest,
  with ``stop_reason: "refusal"``.  The same runs as a stream's check it (the async
  one awaits them: long texts and NER run in worker threads, citations too).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, cast

try:
    import anthropic as _sdk
    from anthropic.lib.streaming import (
        AsyncMessageStream,
        AsyncMessageStreamManager,
        MessageStream,
        MessageStreamManager,
    )
    from anthropic.types import Message, RawMessageStreamEvent
except ImportError as exc:  # pragma: no cover - tested with the SDK hidden
    raise ImportError(
        "guardrails_engine.anthropic needs the Anthropic SDK: "
        "pip install 'guardrails-engine[anthropic]'"
    ) from exc

from .. import Breaker, Policy
from .._observe.calls import TraceSink
from ._calls import Call, reply_async, reply_sync
from ._guard import Refusals, Runs
from ._stream import GuardedStream, Step, SyncGuardedStream
from .messages import (
    AnthropicTranslator,
    Event,
    note_start,
    open_async,
    open_sync,
    reply,
    reply_text,
)

if TYPE_CHECKING:
    from .fallback import FallbackGuardedStream, SyncFallbackGuardedStream

__all__ = [
    "GuardedStream",
    "SyncGuardedStream",
    "guard",
    "guard_reply",
    "guard_reply_sync",
    "guard_sync",
]


def _reply_of(
    policy: object, message: object, call: Call, *, sync: bool
) -> tuple[Runs, Step[Message]]:
    checked = call.policy(policy)
    if not isinstance(message, Message):
        raise TypeError(
            f"{call.name}() takes an Anthropic Message, got {type(message).__name__}"
            + (
                ": use guard() or guard_sync() for a stream"
                if hasattr(message, "__iter__") or hasattr(message, "__aiter__")
                else ""
            )
        )
    rec = call.recorder(checked, streamed=False)
    note_start(rec, message)
    runs = Runs(checked, sync=sync, rec=rec, part="content_block")
    return runs, reply(runs, message)


def guard_reply_sync(
    policy: Policy,
    message: Message,
    *,
    refusals: Refusals = "guard",
    trace_id: str | None = None,
    on_trace: TraceSink | None = None,
    capture_content: bool = False,
    request_model: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    started: float | None = None,
) -> Message:
    """A new ``Message`` with its text and tool arguments guarded (see the module doc);
    traced as the OpenAI adapter's calls are."""
    call = Call.of(
        "anthropic", "guard_reply_sync", refusals, trace_id, on_trace, capture_content,
        request_model, parameters, started,
    )  # fmt: skip
    runs, step = _reply_of(policy, message, call, sync=True)
    return reply_sync(runs, step, reply_text)


async def guard_reply(
    policy: Policy,
    message: Message,
    *,
    refusals: Refusals = "guard",
    trace_id: str | None = None,
    on_trace: TraceSink | None = None,
    capture_content: bool = False,
    request_model: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    started: float | None = None,
) -> Message:
    """:func:`guard_reply_sync`, async (long texts and NER run in worker threads)."""
    call = Call.of(
        "anthropic", "guard_reply", refusals, trace_id, on_trace, capture_content,
        request_model, parameters, started,
    )  # fmt: skip
    runs, step = _reply_of(policy, message, call, sync=False)
    return await reply_async(runs, step, reply_text)


# -- the entry points ---------------------------------------------------------------------
_AsyncSource: TypeAlias = (
    "_sdk.AsyncStream[RawMessageStreamEvent] | AsyncMessageStream[Any]"
    " | AsyncMessageStreamManager[Any] | AsyncIterable[RawMessageStreamEvent]"
)
_SyncSource: TypeAlias = (
    "_sdk.Stream[RawMessageStreamEvent] | MessageStream[Any] | MessageStreamManager[Any]"
    " | Iterable[RawMessageStreamEvent]"
)
_SYNC_KINDS = (_sdk.Stream, MessageStream, MessageStreamManager)
_ASYNC_KINDS = (_sdk.AsyncStream, AsyncMessageStream, AsyncMessageStreamManager)


def _api(policy: Policy, refusals: str) -> Any:
    from .anthropic_fallback import AnthropicApi

    return AnthropicApi(policy, refusals)


def _stream(policy: object, stream: object, call: Call, *, sync: bool) -> Any:
    """The guarded stream of one call (with fallbacks when it asks for them)."""
    fallback = call.with_fallbacks(policy, stream, _api, sync=sync)
    if fallback is not None:
        return fallback
    kind, other, answer = (
        ("a sync", "guard() for the async", "guard_reply_sync()")
        if sync
        else ("an async", "guard_sync() for the sync", "guard_reply()")
    )
    checked = call.policy(policy)
    mine, theirs = (_SYNC_KINDS, _ASYNC_KINDS) if sync else (_ASYNC_KINDS, _SYNC_KINDS)
    protocol = "__iter__" if sync else "__aiter__"
    if isinstance(stream, theirs) or not (isinstance(stream, mine) or hasattr(stream, protocol)):
        raise TypeError(
            f"{call.name}() takes {kind} Anthropic stream, got {type(stream).__name__}: "
            f"use {other} client, {answer} for a Message"
        )
    rec = call.recorder(checked, streamed=True)
    translator = AnthropicTranslator(Runs(checked, sync=sync, rec=rec, part="content_block"))
    if sync:
        return SyncGuardedStream(stream, translator, open_sync)
    return GuardedStream(stream, translator, open_async)


def guard(
    policy: Policy,
    stream: _AsyncSource,
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
) -> GuardedStream[Event] | FallbackGuardedStream:
    """Guard an async Anthropic stream: ``await client.messages.create(..., stream=True)``
    of ``AsyncAnthropic``, its ``messages.stream(...)`` helper (the manager, which the
    guard enters and leaves, or the stream it gives), or any async iterable of raw
    events.  Iterate the result with ``async for``; ``async with`` or ``aclose()`` to
    stop early.  ``refusals``, the call's trace, ``fallbacks`` and the policy's time
    limits as in the OpenAI adapter (with fallbacks, one record for the whole call, an
    attempt per source).
    """
    call = Call.of(
        "anthropic", "guard", refusals, trace_id, on_trace, capture_content, request_model,
        parameters, started, fallbacks, breaker,
    )  # fmt: skip
    return cast("GuardedStream[Event]", _stream(policy, stream, call, sync=False))


def guard_sync(
    policy: Policy,
    stream: _SyncSource,
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
) -> SyncGuardedStream[Event] | SyncFallbackGuardedStream:
    """Guard a sync Anthropic stream (``Anthropic``'s ``messages.create(..., stream=True)``,
    its ``messages.stream(...)`` helper, or any iterable of raw events)."""
    call = Call.of(
        "anthropic", "guard_sync", refusals, trace_id, on_trace, capture_content,
        request_model, parameters, started, fallbacks, breaker,
    )  # fmt: skip
    return cast("SyncGuardedStream[Event]", _stream(policy, stream, call, sync=True))
