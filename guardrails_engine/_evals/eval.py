"""Evaluation: replay a suite of cases whole and streamed, and report.

A case is an ``input`` and what to ``expect``: a ``decision``, optionally the
exact output ``text`` and the findings by check id and entity type.  Every case
runs whole and streamed under several chunkings (character by character,
random small chunks, word by word; seedable); it passes only if every run
meets the expectation.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._common.errors import GuardrailsError
from .._common.model import Action, Decision, Result
from .._runtime.stats import Holdbacks
from .._spec.reading import YamlRefused, load_yaml, repeated_key

__all__ = ["Case", "CaseError", "EvalReport", "evaluate", "load_cases", "read_cases"]

CHUNKINGS = ("whole", "chars", "random", "words")


class CaseError(GuardrailsError, ValueError):
    """A case file that cannot be read: names the file, the line and the field."""

    def __init__(self, message: str, *, source: str, line: int | None, field: str | None) -> None:
        self.source, self.line, self.field, self.message = source, line, field, message
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


class _Spec(BaseModel):
    # Validators are built when first used, not when the package is imported.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class _FindingExpect(_Spec):
    check: str = Field(min_length=1)
    entity: str | None = None


class _Expect(_Spec):
    decision: Literal["pass", "repair", "block"]
    text: str | None = None
    findings: list[_FindingExpect] | None = None


class _CaseSpec(_Spec):
    id: str | None = None
    input: str
    expect: _Expect


@dataclass(frozen=True, slots=True)
class Case:
    """One evaluation case."""

    id: str
    input: str
    decision: Decision
    text: str | None = None
    findings: tuple[tuple[str, str | None], ...] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, default_id: str) -> Case:
        """:raises pydantic.ValidationError: if ``data`` is not a case."""
        spec = _CaseSpec.model_validate(data)
        expected = spec.expect
        return cls(
            id=spec.id or default_id,
            input=spec.input,
            decision=Decision(expected.decision),
            text=expected.text,
            findings=None
            if expected.findings is None
            else tuple((f.check, f.entity) for f in expected.findings),
        )


def _case_error(exc: ValidationError, source: str, line: int | None) -> CaseError:
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"])
    msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"])
    return CaseError(msg, source=source, line=line, field=path or None)


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def load_cases(path: str | Path) -> list[Case]:
    """Read cases from a JSONL file (one case a line) or a YAML file (a list of cases).

    :raises CaseError: naming the file, the line and the field of a bad case.
    """
    return read_cases(path, Case.from_dict)


class _Named(Protocol):
    @property
    def id(self) -> str: ...


C = TypeVar("C", bound=_Named)


def read_cases(path: str | Path, build: Callable[..., C]) -> list[C]:
    """Read a case file, each case made by ``build(data, default_id=...)`` (which
    raises pydantic's ValidationError for a bad case, mapped to its line and field).

    :raises CaseError: naming the file, the line and the field of a bad case.
    """
    p = Path(path)
    source = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(f"cannot read: {exc}", source=source, line=None, field=None) from exc
    cases: list[C] = []
    seen: dict[str, int] = {}  # case id -> its line
    if p.suffix == ".jsonl":
        for n, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw, object_pairs_hook=_no_duplicates)
            except _DuplicateKey as exc:
                raise CaseError(
                    f"key {exc.args[0]!r} appears twice in the same object",
                    source=source,
                    line=n,
                    field=str(exc.args[0]),
                ) from None
            except json.JSONDecodeError as exc:
                raise CaseError(
                    f"invalid JSON: {exc.msg}", source=source, line=n, field=None
                ) from exc
            if not isinstance(data, dict):
                raise CaseError("a case must be an object", source=source, line=n, field=None)
            try:
                cases.append(build(data, default_id=f"{p.name}:{n}"))
            except ValidationError as exc:
                raise _case_error(exc, source, n) from None
            _unique(cases[-1].id, n, seen, source)
        return cases
    try:
        root, data = load_yaml(text)  # bounded: aliases, size and depth
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CaseError(
            f"{'refused' if isinstance(exc, YamlRefused) else 'invalid YAML'}: "
            f"{getattr(exc, 'problem', exc)}",
            source=source,
            line=None if mark is None else int(mark.line) + 1,
            field=None,
        ) from exc
    repeated = repeated_key(root)
    if repeated is not None:
        message, line, field = repeated
        raise CaseError(message, source=source, line=line, field=field)
    if isinstance(data, dict) and "cases" in data and isinstance(root, yaml.MappingNode):
        data = data["cases"]
        root = next(v for k, v in root.value if getattr(k, "value", None) == "cases")
    if not isinstance(data, list) or not isinstance(root, yaml.SequenceNode):
        raise CaseError("expected a list of cases", source=source, line=1, field=None)
    for item, node in zip(data, root.value, strict=True):
        line = int(node.start_mark.line) + 1
        if not isinstance(item, dict):
            raise CaseError("a case must be a mapping", source=source, line=line, field=None)
        try:
            cases.append(build(item, default_id=f"{p.name}:{line}"))
        except ValidationError as exc:
            err = exc.errors()[0]
            key_line = _line_of(node, [x for x in err["loc"] if isinstance(x, str | int)])
            raise _case_error(exc, source, key_line or line) from None
        _unique(cases[-1].id, _line_of(node, ["id"]) or line, seen, source)
    return cases


def _unique(case_id: str, line: int, seen: dict[str, int], source: str) -> None:
    """Case ids name results and failures: two cases may not share one."""
    first = seen.setdefault(case_id, line)
    if first != line:
        raise CaseError(
            f"case id {case_id!r} is used twice (first at line {first})",
            source=source,
            line=line,
            field="id",
        )


def _line_of(node: yaml.Node, loc: Sequence[str | int]) -> int | None:
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for k, v in node.value:
                if getattr(k, "value", None) == part:
                    node = v
                    break
            else:
                return int(node.start_mark.line) + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
    return int(node.start_mark.line) + 1


# -- running -----------------------------------------------------------------------


def _chunk(text: str, chunking: str, rng: random.Random) -> list[str]:
    if chunking == "chars":
        return list(text)
    if chunking == "words":
        return [w for w in re.split(r"(\s+)", text) if w]
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 8)
        out.append(text[i : i + n])
        i += n
    return out


@dataclass(slots=True)
class RunOutcome:
    chunking: str
    decision: Decision
    text: str
    findings: list[tuple[str, str | None]]
    released: str
    holdbacks: list[int]
    reasons: tuple[str, ...] = ()


@dataclass(slots=True)
class CaseResult:
    case: Case
    runs: list[RunOutcome]
    failures: list[str]
    leaked: int = 0
    disagreements: int = 0

    @property
    def passed(self) -> bool:
        return not self.failures


def _problems(case: Case, run: RunOutcome) -> list[str]:
    out = []
    if run.decision is not case.decision:
        out.append(
            f"[{run.chunking}] decision: expected {case.decision.value}, got {run.decision.value}"
        )
    if case.text is not None and run.text != case.text:
        out.append(f"[{run.chunking}] text: expected {case.text!r}, got {run.text!r}")
    if case.findings is not None:
        want, got = Counter(case.findings), Counter(run.findings)
        if want != got:
            missing = sorted((want - got).elements(), key=str)
            extra = sorted((got - want).elements(), key=str)
            parts = []
            if missing:
                parts.append("missing " + ", ".join(f"{c}/{e or '-'}" for c, e in missing))
            if extra:
                parts.append("unexpected " + ", ".join(f"{c}/{e or '-'}" for c, e in extra))
            out.append(f"[{run.chunking}] findings: {'; '.join(parts)}")
    if out:  # what the checks said, to compare with the expectation
        out.append(f"[{run.chunking}] reasons: {'; '.join(run.reasons) or '(none)'}")
    return out


def _expected(case: Case) -> str:
    """The expectation of a case, in one line: decision and findings."""
    text = f"expected: {case.decision.value}"
    if case.findings is not None:
        listed = ", ".join(f"{c}/{e or '-'}" for c, e in case.findings) or "(none)"
        text += f"; findings {listed}"
    return text


def _outcome(chunking: str, result: Result, released: str, holdbacks: list[int]) -> RunOutcome:
    return RunOutcome(
        chunking,
        result.decision,
        result.text,
        [(f.check_id, f.entity_type) for f in result.findings],
        released,
        holdbacks,
        result.reasons,
    )


@dataclass
class EvalReport:
    """What an evaluation found; ``passed`` is true only if every case passed."""

    policy: str
    results: list[CaseResult]
    seed: int
    chunkings: tuple[str, ...]
    per_check: dict[str, dict[str, float | int]] = field(default_factory=dict)
    #: Per ``check/topic`` of the topic checks: tp, fp, fn, precision, recall, and the
    #: AUC of the topic's score over the cases that list findings (their labels).
    per_topic: dict[str, dict[str, float | int]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def disagreements(self) -> int:
        return sum(r.disagreements for r in self.results)

    @property
    def leaked(self) -> int:
        return sum(r.leaked for r in self.results)

    def holdback(self) -> dict[str, float]:
        counts = Holdbacks(h for r in self.results for run in r.runs for h in run.holdbacks)
        return {
            "p50": counts.median(),
            "p95": float(counts.quantile(0.95)),
            "max": float(counts.max),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "passed": self.passed,
            "cases": len(self.results),
            "failed": len(self.failed),
            "seed": self.seed,
            "chunkings": list(self.chunkings),
            "disagreements": self.disagreements,
            "leaked_chars": self.leaked,
            "holdback": self.holdback(),
            "per_check": self.per_check,
            "per_topic": self.per_topic,
            "failures": [
                {
                    "id": r.case.id,
                    "expected": r.case.decision.value,
                    "expected_findings": None
                    if r.case.findings is None
                    else [{"check": c, "entity": e} for c, e in r.case.findings],
                    "reasons": list(r.runs[0].reasons),
                    "problems": r.failures,
                }
                for r in self.failed
            ],
        }

    def to_text(self) -> str:
        lines = [
            f"policy {self.policy}: {len(self.results)} cases, {len(self.failed)} failed "
            f"(chunkings: {', '.join(self.chunkings)}; seed {self.seed})"
        ]
        for r in self.failed:
            lines.append(f"FAIL {r.case.id} ({_expected(r.case)})")
            lines.extend(f"    {p}" for p in r.failures)
        if self.per_check:
            lines.append("per check (whole runs, cases that list findings):")
            lines.append(
                f"    {'check':<24} {'precision':>9} {'recall':>7} {'tp':>5} {'fp':>5} {'fn':>5}"
            )
            for check, s in sorted(self.per_check.items()):
                lines.append(
                    f"    {check:<24} {s['precision']:>9.3f} {s['recall']:>7.3f} "
                    f"{s['tp']:>5} {s['fp']:>5} {s['fn']:>5}"
                )
        if self.per_topic:
            lines.append("per topic (whole runs, cases that list findings):")
            lines.append(
                f"    {'check/topic':<32} {'precision':>9} {'recall':>7} {'auc':>6} "
                f"{'tp':>5} {'fp':>5} {'fn':>5}"
            )
            for key, s in sorted(self.per_topic.items()):
                auc = "-" if s.get("auc") is None else f"{s['auc']:.3f}"
                lines.append(
                    f"    {key:<32} {s['precision']:>9.3f} {s['recall']:>7.3f} {auc:>6} "
                    f"{s['tp']:>5} {s['fp']:>5} {s['fn']:>5}"
                )
        hb = self.holdback()
        lines.append(f"stream/whole disagreements: {self.disagreements}")
        lines.append(f"characters leaked (released by a stream, removed whole): {self.leaked}")
        lines.append(
            f"hold-back (chars): p50 {hb['p50']:.0f}, p95 {hb['p95']:.0f}, max {hb['max']:.0f}"
        )
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines) + "\n"

    def to_junit(self) -> str:
        from xml.sax.saxutils import escape, quoteattr  # (only here: it costs an import)

        out = [
            '<?xml version="1.0" encoding="utf-8"?>',
            f"<testsuite name={quoteattr('guardrails-eval ' + self.policy)} "
            f'tests="{len(self.results)}" failures="{len(self.failed)}">',
        ]
        for r in self.results:
            out.append(
                f"  <testcase classname={quoteattr(self.policy)} name={quoteattr(r.case.id)}>"
            )
            if r.failures:
                body = escape("\n".join([_expected(r.case), *r.failures]))
                out.append(f"    <failure message={quoteattr(r.failures[0])}>{body}</failure>")
            out.append("  </testcase>")
        out.append("</testsuite>")
        return "\n".join(out) + "\n"


def run_case(
    policy: Any, case: Case, *, seed: int = 0, chunkings: Sequence[str] = CHUNKINGS
) -> CaseResult:
    """Run one case whole and under each chunking (seeded by the case's id, so a
    case gives the same runs wherever and in whatever order it runs)."""
    rng = random.Random(f"{seed}:{case.id}")
    whole = policy.validate_sync(case.input)
    runs = [_outcome("whole", whole, whole.text, [])]
    for chunking in chunkings:
        if chunking == "whole":
            continue
        stream = policy.stream_sync(_chunk(case.input, chunking, rng))
        released = "".join(stream)
        result = stream.result
        assert result is not None  # a list source always ends
        runs.append(_outcome(chunking, result, released, list(stream.run.holdbacks)))
    failures = [p for run in runs for p in _problems(case, run)]
    cr = CaseResult(case, runs, failures)
    cr.disagreements = sum(
        1
        for run in runs[1:]
        if (run.decision, run.text, run.findings)
        != (runs[0].decision, runs[0].text, runs[0].findings)
    )
    removed = [
        case.input[f.start : f.end]
        for f in whole.findings
        if f.action is not Action.FLAG and f.end - f.start >= 4
    ]
    for run in runs[1:]:
        cr.leaked += sum(len(v) for v in removed if v in run.released and v not in whole.text)
    return cr


def run_cases(
    policy: Any, seed: int, chunkings: Sequence[str], cases: Sequence[Case]
) -> list[CaseResult]:
    """:func:`run_case` over a batch of cases (one task of a distributed eval)."""
    return [run_case(policy, c, seed=seed, chunkings=chunkings) for c in cases]


#: A way to run tasks elsewhere: ``map(fn, items)`` yields ``(index, fn(item))``
#: as each item finishes (``guardrails_engine.batch`` has one per backend).
MapTasks = Callable[
    [Callable[[Sequence[Case]], list[CaseResult]], Sequence[Sequence[Case]]],
    Iterable[tuple[int, list[CaseResult]]],
]

#: Cases per task when a suite is spread over workers.
CASES_PER_TASK = 64


def evaluate(
    policy: Any,
    cases: Iterable[Case | dict[str, Any]],
    *,
    seed: int = 0,
    chunkings: Sequence[str] = CHUNKINGS,
    progress: Callable[[int, int], None] | None = None,
    map_tasks: MapTasks | None = None,
) -> EvalReport:
    """Run every case whole and streamed; return the report.

    ``policy`` is a :class:`~guardrails_engine.Policy`; ``cases`` are
    :class:`Case`\\ s or dicts in the case format.  ``map_tasks`` spreads the
    cases over workers in batches (see ``guardrails_engine.batch.evaluate``); the
    report is the same as in one process.
    """
    items = [
        c if isinstance(c, Case) else Case.from_dict(c, default_id=f"case {i}")
        for i, c in enumerate(cases)
    ]
    if map_tasks is None:
        results: list[CaseResult] = []
        for case in items:
            results.append(run_case(policy, case, seed=seed, chunkings=chunkings))
            if progress is not None:
                progress(len(results), len(items))
    else:
        batches = [items[i : i + CASES_PER_TASK] for i in range(0, len(items), CASES_PER_TASK)]
        task = functools.partial(run_cases, policy, seed, tuple(chunkings))
        done: dict[int, list[CaseResult]] = {}
        for i, batch in map_tasks(task, batches):
            done[i] = batch
            if progress is not None:
                progress(min(len(done) * CASES_PER_TASK, len(items)), len(items))
        results = [r for i in range(len(batches)) for r in done[i]]
    counts: dict[str, Counter[str]] = {}
    topics = _Topics(policy)
    for cr in results:
        case = cr.case
        if case.findings is not None:
            want, got = Counter(case.findings), Counter(cr.runs[0].findings)
            for key in want | got:
                c = counts.setdefault(key[0], Counter())
                c["tp"] += min(want[key], got[key])
                c["fp"] += max(0, got[key] - want[key])
                c["fn"] += max(0, want[key] - got[key])
            topics.add(case, cr.runs[0].findings)
    return EvalReport(
        getattr(policy, "name", "?"),
        results,
        seed,
        tuple(chunkings),
        {check: _rates(c) for check, c in counts.items()},
        topics.report(),
    )


def _rates(c: Counter[str]) -> dict[str, float | int]:
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
    }


class _Topics:
    """Per topic of the policy's topic checks: counts, and scores with labels for AUC."""

    def __init__(self, policy: Any) -> None:
        self.checks = [
            c for c in getattr(policy, "checks", ()) if getattr(c, "type", "") == "topic"
        ]
        self.counts: dict[str, Counter[str]] = {}
        self.scored: dict[str, list[tuple[float, bool]]] = {}

    def add(self, case: Case, found: list[tuple[str, str | None]]) -> None:
        assert case.findings is not None
        want, got = Counter(case.findings), Counter(found)
        for check in self.checks:
            scores = check.text_scores(case.input)
            for topic, score in scores.items():
                key = (check.id, topic)
                c = self.counts.setdefault(f"{check.id}/{topic}", Counter())
                c["tp"] += min(want[key], got[key])
                c["fp"] += max(0, got[key] - want[key])
                c["fn"] += max(0, want[key] - got[key])
                self.scored.setdefault(f"{check.id}/{topic}", []).append((score, key in want))

    def report(self) -> dict[str, dict[str, float | int]]:
        out: dict[str, dict[str, float | int]] = {}
        for key, c in self.counts.items():
            out[key] = _rates(c)
            auc = _auc(self.scored.get(key, []))
            if auc is not None:
                out[key]["auc"] = auc
        return out


def _auc(scored: list[tuple[float, bool]]) -> float | None:
    """The probability that a positive case outscores a negative one (ties count half);
    ``None`` without both."""
    pos = [s for s, label in scored if label]
    neg = [s for s, label in scored if not label]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))
