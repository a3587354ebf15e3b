"""``TraceStore``: traces in a SQLite file, queryable on one machine.

A store is a trace sink: give it as ``on_trace=`` anywhere (``load_policy``,
``validate``, ``stream``, ``push``, the adapters).  Calling it only queues the record
(a deque append): a writer thread of the store turns records into rows and writes
them in batches, one transaction a batch, so the event loop never waits on the disk.

Many processes may write one file: the journal is WAL, a batch takes the write lock
(``BEGIN IMMEDIATE``) and waits for it up to ``busy_timeout_s``; every record has a
unique ``record_id`` and is inserted with ``INSERT OR IGNORE``, so a batch that is
retried after a failure never writes a record twice.  A record that still cannot be
written (the disk is full, the file is not a database) is dropped and counted in
``dropped``, with a warning in the log (never the record itself).

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`; a file written by a newer
version is refused): ``calls`` (one row per record: a guarded model call, or a
validate or stream run on its own), ``runs`` (one per run of the policy in it),
``findings`` (one per finding: check, action, entity type, reason; never a value),
``topic_scores`` (schema 2: per run of a ``type: topic`` check, each topic's best
score), ``drift`` (schema 3: per run of a policy with ``drift:``, its best similarity
to the reference and whether it is uncovered); an older file is upgraded when opened
for writing, and read as it is.
Retention: ``max_age_s`` and ``max_rows`` (calls) are applied after each batch.
"""

from __future__ import annotations

import atexit
import json
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Final

from .._common.errors import GuardrailsError
from .._runtime.trace import Trace, logger
from .calls import CallTrace, RunRecord

__all__ = ["SCHEMA_VERSION", "TraceStore", "TraceStoreError", "connect"]

SCHEMA_VERSION: Final = 3
#: The oldest schema a reader reads (version 2 added ``topic_scores``, version 3
#: ``drift``; an older file is upgraded when it is opened for writing).
OLDEST_READ: Final = 1

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    trace_id TEXT NOT NULL,
    kind TEXT NOT NULL,            -- call, validate, stream
    started_at REAL NOT NULL,      -- seconds since the epoch
    policy TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    provider TEXT,
    operation TEXT,
    streamed INTEGER,
    request_model TEXT,
    response_model TEXT,
    response_id TEXT,
    parameters TEXT,               -- JSON
    decision TEXT,
    ending TEXT NOT NULL,
    finish_reasons TEXT,           -- JSON list
    input_tokens INTEGER,
    output_tokens INTEGER,
    upstream_first_ms REAL,
    first_out_ms REAL,
    duration_ms REAL NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    prompt TEXT,                   -- only with content capture, screened
    output TEXT                    -- only with content capture, screened
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_trace ON calls (trace_id);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    part TEXT NOT NULL,
    idx INTEGER NOT NULL,
    tool TEXT,
    decision TEXT,
    ending TEXT NOT NULL,
    chars_in INTEGER NOT NULL,
    chars_out INTEGER NOT NULL,
    holdback_max INTEGER NOT NULL,
    first_out_ms REAL,
    duration_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_call ON runs (call_id);
CREATE TABLE IF NOT EXISTS findings (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    call_id INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    check_id TEXT NOT NULL,
    check_type TEXT NOT NULL,
    action TEXT NOT NULL,
    entity_type TEXT,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_call ON findings (call_id);
CREATE TABLE IF NOT EXISTS topic_scores (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    call_id INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    check_id TEXT NOT NULL,
    topic TEXT NOT NULL,           -- a topic the policy names
    score REAL NOT NULL            -- the topic's best score in the run
);
CREATE INDEX IF NOT EXISTS topic_scores_call ON topic_scores (call_id);
CREATE TABLE IF NOT EXISTS drift (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    call_id INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    reference TEXT NOT NULL,       -- a hash of the reference file's text
    reference_texts INTEGER NOT NULL,
    quantile REAL NOT NULL,
    threshold REAL NOT NULL,       -- the reference's own quantile of similarity
    similarity REAL NOT NULL,      -- the run's best similarity to the reference
    uncovered INTEGER NOT NULL     -- 1 when below the threshold
);
CREATE INDEX IF NOT EXISTS drift_call ON drift (call_id);
"""


class TraceStoreError(GuardrailsError):
    """The trace database cannot be used (not a database, a newer schema)."""


def connect(
    path: str | Path, *, busy_timeout_s: float = 30.0, create: bool = True
) -> sqlite3.Connection:
    """Open (and create, with ``create``, or check the schema of) a trace database.

    :raises TraceStoreError: when the file is not a trace database this version reads.
    """
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None)
    try:
        if not create:  # a reader: no lock taken, nothing written
            _check_version(path, conn.execute("PRAGMA user_version").fetchone()[0], create)
            return conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            _check_version(path, version, create)
            if version < SCHEMA_VERSION:
                for statement in SCHEMA.split(";\n"):  # (executescript would commit)
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise TraceStoreError(f"{path}: not a trace database ({exc})") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _check_version(path: str | Path, version: int, create: bool) -> None:
    if version > SCHEMA_VERSION:
        raise TraceStoreError(
            f"{path}: trace schema version {version} is newer than this "
            f"guardrails-engine reads ({SCHEMA_VERSION})"
        )
    if version < OLDEST_READ and not create:
        raise TraceStoreError(f"{path}: not a trace database (no trace schema)")


class TraceStore:
    """A trace sink writing to the SQLite file ``path`` (created if missing).

    ``max_age_s`` deletes records older than that many seconds, ``max_rows`` keeps
    only the newest that many records (both checked after each batch);
    ``batch_size`` records at most go in one transaction; past ``max_queue`` records
    waiting to be written (the disk cannot keep up), a record is dropped (counted in
    ``dropped``, logged) rather than let memory grow or the caller wait.  Call :meth:`flush` to
    wait until what was given is written, :meth:`close` (or ``with``, or
    ``await aclose()``) when done; a store still open at exit is closed then.

    :raises TraceStoreError: when ``path`` is not a trace database this version reads.
    :raises TypeError: for a wrong argument.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_age_s: float | None = None,
        max_rows: int | None = None,
        batch_size: int = 512,
        busy_timeout_s: float = 30.0,
        max_queue: int = 100_000,
    ) -> None:
        if not isinstance(path, str | Path):
            raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
        if max_age_s is not None and (
            isinstance(max_age_s, bool) or not isinstance(max_age_s, int | float) or max_age_s <= 0
        ):
            raise TypeError(f"max_age_s must be a positive number, got {max_age_s!r}")
        for name, value in (
            ("max_rows", max_rows),
            ("batch_size", batch_size),
            ("max_queue", max_queue),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise TypeError(f"{name} must be a positive int, got {value!r}")
        self.path = Path(path)
        self.max_age_s = max_age_s
        self.max_rows = max_rows
        self._batch = batch_size
        self._max_queue = max_queue
        self._busy = busy_timeout_s
        connect(self.path, busy_timeout_s=busy_timeout_s).close()  # fail here, not later
        self.dropped = 0
        self._closed = False
        self._start()
        _OPEN.add(self)
        atexit.register(self.close)

    def _start(self) -> None:
        """A new queue and writer thread (at creation, and in a forked child, which
        inherits the queue but not the thread: what the parent had queued is its own)."""
        self._queue: deque[tuple[float, Any]] = deque()
        self._wake = threading.Condition()
        self._given = 0  # records given (under _wake)
        self._written = 0  # records handled: written or dropped (under _wake)
        self._thread = threading.Thread(target=self._writer, name="guardrails-traces", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<TraceStore {str(self.path)!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """A store pickles as its file and settings: unpickled (in a worker process, with
        the policy whose sink it is), it is a store of its own on the same file."""
        settings = (self.max_age_s, self.max_rows, self._batch, self._busy, self._max_queue)
        return (_reopen, (str(self.path), *settings))

    # -- the sink ---------------------------------------------------------------------
    def __call__(self, record: Trace | CallTrace) -> None:
        """Queue a record for writing (a :class:`Trace` or a :class:`CallTrace`)."""
        if not isinstance(record, Trace | CallTrace):
            raise TypeError(
                f"a TraceStore takes a Trace or a CallTrace, got {type(record).__name__}"
            )
        if self._closed:
            logger.warning("guardrails_engine: a trace was given to a closed TraceStore")
            return
        if len(self._queue) >= self._max_queue:  # the disk cannot keep up: never wait for it
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.warning(
                    "guardrails_engine: TraceStore queue full, %d traces dropped", self.dropped
                )
            return
        self._queue.append((time.time(), record))
        with self._wake:
            self._given += 1
            self._wake.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record given so far is written (or dropped); ``False`` on timeout."""
        with self._wake:
            target = self._given
            return self._wake.wait_for(lambda: self._written >= target, timeout)

    def close(self) -> None:
        """Write what is queued and stop the writer (idempotent)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        _OPEN.discard(self)
        with self._wake:
            self._wake.notify_all()
        self._thread.join()

    async def aclose(self) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.close)

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> TraceStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the writer ---------------------------------------------------------------------
    def _writer(self) -> None:
        conn = connect(self.path, busy_timeout_s=self._busy)
        try:
            while True:
                with self._wake:
                    self._wake.wait_for(lambda: bool(self._queue) or self._closed)
                    if not self._queue and self._closed:
                        return
                batch = [
                    (uuid.uuid4().hex, *self._queue.popleft())  # one id, however many tries
                    for _ in range(min(self._batch, len(self._queue)))
                ]
                self._write(conn, batch)
                with self._wake:
                    self._written += len(batch)
                    self._wake.notify_all()
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list[tuple[str, float, Any]]) -> None:
        for attempt in range(3):
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for record_id, received, record in batch:
                        _insert(conn, record_id, received, record)
                    self._retain(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return
            except sqlite3.Error as exc:
                if attempt == 2:
                    self.dropped += len(batch)
                    logger.warning(
                        "guardrails_engine: %d traces not written to %s (%s)",
                        len(batch),
                        self.path,
                        type(exc).__name__,
                    )
                    return
                time.sleep(0.05 * (attempt + 1))

    def _retain(self, conn: sqlite3.Connection) -> None:
        if self.max_age_s is not None:
            conn.execute("DELETE FROM calls WHERE started_at < ?", (time.time() - self.max_age_s,))
        if self.max_rows is not None:
            conn.execute(
                "DELETE FROM calls WHERE id <= (SELECT id FROM calls ORDER BY id DESC "
                "LIMIT 1 OFFSET ?)",
                (self.max_rows,),
            )


#: The stores not closed, to restart their writers in a forked child.
_OPEN: weakref.WeakSet[TraceStore] = weakref.WeakSet()


def _after_fork() -> None:
    for store in list(_OPEN):
        if not store._closed:
            store._start()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _reopen(
    path: str,
    max_age_s: float | None,
    max_rows: int | None,
    batch_size: int,
    busy: float,
    max_queue: int,
) -> TraceStore:
    return TraceStore(
        path,
        max_age_s=max_age_s,
        max_rows=max_rows,
        batch_size=batch_size,
        busy_timeout_s=busy,
        max_queue=max_queue,
    )


def _insert(conn: sqlite3.Connection, record_id: str, received: float, record: Any) -> None:
    row: tuple[object, ...]
    if isinstance(record, CallTrace):
        row = (
            record_id,
            record.trace_id,
            "call",
            record.started_at,
            record.policy,
            record.policy_hash,
            record.provider,
            record.operation,
            int(record.streamed),
            record.request_model,
            record.response_model,
            record.response_id,
            json.dumps(dict(record.parameters), default=str),
            record.decision,
            record.ending,
            json.dumps(list(record.finish_reasons)),
            record.input_tokens,
            record.output_tokens,
            record.upstream_first_ms,
            record.first_out_ms,
            record.duration_ms,
            len(record.attempts),
            record.error,
            record.prompt,
            record.output,
        )
        runs = [(i, r) for i, a in enumerate(record.attempts) for r in a.runs]
    else:
        trace: Trace = record
        row = (
            record_id,
            trace.trace_id,
            trace.kind,
            received - trace.duration_ms / 1000,
            trace.policy,
            trace.policy_hash,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            trace.decision,
            trace.ending,
            None,
            None,
            None,
            None,
            trace.first_out_ms,
            trace.duration_ms,
            1,
            trace.error,
            None,
            None,
        )
        runs = [(0, RunRecord("text", 0, None, trace))]
    cur = conn.execute(f"INSERT OR IGNORE INTO calls VALUES (NULL{', ?' * len(row)})", row)
    if cur.rowcount == 0:  # written before (a retried batch)
        return
    call_id = cur.lastrowid
    for attempt, run in runs:
        t = run.trace
        run_id = conn.execute(
            "INSERT INTO runs VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                call_id,
                attempt,
                run.part,
                run.index,
                run.name,
                t.decision,
                t.ending,
                t.chars_in,
                t.chars_out,
                t.holdback_max,
                t.first_out_ms,
                t.duration_ms,
            ),
        ).lastrowid
        conn.executemany(
            "INSERT INTO findings VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    call_id,
                    f["check_id"],
                    f["check_type"],
                    f["action"],
                    f["entity_type"],
                    f["reason"],
                )
                for f in t.findings
            ],
        )
        conn.executemany(
            "INSERT INTO topic_scores VALUES (NULL, ?, ?, ?, ?, ?)",
            [
                (run_id, call_id, check_id, topic, score)
                for check_id, scores in t.topic_scores.items()
                for topic, score in scores.items()
            ],
        )
        if t.drift:
            d = t.drift
            conn.execute(
                "INSERT INTO drift VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    call_id,
                    d["reference"],
                    d["reference_texts"],
                    d["quantile"],
                    d["threshold"],
                    d["similarity"],
                    int(d["uncovered"]),
                ),
            )
