"""python-phonenumbers' matcher, one candidate at a time, within a deadline.

``PhoneNumberMatcher`` walks its text candidate by candidate (runs of digits
and punctuation, each at most a few hundred characters) and returns only when
it finds a number: on a long run in which none is valid (``12 12 12 ...``,
about a millisecond a character) one step of its iteration reads to the end
of the text, and no deadline can be looked at in between (10,000 characters
took 9 s, a million would take minutes).  It also gives up after 65,535
candidates that are not numbers: a number after them is not found.

:func:`numbers` is the same walk (the same candidates, the same parse and
verification, by the matcher's own methods), with the deadline looked at
before each candidate and no limit on the candidates tried, so a number deep
in a long run is still found.  If the installed phonenumbers does not have
the methods it calls, it falls back to the matcher's own iteration.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import regex

if TYPE_CHECKING:
    from ..._common.deadline import Deadline

__all__ = ["numbers"]

# What phonenumbers may read as a digit: digits, and letters ("1-800-FLOWERS").
_DIALABLE = regex.compile(r"\w")


def numbers(
    pn: Any,
    text: str,
    region: str,
    leniency: int,
    deadline: Deadline | None,
    fewest: int = 0,
) -> Iterator[Any]:
    """The ``PhoneNumberMatch`` es of ``text`` in ``region``, as ``PhoneNumberMatcher``
    finds them (without its limit on tries).

    ``fewest``: the fewest letters and digits a valid number has there (``presidio.py``:
    ``_fewest_digits``): a piece of a candidate with fewer is not parsed (on a run of
    dotted or spaced digits the matcher parses every group on its own: 8 in 9 of
    its parses).

    :raises TimeoutError: if ``deadline`` passes (looked at between candidates).
    """
    matcher = pn.PhoneNumberMatcher(text, region, leniency=leniency, max_tries=sys.maxsize)
    verify = getattr(matcher, "_parse_and_verify", None)
    if fewest > 1 and verify is not None:

        def parse_and_verify(candidate: str, offset: int) -> Any:
            if len(_DIALABLE.findall(candidate)) < fewest:
                return None  # (too short to be valid: what parsing it would find)
            return verify(candidate, offset)

        matcher._parse_and_verify = parse_and_verify
    module = sys.modules[type(matcher).__module__]
    pattern = getattr(module, "_PATTERN", None)
    second = getattr(module, "_SECOND_NUMBER_START_PATTERN", None)
    trim = getattr(matcher, "_trim_after_first_match", None)
    extract = getattr(matcher, "_extract_match", None)
    shortest = getattr(matcher, "_min_candidate_length", 0)
    if pattern is None or second is None or trim is None or extract is None:  # pragma: no cover
        for found in matcher:
            yield found
            if deadline is not None:
                deadline.check()
        return
    match = pattern.search(text, 0)
    while match is not None:
        if deadline is not None:
            deadline.check()
        start = match.start()
        candidate = trim(second, text[start : match.end()])
        index = start + max(1, len(candidate))
        if len(candidate) >= shortest:
            found = extract(candidate, start)
            if found is not None:
                yield found
                index = found.end
        match = pattern.search(text, index)
