"""What every provider's entry points share besides translating events.

Each entry point (``guard``, ``guard_sync``, ``guard_reply``, ``guard_reply_sync`` of
:mod:`.openai` and :mod:`.anthropic`) keeps its keywords explicit and documented in its
signature, and collects them at once into one :class:`Call`: the provider's and entry
point's names (for errors and the trace), ``refusals``, the call's tracing arguments and,
for a stream, its fallbacks.  From there one code path per job, for every provider:
:meth:`Call.with_fallbacks` makes the stream with fallbacks when the call asks for one,
:meth:`Call.recorder` the call's recorder, and :func:`reply_sync` / :func:`reply_async`
run a non-streamed reply through its runs and finish its trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .. import Policy
from .._observe.calls import CallRecorder
from .._runtime.fallback import breaker_of, fallbacks_of, uses_fallback
from ._guard import Runs, refusals_guarded
from ._stream import Step, drive_sync
from ._trace import recorder

if TYPE_CHECKING:
    from .fallback import Api

__all__ = ["Call", "reply_async", "reply_sync"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """The keywords of one entry point's call (checked where they are used)."""

    provider: str  # "openai" | "anthropic"
    name: str  # the entry point, as errors name it
    refusals: object
    traced: dict[str, Any]  # the tracing arguments, for :func:`._trace.recorder`
    fallbacks: object = None
    breaker: object = None

    @classmethod
    def of(
        cls,
        provider: str,
        name: str,
        refusals: object,
        trace_id: object,
        on_trace: object,
        capture_content: object,
        request_model: object,
        parameters: object,
        started: object,
        fallbacks: object = None,
        breaker: object = None,
    ) -> Call:
        """An entry point's keywords, in the order of its signature."""
        traced = {
            "trace_id": trace_id,
            "on_trace": on_trace,
            "capture_content": capture_content,
            "request_model": request_model,
            "parameters": parameters,
            "started": started,
        }
        return cls(provider, name, refusals, traced, fallbacks, breaker)

    def policy(self, policy: object) -> Policy:
        """``policy`` and ``refusals`` checked (``TypeError``, ``ValueError``)."""
        if not isinstance(policy, Policy):
            raise TypeError(f"{self.name}() takes a Policy first, got {type(policy).__name__}")
        refusals_guarded(self.refusals)
        return policy

    @property
    def guarded_refusals(self) -> bool:
        """Whether refusal text is checked (``refusals`` checked: ``ValueError``)."""
        return refusals_guarded(self.refusals)

    def recorder(self, policy: Policy, *, streamed: bool) -> CallRecorder:
        """The call's recorder (its tracing arguments checked: ``TypeError``)."""
        return recorder(policy, self.provider, streamed=streamed, **self.traced)

    def with_fallbacks(
        self, policy: object, stream: Any, api: Callable[[Policy, str], Api], *, sync: bool
    ) -> Any:
        """The guarded stream with fallbacks (docs/fallback.md) when the call asks for
        one (fallbacks given, or the policy's breaker), else ``None``; ``api``: the
        provider's :class:`~.fallback.Api` for a policy and ``refusals``."""
        if not isinstance(policy, Policy) or not uses_fallback(
            policy, self.fallbacks, self.breaker
        ):
            return None
        from .fallback import FallbackGuardedStream, SyncFallbackGuardedStream

        self.policy(policy)
        kind = SyncFallbackGuardedStream if sync else FallbackGuardedStream
        return kind(
            policy,
            stream,
            api(policy, str(self.refusals)),
            fallbacks_of(self.fallbacks, self.name),
            breaker_of(self.breaker, self.name),
            self.recorder(policy, streamed=True),
        )


def _replied(
    runs: Runs, out: T | None, text_of: Callable[[T], str], error: BaseException | None
) -> None:
    """The trace of a guarded reply, once its runs are closed."""
    runs.close()
    rec = runs.rec
    if rec is None:
        return
    if error is not None:
        cancelled = isinstance(error, anyio.get_cancelled_exc_class())
        rec.finish(ending="cancelled") if cancelled else rec.finish(error=error)
        return
    assert out is not None
    rec.released(text_of(out))
    rec.finish()  # (blocked when a run of the reply blocked)


def reply_sync(runs: Runs, step: Step[T], text_of: Callable[[T], str]) -> T:
    """Run a reply's step over sync runs to its end; its trace (``text_of``: the text
    the guarded reply shows) once its runs are closed."""
    try:
        out = drive_sync(step)
    except BaseException as exc:
        _replied(runs, None, text_of, exc)
        raise
    _replied(runs, out, text_of, None)
    return out


async def reply_async(runs: Runs, step: Step[T], text_of: Callable[[T], str]) -> T:
    """:func:`reply_sync` for a step over async runs (awaited on this event loop)."""
    try:
        out = await step
    except BaseException as exc:
        _replied(runs, None, text_of, exc)
        raise
    _replied(runs, out, text_of, None)
    return out
