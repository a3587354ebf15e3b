"""When work must stop: a deadline handed to whatever does the work.

A run gives each check a :class:`Deadline` of its own (checks that share a
scanner share one) and sets it before every call into the check's session
(``_runtime/run.py``: ``Run._call``).  The session, and the scanner behind it,
hold the same object: nothing is read from a per-thread global, so a session
driven from any thread, or two runs interleaved on one thread, each see their
own.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["Deadline"]

#: Work in a worker thread lets other threads run (the event loop) once it has
#: held the interpreter this long (seconds), at the next :meth:`Deadline.check`.
PAUSE_AFTER = 0.0005
_PAUSE = 0.00002
_MAIN = threading.main_thread()

# The share of a CPU the process got while it worked, lately (see Deadline.cpu_left).
_share = 1.0
# The shortest window it is sampled over (seconds): longer than a scheduler's time
# slice, in which a process that runs at all gets the whole CPU (sampled every 2 ms,
# the share read 1.0 on a machine with twice as many busy threads as CPUs, and a
# 2 s check time ran 2.6 s).
_WINDOW = 0.02


# The CPUs of the machine (``os.cpu_count`` reads a file: 2 us a call).
_CPUS = os.cpu_count() or 1
# The load average is read at most this often (seconds; the kernel updates it every 5 s).
_LOAD_EVERY = 1.0
_load: tuple[float, float] = (-_LOAD_EVERY, 1.0)  # (when read, the share it gave)


def _loaded_share() -> float:
    """The share of a CPU a busy process gets, by the load average of the last minute."""
    global _load
    now = time.monotonic()
    when, share = _load
    if now - when < _LOAD_EVERY:
        return share
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on this platform
        load = 0.0
    share = max(0.2, min(1.0, _CPUS / load)) if load > 0 else 1.0
    _load = (now, share)
    return share


class Deadline:
    """A point in ``time.perf_counter`` time (``at``), or none (``None``).

    :meth:`check`, which long loops call between pieces of work, also hands the
    interpreter to other threads every :data:`PAUSE_AFTER` of work when it runs
    in a worker thread: Python switches threads only every 5 ms, so an async
    validate of hostile text in a worker thread (two of them) kept the event
    loop waiting 10-60 ms at a time.
    """

    __slots__ = ("_paused", "_stamp", "at")

    def __init__(self, at: float | None = None) -> None:
        self.at = at
        self._paused = 0.0
        self._stamp = (0.0, 0.0)  # (wall, process CPU) at the last cpu_left

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

    def cpu_left(self) -> float | None:
        """What to pass as the ``timeout=`` of a call into the ``regex`` engine, which
        counts the process's CPU time, not the time on the clock: on a machine whose
        CPUs are shared, a call given 10 s ran for 30 s.  The time left, scaled by
        the share of a CPU the process got while it worked lately (at most 1, at
        least 0.2).

        :raises TimeoutError: if the deadline has passed.
        """
        global _share
        at = self.at
        if at is None:
            return None
        wall = time.perf_counter()
        left = at - wall
        if left <= 0:
            raise TimeoutError("check deadline passed")
        then, used = self._stamp
        took = wall - then
        if then and took < _WINDOW:
            return left * _share  # (too short a window: a time slice, not a share)
        cpu = time.process_time()  # (a system call: only once a window)
        if not then:
            # The first call of a run's check: what the load average says, if less.
            _share = min(_share, _loaded_share())
        elif took < 0.5:  # (busy since the window began: a fair sample)
            _share = min(1.0, max(0.2, 0.5 * _share + 0.5 * (cpu - used) / took))
        self._stamp = (wall, cpu)
        return left * _share

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
