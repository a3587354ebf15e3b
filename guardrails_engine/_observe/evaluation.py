"""Model evaluation results as OpenTelemetry data: ``gen_ai.evaluation.result`` events.

Only when the OpenTelemetry API is installed and the application set a tracer provider
(as for the call spans, ``otel.py``): otherwise nothing is built.

* A span per evaluated call (one case on one model), named ``"evaluate {model}"``,
  with ``gen_ai.operation.name`` ``"evaluate"`` and ``gen_ai.request.model`` (the
  target's name), and ours under ``guardrails_engine.*``: case, model, status,
  decision, expected decision, duration, time to the first chunk and to the first
  released piece, tokens (input, output, judge).  A call that failed has
  ``error.type`` and an error status.
* A ``gen_ai.evaluation.result`` event on it per scored criterion:
  ``gen_ai.evaluation.name`` (the criterion), ``gen_ai.evaluation.score.value``
  (when it has one), ``gen_ai.evaluation.score.label`` (``pass``, ``fail`` or
  ``error``), ``error.type`` for an error; and one named ``decision`` when the case
  expects a guardrail decision.
* ``gen_ai.evaluation.explanation`` only where the explanation is ours and quotes
  nothing: ``exact``, ``regex`` and ``similarity`` criteria, the decision, and a
  blocked output.  A judge's explanation (a model's words, which may quote the
  output), a ``contains`` one (it quotes the case) and a ``schema`` one (it names the
  output's keys) are not exported.  The output text never is.

The outcomes are read by their attributes (``_evals`` is a layer of its own): ``case``,
``model``, ``status``, ``completion`` and ``scores`` (:class:`Outcome`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .._runtime.trace import configured, logger
from .otel import _api

__all__ = ["EVALUATION_EVENT", "evaluation_events", "export_outcomes"]

EVALUATION_EVENT: Final = "gen_ai.evaluation.result"
#: Criteria whose explanation we write and which quotes neither output nor case.
_OWN_EXPLANATIONS: Final = frozenset({"exact", "regex", "similarity"})
#: The explanation of every criterion of an output the policy blocked.
BLOCKED: Final = "the policy blocked the output"


def export_outcomes(outcomes: Iterable[Any], expected: Mapping[str, str | None]) -> None:
    """A span per outcome, with its evaluation events (nothing without a tracer
    provider).  ``expected``: each case's expected guardrail decision, by case id."""
    api = _api()
    if api is None:
        return
    trace = api[0]
    try:
        if not configured(trace.get_tracer_provider()):
            return
        tracer = trace.get_tracer("guardrails_engine")
        for outcome in outcomes:
            _span(trace, tracer, outcome, expected.get(outcome.case))
    except Exception as exc:  # observability never breaks the evaluation
        logger.warning("guardrails_engine: OpenTelemetry export raised %s", type(exc).__name__)


def _span(trace: Any, tracer: Any, outcome: Any, expected: str | None) -> None:
    c = outcome.completion
    ours: dict[str, Any] = {
        "case": outcome.case,
        "model": outcome.model,
        "status": outcome.status,
        "decision": c.decision,
        "expected_decision": expected,
        "duration_s": c.duration,
        "first_chunk_s": c.first_chunk,
        "first_release_s": c.first_release,
        "judge_tokens": sum(s.tokens for s in outcome.scores),
    }
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "evaluate",
        "gen_ai.request.model": outcome.model,
        **{f"guardrails_engine.{k}": v for k, v in ours.items() if v is not None},
    }
    if c.input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = c.input_tokens
    if c.output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = c.output_tokens
    if c.error is not None:
        attributes["error.type"] = "call_failed"
    end_ns = time.time_ns()
    start_ns = end_ns - int((c.duration or 0.0) * 1e9)
    span = tracer.start_span(
        f"evaluate {outcome.model}", start_time=start_ns, attributes=attributes
    )
    for event in evaluation_events(outcome, expected):
        span.add_event(EVALUATION_EVENT, attributes=event, timestamp=end_ns)
    if c.error is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR))
    span.end(end_time=end_ns)


def evaluation_events(outcome: Any, expected: str | None) -> list[dict[str, Any]]:
    """The attributes of the ``gen_ai.evaluation.result`` events of one outcome."""
    events: list[dict[str, Any]] = []
    c = outcome.completion
    if expected is not None and c.error is None:
        ok = c.decision == expected
        events.append(
            {
                "gen_ai.evaluation.name": "decision",
                "gen_ai.evaluation.score.value": 1.0 if ok else 0.0,
                "gen_ai.evaluation.score.label": "pass" if ok else "fail",
                "gen_ai.evaluation.explanation": f"guardrail decision {c.decision}, "
                f"expected {expected}",
            }
        )
    for s in outcome.scores:
        label = "error" if s.passed is None else "pass" if s.passed else "fail"
        event: dict[str, Any] = {
            "gen_ai.evaluation.name": s.criterion,
            "gen_ai.evaluation.score.label": label,
        }
        if s.score is not None:
            event["gen_ai.evaluation.score.value"] = float(s.score)
        if s.passed is None:
            event["error.type"] = "evaluation_error"
        if s.reason and (s.reason == BLOCKED or s.criterion in _OWN_EXPLANATIONS):
            event["gen_ai.evaluation.explanation"] = s.reason
        if s.tokens:
            event["guardrails_engine.tokens"] = s.tokens
        events.append(event)
    return events
