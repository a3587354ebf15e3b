"""``type: judge``: an LLM judge as a guardrail, through the real SDK against a fake
model that judges deterministically.  Streams give what validate gives on every
chunking; a judge that times out or answers nonsense fails closed; a reason gives
the score, never the judge's words."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from _fake_models import FakeModels, Scripted, prompt_of, say
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrails_engine as ge
from guardrails_engine.testing import assert_stream_matches


def _answer(provider: str, model: str, body: dict[str, Any]) -> Scripted:
    response = prompt_of(body).split("<response>", 1)[-1]
    if model == "slow":
        return Scripted(("{}",), delay=6.0)
    if model == "nonsense":
        return say("I would rather not say.")
    good = "refund" in response.lower() or not response.replace("</response>", "").strip()
    verdict = {"score": 0.9 if good else 0.1, "reason": f"judged: {response[:40]}"}
    return say(json.dumps(verdict))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeModels]:
    server = FakeModels(_answer).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")


def _policy(
    fake: FakeModels,
    *,
    unit: str = "text",
    model: str = "judge",
    provider: str = "openai",
    extra: str = "",
    action: str = "block",
) -> ge.Policy:
    base = f"{fake.base_url}/v1" if provider == "openai" else fake.base_url
    return ge.Policy.from_yaml(
        f"""
version: 1
name: judged
{extra}
checks:
  - id: on-topic
    type: judge
    unit: {unit}
    action: {action}
    options:
      rubric: "Talks about refunds."
      client: "{provider}:{model}"
      base_url: "{base}"
      ask_timeout_ms: 3000
"""
    )


GOOD = "Refunds are accepted within 30 days. Ask support for a refund."
BAD = "Our CEO, jdoe@example.com, loves sailing. Refund forms are online."


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_whole_text_is_judged(fake: FakeModels, provider: str) -> None:
    policy = _policy(fake, provider=provider)
    assert policy.validate_sync(GOOD).decision is ge.Decision.PASS
    result = policy.validate_sync("We sell boats and sails.")
    assert result.decision is ge.Decision.BLOCK
    (f,) = result.findings
    assert f.reason == "on-topic: the rubric is not met (score 0.10 < 0.8) at 0-24, blocked"
    assert f.entity_type == "JUDGE"


def test_per_sentence_a_failing_sentence_is_repaired_and_its_words_never_quoted(
    fake: FakeModels,
) -> None:
    policy = _policy(fake, unit="sentence", action="repair")
    result = policy.validate_sync(BAD)
    assert result.decision is ge.Decision.REPAIR
    assert result.text == "<JUDGE> Refund forms are online."
    assert all("jdoe" not in r and "judged" not in r for r in result.reasons)


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=30), text=st.sampled_from([GOOD, BAD])
)
def test_stream_equals_validate_on_every_chunking(
    fake: FakeModels, cuts: list[int], text: str
) -> None:
    policy = _policy(fake, unit="sentence", action="repair")
    chunks, i = [], 0
    for n in cuts:
        if i >= len(text):
            break
        chunks.append(text[i : i + n])
        i += n
    if i < len(text):
        chunks.append(text[i:])
    assert_stream_matches(policy, text, chunks, asynchronous=True)


@pytest.mark.parametrize("model", ["slow", "nonsense"])
def test_a_judge_that_cannot_decide_fails_closed(fake: FakeModels, model: str) -> None:
    result = _policy(fake, model=model).validate_sync("Anything at all, judged by nobody.")
    assert result.decision is ge.Decision.BLOCK
    assert any("on-topic" in r and "failed" in r for r in result.reasons)
    stream = _policy(fake, model=model).stream_sync(["Anything at all, ", "judged by nobody."])
    assert "".join(stream) == ""  # nothing unjudged was released
    assert stream.result is not None and stream.result.decision is ge.Decision.BLOCK
    if model == "nonsense":  # fail-open only where the policy says so
        opened = _policy(fake, model=model, extra="on_error: pass")
        assert opened.validate_sync("Anything at all.").decision is ge.Decision.PASS


def test_bad_options_name_the_field() -> None:
    with pytest.raises(ge.PolicyError, match="client"):
        ge.Policy.from_yaml(
            "version: 1\nname: x\nchecks:\n  - id: j\n    type: judge\n"
            "    options: {rubric: r, client: 'gpt-4'}\n"
        )
