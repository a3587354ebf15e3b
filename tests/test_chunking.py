"""Streaming guarantees 1 and 2: chunking never changes the answer, nothing flagged leaks.

For random texts with planted PII, terms and patterns, cut into random chunks:
the stream's decision and findings equal ``validate(text)``'s; for pass and
repair the released pieces concatenate to ``validate(text).text`` exactly; and
no piece contains any part of a span that a repair or block finding covers.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from _chunks import cut
from _policies import PATTERN_ENTITIES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge
from guardrails_engine._runtime.run import Run

DATA = Path(__file__).parent / "data" / "pii_dev.jsonl"

POLICY = """
version: 1
name: chunking
block_message: "[blocked]"
stream: {max_holdback_chars: 1024}
checks:
  - id: pii
    type: pii
    entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE, URL]
    action: repair
  - id: words
    type: content
    terms: ["internal use only", "do not share"]
    action: %(terms_action)s
    replacement: "***"
  - id: keys
    type: content
    patterns: ['\\bsk-[A-Za-z0-9]{8,}\\b', 'TOKEN\\d+$']
    action: %(patterns_action)s
  - id: length
    type: length
    max_chars: %(max_chars)d
    max_words: %(max_words)d
    action: %(length_action)s
"""

_POLICIES: dict[tuple[str, str, str, int, int], ge.Policy] = {}


def policy(terms: str, patterns: str, length: str, max_chars: int, max_words: int) -> ge.Policy:
    key = (terms, patterns, length, max_chars, max_words)
    if key not in _POLICIES:
        _POLICIES[key] = ge.Policy.from_yaml(
            POLICY
            % {
                "terms_action": terms,
                "patterns_action": patterns,
                "length_action": length,
                "max_chars": max_chars,
                "max_words": max_words,
            }
        )
    return _POLICIES[key]


PLANTED = [
    "jdoe@example.com",
    "a.b-c@mail.example.org",
    "+1 347 590 0177",
    "(415) 555-0132",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "078-05-1120",
    "192.168.10.7",
    "2001:db8::ff00:42:8329",
    "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000",
    "https://example.com/a?b=1",
    "internal use only",
    "Do  Not\nShare",
    "sk-abcDEF123456789",
    "TOKEN42",
]
WORDS = ["the", "order", "shipped", "call", "me", "at", "email", "is", "ok", "4242", "x", "."]
SEPARATORS = [" ", " ", " ", "\n", "  ", ", ", ". ", "\t", ""]

piece = st.one_of(
    st.sampled_from(WORDS), st.sampled_from(PLANTED), st.sampled_from(PLANTED), st.text(max_size=3)
)
texts = st.lists(st.tuples(piece, st.sampled_from(SEPARATORS)), max_size=30).map(
    lambda parts: "".join(a + b for a, b in parts)
)


def stream(p: ge.Policy, chunks: list[str]) -> tuple[list[str], ge.Result]:
    s = p.stream_sync(iter(chunks))
    pieces = list(s)
    assert s.result is not None
    return pieces, s.result


def assert_same(p: ge.Policy, text: str, chunks: list[str]) -> None:
    whole = p.validate_sync(text)
    pieces, streamed = stream(p, chunks)
    assert streamed.decision == whole.decision
    assert streamed.findings == whole.findings
    assert streamed.text == whole.text
    released = "".join(pieces)
    if whole.decision is ge.Decision.BLOCK:
        if p.block_message:
            assert released.endswith(p.block_message)
            released = released[: -len(p.block_message)]
        block = min(f.start for f in whole.findings if f.action is ge.Action.BLOCK)
        # Nothing from the violating span on: what was released is the safe
        # output of a prefix that ends before it.
        assert_only_safe(text, whole.findings, released, upto=block)
    else:
        assert released == whole.text
        assert_only_safe(text, whole.findings, released, upto=len(text))


def assert_only_safe(text: str, findings: tuple[ge.Finding, ...], released: str, upto: int) -> None:
    """``released`` is a prefix of the text before ``upto`` with the repairs applied."""
    # Merged spans take the replacement of the finding that starts first, then the longest.
    ordered = sorted(
        (f for f in findings if f.action is ge.Action.REPAIR and f.start < upto),
        key=lambda f: (f.start, -f.end),
    )
    spans = [(f.start, f.end, f.replacement) for f in ordered]
    out, pos, cut = [], 0, upto
    merged: list[list[object]] = []
    for s, e, r in spans:
        if r is None:  # truncation
            cut = min(cut, s)
            continue
        if merged and s < merged[-1][1]:  # type: ignore[operator]
            merged[-1][1] = max(merged[-1][1], e)  # type: ignore[call-overload]
        else:
            merged.append([s, e, r])
    for s, e, r in merged:
        if s >= cut:  # type: ignore[operator]
            break
        out.append(text[pos:s])  # type: ignore[misc]
        out.append(r)  # type: ignore[arg-type]
        pos = e  # type: ignore[assignment]
    if pos < cut:
        out.append(text[pos:cut])
    safe = "".join(out)  # type: ignore[arg-type]
    assert safe.startswith(released)


actions = st.sampled_from(["repair", "block", "flag"])


@pytest.mark.slow
@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    texts,
    st.lists(st.integers(1, 8), min_size=1, max_size=30),
    actions,
    actions,
    actions,
    st.integers(20, 400),
    st.integers(3, 60),
)
def test_chunking_does_not_change_the_answer(
    text: str,
    sizes: list[int],
    terms: str,
    patterns: str,
    length: str,
    max_chars: int,
    max_words: int,
) -> None:
    p = policy(terms, patterns, length, max_chars, max_words)
    assert_same(p, text, cut(text, sizes))


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.data())
def test_every_split_position(text: str, data: st.DataObject) -> None:
    p = policy("repair", "block", "repair", 10_000, 10_000)
    for i in range(len(text) + 1):
        assert_same(p, text, [text[:i], text[i:]])


def corpus() -> list[dict[str, object]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def support_chat() -> ge.Policy:
    return ge.load_policy(Path(__file__).parent.parent / "policies" / "support-chat.yaml")


@pytest.mark.parametrize("chunking", ["chars", "random1-8", "words"])
def test_corpus_agreement(support_chat: ge.Policy, chunking: str) -> None:
    """100 % agreement between stream and whole on the labelled corpus."""
    rng = random.Random(7)
    disagreements = []
    for row in corpus():
        text = str(row["text"])
        if chunking == "chars":
            chunks = list(text)
        elif chunking == "words":
            chunks = [w for w in __import__("re").split(r"(\s+)", text) if w]
        else:
            chunks = cut(text, [rng.randint(1, 8) for _ in range(len(text))])
        whole = support_chat.validate_sync(text)
        pieces, streamed = stream(support_chat, chunks)
        if (streamed.findings, "".join(pieces)) != (whole.findings, whole.text):
            disagreements.append(row["id"])
    assert disagreements == []


def test_plain_recall_and_no_leaks(support_chat: ge.Policy) -> None:
    """Recall of the six pattern entities on plain text >= 0.97; no value leaks from a stream."""
    found = total = 0
    leaks = []
    rng = random.Random(3)
    for row in corpus():
        if row["variant"] != "plain":
            continue
        text = str(row["text"])
        pieces, result = stream(support_chat, cut(text, [rng.randint(1, 8) for _ in text]))
        released = "".join(pieces)
        for e in row["entities"]:  # type: ignore[attr-defined]
            if e["type"] not in PATTERN_ENTITIES:
                continue
            total += 1
            if any(
                f.entity_type == e["type"] and f.start < e["end"] and e["start"] < f.end
                for f in result.findings
            ):
                found += 1
            if e["value"] in released:
                leaks.append((row["id"], e["type"]))
    assert total > 150
    assert found / total >= 0.97
    assert leaks == []


long_texts = st.lists(st.tuples(piece, st.sampled_from(SEPARATORS)), min_size=40, max_size=120).map(
    lambda parts: "".join(a + b for a, b in parts)
)


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    long_texts,
    actions,
    actions,
    actions,
    st.sampled_from([30, 120, 300]),
    st.sampled_from([6, 25, 60]),
)
def test_validate_stops_scanning_at_a_decided_limit(
    text: str, terms: str, patterns: str, length: str, max_chars: int, max_words: int
) -> None:
    # validate reads only as far as a stream would once a length limit decides
    # the answer; the answer is the same as scanning the whole text.
    p = policy(terms, patterns, length, max_chars, max_words)
    early = p.validate_sync(text)
    whole = _WholeRun(p)
    whole.check(text)
    assert early == whole.result()
    assert_same(p, text, cut(text, [7, 3, 11]))


class _WholeRun(Run):
    """A run whose check always scans the whole text."""

    __slots__ = ()

    def _decided_early(self) -> bool:
        return False
