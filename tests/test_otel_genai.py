"""Call traces in OpenTelemetry, seen by a real OTLP/HTTP receiver.

A small HTTP server on 127.0.0.1 decodes the protobuf payloads that the OTLP/HTTP
exporters (``opentelemetry-exporter-otlp-proto-http``) send to ``/v1/traces`` and
``/v1/metrics``; a child process (clean global providers, time and memory limits)
records guarded calls and validate runs with the SDK pointed at it.  The spans carry
the GenAI semantic-convention attributes and ``gen_ai.guardrail.result`` events, the
metrics the GenAI names, and no planted value is in any payload, captured content or not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from _child import run_limited
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

EMAIL = "jdoe@example.com"
CARD = "4111 1111 1111 1111"
SECRET = "sk-" + "a1B2c3D4e5" * 3
MAX_BODY = 10_000_000


class Receiver:
    """An OTLP/HTTP receiver on 127.0.0.1: keeps every payload, raw and decoded."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.spans: list[Any] = []
        self.metrics: list[Any] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(min(length, MAX_BODY))
                received.raw.append(body)
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    for rs in request.resource_spans:
                        for ss in rs.scope_spans:
                            received.spans.extend(ss.spans)
                elif self.path == "/v1/metrics":
                    metrics = ExportMetricsServiceRequest.FromString(body)
                    for rm in metrics.resource_metrics:
                        for sm in rm.scope_metrics:
                            received.metrics.extend(sm.metrics)
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


CHILD = """
import logging, sys
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from guardrails_engine._runtime import trace as ours

unset = (ours._otel(), ours.configured(metrics.get_meter_provider()))
url = {url!r}
tracing = TracerProvider()
tracing.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces")))
trace.set_tracer_provider(tracing)
reader = PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=url + "/v1/metrics"), export_interval_millis=600_000
)
meters = MeterProvider(metric_readers=[reader])
metrics.set_meter_provider(meters)
print("providers:", unset[0] is None, unset[1], ours._otel() is not None)
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")

import guardrails_engine as ge

policy = ge.load_policy("policies/support-chat.yaml")
for model, capture in (("gpt-test", False), ("gpt-capture", True)):
    rec = ge.CallRecorder(
        policy, provider="openai", request_model=model, capture_content=capture,
        parameters={{"temperature": 0.5, "max_tokens": 100, "stop": "END"}},
    )
    rec.prompt("my card is {card}")
    push = policy.push_sync(trace_id=rec.trace_id, on_trace=rec.run("choice", 0))
    for chunk in ["Write to ", "{email}", " or pay with {card}."]:
        rec.upstream_chunk()
        rec.released(push.feed(chunk))
    rec.released(push.finish())
    tool = policy.push_sync(trace_id=rec.trace_id, on_trace=rec.run("tool_call", 1, "lookup"))
    tool.feed("key {secret}")
    tool.finish()
    rec.response(id="chatcmpl-42", model="gpt-test-2025")
    rec.usage(input_tokens=21, output_tokens=13)
    rec.finish_reason("stop")
    rec.finish_reason("tool_calls")
    rec.finish()
policy.validate_sync("mail {email}", trace_id="alone")
tracing.force_flush()
meters.force_flush()
tracing.shutdown()
meters.shutdown()
"""


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


@pytest.fixture(scope="module")
def received() -> Iterator[tuple[Receiver, str]]:
    """One child: a call without content capture (gpt-test), one with (gpt-capture), and a
    validate run on its own."""
    with Receiver() as receiver:
        code = CHILD.format(url=receiver.url, card=CARD, email=EMAIL, secret=SECRET)
        log = run_limited(code, seconds=120)
        yield receiver, log


def _chat(receiver: Receiver, model: str = "gpt-test") -> Any:
    chats = [s for s in receiver.spans if s.name == f"chat {model}"]
    assert len(chats) == 1, [s.name for s in receiver.spans]
    return chats[0]


MODELS = pytest.mark.parametrize("model", ["gpt-test", "gpt-capture"])


@MODELS
def test_a_chat_span_with_the_genai_attributes(received: tuple[Receiver, str], model: str) -> None:
    receiver, _ = received
    span = _chat(receiver, model)
    assert span.kind == span.SPAN_KIND_CLIENT
    attrs = _attrs(span.attributes)
    assert {k: v for k, v in attrs.items() if k.startswith("gen_ai.") and "messages" not in k} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.stop_sequences": ["END"],
        "gen_ai.response.model": "gpt-test-2025",
        "gen_ai.response.id": "chatcmpl-42",
        "gen_ai.response.finish_reasons": ["stop", "tool_calls"],
        "gen_ai.usage.input_tokens": 21,
        "gen_ai.usage.output_tokens": 13,
    }
    assert attrs["guardrails_engine.policy"] == "support-chat"
    assert attrs["guardrails_engine.decision"] == "block"
    assert attrs["guardrails_engine.attempts"] == 1
    assert {"guardrails_engine.first_out_ms", "guardrails_engine.upstream_first_ms"} <= set(attrs)
    assert span.end_time_unix_nano >= span.start_time_unix_nano


@MODELS
def test_guardrail_results_are_events(received: tuple[Receiver, str], model: str) -> None:
    receiver, _ = received
    span = _chat(receiver, model)
    events = [(e.name, _attrs(e.attributes)) for e in span.events]
    assert {name for name, _ in events} == {"gen_ai.guardrail.result"}
    got = sorted(
        (
            a["guardrails_engine.part"],
            a["gen_ai.guardrail.rule.id"],
            a["gen_ai.guardrail.result"],
            a.get("guardrails_engine.entity_type"),
        )
        for _, a in events
    )
    assert got == [
        ("choice", "pii", "repair", "CREDIT_CARD"),
        ("choice", "pii", "repair", "EMAIL_ADDRESS"),
        ("tool_call", "secrets", "block", None),
    ]
    for _, a in events:
        assert a["gen_ai.guardrail.policy.id"] == "support-chat"
        assert len(a["gen_ai.guardrail.policy.version"]) == 16
        assert a["gen_ai.guardrail.reason"]
    assert [a["guardrails_engine.tool"] for _, a in events if "guardrails_engine.tool" in a] == [
        "lookup"
    ]


def test_a_run_on_its_own_keeps_its_own_span(received: tuple[Receiver, str]) -> None:
    receiver, _ = received
    names = sorted(s.name for s in receiver.spans)
    # the calls' runs have no span of their own
    assert names == ["chat gpt-capture", "chat gpt-test", "guardrails_engine.validate"]


def test_genai_metrics(received: tuple[Receiver, str]) -> None:
    receiver, _ = received
    by_name = {m.name: m for m in receiver.metrics}
    assert set(by_name) == {
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
        "guardrails_engine.client.time_to_first_release",
    }
    assert by_name["gen_ai.client.operation.duration"].unit == "s"
    usage = by_name["gen_ai.client.token.usage"].histogram.data_points
    got = sorted(
        (
            _attrs(p.attributes)["gen_ai.request.model"],
            _attrs(p.attributes)["gen_ai.token.type"],
            p.sum,
        )
        for p in usage
    )
    assert got == [
        ("gpt-capture", "input", 21),
        ("gpt-capture", "output", 13),
        ("gpt-test", "input", 21),
        ("gpt-test", "output", 13),
    ]


@MODELS
def test_no_planted_value_in_spans_metrics_or_logs(
    received: tuple[Receiver, str], model: str
) -> None:
    receiver, log = received
    capture = model == "gpt-capture"
    assert receiver.raw
    # fragments that a timing (0.4111 ms) cannot contain by chance
    for value in (EMAIL, CARD, SECRET, "jdoe@", "4111 1111", "1111 1111"):
        assert all(value.encode() not in body for body in receiver.raw)
        assert value not in log
    attrs = _attrs(_chat(receiver, model).attributes)
    if capture:
        assert '"content": "my card is <CREDIT_CARD>"' in attrs["gen_ai.input.messages"]
        assert (
            "Write to <EMAIL_ADDRESS> or pay with <CREDIT_CARD>." in attrs["gen_ai.output.messages"]
        )
    else:
        assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    assert '"kind":"call"' in log  # the logger had the call, at INFO


def test_nothing_is_built_for_the_apis_own_providers(received: tuple[Receiver, str]) -> None:
    # the child checked before it set its providers, and after
    _, log = received
    assert "providers: True False True\n" in log  # no tracer, not configured; then one
