"""Guard Anthropic Messages streams and replies (needs the ``[anthropic]`` extra).

>>> import guardrails_engine as ge                                    # doctest: +SKIP
>>> from guardrails_engine import anthropic as ge_anthropic          # doctest: +SKIP
>>> policy = ge.load_policy("policies/support-chat.yaml")             # doctest: +SKIP
>>> stream = await client.messages.create(..., stream=True)          # doctest: +SKIP
>>> async for event in ge_anthropic.guard(policy, stream):           # doctest: +SKIP
...     ...

See :mod:`guardrails_engine.adapters.anthropic` for the semantics.
"""

from .adapters.anthropic import (
    AsyncGuardedStream,
    GuardedStream,
    guard,
    guard_message,
    guard_message_async,
)

__all__ = [
    "AsyncGuardedStream",
    "GuardedStream",
    "guard",
    "guard_message",
    "guard_message_async",
]
