"""Reading a sync upstream with a bound on each wait: the sync guarded stream's reader
when the policy sets ``stream.deadline_ms`` or ``stream.idle_timeout_ms``, and a
stream with fallbacks' when it sets those or ``stream.first_chunk_timeout_ms``.

A read of a sync SDK stream blocks its thread, and nothing in that thread can interrupt
it.  So each read is made by a worker thread of the stream's own, one read at a time
(never ahead of the reader: the upstream is pulled only when the guarded stream asks),
and the guarded stream waits for it at most as long as its limits allow.  A read that
the limit abandons goes on in the worker; the upstream is closed as soon as that read
returns (a sync SDK stream is not closed under a read in progress), so the client's own
timeout (``OpenAI(timeout=...)``, ``Anthropic(timeout=...)``) bounds how long a stalled
connection stays open after the guarded stream has ended.  Without limits, the sync
guarded stream reads inline (no thread).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

__all__ = ["LATE", "TimedReader"]

#: What :meth:`TimedReader.take` returns when the wait ran out.
LATE: Final[Any] = object()
_END: Final[Any] = object()
_log = logging.getLogger("guardrails_engine")


class TimedReader:
    """A sync iterator read in a worker thread, each wait bounded (see the module doc)."""

    __slots__ = ("_asked", "_box", "_it", "_lock", "_pending", "_reading", "_shut", "_stop")

    def __init__(self, it: Iterator[Any], shut: Callable[[], None]) -> None:
        self._it = it
        self._shut = shut
        self._asked: threading.Semaphore | None = None  # made with the worker, at the first read
        self._box: queue.SimpleQueue[tuple[Any, BaseException | None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._reading = False  # a read was asked for and has not returned
        self._pending = False  # close the upstream when that read returns
        self._stop = False  # closed: the worker ends

    def take(self, wait: float | None) -> Any:
        """The next item within ``wait`` seconds (``None``: however long it takes), or
        :data:`LATE` (the read goes on in the worker); ``StopIteration`` at the end;
        what the upstream raised."""
        asked = self._asked
        if asked is None:
            asked = self._asked = threading.Semaphore(0)
            worker = threading.Thread(
                target=self._work, args=(asked,), name="guardrails-engine upstream", daemon=True
            )
            worker.start()
        with self._lock:
            if not self._reading:  # (else a read abandoned before is still on its way)
                self._reading = True
                asked.release()
        try:
            item, error = self._box.get(timeout=wait)
        except queue.Empty:
            return LATE
        if error is not None:
            raise error
        if item is _END:
            raise StopIteration
        return item

    @property
    def idle(self) -> bool:
        """No read in progress and nothing read left to take: the iterator may be read
        in the caller's own thread (the worker waits to be asked)."""
        return not self._reading and self._box.empty()

    def _work(self, asked: threading.Semaphore) -> None:
        it = self._it
        while True:
            asked.acquire()
            if self._stop:  # closed: a read asked for and not begun is not made
                with self._lock:
                    self._reading = False
                    pending, self._pending = self._pending, False
                if pending:
                    self._close_now()
                return
            try:
                got: tuple[Any, BaseException | None] = (next(it, _END), None)
            except BaseException as exc:  # handed to the reader's thread
                got = (None, exc)
            with self._lock:
                self._reading = False
                pending = self._pending
            self._box.put(got)
            if pending:
                self._close_now()
                return
            if got[0] is _END or got[1] is not None:
                return

    def close(self) -> None:
        """Close the upstream: now, or when a read in progress returns (idempotent)."""
        with self._lock:
            if self._stop:
                return
            self._stop = True
            if self._reading:
                self._pending = True
                return
        if self._asked is not None:
            self._asked.release()  # (the worker waits for a read: it ends)
        self._shut()

    def _close_now(self) -> None:
        try:
            self._shut()
        except Exception:  # nothing to report it to: the guarded stream has ended
            _log.warning("closing an abandoned upstream failed", exc_info=True)
