"""Every declared scanner hint (``_scanning/hints.py``) is sound against the engine.

A wrong needle or spoiler would lose matches (a stream would release a value); a
wrong sure hint would hold text no match needs.  Each is checked against what the
``regex`` engine says of the pattern itself, on texts made of the pieces that
disguised addresses and prose are made of.
"""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from test_scan import streamed, whole_text_matches

from guardrails_engine._scanning.compose import probe
from guardrails_engine._scanning.hints import Hint, declared
from guardrails_engine._scanning.scan import PatternSet
from guardrails_engine.checks._pii import disguise
from guardrails_engine.checks._pii.presidio import catalog

# Pieces of disguised addresses, of prose, and of what sits between them.
PIECES = [
    "jdoe", "j", "d", "o", "e", "x", "at", "AT", "dot", "com", "example", "Your", "order", "7",
    " ", "  ", "\t", "\n", "\r\n", " \n ", "@", "@@", ".", "[at]", "(at)", "{dot}", "<at>",
    "[", "]", "(", ")", "'", '"', "-", "_", "+", "*", "**", "`", "~", ",", ";", "!", "/", ":",
    "\u00ab", "\u00bb", "é", "ß", "\u00a0", "_at_", "-at-", " [ at ] ", " @ ", "j d o e",
    "#", "%", "&", "=", "?", "^", "{", "|", "}", "example.com", "x@y.co",
]  # fmt: skip
# Pieces of numbers (cards, IBANs, phone numbers with extensions, SSNs) and of prose.
NUMBER_PIECES = [
    "4111", "1111", "4242", "5555", "2221", "3782", "0000", "123", "078", "05", "1120", "9",
    "DE", "89", "3704", "0044", "0532", "0130", "00", "GB", "82", "WEST", "1234", "AB", "X",
    "The", "Th", "It", "I", "A", "e", "x", "t", "n", "ext", "ext.", "extension", "Ext", "a",
    "card", "is", " ", "  ", "\t", "\n", "-", ".", "(", ")", "[", "]", "+", "+1", "/", "*",
    "_", "%20", ":", "'", '"', "=", "#", "ß", "\u00a0", "\u0663",
]  # fmt: skip
# Pieces of IP addresses (IPv6 and its IPv4 forms) and of prose with colons.
IP_PIECES = [
    "::", ":", "fe80", "2001", "db8", "0", "1", "a", "ffff", "192.168.0.1", "10", ".",
    "%eth0", "/64", "Note", " ", "e", "the", "10:30", "A", "F", "g", "x", "\n", "-",
]  # fmt: skip
texts = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=14).map("".join),
    st.lists(st.sampled_from(NUMBER_PIECES), max_size=14).map("".join),
    st.lists(st.sampled_from(IP_PIECES), max_size=14).map("".join),
)

catalog().detectors("EMAIL_ADDRESS")  # (declares the hint of presidio's e-mail pattern)
for _entity in ("PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE"):
    catalog().detectors(_entity)  # (declares the spoiler of the patterns of numbers)
IPV6 = [
    d.pattern for d in catalog().detectors("IP_ADDRESS") if "IPv6" in d.name or "IPv4_" in d.name
]
HINTS = declared()
assert len(IPV6) == 4 and all(p.pattern in {t for t, _, _ in HINTS} for p in IPV6)
# The two e-mail patterns of the words family declare hints, and the patterns of
# numbers that may span words (presidio's and the separators family's) a spoiler.
NUMBERS = [
    d.pattern
    for entity in ("PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE")
    for d in catalog().detectors(entity)
] + [disguise._CARD, disguise._SSN, disguise._PHONE]
assert {disguise._EMAIL_WORDS.pattern, disguise._EMAIL_SPACED.pattern} | {
    p.pattern for p in NUMBERS
} <= {text for text, _, _ in HINTS}


def _hinted(i: int) -> tuple[regex.Pattern[str], Hint]:
    text, flags, hint = HINTS[i]
    return regex.compile(text, flags), hint


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(HINTS) - 1), texts)
def test_every_match_holds_its_needle(i: int, text: str) -> None:
    pattern, hint = _hinted(i)
    if hint.needle is None:
        return
    for m in pattern.finditer(text):
        assert hint.needle.search(m.group()) is not None, (text, m.span())


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(IPV6), st.lists(st.sampled_from(IP_PIECES), max_size=16).map("".join))
def test_every_ipv6_address_holds_its_needle(pattern: regex.Pattern[str], text: str) -> None:
    needle = next(h.needle for t, _, h in HINTS if t == pattern.pattern)
    assert needle is not None
    for m in pattern.finditer(text):
        assert needle.search(m.group()) is not None, (text, m.span())


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(HINTS) - 1), texts)
def test_a_spoiled_start_is_no_match_in_progress(i: int, text: str) -> None:
    pattern, hint = _hinted(i)
    if hint.spoiler is None:
        return
    asked = probe([pattern])
    for c in range(len(text)):
        if hint.spoiler.search(text, c) is not None:
            assert asked.match(text, c, partial=True) is None, (text, c)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(HINTS) - 1), texts)
def test_a_sure_start_is_a_match_in_progress(i: int, text: str) -> None:
    pattern, hint = _hinted(i)
    if hint.sure is None:
        return
    asked = probe([pattern])
    for c in range(len(text)):
        if hint.sure.fullmatch(text, c) is not None:
            assert asked.match(text, c, partial=True) is not None, (text, c)


SETTLING = [i for i, (_, _, h) in enumerate(HINTS) if h.settle or h.clear]
assert len(SETTLING) == 2  # (the words family's two patterns)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(SETTLING), texts, st.sampled_from(["", " ", "  ", "\t"]))
def test_a_settled_text_has_no_match_in_progress_before_and_one_from_it(
    i: int, text: str, end: str
) -> None:
    pattern, hint = _hinted(i)
    found = hint.settle or hint.clear
    assert found is not None
    text += end  # (it settles texts that end in a word and the spaces after it)
    asked = probe([pattern])
    m = found.search(text)
    if m is None:
        return
    for c in range(m.start()):
        assert asked.match(text, c, partial=True) is None, (text, c)
    if hint.settle is not None and m.start() < len(text):
        # (At the end of the text: nothing is in progress anywhere.)
        assert asked.match(text, m.start(), partial=True) is not None, (text, m.start())


def test_a_group_settles_only_if_every_pattern_declares_the_same_ending() -> None:
    from guardrails_engine._scanning.hints import Known

    words, spaced, bare = disguise._EMAIL_WORDS, disguise._EMAIL_SPACED, disguise._EMAIL_BARE
    assert Known([words, spaced]).settle is not None
    assert Known([words]).settle is not None
    # Only clear: nothing says a match is in progress where it matches.
    assert Known([spaced]).settle is None
    # A pattern that declares nothing may be in progress anywhere.
    assert Known([words, bare]).settle is None
    settle = Known([words, spaced]).settle
    assert settle is not None
    text = "Your order was sent to the team "
    m = settle.search(text)
    assert m is not None and text[m.start() :] == "team "
    # After a comma, or the end of a sentence, too; a sentence that ended: nothing.
    assert [m.start() for m in map(settle.search, ("Yes, team", "I did. Team "))] == [5, 7]
    end = settle.search("the team. ")
    assert end is not None and end.start() == len("the team. ")
    # A word alone, or after a bracket or an "@", may go on with what came before.
    assert all(settle.search(t) is None for t in ("team ", "[team ", "x @ team", "j d "))


@pytest.mark.parametrize(
    "text",
    ["Your order ", "jdoe [at] example [dot] com", "j d o e @ e x . c o m", "a, b; c! "],
)
def test_the_hints_decide_what_they_are_meant_to(text: str) -> None:
    words = next(h for t, _, h in HINTS if t == disguise._EMAIL_WORDS.pattern)
    assert words.spoiler is not None and words.sure is not None and words.needle is not None
    if text == "Your order ":
        # "Your" is followed by a space and a letter: not the name of an address;
        # "order " may be ("order [at] ...").
        assert words.spoiler.search(text, 0) is not None
        assert words.spoiler.search(text, 5) is None
        assert words.sure.fullmatch(text, 5) is not None
    elif text == "a, b; c! ":
        assert words.needle.search(text) is None
    else:
        assert words.needle.search(text) is not None


@settings(max_examples=300, deadline=None)
@given(texts, st.lists(st.integers(1, 6), max_size=20))
def test_a_stream_over_hinted_patterns_finds_what_the_whole_text_holds(
    text: str, sizes: list[int]
) -> None:
    compiled = [disguise._EMAIL_WORDS, disguise._EMAIL_SPACED, disguise._EMAIL_BARE]
    expected = whole_text_matches(compiled, text)
    assert streamed(PatternSet(compiled).state(), text, sizes, expected) == expected


def test_an_escaped_parenthesis_is_no_conditional_but_a_conditional_stays_alone() -> None:
    # The separators family's card pattern opens with ``\(?(?:``: it is scanned with the
    # other patterns that may span words; a real conditional is scanned on its own (an
    # alternation would renumber its group).
    card = regex.compile(r"(?<!\d)\(?(?:4\d{3})(?:[ \-]?\d{4}){3}(?!\d)")
    phone = regex.compile(r"(?<![\w+])\d{3}[ \-]\d{4}(?!\d)")
    conditional = regex.compile(r"(\()?\d{2}(?(1)\)|-)\d")
    patterns = [card, phone, conditional]
    scan = PatternSet(patterns)
    assert sorted(len(g.indices) for g in scan._groups) == [1, 2]
    text = "card (4111 1111 1111 1111), call 555-0134, (12)3 and 12-3 or (12-3 "
    expected = whole_text_matches(patterns, text)
    assert {i for i, _, _ in expected} == {0, 1, 2}
    for sizes in ([1], [3, 5], [len(text)]):
        assert streamed(scan.state(), text, sizes) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(NUMBER_PIECES), max_size=16).map("".join),
    st.lists(st.integers(1, 6), max_size=20),
)
def test_a_stream_over_the_patterns_of_numbers_finds_what_the_whole_text_holds(
    text: str, sizes: list[int]
) -> None:
    _stream_finds_the_whole_texts_matches(NUMBERS, text, sizes)


@pytest.mark.parametrize(
    "text",
    [
        "Pay DE89 3704 0044 0532 0130 00 now. The IBAN GB82 WEST 1234 5698 7654 32 is old",
        "Call 555-0134 ext. 12 or (415) 555 0132 x 7. Card 4111 1111 1111 1111, SSN 078-05-1120",
        "The The Th GB82WEST12345698765432 It ext extension 4242",
    ],
)
def test_numbers_after_capitalised_words_are_found_on_every_chunking(text: str) -> None:
    # A capitalised word followed by a lowercase letter is ruled out by the spoiler; an
    # IBAN's capitals, and the numbers after such words, are not.
    expected = whole_text_matches(NUMBERS, text)
    assert expected
    for size in range(1, 9):
        _stream_finds_the_whole_texts_matches(NUMBERS, text, [size] * len(text))


def _stream_finds_the_whole_texts_matches(
    compiled: list[regex.Pattern[str]], text: str, sizes: list[int]
) -> None:
    expected = whole_text_matches(compiled, text)
    assert streamed(PatternSet(compiled).state(), text, sizes, expected) == expected
