"""When work must stop: a deadline handed to whatever does the work.

A run gives each check a :class:`Deadline` of its own (checks that share a
scanner share one) and sets it before every call into the check's session
(``_runtime/run.py``: ``Run._call``).  The session, and the scanner behind it,
hold the same object: nothing is read from a per-thread global, so a session
driven from any thread, or two runs interleaved on one thread, each see their
own.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Deadline"]

#: Work in a worker thread lets other threads run (the event loop) once it has
#: held the interpreter this long (seconds), at the next :meth:`Deadline.check`.
PAUSE_AFTER = 0.0005
_PAUSE = 0.00002
_MAIN = threading.main_thread()


class Deadline:
    """A point in ``time.perf_counter`` time (``at``), or none (``None``).

    :meth:`check`, which long loops call between pieces of work, also hands the
    interpreter to other threads every :data:`PAUSE_AFTER` of work when it runs
    in a worker thread: Python switches threads only every 5 ms, so an async
    validate of hostile text in a worker thread (two of them) kept the event
    loop waiting 10-60 ms at a time.
    """

    __slots__ = ("_paused", "at")

    def __init__(self, at: float | None = None) -> None:
        self.at = at
        self._paused = 0.0

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
        now = time.perf_counter()
        if at is not None and now >= at:
            raise TimeoutError("check deadline passed")
        if now - self._paused >= PAUSE_AFTER:
            if self._paused and threading.current_thread() is not _MAIN:
                time.sleep(_PAUSE)  # (sleep(0) would take the interpreter straight back)
            self._paused = time.perf_counter()

    def __repr__(self) -> str:
        return f"Deadline({self.at!r})"
