"""A corpus of disguised values, by family: what an LLM or a prompt-injected
user writes to get a value past a filter.  Shared by tests/test_disguises.py
and benchmarks/evasion.py.  All values are synthetic (test card numbers,
555 phone numbers, example.com addresses).

Each case is ``(family, entity, text, spans)``: ``spans`` are where the
disguised value is in ``text``; every letter and digit in them must be
covered by a finding for the value to count as caught.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass

EMAILS = ["jdoe@example.com", "alice.smith@mail.example.org", "b.jones77@corp.example.net"]
CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004", "4242 4242 4242 4242", "6011 1111 1111 1117"]
SSNS = ["536-90-4399", "372-58-1946", "401-22-8765"]
PHONES = ["415-555-0132", "212-555-0187", "646-555-0199"]

#: Families the default policy is held to; the stretch families are measured only.
FAMILIES = (
    "separators",
    "unicode-digits",
    "dashes",
    "markup",
    "encodings",
    "words",
    "marks",
    "invisible",
    "glued",
)
#: Caught only with ``disguises: all`` (the bare-words family costs false positives on prose).
OPT_IN = ("bare-words",)
STRETCH = ("base64", "hex", "reversed", "spelled")


@dataclass(frozen=True)
class Case:
    family: str
    entity: str
    text: str
    spans: tuple[tuple[int, int], ...]
    how: str


def _groups(value: str) -> list[str]:
    return value.replace("-", " ").split()


def _place(template: str, value: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    start = template.index("{}")
    return template.replace("{}", value, 1), ((start, start + len(value)),)


_TEMPLATES = {
    "EMAIL_ADDRESS": "Please write to {} and we will reply.",
    "CREDIT_CARD": "The card on file is {} for this order.",
    "US_SSN": "Her SSN is {} as recorded.",
    "PHONE_NUMBER": "Call me on {} after five.",
}

_VALUES = {"EMAIL_ADDRESS": EMAILS, "CREDIT_CARD": CARDS, "US_SSN": SSNS, "PHONE_NUMBER": PHONES}

_ARABIC = str.maketrans(
    "0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
)
_DEVANAGARI = str.maketrans(
    "0123456789", "\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f"
)
_FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + i) for i in range(10)))
_INVISIBLE = [
    "\u034f",
    "\ufe0f",
    "\ufe00",
    "\U000e0100",
    "\u180b",
    "\u17b4",
    "\u3164",
    "\u2800",
    "\u115f",
    "\u200b",
]
_WORDS = "zero one two three four five six seven eight nine".split()


def _entity_value_transforms() -> list[tuple[str, str, Callable[[str], str], str]]:
    """(family, entity, transform, how) for numbers."""
    out: list[tuple[str, str, Callable[[str], str], str]] = []
    for entity in ("CREDIT_CARD", "US_SSN", "PHONE_NUMBER"):
        for sep, how in [
            (".", "dots"),
            ("/", "slashes"),
            ("_", "underscores"),
            ("\t", "tabs"),
            ("\n", "line breaks"),
            ("  ", "double spaces"),
            (" - ", "spaced dashes"),
        ]:
            out.append(("separators", entity, lambda v, s=sep: s.join(_groups(v)), how))
        out.append(
            (
                "separators",
                entity,
                lambda v: "".join(f"({g})" for g in _groups(v)),
                "parenthesised groups",
            )
        )
        for table, how in [
            (_ARABIC, "Arabic-Indic"),
            (_DEVANAGARI, "Devanagari"),
            (_FULLWIDTH, "full-width"),
        ]:
            out.append(("unicode-digits", entity, lambda v, t=table: v.translate(t), how))
        for dash, how in [
            ("\u2013", "en dash"),
            ("\u2212", "minus sign"),
            ("\u2014", "em dash"),
            ("\u2011", "non-breaking hyphen"),
            ("\ufe63", "small hyphen"),
        ]:
            out.append(("dashes", entity, lambda v, d=dash: d.join(_groups(v)), how))
        out.append(("markup", entity, lambda v: "**".join(_groups(v)), "bold between groups"))
        out.append(
            ("markup", entity, lambda v: " ".join(f"`{g}`" for g in _groups(v)), "code spans")
        )
        out.append(("markup", entity, lambda v: "**-**".join(_groups(v)), "bold dashes"))
        out.append(("markup", entity, lambda v: "<br>".join(_groups(v)), "HTML line breaks"))
        out.append(
            ("markup", entity, lambda v: "".join(f"[{g}]" for g in _groups(v)), "bracketed groups")
        )
        out.append(("separators", entity, lambda v: " \u2022 ".join(_groups(v)), "bullets"))
        out.append(("separators", entity, lambda v: "%20".join(_groups(v)), "%20"))
        out.append(("separators", entity, lambda v: "       ".join(_groups(v)), "many spaces"))
        out.append(
            (
                "encodings",
                entity,
                lambda v: "".join(f"&#{ord(c)};" for c in v),
                "every character an entity",
            )
        )
        out.append(
            ("encodings", entity, lambda v: "".join(f"&#x{ord(c):x};" for c in v), "hex entities")
        )
        out.append(
            (
                "marks",
                entity,
                lambda v: "".join(c + "\u0332" for c in v),
                "combining mark on every character",
            )
        )
        out.append(("marks", entity, lambda v: "\u202e" + v + "\u202c", "bidi controls"))
        out.append(
            (
                "marks",
                entity,
                lambda v: "".join(c + "\ufe0f\u20e3" if c.isdigit() else c for c in v),
                "keycaps",
            )
        )
        for mark in _INVISIBLE:
            out.append(
                (
                    "invisible",
                    entity,
                    lambda v, m=mark: "".join(c + m if c.isdigit() else c for c in v)[:-1],
                    f"U+{ord(mark):04X} between digits",
                )
            )
        out.append(
            (
                "glued",
                entity,
                lambda v: v.replace(" ", "").replace("-", ""),
                "glued to letters, no separators",
            )
        )
        out.append(("glued", entity, lambda v: v.replace(" ", "-"), "glued to a letter"))
    return out


def _in_tld(address: str, latin: str, other: str) -> str:
    """``address`` with the first of ``latin`` in its top-level domain written in another script."""
    head, _, tld = address.rpartition(".")
    for a, b in zip(latin, other, strict=True):
        if a in tld:
            return head + "." + tld.replace(a, b, 1)
    return address


def _email_transforms() -> list[tuple[str, Callable[[str], str], str]]:
    return [
        ("separators", lambda v: v.replace("@", " @ "), "spaces around @"),
        ("markup", lambda v: v.replace("@", "**@**"), "bold @"),
        ("markup", lambda v: "`" + v + "`", "code span"),
        ("encodings", lambda v: v.replace("@", "&#64;"), "&#64;"),
        ("encodings", lambda v: v.replace("@", "&commat;").replace(".", "&period;"), "named"),
        ("encodings", lambda v: "".join(f"&#{ord(c)};" for c in v), "every character"),
        ("encodings", lambda v: v.replace("@", "%40"), "%40"),
        ("encodings", lambda v: v.replace("@", "%40").replace(".", "%2E"), "%40 and %2E"),
        ("words", lambda v: v.replace("@", " [at] ").replace(".", " [dot] "), "[at] [dot]"),
        ("words", lambda v: v.replace("@", "(at)").replace(".", "(dot)"), "(at)(dot)"),
        ("bare-words", lambda v: v.replace("@", " at ").replace(".", " dot "), "at dot"),
        ("words", lambda v: v.replace("@", " {at} ").replace(".", " {dot} "), "{at} {dot}"),
        ("bare-words", lambda v: v.replace("@", " AT ").replace(".", " DOT "), "AT DOT"),
        ("words", lambda v: v.replace("@", "-at-"), "-at-"),
        ("words", lambda v: v.replace("@", " @@ "), "@@"),
        ("words", lambda v: "  ".join(v), "letters two spaces apart"),
        ("markup", lambda v: "<b>" + v.replace("@", "</b>@<b>") + "</b>", "HTML tags"),
        ("encodings", lambda v: v.replace("@", "&#64"), "&#64 without a semicolon"),
        ("marks", lambda v: v.replace(".", "\u3002"), "ideographic full stops"),
        ("marks", lambda v: v.replace(".", "\u00b7"), "middle dots"),
        ("invisible", lambda v: v.replace("@", "\x01@\x7f"), "control characters"),
        ("words", lambda v: v.replace("@", "[@]").replace(".", "[.]"), "[@] [.]"),
        ("words", lambda v: " ".join(v), "spaced letters"),
        ("marks", lambda v: "".join(c + "\u0301" for c in v), "combining marks"),
        (
            "marks",
            lambda v: _in_tld(v, "oeac", "\u043e\u0435\u0430\u0441"),
            "Cyrillic letter in the top-level domain",
        ),
        (
            "marks",
            lambda v: _in_tld(v, "oe", "\u03bf\u03b5"),
            "Greek letter in the top-level domain",
        ),
        ("marks", lambda v: "\u202e" + v + "\u202c", "bidi controls"),
        ("invisible", lambda v: v.replace("@", "\u034f@\u034f"), "U+034F around @"),
        (
            "invisible",
            lambda v: v.replace("@", "\ufe0f@").replace(".", ".\u2800"),
            "variation selector, braille blank",
        ),
        ("invisible", lambda v: v.replace(".", "\u3164."), "Hangul filler"),
        ("glued", lambda v: v, "glued to a word"),
    ]


def _stretch() -> list[Case]:
    out = []
    for entity, values in _VALUES.items():
        value = values[0]
        compact = value.replace(" ", "")
        forms = [
            ("base64", base64.b64encode(compact.encode()).decode()),
            ("hex", compact.encode().hex()),
            ("reversed", compact[::-1]),
            ("spelled", " ".join(_WORDS[int(c)] if c.isdigit() else c for c in compact)),
        ]
        for family, form in forms:
            text, spans = _place(_TEMPLATES[entity], form)
            out.append(Case(family, entity, text, spans, family))
    return out


def corpus(*, stretch: bool = False) -> list[Case]:
    """Every case (with ``stretch``, the stretch families too)."""
    out: list[Case] = []
    for family, entity, transform, how in _entity_value_transforms():
        for value in _VALUES[entity]:
            template = _TEMPLATES[entity]
            if family == "glued":
                template = template.replace("{}", ("ref" if "no sep" in how else "x") + "{}")
            text, spans = _place(template, transform(value))
            out.append(Case(family, entity, text, spans, how))
    for family, transform, how in _email_transforms():
        for value in EMAILS:
            template = _TEMPLATES["EMAIL_ADDRESS"]
            if family == "glued":
                template = template.replace("{}", "contact{}")
            text, spans = _place(template, transform(value))
            out.append(Case(family, "EMAIL_ADDRESS", text, spans, how))
    # Contiguous SSNs where the context says SSN.
    for value in SSNS:
        digits = value.replace("-", "")
        for template in [
            "SSN: {}",
            "social security number (no dashes) {} on file",
            "Her SSN, as she gave it to us on the phone, is {}.",
        ]:
            text, spans = _place(template, digits)
            out.append(Case("separators", "US_SSN", text, spans, "contiguous, SSN context"))
    if stretch:
        out += _stretch()
    return out


def value_positions(case: Case) -> list[int]:
    """The letters and digits of the value (not of a tag around it)."""
    tags = {i for m in _TAG.finditer(case.text) for i in range(m.start(), m.end())}
    return [
        i for s, e in case.spans for i in range(s, e) if case.text[i].isalnum() and i not in tags
    ]


def caught(findings: object, case: Case) -> bool:
    """Whether every letter and digit of the value is covered by a repair or block."""
    covered: set[int] = set()
    for f in findings:  # type: ignore[attr-defined]
        if str(f.action) != "flag":
            covered.update(range(f.start, f.end))
    return all(i in covered for i in value_positions(case))


_TAG = re.compile(r"</?[A-Za-z]+>")
