"""Model evaluation: cases sent to models through the policy (real SDK clients
against a fake of both providers, scripted per prompt), scored by exact/contains/
regex/schema/similarity and an LLM judge, compared side by side; a judge timeout
is an error (never a pass), a flaky judge is settled by the majority, a baseline
regression exits 1, recorded outputs are scored with the network unreachable."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _child import run_limited
from _fake_models import FakeModels, Scripted, prompt_of, say

import guardrails_engine as ge
from guardrails_engine import modeleval as me
from guardrails_engine._cli import main

POLICY = ge.Policy.from_yaml(
    """
version: 1
name: eval-test
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS, CREDIT_CARD], action: repair}
  - {id: words, type: content, terms: [forbidden], action: block}
"""
)

GOOD = {
    "refund": "No; refunds are accepted within 30 days of purchase.",
    "email": "Write to jdoe.secret@example.com and we will help.",
    "json": '{"answer": "no", "days": 30}',
}
BAD = {
    "refund": "Yes, you can get a refund at any time.",
    "email": "This is forbidden territory.",
    "json": "not json at all",
}

CASES = """
- id: refund
  input: "refund: can I get a refund after 40 days?"
  system: prompt.txt
  expected_output: "No; refunds are accepted within 30 days of purchase."
  criteria: [similarity, {contains: "30 days"}, {judge: "Says no and gives the 30-day limit"}]
  threshold: 0.8
  expect: {decision: pass}
- id: email
  input: "email: how do I reach support?"
  criteria: [{regex: "Write to \\\\S+"}]
  expect: {decision: repair}
- id: json
  messages:
    - {role: user, content: "json: answer as JSON"}
  criteria: [{schema: answer.schema.json}, {exact: '{"answer": "no", "days": 30}'}]
"""

SCHEMA = {
    "type": "object",
    "required": ["answer", "days"],
    "properties": {"answer": {"enum": ["yes", "no"]}, "days": {"type": "integer"}},
}

judge_calls: Counter[str] = Counter()


def _topic(body: dict[str, Any]) -> str:
    return prompt_of(body).split(":", 1)[0]


def _answer(provider: str, model: str, body: dict[str, Any]) -> Scripted:
    if model.startswith("judge"):
        prompt = prompt_of(body)
        response = prompt.split("<response>", 1)[-1]
        judge_calls[model] += 1
        good = "30 days" in response
        if model == "judge-slow":
            return Scripted(("{}",), delay=3.0)
        if model == "judge-bad":
            return say("I think it is fine, really.")
        if model == "judge-flaky":
            score = 0.2 if judge_calls[model] % 3 == 1 else 0.95
            return say(json.dumps({"score": score, "reason": "flaky"}))
        verdict = {
            "score": 0.9 if good else 0.1,
            "reason": "the 30-day limit" if good else "no limit",
        }
        return say(json.dumps(verdict))
    if model == "broken":
        return Scripted(status=500)
    if model == "slow":
        return Scripted(("late",), delay=3.0)
    table = BAD if model.endswith("bad") else GOOD
    return say(table[_topic(body)], size=3)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeModels]:
    server = FakeModels(_answer).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cases_file(tmp_path: Path) -> Path:
    (tmp_path / "prompt.txt").write_text("You are a support agent. Be brief.")
    (tmp_path / "answer.schema.json").write_text(json.dumps(SCHEMA))
    path = tmp_path / "support.cases.yaml"
    path.write_text(CASES)
    return path


def _targets(fake: FakeModels, *specs: str) -> list[me.Target]:
    out: list[me.Target] = []
    for spec in specs:
        base = fake.base_url if spec.startswith("anthropic:") else f"{fake.base_url}/v1"
        out.append(me.target(POLICY, spec, base_url=base, api_key="test-key"))
    return out


def _judge(fake: FakeModels, model: str = "judge", **kw: Any) -> me.Judge:
    return me.judge(f"openai:{model}", base_url=f"{fake.base_url}/v1", api_key="k", **kw)


def _statuses(report: me.ModelReport) -> dict[tuple[str, str], str]:
    return {(o.case, o.model): o.status for o in report.outcomes}


def test_two_models_compared_side_by_side(fake: FakeModels, cases_file: Path) -> None:
    cases = me.load_model_cases(cases_file)
    assert cases[0].messages[0].content == "You are a support agent. Be brief."
    report = me.evaluate_models(
        POLICY,
        cases,
        _targets(fake, "openai:good", "anthropic:claude-good", "openai:bad"),
        judge=_judge(fake),
    )
    st = _statuses(report)
    for model in ("openai:good", "anthropic:claude-good"):
        assert [st[c, model] for c in ("refund", "email", "json")] == ["pass"] * 3
        s = report.summary(model)
        assert s["pass_rate"] == 1.0
        assert s["input_tokens"] == 33 and s["output_tokens"] == 21  # usage of 3 calls
        assert s["decisions"] == {"pass": 2, "repair": 1}
        assert s["first_chunk_s"]["p50"] is not None and s["first_release_s"]["p50"] is not None
        assert s["criteria"]["judge"]["passed"] == 1
    # The two good models give the same answer: the judge is asked once, its verdict
    # cached; which model's row pays the tokens depends on which was judged first.
    assert (
        report.summary("openai:good")["judge_tokens"]
        + report.summary("anthropic:claude-good")["judge_tokens"]
        > 0
    )
    assert [st[c, "openai:bad"] for c in ("refund", "email", "json")] == ["fail"] * 3
    bad = {o.case: o for o in report.of("openai:bad")}
    assert "guardrail decision block, expected repair" in bad["email"].problems
    assert any(p.startswith("contains failed") for p in bad["refund"].problems)
    assert "schema failed: the output is not JSON" in bad["json"].problems
    text = report.to_text()
    assert "openai:good" in text and "anthropic:claude-good" in text
    assert text.splitlines()[2].split() == [
        "case",
        "openai:good",
        "anthropic:claude-good",
        "openai:bad",
    ]
    # what was found is never in the report, in any format
    for blob in (text, json.dumps(report.to_dict()), report.to_junit()):
        assert "jdoe.secret" not in blob
    # the model saw the system prompt and the case's input
    sent = [b for p, b in fake.requests if b.get("model") == "claude-good"]
    assert any(b.get("system") == "You are a support agent. Be brief." for b in sent)


def test_a_judge_timeout_is_an_error_never_a_pass(fake: FakeModels, cases_file: Path) -> None:
    cases = me.load_model_cases(cases_file)[:1]
    judge = _judge(fake, "judge-slow", timeout=0.3)
    report = me.evaluate_models(POLICY, cases, _targets(fake, "openai:good"), judge=judge)
    (o,) = report.outcomes
    assert o.status == "error"
    (score,) = [s for s in o.scores if s.criterion == "judge"]
    assert score.passed is None and "did not answer within 0.3 s" in score.reason
    assert judge.calls == 2  # asked once more after the timeout
    assert report.summary("openai:good")["errors"] == 1
    assert report.pass_rate() == 0.0


def test_a_malformed_verdict_is_asked_again_then_an_error(
    fake: FakeModels, cases_file: Path
) -> None:
    cases = me.load_model_cases(cases_file)[:1]
    judge = _judge(fake, "judge-bad")
    report = me.evaluate_models(POLICY, cases, _targets(fake, "openai:good"), judge=judge)
    (score,) = [s for s in report.outcomes[0].scores if s.criterion == "judge"]
    assert score.passed is None and "malformed" in score.reason and judge.calls == 2


def test_a_flaky_judge_is_settled_by_the_majority_and_cached(
    fake: FakeModels, cases_file: Path
) -> None:
    cases = me.load_model_cases(cases_file)[:1]
    judge_calls["judge-flaky"] = 0
    cache: dict[str, dict[str, Any]] = {}
    judge = _judge(fake, "judge-flaky", cache=cache)
    report = me.evaluate_models(POLICY, cases, _targets(fake, "openai:good"), judge=judge)
    (score,) = [s for s in report.outcomes[0].scores if s.criterion == "judge"]
    assert score.passed is True and score.score == 0.95 and "2 of 3" in score.reason
    assert judge.calls == 3 and len(cache) == 1
    again = _judge(fake, "judge-flaky", cache=cache)
    report = me.evaluate_models(POLICY, cases, _targets(fake, "openai:good"), judge=again)
    assert again.calls == 0 and report.outcomes[0].status == "pass"


def test_failed_and_slow_models_are_errors_with_no_content(
    fake: FakeModels, cases_file: Path
) -> None:
    cases = me.load_model_cases(cases_file)[1:2]
    broken = me.evaluate_models(POLICY, cases, _targets(fake, "openai:broken"), call_timeout=20)
    slow = me.evaluate_models(POLICY, cases, _targets(fake, "openai:slow"), call_timeout=0.5)
    st = {o.model: o for o in broken.outcomes + slow.outcomes}
    assert st["openai:broken"].status == "error"
    assert "HTTP 500" in st["openai:broken"].completion.error  # type: ignore[operator]
    assert st["openai:slow"].completion.error == "no answer within 0.5 s"
    assert "scripted" not in json.dumps(broken.to_dict())  # the error body is not quoted


def test_plain_scorers(tmp_path: Path) -> None:
    from guardrails_engine._evals.scoring import score_plain

    c = me.Criterion
    assert score_plain(c("regex", r"(a+)+$"), "a" * 40 + "!").passed in (False, None)
    assert score_plain(c("exact", "x"), " x\n").passed is True
    assert score_plain(c("schema", SCHEMA), '```json\n{"answer": "no", "days": 3}\n```').passed
    bad = score_plain(c("schema", SCHEMA), '{"answer": "maybe jdoe@example.com", "days": 3}')
    assert bad.passed is False and bad.reason == "at $.answer: enum"
    assert "jdoe" not in bad.reason


def test_case_files_are_checked_with_file_line_and_field(tmp_path: Path) -> None:
    bad = {
        "- id: a\n  criteria: [similarity]\n": "either input or messages",
        "- id: a\n  input: x\n  criteria: [similarity]\n": "similarity needs expected_output",
        "- id: a\n  input: x\n  criteria: [{regex: '('}]\n": "not a regular expression",
        "- id: a\n  input: x\n  criteria: [{contains: a, regex: b}]\n": "not contains and regex",
        "- id: a\n  input: x\n  criteria: [{schema: ../outside.json}]\n": "cannot read",
        "- id: a\n  input: x\n  system: missing.txt\n": "cannot read 'missing.txt'",
        "- id: a\n  input: x\n  threshold: 2\n": "less than or equal to 1",
    }
    (tmp_path.parent / "outside.json").write_text("{}")
    for text, message in bad.items():
        path = tmp_path / "c.cases.yaml"
        path.write_text(text)
        with pytest.raises(ge.CaseError, match=message) as exc:
            me.load_model_cases(path)
        assert exc.value.source == str(path) and exc.value.line is not None


def _policy_file(tmp_path: Path) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(
        "version: 1\nname: eval-test\nchecks:\n"
        "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS], action: repair}\n"
    )
    return p


def _recorded(path: Path, table: dict[str, str], model: str = "m") -> Path:
    with path.open("w") as f:
        for case, out in table.items():
            f.write(json.dumps({"case": case, "model": model, "output": out}) + "\n")
    return path


def test_cli_baseline_regression_and_min_pass_rate_exit_1(
    cases_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = tmp_path / "plain.cases.yaml"
    cases.write_text(
        "- {id: refund, input: 'refund?', criteria: [{contains: '30 days'}]}\n"
        "- {id: json, input: 'json?', criteria: [{schema: answer.schema.json}]}\n"
    )
    policy = _policy_file(tmp_path)
    base = tmp_path / "base.json"
    good = _recorded(tmp_path / "good.jsonl", GOOD)
    args = ["eval", "--policy", str(policy), str(cases), "--format", "json"]
    assert main([*args, "--outputs", str(good), "--output", str(base)]) == 0
    assert json.loads(base.read_text())["pass_rate"] == 1.0
    capsys.readouterr()
    worse = _recorded(tmp_path / "bad.jsonl", {**GOOD, "json": "nope"})
    assert main([*args, "--outputs", str(worse), "--baseline", str(base)]) == 1
    assert "regression: json on m passed before, fail now" in capsys.readouterr().err
    assert main([*args, "--outputs", str(worse), "--min-pass-rate", "0.4"]) == 0
    assert main([*args, "--outputs", str(worse), "--min-pass-rate", "0.9"]) == 1
    assert "pass rate 50.0% is below 90.0%" in capsys.readouterr().err
    # a model case without --model says how to run it
    assert main(["eval", "--policy", str(policy), str(cases_file)]) == 2
    assert "run it with --model or --outputs" in capsys.readouterr().err


def test_cli_against_two_providers(
    fake: FakeModels,
    cases_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    policy = _policy_file(tmp_path)
    junit = tmp_path / "r.xml"
    status = main(
        [
            "eval",
            "--policy",
            str(policy),
            str(cases_file),
            "--model",
            "openai:good",
            "--model",
            "anthropic:claude-bad",
            "--base-url",
            f"{fake.base_url}/v1",
            "--anthropic-base-url",
            fake.base_url,
            "--judge",
            "openai:judge",
            "--format",
            "junit",
            "--output",
            str(junit),
            "--judge-cache",
            str(tmp_path / "cache.json"),
        ]
    )
    assert status == 0  # no --min-pass-rate and no baseline
    xml = junit.read_text()
    assert 'name="openai:good" tests="3" failures="0"' in xml
    assert 'name="anthropic:claude-bad" tests="3" failures="3"' in xml
    assert len(json.loads((tmp_path / "cache.json").read_text())) == 2  # a verdict per output


def test_recorded_outputs_are_scored_with_the_network_unreachable(
    cases_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("wordllama")
    policy = _policy_file(tmp_path)
    cases = tmp_path / "offline.cases.yaml"
    cases.write_text(
        "- id: refund\n  input: 'refund?'\n"
        "  expected_output: 'No; refunds are accepted within 30 days of purchase.'\n"
        "  criteria: [similarity, {contains: '30 days'}]\n"
    )
    rec = _recorded(tmp_path / "rec.jsonl", {"refund": "No, refunds are accepted within 30 days."})
    out = run_limited(
        textwrap.dedent(
            f"""
            import socket, json
            def refuse(*a, **k):
                raise OSError("network unreachable in this test")
            socket.socket.connect = refuse
            socket.create_connection = refuse
            from guardrails_engine._cli import main
            status = main(["eval", "--policy", {str(policy)!r}, {str(cases)!r},
                           "--outputs", {str(rec)!r}, "--format", "json",
                           "--output", {str(tmp_path / "r.json")!r}])
            print(status)
            """
        ),
        seconds=120,
        memory=3_000_000_000,
    )
    assert out.strip().splitlines()[-1] == "0"
    report = json.loads((tmp_path / "r.json").read_text())
    (o,) = report["outcomes"]
    assert o["status"] == "pass"
    (sim,) = [s for s in o["scores"] if s["criterion"] == "similarity"]
    assert sim["score"] > 0.8
