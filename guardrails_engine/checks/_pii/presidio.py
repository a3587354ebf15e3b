"""presidio-analyzer's pattern recognizers, adapted to incremental scanning.

presidio runs each recognizer over a whole text.  We keep its knowledge (the
regular expressions, their scores, the checksums in ``validate_result`` and
``invalidate_result``) and drive the expressions with our own scanner, so that
a stream is scanned once and its results do not depend on chunking.

Two recognizers need more than their patterns:

* ``IbanRecognizer`` trims a match to the longest group that passes the
  checksum; the same logic is applied here.
* ``PhoneRecognizer`` uses python-phonenumbers instead of a regular
  expression.  A *candidate* expression (a run of digits and phone
  punctuation) is scanned instead, and each candidate is handed to
  ``phonenumbers.PhoneNumberMatcher`` for the same regions and leniency
  presidio uses.

presidio's ``EmailRecognizer.validate_result`` calls ``tldextract.extract``,
which downloads the public suffix list; the e-mail validation here uses a
``TLDExtract`` instance limited to the snapshot bundled with tldextract.

presidio (and spaCy, which it imports) are imported on first use, never at
import time of this package.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import regex

from ..._scanning.hints import declare
from ..._scanning.terms import OVERLAPPING
from .phones import numbers
from .prefilter import prefiltered

if TYPE_CHECKING:
    from ..._common.deadline import Deadline
    from ..._scanning.scan import ScanMatch

__all__ = [
    "NER_ENTITIES",
    "POSSIBLE_PHONE_SCORE",
    "Catalog",
    "Detector",
    "catalog",
    "is_ipv4",
    "plain_interpreter",
]

#: Entities that presidio finds with an NER model (spaCy), not with patterns.
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION"})

MAX_SCORE = 1.0

#: The score of a phone-shaped number that python-phonenumbers finds possible but
#: not valid (an area code it does not know: ``(311) 372-4764``), below presidio's
#: 0.4 for a valid one, so that ``min_score`` can take or leave it.
POSSIBLE_PHONE_SCORE = 0.3

#: Mastercard's 2-series (2221-2720, issued since 2017), absent from presidio's
#: card pattern: 16 digits in groups of four, checked with Luhn as presidio's are.
_CARD_2_SERIES = (
    r"(?<![\w-])(?:222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)"
    r"(?:[- ]?\d{4}){3}(?![\w-])"
)

#: A spoiler (``_scanning/hints.py``) of the patterns of numbers: a capital letter
#: before a lowercase one, or a lowercase letter of none of "ext", "x", "extension".
#: An IBAN's letters are capitals, a phone number's extension is lowercase, the others
#: hold no letter; so in prose a capitalised word (which may start an IBAN) is no
#: number in progress, and is not asked about (tests/test_scan_hints.py).
NUMBER_SPOILER = r"[A-Z][a-z]|[a-df-hj-mp-ru-wyz]"
# presidio's (2.2) patterns of numbers that hold no other letters: CREDIT_CARD,
# US_SSN, IBAN_CODE (a pattern of another version declares nothing).
_NUMBERS = frozenset(
    {
        r"\b(?!1\d{12}(?!\d))((4\d{3})|(5[0-5]\d{2})|(6\d{3})|(1\d{3})|(3\d{3}))[- ]?"
        r"(\d{3,4})[- ]?(\d{3,4})[- ]?(\d{3,5})\b",
        r"\b([0-9]{5})-([0-9]{4})\b",
        r"\b([0-9]{3})-([0-9]{6})\b",
        r"\b(([0-9]{3})-([0-9]{2})-([0-9]{4}))\b",
        r"\b[0-9]{9}\b",
        r"\b([0-9]{3})[- .]([0-9]{2})[- .]([0-9]{4})\b",
        r"(?<![A-Z0-9])([A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,6})((?:[ -]?[A-Z0-9]{4})?)"
        r"((?:[ -]?[A-Z0-9]{1,3})?)(?![A-Z0-9])",
    }
)

# Every IPv6 address (presidio's four patterns of them) holds "::" or a colon between
# two hexadecimal digits: a colon of prose ("Note: ...") does not get them searched
# (``_scanning/hints.py``; tests/test_scan_hints.py).
_IPV6 = frozenset({"IPv4_mapped", "IPv4_embedded", "IPv6", "IPv6_unspecified"})
#: Entities whose candidates are searched at every start (see ``Catalog.detectors``).
_OVERLAPPING = frozenset({"CREDIT_CARD"})
# (Written from its colon: the engine looks for a literal first character quickly; as
# an alternation it tried every position, 100 us on 2,000 characters of base64.)
_IPV6_NEEDLE = r":(?::|(?<=[0-9A-Fa-f]:)[0-9A-Fa-f])"

# A candidate worth a second look: a country code or groups (a bare run of digits, an
# order number, is a phone number only if phonenumbers finds it valid).
_PHONE_SHAPED = regex.compile(r"^\+|\d[\s\-.()/]+\d|^\(")
# A number written as North American numbers are: an optional +1 (or 1, 001, 011 1),
# the area code (in parentheses or not), three digits, four digits, an extension.
_NANP_SHAPED = regex.compile(
    r"(?:(?:\+|00|011[\s.\-]?)?1[\s.\-]?)?(?:\(\d{3}\)[\s.\-]?|\d{3}[\s.\-])\d{3}[\s.\-]\d{4}"
    r"(?:[\s]*(?:x|ext\.?|extension)[\s]*\d{1,6})?"
)

# A run of digits with the punctuation phone numbers are written with, and an
# optional extension.  It starts and ends where a number does, not inside a
# word, an amount ($4155550132) or a time (10:30; a colon elsewhere, "Phone:" or
# "0132: thanks", is punctuation), since phonenumbers sees only
# the candidate, not the text around it.
_PHONE_CANDIDATE = (
    r"(?<![\w+$\u00a3\u20ac])(?<!\d:)(?:\+\s?|\(\s?)?\d(?:[\d\-./()]|[ \t](?=[\d(+]))*\d"
    r"(?:[ \t]*(?:ext\.?|x|extension)[ \t]*\d{1,6})?(?!\w|:\d)"
)

# A pattern that begins and ends with a quote character (presidio's quoted URLs).
_QUOTED = regex.compile(r"""(?s)(?:\(\?[a-zA-Z]+\))?\[["\\']+\].*\[["\\']+\]""")

# What phonenumbers may read as a digit: digits, and letters ("1-800-FLOWERS").
_DIALABLE = regex.compile(r"\w")

# presidio's e-mail pattern (2.2), for which the scanner has a hint.
_PRESIDIO_EMAIL = (
    r"\b((([!#$%&'*+\-/=?^_`{|}~\w])|([!#$%&'*+\-/=?^_`{|}~\w][!#$%&'*+\-/=?^_`{|}~\.\w]{0,}"
    r"[!#$%&'*+\-/=?^_`{|}~\w]))[@]\w+(?:-+\w+)*(?:\.\w+(?:-+\w+)*)+)\b"
)
_DOTTED_QUAD = regex.compile(r"\d{1,3}(?:\.\d{1,3}){3}")

Interpret = Callable[["ScanMatch"], list[tuple[int, int, float]]]


@dataclass(frozen=True, slots=True)
class Detector:
    """One regular expression and how to turn its matches into scored spans."""

    entity: str
    name: str
    pattern: regex.Pattern[str]
    interpret: Interpret
    #: Words that raise the score when they come just before a value (casefolded).
    context: tuple[str, ...] = ()


def plain_interpreter(score: float) -> Interpret:
    """Every match is a span with this score."""

    def interpret(m: ScanMatch) -> list[tuple[int, int, float]]:
        return [(m.start, m.end, score)]

    return interpret


class Catalog:
    """The pattern entities presidio ships, and a detector list for each."""

    def __init__(self) -> None:
        import phonenumbers
        import presidio_analyzer.predefined_recognizers as predefined
        import tldextract
        from presidio_analyzer import PatternRecognizer

        self._tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        self._phonenumbers = phonenumbers
        self._recognizers: dict[str, list[Any]] = {}
        for name in predefined.__all__:
            cls = getattr(predefined, name)
            if not (isinstance(cls, type) and issubclass(cls, PatternRecognizer)):
                continue
            try:
                recognizer = cls()  # type: ignore[call-arg]
            except Exception:  # pragma: no cover - a recognizer that needs arguments
                continue
            entity = recognizer.supported_entities[0]
            self._recognizers.setdefault(entity, []).append(recognizer)
        phone = predefined.PhoneRecognizer()
        self._phone_regions: tuple[str, ...] = tuple(phone.supported_regions)
        self._phone_leniency = int(phone.leniency or 0)
        self._phone_fewest = _fewest_digits(phonenumbers, self._phone_regions, self._phone_leniency)
        self.phone_score = float(phone.SCORE)
        self.phone_context = tuple(w.casefold() for w in phone.context)
        self._iban_cls = predefined.IbanRecognizer
        self._card: Any = predefined.CreditCardRecognizer()
        self._email_cls = predefined.EmailRecognizer

    @property
    def entities(self) -> frozenset[str]:
        return frozenset(self._recognizers) | {"PHONE_NUMBER"}

    @functools.cache  # noqa: B019 - one catalog per process, kept for its lifetime
    def detectors(self, entity: str) -> tuple[Detector, ...]:
        """The detectors for one entity.

        :raises KeyError: if presidio has no pattern recognizer for it.
        """
        if entity == "PHONE_NUMBER":
            phone = regex.compile(_PHONE_CANDIDATE)
            declare(phone, spoiler=NUMBER_SPOILER)
            return (
                Detector(
                    entity,
                    "phone candidate",
                    phone,
                    self._interpret_phone,
                    self.phone_context,
                ),
            )
        out: list[Detector] = []
        for recognizer in self._recognizers[entity]:
            flags = int(recognizer.global_regex_flags)
            for pat in recognizer.patterns:
                source = prefiltered(pat.regex)
                if entity in _OVERLAPPING:
                    # A candidate that fails its checksum must not hide one that starts
                    # inside it: in "536-90-4399 4539 1488 0343 6467" the first candidate
                    # is "4399 4539 1488 0343" (no Luhn), and the card after it was missed
                    # (presidio's own search misses it too).  Every start is tried.
                    source += OVERLAPPING
                compiled = regex.compile(source, flags)
                if pat.regex == _PRESIDIO_EMAIL:
                    # A word of letters and digits may be the name of an address in
                    # progress (``_scanning/hints.py``; tests/test_scan_hints.py).
                    declare(compiled, sure=r"(?<!\w)[A-Za-z0-9]{1,256}")
                elif pat.regex in _NUMBERS:
                    declare(compiled, spoiler=NUMBER_SPOILER)
                elif entity == "IP_ADDRESS" and pat.name in _IPV6:
                    declare(compiled, needle=_IPV6_NEEDLE)
                context = tuple(w.casefold() for w in recognizer.context or ())
                out.append(
                    Detector(
                        entity,
                        pat.name,
                        compiled,
                        self._interpreter(
                            recognizer, pat.score, bool(_QUOTED.fullmatch(pat.regex))
                        ),
                        context,
                    )
                )
        if entity == "CREDIT_CARD":
            card = self._card
            two = regex.compile(_CARD_2_SERIES + OVERLAPPING)
            declare(two, spoiler=NUMBER_SPOILER)
            out.append(
                Detector(
                    entity,
                    "Mastercard 2-series",
                    two,
                    self._interpreter(card, card.patterns[0].score),
                    tuple(w.casefold() for w in card.context or ()),
                )
            )
        return tuple(out)

    def _interpreter(self, recognizer: Any, score: float, quoted: bool = False) -> Interpret:
        """How presidio scores a match of one of the recognizer's patterns.

        ``quoted``: the pattern begins and ends with a quote that is not part of the value.
        """
        validate: Callable[[str], bool | None] = recognizer.validate_result
        invalidate: Callable[[str], bool | None] = recognizer.invalidate_result
        if isinstance(recognizer, self._email_cls):
            tld = self._tld

            def validate(text: str) -> bool | None:
                return tld(text).fqdn != ""

        def scored(text: str) -> float:
            s = score
            valid = validate(text)
            if valid is not None:
                s = MAX_SCORE if valid else 0.0
            if invalidate(text):
                s = 0.0
            return s

        if isinstance(recognizer, self._iban_cls):

            def interpret_iban(m: ScanMatch) -> list[tuple[int, int, float]]:
                start = m.start
                for group in range(len(m.match.groups()), 0, -1):
                    gend = m.match.span(group)[1]
                    end = gend + m.base if gend > 0 else m.end
                    text = m.match.string[start - m.base : end - m.base]
                    if not text:
                        continue
                    s = scored(text)
                    if s > 0:
                        return [(start, end, s)]
                return []

            return interpret_iban

        # presidio's quoted URL patterns take in the quotes around the value:
        # the value is what is between them (the quotes may delimit a JSON
        # string, which a repair must leave whole).
        trim = 1 if quoted else 0

        def interpret(m: ScanMatch) -> list[tuple[int, int, float]]:
            s = scored(m.match.group())
            return [(m.start + trim, m.end - trim, s)] if s > 0 else []

        return interpret

    def _interpret_phone(self, m: ScanMatch) -> list[tuple[int, int, float]]:
        text = m.match.group()
        if is_ipv4(text):
            return []  # an IPv4 address, which phonenumbers would read as a number
        spans = self.phone_spans(text, m.deadline)
        return [(m.start + s, m.start + e, score) for s, e, score in spans]

    def phone_spans(
        self, text: str, deadline: Deadline | None = None
    ) -> list[tuple[int, int, float]]:
        """Where python-phonenumbers finds a number in ``text``, in any of presidio's
        regions (with presidio's leniency), with its score.  On a long run of digits this
        may take seconds: ``deadline`` is looked at between candidates (``phones.py``).

        Where it finds none, a phone-shaped number (a country code, or groups) of
        the North American plan (ten digits, with ``+1`` or not) that it finds
        possible but not valid is one too, scored :data:`POSSIBLE_PHONE_SCORE`:
        its area code is one phonenumbers does not know (``(311) 372-4764``).
        """
        pn = self._phonenumbers
        spans: dict[tuple[int, int], float] = {}
        digits = len(_DIALABLE.findall(text))  # (too many is safe)
        fewest = self._phone_fewest
        for region in self._phone_regions:
            if digits < fewest.get(region, 0):
                continue  # too short to be valid there (the common case: "17 days")
            least = fewest.get(region, 0)
            for found in numbers(pn, text, region, self._phone_leniency, deadline, least):
                spans[(found.start, found.end)] = self.phone_score
        if not spans and digits >= 10 and _PHONE_SHAPED.search(text):
            # (Each region reads its own international prefix: 00 in Europe, 011 here.)
            for region in self._phone_regions:
                for found in numbers(pn, text, region, 0, deadline):
                    number = found.number
                    if (
                        number.country_code == 1
                        and len(str(number.national_number)) == 10
                        and _NANP_SHAPED.fullmatch(found.raw_string) is not None
                    ):
                        spans.setdefault((found.start, found.end), POSSIBLE_PHONE_SCORE)
        return [(s, e, score) for (s, e), score in spans.items()]


def is_ipv4(text: str) -> bool:
    """Whether ``text`` is four dotted groups that make an IPv4 address (octets up to
    255, no leading zero): ``415.555.01.32`` and ``030.123.45.67`` are phone numbers."""
    if not _DOTTED_QUAD.fullmatch(text):
        return False
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _fewest_digits(pn: Any, regions: tuple[str, ...], leniency: int) -> dict[str, int]:
    """For each region, the fewest digits a candidate needs for ``PhoneNumberMatcher``
    to find a valid number in it (empty: no bound).

    A number read in a region is valid only if its national number has one of
    the possible lengths of the regions that share its country code.  With a
    country code written out (``+``, or the region's international prefix of two
    digits or more) it takes at least one digit more than the shortest national
    number anywhere.  The candidate holds every digit of the number (and may
    hold more: an extension), so fewer digits than both bounds cannot be valid.
    """
    if leniency < 1:  # POSSIBLE also accepts local-only lengths: no bound
        return {}
    util = pn.phonenumberutil

    def shortest(metadata: Any) -> int:
        lengths = [n for n in metadata.general_desc.possible_length if n > 0]
        return min(lengths) if lengths else 0

    everywhere = [shortest(pn.PhoneMetadata.metadata_for_region(r)) for r in util.SUPPORTED_REGIONS]
    everywhere += [
        shortest(pn.PhoneMetadata.metadata_for_nongeo_region(cc))
        for cc in util.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    with_code = 1 + min(everywhere)
    out: dict[str, int] = {}
    for region in regions:
        code = pn.country_code_for_region(region)
        sharing = util.COUNTRY_CODE_TO_REGION_CODE.get(code, (region,))
        national = min(shortest(pn.PhoneMetadata.metadata_for_region(r)) for r in sharing)
        out[region] = min(national, with_code)
    return out


@functools.cache
def catalog() -> Catalog:
    """The process-wide catalog (imports presidio on first call)."""
    return Catalog()
