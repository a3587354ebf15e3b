"""A policy's ``drift:`` reference: embedded once at compile time; each run's trace
records its best similarity and whether it is uncovered (numbers, never text or
vectors), in the trace, OpenTelemetry and the trace store; ``guardrails-engine drift``
reads those numbers from a trace database (issue 23)."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _otel import memory_exporter
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_drift import COOKING, SUPPORT, generate, shifted

pytest.importorskip("sklearn", reason="the drift reference needs the `semantic` extra")

import itertools

import guardrails_engine as ge
from guardrails_engine._cli import main
from guardrails_engine._observe.store import SCHEMA_VERSION

TRUST = ["test_drift", "test_drift_policy"]
REFERENCE = generate(SUPPORT, 500, 1)
#: A word of the reference's texts (the privacy tests look for it).
SECRET = "Thursday"
COVERED = "Your order 1042 has shipped and should arrive on Friday."
UNCOVERED = "Bake the cake for 20 minutes until the top is golden."
CALLS: list[int] = []


def recording(texts: list[str]) -> Any:
    """The bag-of-words embedder of test_drift, noting the thread of each call."""
    from test_drift import hashed

    CALLS.append(threading.get_ident())
    return hashed(texts)


def write_policy(folder: Path, drift: dict[str, Any] | None = None, **extra: Any) -> Path:
    (folder / "ref.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in REFERENCE), encoding="utf-8"
    )
    drift = drift or {"reference": "ref.jsonl", "embedder": "test_drift:hashed"}
    policy = {
        "version": 1,
        "name": "drifting",
        "checks": [{"id": "len", "type": "length", "max_chars": 100_000}],
        "drift": drift,
        **extra,
    }
    path = folder / "policy.yaml"
    path.write_text(json.dumps(policy, indent=1), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> ge.Policy:
    return ge.load_policy(write_policy(tmp_path_factory.mktemp("p")), trusted_modules=TRUST)


def one(policy: ge.Policy, text: str) -> ge.Trace:
    got: list[ge.Trace] = []
    policy.validate_sync(text, on_trace=got.append)
    (trace,) = got
    return trace


def test_each_run_records_its_similarity_and_whether_it_is_uncovered(policy: ge.Policy) -> None:
    near, far = one(policy, COVERED).drift, one(policy, UNCOVERED).drift
    assert near["uncovered"] is False and far["uncovered"] is True
    assert near["similarity"] >= near["threshold"] > far["similarity"]
    assert near["reference_texts"] == len(REFERENCE) and near["quantile"] == 0.05
    assert set(near) == {
        "reference",
        "similarity",
        "threshold",
        "uncovered",
        "quantile",
        "reference_texts",
    }
    assert "drift" in one(policy, COVERED).to_dict()


def test_a_policy_without_drift_records_nothing() -> None:
    text = "version: 1\nname: p\nchecks: [{id: len, type: length, max_chars: 10}]\n"
    assert one(ge.Policy.from_yaml(text), COVERED).drift == {}


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, len(COVERED + " " + UNCOVERED) - 1), max_size=6))
def test_a_stream_records_what_validate_records(policy: ge.Policy, cuts: list[int]) -> None:
    text = COVERED + " " + UNCOVERED
    bounds = [0, *sorted(set(cuts)), len(text)]
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    got: list[ge.Trace] = []
    assert "".join(policy.stream_sync(chunks, on_trace=got.append)) == text
    assert got[0].drift == one(policy, text).drift


def test_only_the_first_max_chars_are_measured(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        {"reference": "ref.jsonl", "embedder": "test_drift:hashed", "max_chars": len(COVERED)},
    )
    policy = ge.load_policy(path, trusted_modules=TRUST)
    assert one(policy, COVERED + " " + UNCOVERED * 20).drift == one(policy, COVERED).drift


def test_the_reference_is_embedded_once_at_compile_time(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, {"reference": "ref.jsonl", "embedder": "test_drift_policy:recording"}
    )
    CALLS.clear()
    policy = ge.load_policy(path, trusted_modules=TRUST)
    assert len(CALLS) == 1  # the whole reference, once
    for _ in range(3):
        one(policy, COVERED)
    assert len(CALLS) == 4  # then one text per run


def test_async_validate_measures_off_the_event_loop(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, {"reference": "ref.jsonl", "embedder": "test_drift_policy:recording"}
    )
    policy = ge.load_policy(path, trusted_modules=TRUST)

    async def run() -> int:
        CALLS.clear()
        got: list[ge.Trace] = []
        await policy.validate(COVERED, on_trace=got.append)  # a short text
        assert got[0].drift["uncovered"] is False
        return threading.get_ident()

    loop_thread = anyio.run(run)
    assert CALLS and all(t != loop_thread for t in CALLS)


def test_async_validate_of_a_short_text_scores_topics_off_the_event_loop() -> None:
    from test_topic_traces import DOSE, PRICE

    policy = ge.Policy.from_yaml(
        json.dumps(
            {
                "version": 1,
                "name": "t",
                "checks": [
                    {
                        "id": "topics",
                        "type": "topic",
                        "embedder": "test_drift_policy:recording",
                        "deny": {"dosage": DOSE, "pricing": PRICE},
                    }
                ],
            }
        ),
        trusted_modules=TRUST,
    )

    async def run() -> int:
        CALLS.clear()
        result = await policy.validate("Take 400 mg of ibuprofen every four hours.")
        assert result.decision.value == "block"
        return threading.get_ident()

    loop_thread = anyio.run(run)
    assert CALLS and all(t != loop_thread for t in CALLS)


@pytest.fixture(scope="module")
def span_exporter() -> InMemorySpanExporter:
    return memory_exporter()


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    span_exporter.clear()
    yield span_exporter
    span_exporter.clear()


def test_spans_and_the_trace_store_hold_numbers_never_the_references_text(
    policy: ge.Policy, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    db = tmp_path / "traces.db"
    with ge.TraceStore(db) as store:
        trace = one(policy, UNCOVERED)
        policy.validate_sync(COVERED, on_trace=store)
        policy.validate_sync(UNCOVERED, on_trace=store)
    (span, *_) = [s for s in spans.get_finished_spans() if s.name == "guardrails_engine.validate"]
    attrs = dict(span.attributes or {})
    assert attrs["guardrails_engine.drift.uncovered"] is True
    assert attrs["guardrails_engine.drift.similarity"] == trace.drift["similarity"]
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT uncovered, similarity, threshold FROM drift ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [0, 1] and rows[0][1] >= rows[0][2] > rows[1][1]
    dump = "\n".join(conn.iterdump()).lower()
    conn.close()
    empty = tmp_path / "empty.db"
    ge.TraceStore(empty).close()
    conn = sqlite3.connect(empty)
    schema = "\n".join(conn.iterdump()).lower()  # (the schema's own words)
    conn.close()
    values = " ".join(
        str(v).lower()
        for s in spans.get_finished_spans()
        for v in (s.attributes or {}).values()
        if isinstance(v, str)
    )
    # No word of the reference (nor of the runs' texts) in the store or in the spans.
    words = {w.strip(".,").lower() for t in [*REFERENCE, COVERED, UNCOVERED] for w in t.split()}
    words = {w for w in words if len(w) >= 5 and w not in schema}
    assert SECRET.lower() in words and len(words) > 20
    for word in words:
        assert word not in dump and word not in values, word


def test_a_schema_2_store_is_upgraded_in_place(policy: ge.Policy, tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    ge.TraceStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE drift")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with ge.TraceStore(db) as store:
        policy.validate_sync(COVERED, on_trace=store)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert conn.execute("SELECT COUNT(*) FROM drift").fetchone()[0] == 1
    conn.close()


@pytest.mark.parametrize(
    "drift, field, message",
    [
        ({"reference": "../ref.jsonl"}, "drift.reference", "cannot read the reference"),
        ({"reference": "missing.jsonl"}, "drift.reference", "cannot read the reference"),
        ({"reference": "ref.txt"}, "drift.reference", "JSON lines"),
        ({"reference": "bad.jsonl"}, "drift.reference", "bad.jsonl:2: invalid JSON"),
        ({"reference": "few.yaml"}, "drift.reference", "at least 20 texts"),
        ({"reference": "nocase.yaml"}, "drift.reference", "case 1 has no `input`"),
        ({"reference": "ref.jsonl", "quantile": 0.7}, "drift.quantile", ""),
        ({"reference": "ref.jsonl", "window": 3}, "drift.window", ""),
        ({"reference": "ref.jsonl", "embedder": "os:getcwd"}, "drift.embedder", "trusted"),
    ],
)
def test_a_malformed_drift_names_file_line_and_field(
    tmp_path: Path, drift: dict[str, Any], field: str, message: str
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "bad.jsonl").write_text('"fine"\n{"text": ' + SECRET + "\n", encoding="utf-8")
    (tmp_path / "few.yaml").write_text("cases:\n  - {input: hello}\n", encoding="utf-8")
    (tmp_path / "nocase.yaml").write_text(f"- {{output: {SECRET}}}\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text(SECRET, encoding="utf-8")
    path = write_policy(tmp_path / "sub", {"embedder": "test_drift:hashed", **drift})
    if drift["reference"] != "../ref.jsonl":
        for name in ("bad.jsonl", "few.yaml", "nocase.yaml", "ref.txt"):
            (tmp_path / "sub" / name).write_bytes((tmp_path / name).read_bytes())
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path, trusted_modules=TRUST)
    err = info.value
    assert err.field == field and err.line is not None and str(path) in str(err)
    assert message in str(err)
    assert SECRET not in str(err)  # the reference's content is never quoted


def test_without_the_extra_a_drift_reference_is_a_policy_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    embed_module = sys.modules["guardrails_engine.checks._topic.embed"]
    monkeypatch.setattr(embed_module, "_DEFAULT", [])
    monkeypatch.setitem(sys.modules, "wordllama", None)
    path = write_policy(tmp_path, {"reference": "ref.jsonl"})
    with pytest.raises(ge.PolicyError, match=r"guardrails-engine\[semantic\]") as info:
        ge.load_policy(path)
    assert info.value.field == "drift.reference" and info.value.line is not None


def _traffic(policy: ge.Policy, db: Path, texts: list[str]) -> None:
    with ge.TraceStore(db) as store:
        for text in texts:
            policy.validate_sync(text, on_trace=store)


def test_cli_drift_reads_a_trace_database(
    policy: ge.Policy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same, moved = tmp_path / "same.db", tmp_path / "moved.db"
    _traffic(policy, same, generate(SUPPORT, 200, 7))
    _traffic(policy, moved, shifted(0.2, 200, 8))
    code = main(["drift", str(same), "--window", "100"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no alert" in out and SECRET not in out
    assert main(["drift", str(moved), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["alert"] and report["texts"] == 200
    assert report["windows"][0]["centroid_distance"] is None  # no vectors in a trace
    assert main(["drift", str(moved), "--csv"]) == 1
    # the reference file picks the runs measured against it
    ref = str(Path(policy.source).parent / "ref.jsonl")
    assert main(["drift", "--reference", ref, str(same)]) == 0
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(t) + "\n" for t in generate(COOKING, 30, 1)))
    assert main(["drift", "--reference", str(other), str(same)]) == 2
    assert "no run in the trace database" in capsys.readouterr().err
    # no text in a trace database: nothing to export; no mixing of kinds
    assert main(["drift", str(same), "--export-cases", str(tmp_path / "c.yaml")]) == 2
    assert main(["drift", "--reference", ref, str(same), ref]) == 2
    empty = tmp_path / "empty.db"
    ge.TraceStore(empty).close()
    assert main(["drift", str(empty)]) == 2
    assert "no run" in capsys.readouterr().err


def test_a_guarded_model_call_records_the_drift_of_its_output(
    policy: ge.Policy, tmp_path: Path
) -> None:
    openai = pytest.importorskip("openai")
    from _fake_openai import MODEL, FakeOpenAI, chat_chunks

    from guardrails_engine import openai as ge_openai

    db = tmp_path / "calls.db"
    server = FakeOpenAI()
    server.start()
    try:
        pieces = [UNCOVERED[i : i + 4] for i in range(0, len(UNCOVERED), 4)]
        server.add("chat", chat_chunks([(0, {"content": p}) for p in pieces]))
        with (
            ge.TraceStore(db) as store,
            openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client,
        ):
            stream = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            guarded = ge_openai.guard_sync(policy, stream, on_trace=store)
            content = "".join(c.delta.content or "" for chunk in guarded for c in chunk.choices)
        assert content == UNCOVERED
    finally:
        server.stop()
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT c.kind, d.uncovered FROM drift d JOIN calls c ON c.id = d.call_id"
    ).fetchall()
    conn.close()
    assert rows == [("call", 1)]


def broken_at_run_time(texts: list[str]) -> Any:
    """The bag-of-words embedder, failing (with a message quoting its input) on one word."""
    from test_drift import hashed

    if any("boom" in t for t in texts):
        raise RuntimeError(f"cannot embed {texts!r}")
    return hashed(texts)


def test_a_failing_embedder_records_nothing_and_logs_only_its_type(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_policy(
        tmp_path, {"reference": "ref.jsonl", "embedder": "test_drift_policy:broken_at_run_time"}
    )
    policy = ge.load_policy(path, trusted_modules=TRUST)
    with caplog.at_level("WARNING", logger="guardrails_engine"):
        trace = one(policy, "boom goes the secret word")
    assert trace.drift == {} and trace.decision == "pass"  # tracing never changes a result
    assert "RuntimeError" in caplog.text and "secret" not in caplog.text


def test_a_policy_with_drift_pickles_and_measures_the_same(policy: ge.Policy) -> None:
    import pickle

    again = pickle.loads(pickle.dumps(policy))
    assert one(again, COVERED).drift == one(policy, COVERED).drift


@pytest.mark.parametrize("name", ["ref.yaml", "ref.cases.jsonl"])
def test_an_eval_case_file_is_a_reference(tmp_path: Path, name: str) -> None:
    cases = [{"input": t, "expect": {"decision": "pass"}} for t in REFERENCE]
    if name.endswith(".yaml"):
        (tmp_path / name).write_text(json.dumps({"cases": cases}), encoding="utf-8")
    else:
        (tmp_path / name).write_text("".join(json.dumps(c) + "\n" for c in cases), "utf-8")
    path = write_policy(tmp_path, {"reference": name, "embedder": "test_drift:hashed"})
    policy = ge.load_policy(path, trusted_modules=TRUST)
    assert one(policy, COVERED).drift["uncovered"] is False
    assert one(policy, UNCOVERED).drift["uncovered"] is True
