"""Guard Anthropic Messages streams and replies (needs the ``[anthropic]`` extra).

>>> import guardrails_engine as ge                                    # doctest: +SKIP
>>> from guardrails_engine import anthropic as ge_anthropic          # doctest: +SKIP
>>> policy = ge.load_policy("policies/support-chat.yaml")             # doctest: +SKIP
>>> stream = await client.messages.create(..., stream=True)          # doctest: +SKIP
>>> async for event in ge_anthropic.guard(policy, stream):           # doctest: +SKIP
...     ...

Public API::

    guard(policy, stream, *, refusals="guard") -> GuardedStream
        # AsyncAnthropic: create(stream=True), messages.stream(...) (manager or stream)
    guard_sync(policy, stream, *, refusals="guard") -> SyncGuardedStream   # sync client
    await guard_reply(policy, message, *, refusals="guard") -> Message     # not streamed
    guard_reply_sync(policy, message, *, refusals="guard") -> Message      # the same, sync

The keyword arguments are the OpenAI adapter's (Anthropic has no refusal text apart
from the reply's text, so both ``refusals`` values guard it).  Closing a guarded
stream early and iterating it again raises ``StreamStateError``, as with OpenAI.

See :mod:`guardrails_engine._adapters.anthropic` for the semantics.
"""

from ._adapters._guard import Refusals
from ._adapters.anthropic import (
    GuardedStream,
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
