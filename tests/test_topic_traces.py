"""A run of a policy with a ``type: topic`` check records each topic's best score in
its trace (numbers, never text), and so in OpenTelemetry; a policy without one records
nothing of the kind (issue 23)."""

from __future__ import annotations

import itertools
import json
import sqlite3
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _otel import memory_exporter
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytest.importorskip("sklearn", reason="the topic check needs the `semantic` extra")

import guardrails_engine as ge
from guardrails_engine._observe.store import SCHEMA_VERSION, connect

DIM = 64
EMAIL = "jdoe@example.com"
DOSE = [
    "take 400 mg of ibuprofen every four hours",
    "adults take two 500 mg paracetamol tablets four times a day",
    "the dose of amoxicillin is 500 mg three times daily",
    "give the child 5 ml of syrup every six hours",
]
PRICE = [
    "acme charges 20 dollars per seat per month",
    "acme enterprise plan costs 45 dollars per user",
    "acme discounts annual billing by 15 percent",
    "acme pro plan price went up to 35 dollars",
]
TOPIC = "Take 400 mg of ibuprofen every four hours."
PASSING = "The weather is lovely in the mountains today."


def embed(texts: list[str]) -> Any:
    """Hashed bag of words: deterministic, no model."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().replace(".", " ").replace(",", " ").split():
            out[i, zlib.crc32(word.encode()) % DIM] += 1.0
        out[i, DIM - 1] += 0.5
    return out


def _policy(*, topic: bool = True, action: str = "block") -> ge.Policy:
    checks: list[dict[str, Any]] = [
        {"id": "pii", "type": "pii", "entities": ["EMAIL_ADDRESS"], "action": "repair"}
    ]
    if topic:
        checks.append(
            {
                "id": "topics",
                "type": "topic",
                "embedder": "test_topic_traces:embed",
                "deny": {"dosage": DOSE, "pricing": PRICE},
                "action": action,
            }
        )
    text = json.dumps({"version": 1, "name": "topics", "checks": checks})
    return ge.Policy.from_yaml(text, trusted_modules=["test_topic_traces"])


@pytest.fixture(scope="module")
def flagging() -> ge.Policy:
    return _policy(action="flag")


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    return memory_exporter()


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    span_exporter.clear()
    yield span_exporter
    span_exporter.clear()


def _one(policy: ge.Policy, text: str) -> ge.Trace:
    got: list[ge.Trace] = []
    policy.validate_sync(text, on_trace=got.append)
    (trace,) = got
    return trace


def test_the_trace_has_each_topics_best_score_in_the_run(flagging: ge.Policy) -> None:
    text = f"{PASSING} Mail {EMAIL}. {TOPIC} Have a nice day."
    result = flagging.validate_sync(text)
    trace = _one(flagging, text)
    scores = trace.topic_scores["topics"]
    assert set(scores) == {"dosage", "pricing"}
    (finding,) = [f for f in result.findings if f.check_type == "topic"]
    assert finding.score is not None
    assert scores["dosage"] == pytest.approx(finding.score, abs=1e-4)
    assert scores["dosage"] > scores["pricing"]
    # The best over the units: the dosage sentence alone scores the same.
    assert _one(flagging, TOPIC).topic_scores["topics"]["dosage"] == scores["dosage"]
    data = trace.to_dict()
    assert data["topic_scores"] == {"topics": scores}
    dumped = json.dumps(data)
    for word in ("ibuprofen", "weather", EMAIL, "jdoe"):
        assert word not in dumped


def test_scores_under_the_threshold_are_recorded_too(flagging: ge.Policy) -> None:
    trace = _one(flagging, PASSING)
    assert trace.findings == ()
    scores = trace.topic_scores["topics"]
    assert set(scores) == {"dosage", "pricing"}
    assert all(0.0 <= s < 0.75 for s in scores.values())


def test_no_unit_gives_zero_scores(flagging: ge.Policy) -> None:
    assert _one(flagging, "   ").topic_scores == {"topics": {"dosage": 0.0, "pricing": 0.0}}


def test_a_policy_without_a_topic_check_records_no_topic_scores() -> None:
    trace = _one(_policy(topic=False), f"{TOPIC} Mail {EMAIL}.")
    assert trace.topic_scores == {}
    assert "topic_scores" not in trace.to_dict()


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=8))
def test_a_stream_records_the_scores_validate_records(flagging: ge.Policy, cuts: list[int]) -> None:
    text = f"{PASSING} {TOPIC} Acme charges 20 dollars per seat. Bye"
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    got: list[ge.Trace] = []
    list(flagging.stream_sync(chunks, on_trace=got.append))
    (streamed,) = got
    assert streamed.topic_scores == _one(flagging, text).topic_scores


def test_a_blocked_stream_records_the_scores_so_far() -> None:
    policy = _policy()
    got: list[ge.Trace] = []
    chunks = [f"{PASSING} ", f"{TOPIC} ", "More text here. " * 5]
    stream = policy.stream_sync(chunks, on_trace=got.append)
    list(stream)
    (trace,) = got
    assert trace.decision == "block"
    assert trace.topic_scores["topics"]["dosage"] >= 0.75


def test_the_span_has_the_scores_as_numbers_and_no_text(
    flagging: ge.Policy, spans: InMemorySpanExporter
) -> None:
    text = f"Mail {EMAIL}. {TOPIC}"
    trace = _one(flagging, text)
    (span,) = [s for s in spans.get_finished_spans() if s.name == "guardrails_engine.validate"]
    attrs = dict(span.attributes or {})
    scores = trace.topic_scores["topics"]
    assert attrs["guardrails_engine.topic.topics.dosage"] == scores["dosage"]
    assert attrs["guardrails_engine.topic.topics.pricing"] == scores["pricing"]
    assert attrs["guardrails_engine.topic.topics.best_topic"] == "dosage"
    assert attrs["guardrails_engine.topic.topics.best_score"] == scores["dosage"]
    seen = json.dumps(
        [dict(span.attributes or {})] + [dict(e.attributes or {}) for e in span.events],
        default=str,
    )
    for word in (EMAIL, "jdoe", "ibuprofen"):
        assert word not in seen


def test_a_trace_store_keeps_the_scores_in_their_own_table(
    flagging: ge.Policy, tmp_path: Any
) -> None:
    db = tmp_path / "traces.db"
    with ge.TraceStore(db) as store:
        flagging.validate_sync(f"Mail {EMAIL}. {TOPIC}", on_trace=store)
        _policy(topic=False).validate_sync(TOPIC, on_trace=store)
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT check_id, topic, score FROM topic_scores ORDER BY topic").fetchall()
    assert [(c, t) for c, t, _ in rows] == [("topics", "dosage"), ("topics", "pricing")]
    assert rows[0][2] >= 0.75 > rows[1][2]
    dump = "\n".join(conn.iterdump())
    for word in (EMAIL, "jdoe", "ibuprofen"):
        assert word not in dump
    conn.close()


def test_a_schema_1_store_is_read_as_it_is_and_upgraded_when_written(
    flagging: ge.Policy, tmp_path: Any
) -> None:
    db = tmp_path / "old.db"
    ge.TraceStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE topic_scores")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    connect(db, create=False).close()  # a reader takes it as it is
    with ge.TraceStore(db) as store:
        flagging.validate_sync(TOPIC, on_trace=store)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT COUNT(*) FROM topic_scores").fetchone()[0] == 2
    conn.close()
