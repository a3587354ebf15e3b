"""Token logprobs carried along released text (OpenAI Chat Completions and Responses)."""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["Logprobs"]


class Logprobs:
    """Carries token logprobs along while the text is shown as the model wrote it.

    Released text lags the deltas (hold-back), so a delta's logprobs go out with the
    release that shows all of its text; once a release differs from what was written
    (a repair), the rest of the run's logprobs are dropped: they no longer apply.
    """

    __slots__ = ("items", "ok", "raw")

    def __init__(self) -> None:
        self.raw = ""  # written, not yet shown
        self.items: deque[list[Any]] = deque()  # [characters left, logprobs] per delta
        self.ok = True

    def add(self, text: str, probs: list[Any] | None) -> None:
        if self.ok:
            self.raw += text
            self.items.append([len(text), probs or []])

    def take(self, released: str) -> list[Any]:
        """The logprobs of the deltas that ``released`` completes ([] if none apply)."""
        if not self.ok:
            return []
        if not self.raw.startswith(released):
            self.ok = False
            self.raw = ""
            self.items.clear()
            return []
        self.raw = self.raw[len(released) :]
        left = len(released)
        out: list[Any] = []
        items = self.items
        while items and items[0][0] <= left:
            size, probs = items.popleft()
            left -= size
            out.extend(probs)
        if left and items:
            items[0][0] -= left
        return out
