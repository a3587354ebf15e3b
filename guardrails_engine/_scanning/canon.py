"""The canonical view that detection runs on, with a map back to the original.

Model output and adversarial prompts disguise values: a zero-width character
inside an e-mail address, full-width digits in a card number, non-breaking
spaces in a phone number.  Detection (``pii`` and ``content``) runs on a
canonical view of the text:

* format characters (Unicode category Cf: zero-width spaces and joiners,
  word joiner, soft hyphen, byte-order mark, bidi controls) are removed;
* every other space separator (no-break, figure, thin, ideographic, ...) and
  the line and paragraph separators become a plain space;
* everything else is NFKC-normalised, one character at a time (full-width
  digits become ASCII digits, ligatures are spelled out);
* JSON string escapes are read as the character they stand for (``\\n``,
  ``\\t``, ``\\"``, ``\\u0040``, ...): in a JSON answer, a card number after
  ``\\n`` starts a word, and an address written ``bob\\u0040example.com`` is
  an address.  A repair then covers the whole escape, so it never breaks one.

Each character (or escape) is canonicalised on its own, so the view of a text
is the concatenation of the views of its chunks, whatever the chunking (an
escape cut by a chunk boundary waits for the next chunk).  A
:class:`OffsetMap` turns canonical offsets back into offsets of the original,
so findings and repairs cover the original characters, disguise included.
"""

from __future__ import annotations

import html.entities
import re
import unicodedata
from bisect import bisect_right
from typing import NamedTuple

__all__ = ["OffsetMap", "canonical", "has_escape"]


# Letters of other scripts that look like Latin ones (Unicode's confusables
# of the Latin alphabet among Cyrillic and Greek letters): a Cyrillic o
# (U+043E) in the top-level domain "com" reads as a Latin o.
_CONFUSABLE = dict(
    zip(
        "аАвВеЕһНіІјЈкКмМоОрРсСтТуУхХѕЅԁԛԝӏүҮɡѵ"
        "αΑβΒεΕζΖηΗιΙκΚμΜνΝοΟρΡτΤυΥχΧωϲϳ"
        "\u0131\u0251\u0269\u0585\u0578\u057d\u0570",
        "aABBeEhHiIjJkKmMoOpPcCTTyYxXsSdqwlyYgvaABBeEZZnHiIkKuMvNoOpPtTuYxXwcjiaiounh",
        strict=True,
    )
)

# Characters that render as nothing (or as a blank) but are not format
# characters: Hangul fillers, the braille blank.
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800")

# Dashes that are not in the dash punctuation category (minus signs, the
# prolonged sound mark, box-drawing lines, the swung dash).
_DASHES = frozenset(
    "\u2212\u2796\u02d7\u2043\ufe63\uff0d\u30fc\uff70\u2500\u2501\u2053\u23af\u2e3a\u2e3b"
)
# Dots that are not the full stop: middle dots, bullets, ideographic full stops.
_DOTS = frozenset("\u00b7\u2022\u2219\u22c5\u30fb\uff65\u3002\uff61\u2027\u0387")
# Control characters that are whitespace (the others are removed).
_CONTROL_SPACE = frozenset("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85")


class _Table(dict[int, str]):
    """``str.translate`` table, filled on demand."""

    def __missing__(self, code: int) -> str:
        rep = self[code] = _view(chr(code))
        return rep


def _view(ch: str) -> str:
    """The canonical view of one character."""
    cat = unicodedata.category(ch)
    if cat in ("Cf", "Mn", "Me") or ch in _BLANKS:
        return ""  # invisible: format characters, combining marks, fillers
    if cat == "Cc":
        return ch if ch in _CONTROL_SPACE else ""
    if ch in _DOTS:
        return "."
    if cat in ("Zs", "Zl", "Zp"):
        return " "
    if cat == "Nd":
        return str(unicodedata.decimal(ch))  # Arabic-Indic, Devanagari, ... digits
    if cat == "Pd" or ch in _DASHES:
        return "-"
    if ch in _CONFUSABLE:
        return _CONFUSABLE[ch]
    rep = unicodedata.normalize("NFKC", ch)
    if rep == ch:
        return rep
    # What NFKC made may itself need the rules above (a circled digit, a
    # full-width dash, a compatibility character with a combining mark).
    return "".join(c if c.isascii() else _view(c) for c in rep)


_TABLE = _Table()


# What a renderer undoes, read as the text it shows; each is one token of the view, like a
# character: JSON string escapes, HTML character references (numeric, and named ones with
# their semicolon), percent escapes of printable ASCII (``%40`` is "@"; ``%20`` stays as it
# is), markdown backslash escapes and LaTeX spacing commands, HTML tags (with attributes) and
# comments, text that a bidi override or ``<bdo dir=rtl>`` shows reversed, and emphasis
# markers inside a word.  Every token is bounded (``_SPAN``), so what the view keeps back at
# the end of a chunk is too (``_TAIL``).
_SPAN = 128
_TAIL = 3 * _SPAN
# LaTeX spacing commands (before the JSON escapes: ``\thinspace`` is not a tab).
_LATEX = (
    "qquad",
    "quad",
    "enspace",
    "thinspace",
    "thickspace",
    "medspace",
    "negthinspace",
    "space",
)
_BDO_OPEN = (
    r"<(?i:bdo)[ \t\n]{1,3}(?i:dir)[ \t]{0,3}=[ \t]{0,3}(?P<q>[\"']?)(?i:rtl)(?P=q)[ \t]{0,3}>"
)
_COMMENT_CHAR = r"(?:(?!-->|<!--)[\s\S])"
# Attributes: a quoted value may hold a ">" (``title="a>b"``); each unit is atomic, so
# the match is linear.  A tag longer than ``_MAX_TAG`` is not read (it stays as written).
_ATTRS = rf"""(?>[^<>"']|"[^"<]{{0,{_SPAN}}}"|'[^'<]{{0,{_SPAN}}}'){{0,{_SPAN}}}"""
_OPEN_QUOTE = rf"""(?:"[^"<]{{0,{_SPAN}}}|'[^'<]{{0,{_SPAN}}})"""  # (a value not yet closed)
_MAX_TAG = _SPAN + 64
# An element that CSS or the ``hidden`` attribute hides, holding up to ``_HIDDEN`` characters
# of text and no tag: ``jdoe<span style="display:none">xyz</span>@example.com``.
_HIDDEN = 64
_HIDES = (
    r"(?i:(?:display[ \t]{0,3}:[ \t]{0,3}none|visibility[ \t]{0,3}:[ \t]{0,3}hidden"
    r"|font-size[ \t]{0,3}:[ \t]{0,3}0(?![0-9.]*[1-9])|(?<=[ \t\n])hidden(?=[ \t\n/>=])))"
)
_HIDDEN_OPEN = (
    rf"<(?P<h_name>[A-Za-z][A-Za-z0-9\-]{{0,30}})(?=[ \t\n][^<>]{{0,{_SPAN}}}?{_HIDES})"
    rf"[ \t\n]{_ATTRS}>"
)
# A token read two ways (a hidden element, a tag whose attributes may hold a value) is
# followed by a window of what comes after it: up to ``_WINDOW`` characters that are not
# markup, at most ``_MAX_WINDOW`` in all, not past a line break.
_WINDOW = 32
_MAX_WINDOW = 2 * _SPAN
# A ``$`` that opens LaTeX math around a number written with spacing commands
# (``$415\,555\,0132$``): a space, so the number starts a word (a ``$`` before digits
# otherwise reads as an amount).
_MATH_OPEN = rf"\$(?=[0-9+().\-]{{1,8}}\\(?:[,;:! ]|{'|'.join(_LATEX)}))"
_ESCAPE = re.compile(
    rf"(?P<math>{_MATH_OPEN})"
    rf"|(?P<latex>\\(?:{'|'.join(_LATEX)}))"
    r"|(?P<json>\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a pair
    r'|u[0-9a-fA-F]{4}|["\\/bfnrt]))'
    r"|(?P<md>\\[!-/:-@\[-`{-~ ])"
    r"|(?P<entity>&(?:#[0-9]{1,7};?|#[xX][0-9a-fA-F]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};))"
    r"|(?P<percent>%(?:[2-6][0-9a-fA-F]|7[0-9a-eA-E]))"
    rf"|(?P<comment><!--{_COMMENT_CHAR}{{0,{_SPAN}}}-->)"
    rf"|(?P<bdo>{_BDO_OPEN})"
    rf"|(?P<hidden>{_HIDDEN_OPEN}(?P<h_text>[^<\n]{{0,{_HIDDEN}}})</(?P=h_name)[ \t]{{0,3}}>)"
    rf"|(?P<tag></?[A-Za-z][A-Za-z0-9\-]{{0,30}}(?:[ \t\n]{_ATTRS})?/?>)"
    r"|(?P<rlo>\u202e)"
    r"|(?P<emphasis>\*{1,3}|~~|`{1,2})"
)


def _prefixes(word: str) -> str:
    """A pattern for the proper prefixes of ``word`` (empty included)."""
    out = ""
    for ch in reversed(word[:-1]):
        out = f"(?:{re.escape(ch)}{out})?"
    return out


# The end of a text that may be the start of a token, or a token that more text may change.
_OPEN_ESCAPE = re.compile(
    r"(?:\\u[dD][89abAB][0-9a-fA-F]{2}(?:\\(?:u[0-9a-fA-F]{0,3})?)?"  # half a pair
    rf"|\\(?:u[0-9a-fA-F]{{0,3}}|{'|'.join(_prefixes(w) for w in _LATEX)})"
    r"|&(?:#[0-9]{0,7}|#[xX][0-9a-fA-F]{0,6}|[A-Za-z][A-Za-z0-9]{0,31})?"
    r"|%[2-7]?"
    rf"|<!(?:-(?:-{_COMMENT_CHAR}{{0,{_SPAN}}}-{{0,2}})?)?"
    rf"|{_BDO_OPEN}[^<\n]{{0,{_SPAN}}}(?:<(?:/(?:[bB](?:[dD](?:[oO][ \t]{{0,3}})?)?)?)?)?"
    rf"|</?(?:[A-Za-z][A-Za-z0-9\-]{{0,30}}(?:[ \t\n]{_ATTRS}{_OPEN_QUOTE}?)?/?)?"
    rf"|\$[0-9+().\-]{{0,8}}(?:\\(?:{'|'.join(_prefixes(w) for w in _LATEX)}))?"
    rf"|\u202e[^\u202c\u202e\n]{{0,{_SPAN}}}"
    rf"|{_HIDDEN_OPEN.replace('?P<h_name>', '')}[^<\n]{{0,{_HIDDEN}}}"
    r"(?:<(?:/(?:[A-Za-z0-9\-]{0,31}[ \t]{0,3})?)?)?"
    r"|\*{1,3}|~{1,2}|`{1,2}"
    r")\Z"
)
# HTML elements whose tags a renderer shows as nothing, the text around them joined: the
# phrasing content of the HTML standard that holds text (and obsolete inline ones), and
# custom elements (a name with a hyphen).
_INLINE_TAGS = frozenset(
    """a abbr b bdi bdo cite code data del dfn em i ins kbd label map mark q rp rt ruby s samp
    slot small span strong sub sup time u var wbr font big tt nobr strike acronym blink
    link meta template noscript output""".split()
)
# Tags that break a line or a block, or show something (an image, a control): a space.
_BLOCK_TAGS = frozenset(
    """br p div li ul ol dl dt dd tr td th table thead tbody tfoot caption hr h1 h2 h3 h4 h5
    h6 pre blockquote section article aside header footer nav main figure figcaption address
    details summary center img input button select textarea embed iframe object video audio
    canvas svg math picture progress meter area""".split()
)
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# Markdown escapes that are LaTeX spacing commands in math (``\,`` a thin space) read as a
# space (``\!``, a negative space, as nothing); the others as the character they escape.
_MD_SPACING = {",": " ", ";": " ", ":": " ", " ": " ", "!": ""}
_MARKERS = frozenset("*~`")


class _Dual(NamedTuple):
    """A token read two ways: as shown (then the window after it), and, on the next line,
    as written (then the window again, which what follows continues)."""

    shown: str
    written: str


def _tag(token: str) -> str | _Dual | None:
    """The view of an HTML tag: nothing (inline), a space (block), or None (not read: an
    unknown element).  A tag whose attributes may hold a value is read both ways: as shown,
    and as written (so the value in ``<a href="mailto:...">`` is still found)."""
    name, _, attrs = token.strip("<>").lstrip("/").partition(" ")
    if not attrs:
        name, _, attrs = name.partition("\t") if "\t" in name else name.partition("\n")
    name = name.rstrip("/").lower()
    if name in _INLINE_TAGS or "-" in name:
        shown = ""
    elif name in _BLOCK_TAGS:
        shown = " "
    else:
        return None
    if attrs and (
        "@" in attrs or any(c in attrs for c in "&%\\") or sum(c.isdigit() for c in attrs) > 3
    ):
        return _Dual(shown, "<" + canonical(token[1:]))
    return shown


# What opens and closes a level inside a bidi run: ``<bdo dir=rtl|ltr>``, ``</bdo>``, the
# overrides U+202E (right to left) and U+202D (left to right), and U+202C.
_BIDI_MARK = re.compile(
    r"<(?i:bdo)[ \t\n]{1,3}(?i:dir)[ \t]{0,3}=[ \t]{0,3}([\"']?)(?i:(?P<dir>rtl|ltr))\1[ \t]{0,3}>"
    r"|(?P<close></(?i:bdo)[ \t]{0,3}>|\u202c)|(?P<rlo>\u202e)|(?P<lro>\u202d)"
)
_MAX_RUN = 2 * _SPAN


def _overrides_never_close(window: str) -> bool:
    """Whether an override run (U+202E, U+202D) opened just before ``window``, its text
    up to ``_MAX_RUN``, cannot end in it: no line break, no tag, and no U+202C at which
    the closes so far outnumber the overrides opened inside it.  Counted with ``str``
    methods, so a flood of overrides (each the opener of a run that is not one) costs
    a few scans of the window each, not a pass of the pattern at every character."""
    if "\n" in window or "<" in window:
        return False
    closes = 0
    at = 0
    opened = 0
    p = window.find("\u202c")
    while p >= 0:
        opened += window.count("\u202e", at, p) + window.count("\u202d", at, p)
        closes += 1
        if closes > opened:
            return False  # every level it opened is closed here: the run ends
        at = p + 1
        p = window.find("\u202c", at)
    return True


def _bidi_run(
    chunk: str, s: int, e: int, limit: int, last: bool, only: str = ""
) -> tuple[int, str] | None:
    """A bidi run opened at ``s`` (its opener ends at ``e``): its end and its view (in the
    order it is shown, then, on a line of its own, in the order it is written); ``(e, "")``
    if it is not one (no end within ``_MAX_RUN``), None if the text up to ``limit`` does
    not settle it yet.  ``only``: "shown" or "written" for that reading alone.

    Levels nest as the bidi algorithm's do: an override inside a right-to-left run (another
    ``<bdo>``, U+202E, U+202D) opens the next odd (right to left) or even level, its close
    (``</bdo>``, U+202C) the level it opened; a line break or the end of the text ends
    every level of an override (U+202E), and a ``<bdo>`` must be closed.
    """
    html = chunk[s] == "<"
    if not html and e + _MAX_RUN < limit and _overrides_never_close(chunk[e : e + _MAX_RUN + 1]):
        return e, ""  # (the same answer as the walk below, without its cost per character)
    levels = [1]
    pieces: list[tuple[str, int]] = []
    q = at = e
    while True:
        if q - e > _MAX_RUN:
            return e, ""
        if q >= limit:
            if not last:
                return None
            if html:
                return e, ""
            end = q
            break
        if chunk[q] == "\n":
            if html:
                return e, ""
            end = q
            break
        m = _BIDI_MARK.match(chunk, q)
        if m is None:
            q += 1
            continue
        if m.end() > limit:
            return None
        pieces.append((chunk[at:q], levels[-1]))
        q = at = m.end()
        if m.group("close") is not None:
            levels.pop()
            if not levels:
                end = q
                break
        else:
            rtl = m.group("rlo") is not None or (m.group("dir") or "").lower() == "rtl"
            top = levels[-1]
            levels.append(top + 1 if (top % 2 == 0) == rtl else top + 2)
    pieces.append((chunk[at:end], levels[-1] if levels else 1))
    chars: list[tuple[str, int]] = []
    for text, level in pieces:
        chars.extend((ch, level) for ch in canonical(text))
    written = "".join(ch for ch, _ in chars)
    for level in range(max((lv for _, lv in chars), default=0), 0, -1):
        k = 0
        while k < len(chars):  # reverse every run at this level or higher
            if chars[k][1] < level:
                k += 1
                continue
            j = k
            while j < len(chars) and chars[j][1] >= level:
                j += 1
            chars[k:j] = chars[k:j][::-1]
            k = j
    shown = "".join(ch for ch, _ in chars)
    if only:
        return end, (shown if only == "shown" else written)
    return end, (written if shown == written else f"{shown}\n{written}")


def _window(chunk: str, start: int, limit: int, last: bool) -> tuple[int | None, int]:
    """The end of the window after a token read two ways (``start``: the token's end), or
    None if the text up to ``limit`` (what may be read) does not settle it yet, and then how
    many characters at least must come before it may (short of a line break)."""
    q, seen, bound = start, 0, start + _MAX_WINDOW
    while True:
        m = _ESCAPE.search(chunk, q)  # the next markup (or what may be): whole, one unit
        token = limit if m is None or m.start() >= limit else m.start()
        # Text up to it, a character a unit, to a line break or a bound.
        to = min(token, bound, q + _WINDOW - seen)
        line = chunk.find("\n", q, to)
        if line >= 0:
            return line, 0
        seen, q = seen + to - q, to
        if q >= bound or seen >= _WINDOW:
            return q, 0
        if q >= limit:
            return (q, 0) if last else (None, min(_WINDOW - seen, bound - q))
        assert m is not None
        if m.end() > limit:
            return None, 1
        q, seen = m.end(), seen + 1


def _two_ways(dual: _Dual, window: str, end: int) -> tuple[str, list[int]]:
    """The view of a token read two ways followed by ``window`` (the token ends at ``end``,
    from its start), and the end of what each character of it stands for."""
    views: list[str] = []
    ends: list[int] = []
    for reading, first in (("shown", dual.shown), ("written", dual.written)):
        sub = OffsetMap(flat=reading)
        after = sub.add(window, last=True)
        views.append(first + after)
        ends += [end] * len(first) + [end + e for e in sub.char_ends()]
    return "\n".join(views), [*ends[: len(views[0])], end, *ends[len(views[0]) :]]


def _decoded(m: re.Match[str], prev: str, after: str) -> str | _Dual | None:
    """The canonical view of one token, or None if it stands for nothing (an unknown
    entity name, a percent escape of a space, markers that do not mark emphasis).
    ``prev`` and ``after``: the characters around it ("" at the ends of the text)."""
    kind, token = m.lastgroup, m.group()
    if kind == "emphasis":
        # Inside a word (a letter or digit on one side, no space on either): a marker.
        if not prev or not after or prev in _MARKERS or after in _MARKERS:
            return None
        if prev.isspace() or after.isspace() or not (prev.isalnum() or after.isalnum()):
            return None
        return ""
    if kind == "tag":
        return _tag(token) if len(token) <= _MAX_TAG else None
    if kind == "hidden":
        # Shown: nothing.  Written: what it holds (a program that drops tags reads it).
        return _Dual("", canonical(m.group("h_text")))
    if kind == "math":
        return " "
    if kind == "comment":
        return ""
    if kind in ("bdo", "rlo"):
        return ""  # an opener without its run (see _bidi_run): a tag, a format character
    if kind == "latex":
        return "" if token == "\\negthinspace" else " "
    if kind == "md":
        ch = token[1]
        return _MD_SPACING[ch] if ch in _MD_SPACING else _TABLE[ord(ch)]
    if kind == "percent":
        code = int(token[1:], 16)
        return None if code == 0x20 else _TABLE[code]
    if kind == "entity":
        if token[1] == "#":
            digits = token[2:].rstrip(";")
            code = int(digits[1:], 16) if digits[:1] in ("x", "X") else int(digits)
            if code > 0x10FFFF:
                return None
        else:
            named = html.entities.html5.get(token[1:])
            return None if named is None else "".join(_TABLE[ord(c)] for c in named)
    elif token[1] != "u":
        return _TABLE[ord(_SIMPLE[token[1]])]
    elif len(token) == 12:  # a surrogate pair, as JSON writes a character past U+FFFF
        code = 0x10000 + ((int(token[2:6], 16) - 0xD800) << 10) + int(token[8:], 16) - 0xDC00
    else:
        code = int(token[2:], 16)
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"  # half a surrogate pair: not a character on its own
    return _TABLE[code]


def _open_at(chunk: str, start: int) -> int:
    """Where the end of ``chunk`` (from ``start``) may be an unfinished token; else its length."""
    lo = max(start, len(chunk) - _TAIL)
    if not has_escape(chunk[lo:]):
        return len(chunk)
    m = _OPEN_ESCAPE.search(chunk, lo)
    return len(chunk) if m is None else m.start()


# ASCII control characters that are not whitespace: removed from the view.
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")


def _plain_ascii(text: str) -> bool:
    """Whether ``text`` is its own view: ASCII without a control character."""
    return text.isascii() and _ASCII_CONTROL.search(text) is None


_TOKEN_CHARS = frozenset("\\&%<*~`\u202e$")


def has_escape(text: str) -> bool:
    """Whether ``text`` may hold a token a renderer undoes (an escape, a tag, markdown, LaTeX
    and its math ``$``, a bidi override)."""
    if len(text) < 64:  # (a chunk: one pass)
        return not _TOKEN_CHARS.isdisjoint(text)
    return (
        "\\" in text
        or "&" in text
        or "%" in text
        or "<" in text
        or "*" in text
        or "~" in text
        or "`" in text
        or "\u202e" in text
        or "$" in text
    )


def canonical(text: str) -> str:
    """The canonical view of ``text``."""
    if has_escape(text):
        m = OffsetMap()
        return m.add(text) + m.flush()
    if _plain_ascii(text):
        return text
    return text.translate(_TABLE)


class OffsetMap:
    """Canonical offsets to original offsets, built chunk by chunk.

    The map is piecewise linear: between breaks, canonical and original
    advance together.  Only removed or expanded characters add breaks, so an
    undisguised text has none and maps by identity.
    """

    __slots__ = (
        "_canon",
        "_ends",
        "_flat",
        "_held",
        "_orig",
        "_prev",
        "_wait",
        "_wake",
        "canon_end",
        "orig_end",
    )

    def __init__(self, *, flat: str = "") -> None:
        # Flat, "shown" or "written" (the view of a window): a token read two ways, and a
        # bidi run, are read that one way, so that windows never nest and the view of a text
        # stays linear in its length.
        self._flat = flat
        self._canon: list[int] = [0]
        self._orig: list[int] = [0]
        self.canon_end = 0
        self.orig_end = 0
        # The original end of each canonical character that an escape became.
        self._ends: dict[int, int] = {}
        self._held = ""  # the end of the last chunk, if it may start an escape
        # A token kept back until more text settles it is not read again before what is
        # kept back is ``_wait`` long, unless a chunk brings one of ``_wake``.
        self._wait = 0
        self._wake = ""
        self._prev = ""  # the original character before what is kept back

    @property
    def identity(self) -> bool:
        return len(self._canon) == 1 and self._orig[0] == 0

    def add(self, chunk: str, *, last: bool = False) -> str:
        """Append an original chunk; return its canonical view.

        A chunk that ends in what may be the start of a token (or a token that
        more text may change) keeps it back until the next chunk (or
        :meth:`flush`) says what it is; with ``last`` nothing more comes.
        """
        if self._held:
            if (
                len(self._held) + len(chunk) < self._wait
                and not last
                and not any(c in chunk for c in self._wake)
            ):
                self._held += chunk
                return ""
            chunk = self._held + chunk
            self._held = ""
        self._wait = 0
        if not chunk:
            return ""
        if not has_escape(chunk):
            self._prev = chunk[-1]
            return self._plain(chunk)
        n = len(chunk)
        hold = n if last else _open_at(chunk, 0)
        out: list[str] = []
        pos = at = 0  # where to search next; the start of what is not yet read
        while pos < hold:
            m = _ESCAPE.search(chunk, pos)
            if m is None or m.start() >= hold:
                break
            s, e = m.span()
            rep = _decoded(m, chunk[s - 1] if s else self._prev, chunk[e : e + 1])
            ends: list[int] | None = None
            if self._flat and isinstance(rep, _Dual):
                rep = rep.shown if self._flat == "shown" else rep.written
            elif m.lastgroup in ("bdo", "rlo"):
                run = _bidi_run(chunk, s, e, n if last else hold, last, self._flat)
                if run is None:  # not closed yet: keep the opener back
                    if hold == n:
                        self._wait, self._wake = e - s + _MAX_RUN + 2, "\n<\u202c\u202d\u202e"
                    hold = s
                    break
                if run[0] > e:
                    e, rep = run
            if isinstance(rep, _Dual):
                stop, more = _window(chunk, e, n if last else hold, last)
                if stop is None:  # what follows is not settled yet: keep the token back
                    if hold == n:  # (at least 48 more: a window is read a few times at most)
                        more = min(max(48, more), _MAX_WINDOW + 1 - (n - e))
                        self._wait, self._wake = n - s + max(1, more), "\n"
                    hold = s
                    break
                rep, ends = _two_ways(rep, chunk[e:stop], e - s)
                e = stop
            if rep is None:
                # Not a token after all: plain text (a token may start inside; not in a
                # run of markers, whose every later start follows a marker).
                pos = e if m.lastgroup == "emphasis" else s + 1
                continue
            if s > at:
                out.append(self._plain(chunk[at:s]))
            c, o, k = self.canon_end, self.orig_end, len(rep)
            for j in range(k):
                self._break(c + j, o)
            self._break(c + k, o + (e - s))
            for j in range(k):
                self._ends[c + j] = o + (e - s if ends is None else ends[j])
            self.canon_end, self.orig_end = c + k, o + (e - s)
            out.append(rep)
            pos = at = e
            if hold < e:  # (an open token inside the one just read)
                hold = _open_at(chunk, e)
        if hold > at:
            out.append(self._plain(chunk[at:hold]))
        self._held = chunk[hold:]
        if hold:
            self._prev = chunk[hold - 1]
        return "".join(out)

    @property
    def pending(self) -> int:
        """How many original characters are kept back (the start of a token)."""
        return len(self._held)

    def flush(self) -> str:
        """The text is complete: the canonical view of what was kept back."""
        held, self._held = self._held, ""
        return self.add(held, last=True) if held else ""

    def _plain(self, chunk: str) -> str:
        """Append text without escapes; return its canonical view."""
        if _plain_ascii(chunk):
            self.canon_end += len(chunk)
            self.orig_end += len(chunk)
            return chunk
        out = chunk.translate(_TABLE)
        if len(out) == len(chunk) and all(len(_TABLE[ord(ch)]) == 1 for ch in chunk):
            self.canon_end += len(out)
            self.orig_end += len(chunk)
            return out
        c, o = self.canon_end, self.orig_end
        for ch in chunk:
            rep = _TABLE[ord(ch)]
            n = len(rep)
            if n == 1:
                c += 1
            elif n == 0:
                self._break(c, o + 1)
            else:
                for k in range(n):
                    self._break(c + k, o)
                c += n
                self._break(c, o + 1)
            o += 1
        self.canon_end, self.orig_end = c, o
        return out

    def _break(self, c: int, o: int) -> None:
        if self._canon[-1] == c:
            self._orig[-1] = o
        else:
            self._canon.append(c)
            self._orig.append(o)

    def to_orig(self, c: int) -> int:
        """The original offset of canonical offset ``c`` (a start)."""
        if c >= self.canon_end:
            return self.orig_end + (c - self.canon_end)
        k = bisect_right(self._canon, c) - 1
        return self._orig[k] + (c - self._canon[k])

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the canonical span ``[start, end)``."""
        if end <= start:
            s = self.to_orig(start)
            return s, s
        last = self._ends.get(end - 1) if self._ends else None
        return self.to_orig(start), (self.to_orig(end - 1) + 1 if last is None else last)

    def char_ends(self) -> list[int]:
        """The original end of each canonical character (``span(c, c + 1)[1]``, in one pass)."""
        out: list[int] = []
        bounds = [*self._canon[1:], self.canon_end]
        for k, stop in enumerate(bounds):
            base = self._orig[k] - self._canon[k] + 1
            out.extend(self._ends.get(c, base + c) for c in range(self._canon[k], stop))
        return out

    def forget_before(self, c: int) -> None:
        """Drop breaks no longer needed for offsets at or after ``c``."""
        k = bisect_right(self._canon, c) - 1
        if k > 64:
            del self._canon[:k]
            del self._orig[:k]
        if len(self._ends) > 64:
            self._ends = {i: e for i, e in self._ends.items() if i >= c}
