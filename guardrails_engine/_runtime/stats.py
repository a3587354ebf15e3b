"""A bounded summary of hold-back sizes: how far released text trailed received text.

A stream records one value per chunk; keeping them all would make a stream's
memory grow with its length.  Values below :data:`EXACT` are counted exactly;
larger ones (a schema check releasing on completion holds the whole document)
are rounded down to their eight leading bits, so a summary holds a few hundred
counts however long the stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

__all__ = ["EXACT", "Holdbacks", "RunStats"]

#: Values below this are kept exactly.
EXACT = 4096


def _bucket(value: int) -> int:
    if value < EXACT:
        return value
    shift = value.bit_length() - 8
    return (value >> shift) << shift


class Holdbacks:
    """Counts of hold-back sizes, one per chunk."""

    __slots__ = ("count", "counts", "max")

    def __init__(self, values: Iterable[int] = ()) -> None:
        #: How many times each value (or bucket, from :data:`EXACT` on) was seen.
        self.counts: dict[int, int] = {}
        self.count = 0
        self.max = 0
        for v in values:
            self.add(v)

    def add(self, value: int) -> None:
        key = value if value < EXACT else _bucket(value)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        self.count += 1
        if value > self.max:
            self.max = value

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[int]:
        """Every value, ascending (large values as their buckets)."""
        for k in sorted(self.counts):
            for _ in range(self.counts[k]):
                yield k

    def quantile(self, q: float) -> int:
        """The value at rank ``int(q * count)`` (clamped), ascending; 0 if empty."""
        if not self.count:
            return 0
        return self._at(min(self.count - 1, int(q * self.count)))

    def median(self) -> float:
        """The median, as :func:`statistics.median` computes it; 0.0 if empty."""
        n = self.count
        if not n:
            return 0.0
        lo = self._at((n - 1) // 2)
        hi = self._at(n // 2)
        return (lo + hi) / 2

    def _at(self, rank: int) -> int:
        seen = 0
        for k in sorted(self.counts):
            seen += self.counts[k]
            if seen > rank:
                return k
        return self.max  # pragma: no cover - ranks are below count


class RunStats:
    """What a run measures for its trace: times, chunk counts, hold-back sizes."""

    __slots__ = (
        "chars_out",
        "check_seconds",
        "chunks_in",
        "chunks_out",
        "ended_at",
        "first_in_at",
        "first_out_at",
        "holdbacks",
        "started_at",
    )

    def __init__(self, checks: int) -> None:
        self.started_at = time.perf_counter()
        self.ended_at: float | None = None
        self.first_in_at: float | None = None
        self.first_out_at: float | None = None
        self.chunks_in = 0
        self.chunks_out = 0
        self.chars_out = 0
        #: Time spent per check (same order as the policy's checks).
        self.check_seconds = [0.0] * checks
        self.holdbacks = Holdbacks()
