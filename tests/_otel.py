"""An in-memory span exporter on the process's global tracer provider (shared by tests)."""

from __future__ import annotations

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def memory_exporter() -> InMemorySpanExporter:
    """A new exporter listening on the global tracer provider (set once per process: when
    another test set it first, the exporter is added to that one)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel_trace.set_tracer_provider(provider)
    current = otel_trace.get_tracer_provider()
    if current is not provider:
        assert isinstance(current, TracerProvider)
        current.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter
