"""Evaluation: the suites shipped with the policies, the Python API and the ``eval`` command.

The suites in ``policies/*.cases.yaml`` are what CI replays; every one must pass whole and in
every chunking.
"""

from __future__ import annotations

import io
import json
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from _policies import PATTERN_ENTITIES

import guardrails_engine as ge
from guardrails_engine._cli import main

POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"
DATA_DIR = Path(__file__).resolve().parent / "data"
SUITES = sorted(POLICIES_DIR.glob("*.cases.yaml"))
PREFIX = {
    "chat-": "support-chat",
    "json-": "support-json",
    "redact-": "strict-redact",
    "links-": "support-links",
}
CHUNKINGS = ("whole", "chars", "random", "words")


def _policy_file(suite: Path) -> Path:
    return suite.with_name(suite.name.removesuffix(".cases.yaml") + ".yaml")


def _raw(suite: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(suite.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def policies() -> dict[str, ge.Policy]:
    return {
        p.stem: ge.load_policy(p)
        for p in sorted(POLICIES_DIR.glob("*.yaml"))
        if not p.name.endswith(".cases.yaml")
    }


@pytest.fixture(scope="module")
def reports(policies: dict[str, ge.Policy]) -> dict[str, ge.EvalReport]:
    """Every shipped suite evaluated once with its policy (the API's answer)."""
    out = {}
    for suite in SUITES:
        policy = policies[_policy_file(suite).stem]
        out[suite.name] = ge.evaluate(policy, ge.load_cases(suite))
    return out


# -- the shipped suites ------------------------------------------------------------------------


def test_every_policy_ships_a_suite() -> None:
    policy_files = {
        p.name for p in POLICIES_DIR.glob("*.yaml") if not p.name.endswith(".cases.yaml")
    }
    assert {_policy_file(s).name for s in SUITES} == policy_files
    counts = {s.name: len(ge.load_cases(s)) for s in SUITES}
    assert all(n >= 30 for n in counts.values()), counts
    assert sum(counts.values()) >= 110, counts


def test_cases_have_meaningful_unique_ids() -> None:
    seen: set[str] = set()
    for suite in SUITES:
        prefix = next(p for p, name in PREFIX.items() if name == _policy_file(suite).stem)
        for case in _raw(suite):
            assert "id" in case, case  # no default "file:line" ids in a shipped suite
            cid = case["id"]
            assert cid.startswith(prefix) and len(cid) > len(prefix) + 4, cid
            assert cid not in seen, f"duplicate id {cid}"
            seen.add(cid)


def _disguises(text: str) -> set[str]:
    found = set()
    if any(ch in text for ch in "\u200b\u200c\u2060\ufeff"):
        found.add("zero-width")
    if any("\uff10" <= ch <= "\uff19" for ch in text):
        found.add("full-width")
    if "\u00a0" in text:
        found.add("no-break space")
    return found


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_suite_covers_every_entity_in_every_disguise(suite: Path) -> None:
    covered: set[tuple[str, str]] = set()
    for case in ge.load_cases(suite):
        entities = {e for c, e in case.findings or () if c == "pii" and e}
        for kind in {"plain"} | _disguises(case.input):
            covered |= {(e, kind) for e in entities}
    for entity in PATTERN_ENTITIES:
        for kind in ("plain", "zero-width", "full-width", "no-break space"):
            assert (entity, kind) in covered, (entity, kind)


def test_disguises_are_written_as_escapes() -> None:
    """The suites stay readable: invisible and full-width characters only as YAML escapes."""
    for suite in SUITES:
        for n, line in enumerate(suite.read_text(encoding="utf-8").splitlines(), start=1):
            odd = [
                ch
                for ch in line
                if (unicodedata.category(ch) in ("Cf", "Zs") and ch != " ")
                or "\uff01" <= ch <= "\uff5e"
            ]
            assert not odd, f"{suite.name}:{n}: write {odd!r} as an escape"


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_shipped_suite_passes_api(reports: dict[str, ge.EvalReport], suite: Path) -> None:
    report = reports[suite.name]
    assert report.passed, report.to_text()
    assert report.chunkings == CHUNKINGS
    assert report.disagreements == 0
    assert report.leaked == 0
    for result in report.results:
        assert [run.chunking for run in result.runs] == list(CHUNKINGS)


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_shipped_suite_passes_cli(capsys: pytest.CaptureFixture[str], suite: Path) -> None:
    """What CI runs: ``guardrails-engine eval --policy P P.cases.yaml``."""
    status, out, err = _run(capsys, "eval", "--policy", str(_policy_file(suite)), str(suite))
    assert status == 0, out
    n = len(ge.load_cases(suite))
    assert out.splitlines()[0].endswith(
        f": {n} cases, 0 failed (chunkings: whole, chars, random, words; seed 0)"
    )
    assert "FAIL " not in out
    assert out.endswith("PASSED\n")
    assert err == ""


def test_every_check_of_every_policy_is_exercised(reports: dict[str, ge.EvalReport]) -> None:
    """Each check finds something in its suite, and nothing it should not (whole runs)."""
    for suite in SUITES:
        policy = ge.load_policy(_policy_file(suite))
        per_check = reports[suite.name].per_check
        assert set(per_check) <= {c.id for c in policy.checks}, suite.name
        # support-json's length limit (4000) is the one check no suite case reaches.
        assert len(per_check) >= len(policy.checks) - 1, suite.name
        for check, stats in per_check.items():
            assert stats["tp"] > 0, (suite.name, check)
            assert stats["precision"] == 1.0 and stats["recall"] == 1.0, (suite.name, check)


# -- the Python API ----------------------------------------------------------------------------


def test_evaluate_takes_dicts_and_cases(policies: dict[str, ge.Policy]) -> None:
    chat = policies["support-chat"]
    report = ge.evaluate(
        chat,
        [
            {"input": "Write to jdoe@example.com", "expect": {"decision": "repair"}},
            ge.Case(
                id="plain", input="Hello there.", decision=ge.Decision.PASS, text="Hello there."
            ),
        ],
    )
    assert report.passed, report.to_text()
    assert [r.case.id for r in report.results] == ["case 0", "plain"]
    assert report.policy == "support-chat"


def test_load_cases_reads_jsonl_and_a_cases_mapping(tmp_path: Path) -> None:
    jsonl = tmp_path / "cases.jsonl"
    jsonl.write_text(
        '{"id": "a", "input": "hi", "expect": {"decision": "pass", "text": "hi"}}\n'
        "\n"
        '{"input": "x@example.com", "expect": {"decision": "repair", '
        '"findings": [{"check": "pii", "entity": "EMAIL_ADDRESS"}]}}\n',
        encoding="utf-8",
    )
    cases = ge.load_cases(jsonl)
    assert [c.id for c in cases] == ["a", "cases.jsonl:3"]
    assert cases[1].findings == (("pii", "EMAIL_ADDRESS"),)
    assert cases[0].decision is ge.Decision.PASS and cases[0].text == "hi"
    mapping = tmp_path / "cases.yaml"
    mapping.write_text("cases:\n  - input: hi\n    expect: {decision: pass}\n", encoding="utf-8")
    assert [c.input for c in ge.load_cases(mapping)] == ["hi"]


def _random_chunks(report: ge.EvalReport) -> list[list[int]]:
    return [run.holdbacks for r in report.results for run in r.runs if run.chunking == "random"]


def test_seed_makes_random_chunking_reproducible(policies: dict[str, ge.Policy]) -> None:
    chat = policies["support-chat"]
    cases = [
        c
        for c in ge.load_cases(POLICIES_DIR / "support-chat.cases.yaml")
        if c.id.startswith("chat-length-")
    ][:2]
    first = ge.evaluate(chat, cases, seed=3)
    again = ge.evaluate(chat, cases, seed=3)
    other = ge.evaluate(chat, cases, seed=4)
    assert first.seed == 3 and other.seed == 4
    # A run records one hold-back per chunk: the same seed cuts the same chunks.
    assert _random_chunks(first) == _random_chunks(again)
    assert _random_chunks(first) != _random_chunks(other)
    assert first.to_dict() == again.to_dict()
    assert first.passed and other.passed


def test_seed_on_the_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    suite = _subset(tmp_path, "support-chat", ["chat-length-2001-chars-cut-at-last-space"])
    policy = str(POLICIES_DIR / "support-chat.yaml")
    argv = ["eval", "--policy", policy, str(suite), "--format", "json", "--seed", "11"]
    status, out, _ = _run(capsys, *argv)
    status2, out2, _ = _run(capsys, *argv)
    assert status == status2 == 0
    assert out == out2
    assert json.loads(out)["seed"] == 11


# -- a broken policy ---------------------------------------------------------------------------


def _broken_chat_policy(tmp_path: Path) -> Path:
    """support-chat with CREDIT_CARD taken out of the pii entities."""
    text = (POLICIES_DIR / "support-chat.yaml").read_text(encoding="utf-8")
    old = "entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE]"
    assert old in text
    path = tmp_path / "support-chat.yaml"
    path.write_text(text.replace(old, old.replace(" CREDIT_CARD,", "")), encoding="utf-8")
    return path


def _card_case_ids(suite: Path) -> list[str]:
    return [
        c.id for c in ge.load_cases(suite) if c.findings and ("pii", "CREDIT_CARD") in c.findings
    ]


def _subset(tmp_path: Path, policy: str, ids: list[str]) -> Path:
    raw = _raw(POLICIES_DIR / f"{policy}.cases.yaml")
    chosen = [c for c in raw if c["id"] in ids]
    assert len(chosen) == len(ids)
    path = tmp_path / f"{policy}.subset.cases.yaml"
    path.write_text(yaml.safe_dump(chosen, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.slow
def test_broken_policy_fails_eval_and_names_cases(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    suite = POLICIES_DIR / "support-chat.cases.yaml"
    expected = _card_case_ids(suite)
    assert len(expected) >= 5
    status, out, _ = _run(
        capsys, "eval", "--policy", str(_broken_chat_policy(tmp_path)), str(suite)
    )
    assert status == 1
    lines = out.splitlines()
    assert lines[0].startswith(
        f"policy support-chat: {len(ge.load_cases(suite))} cases, {len(expected)} failed"
    )
    failed = [line.split()[1] for line in lines if line.startswith("FAIL ")]
    assert sorted(failed) == sorted(expected)
    cases = {c.id: c for c in ge.load_cases(suite)}
    for cid in expected:
        # The FAIL line says what was expected: the decision and the findings.
        listed = ", ".join(f"{c}/{e or '-'}" for c, e in cases[cid].findings or ())
        header = f"FAIL {cid} (expected: {cases[cid].decision.value}; findings {listed})"
        start = lines.index(header) + 1
        block = []
        for line in lines[start:]:
            if not line.startswith("    ["):
                break
            block.append(line.strip())
        for chunking in CHUNKINGS:
            # which check and entity, in which chunking
            assert f"[{chunking}] findings: missing pii/CREDIT_CARD" in block, (cid, block)
            # the expectation against what happened
            assert any(
                p.startswith(f"[{chunking}] text: expected '") and "', got '" in p for p in block
            ), block
            # and what the checks said instead (the card is not found: other findings or none)
            said = [p for p in block if p.startswith(f"[{chunking}] reasons: ")]
            assert len(said) == 1 and "CREDIT_CARD" not in said[0], block
    assert "[whole] decision: expected repair, got pass" in out
    assert lines[-1] == "FAILED"


def test_broken_policy_json_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ids = [
        "chat-card-plain-visa",
        "chat-several-entities",
        "chat-email-plain",
        "chat-pass-markdown",
    ]
    suite = _subset(tmp_path, "support-chat", ids)
    status, out, _ = _run(
        capsys,
        "eval",
        "--policy",
        str(_broken_chat_policy(tmp_path)),
        str(suite),
        "--format",
        "json",
    )
    assert status == 1
    report = json.loads(out)
    assert report["passed"] is False
    assert report["cases"] == 4 and report["failed"] == 2
    assert report["disagreements"] == 0
    assert report["leaked_chars"] == 0
    assert set(report["holdback"]) == {"p50", "p95", "max"}
    assert report["chunkings"] == list(CHUNKINGS)
    pii = report["per_check"]["pii"]
    assert (pii["tp"], pii["fp"], pii["fn"]) == (3, 0, 2)
    assert pii["precision"] == 1.0 and pii["recall"] == pytest.approx(3 / 5)
    failures = {f["id"]: f for f in report["failures"]}
    assert set(failures) == {"chat-card-plain-visa", "chat-several-entities"}
    assert failures["chat-card-plain-visa"]["expected"] == "repair"
    problems = failures["chat-card-plain-visa"]["problems"]
    assert "[whole] decision: expected repair, got pass" in problems
    assert "[chars] findings: missing pii/CREDIT_CARD" in problems
    assert "[whole] reasons: (none)" in problems
    assert failures["chat-card-plain-visa"]["expected_findings"] == [
        {"check": "pii", "entity": "CREDIT_CARD"}
    ]
    assert failures["chat-card-plain-visa"]["reasons"] == []
    several = failures["chat-several-entities"]
    assert several["reasons"] and all(" at " in r for r in several["reasons"])
    assert f"[whole] reasons: {'; '.join(several['reasons'])}" in several["problems"]


def test_broken_policy_junit_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ids = ["chat-card-plain-visa", "chat-card-fullwidth-digits", "chat-email-plain"]
    suite = _subset(tmp_path, "support-chat", ids)
    status, out, _ = _run(
        capsys,
        "eval",
        "--policy",
        str(_broken_chat_policy(tmp_path)),
        str(suite),
        "--format",
        "junit",
    )
    assert status == 1
    root = ET.fromstring(out)
    assert root.tag == "testsuite"
    assert root.get("tests") == "3" and root.get("failures") == "2"
    cases = root.findall("testcase")
    assert sorted(c.get("name") or "" for c in cases) == sorted(ids)
    assert all(c.get("classname") == "support-chat" for c in cases)
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == {"chat-card-plain-visa", "chat-card-fullwidth-digits"}
    for failure in failed.values():
        assert failure is not None
        assert (failure.get("message") or "").startswith("[whole] ")
        assert "[words] findings: missing pii/CREDIT_CARD" in (failure.text or "")


def test_output_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    suite = _subset(tmp_path, "support-chat", ["chat-card-plain-visa", "chat-email-plain"])
    target = tmp_path / "report.json"
    status, out, err = _run(
        capsys,
        "eval",
        "--policy",
        str(_broken_chat_policy(tmp_path)),
        str(suite),
        "--format",
        "json",
        "--output",
        str(target),
    )
    assert status == 1
    assert out == ""
    assert err == "2 cases, 1 failed\n"
    report = json.loads(target.read_text(encoding="utf-8"))
    assert [f["id"] for f in report["failures"]] == ["chat-card-plain-visa"]


def test_eval_reads_several_case_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    one = _subset(tmp_path, "support-chat", ["chat-email-plain"])
    two = tmp_path / "two.jsonl"
    two.write_text('{"id": "j", "input": "ok", "expect": {"decision": "pass"}}\n', "utf-8")
    status, out, _ = _run(
        capsys, "eval", "--policy", str(POLICIES_DIR / "support-chat.yaml"), str(one), str(two)
    )
    assert status == 0
    assert ": 2 cases, 0 failed" in out.splitlines()[0]


# -- malformed case files ------------------------------------------------------------------------

MALFORMED = [
    # name, content, line, field, words in the message
    ("bad.yaml", '- id: a\n  input: "hi\n  expect: [\n', 4, None, "invalid YAML"),
    (
        "unknown-key.yaml",
        "- id: a\n  input: hi\n  expect: {decision: pass}\n"
        "- id: b\n  input: x\n  expect:\n    decision: pass\n    bogus: 1\n",
        8,
        "expect.bogus",
        "unknown key",
    ),
    (
        "missing-input.yaml",
        "- id: a\n  input: hi\n  expect: {decision: pass}\n"
        "- id: b\n  expect:\n    decision: pass\n",
        4,
        "input",
        "required",
    ),
    (
        "bad-decision.yaml",
        "- id: a\n  input: hi\n  expect: {decision: pass}\n"
        "- id: b\n  input: x\n  expect:\n    decision: allow\n",
        7,
        "expect.decision",
        "'pass', 'repair' or 'block'",
    ),
    (
        "bad.jsonl",
        '{"id": "a", "input": "hi", "expect": {"decision": "pass"}}\n{"id": "b", "input":\n',
        2,
        None,
        "invalid JSON",
    ),
    (
        "unknown-key.jsonl",
        '{"id": "a", "input": "hi", "expect": {"decision": "pass", "typo": 1}}\n',
        1,
        "expect.typo",
        "unknown key",
    ),
    (
        "missing-input.jsonl",
        '{"id": "a", "input": "hi", "expect": {"decision": "pass"}}\n\n'
        '{"id": "b", "expect": {"decision": "pass"}}\n',
        3,
        "input",
        "required",
    ),
    (
        "same-id.yaml",
        "- id: a\n  input: hi\n  expect: {decision: pass}\n"
        "- id: b\n  input: x\n  expect: {decision: pass}\n"
        "- input: y\n  id: a\n  expect: {decision: pass}\n",
        8,
        "id",
        "case id 'a' is used twice (first at line 1)",
    ),
    (
        "same-id.jsonl",
        '{"id": "a", "input": "hi", "expect": {"decision": "pass"}}\n'
        '{"id": "a", "input": "x", "expect": {"decision": "pass"}}\n',
        2,
        "id",
        "case id 'a' is used twice (first at line 1)",
    ),
    (
        "bad-decision.jsonl",
        '{"id": "a", "input": "hi", "expect": {"decision": "pass"}}\n'
        '{"id": "b", "input": "x", "expect": {"decision": "maybe"}}\n',
        2,
        "expect.decision",
        "'pass', 'repair' or 'block'",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "line", "field", "words"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_case_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    content: str,
    line: int,
    field: str | None,
    words: str,
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ge.CaseError) as info:
        ge.load_cases(path)
    err = info.value
    assert isinstance(err, ge.GuardrailsError) and isinstance(err, ValueError)
    assert (err.source, err.line, err.field) == (str(path), line, field)
    message = str(err)
    assert message.startswith(f"{path}:{line}: ")
    if field is not None:
        assert f": {field}: " in message
    assert words in message

    status, out, stderr = _run(
        capsys, "eval", "--policy", str(POLICIES_DIR / "support-chat.yaml"), str(path)
    )
    assert status == 2
    assert out == ""
    assert stderr == f"guardrails-engine: {message}\n"


def test_unreadable_case_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ge.CaseError) as info:
        ge.load_cases(missing)
    assert info.value.source == str(missing) and info.value.line is None
    status, _, err = _run(
        capsys, "eval", "--policy", str(POLICIES_DIR / "support-chat.yaml"), str(missing)
    )
    assert status == 2 and str(missing) in err


# -- progress bar --------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_bar_when_stderr_is_not_a_tty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    suite = _subset(tmp_path, "support-chat", ["chat-email-plain", "chat-pass-markdown"])
    status, out, err = _run(
        capsys, "eval", "--policy", str(POLICIES_DIR / "support-chat.yaml"), str(suite)
    )
    assert status == 0
    assert err == ""
    assert "2/2" not in out and "\r" not in out


def test_progress_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The control for the test above: on a terminal the bar is drawn, on stderr only."""
    suite = _subset(tmp_path, "support-chat", ["chat-email-plain", "chat-pass-markdown"])
    terminal, stdout = _Terminal(), io.StringIO()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr("sys.stdout", stdout)
    assert main(["eval", "--policy", str(POLICIES_DIR / "support-chat.yaml"), str(suite)]) == 0
    drawn = terminal.getvalue()
    assert "\r[" in drawn and "] 1/2" in drawn and drawn.endswith("] 2/2\n")
    assert "\r" not in stdout.getvalue()


def test_duplicate_key_in_a_case_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "- id: a\n  input: first\n  input: second\n  expect: {decision: pass}\n", encoding="utf-8"
    )
    with pytest.raises(ge.CaseError) as info:
        ge.load_cases(path)
    assert (info.value.line, info.value.field) == (3, "input")


def test_a_failure_shows_the_expectation_and_what_the_checks_said() -> None:
    policy = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n  - id: words\n    type: content\n"
        "    terms: [heron]\n    action: block\n"
    )
    cases = [
        {"id": "calm", "input": "a heron flies", "expect": {"decision": "pass", "findings": []}},
        {"id": "wanted", "input": "no birds", "expect": {"decision": "block"}},
    ]
    report = ge.evaluate(policy, cases, chunkings=["whole", "chars"])
    text = report.to_text().splitlines()
    start = text.index("FAIL calm (expected: pass; findings (none))")
    assert text[start + 1 : start + 7] == [
        "    [whole] decision: expected pass, got block",
        "    [whole] findings: unexpected words/-",
        "    [whole] reasons: words: terms[0] at 2-7, blocked",
        "    [chars] decision: expected pass, got block",
        "    [chars] findings: unexpected words/-",
        "    [chars] reasons: words: terms[0] at 2-7, blocked",
    ]
    start = text.index("FAIL wanted (expected: block)")
    assert text[start + 1 : start + 3] == [
        "    [whole] decision: expected block, got pass",
        "    [whole] reasons: (none)",
    ]
    junit = ET.fromstring(report.to_junit())
    failure = junit.find("testcase[@name='calm']/failure")
    assert failure is not None and failure.text is not None
    assert failure.text.startswith("expected: pass; findings (none)\n")
    assert "[whole] reasons: words: terms[0] at 2-7, blocked" in failure.text
