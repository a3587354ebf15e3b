"""``guardrails-engine cases add --traces DB``: production failures (blocked or failed
calls in a TraceStore) become model cases; their prompts only as the policy screened
them; ids already in the file are not added twice."""

from __future__ import annotations

from pathlib import Path

import pytest

import guardrails_engine as ge
from guardrails_engine import modeleval as me
from guardrails_engine._cli import main

EMAIL = "jdoe.prod@example.com"
POLICY = ge.Policy.from_yaml(
    """
version: 1
name: prod
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS], action: repair}
  - {id: words, type: content, terms: [forbidden], action: block}
"""
)


def _call(
    store: ge.TraceStore,
    prompt: str,
    answer: str,
    *,
    capture: bool = True,
    model: str = "gpt-a",
    error: Exception | None = None,
) -> None:
    rec = ge.CallRecorder(
        POLICY, provider="openai", request_model=model, on_trace=store, capture_content=capture
    )
    rec.prompt(prompt)
    push = POLICY.push_sync(trace_id=rec.trace_id, on_trace=rec.run("choice", 0, None))
    rec.upstream_chunk()
    rec.released(push.feed(answer) + push.finish())
    rec.finish(error=error) if error is not None else rec.finish()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.db"
    with ge.TraceStore(path) as store:
        _call(store, f"Why was I blocked? Mail {EMAIL}", "That is forbidden.")  # blocked
        _call(store, "A fine question", "A fine answer.")  # passed: not a failure
        _call(store, "No capture here", "forbidden again", capture=False)  # blocked, no prompt
        _call(store, "Ask the other model", "forbidden", model="gpt-b")  # blocked, gpt-b
        _call(store, "This one failed", "", error=RuntimeError("upstream"))  # an error
    return path


def test_failures_become_cases_screened_and_not_twice(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = tmp_path / "grown.cases.yaml"
    assert main(["cases", "add", str(cases), "--traces", str(db)]) == 0
    io = capsys.readouterr()
    assert "3 cases added" in io.out and "1 failed call had no captured prompt" in io.err
    loaded = me.load_model_cases(cases)
    inputs = [c.messages[-1].content for c in loaded]
    assert inputs == [
        "Why was I blocked? Mail <EMAIL_ADDRESS>",
        "Ask the other model",
        "This one failed",
    ]
    assert all(c.decision == "pass" for c in loaded)
    assert EMAIL not in cases.read_text()
    assert main(["cases", "add", str(cases), "--traces", str(db)]) == 0
    assert "0 cases added" in capsys.readouterr().out and len(me.load_model_cases(cases)) == 3


def test_blocked_only_model_and_jsonl(db: Path, tmp_path: Path) -> None:
    found, missing = me.cases_from_traces(db, blocked_only=True, model="gpt-b")
    assert [c["input"] for c in found] == ["Ask the other model"] and missing == 0
    target = tmp_path / "grown.jsonl"
    assert me.append_cases(target, found) == 1
    assert me.load_model_cases(target)[0].messages[-1].content == "Ask the other model"


def test_bad_inputs_are_usage_errors(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_db = tmp_path / "x.db"
    not_db.write_text("not a database")
    assert main(["cases", "add", str(tmp_path / "c.yaml"), "--traces", str(not_db)]) == 2
    mapping = tmp_path / "m.yaml"
    mapping.write_text("cases:\n  - {id: a, input: hi}\n")
    assert main(["cases", "add", str(mapping), "--traces", str(db)]) == 2
    assert "YAML list of cases" in capsys.readouterr().err
    assert main(["cases", "add", str(mapping), "--traces", str(db), "--since", "soon"]) == 2
