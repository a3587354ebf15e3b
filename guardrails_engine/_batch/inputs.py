"""Where a batch scan's records come from: JSON-lines and Parquet files, cut into
partitions that a worker reads itself.

The driver only looks at file sizes (JSON lines) and Parquet footers; the records
are read by whoever scans the partition, so no text travels from the driver to the
workers.  A JSON-lines partition is a byte range: it holds the lines that *start*
inside it, so ranges cut anywhere give every line exactly once.  A Parquet
partition is one row group.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .._common.errors import GuardrailsError

__all__ = ["BadRecord", "BatchInputError", "Partition", "plan", "pyarrow_parquet", "read"]

#: JSON lines are cut into ranges of about this many bytes.
DEFAULT_PARTITION_BYTES = 8 * 1024 * 1024
#: A longer line is a bad row (its content is never read into memory whole).
MAX_LINE_BYTES = 16 * 1024 * 1024

_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class BatchInputError(GuardrailsError, ValueError):
    """An input of a batch scan cannot be read at all (not a row: the whole file)."""


@dataclass(frozen=True, slots=True)
class Partition:
    """A slice of one input file: bytes ``start``-``stop`` of JSON lines, or the
    Parquet row groups ``start``-``stop`` whose first row is row ``first_row``."""

    index: int
    path: str
    kind: Literal["jsonl", "parquet"]
    start: int
    stop: int
    first_row: int = 0


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record that could not be read; ``why`` never quotes its content."""

    why: str


def _kind(path: str) -> Literal["jsonl", "parquet"]:
    kind = _SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise BatchInputError(
            f"{path}: not a JSON-lines (.jsonl, .ndjson) or Parquet (.parquet) file"
        )
    return "parquet" if kind == "parquet" else "jsonl"


def _files(paths: Sequence[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            # hidden and _-prefixed files are metadata (a scan's _summary.json, Spark's
            # _SUCCESS), as for Spark, pyarrow and Dask reading a folder as a dataset
            out.extend(
                str(c)
                for c in sorted(Path(p).iterdir())
                if c.suffix.lower() in _SUFFIXES and not c.name.startswith((".", "_"))
            )
        else:
            out.append(p)
    if not out:
        raise BatchInputError("no input files")
    # A file named twice (a folder and a file in it, a symlink and its target) is
    # read once: every input row comes out exactly once.
    seen: set[str] = set()
    unique = []
    for f in out:
        real = os.path.realpath(f)
        if real not in seen:
            seen.add(real)
            unique.append(f)
    return unique


def plan(
    paths: Sequence[str], *, partition_bytes: int = DEFAULT_PARTITION_BYTES
) -> list[Partition]:
    """The partitions of the given files (folders: their .jsonl and .parquet files)."""
    if partition_bytes < 1:
        raise BatchInputError(f"partition_bytes must be positive, not {partition_bytes}")
    parts: list[Partition] = []
    for path in _files(paths):
        kind = _kind(path)
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                # a FIFO, a device or a socket would block the reader or never end
                raise BatchInputError(f"{path}: not a regular file")
            if kind == "jsonl":
                size = os.path.getsize(path)
                for start in range(0, max(size, 1), partition_bytes):
                    stop = min(start + partition_bytes, size)
                    parts.append(Partition(len(parts), path, kind, start, stop))
            else:
                parts.extend(_parquet_parts(path, len(parts)))
        except OSError as exc:
            raise BatchInputError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return parts


def _parquet_parts(path: str, first_index: int) -> list[Partition]:
    pq = pyarrow_parquet()
    try:
        meta = pq.ParquetFile(path).metadata
    except OSError:
        raise  # reported by plan() as unreadable
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise BatchInputError(f"{path}: not a Parquet file ({type(exc).__name__})") from None
    parts, row = [], 0
    for g in range(meta.num_row_groups):
        parts.append(Partition(first_index + g, path, "parquet", g, g + 1, row))
        row += meta.row_group(g).num_rows
    return parts


def pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BatchInputError(
            "Parquet needs pyarrow: pip install 'guardrails-engine[batch]'"
        ) from None
    return pq


def read(part: Partition, *, field: str, id_field: str | None) -> Iterator[tuple[Any, object]]:
    """The partition's records as ``(default id, record)``; a record that cannot
    be read is a :class:`BadRecord`.  The default id is ``path:byte offset`` of a
    line, or ``path:row number`` of a Parquet row (from 0)."""
    if part.kind == "jsonl":
        yield from _read_lines(part)
    else:
        yield from _read_parquet(part, field, id_field)


def _read_lines(part: Partition) -> Iterator[tuple[Any, object]]:
    with open(part.path, "rb") as f:
        if part.start > 0:
            f.seek(part.start - 1)
            if f.read(1) != b"\n":
                _skip_line(f)  # the line started in the partition before
        while (pos := f.tell()) < part.stop:
            line = f.readline(MAX_LINE_BYTES + 1)
            if not line:
                break
            key = f"{part.path}:{pos}"
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                _skip_line(f)
                yield key, BadRecord(f"a line longer than {MAX_LINE_BYTES} bytes")
                continue
            if not line.strip():
                continue
            try:
                yield key, json.loads(line)
            except UnicodeDecodeError:
                yield key, BadRecord("a line that is not UTF-8")
            except (ValueError, RecursionError):
                yield key, BadRecord("a line that is not valid JSON")


def _skip_line(f: Any) -> None:
    while True:
        piece = f.readline(1 << 20)
        if not piece or piece.endswith(b"\n"):
            return


def _read_parquet(
    part: Partition, field: str, id_field: str | None
) -> Iterator[tuple[Any, object]]:
    pq = pyarrow_parquet()
    pf = pq.ParquetFile(part.path)
    names = set(pf.schema_arrow.names)
    columns = [c for c in (field, id_field) if c is not None and c in names]
    for g in range(part.start, part.stop):
        table = pf.read_row_group(g, columns=columns)
        for i, record in enumerate(table.to_pylist()):
            yield f"{part.path}:{part.first_row + i}", record
