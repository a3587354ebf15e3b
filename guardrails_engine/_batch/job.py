"""A batch scan of files: plan the partitions, scan each where it runs, write one
output file per partition, add up the summaries."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .inputs import (
    DEFAULT_PARTITION_BYTES,
    BadRecord,
    BatchInputError,
    Partition,
    plan,
    pyarrow_parquet,
    read,
)
from .outputs import Format, write_part
from .rows import ERROR, ScanRow, ScanSummary, check_fields, row_of
from .runners import Runner, make_runner

__all__ = ["ScanOptions", "scan_files", "scan_partition"]


@dataclass(frozen=True, slots=True)
class ScanOptions:
    field: str = "text"
    id_field: str | None = "id"
    write_text: bool = False
    fmt: Format = "jsonl"

    def __post_init__(self) -> None:
        check_fields(self.field, self.id_field)


def scan_partition(policy: Any, out_dir: str, options: ScanOptions, part: Partition) -> ScanSummary:
    """Scan one partition where this runs and write its output file."""
    rows: list[ScanRow] = []
    summary = ScanSummary()
    for default_id, record in read(part, field=options.field, id_field=options.id_field):
        if isinstance(record, BadRecord):
            row = ScanRow(default_id, ERROR, error=record.why, source=part.path)
        else:
            row = row_of(
                policy,
                record,
                field=options.field,
                id_field=options.id_field,
                default_id=default_id,
                write_text=options.write_text,
                source=part.path,
            )
        rows.append(row)
        summary.add(row)
    write_part(out_dir, part.index, rows, options.fmt)
    return summary


def _prepare(out_dir: str, overwrite: bool, parts: Sequence[Partition]) -> None:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BatchInputError(f"{out_dir}: not a folder")
    where = out.resolve()
    for path in sorted({p.path for p in parts}):
        if Path(path).resolve().parent == where:
            # its part files would be read as inputs next time, or deleted by overwrite
            raise BatchInputError(
                f"{out_dir}: holds the input {path}; write the results to another folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    old = [p for p in out.iterdir() if p.name.startswith("part-") or p.name == "_summary.json"]
    if old and not overwrite:
        raise BatchInputError(
            f"{out_dir}: holds the output of an earlier scan ({len(old)} files); "
            "choose another folder or pass overwrite"
        )
    for p in old + _leftovers(out):
        p.unlink()


def _leftovers(out: Path) -> list[Path]:
    """Part files half written by a worker that was killed (hidden, but as large as
    a partition's rows)."""
    return [p for p in out.glob(".part-*.tmp") if p.is_file()]


def scan_files(
    policy: Any,
    paths: Sequence[str],
    out_dir: str,
    *,
    options: ScanOptions = ScanOptions(),
    runner: Runner | None = None,
    partition_bytes: int = DEFAULT_PARTITION_BYTES,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ScanSummary:
    """Scan JSON-lines and Parquet files into ``out_dir`` (``part-NNNNN.*`` files,
    one per partition, and ``_summary.json``); return the summary."""
    if options.fmt == "parquet":
        pyarrow_parquet()  # say now, not in every worker, that pyarrow is missing
    parts = plan(paths, partition_bytes=partition_bytes)
    _prepare(out_dir, overwrite, parts)
    own = runner is None
    runner = runner or make_runner()
    started = time.perf_counter()
    total = ScanSummary()
    task = functools.partial(scan_partition, policy, str(Path(out_dir).absolute()), options)
    try:
        for done, (_, summary) in enumerate(runner.map(task, parts), 1):
            total.merge(summary)
            if progress is not None:
                progress(done, len(parts))
    finally:
        if own:
            runner.close()
    total.seconds = time.perf_counter() - started
    for p in _leftovers(Path(out_dir)):
        p.unlink(missing_ok=True)
    (Path(out_dir) / "_summary.json").write_text(
        json.dumps(total.to_dict(), indent=2) + "\n", encoding="utf-8"
    )
    return total
