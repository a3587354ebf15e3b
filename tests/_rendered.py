"""A corpus of values disguised by what a renderer undoes, and of encoded values.

Shared by benchmarks/evasion.py (ours against raw presidio) and tests/test_rendered.py.
Same ``Case`` as tests/_disguised.py; all values are synthetic.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Callable

from _disguised import _TEMPLATES, _VALUES, Case, _groups, _place

#: The families of what a renderer undoes (on by default: the canonical view, and the
#: words family for the spacing of the "@").
RENDERED = (
    "html-attributes",
    "html-comments",
    "css-hidden",
    "inline-tags",
    "markdown-escapes",
    "emphasis-in-word",
    "bidi-display",
    "bdo",
    "latex",
    "at-spacing",
)
#: The opt-in ``encodings`` family.
ENCODED = ("base64", "hex", "percent-twice")

_INLINE = ["wbr", "a", "bdi", "nobr", "dfn", "time", "data", "ruby", "small", "label"]


def _tagged(name: str) -> Callable[[str], str]:
    if name == "wbr":
        return lambda g: g + "<wbr>"
    return lambda g: f"<{name}>{g}</{name}>"


def _number_forms() -> list[tuple[str, Callable[[str], str], str]]:
    out: list[tuple[str, Callable[[str], str], str]] = [
        ("html-attributes", lambda v: '<span class="n">'.join(_groups(v)), "span with a class"),
        ("html-attributes", lambda v: "<font color=red>".join(_groups(v)), "font with a color"),
        ("html-attributes", lambda v: "<i title='a>b'>".join(_groups(v)), "> in an attribute"),
        ("html-attributes", lambda v: "<i title='2024'>".join(_groups(v)), "digits in a title"),
        (
            "css-hidden",
            lambda v: '<span style="display:none">0</span>'.join(_groups(v)),
            "a hidden digit between groups",
        ),
        ("css-hidden", lambda v: "<b hidden>99</b>".join(_groups(v)), "hidden attribute"),
        ("html-comments", lambda v: "<!-- -->".join(_groups(v)), "empty comments"),
        ("html-comments", lambda v: "<!-- x -->".join(_groups(v)), "comments"),
        ("markdown-escapes", lambda v: "\\-".join(_groups(v)), "escaped dashes"),
        ("emphasis-in-word", lambda v: "".join(f"*{g}*" for g in _groups(v)), "italic groups"),
        ("emphasis-in-word", lambda v: "~~".join(_groups(v)), "strikethrough markers"),
        ("bidi-display", lambda v: "\u202e" + v[::-1] + "\u202c", "reversed in an override"),
        ("bdo", lambda v: "<bdo dir=rtl>" + v[::-1] + "</bdo>", "reversed in <bdo>"),
        (
            "bdo",
            lambda v: (
                "\u202e"
                + v[len(v) // 2 :][::-1]
                + "<bdo dir=ltr><b>"
                + v[: len(v) // 2]
                + "</b></bdo>\u202c"
            ),
            "an ltr <bdo> holding a tag in an override",
        ),
        ("latex", lambda v: "$" + "\\,".join(_groups(v)) + "$", "thin spaces"),
        ("latex", lambda v: "$" + "\\;".join(_groups(v)) + "$", "thick spaces"),
        ("latex", lambda v: "$" + "\\!".join(_groups(v)) + "$", "negative spaces"),
    ]
    for name in _INLINE:
        out.append(
            ("inline-tags", lambda v, n=name: "".join(map(_tagged(n), _groups(v))), f"<{name}>")
        )
    return out


def _email_forms() -> list[tuple[str, Callable[[str], str], str]]:
    out: list[tuple[str, Callable[[str], str], str]] = [
        ("html-attributes", lambda v: v.replace("@", '<span class="x">@</span>'), "span"),
        ("html-attributes", lambda v: v.replace("@", "<a href='#'>@</a>"), "link"),
        (
            "html-attributes",
            lambda v: v.replace("@", '<span title="a>b">@</span>'),
            "> in an attribute",
        ),
        ("html-attributes", lambda v: v.replace("@", "<a href='x@y'>@</a>"), "@ in an href"),
        (
            "css-hidden",
            lambda v: v.replace("@", '<span style="display:none">xyz</span>@'),
            "hidden letters before the @",
        ),
        (
            "css-hidden",
            lambda v: v.replace(".", "<i style='visibility:hidden'>!! </i>.", 1),
            "hidden text and a space in the name",
        ),
        ("html-comments", lambda v: v.replace("@", "<!-- -->@<!---->"), "comments"),
        ("markdown-escapes", lambda v: v.replace("@", "\\@").replace(".", "\\."), "\\@ \\."),
        ("emphasis-in-word", lambda v: v[:-6] + "**" + v[-6:-4] + "**" + v[-4:], "bold"),
        ("emphasis-in-word", lambda v: v[:2] + "*" + v[2:4] + "*" + v[4:], "italic"),
        ("bidi-display", lambda v: "\u202e" + v[::-1] + "\u202c", "reversed in an override"),
        ("bdo", lambda v: '<bdo dir="rtl">' + v[::-1] + "</bdo>", "reversed in <bdo>"),
        (
            "bdo",
            lambda v: (
                "<bdo dir=rtl>"
                + ("@" + v.split("@")[1])[::-1]
                + "<bdo dir=ltr>"
                + v.split("@")[0]
                + "</bdo></bdo>"
            ),
            "nested <bdo>",
        ),
        ("at-spacing", lambda v: v.replace("@", "@ "), "@ then a space"),
        ("at-spacing", lambda v: v.replace("@", " @"), "a space then @"),
        ("at-spacing", lambda v: v.replace("@", "@\n"), "@ then a line break"),
    ]
    for name in _INLINE:
        out.append(("inline-tags", lambda v, n=name: v.replace("@", _tagged(n)("@")), f"<{name}>"))
    return out


def _encoded_forms() -> list[tuple[str, Callable[[str], str], str]]:
    return [
        ("base64", lambda v: base64.b64encode(v.encode()).decode(), "base64"),
        ("base64", lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("="), "url"),
        (
            "base64",
            lambda v: base64.b64encode(f"{'x' * 1000} {v} ".encode()).decode(),
            "a run of 1,360 characters (decoded in windows)",
        ),
        ("hex", lambda v: v.encode().hex(), "hex"),
        ("hex", lambda v: v.encode().hex().upper(), "upper-case hex"),
        (
            "percent-twice",
            lambda v: urllib.parse.quote(urllib.parse.quote(v, safe=""), safe=""),
            "double percent-encoding",
        ),
    ]


def corpus() -> list[Case]:
    """Every rendered and encoded case."""
    out: list[Case] = []
    for entity, values in _VALUES.items():
        forms = _email_forms() if entity == "EMAIL_ADDRESS" else _number_forms()
        for family, transform, how in forms + _encoded_forms():
            for value in values:
                text, spans = _place(_TEMPLATES[entity], transform(value))
                out.append(Case(family, entity, text, spans, how))
    return out
