"""Hostile inputs: each case runs in a child process with a time and a memory
bound, so that a hang or a blow-up fails its test instead of the suite.

The bounds are generous (the machine is shared): they say "does not hang, does
not explode", never how fast.  Costs are measured in benchmarks/adversarial.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _child import run_limited
from test_analysis import CATASTROPHIC  # the patterns, and more

PII_AND_URL = "benchmarks/policies/pii-and-url.yaml"  # (shared with benchmarks/adversarial.py)

PHONE_ONLY = """
version: 1
name: phones
checks:
  - id: pii
    type: pii
    entities: [PHONE_NUMBER]
"""

SUPPORT_CHAT = "policies/support-chat.yaml"


def _run(code: str, seconds: float = 180) -> Any:
    return json.loads(run_limited(code, seconds=seconds).strip().splitlines()[-1])


def _validate_and_stream(policy: str, unit: str, size: int, seconds: float = 180) -> Any:
    """Validate and a 4-character stream of ``unit`` repeated to ``size``
    characters; [decision of validate, decision of the stream, same text]."""
    load = (
        f"ge.load_policy({policy!r})"
        if policy.endswith(".yaml")
        else f"ge.Policy.from_yaml({policy!r})"
    )
    return _run(
        f"""
import json, guardrails_engine as ge
P = {load}
text = ({unit!r} * ({size} // {len(unit)} + 1))[:{size}]
whole = P.validate_sync(text)
s = P.stream_sync(iter([text[i:i + 4] for i in range(0, len(text), 4)]))
out = "".join(s)
print(json.dumps([whole.decision, s.result.decision, out == whole.text]))
""",
        seconds,
    )


def test_catastrophic_patterns_are_refused_at_load() -> None:
    out = _run(
        f"""
import json, guardrails_engine as ge
head = "version: 1\\nname: x\\nchecks:\\n  - id: c\\n    type: content\\n    patterns: "
errors = []
for pattern in {CATASTROPHIC!r}:
    try:
        ge.Policy.from_yaml(head + json.dumps([pattern]) + "\\n")
        errors.append("loaded")
    except ge.PolicyError as exc:
        errors.append(str(exc))
print(json.dumps(errors))
""",
        seconds=60,
    )
    assert len(out) == len(CATASTROPHIC)
    for message in out:
        assert "checks[0].patterns[0]" in message and "backtrack catastrophically" in message


# Past the hold-back cap, where a match may still be in progress is asked of the
# engine: that probe ran without a time limit, so the pattern alone ran 4-7 s for a
# check given 300 ms and ended with a finding (with the second pattern, a search of it
# timed out first; skipping that search for want of a "b" left the probe running).
@pytest.mark.parametrize("patterns", ["['(\\\\w+\\\\s?)+$']", "['(\\\\w+\\\\s?)+$', '(?:a|aa)+b']"])
def test_a_backtracking_pattern_that_slips_through_meets_its_deadline(patterns: str) -> None:
    out = _run(
        """
import json, guardrails_engine as ge, guardrails_engine._spec.config as cfg
cfg.backtracking = lambda *a: None
P = ge.Policy.from_yaml('''
version: 1
name: x
checks:
  - id: secrets
    type: content
    patterns: PATTERNS
    timeout_ms: 300
''')
text = "a" * 100_000 + "!"
whole = P.validate_sync(text)
s = P.stream_sync(iter([text[i:i + 4] for i in range(0, len(text), 4)]))
list(s)
print(json.dumps([list(whole.reasons), list(s.result.reasons)]))
""".replace("PATTERNS", patterns),
    )
    assert out == [["secrets: check timed out after 300 ms, blocked"]] * 2


CASES = {
    "spaced digits, length limit": (SUPPORT_CHAT, "1 2 3 4 5 6 7 8 9 ", 100_000),
    "spaced digits": (PHONE_ONLY, "1 2 3 4 5 6 7 8 9 ", 15_000),
    "dotted digits": (SUPPORT_CHAT, "1.2.", 100_000),
    "phone-like": (PHONE_ONLY, "415-555-0100-", 15_000),
    "PII-dense": (SUPPORT_CHAT, "bob@example.com 4111 1111 1111 1111 10.0.0.1 ", 100_000),
    # each override opens a run that never closes (7.5 s for 20,000 with a 500 ms timeout,
    # 61 s for 200,000: the view's walk read every run's 256 characters)
    "bidi overrides": (SUPPORT_CHAT, "\u202e", 200_000),
    "bidi overrides, some closed": (SUPPORT_CHAT, "\u202e\u202e\u202c", 100_000),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_pathological_outputs_finish(name: str) -> None:
    policy, unit, size = CASES[name]
    whole, streamed, _ = _validate_and_stream(policy, unit, size)
    assert whole in ("pass", "repair", "block") and streamed in ("pass", "repair", "block")


@pytest.mark.slow
def test_dotted_digits_with_urls_finish_within_the_deadline() -> None:
    # presidio's URL patterns backtrack through every dot: the default deadline
    # (10 s) bounds them; either the check finishes or it times out and blocks.
    whole, streamed, _ = _validate_and_stream(PII_AND_URL, "1.2.", 10_000, seconds=240)
    assert whole in ("pass", "repair", "block") and streamed in ("pass", "repair", "block")


@pytest.mark.slow
@pytest.mark.parametrize("words", [1, 2])
def test_ten_thousand_terms_load_and_stream(words: int) -> None:
    out = _run(
        f"""
import json, random, guardrails_engine as ge
rnd = random.Random(0)
def word():
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(4, 9)))
terms = [" ".join(word() for _ in range({words})) for _ in range(10_000)]
policy = "version: 1\\nname: t\\nchecks:\\n  - id: c\\n    type: content\\n    action: repair\\n"
policy += "    terms: " + json.dumps(terms) + "\\n"
P = ge.Policy.from_yaml(policy)
text = ("plain words around " + terms[1234] + ", then more words. ") * 2000
whole = P.validate_sync(text)
s = P.stream_sync(iter([text[i:i + 4] for i in range(0, len(text), 4)]))
out = "".join(s)
print(json.dumps([whole.decision, len(whole.findings), out == whole.text]))
""",
        seconds=240,
    )
    assert out == ["repair", 2000, True]
