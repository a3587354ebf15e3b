"""A stream's own time limits: ``stream.deadline_ms`` and ``stream.idle_timeout_ms``.

One :class:`Limits` is the clock of one stream, push run or guarded SDK stream: the
deadline runs from :meth:`Limits.start` (its first pull, or its creation), the idle
limit from the last chunk (:meth:`Limits.chunk`).  A guarded SDK stream shares its
clock with every push run of the call, so that the call has one deadline and its idle
limit is the upstream's, not one run's.
"""

from __future__ import annotations

import time

from .decision import Ending

__all__ = ["Limits"]


class Limits:
    """A stream's own time limits: ``stream.deadline_ms`` (from its first pull) and
    ``stream.idle_timeout_ms`` (the longest wait for the next chunk)."""

    __slots__ = ("_at", "_deadline", "_idle", "_last", "active", "hit")

    def __init__(self, deadline_ms: int | None, idle_timeout_ms: int | None) -> None:
        self._deadline = None if deadline_ms is None else deadline_ms / 1000
        self._idle = None if idle_timeout_ms is None else idle_timeout_ms / 1000
        #: Whether there is any limit (an attribute: it is read on every chunk).
        self.active = self._deadline is not None or self._idle is not None
        self._at: float | None = None  # when the deadline passes
        self._last: float | None = None  # when the last chunk came (or the run started)
        #: The limit that passed (``Ending.TIMED_OUT`` or ``Ending.IDLE``), once one did.
        self.hit: Ending | None = None

    def start(self) -> None:
        """The run starts now (a no-op after the first call)."""
        if self._last is None:
            now = time.perf_counter()
            self._last = now
            if self._deadline is not None:
                self._at = now + self._deadline

    def chunk(self) -> None:
        """A chunk came from the source now."""
        self._last = time.perf_counter()

    def wait(self) -> float | None:
        """How long the next wait for the source may take (seconds; None: no limit)."""
        self.start()
        now = time.perf_counter()
        left = None if self._at is None else self._at - now
        if self._idle is not None and self._last is not None:
            idle = self._last + self._idle - now
            left = idle if left is None or idle < left else left
        return None if left is None else max(0.0, left)

    def waiting(self) -> float | None:
        """A wait for the source starts now (the idle limit counts from here, not from
        the work since the last chunk): how long it may take (seconds; ``None``: no
        limit; ``0.0``: the deadline has passed)."""
        self.start()
        self._last = now = time.perf_counter()
        left = None if self._at is None else max(0.0, self._at - now)
        idle = self._idle
        return idle if idle is not None and (left is None or idle < left) else left

    def due(self) -> tuple[Ending, str]:
        """The limit a wait of :meth:`wait` ran into."""
        passed = self.passed(waiting=True, slack=0.001)
        if passed is not None:
            return passed
        return self._reason(Ending.TIMED_OUT if self._idle is None else Ending.IDLE)

    def _reason(self, ending: Ending) -> tuple[Ending, str]:
        self.hit = ending
        if ending is Ending.TIMED_OUT:
            return ending, f"deadline of {round((self._deadline or 0) * 1000):,} ms passed"
        return ending, f"no text from the source for {round((self._idle or 0) * 1000):,} ms"

    def passed(self, *, waiting: bool, slack: float = 0.0) -> tuple[Ending, str] | None:
        """The limit that has passed, if any, with the finding's reason; ``waiting``:
        the run was waiting for the source (else working: the idle limit waits)."""
        now = time.perf_counter() + slack
        if self._at is not None and now >= self._at:
            return self._reason(Ending.TIMED_OUT)
        idle = self._idle
        if waiting and idle is not None and self._last is not None and now >= self._last + idle:
            return self._reason(Ending.IDLE)
        return None

    @classmethod
    def of(cls, stream: object) -> Limits | None:
        """The limits of a policy's ``stream:`` settings, or ``None`` when it sets none."""
        deadline = getattr(stream, "deadline_ms", None)
        idle = getattr(stream, "idle_timeout_ms", None)
        return None if deadline is None and idle is None else cls(deadline, idle)
