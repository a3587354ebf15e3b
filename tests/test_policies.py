"""Every shipped policy loads and does what its comments say, on texts written here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import guardrails_engine as ge

SHIPPED = sorted(
    p.name
    for p in (Path(__file__).resolve().parent.parent / "policies").glob("*.yaml")
    if not p.name.endswith(".cases.yaml")  # evaluation suites, not policies
)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SECRET = "sk-" + "Zx9" * 8


def test_there_are_policies() -> None:
    assert {"support-chat.yaml", "support-json.yaml", "strict-redact.yaml"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_policy_loads(policies_dir: Path, name: str) -> None:
    policy = ge.load_policy(policies_dir / name)
    assert policy.source == str(policies_dir / name)
    assert policy.checks
    assert len({c.id for c in policy.checks}) == len(policy.checks)
    assert policy.validate_sync("A plain, harmless sentence").decision in (
        ge.Decision.PASS,
        ge.Decision.BLOCK,  # support-json blocks anything that is not JSON
    )


@pytest.fixture(scope="module")
def support_json(policies_dir: Path) -> ge.Policy:
    return ge.load_policy(policies_dir / "support-json.yaml")


@pytest.fixture(scope="module")
def strict_redact(policies_dir: Path) -> ge.Policy:
    return ge.load_policy(policies_dir / "strict-redact.yaml")


def _stream(policy: ge.Policy, text: str, size: int) -> tuple[list[str], ge.Result]:
    stream = policy.stream_sync(text[i : i + size] for i in range(0, len(text), size))
    pieces = list(stream)
    assert stream.result is not None
    return pieces, stream.result


# -- support-chat ----------------------------------------------------------------------


def test_support_chat_masks_an_email(support_policy: ge.Policy) -> None:
    text = "Sure, write to jdoe@example.com and we'll sort it out."
    result = support_policy.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    assert result.text == "Sure, write to <EMAIL_ADDRESS> and we'll sort it out."
    assert result.reasons == ("pii: EMAIL_ADDRESS at 15-31, masked",)
    pieces, streamed = _stream(support_policy, text, 4)
    assert "".join(pieces) == result.text
    assert streamed == result
    assert not any("@" in piece for piece in pieces)


def test_support_chat_masks_the_example_reply(support_policy: ge.Policy) -> None:
    text = (EXAMPLES / "support_reply.txt").read_text(encoding="utf-8")
    result = support_policy.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    assert sorted(f.entity_type or "" for f in result.findings) == [
        "CREDIT_CARD",
        "EMAIL_ADDRESS",
        "IBAN_CODE",
        "PHONE_NUMBER",
    ]
    for secret in ("billing@example.com", "415 555 0132", "GB82 WEST", "4111 1111 1111 1111"):
        assert secret not in result.text
    # Not PII: the last four digits of a card and a reference number stay.
    assert "card ending in 4242" in result.text
    assert "reference 88412" in result.text


@pytest.mark.parametrize(
    "text",
    [
        f"Your API key is {SECRET}, keep it safe.",
        "The AWS key id is AKIAABCDEFGHIJKLMNOP.",
        "This document is for Internal Use Only.",
        "this is internal\nuse   only",
        "Confidential - do not share: the plan.",
    ],
)
def test_support_chat_blocks_secrets(support_policy: ge.Policy, text: str) -> None:
    result = support_policy.validate_sync(text)
    assert result.decision is ge.Decision.BLOCK
    assert result.text == "Sorry, I can't share that."
    assert [f.check_id for f in result.findings] == ["secrets"]


@pytest.mark.parametrize(
    "text",
    [
        "sk-short is not a key",
        "sk-" + "a" * 19 + " is one character too short",
        "internal use onlyx is not the phrase",
        "for internal use, only sometimes",
    ],
)
def test_support_chat_passes_near_misses(support_policy: ge.Policy, text: str) -> None:
    result = support_policy.validate_sync(text)
    assert result.decision is ge.Decision.PASS
    assert result.text == text


def test_support_chat_stream_stops_before_a_key(support_policy: ge.Policy) -> None:
    text = f"Here is what you asked for: {SECRET} and the rest of the answer."
    pieces, result = _stream(support_policy, text, 3)
    assert result.decision is ge.Decision.BLOCK
    assert pieces[-1] == "Sorry, I can't share that."
    released = "".join(pieces[:-1])
    assert "sk-" not in released and "Zx9" not in released
    assert text.startswith(released)
    assert "the rest" not in "".join(pieces)


def test_support_chat_truncates_long_answers_on_a_word_boundary(support_policy: ge.Policy) -> None:
    text = "word " * 450  # 2250 characters; the limit is 2000
    result = support_policy.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    # Character 2000 starts the 401st word: cut before it, without the trailing space.
    assert result.text == ("word " * 400).rstrip()
    assert [f.check_id for f in result.findings] == ["max-length"]
    pieces, streamed = _stream(support_policy, text, 7)
    assert "".join(pieces) == result.text
    assert streamed == result


def test_support_chat_keeps_a_text_at_the_limit(support_policy: ge.Policy) -> None:
    text = "word " * 400  # exactly 2000 characters
    result = support_policy.validate_sync(text)
    assert result.decision is ge.Decision.PASS
    assert result.text == text


# -- support-json --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "Sure! Your order shipped today.",
            "answer-json: no JSON document in the output, blocked",
        ),
        ('{"answer": 42}', 'answer-json: $.answer: expected "string", got integer, blocked'),
        ('{"reply": "hi"}', "answer-json: $: missing required property 'answer', blocked"),
        ('["answer"]', 'answer-json: $: expected "object", got array, blocked'),
        ('{"answer": "cut off', "answer-json: not valid JSON: the document is incomplete, blocked"),
    ],
)
def test_support_json_blocks_what_is_not_an_answer(
    support_json: ge.Policy, text: str, reason: str | None
) -> None:
    result = support_json.validate_sync(text)
    assert result.decision is ge.Decision.BLOCK
    assert result.text == "Sorry, I can't share that."
    assert [f.check_id for f in result.findings] == ["answer-json"]
    if reason is not None:
        assert result.reasons == (reason,)
    else:
        assert result.reasons[0].startswith("answer-json: not valid JSON (")


def test_support_json_passes_an_answer(support_json: ge.Policy) -> None:
    text = '{"answer": "Your order shipped today.", "extra": [1, 2]}'
    result = support_json.validate_sync(text)
    assert result.decision is ge.Decision.PASS
    assert result.text == text
    assert result.findings == ()


def test_support_json_repairs_an_answer_and_keeps_it_json(support_json: ge.Policy) -> None:
    text = (EXAMPLES / "support_answer.json").read_text(encoding="utf-8")
    result = support_json.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    assert json.loads(result.text) == {
        "answer": "Your order shipped today. Questions? Write to <EMAIL_ADDRESS>."
    }
    assert [f.entity_type for f in result.findings] == ["EMAIL_ADDRESS"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_policies_leave_no_bare_phone_number(policies_dir: Path, name: str) -> None:
    # Safe to copy: a phone number without a context word (presidio scores it 0.4) is not
    # let through by any shipped policy that looks for phone numbers.
    policy = ge.load_policy(policies_dir / name)
    if not any("PHONE_NUMBER" in getattr(c, "entities", ()) for c in policy.spec.checks):
        pytest.skip("no phone numbers in this policy")
    for text in ('{"answer": "it is +1 415 555 0132"}', '{"answer": "ref 415-555-0132"}'):
        result = policy.validate_sync(text)
        assert result.decision is not ge.Decision.PASS, text
        assert "555" not in result.text
        assert "PHONE_NUMBER" in [f.entity_type for f in result.findings]


def test_support_json_masks_a_phone_number_with_or_without_context(
    support_json: ge.Policy,
) -> None:
    for word in ("it is", "call"):
        text = f'{{"answer": "{word} +1 415 555 0132"}}'
        assert support_json.validate_sync(text).text == f'{{"answer": "{word} <PHONE_NUMBER>"}}'


def test_support_json_blocks_a_key_inside_the_answer(support_json: ge.Policy) -> None:
    result = support_json.validate_sync(json.dumps({"answer": f"the key is {SECRET}"}))
    assert result.decision is ge.Decision.BLOCK
    assert [f.check_id for f in result.findings] == ["secrets"]


def test_support_json_releases_nothing_before_the_document_is_complete(
    support_json: ge.Policy,
) -> None:
    text = '{"answer": "Your order shipped today, it should arrive on Monday."}'
    chunks = [text[i : i + 5] for i in range(0, len(text), 5)]
    pulled = 0

    def source() -> Iterator[str]:
        nonlocal pulled
        for chunk in chunks:
            pulled += 1
            yield chunk

    stream = support_json.stream_sync(source())
    first = next(stream)
    assert pulled == len(chunks)  # the schema check holds the text until the end
    assert first + "".join(stream) == text
    assert stream.result == support_json.validate_sync(text)


def test_support_json_streams_only_the_block_message_for_bad_json(
    support_json: ge.Policy,
) -> None:
    pieces, result = _stream(support_json, "Sure! Your order shipped today.", 4)
    assert result.decision is ge.Decision.BLOCK
    assert pieces == ["Sorry, I can't share that."]


# -- strict-redact --------------------------------------------------------------------


def test_strict_redact_removes_pii(strict_redact: ge.Policy) -> None:
    text = "Mail jdoe@example.com or call +1 415 555 0132 from 10.0.0.1 today."
    result = strict_redact.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    assert result.text == "Mail  or call  from  today."
    assert {f.entity_type for f in result.findings} >= {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "IP_ADDRESS",
    }
    assert "<" not in result.text  # redact, not mask


def test_strict_redact_flags_cards_for_the_audit_trail(strict_redact: ge.Policy) -> None:
    text = "Card 4111 1111 1111 1111 is on file."
    result = strict_redact.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    assert result.text == "Card  is on file."
    assert sorted((f.check_id, f.action.value) for f in result.findings) == [
        ("cards-block", "flag"),
        ("pii", "repair"),
    ]


def test_strict_redact_replaces_profanity(strict_redact: ge.Policy) -> None:
    text = "Damn, that is CRAP. Damnation and scrap are fine."
    result = strict_redact.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    assert result.text == "***, that is ***. Damnation and scrap are fine."
    # Terms are named by their place in the list, not quoted (a term can be sensitive).
    assert result.reasons == (
        "profanity: terms[0] at 0-4, replaced",
        "profanity: terms[1] at 14-18, replaced",
    )


def test_strict_redact_blocks_over_300_words(strict_redact: ge.Policy) -> None:
    words = [f"w{i}" for i in range(300)]
    assert strict_redact.validate_sync(" ".join(words)).decision is ge.Decision.PASS
    over = " ".join([*words, "LAST"])
    result = strict_redact.validate_sync(over)
    assert result.decision is ge.Decision.BLOCK
    assert result.text == ""  # block_message is ""
    assert result.reasons == ("words: more than 300 words, blocked",)
    # Streamed: the first 300 words may go out, the 301st never does, no block message.
    pieces, streamed = _stream(strict_redact, over, 6)
    assert streamed == result
    released = "".join(pieces)
    assert " ".join(words).startswith(released)
    assert "w250 " in released  # words were released as they came, not held to the end
    assert not any("LAST" in piece for piece in pieces)


def test_strict_redact_caps_the_holdback(strict_redact: ge.Policy) -> None:
    # A run of letters might be the start of an e-mail or a URL: without the cap it would be
    # held to the end.  With max_holdback_chars 256, text is decided at most 256 characters
    # behind: the run, an address that may be in progress past the cap, is removed as one
    # undecided finding (more careful than validate, which sees the whole run pass).
    text = "a" * 1000 + " and then some words"
    received = 0
    decided_at: list[int] = []  # characters received when the first piece came out

    def source() -> Iterator[str]:
        nonlocal received
        for ch in text:
            received += 1
            yield ch

    stream = strict_redact.stream_sync(source())
    out = []
    for piece in stream:
        if piece and not decided_at:
            decided_at.append(received)
        out.append(piece)
    assert strict_redact.max_holdback_chars == 256
    assert stream.result is not None and stream.result.decision is ge.Decision.REPAIR
    assert "".join(out) == " and then some words"
    assert [f.entity_type for f in stream.result.findings] == ["EMAIL_ADDRESS"]
    assert "hold-back cap" in stream.result.reasons[0]
    assert decided_at and decided_at[0] <= len(text)  # words came out before the end
    assert strict_redact.validate_sync(text).decision is ge.Decision.PASS


def test_past_the_cap_pii_is_still_found(strict_redact: ge.Policy) -> None:
    # Long unbroken tokens push the stream past max_holdback_chars, where text
    # is decided as it stands (matches are then tried at candidate starts, far
    # from the end of the buffer).  PII between and inside them is still found.
    token = "9f3a" * 150  # 600 characters, no space
    text = (
        f"{token}-212-45-6789 {token} mail bob@example.com {token}:10.0.0.1 "
        f"{token} card 4111 1111 1111 1111 end"
    )
    pieces, streamed = _stream(strict_redact, text, 7)
    out = "".join(pieces)
    for value in ("212-45-6789", "bob@example.com", "4111 1111 1111 1111"):
        assert value not in out
    found = {f.entity_type for f in streamed.findings}
    assert {"US_SSN", "EMAIL_ADDRESS", "CREDIT_CARD"} <= found
    assert out.endswith(" end")
