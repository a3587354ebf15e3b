"""A call's record as OpenTelemetry data, with the GenAI semantic conventions' names.

Only when the OpenTelemetry API is installed (the ``otel`` extra) and the application
set up a tracer or meter provider (without one, the API's no-op objects cost little).

* A span per call, kind CLIENT, named ``"{operation} {request model}"``, with
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model`` (and the
  ``gen_ai.request.*`` parameters the conventions name), ``gen_ai.response.model``,
  ``gen_ai.response.id``, ``gen_ai.response.finish_reasons``,
  ``gen_ai.usage.input_tokens``/``output_tokens``; our own attributes under
  ``guardrails_engine.*`` (trace id, policy and version, decision, ending, time to the
  first released piece, time to the upstream's first chunk, attempts).
* A ``gen_ai.guardrail.result`` span event per finding of every run (a run without one
  gives a single event with its decision): policy id and version, rule id (the check),
  result (the finding's action, or the run's decision), reason (never a value), plus
  ``guardrails_engine.part``/``index``/``tool``/``entity_type``.
* Captured content (opt-in, already screened): ``gen_ai.input.messages`` and
  ``gen_ai.output.messages`` (JSON, as the conventions shape them).
* Metrics: ``gen_ai.client.operation.duration`` (s),
  ``gen_ai.client.token.usage`` ({token}, ``gen_ai.token.type`` input/output),
  ``gen_ai.client.operation.time_to_first_chunk`` (s, streamed calls only), and our
  ``guardrails_engine.client.time_to_first_release`` (s).

The GenAI conventions are in development (``open-telemetry/semantic-conventions-genai``);
the guardrail attribute names follow the issue's reading of them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from .._runtime.trace import configured, logger, topic_attributes

if TYPE_CHECKING:
    from .calls import CallTrace

__all__ = ["export_call"]

#: Request parameters with a GenAI convention name.
REQUEST_ATTRIBUTES: Final = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
    "stop_sequences": "gen_ai.request.stop_sequences",
    "n": "gen_ai.request.choice.count",
}
GUARDRAIL_EVENT: Final = "gen_ai.guardrail.result"

_API: Any = None
_CHECKED = False
_INSTRUMENTS: dict[int, tuple[Any, Any, Any, Any]] = {}


def _api() -> Any:
    global _API, _CHECKED
    if not _CHECKED:
        _CHECKED = True
        try:
            import opentelemetry.metrics as metrics
            import opentelemetry.trace as trace
        except ImportError:
            _API = None
        else:
            _API = (trace, metrics)
    return _API


def _instruments(metrics: Any) -> tuple[Any, Any, Any, Any]:
    provider = metrics.get_meter_provider()
    got = _INSTRUMENTS.get(id(provider))
    if got is None:
        meter = metrics.get_meter("guardrails_engine")
        got = (
            meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration.",
            ),
            meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used.",
            ),
            meter.create_histogram(
                "gen_ai.client.operation.time_to_first_chunk",
                unit="s",
                description="Time to receive the first chunk in a streaming response.",
            ),
            meter.create_histogram(
                "guardrails_engine.client.time_to_first_release",
                unit="s",
                description="Time to the first piece released by the guard.",
            ),
        )
        _INSTRUMENTS.clear()  # one provider at a time
        _INSTRUMENTS[id(provider)] = got
    return got


def export_call(record: CallTrace) -> None:
    """Send ``record`` to the tracer and meter providers (nothing if not installed)."""
    api = _api()
    if api is None:
        return
    trace, metrics = api
    try:  # (nothing is built for the API's no-op providers)
        if configured(trace.get_tracer_provider()):
            _span(trace, record)
        if configured(metrics.get_meter_provider()):
            _metrics(metrics, record)
    except Exception as exc:  # observability never breaks the call
        logger.warning("guardrails_engine: OpenTelemetry export raised %s", type(exc).__name__)


def _common(record: CallTrace) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": record.operation,
        "gen_ai.provider.name": record.provider,
    }
    if record.request_model is not None:
        attributes["gen_ai.request.model"] = record.request_model
    if record.response_model is not None:
        attributes["gen_ai.response.model"] = record.response_model
    return attributes


def _span(trace: Any, record: CallTrace) -> None:
    attributes = _common(record)
    for key, value in record.parameters.items():
        name = REQUEST_ATTRIBUTES.get(key)
        if name is not None and value is not None:
            attributes[name] = (
                [value] if name.endswith("stop_sequences") and isinstance(value, str) else value
            )
    last = record.last
    if last.response_id is not None:
        attributes["gen_ai.response.id"] = last.response_id
    if last.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = list(last.finish_reasons)
    if record.input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = record.input_tokens
    if record.output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = record.output_tokens
    if record.error is not None:
        attributes["error.type"] = record.error
    ours = {
        "trace_id": record.trace_id,
        "policy": record.policy,
        "policy_hash": record.policy_hash,
        "decision": record.decision,
        "ending": record.ending,
        "streamed": record.streamed,
        "duration_ms": record.duration_ms,
        "first_out_ms": record.first_out_ms,
        "upstream_first_ms": record.upstream_first_ms,
        "attempts": len(record.attempts),
    }
    attributes.update({f"guardrails_engine.{k}": v for k, v in ours.items() if v is not None})
    if record.prompt is not None:
        attributes["gen_ai.input.messages"] = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": record.prompt}]}]
        )
    if record.output is not None:
        attributes["gen_ai.output.messages"] = json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": record.output}]}]
        )
    start_ns = int(record.started_at * 1e9)
    end_ns = start_ns + int(record.duration_ms * 1e6)
    tracer = trace.get_tracer("guardrails_engine")
    name = (
        f"{record.operation} {record.request_model}" if record.request_model else record.operation
    )
    span = tracer.start_span(
        name, kind=trace.SpanKind.CLIENT, start_time=start_ns, attributes=attributes
    )
    for event in guardrail_events(record):
        span.add_event(GUARDRAIL_EVENT, attributes=event, timestamp=end_ns)
    if record.error is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR))
    span.end(end_time=end_ns)


def guardrail_events(record: CallTrace) -> list[dict[str, Any]]:
    """The attributes of the ``gen_ai.guardrail.result`` events of a call."""
    events: list[dict[str, Any]] = []
    base = {
        "gen_ai.guardrail.policy.id": record.policy,
        "gen_ai.guardrail.policy.version": record.policy_hash,
    }
    for run in record.runs:
        where: dict[str, Any] = {
            "guardrails_engine.part": run.part,
            "guardrails_engine.index": run.index,
        }
        if run.name is not None:
            where["guardrails_engine.tool"] = run.name
        where.update(topic_attributes(run.trace))
        if not run.trace.findings:
            events.append(
                {**base, **where, "gen_ai.guardrail.result": run.trace.decision or run.trace.ending}
            )
        for f in run.trace.findings:
            event = {
                **base,
                **where,
                "gen_ai.guardrail.rule.id": f["check_id"],
                "gen_ai.guardrail.result": f["action"],
                "gen_ai.guardrail.reason": f["reason"],
            }
            if f.get("entity_type"):
                event["guardrails_engine.entity_type"] = f["entity_type"]
            events.append(event)
    return events


def _metrics(metrics: Any, record: CallTrace) -> None:
    duration, tokens, first_chunk, first_release = _instruments(metrics)
    attributes = _common(record)
    if record.error is not None:
        attributes["error.type"] = record.error
    duration.record(record.duration_ms / 1000, attributes)
    for kind, count in (("input", record.input_tokens), ("output", record.output_tokens)):
        if count is not None:
            tokens.record(count, {**attributes, "gen_ai.token.type": kind})
    if record.streamed and record.upstream_first_ms is not None:
        first_chunk.record(record.upstream_first_ms / 1000, attributes)
    if record.first_out_ms is not None:
        first_release.record(record.first_out_ms / 1000, attributes)
