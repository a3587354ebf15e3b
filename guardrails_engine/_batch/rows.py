"""One row in, one row out: the record a batch scan writes for each text.

A row never carries the raw value of a finding: only where it is, what it is and
why (the reason, which the engine keeps free of values).  The checked text is kept
only when the caller asks for it (``write_text``), and then only as the policy
repaired it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._common.model import Finding
from .inputs import BatchInputError

__all__ = ["ERROR", "ScanRow", "ScanSummary", "check_fields", "row_of", "scan_records"]

#: The decision of a row that could not be checked (not text, no such field, bad JSON).
ERROR = "error"


@dataclass(frozen=True, slots=True)
class ScanRow:
    """What a scan found in one record.

    ``decision`` is ``pass``, ``repair``, ``block`` or ``error`` (the record could
    not be checked: ``error`` says why, without its content).  ``findings`` are
    dicts with the check, entity, span, action, score and reason of each finding;
    never the value.  ``text`` is the repaired text, only with ``write_text``.
    """

    id: Any
    decision: str
    findings: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None
    text: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "decision": self.decision,
            "findings": [dict(f) for f in self.findings],
            "error": self.error,
        }
        if self.text is not None:
            out["text"] = self.text
        return out


def finding_row(f: Finding) -> dict[str, Any]:
    """A finding as a scan writes it: no value, no replacement."""
    return {
        "check": f.check_id,
        "type": f.check_type,
        "action": f.action.value,
        "entity": f.entity_type,
        "start": f.start,
        "end": f.end,
        "score": f.score,
        "reason": f.reason,
    }


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def check_fields(field: str, id_field: str | None) -> None:
    """Refuse an id field that is the text field: the text would be written as the id."""
    if not isinstance(field, str) or not field:
        raise TypeError(f"field must be a non-empty string, not {field!r}")
    if id_field is not None and not isinstance(id_field, str):
        raise TypeError(f"id_field must be a string or None, not {type(id_field).__name__}")
    if id_field == field:
        raise BatchInputError(f"id_field and field are both {field!r}: the text would be the id")


def _unicode(value: str) -> bool:
    """Whether ``value`` can be written as UTF-8 (JSON's escapes allow lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_id(value: object) -> str | None:
    """Why ``value`` cannot be a row's id, or None: an id is a scalar (a string, a
    number, a Parquet date), never a list, an object or bytes (which could carry
    anything of the record), nor NaN (not JSON)."""
    if isinstance(value, str):
        return None if _unicode(value) else "an id that is not valid Unicode"
    if isinstance(value, Mapping | list | tuple | set | bytes | bytearray):
        return f"an id that is {_type_name(value)}, not a string or a number"
    if isinstance(value, float) and not math.isfinite(value):
        return "an id that is not a finite number"
    return None


def row_of(
    policy: Any,
    record: object,
    *,
    field: str,
    id_field: str | None,
    default_id: Any,
    write_text: bool = False,
    source: str | None = None,
) -> ScanRow:
    """Check one record: a ``str`` (the text itself) or a mapping holding the text
    under ``field`` (and its id under ``id_field``, if there)."""
    row_id = default_id
    if isinstance(record, str):
        text: object = record
    elif isinstance(record, Mapping):
        if id_field is not None and record.get(id_field) is not None:
            why = _bad_id(record[id_field])
            if why is not None:
                return ScanRow(row_id, ERROR, error=why, source=source)
            row_id = record[id_field]
        if field not in record:
            return ScanRow(row_id, ERROR, error=f"no field {field!r}", source=source)
        text = record[field]
    else:
        return ScanRow(
            row_id, ERROR, error=f"a record is {_type_name(record)}, not an object", source=source
        )
    if not isinstance(text, str):
        return ScanRow(
            row_id,
            ERROR,
            error=f"field {field!r} is {_type_name(text)}, not a string",
            source=source,
        )
    if not _unicode(text):
        return ScanRow(row_id, ERROR, error="a text that is not valid Unicode", source=source)
    result = policy.validate_sync(text)
    return ScanRow(
        row_id,
        result.decision.value,
        tuple(finding_row(f) for f in result.findings),
        None,
        result.text if write_text else None,
        source,
    )


def scan_records(
    policy: Any,
    records: Iterable[object],
    *,
    field: str = "text",
    id_field: str | None = "id",
    write_text: bool = False,
) -> Iterator[ScanRow]:
    """Check each record in this process, lazily, in order.

    A record is a ``str`` or a mapping with the text under ``field``; a record
    without an id under ``id_field`` is numbered from 0.  A record that cannot be
    checked gives a row with decision ``error``; a check that fails is decided by
    the policy's ``on_error`` like any other run.
    """
    check_fields(field, id_field)
    for i, record in enumerate(records):
        yield row_of(
            policy, record, field=field, id_field=id_field, default_id=i, write_text=write_text
        )


@dataclass
class ScanSummary:
    """Counts over the rows of a scan: per decision, per check, per entity."""

    rows: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    entities: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, row: ScanRow) -> None:
        self.rows += 1
        self.decisions[row.decision] += 1
        for f in row.findings:
            self.checks[str(f["check"])] += 1
            if f.get("entity"):
                self.entities[str(f["entity"])] += 1
        if row.error is not None:
            self.errors[row.error] += 1

    def merge(self, other: ScanSummary) -> None:
        self.rows += other.rows
        self.decisions.update(other.decisions)
        self.checks.update(other.checks)
        self.entities.update(other.entities)
        self.errors.update(other.errors)

    @property
    def bad_rows(self) -> int:
        return self.decisions[ERROR]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "decisions": dict(sorted(self.decisions.items())),
            "checks": dict(sorted(self.checks.items())),
            "entities": dict(sorted(self.entities.items())),
            "errors": dict(sorted(self.errors.items())),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds > 0 else None,
        }

    def to_text(self) -> str:
        d = self.to_dict()
        lines = [f"{self.rows} rows in {d['seconds']} s ({d['rows_per_second']} rows/s)"]
        lines.append(
            "decisions: " + ", ".join(f"{k} {v}" for k, v in d["decisions"].items())
            if d["decisions"]
            else "decisions: none"
        )
        for name in ("checks", "entities"):
            if d[name]:
                lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in d[name].items()))
        if d["errors"]:
            lines.append("bad rows: " + ", ".join(f"{k} ({v})" for k, v in d["errors"].items()))
        return "\n".join(lines) + "\n"
