"""The opt-in ``encodings`` disguise family: base64, hex and double percent-encoding.

A value encoded in a bounded run is found, the finding covers the whole run, a stream
gives what validate gives on every chunking, the cost stays linear, and ordinary text
(hashes, ids, long words, prose) gains no finding.
"""

from __future__ import annotations

import base64
import json
import random
import urllib.parse
from pathlib import Path

import pytest
from _cap_cases import chunks
from _child import run_limited
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "pii_dev.jsonl"
ON = "disguises: [separators, words, context, encodings]"


def _policy(disguises: str | None) -> ge.Policy:
    text = (ROOT / "policies" / "support-chat.yaml").read_text()
    assert "repair: mask\n" in text
    if disguises is None:
        return ge.Policy.from_yaml(text)
    return ge.Policy.from_yaml(text.replace("repair: mask\n", f"repair: mask\n    {ON}\n", 1))


@pytest.fixture(scope="module")
def encodings() -> ge.Policy:
    return _policy(ON)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _twice(value: str) -> str:
    return urllib.parse.quote(urllib.parse.quote(value, safe=""), safe="")


# (how, encoded run, entity)
ENCODED = [
    ("base64", _b64("jdoe@example.com"), "EMAIL_ADDRESS"),
    ("base64 in a sentence", _b64("my card is 4111 1111 1111 1111, thanks"), "CREDIT_CARD"),
    ("base64 without padding", _b64("jdoe@example.com").rstrip("="), "EMAIL_ADDRESS"),
    ("base64 url-safe", base64.urlsafe_b64encode(b"ssn 536-90-4399 ok??>").decode(), "US_SSN"),
    ("hex", b"4111 1111 1111 1111".hex(), "CREDIT_CARD"),
    ("hex upper case", b"jdoe@example.com".hex().upper(), "EMAIL_ADDRESS"),
    ("hex of a phone", b"call 415-555-0132".hex(), "PHONE_NUMBER"),
    ("double percent-encoding", _twice("jdoe@example.com"), "EMAIL_ADDRESS"),
    ("double percent-encoding", _twice("4111 1111 1111 1111"), "CREDIT_CARD"),
]
TEMPLATE = "The data is {} as sent."


@pytest.mark.parametrize(("how", "run", "entity"), ENCODED, ids=[c[0] for c in ENCODED])
def test_an_encoded_value_is_found_and_the_whole_run_repaired(
    encodings: ge.Policy, how: str, run: str, entity: str
) -> None:
    text = TEMPLATE.format(run)
    result = encodings.validate_sync(text)
    start = TEMPLATE.index("{}")
    assert [(f.entity_type, f.start, f.end) for f in result.findings] == [
        (entity, start, start + len(run))
    ], how
    assert result.text == TEMPLATE.format(f"<{entity}>")


def test_encodings_are_opt_in() -> None:
    default = _policy(None)
    for how, run, entity in ENCODED:
        if how.startswith("double") and entity == "CREDIT_CARD":
            continue  # (its groups read "4111%201111...": the separators family finds it)
        assert default.validate_sync(TEMPLATE.format(run)).findings == (), how


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(ENCODED) - 1), st.randoms(use_true_random=False))
def test_an_encoded_value_streams_as_it_validates(
    encodings: ge.Policy, i: int, rnd: random.Random
) -> None:
    _streams_as_it_validates(encodings, TEMPLATE.format(ENCODED[i][1]), rnd, [1, 3, 8, 40])


def _streams_as_it_validates(
    policy: ge.Policy, text: str, rnd: random.Random, tops: list[int]
) -> None:
    whole = policy.validate_sync(text)
    stream = policy.stream_sync(chunks(rnd, text, rnd.choice(tops)))
    out = "".join(stream)
    assert stream.result is not None
    assert stream.result.findings == whole.findings
    assert out == whole.text


@pytest.mark.parametrize(
    "text",
    [
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 matches",
        "commit dad14829badef97e35aa4bf59b79da3522650842 and uuid 123e4567e89b12d3a456426614174000",
        "internationalization and counterrevolutionaries are long words",
        "a token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 in a header",
        f"hello in base64 is {_b64('hello, this is fine text')} and that is fine",
        "the path /usr/local/lib/python3.11/site-packages is long",
        "a url https://example.org/search?q=caf%25C3%25A9+cr%25C3%25A8me is encoded twice",
        "snake_case_identifier_name and CamelCaseIdentifierName",
    ],
)
def test_ordinary_encoded_text_has_no_finding(encodings: ge.Policy, text: str) -> None:
    assert [f.reason for f in encodings.validate_sync(text).findings] == []


@pytest.mark.skipif(not DEV.exists(), reason="shared data not present")
def test_pii_free_prose_has_no_finding_with_encodings_on(encodings: ge.Policy) -> None:
    words = ["river", "window", "garden", "pencil", "lantern", "meadow"]
    found = {}
    for line in DEV.read_text().splitlines():
        row = json.loads(line)
        text = row["text"]
        for e in sorted(row["entities"], key=lambda e: -e["start"]):
            text = text[: e["start"]] + words[e["start"] % len(words)] + text[e["end"] :]
        reasons = [f.reason for f in encodings.validate_sync(text).findings]
        if reasons:
            found[text[:40]] = reasons
    assert found == {}


#: A pii check alone, with a cap above the long runs below (a stream holds a run until it
#: ends, up to the cap).
LONG = (
    "version: 1\nname: t\nchecks:\n  - id: pii\n    type: pii\n"
    "    entities: [EMAIL_ADDRESS, CREDIT_CARD, US_SSN, PHONE_NUMBER]\n"
    f"    action: repair\n    repair: mask\n    {ON}\n"
    "stream:\n  max_holdback_chars: 16384\n"
)


@pytest.mark.parametrize("before", [0, 300, 372, 380, 760, 1500, 4000])
def test_a_run_longer_than_the_window_is_decoded_in_windows(before: int) -> None:
    # Windows of 1,024 characters every 512: a value is read wherever it lies in the run,
    # across a window's edge too (760 bytes before it: its encoding crosses 1,024).
    policy = ge.Policy.from_yaml(LONG)
    value = "jdoe@example.com"
    run = _b64("x" * before + f" {value} " + "y" * 2500)
    assert len(run) > 3 * 1024
    result = policy.validate_sync(f"a {run} b")
    assert result.text == "a <EMAIL_ADDRESS> b"
    assert [(f.start, f.end) for f in result.findings] == [(2, 2 + len(run))]
    hexed = ("z" * before + " 4111 1111 1111 1111 " + "z" * 900).encode().hex()
    assert policy.validate_sync(f"a {hexed} b").text == "a <CREDIT_CARD> b"


def test_a_long_run_without_a_value_has_no_finding() -> None:
    policy = ge.Policy.from_yaml(LONG)
    noise = base64.b64encode(bytes(range(256)) * 40).decode()
    prose = _b64("Nothing to see in this long encoded paragraph of plain words. " * 100)
    for run in (noise, prose, "ab" * 3000, "Ab9+" * 2000):
        assert policy.validate_sync(f"a {run} b").findings == ()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 3000), st.randoms(use_true_random=False))
def test_a_long_encoded_run_streams_as_it_validates(before: int, rnd: random.Random) -> None:
    run = _b64("x" * before + " 536-90-4399 " + "y" * 1500)
    _streams_as_it_validates(ge.Policy.from_yaml(LONG), f"SSN {run} ok", rnd, [7, 64, 700])


def test_hostile_encoded_runs_cost_linear_time() -> None:
    # 200k characters of each run family, validated and streamed in a child with limits
    # (a long run is decoded in windows: each character twice).
    out = run_limited(
        """
        import base64, time
        import guardrails_engine as ge
        text = open("policies/support-chat.yaml").read().replace(
            "repair: mask\\n", "repair: mask\\n    disguises: [encodings]\\n", 1)
        p = ge.Policy.from_yaml(text)
        runs = {
            "base64 alphabet": "Ab9+" * 50_000,
            "hex": "4a" * 100_000,
            "short base64 runs": (base64.b64encode(b"x" * 600).decode() + " ") * 250,
            "one long base64 run of words": base64.b64encode(b"plain words " * 15_000).decode(),
            "percent": "%2541" * 40_000,
        }
        for name, run in runs.items():
            p.validate_sync(run)
            chunks = [run[i:i + 4096] for i in range(0, len(run), 4096)]
            "".join(p.stream_sync(chunks))
        print("ok")
        """,
        seconds=120,
    )
    assert out.strip() == "ok"
