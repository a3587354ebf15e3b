"""Model evaluation with OpenTelemetry set up: a span per evaluated call with a
``gen_ai.evaluation.result`` event per scored criterion (issue 21), against a fake
model server driven by the real SDK client; never an output's text or a value the
policy masked; nothing built when OpenTelemetry is not set up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _child import run_limited
from _fake_models import FakeModels, Scripted, prompt_of, say
from _otel import memory_exporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_otel_genai import Receiver, _attrs

import guardrails_engine as ge
from guardrails_engine import modeleval as me

EMAIL = "jdoe.secret@example.com"
POLICY_FULL = """
version: 1
name: eval-events
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS], action: repair}
  - {id: words, type: content, terms: [forbidden], action: block}
"""
POLICY = ge.Policy.from_yaml(POLICY_FULL)
ANSWERS = {
    "email": f"Write to {EMAIL} for refunds within 30 days.",
    "block": "This is forbidden territory.",
    "exact": "no",
}
CASES = """
- id: email
  input: "email: how do I reach support?"
  criteria: [{contains: "refunds within"}, {regex: "Write to \\\\S+"}, {judge: "gives a contact"}]
  expect: {decision: repair}
- id: block
  input: "block: say something"
  criteria: [{exact: "yes"}]
  expect: {decision: pass}
- id: exact
  input: "exact: yes or no?"
  criteria: [{exact: "no"}]
"""


def _answer(provider: str, model: str, body: dict[str, Any]) -> Scripted:
    prompt = prompt_of(body)
    if model == "judge":  # a judge that quotes the output it was shown
        response = prompt.split("<response>", 1)[-1][:200]
        return say(json.dumps({"score": 0.9, "reason": f"it says: {response}"}))
    if model == "broken":
        return Scripted(status=500)
    return say(ANSWERS[prompt.split(":", 1)[0]], size=3)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeModels]:
    server = FakeModels(_answer).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    return memory_exporter()


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    span_exporter.clear()
    yield span_exporter
    span_exporter.clear()


def _evaluate(fake: FakeModels, tmp_path: Path, *models: str) -> me.ModelReport:
    path = tmp_path / "cases.yaml"
    path.write_text(CASES)
    targets = [
        me.target(POLICY, f"openai:{m}", base_url=f"{fake.base_url}/v1", api_key="k")
        for m in models
    ]
    judge = me.judge("openai:judge", base_url=f"{fake.base_url}/v1", api_key="k")
    return me.evaluate_models(POLICY, me.load_model_cases(path), targets, judge=judge)


def _evaluation_spans(exporter: InMemorySpanExporter) -> dict[tuple[str, str], ReadableSpan]:
    out = {}
    for s in exporter.get_finished_spans():
        if s.name.startswith("evaluate "):
            attrs = dict(s.attributes or {})
            out[str(attrs["guardrails_engine.case"]), str(attrs["guardrails_engine.model"])] = s
    return out


def _events(span: ReadableSpan) -> dict[str, dict[str, Any]]:
    got = [e for e in span.events if e.name == "gen_ai.evaluation.result"]
    assert len(got) == len(span.events)
    return {
        str((e.attributes or {})["gen_ai.evaluation.name"]): dict(e.attributes or {}) for e in got
    }


def test_each_scored_outcome_is_a_span_with_evaluation_events(
    fake: FakeModels, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    report = _evaluate(fake, tmp_path, "good")
    got = _evaluation_spans(spans)
    assert set(got) == {(o.case, o.model) for o in report.outcomes}
    email = got["email", "openai:good"]
    attrs = dict(email.attributes or {})
    assert attrs["gen_ai.operation.name"] == "evaluate"
    assert attrs["gen_ai.request.model"] == "openai:good"
    assert attrs["guardrails_engine.status"] == "pass"
    assert attrs["guardrails_engine.decision"] == "repair"
    assert attrs["guardrails_engine.expected_decision"] == "repair"
    assert attrs["guardrails_engine.judge_tokens"] >= 0
    events = _events(email)
    assert set(events) == {"decision", "contains", "regex", "judge"}
    for name in ("decision", "contains", "regex", "judge"):
        assert events[name]["gen_ai.evaluation.score.label"] == "pass", name
    assert events["judge"]["gen_ai.evaluation.score.value"] == pytest.approx(0.9)
    assert events["regex"]["gen_ai.evaluation.score.value"] == 1.0
    # A judge's words (which quote the output) and a contains criterion's are not exported.
    assert "gen_ai.evaluation.explanation" not in events["judge"]
    assert "gen_ai.evaluation.explanation" not in events["contains"]
    blocked = _events(got["block", "openai:good"])
    assert blocked["decision"]["gen_ai.evaluation.score.label"] == "fail"
    assert blocked["decision"]["gen_ai.evaluation.explanation"] == (
        "guardrail decision block, expected pass"
    )
    assert blocked["exact"]["gen_ai.evaluation.explanation"] == "the policy blocked the output"
    exact = _events(got["exact", "openai:good"])
    assert set(exact) == {"exact"}  # no decision expected, no decision event
    assert exact["exact"]["gen_ai.evaluation.score.label"] == "pass"


def test_no_output_text_nor_masked_value_in_any_span_or_event(
    fake: FakeModels, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    report = _evaluate(fake, tmp_path, "good")
    assert report.outcomes  # the judge did see and quote the (masked) output
    seen = json.dumps(
        [
            [dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events]]
            for s in spans.get_finished_spans()
        ],
        default=str,
    )
    for text in (EMAIL, "jdoe", "Write to", "forbidden", "it says"):
        assert text not in seen, text
    # The masked output is not in the evaluation spans either (a guardrail event of a
    # call span may name the entity type it found).
    ours = json.dumps(
        [
            [dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events]]
            for s in _evaluation_spans(spans).values()
        ],
        default=str,
    )
    assert "EMAIL_ADDRESS" not in ours and "30 days" not in ours


def test_a_failed_call_is_an_error_span_without_events(
    fake: FakeModels, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    report = _evaluate(fake, tmp_path, "broken")
    assert {o.status for o in report.outcomes} == {"error"}
    for span in _evaluation_spans(spans).values():
        assert dict(span.attributes or {})["error.type"] == "call_failed"
        assert span.status.status_code.name == "ERROR"
        assert span.events == ()


def test_nothing_is_built_without_a_tracer_provider(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    rec.write_text(json.dumps({"case": "exact", "model": "m", "output": "no"}) + "\n")
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES)
    out = run_limited(
        f"""
        import logging
        from opentelemetry import trace
        import guardrails_engine as ge
        from guardrails_engine import modeleval as me
        def refuse(*a, **k):
            raise AssertionError("a tracer was asked for")
        trace.ProxyTracerProvider.get_tracer = refuse
        trace.get_tracer = refuse
        warnings = []
        logging.getLogger("guardrails_engine").addHandler(
            type("H", (logging.Handler,), {{"emit": lambda s, r: warnings.append(r)}})())
        policy = ge.Policy.from_yaml({POLICY_TEXT!r})
        cases = [c for c in me.load_model_cases({str(cases)!r}) if c.id == "exact"]
        report = me.evaluate_models(policy, cases, me.recorded.targets(policy, {str(rec)!r}))
        print(report.pass_rate(), len(warnings))
        """
    )
    assert out.split() == ["1.0", "0"]


POLICY_TEXT = (
    "version: 1\nname: p\nchecks:\n"
    "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS], action: repair}\n"
)


OTLP_CHILD = """
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
import guardrails_engine as ge
from guardrails_engine import modeleval as me

tracing = TracerProvider()
tracing.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint={url!r} + "/v1/traces")))
trace.set_tracer_provider(tracing)
policy = ge.Policy.from_yaml({policy!r})
report = me.evaluate_models(
    policy, me.load_model_cases({cases!r}), me.recorded.targets(policy, {rec!r})
)
print(sorted(o.status for o in report.outcomes))
tracing.force_flush()
tracing.shutdown()
"""


def test_a_real_otlp_receiver_sees_the_evaluation_events(tmp_path: Path) -> None:
    """Recorded outputs (offline), exported by the OTLP/HTTP exporter in a child process."""
    rec = tmp_path / "rec.jsonl"
    rec.write_text(
        "".join(
            json.dumps({"case": case, "model": "m", "output": out}) + "\n"
            for case, out in ANSWERS.items()
        )
    )
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES.replace(', {judge: "gives a contact"}', ""))
    with Receiver() as receiver:
        code = OTLP_CHILD.format(
            url=receiver.url, policy=POLICY_FULL, cases=str(cases), rec=str(rec)
        )
        assert run_limited(code, seconds=120).split("\n")[0] == "['fail', 'pass', 'pass']"
        spans = {
            _attrs(s.attributes)["guardrails_engine.case"]: s
            for s in receiver.spans
            if s.name.startswith("evaluate ")
        }
        raw = b"".join(receiver.raw)
    assert set(spans) == {"email", "block", "exact"}
    assert {s.name for s in spans.values()} == {"evaluate m"}
    events = {
        _attrs(e.attributes)["gen_ai.evaluation.name"]: _attrs(e.attributes)
        for e in spans["email"].events
    }
    assert {e.name for e in spans["email"].events} == {"gen_ai.evaluation.result"}
    assert set(events) == {"decision", "contains", "regex"}
    assert events["regex"]["gen_ai.evaluation.score.value"] == 1.0
    assert events["regex"]["gen_ai.evaluation.score.label"] == "pass"
    assert events["decision"]["gen_ai.evaluation.explanation"] == (
        "guardrail decision repair, expected repair"
    )
    for text in (EMAIL, "jdoe", "Write to", "forbidden"):
        assert text.encode() not in raw, text
