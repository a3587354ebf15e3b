"""What a renderer undoes is undone before scanning (issue 19, "Leaks").

HTML tags with attributes, comments and every inline tag; markdown backslash escapes and
emphasis inside a word; text a bidi override or ``<bdo dir=rtl>`` shows reversed; LaTeX
spacing commands; an ``@`` with a space on one side.  Each value is caught, the finding
covers the whole written span (tags and escapes included), and a stream gives what
validate gives on every chunking.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from _cap_cases import chunks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge
from guardrails_engine._scanning.canon import OffsetMap, canonical

# (how, text with the value between « and », the entity)
LEAKS = [
    ("tag with attributes", 'jdoe<span class="x">@</span>example.com', "EMAIL_ADDRESS"),
    ("tag with attributes", "jdoe<font color='red'>@</font>example.com", "EMAIL_ADDRESS"),
    ("comment", "jdoe<!-- -->@example.com", "EMAIL_ADDRESS"),
    ("comment", "4111<!-- x -->1111<!---->1111<!-- -->1111", "CREDIT_CARD"),
    ("wbr", "jdoe<wbr>@example<wbr>.com", "EMAIL_ADDRESS"),
    ("a", "jdoe<a>@</a>example.com", "EMAIL_ADDRESS"),
    ("bdi", "jdoe<bdi>@example</bdi>.com", "EMAIL_ADDRESS"),
    ("nobr", "jdoe<nobr>@</nobr>example.com", "EMAIL_ADDRESS"),
    ("dfn", "jdoe<dfn>@</dfn>example.com", "EMAIL_ADDRESS"),
    ("time", "jdoe<time>@</time>example.com", "EMAIL_ADDRESS"),
    ("data", "4111<data>1111</data>1111<ruby>11</ruby>11", "CREDIT_CARD"),
    ("custom element", "jdoe<x-at>@</x-at>example.com", "EMAIL_ADDRESS"),
    ("markdown escapes", "jdoe\\@example\\.com", "EMAIL_ADDRESS"),
    ("markdown escapes", "4111\\-1111\\-1111\\-1111", "CREDIT_CARD"),
    ("markdown escapes", "536\\-90\\-4399", "US_SSN"),
    ("emphasis in a word", "jdoe@exam**ple**.com", "EMAIL_ADDRESS"),
    ("emphasis in a word", "jd*oe*@example.com", "EMAIL_ADDRESS"),
    ("strikethrough in a word", "jdoe@exam~~ple~~.com", "EMAIL_ADDRESS"),
    ("code in a word", "jdoe@exam`ple`.com", "EMAIL_ADDRESS"),
    ("bidi override", "\u202emoc.elpmaxe@eodj\u202c", "EMAIL_ADDRESS"),
    ("bidi override", "\u202e1111 1111 1111 1114\u202c", "CREDIT_CARD"),
    ("bdo", "<bdo dir=rtl>moc.elpmaxe@eodj</bdo>", "EMAIL_ADDRESS"),
    ("bdo", '<bdo dir="rtl">1111 1111 1111 1114</bdo>', "CREDIT_CARD"),
    ("bdo holding tags", "<bdo dir=rtl>moc.<b>elpmaxe</b>@eodj</bdo>", "EMAIL_ADDRESS"),
    ("nested bdo", "<bdo dir=rtl>moc.<bdo dir=ltr>example</bdo>@eodj</bdo>", "EMAIL_ADDRESS"),
    ("nested bdo", "<bdo dir=rtl>moc.<bdo dir=rtl>elpmaxe</bdo>@eodj</bdo>", "EMAIL_ADDRESS"),
    ("bdo in an override", "\u202emoc.<bdo dir=rtl>elpmaxe</bdo>@eodj\u202c", "EMAIL_ADDRESS"),
    ("override in an override", "\u202e1111 \u202d1111\u202c 1111 1114\u202c", "CREDIT_CARD"),
    ("latex", "$4111\\,1111\\,1111\\,1111$", "CREDIT_CARD"),
    ("latex", "$4111\\;1111\\quad 1111\\:1111$", "CREDIT_CARD"),
    ("latex", "$4111\\!1111\\!1111\\!1111$", "CREDIT_CARD"),
    ("latex phone after $", "$415\\,555\\,0132$", "PHONE_NUMBER"),
    ("latex phone after $", "$(415)\\;555\\!-\\!0132$", "PHONE_NUMBER"),
    ("> in a quoted attribute", 'jdoe<span title="a>b">@</span>example.com', "EMAIL_ADDRESS"),
    ("> in a quoted attribute", "4111<i data-x='>'>1111</i>1111 1111", "CREDIT_CARD"),
    ("CSS-hidden text", 'jdoe<span style="display:none">xyz</span>@example.com', "EMAIL_ADDRESS"),
    (
        "CSS-hidden text",
        '4111 11<span style="visibility: hidden">9</span>11 1111 1111',
        "CREDIT_CARD",
    ),
    ("hidden attribute", "536-<b hidden>0</b>90-4399", "US_SSN"),
    ("zero font size", "jdoe@exa<i style='font-size:0'>!! </i>mple.com", "EMAIL_ADDRESS"),
    ("a value-like attribute", 'jdoe<span title="1234">@</span>example.com', "EMAIL_ADDRESS"),
    ("a value-like attribute", "4111 <a href='a@b'>1111</a> 1111 1111", "CREDIT_CARD"),
    ("@ then a space", "jdoe@ example.com", "EMAIL_ADDRESS"),
    ("a space then @", "jdoe @example.com", "EMAIL_ADDRESS"),
    ("@ then a line break", "jdoe@\nexample.com", "EMAIL_ADDRESS"),
    ("a line break then @", "jdoe\n@example.com", "EMAIL_ADDRESS"),
]
TEMPLATE = "Here it is: {} and that is all."


@pytest.fixture(scope="module")
def policy() -> ge.Policy:
    return ge.load_policy("policies/support-chat.yaml")


@pytest.mark.parametrize(("how", "value", "entity"), LEAKS, ids=[c[0] for c in LEAKS])
def test_a_rendered_value_is_caught_and_its_whole_written_span_repaired(
    policy: ge.Policy, how: str, value: str, entity: str
) -> None:
    text = TEMPLATE.format(value)
    result = policy.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR, how
    found = [f for f in result.findings if f.entity_type == entity]
    assert found, (how, [f.entity_type for f in result.findings])
    start = TEMPLATE.index("{}")
    end = start + len(value)
    # The findings cover the whole written value: tags, escapes and markers too (the
    # dollar signs around LaTeX math are not part of it).
    covered: set[int] = set()
    for f in result.findings:
        covered.update(range(f.start, f.end))
    wanted = {k for k in range(start, end) if not text[k].isspace() and text[k] != "$"}
    assert wanted <= covered, how
    assert all(start <= f.start and f.end <= end for f in found)
    assert result.text.startswith("Here it is: ")
    assert result.text.endswith(" and that is all.")
    assert f"<{entity}>" in result.text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(LEAKS) - 1), st.randoms(use_true_random=False))
def test_a_rendered_value_streams_as_it_validates(
    policy: ge.Policy, i: int, rnd: random.Random
) -> None:
    text = TEMPLATE.format(LEAKS[i][1])
    whole = policy.validate_sync(text)
    stream = policy.stream_sync(chunks(rnd, text, rnd.choice([1, 2, 3, 8])))
    out = "".join(stream)
    assert stream.result is not None
    assert stream.result.findings == whole.findings
    assert out == whole.text


# -- the view itself: any chunking, the same view and the same map ------------------------

PIECES = [
    "a",
    "1",
    " ",
    "\n",
    "@",
    ".",
    "*",
    "**",
    "~~",
    "`",
    "\\",
    "\\@",
    "\\,",
    "\\t",
    "\\thin",
    "space",
    "\\quad",
    "<",
    "</",
    "<b>",
    "</b>",
    "<span",
    ' class="x">',
    "<!--",
    "-->",
    "-",
    "<bdo dir=rtl>",
    "</bdo>",
    "\u202e",
    "\u202c",
    "\u202d",
    "<bdo dir=ltr>",
    "&#64;",
    "&",
    "#64",
    ";",
    "%40",
    "%",
    "<wbr>",
    "<a href='1234'>",
    "$",
    "$4",
    '"',
    ' title="a>b">',
    "'>'",
    '<i style="display:none">',
    "</i>",
    "<b hidden>",
    "</b>",
    ' title="12345">',
    "<i",
]


def _whole(text: str) -> tuple[str, OffsetMap]:
    m = OffsetMap()
    view = m.add(text) + m.flush()
    return view, m


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), max_size=14).map("".join),
    st.lists(st.integers(1, 6), min_size=1, max_size=8),
)
def test_the_rendered_view_does_not_depend_on_chunking(text: str, sizes: list[int]) -> None:
    expected, whole = _whole(text)
    m = OffsetMap()
    view, i, k = "", 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        view += m.add(text[i : i + n])
        i += n
        k += 1
    view += m.flush()
    assert view == expected == canonical(text)
    for s in range(len(view)):
        for e in range(s + 1, min(len(view), s + 6) + 1):
            assert m.span(s, e) == whole.span(s, e)
    assert m.to_orig(len(view)) == len(text)


@pytest.mark.parametrize(
    ("text", "view"),
    [
        ('jdoe<span class="x">@</span>example.com', "jdoe@example.com"),
        ("a<!-- hidden -->b", "ab"),
        ("a<br/>b<p class='x'>c", "a b c"),
        ("jdoe\\@example\\.com \\*not\\*", "jdoe@example.com *not*"),
        ("exam**ple** and **bold** 2 * 3", "example** and **bold** 2 * 3"),
        ("\u202ecba\u202c", "abc\ncba"),
        ("<bdo dir='rtl'>cba</bdo>", "abc\ncba"),
        # Nested levels: an inner right-to-left run is shown reversed within the outer one
        # (three reversals), an inner left-to-right run as written.
        ("<bdo dir=rtl>ab<bdo dir=ltr>cd</bdo>ef</bdo>", "fecdba\nabcdef"),
        ("<bdo dir=rtl>ab<bdo dir=rtl>cd</bdo>ef</bdo>", "fedcba\nabcdef"),
        ("\u202eab<bdo dir=ltr>cd</bdo>ef\u202c", "fecdba\nabcdef"),
        ("<bdo dir=rtl>a<i>b</i>c</bdo>", "cba\nabc"),
        ("<bdo dir=rtl>abc", "abc"),
        # The "$" that opens math around a spaced number is a space (not an amount).
        ("$1\\,2\\;3\\quad4\\!5$", " 1 2 3 45$"),
        ("$5 and $6\\,000", "$5 and  6 000"),
        # A quoted attribute may hold a ">".
        ('a<span title="x>y" lang=en>b</span>c', "abc"),
        ("a\\thinspace b\\tc", "a  b\tc"),
        # A tag whose attributes may hide a value is read as shown, then (on the next line)
        # as written, each followed by a window of what comes after it.
        (
            '<span title="4111 1111 1111 1111">x</span>',
            'x\n<span title="4111 1111 1111 1111">x',
        ),
        ('<a href="mailto:jdoe@example.com">x</a> y', 'x y\n<a href="mailto:jdoe@example.com">x y'),
        ('a<i title="1234">b</i>c\nd', 'abc\n<i title="1234">bc\nd'),
        # A hidden element: shown as nothing, then what it holds as written.
        ('a<span style="display: none">x</span>b', "ab\nxb"),
        ("a<b hidden>x</b>b c", "ab c\nxb c"),
        ("a<b style='font-size:0'>x</b>b", "ab\nxb"),
        ("a<b style='font-size:0.5em'>x</b>b", "axb"),
        ("a<b class=hidden-x>x</b>b", "axb"),
        ("x < 3 > 2 and <unknown> tags", "x < 3 > 2 and <unknown> tags"),
    ],
)
def test_the_rendered_view(text: str, view: str) -> None:
    assert canonical(text) == view


def test_a_value_hidden_in_an_attribute_is_still_found(policy: ge.Policy) -> None:
    for text in (
        '<span title="4111 1111 1111 1111">see</span>',
        '<a href="mailto:jdoe@example.com">write</a>',
        '<span style="display:none">jdoe@example.com</span> see',
        "<b hidden>4111 1111 1111 1111</b>",
        # (in the window of another hidden element, and of a tag with a value-like attribute)
        "<b hidden>x</b><b hidden>jdoe@example.com</b> ok",
        "<i title=1234>a</i><b hidden>4111 1111 1111 1111</b>",
    ):
        result = policy.validate_sync(text)
        assert result.decision is ge.Decision.REPAIR
        assert "4111 1111" not in result.text and "jdoe@" not in result.text


@pytest.mark.parametrize(
    "unit",
    [
        "<b hidden>x</b>",
        "<i title=1234>",
        "<i title=1234>abcdefg ",
        "<b hidden>x</b>\u202eabc\u202c",
    ],
)
def test_tokens_read_two_ways_keep_the_view_linear(unit: str) -> None:
    # A window holds the next tokens read one way only: windows never nest (they did, and
    # 12 hidden elements in a row made a view of 8,190 characters).
    for n in (12, 3000):
        assert len(canonical(unit * n)) <= 2 * len(unit) * n


def test_what_the_view_keeps_back_is_bounded() -> None:
    # An open comment, tag or bidi run is kept back only while it may still close.
    for opener in ("<!--", "<span ", "\u202e", "<bdo dir=rtl>"):
        m = OffsetMap()
        m.add(opener + "x" * 100)
        assert m.pending == len(opener) + 100
        m.add("x" * 1000)
        assert m.pending == 0
    m = OffsetMap()
    m.add("*" * 10_000)
    assert m.pending <= 3


def test_an_open_token_longer_than_the_cap_is_read_as_it_stands() -> None:
    text = Path("policies/support-chat.yaml").read_text()
    small = ge.Policy.from_yaml(text + "\nstream:\n  max_holdback_chars: 32\n")
    stream = small.stream_sync(["<!-- " + "word " * 5, "word " * 20, "-->jdoe@example.com"])
    pieces = list(stream)
    # Released before the comment closed: the cap holds.
    assert pieces[0] or pieces[1]
    assert stream.result is not None
    assert "jdoe@example.com" not in "".join(pieces)


@pytest.mark.parametrize(
    "text",
    [
        "Scores: 12**2 = 144, 2**10 = 1024, 10**3 = 1000.",
        "Use **bold**, *italic*, ~~struck~~ and `code` in markdown.",
        "Write to us @example.com or ping me @jdoe on chat.",
        "The price is $5\\,000 and $7\\,500 in LaTeX.",
        "An <a href='/docs'>link</a>, a <!-- note --> comment, <span class=x>text</span>.",
        "C:\\\\Users\\\\me and a \\\\n literal, 5 \\* 3 = 15.",
        "Meet @ noon at the cafe @ 5th street.",
    ],
)
def test_ordinary_markup_adds_no_finding(policy: ge.Policy, text: str) -> None:
    assert policy.validate_sync(text).findings == ()
