"""Scoring a model's output against a case's criteria.

Every scorer gives a :class:`Score`: passed, failed, or an error (``passed is
None``: a judge that timed out or answered nonsense, a regex that ran too long).
An error is never a pass and is never dropped: the report counts it.

Reasons never quote the output (it may hold what the policy removed): a schema
failure names the path and the keyword, a judge's reason is the judge's words.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import regex

from ..checks._judge import Ask, Judge
from .model_cases import Criterion

__all__ = ["Ask", "Embed", "Judge", "Score", "score_plain", "similarity"]

#: A regex criterion gives up (an error) after this long on one output.
REGEX_SECONDS = 1.0

#: texts -> one vector each (any sequence of floats).
Embed = Callable[[Sequence[str]], Sequence[Sequence[float]]]


@dataclass(frozen=True, slots=True)
class Score:
    """How one output did on one criterion.  ``passed`` is None for an error."""

    criterion: str
    passed: bool | None
    score: float | None = None
    reason: str = ""
    tokens: int = 0

    @property
    def error(self) -> bool:
        return self.passed is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "passed": self.passed,
            "score": self.score,
            "reason": self.reason,
            "tokens": self.tokens,
        }


def _strip_fence(text: str) -> str:
    """A JSON answer wrapped in a markdown code fence, unwrapped."""
    s = text.strip()
    if s.startswith("```") and s.endswith("```") and "\n" in s:
        return s[s.index("\n") + 1 : -3].strip()
    return s


def score_plain(c: Criterion, output: str) -> Score:
    """The criteria that need no model: exact, contains, regex, schema."""
    if c.kind == "exact":
        ok = output.strip() == str(c.value).strip()
        return Score("exact", ok, float(ok), "" if ok else "differs from the expected output")
    if c.kind == "contains":
        ok = str(c.value) in output
        return Score("contains", ok, float(ok), "" if ok else f"does not contain {c.value!r}")
    if c.kind == "regex":
        try:
            ok = regex.search(str(c.value), output, timeout=REGEX_SECONDS) is not None
        except TimeoutError:
            return Score("regex", None, None, f"the pattern ran past {REGEX_SECONDS:g} s")
        return Score("regex", ok, float(ok), "" if ok else "the pattern does not match")
    if c.kind == "schema":
        return _schema(c.value, output)
    raise ValueError(f"{c.kind} needs a model")


def _schema(schema: Mapping[str, Any], output: str) -> Score:
    from jsonschema.validators import validator_for

    try:
        doc = json.loads(_strip_fence(output))
    except (ValueError, RecursionError):
        return Score("schema", False, 0.0, "the output is not JSON")
    validator = validator_for(schema)(schema)
    try:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    except RecursionError:
        return Score("schema", None, None, "the output is nested too deeply to check")
    if not errors:
        return Score("schema", True, 1.0)
    first = errors[0]
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Score("schema", False, 0.0, f"at {path}: {first.validator}{more}")


def similarity(embed: Embed, output: str, expected: str, threshold: float) -> Score:
    """Cosine similarity of the two texts' embeddings, passing at ``threshold``."""
    vectors = embed([output, expected])
    if len(vectors) != 2:
        return Score("similarity", None, None, "the embedder did not give two vectors")
    a, b = (list(map(float, v)) for v in vectors)
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    if not (na and nb) or len(a) != len(b):
        return Score("similarity", False, 0.0, "an empty text or an embedding of no length")
    cos = sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)
    if not math.isfinite(cos):
        return Score("similarity", None, None, "the embedder gave a vector that is not finite")
    value = round(max(-1.0, min(1.0, cos)), 4)
    ok = value >= threshold
    return Score("similarity", ok, value, "" if ok else f"similarity {value} < {threshold}")
