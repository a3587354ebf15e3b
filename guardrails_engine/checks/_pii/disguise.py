"""Detectors for disguised values: what presidio's patterns do not read.

The canonical view (``_scanning/canon.py``) undoes disguises of single characters:
invisible marks, other scripts' digits and look-alike letters, dashes,
HTML and percent escapes.  What is left are disguises of *structure*, which
need patterns of their own.  Each family can be turned off per pii check
(``disguises:``):

- ``separators``: a card, SSN or phone number whose groups are separated by
  anything a writer or a model may put there: dots, slashes, underscores,
  runs of spaces, tabs and line breaks, `` - ``, parentheses around groups,
  markdown (``4111**1111``, `` `4111` `1111` ``), and cards and SSNs glued
  to letters (``x4111111111111111``).  Validated as presidio validates
  (Luhn for cards, presidio's invalid SSNs, python-phonenumbers for phones).
- ``words``: e-mail addresses written ``jdoe [at] example [dot] com``,
  ``jdoe(at)example(dot)com``, with markdown around the ``@``
  (``jdoe**@**example.com``), or letter by letter
  (``j d o e @ e x a m p l e . c o m``); ``bare-words``: ``jdoe at example dot
  com``.  The address read back must be one (presidio's e-mail pattern and a
  known top-level domain).
- ``context``: a nine-digit number up to 60 characters after "SSN" or
  "social security" (presidio looks five words back).
- ``encodings`` (opt-in): a run of base64 (standard or URL-safe), hex, or a
  percent-encoding the canonical view did not undo (a double encoding:
  ``%2540`` reads ``%40`` in the view) is decoded, once, and the decoded text
  is searched with the entity's patterns and the ``separators`` family; a
  value in it makes the whole run a finding.  Bounded: runs of 12 to 1,024
  characters only, decoded text that is UTF-8 and printable only, each run
  decoded once (linear cost, nothing decompressed).

They add no finding to ordinary prose (``benchmarks/evasion.py`` measures it
on the PII-free prose corpus).
"""

from __future__ import annotations

import base64
import binascii
import functools
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import regex

from ..._scanning.hints import declare
from ..._scanning.scan import ScanMatch
from .presidio import NUMBER_SPOILER, Detector, catalog, is_ipv4

__all__ = ["FAMILIES", "detectors"]

#: The families, in the order they are documented.
FAMILIES = ("separators", "words", "bare-words", "context", "encodings")

# Between two groups of digits: a short run of what may separate them (brackets,
# quotes, markdown, a percent-escaped space included).
_SEP_CHAR = r"(?:[\s\-./_*`~()\[\]{}'\"+=#]|%20)"
_SEP = _SEP_CHAR + "{1,10}"
_SEP0 = _SEP_CHAR + "{0,10}"

_CARD = regex.compile(
    r"(?<!\d)\(?(?:4\d{3}|5[0-5]\d{2}|6\d{3}|1\d{3}|3\d{3}|2[2-7]\d{2})"
    rf"(?:{_SEP0}\d{{3,4}}){{2}}{_SEP0}\d{{3,5}}(?!\d)"
)
# The 2-series numbers a card is (Mastercard, 2221-2720, 16 digits).
_MASTERCARD_2 = regex.compile(r"(?:222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)\d{12}")
_SSN = regex.compile(rf"(?<!\d)\d{{3}}{_SEP}\d{{2}}{_SEP}\d{{4}}(?!\d)")
_SSN_CONTEXT = regex.compile(
    r"(?<=(?i:\bssn|\bss\#|\bsocial\s+security)[^\d\n]{0,60})(?<!\d)\d{9}(?!\d)"
)
# (What is between two groups, brackets included, is one atomic group: read in
# every way it can be, ``+(1) +(1) ...`` cost 1.5 ms a character to probe.)
_PHONE = regex.compile(
    r"(?:(?<![\w+$\u00a3\u20ac:.\-/])|(?<=(?<!\w)[a-z]{1,8}))(?:\+[ *`_~]{0,3})?[(\[]?\d{1,4}"
    rf"(?:(?>[)\]]?{_SEP}[(\[]?)\d{{1,5}}){{1,6}}[)\]]?(?![\w:]|[\-./]\w)"
)
# (None of them holds a letter: hints.py, tests/test_scan_hints.py.)
for _number in (_CARD, _SSN, _PHONE):
    declare(_number, spoiler=NUMBER_SPOILER)
# A number glued to the end of a short lowercase word ("ref4155550132", not the
# digits at the end of a hash or an upper-case id).
_PHONE_GLUED = regex.compile(r"(?<=(?<!\w)[a-z]{2,8})\+?\d{7,15}(?![\w:])")

_MARK = r"[*_`~]{0,4}"
_OPEN = r"[\[({<\u00ab\-_'\"]"
_CLOSE = r"[\])}>\u00bb\-_'\"]"
_AT_BRACKETED = rf"[ \t]?{_OPEN}[ \t]?(?:at|@)[ \t]?{_CLOSE}[ \t]?"
_DOT_BRACKETED = rf"[ \t]?{_OPEN}[ \t]?(?:dot|\.)[ \t]?{_CLOSE}[ \t]?"
# Written with a bracket or markdown around the "@" or a dot: one of them is in every match
# (so text without one is not searched).  No named groups: the analysis of the scanner reads
# the pattern with the standard library's parser, which knows them only once.
# Space on one side of the "@" or both (a line break included): "jdoe @example.com".
_AT_SPACE = r"(?:[ \t]+|[ \t]*\r?\n[ \t]*)"
_AT = rf"(?:{_AT_BRACKETED}|{_MARK}@@?{_MARK}|{_AT_SPACE}@@?{_AT_SPACE}?|@@?{_AT_SPACE})"
_DOT = rf"(?:{_DOT_BRACKETED}|{_MARK}\.{_MARK})"
# Written as bare words: "jdoe at example dot com".
_AT_WORD = r"[ \t]+at[ \t]+"
_DOT_WORD = r"(?:[ \t]+dot[ \t]+|\.)"


def _email_words(at: str, dot: str) -> regex.Pattern[str]:
    return regex.compile(
        rf"(?<![\w.+\-@])[\w+\-]{{1,64}}(?:{dot}[\w+\-]{{1,64}}){{0,4}}{at}"
        rf"[\w\-]{{1,63}}(?:{dot}[\w\-]{{1,63}}){{1,4}}(?![\w\-])",
        regex.IGNORECASE,
    )


_EMAIL_WORDS = _email_words(_AT, _DOT)
_EMAIL_BARE = _email_words(_AT_WORD, _DOT_WORD)
_EMAIL_SPACED = regex.compile(
    r"(?<![\w.+\-@])(?:[\w+\-][ \t]{1,3}){0,63}[\w+\-]"
    r"(?:[ \t]*\.[ \t]*(?:[\w+\-][ \t]{1,3}){0,63}[\w+\-]){0,4}[ \t]*@[ \t]*"
    r"(?:[\w\-][ \t]{1,3}){0,62}[\w\-]"
    r"(?:[ \t]*\.[ \t]*(?:[\w\-][ \t]{1,3}){0,62}[\w\-]){1,4}(?![\w\-])"
)
# What the scanner cannot read from these two patterns (``_scanning/hints.py``; checked
# by tests/test_scan_hints.py).  Every match holds an "@", or "at" between brackets.
# Whitespace in a words match always touches a bracket, a mark or an "@", never a
# letter or digit on both sides; a spaced match never has two word characters side by
# side; so neither holds two words of prose ("ur o", "r or"), nor the end of a sentence
# ("ut. ": in a words match, a dot after a letter is followed by a mark or a letter), nor
# a character neither may hold.  (One spoiler for both: the scanner asks once for the
# two.)  A word with the spaces after it may be the name of a words match in progress.
# A character no address (of either pattern) holds, and the end of a sentence.
_FOREIGN_TO_AN_ADDRESS = r"[^\w+\-.@ \t\r\n\[\](){}<>\u00ab\u00bb'\"*`~]"
_SENTENCE_END = r"[^\W_]{2}\.[ \t\r\n]"
_NOT_AN_ADDRESS = (
    r"[^\W_]{2}[ \t\r\n]+[^\W_]|[^\W_][ \t\r\n]+[^\W_]{2}"
    rf"|{_SENTENCE_END}|{_FOREIGN_TO_AN_ADDRESS}"
)
# Prose ends in a word (and the spaces after it), after a spoiler (two words and the
# space between them, the end of a sentence, a comma) and the spaces after it: the word
# may be the name of an address, nothing before it may be one.  Or it ends in such a
# spoiler and spaces: nothing may be in progress.
_ENDED = rf"{_SENTENCE_END}[ \t\r\n]*|{_FOREIGN_TO_AN_ADDRESS}[ \t\r\n]*"
_SPOILT = rf"[^\W_]{{2}}[ \t\r\n]+|[^\W_][ \t\r\n]+(?=[^\W_]{{2}})|{_ENDED}"
_TRAILING_WORD = rf"(?<={_SPOILT})(?<![\w.+\-@])[A-Za-z0-9]{{1,64}}[ \t]*\Z|(?<={_ENDED})\Z"
declare(
    _EMAIL_WORDS,
    # (No inline flags: the scanner reads the needle's own required characters.)
    needle=rf"@|{_OPEN}[ \t]?[aA][tT][ \t]?{_CLOSE}",
    spoiler=_NOT_AN_ADDRESS,
    sure=r"(?<![\w.+\-@])[A-Za-z0-9]{1,64}[ \t]*",
    settle=_TRAILING_WORD,
)
declare(_EMAIL_SPACED, needle="@", spoiler=_NOT_AN_ADDRESS, clear=_TRAILING_WORD)
# How an "@" and a dot are written, read back.
_AT_AS_WRITTEN = regex.compile(
    rf"\s*{_OPEN}\s*(?:at|@)\s*{_CLOSE}\s*|[ \t]+at[ \t]+|[*_`~]*@@?[*_`~]*|\s+@@?\s*",
    regex.IGNORECASE,
)
_SPACE = regex.compile(r"\s+")
# A dot as the words pattern writes it, in the name part of an address.
_DOT_AS_WRITTEN = regex.compile(
    rf"(?i)\s*{_OPEN}\s*(?:dot|\.)\s*{_CLOSE}\s*|[ \t]+dot[ \t]+|[*`~]*\.[*`~]*"
)

# Words that come before " at " in prose ("look at", "arrived at") or after
# it ("at this dot com boom"): never the name or domain of an address.
_PROSE = frozenset(
    """a an the this that these those it its me us you him her them my our your his their
    look looked looking arrive arrived arriving stay stayed be is are was were been am
    meet met work works worked live lives lived based here there home all once only just
    not even back right left good great best aim aimed point pointed stare stared laugh
    laughed start started end ended hit shot one two some any every each no what where job
    jobs years prices deals shopping shop stock shares career careers interview work time""".split()
)


# Encoded runs (see ``encodings``): base64 and hex runs of 12 (hex: 16) characters or more,
# whole; a run longer than ``_MAX_ENCODED`` is decoded in windows of that size (see
# ``_windows``); percent-encoded runs up to ``_MAX_ENCODED`` characters.
_MAX_ENCODED = 1024
_BASE64 = regex.compile(r"(?<![A-Za-z0-9+/\-_=])[A-Za-z0-9+/\-_]{12,}={0,2}(?![A-Za-z0-9+/\-_=])")
_HEX = regex.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){8,}(?![0-9A-Fa-f])")
# Percent escapes left in the view (a double encoding, decoded once by the view).
_PERCENT = regex.compile(
    r"(?<![\w.\-+~@%])(?=[\w.\-+~@%]{0,64}%[0-9A-Fa-f]{2})"
    rf"(?:[\w.\-+~@]|%[0-9A-Fa-f]{{2}}){{3,{_MAX_ENCODED}}}(?![\w.\-+~@%])"
)


def _windows(run: str) -> Iterator[str]:
    """The run, or, if it is longer than ``_MAX_ENCODED``, windows of that size starting at
    every multiple of half of it (a multiple of 4, so each decodes on its own): a value
    whose encoding is up to half a window long lies whole in one of them.  Each character
    is decoded twice; the work is linear in the run."""
    if len(run) <= _MAX_ENCODED:
        yield run
        return
    half = _MAX_ENCODED // 2
    for start in range(0, len(run) - half, half):
        yield run[start : start + _MAX_ENCODED]


def _printable(data: bytes) -> str | None:
    """``data`` as text, if it is UTF-8 and printable (whitespace allowed)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or not all(ch.isprintable() or ch in "\t\n\r" for ch in text):
        return None
    return text


def _from_base64(run: str) -> str | None:
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    body += "=" * (-len(body) % 4)
    try:
        if "-" in body or "_" in body:
            data = base64.urlsafe_b64decode(body)
        else:
            data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _printable(data)


def _from_hex(run: str) -> str | None:
    return _printable(bytes.fromhex(run))


def _from_percent(run: str) -> str | None:
    return _printable(urllib.parse.unquote_to_bytes(run))


def _digits(text: str) -> str:
    """The digits of a number, without those of a percent-escaped space between groups."""
    return "".join(ch for ch in _unescaped(text) if "0" <= ch <= "9")


def _unescaped(text: str) -> str:
    """``%20`` as three spaces (the offsets stay)."""
    return text.replace("%20", "   ")


class _Families:
    """The detectors of each family, built once per process on presidio's catalog."""

    def __init__(self) -> None:
        import presidio_analyzer.predefined_recognizers as predefined

        self._catalog = cat = catalog()
        self._tld = cat._tld
        self._luhn = predefined.CreditCardRecognizer().validate_result
        self._ssn = predefined.UsSsnRecognizer()
        self._ssn_context = tuple(w.casefold() for w in self._ssn.context)
        email: Any = predefined.EmailRecognizer()
        self._email = regex.compile(email.patterns[0].regex, int(email.global_regex_flags or 0))
        self._email_context = tuple(w.casefold() for w in email.context)

    # -- interpreters ----------------------------------------------------------
    def card(self, m: ScanMatch) -> list[tuple[int, int, float]]:
        text = m.match.group()
        digits = _digits(text)
        if not 12 <= len(digits) <= 19 or not self._luhn(digits):
            return []
        # Never a disguise of what the plain patterns refuse on purpose: presidio's
        # 13 digits starting with 1 (a millisecond timestamp), a 2 that is not
        # Mastercard's 2-series.
        if (len(digits) == 13 and digits[0] == "1") or (
            digits[0] == "2" and not _MASTERCARD_2.fullmatch(digits)
        ):
            return []
        start = m.start + (1 if text.startswith("(") else 0)
        return [(start, m.end, 1.0)]

    def ssn(self, m: ScanMatch) -> list[tuple[int, int, float]]:
        digits = _digits(m.match.group())
        if self._ssn.invalidate_result(f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"):
            return []
        return [(m.start, m.end, 0.5)]

    def phone(self, m: ScanMatch) -> list[tuple[int, int, float]]:
        text = _unescaped(m.match.group())
        if is_ipv4(text):
            return []
        digits = _digits(text)
        if not 7 <= len(digits) <= 15:
            return []
        # The number as a plain writer would write it: groups joined by dashes,
        # each character of it placed back on the candidate.
        plain: list[str] = []
        where: list[int] = []
        for k, ch in enumerate(text):
            if "0" <= ch <= "9" or (ch == "+" and not plain):
                if plain and plain[-1] != "+" and where[-1] != k - 1:
                    plain.append("-")
                    where.append(k - 1)
                plain.append(ch)
                where.append(k)
        return [
            (m.start + where[s], m.start + where[e - 1] + 1, score)
            for s, e, score in self._catalog.phone_spans("".join(plain))
        ]

    def email(self, m: ScanMatch) -> list[tuple[int, int, float]]:
        text = m.match.group()
        bare = (
            "@" not in text
            and _AT_AS_WRITTEN.search(text) is not None
            and (regex.search(rf"(?i){_OPEN}\s*at\s*{_CLOSE}", text) is None)
        )
        read = _AT_AS_WRITTEN.sub("@", text, count=1)
        read = _SPACE.sub("", _DOT_AS_WRITTEN.sub(".", read))
        local, _, domain = read.partition("@")
        if regex.search(r"\s@|@\s", text) and local.casefold() in _PROSE:
            return []  # "write to us @example.com": a handle after a word of prose
        if bare and (
            regex.search(r"(?i)[ \t]dot[ \t]", text) is None
            or local.casefold() in _PROSE
            or domain.split(".")[0].casefold() in _PROSE
        ):
            return []  # "available at example.com", "look at this dot com"
        if self._email.fullmatch(read) is None or self._tld(read).fqdn == "":
            return []
        return [(m.start, m.end, 1.0)]

    def encoded(
        self, entity: str, decode: Callable[[str], str | None]
    ) -> Callable[[ScanMatch], list[tuple[int, int, float]]]:
        """An interpreter: the run decoded, searched for ``entity`` (its plain patterns and
        the separators family); a value in it makes the whole run one."""

        def interpret(m: ScanMatch) -> list[tuple[int, int, float]]:
            inner = self._catalog.detectors(entity) + self.detectors(entity, "separators")
            best = 0.0
            for window in _windows(m.match.group()):
                decoded = decode(window)
                if decoded is None:
                    continue
                for d in inner:
                    for found in d.pattern.finditer(decoded):
                        for _, _, score in d.interpret(ScanMatch(0, found, 0)):
                            best = max(best, score)
                if best >= 1.0:
                    break
            return [(m.start, m.end, best)] if best > 0 else []

        return interpret

    # -- detectors ---------------------------------------------------------------
    @functools.cache  # noqa: B019 - one instance per process
    def detectors(self, entity: str, family: str) -> tuple[Detector, ...]:
        def d(
            name: str, pattern: regex.Pattern[str], how: Callable[[Any], Any], ctx: Any
        ) -> Detector:
            return Detector(entity, f"disguised {name}", pattern, how, ctx)

        if family == "separators":
            if entity == "CREDIT_CARD":
                return (d("card", _CARD, self.card, ()),)
            if entity == "US_SSN":
                return (d("SSN", _SSN, self.ssn, self._ssn_context),)
            if entity == "PHONE_NUMBER":
                return (
                    d("phone", _PHONE, self.phone, self._catalog.phone_context),
                    d("phone (glued)", _PHONE_GLUED, self.phone, self._catalog.phone_context),
                )
        elif family == "words" and entity == "EMAIL_ADDRESS":
            return (
                d("e-mail (words)", _EMAIL_WORDS, self.email, self._email_context),
                d("e-mail (spaced)", _EMAIL_SPACED, self.email, self._email_context),
            )
        elif family == "bare-words" and entity == "EMAIL_ADDRESS":
            return (d("e-mail (bare words)", _EMAIL_BARE, self.email, self._email_context),)
        elif family == "context" and entity == "US_SSN":
            return (d("SSN (context)", _SSN_CONTEXT, self.ssn, ()),)
        elif family == "encodings" and self._catalog.detectors(entity):
            # The entity's context words, read before the run ("SSN: NTM2LTkw...").
            words = {w: None for det in self._catalog.detectors(entity) for w in det.context}
            ctx = tuple(words)
            return (
                d("base64", _BASE64, self.encoded(entity, _from_base64), ctx),
                d("hex", _HEX, self.encoded(entity, _from_hex), ctx),
                d("percent-encoded", _PERCENT, self.encoded(entity, _from_percent), ctx),
            )
        return ()


@functools.cache
def _families() -> _Families:
    return _Families()


def detectors(entities: tuple[str, ...], families: tuple[str, ...]) -> tuple[Detector, ...]:
    """The disguise detectors for these entities and families."""
    out: list[Detector] = []
    fam = _families()
    for family in families:
        for entity in entities:
            out.extend(fam.detectors(entity, family))
    return tuple(out)
