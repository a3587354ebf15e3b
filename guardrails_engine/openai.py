"""Guard OpenAI SDK streams and replies (needs the ``[openai]`` extra).

::

    import guardrails_engine as ge
    from guardrails_engine import openai as ge_openai

    policy = ge.load_policy("policies/support-chat.yaml")
    stream = await client.chat.completions.create(model=m, messages=msgs, stream=True)
    async for chunk in ge_openai.guard(policy, stream):  # ChatCompletionChunk objects,
        ...                                              # text already repaired

API
---
``guard(policy, stream, *, refusals="guard") -> GuardedStream``
    An async SDK stream (``AsyncStream[ChatCompletionChunk]`` from
    ``chat.completions.create(stream=True)``, or the Responses events of
    ``responses.create(stream=True)``) -> an async iterator of the same types.
    ``async with`` it or ``await g.aclose()`` to stop early (iterating it after that
    raises ``ge.StreamStateError``, as with every guarded or policy stream);
    ``g.blocked`` is the ``ge.Blocked`` (message and findings) once the reply was blocked.
``guard_sync(policy, stream, *, refusals="guard") -> SyncGuardedStream``
    The same for the sync client's ``Stream``; ``with`` / ``close()``.  (``guard`` refuses
    a sync stream and ``guard_sync`` an async one, with a message naming the other.)
``await guard_reply(policy, reply, *, refusals="guard")`` / ``guard_reply_sync(...)``
    A non-streamed ``ChatCompletion`` or ``Response`` -> a new object of the same type
    with every text checked (the input is not changed).

``trace_id=None, on_trace=None, capture_content=False, request_model=None,
parameters=None, started=None`` (every entry point)
    The call's trace, a ``ge.CallTrace`` (docs/tracing.md): to ``on_trace`` and the
    policy's sink; ``g.trace_id`` at once, ``g.record`` once the stream ended.  The model
    and parameters are read from the SDK stream's request; ``parameters`` (the keyword
    arguments given to ``create()``) or ``request_model`` say them for a reply.

Semantics
---------
- One run of the policy per choice (``n > 1``: keyed by ``choice.index``) and, for
  Responses, per content part (output text, refusal).  Released text is written back
  into the SDK's objects; ids, index, model, created, system_fingerprint, role,
  finish_reason and usage are kept.  A chunk whose text is all held back is dropped;
  the rest of the text comes with the choice's ``finish_reason`` chunk.
- ``content is None`` (role and tool-call chunks) is not text: passed through.
- Logprobs are kept while the text is shown as the model wrote it: a delta's logprobs
  go out with the chunk (event) whose released text completes that delta (hold-back
  delays them); from the first repaired release on, that choice's or part's logprobs
  are dropped (Chat: ``choice.logprobs = None``; Responses: ``logprobs = []``).
  Annotations are kept only on parts whose text was not changed (their offsets would
  be wrong), and ``output_text.annotation_added`` events are dropped after a change.
- Refusals (``delta.refusal``, ``response.refusal.delta``, ``message.refusal``) are
  checked like text with ``refusals="guard"`` (default), or passed as is with ``"pass"``.
- Tool-call arguments go through ``policy.tools[name].policy``, one run per call
  (Chat: keyed by choice and ``tool_calls[].index``; Responses: by output item),
  as they stream: a schema violation stops the stream at the token that reveals it;
  PII inside a string is repaired and the JSON stays valid.  ``release: complete``
  (default): the whole call (id, name, arguments) is shown once its arguments are
  complete and valid (Chat: when the next call starts or the choice finishes;
  Responses: at ``function_call_arguments.done``, with its ``output_item.added``);
  ``release: incremental``: arguments are shown as they are released.  A tool without
  a rule passes unchanged, or blocks with ``unknown_tools: block``.  Custom tool
  inputs (Responses, non-streamed Chat) are treated like arguments.  MCP calls and
  the built-in tools (web search, code interpreter, shell, ...) are not tool calls
  of the policy: passed through.
- On a block the SDK stream is closed at once (so its HTTP response is), then:
  Chat: a chunk with ``content = policy.block_message`` (after the text released
  before the block) on the blocked choice, then a chunk with
  ``finish_reason="content_filter"`` for it and every choice not yet finished (their
  held-back text is dropped).  Responses: the message goes out as an
  ``output_text.delta`` of the blocked part (or of a new message item after a blocked
  tool call), the part and item end (``status="incomplete"``), then
  ``response.incomplete`` whose response has ``status="incomplete"`` and
  ``incomplete_details.reason == "content_filter"``.  Non-streamed: the blocked
  choice's content is the block message, ``finish_reason="content_filter"``, its tool
  calls are dropped (each choice is checked on its own); a Response becomes incomplete
  the same way, cut after the blocked item.
- Responses text or tool arguments that arrive only whole (in ``output_item.done`` or
  the final response, with no deltas) are checked there, through the same runs.
- The SDK stream is also closed at the end, on ``aclose()``/``close()`` (early stop),
  and when the consumer is cancelled or raises.  Responses events are numbered again
  (``sequence_number``), since some are held, dropped or added.
- A length check's truncation ends the reply there, the API's way for a length cut:
  Chat: ``finish_reason="length"`` on that choice (its later deltas are not shown; the
  stream ends once every choice has ended); Responses: the part and its item end
  (``incomplete``), then ``response.incomplete`` with ``incomplete_details.reason ==
  "max_output_tokens"``.  The SDK stream is closed there: it is not read to its end.
- ``stream.deadline_ms`` / ``stream.idle_timeout_ms`` of the policy bound the call (one
  clock for all its runs): past either, the SDK stream is closed and the stream ends as
  on a block, the finding naming the limit; if no event had come, iterating raises
  ``TimeoutError``.  The sync stream then reads the SDK stream in a worker thread
  (docs/adapters.md).
- The deprecated ``function_call`` (``functions=``) is treated as a tool call.
- A reply opens at most ``MAX_RUNS`` (1,024) runs (choices, parts, calls with a rule):
  past that it is blocked, finding ``runs`` (the same in the Anthropic adapter).
- Not checked: audio (and its transcript) and reasoning text (passed through).
- Cost: about +2 us a chunk over ``policy.stream`` (``policy.stream_sync``),
  async and sync (``benchmarks/adapters.py``).  The sync adapter runs the policy inline
  (sync push runs), so it also works in a thread whose event loop is running.
- Non-streamed replies are checked by the same runs as a stream (the async
  ``guard_reply`` awaits them: long texts and NER run in worker threads).
"""

from __future__ import annotations

try:
    import openai as _sdk  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "guardrails_engine.openai needs the OpenAI SDK: pip install 'guardrails-engine[openai]'"
    ) from exc

from ._adapters.openai import (
    GuardedStream,
    Refusals,
    SyncGuardedStream,
    guard,
    guard_reply,
    guard_reply_sync,
    guard_sync,
)

__all__ = [
    "GuardedStream",
    "Refusals",
    "SyncGuardedStream",
    "guard",
    "guard_reply",
    "guard_reply_sync",
    "guard_sync",
]
