"""Decision traces: one record per validate and per stream.

A record says what was checked, what was found (never the raw value), how
long each check took and, for streams, how much text went in and out and how
far the stream was held back.  It goes to up to three places:

* the standard ``logging`` module: logger ``guardrails_engine``, one JSON
  object a line at INFO level; off unless the application configures it;
* a callback passed to ``load_policy``/``Policy.from_yaml`` (every run of the
  policy) or to ``validate``/``stream`` (that run);
* OpenTelemetry, when the ``otel`` extra is installed: a span per run with the
  decision and the stats as attributes and an event per finding.

A *sink* is any callable that takes a record (:func:`deliver` calls it): a plain
function, a list's ``append``, or a ``TraceStore``.  A record goes to each sink once,
even when the policy's sink and the run's are the same object.  A run that is part
of a larger record (one choice of a guarded model call) is given a :class:`RunHook`
as its callback: its trace goes to that hook alone, which puts it into the call's
record (``_observe/calls.py``); the call's record then goes to the sinks.

Tracing never changes a result, and a failing callback never fails a run.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._common.model import Finding
    from .plan import Plan
    from .run import Run

__all__ = [
    "RunHook",
    "Trace",
    "TraceCallback",
    "configured",
    "deliver",
    "finding_record",
    "logger",
    "new_trace_id",
]

logger = logging.getLogger("guardrails_engine")

TraceCallback = Callable[["Trace"], None]


def new_trace_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Trace:
    """One run of a policy, as recorded for observability (no raw PII values)."""

    trace_id: str
    kind: str  # "validate" or "stream"
    policy: str
    policy_hash: str
    decision: str | None  # None for a stream that did not end
    ending: str  # completed, blocked, truncated, source_error, cancelled, error
    findings: tuple[dict[str, Any], ...]
    check_ms: dict[str, float]
    duration_ms: float
    chunks_in: int
    chars_in: int
    chunks_out: int
    chars_out: int
    holdback_max: int
    holdback_median: float
    first_out_ms: float | None
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    #: Per ``type: topic`` check (by id): each topic's highest score in the run.
    topic_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    #: With the policy's ``drift:``: the run against its reference (numbers, and the
    #: reference file's hash): ``similarity``, ``threshold``, ``uncovered``, ``quantile``,
    #: ``reference``, ``reference_texts``.
    drift: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "trace_id": self.trace_id,
            "kind": self.kind,
            "policy": self.policy,
            "policy_hash": self.policy_hash,
            "decision": self.decision,
            "ending": self.ending,
            "findings": list(self.findings),
            "check_ms": self.check_ms,
            "duration_ms": self.duration_ms,
            "chunks_in": self.chunks_in,
            "chars_in": self.chars_in,
            "chunks_out": self.chunks_out,
            "chars_out": self.chars_out,
            "holdback_max": self.holdback_max,
            "holdback_median": self.holdback_median,
            "first_out_ms": self.first_out_ms,
            "error": self.error,
        }
        if self.topic_scores:
            out["topic_scores"] = self.topic_scores
        if self.drift:
            out["drift"] = self.drift
        return out


class RunHook:
    """A run's trace callback that takes the run into a larger record.

    :func:`record` gives the trace of a run whose callback is a hook to the hook
    alone: not to the policy's sink, the logger or OpenTelemetry, which receive the
    larger record instead (so nothing is counted twice).
    """

    __slots__ = ()

    def __call__(self, trace: Trace) -> None:
        raise NotImplementedError


def deliver(sinks: tuple[Callable[[Any], object] | None, ...], item: object) -> None:
    """Give ``item`` to each sink once (``None`` skipped); a sink that raises is logged
    (its exception's type only) and skipped."""
    seen: list[object] = []
    for sink in sinks:
        if sink is None or any(sink is s for s in seen):
            continue
        seen.append(sink)
        try:
            sink(item)
        except Exception as exc:  # a broken sink must not break the service
            logger.warning("guardrails_engine: trace callback raised %s", type(exc).__name__)


def record(
    policy: Plan,
    run: Run,
    *,
    kind: str,
    trace_id: str | None,
    callback: TraceCallback | None,
    error: BaseException | None = None,
) -> Trace | None:
    """Build the trace of a run that ended and send it where it is wanted."""
    if isinstance(callback, RunHook):  # part of a larger record, which goes out instead
        trace = _build(policy, run, kind=kind, trace_id=trace_id, error=error)
        deliver((callback,), trace)
        return trace
    otel = _otel()
    sinks = (policy.on_trace, callback)
    if sinks == (None, None) and otel is None and not logger.isEnabledFor(logging.INFO):
        return None
    trace = _build(policy, run, kind=kind, trace_id=trace_id, error=error)
    if logger.isEnabledFor(logging.INFO):
        logger.info(json.dumps(trace.to_dict(), separators=(",", ":")))
    deliver(sinks, trace)
    if otel is not None:
        _export(otel, trace, run)
    return trace


def finding_record(f: Finding) -> dict[str, Any]:
    """A finding as a trace holds it: where, which check, what was done, the reason
    (which never quotes the value)."""
    return {
        "check_id": f.check_id,
        "check_type": f.check_type,
        "action": f.action.value,
        "entity_type": f.entity_type,
        "start": f.start,
        "end": f.end,
        "reason": f.reason,
    }


def _build(
    policy: Plan, run: Run, *, kind: str, trace_id: str | None, error: BaseException | None
) -> Trace:
    ending = run.ending.value if run.ending is not None else "error"
    if error is not None and run.ending is None:
        ending = "error"
    result = run.result() if run.ending in _FINAL else None
    findings = tuple(
        finding_record(f)
        for f in (result.findings if result is not None else run.findings_so_far())
    )
    holdbacks = run.stats.holdbacks
    end = run.stats.ended_at or time.perf_counter()
    first_out = (
        (run.stats.first_out_at - run.stats.first_in_at) * 1000
        if run.stats.first_out_at is not None and run.stats.first_in_at is not None
        else None
    )
    return Trace(
        trace_id=trace_id or new_trace_id(),
        kind=kind,
        policy=policy.name,
        policy_hash=policy.content_hash,
        decision=result.decision.value if result is not None else None,
        ending=ending,
        findings=findings,
        check_ms={
            c.id: round(s * 1000, 4)
            for c, s in zip(policy.checks, run.stats.check_seconds, strict=True)
        },
        duration_ms=round((end - run.stats.started_at) * 1000, 4),
        chunks_in=run.stats.chunks_in,
        chars_in=run.received,
        chunks_out=run.stats.chunks_out,
        chars_out=run.stats.chars_out,
        holdback_max=holdbacks.max,
        holdback_median=holdbacks.median(),
        first_out_ms=round(first_out, 4) if first_out is not None else None,
        error=type(error).__name__ if error is not None else None,
        topic_scores=run.trace_numbers(),
        drift=_drift(policy, run),
    )


def _drift(policy: Plan, run: Run) -> dict[str, Any]:
    """The run measured against the policy's drift reference ({} without one, or when
    the embedder fails: its type is logged, never its message)."""
    monitor = policy.drift
    if monitor is None:
        return {}
    try:
        numbers: dict[str, Any] = monitor.measure(run.drift_text())
    except Exception as exc:
        logger.warning("guardrails_engine: drift measure raised %s", type(exc).__name__)
        return {}
    return numbers


_FINAL = frozenset({"completed", "blocked", "truncated", "timed_out", "idle"})

_OTEL: Any = None
_OTEL_CHECKED = False


def _otel() -> Any:
    """The OpenTelemetry tracer, if the API is installed and the application set a
    tracer provider (else None: the API's own no-op or proxy provider records nothing,
    so the trace is not built for it)."""
    global _OTEL, _OTEL_CHECKED
    if not _OTEL_CHECKED:
        _OTEL_CHECKED = True
        try:
            from opentelemetry import trace as otel_trace
        except ImportError:
            _OTEL = None
        else:
            _OTEL = otel_trace
    if _OTEL is None:
        return None
    if not configured(_OTEL.get_tracer_provider()):
        return None
    return _OTEL.get_tracer("guardrails_engine")


def configured(provider: object) -> bool:
    """Whether an OpenTelemetry tracer or meter provider is one the application set (an
    SDK's), not the API's default no-op or proxy (defined in the API's own modules)."""
    return not type(provider).__module__.startswith(
        ("opentelemetry.trace", "opentelemetry.metrics")
    )


def topic_attributes(trace: Trace) -> dict[str, float | str | bool]:
    """A run's topic scores as OpenTelemetry attributes (numbers, and topic names the
    policy gave): ``guardrails_engine.topic.{check}.{topic}`` per topic, and
    ``guardrails_engine.topic.{check}.best_score``/``best_topic``; and its drift
    numbers: ``guardrails_engine.drift.similarity``, ``.threshold``, ``.uncovered``,
    ``.reference`` (the reference file's hash)."""
    out: dict[str, float | str | bool] = {}
    if trace.drift:
        for key in ("similarity", "threshold", "uncovered", "reference"):
            out[f"guardrails_engine.drift.{key}"] = trace.drift[key]
    for check_id, scores in trace.topic_scores.items():
        prefix = f"guardrails_engine.topic.{check_id}"
        for topic, score in scores.items():
            out[f"{prefix}.{topic}"] = score
        if scores:
            best = max(scores, key=lambda t: scores[t])
            out[f"{prefix}.best_score"] = scores[best]
            out[f"{prefix}.best_topic"] = best
    return out


def _export(tracer: Any, trace: Trace, run: Run) -> None:
    start_ns = time.time_ns() - int(trace.duration_ms * 1_000_000)
    attributes: dict[str, Any] = {
        "guardrails_engine.trace_id": trace.trace_id,
        "guardrails_engine.kind": trace.kind,
        "guardrails_engine.policy": trace.policy,
        "guardrails_engine.policy_hash": trace.policy_hash,
        "guardrails_engine.decision": trace.decision or "",
        "guardrails_engine.ending": trace.ending,
        "guardrails_engine.findings": len(trace.findings),
        "guardrails_engine.chunks_in": trace.chunks_in,
        "guardrails_engine.chars_in": trace.chars_in,
        "guardrails_engine.chunks_out": trace.chunks_out,
        "guardrails_engine.chars_out": trace.chars_out,
        "guardrails_engine.holdback_max": trace.holdback_max,
        "guardrails_engine.holdback_median": trace.holdback_median,
        "guardrails_engine.duration_ms": trace.duration_ms,
    }
    if trace.first_out_ms is not None:
        attributes["guardrails_engine.first_out_ms"] = trace.first_out_ms
    for check_id, ms in trace.check_ms.items():
        attributes[f"guardrails_engine.check_ms.{check_id}"] = ms
    attributes.update(topic_attributes(trace))
    try:
        span = tracer.start_span(
            f"guardrails_engine.{trace.kind}", start_time=start_ns, attributes=attributes
        )
        for f in trace.findings:
            span.add_event(
                "guardrails_engine.finding",
                attributes={k: v for k, v in f.items() if v is not None},
            )
        span.end()
    except Exception as exc:
        logger.warning("guardrails_engine: OpenTelemetry export raised %s", type(exc).__name__)
