"""The incremental scanner finds exactly what a whole-text scan finds, for any chunking."""

from __future__ import annotations

import pytest
import regex
from _chunks import cut
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_engine._scanning import scan as _scan
from guardrails_engine._scanning.scan import PatternSet, SharedScan, streamable

# Patterns chosen for the ways a match can depend on text not seen yet: greedy
# repetition, alternation priority, lookahead, \b, \B, $ and \Z at the end of the
# buffer, back-references (never combined into an alternation), classes with \b.
PATTERNS = [
    r"\d+",
    r"\bab\b",
    r"a.*z|a",
    r"a|a.*z",
    r"\bfoo(?!bar)",
    r"b{2,3}",
    r"(?<!\w)cat(?!\w)",
    r"\d{3}-\d{2}",
    r"[a-z]+@[a-z]+\.[a-z]{2,}",
    r"x$",
    r"c?a?",
    r"(\w)\1",
    r"o\B",
    r"z$",
    r"\d\Z",
    r"[\b]?a\b",
    r"[]a]+",
    r"(?m)^a.$",
    r"\w+\s+\w+",
    r"(?:ab|abc)(?!\w)",
    # Lookahead that reaches across whitespace, and matches without whitespace
    # whose probe may start at the trailing word.
    r"ab(?=[^x]{2}c)",
    r"\d+(?=\d{2}\b)",
    r"[a-z]+(?=\s\d)",
    r"b\w*$",
    # Whitespace-free patterns that read two characters past their match (the
    # word before the trailing one may still be in progress), and ones with a
    # leading lookbehind; large groups of them hold from their first candidate.
    r"(?<![\w:])[0-9a-f]{1,2}:[0-9a-f]{1,2}(?![\w:]|\.\d)",
    r"\bt[a-z]+(?=\.\d)",
    r"(?<!\w)a[a-z]*o(?!\w)",
    r"\bsk-[a-z0-9]{2,}\b",
    r"[a-z]+@[a-z]+",
    r"(?<!\w)do\s+not(?!\w)",
    r"(?<![\w+\u00e9:])(?:\+\s?)?\d(?:[\d.]|[ ](?=\d))*\d",
    # Patterns that hold a number of digits at least (a text with fewer is not searched).
    r"\b\d{4}\b",
    r"(?:1|ab)\d{2}",
    r"[0-9]{2,}[a-z]",
]
FLAGS = [0, regex.IGNORECASE, regex.MULTILINE | regex.DOTALL, regex.VERBOSE]
ALPHABET = "abcfoorxz@.1234- \nBt\t:dnsk"


def whole_text_matches(patterns: list[regex.Pattern[str]], text: str) -> list[tuple[int, int, int]]:
    """finditer semantics with empty matches skipped, on the patterns as written."""
    out = []
    for i, p in enumerate(patterns):
        pos = 0
        while pos < len(text):
            m = p.search(text, pos)
            if m is None:
                break
            if m.end() > m.start():
                out.append((i, m.start(), m.end()))
                pos = m.end()
            else:
                pos = m.start() + 1
    return sorted(out)


Spans = list[tuple[int, int, int]]


def streamed(
    state: _scan.ScanState, text: str, sizes: list[int], expected: Spans | None = None
) -> Spans:
    """The matches a stream of ``text`` cut into ``sizes`` reports, sorted; with
    ``expected``, also checked after every chunk: the hold is sound (nothing still to
    come starts before it) and every match reported is a real one."""
    got: Spans = []
    seen = ""
    for chunk in cut(text, sizes):
        seen += chunk
        got += [(m.index, m.start, m.end) for m in state.feed(seen, 0)]
        if expected is not None:
            pending = set(expected) - set(got)
            assert all(start >= state.hold for _, start, _ in pending)
            assert set(got) <= set(expected)
    got += [(m.index, m.start, m.end) for m in state.finish(seen, 0)]
    return sorted(got)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(
    st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=8, unique=True),
    st.sampled_from(FLAGS),
    st.text(alphabet=ALPHABET, max_size=40),
    st.lists(st.integers(1, 6), max_size=40),
)
def test_stream_scan_equals_whole_scan(
    patterns: list[str], flags: int, text: str, sizes: list[int]
) -> None:
    compiled = [regex.compile(p, flags) for p in patterns]
    expected = whole_text_matches(compiled, text)
    assert streamed(PatternSet(compiled).state(), text, sizes, expected) == expected
    # And the whole text scanned at once, as validate scans it.
    whole = PatternSet(compiled).state()
    assert sorted((m.index, m.start, m.end) for m in whole.finish(text, 0)) == expected


@given(st.sampled_from(PATTERNS), st.sampled_from(FLAGS), st.text(alphabet=ALPHABET, max_size=30))
def test_streamable_rewrite_keeps_meaning(pattern: str, flags: int, text: str) -> None:
    original = regex.compile(pattern, flags)
    rewritten = streamable(pattern, flags)
    assert [m.span() for m in original.finditer(text)] == [
        m.span() for m in rewritten.finditer(text)
    ]


def test_hold_is_at_the_start_of_a_match_in_progress() -> None:
    state = PatternSet([regex.compile(r"\b\d{3}-\d{2}-\d{4}\b")]).state()
    assert state.feed("call 123-4", 0) == []
    assert state.hold == 5
    found = state.feed("call 123-45-6789 now", 0)
    assert [(m.start, m.end) for m in found] == [(5, 16)]
    assert state.hold == 20


def test_buffer_may_start_after_offset_zero() -> None:
    state = PatternSet([regex.compile(r"\d+")]).state()
    assert state.feed("ab 12", 0) == []
    # The caller dropped the first three characters; offsets stay absolute.
    found = state.feed("12 x", 3)
    assert [(m.start, m.end) for m in found] == [(3, 5)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PATTERNS), min_size=2, max_size=8, unique=True),
    st.integers(1, 3),
    st.sampled_from(FLAGS),
    st.text(alphabet=ALPHABET, max_size=40),
    st.lists(st.integers(1, 6), max_size=40),
)
def test_shared_scan_gives_each_check_its_own_matches(
    patterns: list[str], checks: int, flags: int, text: str, sizes: list[int]
) -> None:
    # The patterns of several checks scanned as one set: each check sees
    # exactly what scanning its own patterns over the whole text finds.
    compiled = [regex.compile(p, flags) for p in patterns]
    parts = [compiled[k::checks] for k in range(checks) if compiled[k::checks]]
    shared = SharedScan(PatternSet([p for part in parts for p in part]), [len(p) for p in parts])
    views = [shared.view(k) for k in range(len(parts))]
    got: list[list[tuple[int, int, int]]] = [[] for _ in parts]
    seen = ""
    for chunk in cut(text, sizes):
        seen += chunk
        for k, view in enumerate(views):
            got[k] += [(m.index, m.start, m.end) for m in view.feed(seen, 0)]
            pending = set(whole_text_matches(parts[k], text)) - set(got[k])
            assert all(start >= view.hold for _, start, _ in pending)
    for k, view in enumerate(views):
        got[k] += [(m.index, m.start, m.end) for m in view.finish(seen, 0)]
        assert sorted(got[k]) == whole_text_matches(parts[k], text)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=8, unique=True),
    st.sampled_from(FLAGS),
    st.text(alphabet=ALPHABET, max_size=40),
    st.lists(st.integers(1, 6), max_size=40),
)
def test_matching_at_candidate_starts_finds_what_a_search_finds(
    patterns: list[str], flags: int, text: str, sizes: list[int]
) -> None:
    # Far from the end of the buffer (when the hold-back cap forces a
    # decision) matches are tried at candidate starts instead of searched for:
    # forced here everywhere, the result must not change.
    old = _scan._FAR
    _scan._FAR = -1
    try:
        test_stream_scan_equals_whole_scan.hypothesis.inner_test(patterns, flags, text, sizes)  # type: ignore[attr-defined]
    finally:
        _scan._FAR = old


class _Counting:
    """A compiled probe that counts the start positions it is asked to try."""

    def __init__(self, pattern: regex.Pattern[str]) -> None:
        self.pattern, self.starts = pattern, 0

    def match(self, text: str, pos: int = 0, **kwargs: object) -> object:
        self.starts += 1
        return self.pattern.match(text, pos, **kwargs)  # type: ignore[call-overload]

    def search(self, text: str, pos: int = 0, **kwargs: object) -> object:
        self.starts += len(text) - pos
        return self.pattern.search(text, pos, **kwargs)  # type: ignore[call-overload]


def test_a_long_unbroken_token_is_not_probed_over_and_over() -> None:
    # presidio's URL patterns, probed at the candidates of a long token such as
    # "www.awww.awww.a...", cost milliseconds a probe: past a few hundred
    # characters the token is held from its first candidate instead.
    import guardrails_engine as ge

    # (Below the hold-back cap, where the stream must equal validate.)
    policy = ge.Policy.from_yaml(
        "version: 1\nname: u\nstream: {max_holdback_chars: 8192}\n"
        "checks:\n  - {id: pii, type: pii, entities: [URL], action: repair}\n"
    )
    text = ("www.a" * 1000)[:4000] + " and then some words."
    whole = policy.validate_sync(text)
    probes = [
        _Counting(g.finder.probe)
        for g in policy.checks[0].patterns._groups  # type: ignore[attr-defined]
    ]
    for g, counting in zip(policy.checks[0].patterns._groups, probes, strict=True):  # type: ignore[attr-defined]
        g.finder.probe = counting
    try:
        stream = policy.stream_sync(text[i : i + 4] for i in range(0, len(text), 4))
        assert "".join(stream) == whole.text
        assert stream.result == whole
    finally:
        for g, counting in zip(policy.checks[0].patterns._groups, probes, strict=True):  # type: ignore[attr-defined]
            g.finder.probe = counting.pattern
    # The probes try a handful of start positions, not one per character of the token.
    assert sum(c.starts for c in probes) < 100, [c.starts for c in probes]


def test_a_long_match_in_progress_is_not_probed_at_every_word() -> None:
    # "12 12 12 ..." is one phone candidate, in progress across every word: it
    # is probed again only once the text after it has grown by a quarter.
    import guardrails_engine as ge

    policy = ge.Policy.from_yaml(
        "version: 1\nname: p\nchecks:\n"
        "  - {id: pii, type: pii, entities: [PHONE_NUMBER], action: repair}\n"
    )
    text = "call " + "12 " * 300 + "now"  # 900 characters in progress, under the cap
    whole = policy.validate_sync(text)
    groups = policy.checks[0].patterns._groups  # type: ignore[attr-defined]
    probes = [_Counting(g.finder.probe) for g in groups]
    for g, counting in zip(groups, probes, strict=True):
        g.finder.probe = counting
    try:
        for size in (1, 4, 7):
            stream = policy.stream_sync(text[i : i + size] for i in range(0, len(text), size))
            assert "".join(stream) == whole.text
            assert stream.result == whole
    finally:
        for g, counting in zip(groups, probes, strict=True):
            g.finder.probe = counting.pattern
    # A probe per word end (600) for each chunking, had the rule not held.
    assert sum(c.starts for c in probes) < 3 * 200, [c.starts for c in probes]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["12 ", "a ", "1 2 ", "BEGIN ", "END ", "x ", "b"]), max_size=6),
    st.integers(90, 180),  # (in progress under the cap, 1,024 characters)
    st.lists(st.integers(1, 16), min_size=1, max_size=10),
)
def test_long_matches_in_progress_give_the_whole_text_answer(
    around: list[str], words: int, sizes: list[int]
) -> None:
    import guardrails_engine as ge

    policy = ge.Policy.from_yaml(
        "version: 1\nname: c\nchecks:\n  - id: c\n    type: content\n    action: repair\n"
        "    patterns: ['(?s)BEGIN.*?END', '\\d+(?: \\d+)+ x', 'a(?: a)+b']\n"
    )
    text = "".join(around[:3]) + "12 " * words + "a " * words + "".join(around[3:])
    whole = policy.validate_sync(text)
    stream = policy.stream_sync(cut(text, sizes))
    assert "".join(stream) == whole.text
    assert stream.result == whole


def test_validate_reads_a_long_match_in_progress_only_as_a_stream_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spaced digits are one phone candidate that runs to the end of the text; with
    a length limit, validate decides it at the hold-back cap as a stream does,
    instead of reading (and handing to phonenumbers) the whole text: the answer
    does not depend on the text after that."""
    import guardrails_engine as ge

    policy = ge.Policy.from_yaml(
        "version: 1\nname: x\nstream: {max_holdback_chars: 256}\nchecks:\n"
        "  - id: pii\n    type: pii\n    entities: [PHONE_NUMBER]\n"
        "  - id: len\n    type: length\n    max_chars: 300\n"
    )
    import phonenumbers

    read: list[int] = []
    matcher = phonenumbers.PhoneNumberMatcher

    def counting(text: str, *args: object, **kwargs: object) -> object:
        read.append(len(text))
        return matcher(text, *args, **kwargs)

    monkeypatch.setattr(phonenumbers, "PhoneNumberMatcher", counting)
    digits = "1 2 3 4 5 6 7 8 9 " * 3000
    short, long_ = policy.validate_sync(digits[:3000]), policy.validate_sync(digits)
    assert short == long_
    assert max(read) < 3000  # not the 54,000 characters of the candidate
    assert long_.decision == ge.Decision.REPAIR and len(long_.text) <= 300


# -- many terms as one trie pattern ---------------------------------------------

_VOCAB = ["a", "ab", "A", "b", "ha", "co-op", "co", "\u017f", "S", "\u00e9t\u00e9", "x_1"]
_terms = st.lists(
    st.lists(st.sampled_from(_VOCAB), min_size=1, max_size=3).map(" ".join),
    min_size=1,
    max_size=8,
)
_texts = st.lists(
    st.tuples(
        st.sampled_from([*_VOCAB, "HA", "Co-Op", "s", "\u00c9T\u00c9"]),
        st.sampled_from([" ", "  ", "\n", " \t ", "-", ".", "x", ""]),
    ),
    max_size=30,
).map(lambda parts: "".join(a + b for a, b in parts))


def _term_hits(terms: list[str], text: str, chunks: list[int]) -> list[tuple[int, int, str]]:
    import guardrails_engine.checks._content as content
    from guardrails_engine._spec.config import ContentSpec

    spec = ContentSpec.model_validate({"id": "c", "type": "content", "terms": terms})
    trie_from, content.TRIE_FROM = content.TRIE_FROM, 1  # the trie, however few the terms
    try:
        check = content.ContentCheck(spec, "block")
    finally:
        content.TRIE_FROM = trie_from
    assert check.terms is not None
    session = check.session()
    hits, end = [], 0
    for size in chunks:
        end = min(end + size, len(text))
        hits += session.feed(text[:end], 0, "")
    hits += session.finish(text, 0)
    return sorted((h.start, h.end, h.what) for h in hits)


@settings(max_examples=300, deadline=None)
@given(_terms, _texts, st.lists(st.integers(1, 9), max_size=12))
def test_the_trie_finds_what_the_terms_find_one_by_one(
    terms: list[str], text: str, chunks: list[int]
) -> None:
    from guardrails_engine._scanning.terms import term_pattern

    expected = sorted(
        (m.start(), m.end(), f"terms[{i}]")
        for i, term in enumerate(terms)
        for m in term_pattern(term).finditer(text)
    )
    assert _term_hits(terms, text, []) == expected
    assert _term_hits(terms, text, chunks) == expected


def test_ten_thousand_terms_load_as_one_pattern() -> None:
    import guardrails_engine as ge

    terms = [f"w{i:05d} x{i % 97}" for i in range(10_000)]
    text = "version: 1\nname: t\nchecks:\n  - id: c\n    type: content\n    action: flag\n"
    text += "    terms: [" + ", ".join(f'"{t}"' for t in terms) + "]\n"
    policy = ge.Policy.from_yaml(text)
    (check,) = policy.checks
    assert len(check.patterns.patterns) == 1  # type: ignore[attr-defined]
    result = policy.validate_sync("so w00042 x42 and W09999   x8 but not w00001 x2.")
    assert [f.reason for f in result.findings] == [
        "c: terms[42] at 3-13, flagged",
        "c: terms[9999] at 18-29, flagged",
    ]


# Fuzzy matching (the ``regex`` package's ``{e<=1}``): a match may hold fewer, other or
# more characters than the pattern says, so nothing read off the pattern (its first or
# required characters, its fewest digits, whether it spans whitespace) holds for it.
# (Where a fuzzy search starts changes what it finds: on "xbc\n123" ``\b(?:\d{3}){e<=1}\b``
# finds "\n123" from 0 to 3 and "123" from 3 on, so a stream finds each match, or one
# overlapping it, not always with the same span.)
FUZZY = [
    regex.compile(r"\b(?:\d{3}){e<=1}\b"),
    regex.compile(r"(?:abc){e<=1}"),
    regex.compile(r"(?:cat){s<=1}"),
    regex.compile(r"(?:jdoe@x\.com){i<=1,d<=1}"),
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(["12", "3", "xbc", "bat", "jdoe", "@", "x.com", " ", "a", "c", "\n"]),
        max_size=10,
    ).map("".join),
    st.lists(st.integers(1, 5), max_size=12),
)
def test_fuzzy_patterns_find_what_the_whole_text_holds(text: str, sizes: list[int]) -> None:
    expected = whole_text_matches(FUZZY, text)
    scan = PatternSet(FUZZY)
    whole = scan.state()
    assert sorted((m.index, m.start, m.end) for m in whole.finish(text, 0)) == expected
    got = streamed(scan.state(), text, sizes)

    def overlapped(m: tuple[int, int, int], others: list[tuple[int, int, int]]) -> bool:
        return any(i == m[0] and s < m[2] and m[1] < e for i, s, e in others)

    assert all(overlapped(m, got) for m in expected)
    assert all(overlapped(m, expected) for m in got)
