"""The canonical view and its offset map do not depend on chunking."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from guardrails_engine._canon import OffsetMap, canonical

# Plain characters, removed ones (Cf), spaces that become " ", and characters
# that NFKC expands (ligature, circled digit, full-width digit).
ALPHABET = "ab1 .@\u200b\u200c\u2060\u00ad\ufeff\u00a0\u202f\u3000\ufb01\u2460\uff11"


def reference(text: str) -> tuple[str, list[int]]:
    """The canonical text and, for each of its characters, the original index."""
    out, where = [], []
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        rep = "" if cat == "Cf" else " " if cat in ("Zs", "Zl", "Zp") else unicodedata.normalize("NFKC", ch)
        out.append(rep)
        where.extend([i] * len(rep))
    return "".join(out), where


@given(st.text(alphabet=ALPHABET, max_size=30), st.lists(st.integers(1, 5), min_size=1, max_size=10))
def test_map_matches_reference_for_any_chunking(text: str, sizes: list[int]) -> None:
    m = OffsetMap()
    canon, i, k = "", 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        canon += m.add(text[i : i + n])
        i += n
        k += 1
    expected, where = reference(text)
    assert canon == expected == canonical(text)
    assert m.identity == (where == list(range(len(where))) and len(expected) == len(text))
    for s in range(len(canon)):
        for e in range(s + 1, len(canon) + 1):
            assert m.span(s, e) == (where[s], where[e - 1] + 1)
    # The end of the canonical text maps to the end of the original.
    assert m.to_orig(len(canon)) == len(text)
