"""Guard Anthropic Messages streams and replies (needs the ``[anthropic]`` extra).

>>> import guardrails_engine as ge                                    # doctest: +SKIP
>>> from guardrails_engine import anthropic as ge_anthropic          # doctest: +SKIP
>>> policy = ge.load_policy("policies/support-chat.yaml")             # doctest: +SKIP
>>> stream = await client.messages.create(..., stream=True)          # doctest: +SKIP
>>> async for event in ge_anthropic.guard(policy, stream):           # doctest: +SKIP
...     ...

Public API::

    guard(policy, stream) -> GuardedStream            # AsyncAnthropic: create(stream=True),
                                                      # messages.stream(...) (manager or stream)
    guard_sync(policy, stream) -> SyncGuardedStream   # the same for the sync client
    await guard_reply(policy, message) -> Message     # a non-streamed Message
    guard_reply_sync(policy, message) -> Message      # the same, sync

See :mod:`guardrails_engine._adapters.anthropic` for the semantics.
"""

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
    "SyncGuardedStream",
    "guard",
    "guard_reply",
    "guard_reply_sync",
    "guard_sync",
]
