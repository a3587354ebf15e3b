"""The ``topic`` check: denied topics scored by meaning, a sentence at a time.

Most tests use a small deterministic embedder of this module (hashed words), so
they need scikit-learn (the ``semantic`` extra) but not WordLlama; the tests of
the default embedder are skipped cleanly when wordllama is not installed.
"""

from __future__ import annotations

import json
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _child import run_limited

pytest.importorskip("sklearn", reason="the topic check needs the `semantic` extra")

import guardrails_engine as ge
from guardrails_engine.testing import check_chunkings

TRUST = ["test_topic"]
DIM = 64


def embed(texts: list[str]) -> Any:
    """Hashed bag of words: deterministic, no model."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().replace(".", " ").replace(",", " ").split():
            out[i, zlib.crc32(word.encode()) % DIM] += 1.0
        out[i, DIM - 1] += 0.5
    if any("EXPLODE" in t for t in texts):
        raise RuntimeError("secret text in the message: EXPLODE")
    return out


def wrong_shape(texts: list[str]) -> Any:
    return np.zeros((len(texts) + 1, 4))


def not_finite(texts: list[str]) -> Any:
    return np.full((len(texts), 4), np.nan)


DOSE = [
    "take 400 mg of ibuprofen every four hours",
    "adults take two 500 mg paracetamol tablets four times a day",
    "the dose of amoxicillin is 500 mg three times daily",
    "give the child 5 ml of syrup every six hours",
    "take 20 mg of omeprazole each morning",
]
PRICE = [
    "acme charges 20 dollars per seat per month",
    "acme enterprise plan costs 45 dollars per user",
    "acme discounts annual billing by 15 percent",
    "acme pro plan price went up to 35 dollars",
    "acme storage add-on costs 5 dollars",
]


def policy_text(**extra: Any) -> str:
    check: dict[str, Any] = {
        "id": "topics",
        "type": "topic",
        "embedder": "test_topic:embed",
        "deny": {"dosage": DOSE, "pricing": PRICE},
        "allow": ["our pricing page lists the plans"],
    }
    check.update(extra)
    return json.dumps({"version": 1, "name": "topics", "checks": [check]})


def make(**extra: Any) -> ge.Policy:
    return ge.Policy.from_yaml(policy_text(**extra), trusted_modules=TRUST)


@pytest.fixture(scope="module")
def policy() -> ge.Policy:
    return make()


@pytest.fixture(scope="module")
def flagging() -> ge.Policy:
    return make(action="flag")


TOPIC = "Take 400 mg of ibuprofen every four hours."
PASSING = "The weather is lovely in the mountains today."


def test_a_topic_sentence_is_blocked_and_named_without_its_text(policy: ge.Policy) -> None:
    result = policy.validate_sync(f"{PASSING} {TOPIC} Have a nice day.")
    assert result.decision is ge.Decision.BLOCK
    (finding,) = result.findings
    assert finding.check_type == "topic" and finding.entity_type == "dosage"
    assert finding.score is not None and 0.3 <= finding.score <= 1.0
    start = len(PASSING) + 1
    assert (finding.start, finding.end) == (start, start + len(TOPIC))
    assert "dosage" in finding.reason and f"{finding.score:.2f}" in finding.reason
    for word in ("ibuprofen", "400", "hours"):
        assert word not in finding.reason and word not in str(result.to_dict()["reasons"])


@pytest.mark.parametrize(
    "disguise",
    [
        lambda t: "\u200b".join(t),  # zero-width spaces between letters
        lambda t: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in t),  # fullwidth
        lambda t: t.replace(" ", "\u00a0"),  # no-break spaces
    ],
)
def test_disguised_text_is_scored_as_its_canonical_form(policy: ge.Policy, disguise: Any) -> None:
    result = policy.validate_sync(disguise(TOPIC))
    assert [f.entity_type for f in result.findings] == ["dosage"]


def test_ordinary_and_allowed_sentences_pass(policy: ge.Policy) -> None:
    for text in (PASSING, "Our pricing page lists the plans.", "Hello. How are you?"):
        assert policy.validate_sync(text).decision is ge.Decision.PASS, text


def test_the_best_topic_is_named(policy: ge.Policy) -> None:
    result = policy.validate_sync("Acme charges 20 dollars per seat per month.")
    assert [f.entity_type for f in result.findings] == ["pricing"]


def test_flag_keeps_the_text_and_reports_each_sentence(flagging: ge.Policy) -> None:
    text = f"{TOPIC} {PASSING} Acme charges 45 dollars per user."
    result = flagging.validate_sync(text)
    assert result.decision is ge.Decision.PASS and result.text == text
    assert [f.entity_type for f in result.findings] == ["dosage", "pricing"]


def test_threshold_per_topic() -> None:
    strict = make(threshold={"default": 0.3, "dosage": 1.0})
    assert strict.validate_sync(TOPIC).decision is ge.Decision.PASS
    assert strict.validate_sync("Acme charges 45 dollars per user.").decision is ge.Decision.BLOCK


def test_unit_text_scores_the_whole_text_once() -> None:
    whole = make(unit="text", action="flag")
    text = f"{TOPIC}\n{TOPIC}"
    (finding,) = whole.validate_sync(text).findings
    assert (finding.start, finding.end) == (0, len(text))


TEXTS = [
    f"{PASSING} {TOPIC} Acme charges 45 dollars per user! Fine?",
    f"{TOPIC}\nThe dose of amoxicillin is 500 mg... \u201cok.\u201d Bye",
    "Acme discounts annual billing by 15 percent.Take 400 mg of ibuprofen",
    "  leading space. trailing space.  ",
]


def test_stream_equals_validate_for_any_chunking(policy: ge.Policy, flagging: ge.Policy) -> None:
    check_chunkings(flagging, TEXTS, max_examples=40)
    check_chunkings(policy, TEXTS, max_examples=40)


def test_stream_releases_a_passing_sentence_before_the_text_ends(flagging: ge.Policy) -> None:
    # The check holds the open sentence only: the first sentence is out once it ends.
    push = flagging.push_sync()
    released = push.feed(f"{PASSING} ")
    released += push.feed("Take 400 mg")
    assert released.startswith(PASSING)
    assert "400" not in released
    rest = push.finish()
    assert released + rest == f"{PASSING} Take 400 mg"


def test_a_long_sentence_is_checked_in_parts_within_the_holdback_cap() -> None:
    text = json.dumps(
        {
            "version": 1,
            "name": "t",
            "stream": {"max_holdback_chars": 64},
            "checks": [json.loads(policy_text(action="flag"))["checks"][0]],
        }
    )
    small = ge.Policy.from_yaml(text, trusted_modules=TRUST)
    long = "word " * 100
    check_chunkings(small, [long + TOPIC], max_examples=10)
    run = small.stream_sync(list(long))
    assert "".join(run) == long
    assert max(run.run.holdbacks) <= 64


def test_an_embedder_that_fails_at_run_time_blocks_without_its_message(
    policy: ge.Policy,
) -> None:
    result = policy.validate_sync(f"{PASSING} EXPLODE now.")
    assert result.decision is ge.Decision.BLOCK
    assert "RuntimeError" in " ".join(result.reasons)
    assert "secret" not in str(result.to_dict())
    # Released before the failing sentence: only what was checked.
    stream = policy.stream_sync(list(f"{PASSING} EXPLODE now."))
    out = "".join(stream)
    assert "EXPLODE" not in out


def test_policies_pickle(policy: ge.Policy) -> None:
    again = pickle.loads(pickle.dumps(policy))
    assert again.validate_sync(TOPIC).findings == policy.validate_sync(TOPIC).findings


def test_eval_reports_per_topic_precision_recall_and_auc(policy: ge.Policy) -> None:
    cases = [
        {
            "input": TOPIC,
            "expect": {"decision": "block", "findings": [{"check": "topics", "entity": "dosage"}]},
        },
        {
            "input": "Acme charges 45 dollars per user.",
            "expect": {"decision": "block", "findings": [{"check": "topics", "entity": "pricing"}]},
        },
        {"input": PASSING, "expect": {"decision": "pass", "findings": []}},
        {
            "input": "Our pricing page lists the plans.",
            "expect": {"decision": "pass", "findings": []},
        },
    ]
    report = ge.evaluate(policy, cases, chunkings=("whole", "chars"))
    assert report.passed, report.to_text()
    topics = report.to_dict()["per_topic"]
    assert topics["topics/dosage"]["recall"] == 1.0
    assert topics["topics/pricing"]["precision"] == 1.0
    assert topics["topics/dosage"]["auc"] == 1.0
    assert "topics/dosage" in report.to_text()


# -- the policy file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, field, message",
    [
        ({"deny": {}}, "checks[0]", "needs `deny` or `examples_file`"),
        ({"deny": {"x": []}}, "checks[0]", "has no examples"),
        ({"threshold": {"nope": 0.5}}, "checks[0]", "not a denied topic"),
        ({"action": "repair"}, "checks[0].action", ""),
        ({"unit": "line"}, "checks[0].unit", ""),
        ({"embedder": "os:getcwd"}, "checks[0].embedder", "not trusted"),
        ({"embedder": "test_topic:wrong_shape"}, "checks[0].embedder", "one row per text"),
        ({"embedder": "test_topic:not_finite"}, "checks[0].embedder", "not finite"),
        ({"embedder": "test_topic:DIM"}, "checks[0].embedder", "a callable"),
    ],
)
def test_bad_policies_name_the_field(extra: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ge.PolicyError) as info:
        make(**extra)
    assert field in str(info.value) and message in str(info.value), str(info.value)


def _folder_policy(folder: Path, examples_file: str) -> ge.Policy:
    check = json.loads(policy_text(examples_file=examples_file))["checks"][0]
    check["deny"] = {}
    (folder / "p.yaml").write_text(
        json.dumps({"version": 1, "name": "t", "checks": [check]}), encoding="utf-8"
    )
    return ge.load_policy(folder / "p.yaml", trusted_modules=TRUST)


def test_examples_file_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "topics.yaml").write_text(
        json.dumps({"deny": {"dosage": DOSE}, "allow": ["our pricing page lists the plans"]}),
        encoding="utf-8",
    )
    policy = _folder_policy(tmp_path, "topics.yaml")
    assert [f.entity_type for f in policy.validate_sync(TOPIC).findings] == ["dosage"]


@pytest.mark.parametrize(
    "case", ["outside", "symlink", "large", "bad-yaml", "bad-shape", "missing"]
)
def test_examples_file_is_confined_and_its_content_never_quoted(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "policy"
    folder.mkdir()
    secret = "TOPSECRETVALUE"
    outside = tmp_path / "outside.yaml"
    outside.write_text(json.dumps({"deny": {"x": [secret]}}), encoding="utf-8")
    name = "topics.yaml"
    if case == "outside":
        name = "../outside.yaml"
    elif case == "symlink":
        os.symlink(outside, folder / name)
    elif case == "large":
        (folder / name).write_text("deny: {x: [" + "a, " * 600_000 + "]}", encoding="utf-8")
    elif case == "bad-yaml":
        (folder / name).write_text(f"deny: [{secret}", encoding="utf-8")
    elif case == "bad-shape":
        (folder / name).write_text(json.dumps({"deny": {"x": secret}}), encoding="utf-8")
    with pytest.raises(ge.PolicyError) as info:
        _folder_policy(folder, name)
    message = str(info.value)
    assert "examples_file" in message and secret not in message, message


# -- the default embedder -----------------------------------------------------------------


def test_the_default_embedder_loads_with_the_network_unreachable() -> None:
    pytest.importorskip("wordllama")
    out = run_limited(
        """
        import logging, socket
        def refuse(*a, **k):
            raise OSError("network unreachable (test)")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        before = list(logging.getLogger().handlers)
        import guardrails_engine as ge
        policy = ge.Policy.from_yaml('''
        version: 1
        name: offline
        checks:
          - id: topics
            type: topic
            deny:
              dosage: ["take 400 mg of ibuprofen every four hours",
                       "adults take two 500 mg paracetamol tablets four times a day",
                       "the usual dose of amoxicillin is 500 mg three times daily"]
        ''')
        r = policy.validate_sync("You can take 600 mg of ibuprofen every six hours.")
        print(r.decision.value, [f.entity_type for f in r.findings])
        print(policy.validate_sync("The museum opens at ten.").decision.value)
        print(logging.getLogger().handlers == before)
        """,
        seconds=120,
        memory=3_000_000_000,
    )
    assert out.split("\n")[:3] == ["block ['dosage']", "pass", "True"], out


# -- adapters and the command line ----------------------------------------------------------


def test_openai_adapter_blocks_a_denied_topic_mid_stream() -> None:
    openai = pytest.importorskip("openai")
    from _fake_openai import MODEL, FakeOpenAI, chat_chunks

    from guardrails_engine import openai as ge_openai

    policy = ge.Policy.from_yaml(
        policy_text().replace('"name": "topics"', '"name": "t", "block_message": "Sorry."'),
        trusted_modules=TRUST,
    )
    text = f"{PASSING} {TOPIC} {PASSING}"
    server = FakeOpenAI()
    server.start()
    try:
        pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
        server.add("chat", chat_chunks([(0, {"content": p}) for p in pieces]))
        with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            stream = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            guarded = ge_openai.guard_sync(policy, stream)
            content = "".join(c.delta.content or "" for chunk in guarded for c in chunk.choices)
        assert guarded.blocked is not None
        assert content == f"{PASSING}Sorry."  # the space opens the blocked sentence
        assert [f.entity_type for f in guarded.blocked.findings] == ["dosage"]
    finally:
        server.stop()


def test_cli_check_and_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardrails_engine._cli import main

    monkeypatch.setenv("GUARDRAILS_TRUSTED_MODULES", "test_topic")
    (tmp_path / "p.yaml").write_text(policy_text(), encoding="utf-8")
    (tmp_path / "in.txt").write_text(f"{PASSING} {TOPIC}", encoding="utf-8")
    policy_path, text_path = str(tmp_path / "p.yaml"), str(tmp_path / "in.txt")
    assert main(["check", "--policy", policy_path, "--stream", text_path]) == 1
    assert "topic dosage" in capsys.readouterr().err
    (tmp_path / "c.cases.yaml").write_text(
        "- {input: 'Take 400 mg of ibuprofen every four hours.', expect: {decision: block,"
        " findings: [{check: topics, entity: dosage}]}}\n"
        "- {input: 'The weather is lovely.', expect: {decision: pass, findings: []}}\n",
        encoding="utf-8",
    )
    assert main(["eval", "--policy", policy_path, str(tmp_path / "c.cases.yaml")]) == 0
    assert "topics/dosage" in capsys.readouterr().out


def test_missing_extra_is_a_policy_error_naming_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    embed_module = sys.modules["guardrails_engine.checks._topic.embed"]
    monkeypatch.setattr(embed_module, "_DEFAULT", [])
    monkeypatch.setitem(sys.modules, "wordllama", None)
    text = policy_text()
    default = json.loads(text)
    del default["checks"][0]["embedder"]
    with pytest.raises(ge.PolicyError, match=r"checks\[0\]\.type.*guardrails-engine\[semantic\]"):
        ge.Policy.from_yaml(json.dumps(default))
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)
    with pytest.raises(ge.PolicyError, match=r"scikit-learn.*guardrails-engine\[semantic\]"):
        make()
