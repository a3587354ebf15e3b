"""What the scanner learns from a pattern before reading text (``_analysis.py``)."""

from __future__ import annotations

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from guardrails_engine._scanning.analysis import facts, union
from guardrails_engine._scanning.redos import backtracking


def classes_match(classes: tuple[str, ...] | None, text: str, flags: int = 0) -> list[str]:
    assert classes is not None
    rx = regex.compile(union([(c, bool(flags & regex.IGNORECASE)) for c in classes]))
    return [ch for ch in text if rx.fullmatch(ch)]


@pytest.mark.parametrize(
    ("pattern", "reach"),
    [
        (r"\b\d{3}-\d{4}\b", 1),  # the leading \b reads nothing past the match
        (r"\d+", 0),
        (r"[a-f\d]+(?![\w:]|\.\d)", 2),  # the lookahead reads two characters
        (r"ab(?=c)", 1),
        (r"x$", 2),  # $ also reads a final newline
        (r"\w+\s\w+", None),  # consumes whitespace
        (r"a.b", None),  # '.' may be a space
        (r"[^x]+", None),
    ],
)
def test_reach(pattern: str, reach: int | None) -> None:
    assert facts(pattern, 0).reach == reach


def test_first_characters() -> None:
    f = facts(r"(?<![\w:])(?:\+\s?|\(\s?)?\d[\d ]*\d", 0)
    assert classes_match(f.first, "+(1a ") == ["+", "(", "1"]
    assert facts(r"c?a?", 0).first is None  # may match the empty string
    assert facts(r"(?i:a)b", 0).first is None  # inline flags: unknown
    assert facts(r"[[:alpha:]]x", 0).first is None  # regex-only syntax: unknown


def test_required_characters_are_rare_ones() -> None:
    email = facts(r"\b[\w.]+@\w+\.\w+\b", 0)
    assert classes_match(email.required, "a@.1") == ["@"]
    # A literal string that every match contains beats any single letter.
    term = facts(r"(?<!\w)do\s+not\s+share(?!\w)", regex.IGNORECASE)
    assert term.required is not None and len(term.required) == 1
    assert regex.compile(union([(term.required[0], True)])).search("please SHARE it")
    # Digits rather than the dots of an IPv4 address.
    ip = facts(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", 0)
    assert classes_match(ip.required, "1.") == ["1"]
    # Every branch of an alternation must supply one (here, a string).
    branch = facts(r"a@|b:", 0)
    assert branch.required is not None
    rx = regex.compile(union([(c, False) for c in branch.required]))
    assert rx.search("xa@") and rx.search("b:y") and not rx.search("ab@:")


PATTERNS = [
    r"\b\d{3}-\d{2}-\d{4}\b",
    r"[a-z]+@[a-z]+\.[a-z]{2,}",
    r"(?<!\w)do\s+not(?!\w)",
    r"(?:ab|cd)+e?",
    r"[0-9a-f]{1,2}:[0-9a-f]{1,2}",
    r"x[^y]z|q",
    r"\+?\d[\d ]*\d",
]


@given(
    st.sampled_from(PATTERNS),
    st.sampled_from([0, regex.IGNORECASE]),
    st.text(alphabet="abcdefqxyz0123:@.-+ DONT", max_size=60),
)
def test_every_match_starts_with_a_first_character_and_holds_a_required_one(
    pattern: str, flags: int, text: str
) -> None:
    f = facts(pattern, flags)
    ignorecase = bool(flags & regex.IGNORECASE)
    for m in regex.compile(pattern, flags).finditer(text):
        if not m.group():
            continue
        if f.first is not None:
            first = regex.compile(union([(c, ignorecase) for c in f.first]))
            assert first.fullmatch(m.group()[0])
        if f.required is not None:
            required = regex.compile(union([(c, ignorecase) for c in f.required]))
            assert required.search(m.group())


# -- catastrophic backtracking -------------------------------------------------

CATASTROPHIC = [
    r"(a|aa)+b",
    r"(a+)+$",
    r"(\w+\s?)+$",
    r"^(([a-z])+.)+[A-Z]([a-z])+$",
    r"(x+x+)+y",
    r"(.*a){20}",
    r"(a*)*b",
    r"(a|a)+!",
    r"(?:ab|a|b)+c",
    r"(?:[a-z]?[a-z])+!",
    r"(\d+|\d+\.\d+)+x",
    r"((a+){1,2})+",
    r"(?=(a+)+b)",  # inside a lookaround too
    r"(?x) ( a + ) + $",  # verbose mode
    r"(.*,){3}",  # n^3
    "(?:\u4e01|\u4e01\u4e01)+b",  # characters outside the sample alphabet
]

LINEAR = [
    r"\bsk-[A-Za-z0-9]{20,}\b",
    r"(ab|a)+",  # the branches are told apart by their next character
    r"([-.]\w+)*",  # each repetition starts with what the part before cannot match
    r"(\d{1,3}\.)+",
    r"(?:\s?\w)+",
    r"\w+@\w+\.\w+",
    r"(?:https?|ftp)://\S+",
    r"(?:[a-z]?[a-z]){2}",  # repeated twice only
    r"(\w+\s){3}",
]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_patterns_are_found(pattern: str) -> None:
    assert backtracking(pattern) is not None


@pytest.mark.parametrize("pattern", LINEAR)
def test_linear_patterns_pass(pattern: str) -> None:
    assert backtracking(pattern) is None


def test_the_reasons_say_why() -> None:
    assert "nested quantifiers" in (backtracking(r"(a+)+$") or "")
    assert "alternatives" in (backtracking(r"(?:ab|a|b)+c") or "")
    assert "n^20" in (backtracking(r"(.*a){20}") or "")


def test_every_presidio_pattern_passes() -> None:
    """The patterns the catalog compiles from presidio's recognizers, and the
    phone candidate, are not refused (they are not loaded through a policy)."""
    from guardrails_engine.checks._pii.presidio import catalog

    cat = catalog()
    seen = 0
    for entity in sorted(cat.entities):
        for detector in cat.detectors(entity):
            seen += 1
            why = backtracking(detector.pattern.pattern, detector.pattern.flags)
            assert why is None, (entity, detector.name, why)
    assert seen > 100


def test_a_policy_with_such_a_pattern_does_not_load() -> None:
    import guardrails_engine as ge

    for field, spec in [
        ("checks[0].patterns[1]", "type: content\n    patterns: ['ok', '(a|aa)+b']"),
        (
            "checks[0].recognizers[0].patterns[0].regex",
            "type: pii\n    recognizers: [{entity: X, patterns: [{regex: '(x+x+)+y'}]}]",
        ),
        (
            "checks[0].allow[0].regex",
            "type: pii\n    entities: [EMAIL_ADDRESS]\n    allow: [{regex: '(\\w+\\s?)+$'}]",
        ),
    ]:
        with pytest.raises(ge.PolicyError) as err:
            ge.Policy.from_yaml(f"version: 1\nname: x\nchecks:\n  - id: c\n    {spec}\n")
        message = str(err.value)
        assert field in message and "backtrack catastrophically" in message, message


def test_shipped_policies_load() -> None:
    from pathlib import Path

    import guardrails_engine as ge

    root = Path(__file__).parent.parent
    files = sorted((root / "policies").glob("*.yaml")) + sorted(
        (root / "benchmarks" / "policies").glob("*.yaml")
    )
    for path in files:
        if not path.name.endswith((".cases.yaml", ".examples.yaml")):  # (not policies)
            ge.load_policy(path)


@pytest.mark.parametrize(
    ("pattern", "digits"),
    [
        (r"\b\d{3}-\d{4}\b", 7),
        (r"(?:4\d{3}|5[0-5]\d{2})[- ]?\d{4}", 8),
        (r"\d{2,}", 2),
        (r"(?!\d{5})\d", 1),  # a lookahead consumes nothing
        (r"(?<=\d{4})x", 0),
        (r"(?:\d|x)\d", 1),  # the fewer of the two branches
        (r"[0-9a-f]{4}", 0),  # hexadecimal: letters too
        (r"[^a-z]{3}", 0),
        (r"\d*", 0),
        (r"(\d)\1", 1),  # a back-reference counts nothing
    ],
)
def test_digits_every_match_holds(pattern: str, digits: int) -> None:
    assert facts(pattern, 0).digits == digits


_NUMBERISH = st.lists(
    st.sampled_from(["4111", "1", "12", "555", "0134", "-", " ", ".", "(", ")", "x", "a", "+"]),
    max_size=12,
).map("".join)


@given(
    st.sampled_from(
        [
            r"\b(?!1\d{12}(?!\d))((4\d{3})|(5[0-5]\d{2})|(6\d{3}))[- ]?(\d{3,4})[- ]?(\d{3,5})\b",
            r"(?<![\w+])(?:\+\s?|\(\s?)?\d(?:[\d\-./()]|[ \t](?=[\d(+]))*\d",
            r"\b(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.(?:25[0-5]|[01]?[0-9][0-9]?)\b",
            r"(?:\(\d{3}\)|\d{3})[ -]?\d{3}-\d{4}(?:\s*x\d{1,4})?",
            r"(?:a|\d\d)(?:\d{2}|x{3})+",
        ]
    ),
    _NUMBERISH,
)
def test_every_match_holds_as_many_digits_as_the_analysis_says(pattern: str, text: str) -> None:
    least = facts(pattern, 0).digits
    for m in regex.finditer(pattern, text):
        assert sum(ch.isdigit() for ch in m.group()) >= least, (pattern, text, m.span())
