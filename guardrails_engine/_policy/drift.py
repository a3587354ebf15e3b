"""Compiling a policy's ``drift:``: its reference (a file inside the policy's folder,
read by the confined reader), embedded once here with the topic checks' embedder.

Each run of the policy is then measured against it (:class:`DriftMonitor`): its
trace records the best similarity and whether it is uncovered, numbers only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .._common.files import FileRefused, read_confined_text, why_unreadable
from .._spec.config import DriftSpec, TopicSpec
from .._spec.located import Located
from .._spec.reading import load_yaml

if TYPE_CHECKING:
    from ..checks._topic.coverage import Coverage

__all__ = ["DriftMonitor", "compile_drift"]


class DriftMonitor:
    """A policy's drift reference, embedded (immutable, shared by every run)."""

    __slots__ = ("coverage", "max_chars", "reference")

    def __init__(self, coverage: Coverage, reference: str, max_chars: int) -> None:
        self.coverage = coverage
        #: A hash of the reference file's text: which reference a trace was measured by.
        self.reference = reference
        self.max_chars = max_chars

    def measure(self, text: str) -> dict[str, Any]:
        """The numbers a run's trace records for ``text`` (its first ``max_chars``)."""
        best, uncovered = self.coverage.similarity([text[: self.max_chars]])
        return {
            "reference": self.reference,
            "similarity": round(float(best[0]), 4),
            "threshold": round(self.coverage.threshold, 4),
            "uncovered": bool(uncovered[0]),
            "quantile": self.coverage.q,
            "reference_texts": self.coverage.size,
        }

    def __repr__(self) -> str:
        return f"<DriftMonitor {self.coverage.size} texts>"


def compile_drift(
    d: DriftSpec, located: Located, base_dir: Path, trusted: tuple[str, ...]
) -> DriftMonitor:
    from ..checks._topic import EmbedderError
    from ..checks._topic.coverage import Coverage, reference_id
    from .topic import embedder_of

    where: list[Any] = ["drift"]
    text = _read(d.reference, base_dir, located, [*where, "reference"])
    texts = [t[: d.max_chars] for t in _texts(d, text, located, [*where, "reference"])]
    # The embedder as a topic check would have it (default WordLlama, or a trusted one).
    topic = TopicSpec.model_validate(
        {"id": "drift", "type": "topic", "deny": {"x": ["x"]}, "embedder": d.embedder}
    )
    embedder = embedder_of(topic, located, where, trusted, [*where, "reference"])
    field = [*where, "embedder"] if d.embedder else [*where, "reference"]
    try:
        coverage = Coverage(texts, embedder, d.quantile)
    except EmbedderError as exc:
        raise located.error(field, f"the embedder broke its contract: {exc}") from None
    except ValueError as exc:  # too few texts (a message of ours: no text)
        raise located.error([*where, "reference"], f"{d.reference}: {exc}") from None
    except Exception as exc:  # the embedder's own failure: its type only, never its message
        raise located.error(field, f"the embedder failed: {type(exc).__name__}") from None
    return DriftMonitor(coverage, reference_id(text), d.max_chars)


def _read(name: str, folder: Path, located: Located, field: list[Any]) -> str:
    try:
        return read_confined_text(folder / name, folder.resolve())
    except (FileRefused, OSError) as exc:
        raise located.error(field, f"cannot read the reference: {why_unreadable(exc)}") from None


def _texts(d: DriftSpec, text: str, located: Located, field: list[Any]) -> list[str]:
    """The reference's texts: JSON lines (a string, an object with ``field``, or an
    eval case's ``input``), or a YAML case file (a list of cases, or ``cases:``).
    A problem names the file and line, never a text of it."""
    name = d.reference
    if name.endswith(".jsonl"):
        out: list[str] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise located.error(field, f"{name}:{n}: invalid JSON: {exc.msg}") from None
            if isinstance(item, dict):
                value = item.get(d.field, item.get("input"))
            else:
                value = item
            if not isinstance(value, str):
                raise located.error(
                    field, f"{name}:{n}: no text: a string or an object with {d.field!r}"
                )
            out.append(value)
        return out
    if not name.endswith((".yaml", ".yml")):
        raise located.error(
            field, f"{name}: a reference is JSON lines (.jsonl) or a YAML case file (.yaml)"
        )
    try:
        _root, data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = "" if mark is None else f":{int(mark.line) + 1}"
        raise located.error(field, f"{name}{line}: not valid YAML") from None
    cases = data.get("cases") if isinstance(data, dict) else data
    if not isinstance(cases, list):
        raise located.error(field, f"{name}: a case file is a list of cases, or `cases:`")
    out = []
    for i, case in enumerate(cases):
        value = case.get("input") if isinstance(case, dict) else None
        if not isinstance(value, str):
            raise located.error(field, f"{name}: case {i + 1} has no `input` text")
        out.append(value)
    return out
