"""The bounded record of hold-back sizes that traces and evaluations read."""

from __future__ import annotations

import statistics

from hypothesis import given
from hypothesis import strategies as st

import guardrails_engine as ge
from guardrails_engine._runtime.stats import EXACT, Holdbacks


@given(st.lists(st.integers(0, EXACT - 1), max_size=200))
def test_small_values_are_exact(values: list[int]) -> None:
    h = Holdbacks(values)
    assert len(h) == len(values)
    assert list(h) == sorted(values)
    assert h.max == max(values, default=0)
    assert h.median() == (float(statistics.median(values)) if values else 0.0)
    if values:
        ordered = sorted(values)
        assert h.quantile(0.95) == ordered[min(len(values) - 1, int(0.95 * len(values)))]


def test_large_values_are_bucketed_and_memory_stays_small() -> None:
    h = Holdbacks(range(0, 50_000_000, 997))
    assert len(h.counts) < EXACT + 2000
    assert h.max == max(range(0, 50_000_000, 997))
    # A bucket is within 1% of the values it holds.
    assert abs(h.median() - 25_000_000) / 25_000_000 < 0.01


def test_a_long_stream_keeps_a_bounded_record() -> None:
    # A schema check releasing on completion holds everything: the hold-back
    # grows every chunk, and the record must not grow with it.
    policy = ge.Policy.from_yaml(
        "version: 1\nname: j\nchecks:\n  - {id: j, type: schema, schema: {type: array}}\n"
    )
    text = "[" + ",".join(["1"] * 20_000) + "]"
    stream = policy.stream_sync([text[i : i + 2] for i in range(0, len(text), 2)])
    assert "".join(stream) == text
    record = stream.run.holdbacks
    assert len(record) == len(text) // 2 + 1
    assert len(record.counts) < EXACT + 2000
