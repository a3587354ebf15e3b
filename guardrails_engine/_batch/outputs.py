"""Where a batch scan's rows go: one file per partition, written whole or not at
all, so a partition scanned twice (a retried task) replaces its file and the
output holds each input row exactly once."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from .rows import ScanRow

__all__ = ["Format", "part_name", "write_part"]

Format = Literal["jsonl", "parquet"]


def part_name(index: int, fmt: Format) -> str:
    return f"part-{index:05d}.{fmt}"


def write_part(out_dir: str, index: int, rows: Sequence[ScanRow], fmt: Format) -> str:
    """Write one partition's rows; return the file's path."""
    final = Path(out_dir) / part_name(index, fmt)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row.to_dict(), ensure_ascii=False, default=str) + "\n")
        else:
            _write_parquet(tmp, rows)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return str(final)


def _findings_type(pa: Any) -> Any:
    return pa.list_(
        pa.struct(
            [
                ("check", pa.string()),
                ("type", pa.string()),
                ("action", pa.string()),
                ("entity", pa.string()),
                ("start", pa.int64()),
                ("end", pa.int64()),
                ("score", pa.float64()),
                ("reason", pa.string()),
            ]
        )
    )


def _write_parquet(path: Path, rows: Sequence[ScanRow]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, Any] = {
        "id": pa.array([str(r.id) for r in rows], pa.string()),
        "source": pa.array([r.source for r in rows], pa.string()),
        "decision": pa.array([r.decision for r in rows], pa.string()),
        "findings": pa.array([[dict(f) for f in r.findings] for r in rows], _findings_type(pa)),
        "error": pa.array([r.error for r in rows], pa.string()),
    }
    if any(r.text is not None for r in rows):
        columns["text"] = pa.array([r.text for r in rows], pa.string())
    pq.write_table(pa.table(columns), path)
