"""Release: the text received and not yet shown, and what has been shown.

The run decides how far text is safe (the smallest hold over its sessions,
bounded by undecided blocks, cuts and barriers); :class:`Release` cuts that
text off the pending buffer, with the repairs that fall in it applied.
"""

from __future__ import annotations

import time

from .._common.pieces import BLOCK, join_tail
from .repairs import Repairs
from .stats import RunStats

__all__ = ["Release"]


class Release:
    """Pending original text (from :attr:`start`) and the released pieces."""

    __slots__ = ("_limit", "_out_limit", "_stats", "out", "pending", "released", "start")

    def __init__(self, stats: RunStats) -> None:
        self._stats = stats
        self.pending: list[str] = []  # unreleased original text, from `start`
        self._limit = BLOCK  # (see _common/pieces.py)
        self.start = 0
        self.released = 0  # original offset released so far
        self.out: list[str] = []  # released pieces
        self._out_limit = BLOCK  # (see _common/pieces.py)

    def receive(self, chunk: str) -> None:
        pending = self.pending
        if len(pending) >= self._limit:
            self._limit = join_tail(pending, self._limit)
        pending.append(chunk)

    def clear(self) -> None:
        """Nothing more is released: drop what is pending."""
        self.pending, self._limit = [], BLOCK

    def text(self) -> str:
        pending = self.pending
        return pending[0] if len(pending) == 1 else "".join(pending)

    def release(self, target: int, repairs: Repairs, *, final: bool) -> str:
        """Release the text up to ``target`` (less, if a repair cluster straddles it
        and the text is not complete) with ``repairs`` applied."""
        start = self.released
        if not repairs.waiting:
            # Nothing to replace: the common case, a plain slice.
            if target <= start:
                return ""
            text = self.text()
            offset = self.start
            piece = text[start - offset : target - offset]
            rest = text[target - offset :]
            self.pending, self._limit = ([rest] if rest else []), BLOCK
            self.start = self.released = target
            return self.emit(piece)
        if not final:
            target = repairs.straddle(target)
        if target <= start:
            return ""
        text = self.text()
        offset = self.start
        piece, new_start = repairs.apply(text, offset, start, target)
        rest = text[new_start - offset :]
        self.pending, self._limit = ([rest] if rest else []), BLOCK
        self.start = self.released = new_start
        return self.emit(piece)

    def emit(self, piece: str) -> str:
        """Record a released piece (for the result and the trace) and return it."""
        if piece:
            out = self.out
            if len(out) >= self._out_limit:
                self._out_limit = join_tail(out, self._out_limit)
            out.append(piece)
            stats = self._stats
            stats.chunks_out += 1
            stats.chars_out += len(piece)
            if stats.first_out_at is None:
                stats.first_out_at = time.perf_counter()
        return piece

    def unemit(self, piece: str) -> None:
        """Take back the piece just emitted (the output as repaired was then refused)."""
        if piece and self.out and self.out[-1] == piece:
            self.out.pop()

    def back_over_space(self, target: int, floor: int) -> int:
        """Move ``target`` back over whitespace, not below ``floor``.

        Nothing at or after ``floor`` was released before the cut was known (the
        length check held it), so every chunking drops the same whitespace.
        """
        offset = self.start
        pending = self.pending
        if target <= max(offset, floor) or not pending:
            return target
        text = self.text()
        i, low = target - offset, max(floor, offset) - offset
        while i > low and text[i - 1].isspace():
            i -= 1
        return offset + i
