"""Batch scans: check many logged texts with a policy, in this process, in a pool
of processes, or on a Dask cluster (extra ``[batch]`` for Dask and Parquet).

>>> import guardrails_engine.batch as geb                       # doctest: +SKIP
>>> for row in geb.scan_records(policy, [{"id": 1, "text": "mail jdoe@example.com"}]):
...     row.decision, [f["entity"] for f in row.findings]        # doctest: +SKIP
('repair', ['EMAIL_ADDRESS'])

- :func:`scan_records` checks records one by one in this process (an iterator).
- :func:`scan_files` scans JSON-lines and Parquet files into a folder of output
  files, one per partition, read and written by the workers themselves; this is
  ``guardrails-engine scan``.
- :func:`scan_dask` applies a policy to a Dask DataFrame or bag and returns one of
  the same kind, to compose with a pipeline of your own.
- :func:`evaluate` replays an evaluation suite spread over workers.

The policy is sent to workers as its source and compiled once per worker process.
A row never holds a detected value: findings are check, entity, span, action,
score and reason; the repaired text only when asked for (``write_text``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ._batch.inputs import DEFAULT_PARTITION_BYTES, BatchInputError
from ._batch.job import ScanOptions
from ._batch.job import scan_files as _scan_files
from ._batch.outputs import Format
from ._batch.rows import ScanRow, ScanSummary, check_fields, row_of, scan_records
from ._batch.runners import BatchError, make_runner
from ._evals.eval import Case, EvalReport
from ._evals.eval import evaluate as _evaluate
from ._policy.policy import Policy, load_policy

__all__ = [
    "BatchError",
    "BatchInputError",
    "ScanRow",
    "ScanSummary",
    "evaluate",
    "scan_dask",
    "scan_files",
    "scan_records",
]


def _policy(policy: Policy | str | Path) -> Policy:
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str | Path):
        return load_policy(policy)
    raise TypeError(f"policy must be a Policy or a path, not {type(policy).__name__}")


def scan_files(
    policy: Policy | str | Path,
    paths: Sequence[str],
    output: str | Path,
    *,
    field: str = "text",
    id_field: str | None = "id",
    write_text: bool = False,
    format: Format = "jsonl",
    workers: int | None = None,
    local: int | None = None,
    scheduler: str | None = None,
    partition_bytes: int = DEFAULT_PARTITION_BYTES,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ScanSummary:
    """Scan JSON-lines and Parquet files (folders: the files in them) into the
    folder ``output``: ``part-NNNNN.jsonl`` (or ``.parquet``), one per partition,
    and ``_summary.json``.

    In this process by default; ``workers`` processes on this machine;
    ``local`` workers of a new Dask ``LocalCluster``; or the Dask scheduler at
    ``scheduler``.  A record without ``id_field`` is named ``path:byte offset``
    (JSON lines) or ``path:row`` (Parquet).  A record that cannot be checked is
    a row with decision ``error``; the job goes on.

    :raises BatchInputError: an input cannot be read, or ``output`` holds an
        earlier scan (unless ``overwrite``).
    :raises BatchError: the workers could not finish.
    """
    if isinstance(paths, str | Path):
        raise TypeError("paths must be a list of paths, not one path")
    if format not in ("jsonl", "parquet"):
        raise ValueError(f"format must be 'jsonl' or 'parquet', not {format!r}")
    compiled = _policy(policy)
    runner = make_runner(workers=workers, local=local, scheduler=scheduler)
    try:
        return _scan_files(
            compiled,
            [str(p) for p in paths],
            str(output),
            options=ScanOptions(field, id_field, write_text, format),
            runner=runner,
            partition_bytes=partition_bytes,
            overwrite=overwrite,
            progress=progress,
        )
    finally:
        runner.close()


def _scan_frame(
    frame: Any, policy: Policy, field: str, id_field: str | None, write_text: bool
) -> Any:
    import pandas as pd

    has_id = id_field is not None and id_field in frame.columns
    rows: dict[str, list[Any]] = {"id": [], "decision": [], "findings": [], "error": []}
    if write_text:
        rows["text"] = []
    if field in frame.columns:
        texts: Iterable[Any] = frame[field]
    else:
        texts = [None] * len(frame)
    ids = frame[id_field] if has_id else frame.index
    for row_id, text in zip(ids, texts, strict=True):
        record = {field: text} if field in frame.columns else {}
        row = row_of(
            policy, record, field=field, id_field=None, default_id=row_id, write_text=write_text
        )
        rows["id"].append(row.id)
        rows["decision"].append(row.decision)
        rows["findings"].append([dict(f) for f in row.findings])
        rows["error"].append(row.error)
        if write_text:
            rows["text"].append(row.text)
    return pd.DataFrame(rows, index=frame.index)


def _scan_bag_part(
    records: Iterable[Any], policy: Policy, field: str, id_field: str | None, write_text: bool
) -> list[dict[str, Any]]:
    return [
        row_of(
            policy, r, field=field, id_field=id_field, default_id=None, write_text=write_text
        ).to_dict()
        for r in records
    ]


def scan_dask(
    policy: Policy | str | Path,
    data: Any,
    *,
    field: str = "text",
    id_field: str | None = "id",
    write_text: bool = False,
) -> Any:
    """Apply the policy to a Dask DataFrame (the text in column ``field``) or a Dask
    bag (of strings, or of dicts with the text under ``field``), lazily.

    A DataFrame gives a DataFrame with the same index and the columns ``id`` (the
    ``id_field`` column, else the index), ``decision``, ``findings`` (a list of
    dicts per row), ``error`` and, with ``write_text``, ``text``; a bag gives a bag
    of row dicts (:meth:`ScanRow.to_dict`).
    """
    check_fields(field, id_field)
    compiled = _policy(policy)
    try:
        import dask.bag as db
        import dask.dataframe as dd
    except ImportError:
        raise BatchError("scan_dask needs Dask: pip install 'guardrails-engine[batch]'") from None
    if isinstance(data, dd.DataFrame):
        import pandas as pd

        meta = {
            "id": pd.Series(dtype=object),
            "decision": pd.Series(dtype=object),
            "findings": pd.Series(dtype=object),
            "error": pd.Series(dtype=object),
        }
        if write_text:
            meta["text"] = pd.Series(dtype=object)
        return data.map_partitions(
            _scan_frame, compiled, field, id_field, write_text, meta=pd.DataFrame(meta)
        )
    if isinstance(data, db.Bag):
        return data.map_partitions(_scan_bag_part, compiled, field, id_field, write_text)
    raise TypeError(f"data must be a Dask DataFrame or bag, not {type(data).__name__}")


def evaluate(
    policy: Policy | str | Path,
    cases: Iterable[Case | dict[str, Any]],
    *,
    seed: int = 0,
    workers: int | None = None,
    local: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """:func:`guardrails_engine.evaluate`, with the cases spread over ``workers``
    processes, a ``local`` Dask cluster or the Dask ``scheduler``; the same report."""
    compiled = _policy(policy)
    runner = make_runner(workers=workers, local=local, scheduler=scheduler)
    try:
        return _evaluate(compiled, cases, seed=seed, progress=progress, map_tasks=runner.map)
    finally:
        runner.close()
