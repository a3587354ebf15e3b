"""Hostile runs within their deadlines, at a cost per character that stays small, and
one chunk that holds the whole text gets what validate gives.

Each test here failed on the code before it (580124f): the slow ones by running out
of the time of their child process (``_child.py``), the others by their assertions.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import anyio
import phonenumbers
import pytest
import regex
from _child import run_limited
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge
from guardrails_engine.checks import Found, unit_check

SUPPORT_CHAT = """
version: 1
name: support-chat
block_message: "[blocked]"
checks:
  - id: pii
    type: pii
    entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE]
  - id: secrets
    type: content
    patterns: ['\\bsk-[A-Za-z0-9]{20,}\\b']
    terms: ["internal use only"]
    action: block
  - id: max-length
    type: length
    max_chars: 2000
"""
PII_AND_URL = """
version: 1
name: pii-and-url
check_timeout_ms: 120000
checks:
  - id: pii
    type: pii
    entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE, URL]
"""

# The hostile families of benchmarks/adversarial.py.
FAMILIES = ["1", "12 ", "415-555-0100-", "1.2.", "a@", "deadbeef", "+(1) ", "a@b", "www.a"]


def _last_json(out: str) -> Any:
    return json.loads(out.strip().splitlines()[-1])


# -- (a) the top-level domains of presidio's URL patterns --------------------------------------


def test_dotted_digits_with_urls_are_cheap() -> None:
    # presidio's URL patterns backed off over 253 characters from every start and
    # tried 1,500 top-level domains at every dot: 10k characters of dotted digits
    # took 10 s (1 ms a character), past a 10 s deadline.  Now about 0.1 ms.
    out = run_limited(
        """
import json, guardrails_engine as ge
p = ge.Policy.from_yaml("version: 1\\nname: u\\ncheck_timeout_ms: 120000\\nchecks:\\n"
                        "  - {id: pii, type: pii, entities: [IP_ADDRESS, URL]}\\n")
t = ("1.2." * 4000)
r = p.validate_sync(t)
print(json.dumps([r.decision.value, len(r.findings)]))
""",
        seconds=25,  # (before: 32 s of work; now about 2 s)
    )
    assert _last_json(out) == ["repair", 2000]  # 1.2.1.2 every 8 characters


@functools.cache
def _url_patterns() -> list[tuple[regex.Pattern[str], regex.Pattern[str]]]:
    """presidio's URL patterns as written, and prefiltered."""
    from presidio_analyzer.predefined_recognizers import UrlRecognizer

    from guardrails_engine.checks._pii.prefilter import prefiltered

    recognizer = UrlRecognizer()
    flags = int(recognizer.global_regex_flags)
    return [
        (regex.compile(p.regex, flags), regex.compile(prefiltered(p.regex), flags))
        for p in recognizer.patterns
    ]


URL_WORDS = ["com", "co", "community", "www", "a", "b1", "zw", "ac", "xn--p1ai", "Com", "1"]
URL_SEPS = [".", ".", "-", "/", " ", "'", '"', "://", "https://", "@"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(URL_WORDS), st.sampled_from(URL_SEPS)), max_size=10))
def test_the_prefilter_changes_no_url_match(parts: list[tuple[str, str]]) -> None:
    text = "".join(w + s for w, s in parts)
    for before, after in _url_patterns():
        assert after.pattern != before.pattern
        assert [m.span() for m in after.finditer(text)] == [m.span() for m in before.finditer(text)]


# -- (b) python-phonenumbers, one candidate at a time -------------------------------------------


def test_a_long_phone_candidate_stops_at_the_deadline() -> None:
    # One run of spaced digits is one phone candidate; phonenumbers walked all of
    # it in one step of its iteration (about a millisecond a character), and the
    # deadline was looked at only between numbers found: 200k characters ran for
    # minutes past a 1 s deadline.
    out = run_limited(
        """
import json, guardrails_engine as ge
p = ge.Policy.from_yaml("version: 1\\nname: d\\ncheck_timeout_ms: 1000\\nchecks:\\n"
                        "  - {id: pii, type: pii, entities: [PHONE_NUMBER]}\\n")
t = "12 " * 35_000
r = p.validate_sync(t)
s = p.stream_sync([t])
out = "".join(s)
print(json.dumps([r.decision.value, list(r.reasons), s.result.decision.value, out == r.text]))
""",
        seconds=30,
    )
    assert _last_json(out) == [
        "block",
        ["pii: check timed out after 1,000 ms, blocked"],
        "block",
        True,
    ]


PHONE_TEXT = st.text(alphabet="0123456789 -.()+/x:", min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(PHONE_TEXT, st.sampled_from(["US", "GB", "DE", "IN"]), st.sampled_from([0, 1, 2]))
def test_the_walk_finds_what_the_matcher_finds(text: str, region: str, leniency: int) -> None:
    from guardrails_engine.checks._pii.phones import numbers

    matcher = phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency)
    expected = [(m.start, m.end) for m in matcher]
    assert [(m.start, m.end) for m in numbers(phonenumbers, text, region, leniency, None)] == (
        expected
    )


# -- (c) plus signs and parentheses --------------------------------------------------------------


def test_plus_and_parens_cost_little_per_character() -> None:
    # "+(1) " repeated: the disguised phone pattern read the brackets between
    # groups in every way they can be read (1.5 ms a character to probe): 20k
    # characters took more than 30 s to stream.
    out = run_limited(
        f"""
import json, guardrails_engine as ge
p = ge.Policy.from_yaml({SUPPORT_CHAT!r}.replace("max_chars: 2000", "max_chars: 100000"))
t = "+(1) " * 4000
r = p.validate_sync(t)
s = p.stream_sync([t[i:i + 16] for i in range(0, len(t), 16)])
out = "".join(s)
print(json.dumps([r.decision.value, out == r.text]))
""",
        seconds=25,  # (before: more than 30 s; now about 3 s)
    )
    assert _last_json(out) == ["pass", True]


# -- (d) the whole text as one chunk ------------------------------------------------------------


def test_one_hostile_chunk_gives_what_validate_gives() -> None:
    # A source that hands over the whole text at once (an SDK reading a full
    # socket): held text was decided at the hold-back cap as the chunk stood, so
    # digits, dotted digits and phone-like runs came out differently from
    # validate (and 100k characters took minutes).
    out = run_limited(
        f"""
import json, guardrails_engine as ge
policies = [ge.Policy.from_yaml(y) for y in ({SUPPORT_CHAT!r}, {PII_AND_URL!r})]
rows = []
for unit in {FAMILIES!r}:
    t = (unit * 1200)[:1200]
    for p in policies:
        want = p.validate_sync(t).text
        rows.append([unit, "".join(p.stream_sync([t])) == want])
print(json.dumps(rows))
""",
        seconds=30,
    )
    rows = _last_json(out)
    assert [unit for unit, same in rows if not same] == []
    assert len(rows) == 2 * len(FAMILIES)


_PII_ONLY = ge.Policy.from_yaml(
    "version: 1\nname: p\ncheck_timeout_ms: 120000\nchecks:\n"
    "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IP_ADDRESS]}\n"
)
_LIMITED = ge.Policy.from_yaml(
    "version: 1\nname: l\ncheck_timeout_ms: 120000\nchecks:\n"
    "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD]}\n"
    "  - {id: n, type: length, max_chars: 1500}\n"
)
_HOSTILE_PIECES = st.sampled_from(
    ["12 ", "4111 1111 1111 1111 ", "1.2.", "bob@example.com", "a@", "+(1) ", "415-555-0100", " "]
)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # fmt: skip
@given(st.lists(_HOSTILE_PIECES, min_size=1, max_size=40), st.integers(1100, 1600))
def test_any_long_text_as_one_chunk_is_validate(pieces: list[str], size: int) -> None:
    text = ("".join(pieces) * (size // len("".join(pieces)) + 1))[:size]
    for policy in (_PII_ONLY, _LIMITED):
        want = policy.validate_sync(text).text
        assert "".join(policy.stream_sync([text])) == want
        push = policy.push_sync()
        assert push.feed(text) + push.finish() == want


@pytest.mark.anyio
async def test_an_async_stream_of_one_hostile_chunk_is_validate() -> None:
    text = ("415-555-0100-" * 300)[:3000]

    async def source() -> Any:
        yield text

    for policy in (_PII_ONLY, _LIMITED):
        with anyio.fail_after(60):
            async with policy.stream(source()) as stream:
                out = "".join([piece async for piece in stream])
            async with policy.push() as push:
                pushed = await push.feed(text) + await push.finish()
        assert out == pushed == policy.validate_sync(text).text


# -- property: a deadline never lets out what validate removes, chunks past the cap ---------

_SLOW_MARK = "slowly"


@unit_check
def slow_on_mark(sentence: str) -> list[Found]:
    """Flags nothing; takes longer than its time on a sentence with the mark."""
    if _SLOW_MARK in sentence:
        time.sleep(0.03)
    return []


_CAPPED = (
    "version: 1\nname: t\nblock_message: ''\nstream: {max_holdback_chars: 16}\nchecks:\n"
    "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS, CREDIT_CARD, PHONE_NUMBER]}\n"
)
_DEADLINED = ge.Policy.from_yaml(
    _CAPPED + "  - {id: slow, type: custom, function: 'test_hostile_bounds:slow_on_mark',"
    " timeout_ms: 20}\n",
    trusted_modules=["test_hostile_bounds"],
)
_WHOLE = ge.Policy.from_yaml(_CAPPED)
_WORDS = st.sampled_from(
    [
        *["Hi", "bob@example.com", "4111 1111 1111 1111", "12 12 12", "+1 415 555 0100"],
        *[_SLOW_MARK, "ok.", "\n", "a@", "1.2.3.4"],
    ]
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(_WORDS, min_size=1, max_size=16),
    cuts=st.lists(st.integers(1, 60), min_size=1, max_size=5),
)
def test_a_deadline_never_releases_what_validate_removes_past_the_cap(
    words: list[str], cuts: list[int]
) -> None:
    # Chunks longer than the cap (16 here) are read whole; held text is decided at
    # the cap once a later chunk came; a check past its time blocks: whatever the
    # chunking, what was released is a prefix of the text as validate repairs it
    # (validate without the slow check: every finding, and the cap's undecided
    # spans only ever mask more).
    text = " ".join(words)
    chunks, i, k = [], 0, 0
    while i < len(text):
        chunks.append(text[i : i + cuts[k % len(cuts)]])
        i += cuts[k % len(cuts)]
        k += 1
    stream = _DEADLINED.stream_sync(iter(chunks))
    released = "".join(stream)
    full = _WHOLE.validate_sync(text)
    for value in ("bob@example.com", "4111 1111 1111 1111", "415 555 0100"):
        if value in text and value not in full.text:
            assert value not in released
    # (A unit longer than the cap is checked as it stands, cut at the cap: the
    # mark may be cut too, so a block is not certain.)
    assert stream.result is not None
