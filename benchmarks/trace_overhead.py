"""Tracing overhead on the streaming benchmark.

Streams a 32,000-character text in 4-character chunks through the pattern-PII
policy, interleaving runs with tracing off and on, and prints the ratio:

* off: the ``guardrails_engine`` logger not configured, no callback;
* log: the logger at INFO writing one JSON line per run to a file;
* callback: a trace callback on the policy (the record is built for it);
* otel: an OpenTelemetry SDK tracer provider with an in-memory exporter
  (only if ``opentelemetry-sdk`` is installed).

Target (issue): at most 5 % overhead with logging to a file.

    .venv/bin/python benchmarks/trace_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import _common as c

import guardrails_engine as ge


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size = 8_000 if args.quick else 32_000
    rounds = 3 if args.quick else 7
    text = c.pii_text(size)
    chunks = c.chunks(text, 4)
    records: list[ge.Trace] = []
    plain = ge.load_policy(c.PATTERN_PII)
    with_callback = ge.load_policy(c.PATTERN_PII, on_trace=records.append)

    logger = logging.getLogger("guardrails_engine")
    log_path = Path(tempfile.mkdtemp()) / "traces.jsonl"
    handler = logging.FileHandler(log_path, encoding="utf-8")

    def stream(policy: ge.Policy) -> str:
        return "".join(policy.stream_sync(chunks))

    def logged() -> str:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            return stream(plain)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)

    scenarios = {
        "off": lambda: stream(plain),
        "log": logged,
        "callback": lambda: stream(with_callback),
    }
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        trace.set_tracer_provider(provider)
        scenarios["otel"] = lambda: stream(plain)
    except ImportError:
        pass

    best = {name: float("inf") for name in scenarios}
    outputs = set()
    for _ in range(rounds):  # interleaved, so background load hits every scenario alike
        for name, fn in scenarios.items():
            seconds, out = c.timed(fn, repeat=1, warmup=False)
            best[name] = min(best[name], seconds)
            outputs.add(out)
    c.header("trace overhead")
    print(
        f"# {size:,} chars, 4-char chunks, {len(chunks):,} chunks, "
        f"best of {rounds} interleaved runs"
    )
    for name, seconds in best.items():
        ratio = seconds / best["off"]
        percent = (ratio - 1) * 100
        print(f"{name:<9} {seconds * 1000:8.1f} ms   {ratio:5.3f}x of off   ({percent:+5.1f} %)")
    lines = log_path.read_text(encoding="utf-8").splitlines()
    print(f"log lines written: {len(lines)}; callback records: {len(records)}")
    print("outputs identical across scenarios:", "OK" if len(outputs) == 1 else "MISMATCH")
    verdict = "PASS" if best["log"] <= best["off"] * 1.05 else "FAIL"
    cost = (best["log"] / best["off"] - 1) * 100
    print(f"{verdict}  target: logging to a file costs at most 5 % ({cost:+.1f} %)")


if __name__ == "__main__":
    main()
