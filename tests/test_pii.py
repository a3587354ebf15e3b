"""PII that holds up against real output: disguises, repair styles, allow/deny, NER in the
stream."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from _chunks import cut
from _policies import PATTERN_ENTITIES, make_policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge

DATA = Path(__file__).parent / "data" / "pii_dev.jsonl"


make = make_policy


def rows() -> list[dict[str, object]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def chunked(text: str, rng: random.Random, lo: int = 1, hi: int = 8) -> list[str]:
    out, i = [], 0
    while i < len(text):
        n = rng.randint(lo, hi)
        out.append(text[i : i + n])
        i += n
    return out


@pytest.fixture(scope="module")
def patterns() -> ge.Policy:
    return make("  - id: pii\n    type: pii\n    entities: [" + ", ".join(PATTERN_ENTITIES) + "]\n")


@pytest.fixture(scope="module")
def ner() -> ge.Policy:
    return make(
        "  - id: pii\n    type: pii\n"
        "    entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, PERSON, LOCATION]\n"
        "    repair: {default: pseudonym, CREDIT_CARD: partial}\n"
    )


# -- disguised values ------------------------------------------------------------


def test_recall_in_every_disguise(patterns: ge.Policy) -> None:
    """Pattern entities: recall >= 0.99 in every variant; spans cover the disguise."""
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for row in rows():
        text = str(row["text"])
        result = patterns.validate_sync(text)
        for e in row["entities"]:  # type: ignore[attr-defined]
            if e["type"] not in PATTERN_ENTITIES:
                continue
            total[str(row["variant"])] += 1
            if any(
                f.entity_type == e["type"] and f.start <= e["start"] and e["end"] <= f.end
                for f in result.findings
            ):
                found[str(row["variant"])] += 1
    assert set(total) == {"plain", "zwsp", "fullwidth", "nbsp"}
    for variant, n in total.items():
        assert found[variant] / n >= 0.99, variant


@pytest.mark.parametrize(
    "text, value",
    [
        ("card 4111\u200b1111 1111 1111 ok", "4111\u200b1111 1111 1111"),
        (
            "ssn \uff10\uff17\uff18-\uff10\uff15-\uff11\uff11\uff12\uff10 ok",
            "\uff10\uff17\uff18-\uff10\uff15-\uff11\uff11\uff12\uff10",
        ),
        ("mail jdoe\u2060@example.com ok", "jdoe\u2060@example.com"),
        ("call +1\u00a0347\u00a0590\u00a00177 ok", "+1\u00a0347\u00a0590\u00a00177"),
        ("ip 10.0\u200c.0.7 ok", "10.0\u200c.0.7"),
    ],
)
def test_disguised_value_is_repaired_whole(patterns: ge.Policy, text: str, value: str) -> None:
    result = patterns.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    (f,) = result.findings
    assert text[f.start : f.end] == value
    assert value not in result.text
    assert result.text.startswith(text.split()[0] + " <")
    for piece_size in (1, 2, 3):
        chunks = [text[i : i + piece_size] for i in range(0, len(text), piece_size)]
        assert "".join(patterns.stream_sync(chunks)) == result.text


def test_content_terms_see_the_canonical_view() -> None:
    p = make(
        "  - id: c\n    type: content\n    terms: [internal use only]\n"
        "    patterns: ['\\bsk-[a-z]{6,}\\b']\n    action: block\n"
    )
    assert p.validate_sync("for internal\u200b use\u00a0only").decision is ge.Decision.BLOCK
    assert p.validate_sync("key \uff53\uff4b-abcdefg").decision is ge.Decision.BLOCK
    assert p.validate_sync("for internal users only").decision is ge.Decision.PASS


# -- repair styles ---------------------------------------------------------------


def pii_policy(
    extra: str, entities: str = "[EMAIL_ADDRESS, CREDIT_CARD, PHONE_NUMBER]"
) -> ge.Policy:
    return make(f"  - id: pii\n    type: pii\n    entities: {entities}\n{extra}")


def test_mask_template() -> None:
    p = pii_policy('    mask_template: "[{entity}]"\n')
    assert p.validate_sync("to a@example.com").text == "to [EMAIL_ADDRESS]"


def test_redact() -> None:
    p = pii_policy("    repair: redact\n")
    result = p.validate_sync("to a@example.com now")
    assert result.text == "to  now"
    assert result.reasons == ("pii: EMAIL_ADDRESS at 3-16, redacted",)


def test_partial_keeps_last_four_of_cards_and_phones_only() -> None:
    p = pii_policy("    repair: partial\n")
    result = p.validate_sync("card 4111 1111 1111 1111 or (415) 555-0132 or a@example.com")
    assert result.text == "card **** **** **** 1111 or (***) ***-0132 or <EMAIL_ADDRESS>"
    assert result.reasons[0].endswith("partially masked")
    # Not a card, phone or account number: masked, and the reason says so.
    assert result.reasons[-1].endswith("EMAIL_ADDRESS at 46-59, masked")


def test_hash_is_keyed_and_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    p1 = pii_policy("    repair: hash\n    hash_key: first-secret\n")
    p2 = pii_policy("    repair: hash\n    hash_key: other-secret\n")
    a = p1.validate_sync("x a@example.com y").text
    assert a == p1.validate_sync("x a@example.com y").text
    assert a.startswith("x <EMAIL_ADDRESS:") and len(a) == len("x <EMAIL_ADDRESS:123456> y")
    assert a != p2.validate_sync("x a@example.com y").text
    assert a != p1.validate_sync("x b@example.com y").text
    monkeypatch.setenv("MY_KEY", "first-secret")
    p3 = pii_policy("    repair: hash\n    hash_key_env: MY_KEY\n")
    assert p3.validate_sync("x a@example.com y").text == a


def test_hash_without_a_key_is_a_policy_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARDRAILS_HASH_KEY", raising=False)
    with pytest.raises(ge.PolicyError, match="GUARDRAILS_HASH_KEY") as info:
        pii_policy("    repair: hash\n")
    assert info.value.field == "checks[0].repair"


def test_pseudonyms_are_stable_within_a_run_only() -> None:
    p = pii_policy("    repair: pseudonym\n")
    text = "a@example.com, b@example.com, A@example.com and a@example.com"
    result = p.validate_sync(text)
    assert result.text == (
        "<EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_2>, <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_1>"
    )
    assert p.validate_sync("b@example.com").text == "<EMAIL_ADDRESS_1>"
    rng = random.Random(5)
    for _ in range(20):
        assert "".join(p.stream_sync(chunked(text, rng))) == result.text


def test_per_entity_repair_override() -> None:
    p = pii_policy("    repair: {default: redact, CREDIT_CARD: partial}\n")
    assert p.validate_sync("a@example.com 4111 1111 1111 1111").text == " **** **** **** 1111"


# -- fewer false alarms, more control ------------------------------------------------


def test_allow_values_and_regexes() -> None:
    p = pii_policy("    allow: [Support@Example.com, {regex: '.*@corp\\.example\\.org'}]\n")
    result = p.validate_sync("write support@example.com or x@corp.example.org or me@example.net")
    assert [f.start for f in result.findings] == [result.findings[0].start]
    assert result.text == "write support@example.com or x@corp.example.org or <EMAIL_ADDRESS>"


def test_deny_terms_are_flagged_as_their_entity() -> None:
    p = pii_policy("    deny: {PROJECT_NAME: [Blue Falcon]}\n")
    result = p.validate_sync("the blue  falcon launch")
    assert result.text == "the <PROJECT_NAME> launch"
    assert result.findings[0].entity_type == "PROJECT_NAME"


def test_min_score_per_entity_and_context_words() -> None:
    p = pii_policy("    min_score: {default: 0.4, PHONE_NUMBER: 0.6}\n")
    # presidio scores a bare phone number 0.4: under this policy's 0.6 it passes ...
    assert p.validate_sync("dial (415) 555-0132 now").decision is ge.Decision.PASS
    # ... but "phone" is one of presidio's phone context words: +0.35.
    result = p.validate_sync("my phone (415) 555-0132 now")
    assert result.decision is ge.Decision.REPAIR
    assert result.findings[0].score == pytest.approx(0.75)
    # "call" is one too, but a spaCy stop word, which presidio's context rule skips.
    assert p.validate_sync("call (415) 555-0132 now").decision is ge.Decision.PASS


@pytest.mark.parametrize(
    "text, score",
    [
        ("HRB 123456 is the register entry", None),  # (no such recognizer in this policy)
        ("Her SSNs: 536-90-4399, 372-58-1946 on file", 0.85),  # a list after one label
        ("the ssn#536904399 on file", 0.5),  # a context word glued to the value
        ("socialsecurity 536-90-4399", 0.85),  # part of a longer word (presidio: substring)
        ("the number of the social security card is 536-90-4399", 0.85),  # stop words skipped
    ],
)
def test_context_words_follow_presidios_rule(text: str, score: float | None) -> None:
    p = pii_policy("", "[US_SSN, PHONE_NUMBER, IP_ADDRESS]")
    found = [f.score for f in p.validate_sync(text).findings if f.entity_type == "US_SSN"]
    if score is None:
        assert found == []
    else:
        assert found and found[0] == pytest.approx(score)


@pytest.mark.parametrize("text", ["Call 415.555.01.32 now", "Ruf 030.123.45.67 an"])
def test_four_dotted_groups_that_are_no_ipv4_address_are_a_phone(text: str) -> None:
    p = pii_policy("", "[PHONE_NUMBER, IP_ADDRESS]")
    assert [f.entity_type for f in p.validate_sync(text).findings] == ["PHONE_NUMBER"]


def test_custom_recognizer() -> None:
    p = make(
        "  - id: pii\n    type: pii\n    recognizers:\n"
        "      - entity: EMPLOYEE_ID\n"
        "        patterns: [{regex: 'EMP-\\d{6}', score: 0.3}]\n"
        "        context: [employee]\n"
    )
    assert p.validate_sync("ticket EMP-123456 closed").decision is ge.Decision.PASS
    result = p.validate_sync("employee EMP-123456 closed")
    assert result.text == "employee <EMPLOYEE_ID> closed"


@pytest.mark.parametrize(
    "check, field, message",
    [
        (
            "    recognizers: [{entity: EMP, patterns: [{regex: '(', score: 0.5}]}]\n",
            "checks[0].recognizers[0].patterns[0].regex",
            "does not compile",
        ),
        (
            "    recognizers: [{entity: emp, patterns: [{regex: 'x'}]}]\n",
            "checks[0].recognizers[0].entity",
            "should match pattern",
        ),
        (
            "    entities: [EMAIL_ADDRESS]\n    min_score: {PHONE: 2}\n",
            "checks[0].min_score",
            "",
        ),
        (
            "    entities: [EMAIL_ADDRESS]\n    repair: {default: shred}\n",
            "checks[0].repair",
            "",
        ),
        (
            "    entities: [EMAIL_ADDRESS]\n    mask_template: '<{value}>'\n",
            "checks[0].mask_template",
            "only use the placeholder",
        ),
        (
            "    entities: [PERSON]\n    ner_model: no_such_model_xyz\n",
            "checks[0].ner_model",
            "not installed",
        ),
    ],
)
def test_pii_policy_errors(check: str, field: str, message: str) -> None:
    with pytest.raises(ge.PolicyError) as info:
        make("  - id: pii\n    type: pii\n" + check)
    assert info.value.field is not None and info.value.field.startswith(field)
    assert info.value.line is not None and info.value.line >= 5
    assert message in str(info.value)


# -- NER in the stream --------------------------------------------------------------


def test_ner_finds_people_and_places(ner: ge.Policy) -> None:
    result = ner.validate_sync("Please ask Maria Gonzalez in Chicago. She knows.")
    assert result.text == "Please ask <PERSON_1> in <LOCATION_1>. She knows."


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 299), st.integers(0, 2**32 - 1), st.integers(1, 12))
def test_ner_stream_equals_whole(ner: ge.Policy, index: int, seed: int, hi: int) -> None:
    text = str(rows()[index]["text"])
    whole = ner.validate_sync(text)
    stream = ner.stream_sync(chunked(text, random.Random(seed), 1, hi))
    assert "".join(stream) == whole.text
    assert stream.result is not None and stream.result.findings == whole.findings


def test_ner_holds_back_at_most_a_sentence(ner: ge.Policy) -> None:
    text = "Hello there. " * 3 + "The order shipped today and will arrive soon. Thanks!"
    stream = ner.stream_sync(list(text))
    pieces = []
    for piece in stream:
        pieces.append(piece)
        # What is out is whole sentences (plus the space that ends them).
        assert text.startswith("".join(pieces))
    run = stream.run
    longest = max(len(s) + 2 for s in text.split(". "))
    assert max(run.holdbacks) <= longest


@pytest.mark.anyio
async def test_ner_async_stream_runs_in_threads(ner: ge.Policy) -> None:
    async def source():  # type: ignore[no-untyped-def]
        for word in "Ask Maria Gonzalez. Now.".split(" "):
            yield word + " "

    pieces = [p async for p in ner.stream(source())]
    assert "".join(pieces) == ner.validate_sync("Ask Maria Gonzalez. Now. ").text


def test_pattern_only_policy_never_loads_ner() -> None:
    code = (
        "import guardrails_engine as ge, guardrails_engine.checks._pii.ner as n\n"
        "p = ge.load_policy('policies/support-chat.yaml')\n"
        "p.validate_sync('hello Maria Gonzalez, a@example.com')\n"
        "print(n.load_model.cache_info().currsize)\n"
    )
    root = Path(__file__).parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert out.stdout.strip() == "0"


def test_ner_model_is_shared_between_policies(ner: ge.Policy) -> None:
    from guardrails_engine.checks._pii import ner as _ner

    again = make("  - id: x\n    type: pii\n    entities: [PERSON]\n")
    assert again.checks[0].ner is ner.checks[0].ner  # type: ignore[attr-defined]
    assert _ner.load_model.cache_info().currsize == 1
    nlp = ner.checks[0].ner._engine.nlp["en"]  # type: ignore[attr-defined]
    assert "parser" not in nlp.pipe_names and "ner" in nlp.pipe_names


def test_no_raw_value_in_reasons(ner: ge.Policy, patterns: ge.Policy) -> None:
    for row in rows()[:100]:
        text = str(row["text"])
        for p in (ner, patterns):
            result = p.validate_sync(text)
            blob = json.dumps([f.to_dict() for f in result.findings]) + repr(result.findings)
            for e in row["entities"]:  # type: ignore[attr-defined]
                assert e["value"] not in blob
                assert text[e["start"] : e["end"]] not in blob


# -- phone candidates too short for a region are not handed to phonenumbers there ----------

_PHONE_PIECES = st.sampled_from(
    [
        *("1", "2", "4", "7", "9", "0", "00", "44", "49", "+", "(", ")", "-", "."),
        *(" ", "/", " ext ", "x", "55"),
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PHONE_PIECES, min_size=1, max_size=9))
def test_short_phone_candidates_skip_regions_without_losing_a_number(pieces: list[str]) -> None:
    import phonenumbers
    import regex

    from guardrails_engine._scanning.scan import ScanMatch
    from guardrails_engine.checks._pii.presidio import _PHONE_CANDIDATE, catalog

    cat = catalog()
    text = "call " + "".join(pieces) + " now"
    for m in regex.finditer(_PHONE_CANDIDATE, text):
        ours = cat._interpret_phone(ScanMatch(0, m, 0))
        # presidio's way: every supported region, every candidate.
        spans = {
            (m.start() + f.start, m.start() + f.end): None
            for region in cat._phone_regions
            for f in phonenumbers.PhoneNumberMatcher(
                m.group(), region, leniency=cat._phone_leniency
            )
        }
        # (Numbers phonenumbers finds only possible are scored lower: see test_references.)
        valid = [(s, e) for s, e, score in ours if score == cat.phone_score]
        assert valid == list(spans), m.group()


def test_phone_region_bounds_come_from_the_metadata() -> None:
    from guardrails_engine.checks._pii.presidio import catalog

    fewest = catalog()._phone_fewest
    # Germany has national numbers of four digits; every region needs at least
    # five digits once a country code is written out.
    assert fewest["DE"] == 4
    assert all(2 <= n <= 5 for n in fewest.values())
    assert set(fewest) == set(catalog()._phone_regions)


def test_ner_from_many_threads_gives_the_single_threaded_answer(ner: ge.Policy) -> None:
    # A threaded server: spaCy is called from several threads at once.
    from _threads import from_threads

    texts = [
        "Hello Maria Garcia, your parcel left Berlin today. Mail bob@example.com.",
        "John Smith called from Paris about the order. Thanks, Anna.",
        "Nothing personal here at all, just words.",
        "Dear Mr. Tanaka, we shipped to Osaka. Regards, Lee Chen",
    ] * 4
    want = [ner.validate_sync(t) for t in texts]
    assert any(f.entity_type == "PERSON" for w in want for f in w.findings)

    got = from_threads(ner, texts)
    for (validated, joined, result), expected in zip(got, want, strict=True):
        assert validated == expected
        assert result == expected
        assert joined == expected.text


# -- a candidate that fails its checksum does not hide a card that starts inside it ------

HIDDEN_CARDS = [
    # the first candidate, "4399 4539 1488 0343", fails Luhn; the card starts inside it
    ("SSN 536-90-4399 4539 1488 0343 6467 ok", "SSN <US_SSN> <CREDIT_CARD> ok"),
    ("ref 4000 4539 1488 0343 6467 ok", "ref 4000 <CREDIT_CARD> ok"),
]


@pytest.mark.parametrize(("text", "masked"), HIDDEN_CARDS)
def test_a_card_inside_a_failed_candidate_is_found(
    support_policy: ge.Policy, text: str, masked: str
) -> None:
    assert support_policy.validate_sync(text).text == masked
    for sizes in ([1], [3], [4, 1], [len(text)]):
        assert "".join(support_policy.stream_sync(cut(text, sizes))) == masked


# -- JSON writes a character past U+FFFF as a surrogate pair: read as that character -------

ESCAPED = (
    '{"answer": '
    + json.dumps(
        "Your card is \U0001d7d2\U0001d7d3\U0001d7d1\U0001d7d7 \U0001d7cf\U0001d7d2"
        "\U0001d7d6\U0001d7d6 \U0001d7ce\U0001d7d1\U0001d7d2\U0001d7d1 \U0001d7d4"
        "\U0001d7d2\U0001d7d4\U0001d7d5."
    )
    + "}"
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.lists(st.integers(1, 13), min_size=1, max_size=8))
def test_a_card_in_escaped_mathematical_digits_is_masked(
    support_policy: ge.Policy, sizes: list[int]
) -> None:
    # "\\ud835\\udfd2..." (json.dumps of mathematical bold digits): each half alone is no character,
    # the pair is a digit; a stream may cut between the halves.
    assert "\\ud835\\udfd2" in ESCAPED
    whole = support_policy.validate_sync(ESCAPED)
    assert whole.text == '{"answer": "Your card is <CREDIT_CARD>."}'
    assert "".join(support_policy.stream_sync(cut(ESCAPED, sizes))) == whole.text
