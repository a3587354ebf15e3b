"""When work must stop: a deadline handed to whatever does the work.

A run gives each check a :class:`Deadline` of its own (checks that share a
scanner share one) and sets it before every call into the check's session
(``_runtime/run.py``: ``Run._call``).  The session, and the scanner behind it,
hold the same object: nothing is read from a per-thread global, so a session
driven from any thread, or two runs interleaved on one thread, each see their
own.
"""

from __future__ import annotations

import time

__all__ = ["Deadline"]


class Deadline:
    """A point in ``time.perf_counter`` time (``at``), or none (``None``)."""

    __slots__ = ("at",)

    def __init__(self, at: float | None = None) -> None:
        self.at = at

    def left(self) -> float | None:
        """Seconds left (``None``: no deadline).

        :raises TimeoutError: if it has passed.
        """
        at = self.at
        if at is None:
            return None
        left = at - time.perf_counter()
        if left <= 0:
            raise TimeoutError("check deadline passed")
        return left

    def check(self) -> None:
        """:raises TimeoutError: if the deadline has passed."""
        at = self.at
        if at is not None and time.perf_counter() >= at:
            raise TimeoutError("check deadline passed")

    def __repr__(self) -> str:
        return f"Deadline({self.at!r})"
