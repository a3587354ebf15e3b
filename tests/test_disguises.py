"""Disguised values are caught, streamed as validated, and ordinary prose is left alone.

The corpus (tests/_disguised.py) holds each family of the README's "Disguised
values" section; benchmarks/evasion.py prints the same table against raw
presidio.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest
from _cap_cases import chunks, long_case
from _disguised import FAMILIES, OPT_IN, caught, corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge
from guardrails_engine._scanning.canon import OffsetMap, canonical

CASES = corpus()
DEV = Path(__file__).resolve().parent / "data" / "pii_dev.jsonl"


def test_the_corpus_covers_every_family_with_enough_cases() -> None:
    assert len(CASES) >= 150
    assert {c.family for c in CASES} == set(FAMILIES) | set(OPT_IN)


def test_bare_words_are_caught_with_disguises_all(policies_dir: Path) -> None:
    text = (policies_dir / "support-chat.yaml").read_text()
    every = ge.Policy.from_yaml(
        text.replace("repair: mask\n", "repair: mask\n    disguises: all\n")
    )
    default = ge.load_policy(policies_dir / "support-chat.yaml")
    bare = [c for c in CASES if c.family in OPT_IN]
    assert bare
    assert all(caught(every.validate_sync(c.text).findings, c) for c in bare)
    assert not any(caught(default.validate_sync(c.text).findings, c) for c in bare)
    # Prose that reads like one is left alone even then.
    for prose in ("Look at this dot com bubble.", "The job at Google dot com paid well."):
        assert every.validate_sync(prose).findings == ()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_disguised_value_of_a_family_is_caught(
    support_policy: ge.Policy, family: str
) -> None:
    missed = [
        (c.how, c.text)
        for c in CASES
        if c.family == family and not caught(support_policy.validate_sync(c.text).findings, c)
    ]
    assert missed == []


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(CASES) - 1), st.randoms(use_true_random=False))
def test_a_disguised_value_streams_as_it_validates(
    support_policy: ge.Policy, i: int, rnd: random.Random
) -> None:
    text = CASES[i].text
    whole = support_policy.validate_sync(text)
    stream = support_policy.stream_sync(chunks(rnd, text, rnd.choice([1, 3, 8])))
    out = "".join(stream)
    assert stream.result is not None
    assert stream.result.findings == whole.findings
    assert out == whole.text


_ESCAPES = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);|%[0-9A-Fa-f]{2}")


@pytest.mark.slow
def test_no_repair_cuts_an_escape_or_a_markup_token_in_half(support_policy: ge.Policy) -> None:
    for case in CASES:
        result = support_policy.validate_sync(case.text)
        inside = [(m.start(), m.end()) for m in _ESCAPES.finditer(case.text)] + [
            (m.start(), m.end()) for m in re.finditer(r"\*\*|`", case.text)
        ]
        for f in result.findings:
            for s, e in inside:
                assert not s < f.start < e, (case.how, case.text, f.reason)
                assert not s < f.end < e, (case.how, case.text, f.reason)


def test_disguises_none_turns_the_pattern_families_off(policies_dir: Path) -> None:
    text = (policies_dir / "support-chat.yaml").read_text()
    assert "repair: mask\n" in text
    off = ge.Policy.from_yaml(text.replace("repair: mask\n", "repair: mask\n    disguises: none\n"))
    only = ge.Policy.from_yaml(
        text.replace("repair: mask\n", "repair: mask\n    disguises: [words]\n")
    )
    words = "Write to jdoe [at] example [dot] com today."
    card = "Card 4111.1111.1111.1111 on file."
    assert off.validate_sync(words).decision is ge.Decision.PASS
    assert off.validate_sync(card).decision is ge.Decision.PASS
    assert only.validate_sync(words).decision is ge.Decision.REPAIR
    assert only.validate_sync(card).decision is ge.Decision.PASS
    # What the canonical view undoes is not a pattern family: it stays on.
    assert off.validate_sync("Write to jdoe&#64;example.com.").decision is ge.Decision.REPAIR


def test_an_unknown_disguise_family_is_a_policy_error(policies_dir: Path) -> None:
    text = (policies_dir / "support-chat.yaml").read_text()
    with pytest.raises(ge.PolicyError, match="disguises"):
        ge.Policy.from_yaml(
            text.replace("repair: mask\n", "repair: mask\n    disguises: [leetspeak]\n")
        )


# -- no new false positives ------------------------------------------------------------------

_WORDS = ["river", "window", "garden", "pencil", "lantern", "meadow"]

#: Ordinary text with numbers, markup, entities and look-alike words.
NEAR_MISSES = [
    "Version 1.2.3 shipped on 2024-01-15 at 10:30; 2.0.1 follows on 2024/02/01.",
    "The total is $1,234.56 (tax 8.25%), due in 30 days; 50% off until 12/31/2024.",
    "Rooms 101 - 104 are on floor 1, rooms 201 - 204 on floor 2.",
    "Order #20240115-0042 ships in 3-5 days; tracking 1Z 999 AA1 01 2345 678.",
    "Use `pip install -e .` then **restart** the *worker* with `kill -HUP 1234`.",
    "| id | qty |\n|----|-----|\n| 12 | 340 |\n| 13 | 125 |",
    "AT&T and Procter &amp; Gamble both reported Q3 results &mdash; up 4%.",
    "Look at this dot com bubble: everyone was at the dot com party.",
    "Meet me at noon. It was available at example.com last week, I think.",
    "The ratio is 3 / 4 / 5 and the score was 12 - 10 after 90 minutes.",
    "Coordinates 40.7128 N, 74.0060 W; elevation 10 m; area 783.8 km2.",
    "Call the front desk at extension 4102 or visit room 12.",
    "Sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 matches.",
    "UUID 123e4567-e89b-12d3-a456-426614174000 was issued at 09:15:00.",
    "Привет, как дела? Это обычный текст, без номеров.",
    "Γειά σου κόσμε, αυτό είναι ένα κείμενο.",  # noqa: RUF001 (Greek on purpose)
    "Step 1 of 3, then 2 of 3, then 3 of 3 - done in 4.5 s.",
    "ISBN 978-3-16-148410-0 and ISSN 2049-3630 are cited.",
    "The années 1990-1999 and 2000–2009 (en dash) were different.",  # noqa: RUF001
    "Scores: 12**2 = 144, 2**10 = 1024, 10**3 = 1000.",
    "commit dad14829badef97e35aa4bf59b79da3522650842 and tag v2024010112",
    "Invoice INV2023110712 and ticket #T4155550132 are closed.",
    "The job at Google dot com paid well; prices at Walmart dot com fell.",
    "Use <b>bold</b> and <br> breaks, a <b and c> comparison, and x < 3 > 2.",
]


def _prose() -> list[str]:
    out = []
    for line in DEV.read_text().splitlines():
        row = json.loads(line)
        text = row["text"]
        for e in sorted(row["entities"], key=lambda e: -e["start"]):
            text = text[: e["start"]] + _WORDS[e["start"] % len(_WORDS)] + text[e["end"] :]
        out.append(text)
    return out


@pytest.mark.skipif(not DEV.exists(), reason="shared data not present")
def test_pii_free_prose_has_no_finding(support_policy: ge.Policy) -> None:
    found = {
        text[:40]: [f.reason for f in support_policy.validate_sync(text).findings]
        for text in _prose()
    }
    assert {k: v for k, v in found.items() if v} == {}


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_ordinary_text_with_numbers_and_markup_has_no_pii_finding(
    support_policy: ge.Policy, text: str
) -> None:
    assert [f.reason for f in support_policy.validate_sync(text).findings] == []


# -- the canonical view --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, view",
    [
        ("4\u034f1\ufe0f1\U000e01001\u180b1\u17b4", "41111"),  # invisible marks
        ("1\u31642\uffa03\u28004\u115f5\u1160", "12345"),  # fillers, braille blank
        ("\u0664\u0661\u0661\u0661 \u096a\u0967", "4111 41"),  # other scripts' digits
        ("415\u2013555\u22120132\u2014x\u2011y", "415-555-0132-x-y"),  # dashes
        ("example.c\u043em \u0391\u0392", "example.com AB"),  # look-alike letters
        ("a\u0301b\u0332", "ab"),  # combining marks
        ("4\ufe0f\u20e3", "4"),  # keycap
        ("\u202ejdoe\u202c", "eodj\njdoe"),  # a bidi override: as shown, then as written
        ("j&#100;&#x6F;e&commat;x&period;com", "jdoe@x.com"),  # HTML references
        ("a&bogus;b AT&T &#99999999; &amp", "a&bogus;b AT&T &#99999999; &amp"),  # not escapes
        ("jdoe%40example%2Ecom 100% %20", "jdoe@example.com 100% %20"),  # percent escapes
    ],
)
def test_the_canonical_view(text: str, view: str) -> None:
    assert canonical(text) == view


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("&#;%4x0aAm p\\u\u034f\u0664\u2013")), max_size=40),
    st.randoms(use_true_random=False),
)
def test_the_canonical_view_does_not_depend_on_chunking(text: str, rnd: random.Random) -> None:
    m = OffsetMap()
    view = "".join(m.add(c) for c in chunks(rnd, text, 4)) + m.flush()
    assert view == canonical(text)
    # Every canonical offset maps into the original, in order.
    offsets = [m.to_orig(i) for i in range(len(view) + 1)]
    assert offsets == sorted(offsets)
    assert all(0 <= o <= len(text) for o in offsets)


# -- past the hold-back cap ------------------------------------------------------------------


def _released_values(policy: ge.Policy, text: str, parts: list[str]) -> list[tuple[str, int]]:
    """Characters of a value that ``validate`` repairs or blocks that the stream released."""
    whole = policy.validate_sync(text)
    stream = policy.stream_sync(parts)
    "".join(stream)
    result = stream.result
    assert result is not None
    upto = len(text)
    if result.decision is ge.Decision.BLOCK:
        upto = min(f.start for f in result.findings if f.action is ge.Action.BLOCK)
    covered: set[int] = set()
    for f in result.findings:
        if f.action is ge.Action.REPAIR:
            covered.update(range(f.start, f.end))
    out = []
    if whole.decision is ge.Decision.BLOCK and result.decision is not ge.Decision.BLOCK:
        out.append(("validate blocks, the stream does not", 0))
    for f in whole.findings:
        if f.action is ge.Action.FLAG:
            continue
        missing = sum(1 for i in range(f.start, min(f.end, upto)) if i not in covered)
        if missing:
            out.append((f.reason, missing))
    return out


@pytest.fixture(scope="module")
def capped(policies_dir: Path) -> dict[int, ge.Policy]:
    text = (policies_dir / "support-chat.yaml").read_text().replace("2000", "100000")
    return {
        cap: ge.Policy.from_yaml(text + f"stream:\n  max_holdback_chars: {cap}\n")
        for cap in (16, 64, 300)
    }


def test_a_key_past_the_cap_blocks_though_a_pii_check_shares_the_scanner(
    capped: dict[int, ge.Policy],
) -> None:
    # The pii and secrets checks share one scanner: forcing it for the first must not
    # make the second forget that its own match was in progress (it blocks).
    text = "k=sk-" + "A" * 30 + "\nThe rest of the answer."
    assert capped[16].validate_sync(text).decision is ge.Decision.BLOCK
    for size in (1, 2, 3, 4, 8):
        stream = capped[16].stream_sync([text[i : i + size] for i in range(0, len(text), size)])
        out = "".join(stream)
        assert stream.result is not None and stream.result.decision is ge.Decision.BLOCK, size
        assert "rest" not in out and "AAAA" not in out


def test_a_value_glued_to_a_long_run_is_masked_past_the_cap(support_policy: ge.Policy) -> None:
    text = "Ref: " + "x" * 1100 + "jdoe@example.com thanks"
    parts = [text[i : i + 4] for i in range(0, len(text), 4)]
    stream = support_policy.stream_sync(parts)
    out = "".join(stream)
    assert "jdoe" not in out and "example" not in out
    assert stream.result is not None and stream.result.decision is ge.Decision.REPAIR
    assert out == support_policy.validate_sync(text).text == "Ref: <EMAIL_ADDRESS> thanks"


# 300 in CI; by hand: GE_CAP_EXAMPLES=2000 .venv/bin/python -m pytest tests/test_disguises.py -k cap
CAP_EXAMPLES = int(os.environ.get("GE_CAP_EXAMPLES", "300"))


@pytest.mark.slow
@settings(max_examples=CAP_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.sampled_from([16, 64, 300]))
def test_no_stream_releases_a_value_that_validate_removes_past_the_cap(
    capped: dict[int, ge.Policy], rnd: random.Random, cap: int
) -> None:
    text = long_case(rnd, cap)
    parts = chunks(rnd, text, rnd.choice([1, 4, 8, 64]))
    assert _released_values(capped[cap], text, parts) == []
