"""Running model cases against models and reporting side by side.

A *target* is one model (or a file of recorded outputs): an async callable from a
case to a :class:`Completion`, the policy's output for it with the call's
figures.  Each case goes to each target with a limit on concurrent calls and a
timeout per call; then each criterion scores the output.  A call that fails or
times out and a criterion that cannot decide are errors in the report: never a
pass, never dropped.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from xml.sax.saxutils import escape as _escape
from xml.sax.saxutils import quoteattr as _quoteattr

import anyio

from .model_cases import ModelCase
from .scoring import Embed, Judge, Score, score_plain, similarity

__all__ = ["Completion", "ModelReport", "Outcome", "Target", "run_models"]


@dataclass(frozen=True, slots=True)
class Completion:
    """What one target gave for one case, after the policy.

    ``text`` is what the policy released (repaired, or the block message);
    ``decision`` the policy's decision; times are seconds from the request:
    ``first_chunk`` (the upstream's first chunk), ``first_release`` (the first
    piece the policy let out: the difference is the cost of holding back) and
    ``duration``.  ``error`` says why there is no output (no content quoted).
    """

    text: str = ""
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    first_chunk: float | None = None
    first_release: float | None = None
    duration: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None


class Target(Protocol):
    @property
    def name(self) -> str: ...

    def __call__(self, case: ModelCase) -> Awaitable[Completion]: ...


@dataclass(slots=True)
class Outcome:
    """One case on one model."""

    case: str
    model: str
    completion: Completion
    scores: list[Score] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``pass``, ``fail`` or ``error``."""
        if self.completion.error is not None or any(s.error for s in self.scores):
            return "error"
        return "fail" if self.problems else "pass"

    def to_dict(self) -> dict[str, Any]:
        c = self.completion
        return {
            "case": self.case,
            "model": self.model,
            "status": self.status,
            "decision": c.decision,
            "problems": self.problems,
            "scores": [s.to_dict() for s in self.scores],
            "first_chunk_s": c.first_chunk,
            "first_release_s": c.first_release,
            "duration_s": c.duration,
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "finish_reason": c.finish_reason,
            "error": c.error,
        }


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))], 4)


@dataclass
class ModelReport:
    """Every case on every model: pass rates, criteria, times, tokens, decisions."""

    models: list[str]
    cases: list[str]
    outcomes: list[Outcome]

    def of(self, model: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.model == model]

    def summary(self, model: str) -> dict[str, Any]:
        rows = self.of(model)
        status = Counter(o.status for o in rows)
        criteria: dict[str, Counter[str]] = {}
        for o in rows:
            for s in o.scores:
                c = criteria.setdefault(s.criterion, Counter())
                c["total"] += 1
                c["error" if s.error else "passed" if s.passed else "failed"] += 1
        done = [o.completion for o in rows if o.completion.error is None]

        def times(name: str) -> dict[str, float | None]:
            values = [v for c in done if (v := getattr(c, name)) is not None]
            return {"p50": _pct(values, 0.5), "p95": _pct(values, 0.95)}

        return {
            "cases": len(rows),
            "passed": status["pass"],
            "failed": status["fail"],
            "errors": status["error"],
            "pass_rate": round(status["pass"] / len(rows), 4) if rows else None,
            "criteria": {
                k: {**dict(v), "pass_rate": round(v["passed"] / v["total"], 4)}
                for k, v in sorted(criteria.items())
            },
            "first_chunk_s": times("first_chunk"),
            "first_release_s": times("first_release"),
            "duration_s": times("duration"),
            "input_tokens": sum(c.input_tokens or 0 for c in done),
            "output_tokens": sum(c.output_tokens or 0 for c in done),
            "judge_tokens": sum(s.tokens for o in rows for s in o.scores),
            "decisions": dict(sorted(Counter(c.decision or "none" for c in done).items())),
        }

    def pass_rate(self, model: str | None = None) -> float:
        rows = self.outcomes if model is None else self.of(model)
        return sum(o.status == "pass" for o in rows) / len(rows) if rows else 1.0

    def regressions(self, baseline: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """(case, model, now) for each case and model that passed in ``baseline``
        (an earlier :meth:`to_dict`) and does not pass now."""
        before = {
            (o["case"], o["model"]): o["status"]
            for o in baseline.get("outcomes", [])
            if isinstance(o, dict)
        }
        return [
            (o.case, o.model, o.status)
            for o in self.outcomes
            if before.get((o.case, o.model)) == "pass" and o.status != "pass"
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "cases": len(self.cases),
            "pass_rate": round(self.pass_rate(), 4),
            "per_model": {m: self.summary(m) for m in self.models},
            "outcomes": [o.to_dict() for o in self.outcomes],
        }

    def table(self) -> list[str]:
        """The side-by-side table: a row per case, a column per model."""
        width = max([len("case"), *(len(c) for c in self.cases)])
        cols = [max(len(m), 5) for m in self.models]
        head = f"{'case':<{width}}  " + "  ".join(
            f"{m:<{w}}" for m, w in zip(self.models, cols, strict=True)
        )
        status = {(o.case, o.model): o.status.upper() for o in self.outcomes}
        lines = [head, "-" * len(head)]
        for case in self.cases:
            cells = [status.get((case, m), "-") for m in self.models]
            row = "  ".join(f"{c:<{w}}" for c, w in zip(cells, cols, strict=True))
            lines.append(f"{case:<{width}}  {row}".rstrip())
        return lines

    def to_text(self) -> str:
        lines = [f"{len(self.cases)} cases x {len(self.models)} models", ""]
        lines.extend(self.table())
        lines.append("")
        for m in self.models:
            s = self.summary(m)
            ttft = s["first_release_s"]
            up = s["first_chunk_s"]
            dur = s["duration_s"]
            lines.append(
                f"{m}: pass rate {s['pass_rate']:.0%} ({s['passed']} passed, {s['failed']} "
                f"failed, {s['errors']} errors)"
                if s["pass_rate"] is not None
                else f"{m}: no cases"
            )
            for name, c in s["criteria"].items():
                lines.append(
                    f"    {name:<11} {c['pass_rate']:.0%} of {c['total']}"
                    + (f" ({c['error']} errors)" if c.get("error") else "")
                )
            lines.append(
                f"    first chunk p50 {_fmt(up['p50'])}, first release p50 {_fmt(ttft['p50'])} "
                f"p95 {_fmt(ttft['p95'])}, duration p50 {_fmt(dur['p50'])} p95 {_fmt(dur['p95'])}"
            )
            lines.append(
                f"    tokens in {s['input_tokens']}, out {s['output_tokens']}, judge "
                f"{s['judge_tokens']}; decisions "
                + ", ".join(f"{k} {v}" for k, v in s["decisions"].items())
            )
        bad = [o for o in self.outcomes if o.status != "pass"]
        if bad:
            lines.append("")
            lines.append("not passed:")
            for o in bad:
                lines.append(f"  {o.status.upper()} {o.case} on {o.model}")
                lines.extend(f"      {p}" for p in o.problems)
        return "\n".join(lines) + "\n"

    def to_junit(self) -> str:
        out = [
            '<?xml version="1.0" encoding="utf-8"?>',
            f'<testsuites name="guardrails-model-eval" tests="{len(self.outcomes)}">',
        ]
        for m in self.models:
            rows = self.of(m)
            fails = sum(o.status == "fail" for o in rows)
            errors = sum(o.status == "error" for o in rows)
            out.append(
                f'  <testsuite name={quoteattr(m)} tests="{len(rows)}" '
                f'failures="{fails}" errors="{errors}">'
            )
            for o in rows:
                out.append(f"    <testcase classname={quoteattr(m)} name={quoteattr(o.case)}>")
                if o.status != "pass":
                    tag = "error" if o.status == "error" else "failure"
                    msg = o.problems[0] if o.problems else o.status
                    body = escape("\n".join(o.problems))
                    out.append(f"      <{tag} message={quoteattr(msg)}>{body}</{tag}>")
                out.append("    </testcase>")
            out.append("  </testsuite>")
        out.append("</testsuites>")
        return "\n".join(out) + "\n"


#: Characters XML 1.0 cannot hold at all (escaped or not).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def escape(text: str) -> str:
    return _escape(_NOT_XML.sub("\ufffd", text))


def quoteattr(text: str) -> str:
    return _quoteattr(_NOT_XML.sub("\ufffd", text))


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


async def _score(
    case: ModelCase, c: Completion, judge: Judge | None, embed: Embed | None
) -> tuple[list[Score], list[str]]:
    scores: list[Score] = []
    problems: list[str] = []
    if c.error is not None:
        return scores, [f"the call failed: {c.error}"]
    if case.decision is not None and c.decision != case.decision:
        problems.append(f"guardrail decision {c.decision}, expected {case.decision}")
    if c.decision == "block":
        # what was released is the block message; a criterion on it says nothing
        for crit in case.criteria:
            scores.append(Score(crit.kind, False, 0.0, "the policy blocked the output"))
    else:
        for crit in case.criteria:
            if crit.kind == "similarity":
                if embed is None:
                    s = Score("similarity", None, None, "no embedder (install [semantic])")
                else:
                    try:
                        s = await anyio.to_thread.run_sync(
                            similarity, embed, c.text, crit.value, crit.threshold
                        )
                    except Exception as exc:
                        s = Score(
                            "similarity", None, None, f"the embedder failed ({type(exc).__name__})"
                        )
            elif crit.kind == "judge":
                if judge is None:
                    s = Score("judge", None, None, "no judge given (--judge)")
                else:
                    v = await judge.verdict(
                        crit.value, case.prompt, case.expected_output, c.text, crit.threshold
                    )
                    s = Score("judge", v.passed, v.score, v.reason, v.tokens)
            else:
                s = await anyio.to_thread.run_sync(score_plain, crit, c.text)
            scores.append(s)
    for s in scores:
        if not s.passed:
            label = "error" if s.error else "failed"
            problems.append(f"{s.criterion} {label}: {s.reason}".rstrip(": "))
    return scores, problems


async def run_models(
    cases: Sequence[ModelCase],
    targets: Sequence[Target],
    *,
    judge: Judge | None = None,
    embed: Embed | None = None,
    concurrency: int = 4,
    call_timeout: float = 120.0,
    progress: Callable[[int, int], None] | None = None,
) -> ModelReport:
    """Send every case to every target (at most ``concurrency`` calls at once,
    each within ``call_timeout`` seconds), score the outputs, report."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"two targets have the same name: {names}")
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        # outcomes, recorded outputs and baselines are found by case id
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"two cases have the same id: {twice}")
    limiter = anyio.CapacityLimiter(concurrency)
    outcomes: dict[tuple[int, int], Outcome] = {}
    total = len(cases) * len(targets)

    async def one(i: int, j: int) -> None:
        case, target = cases[i], targets[j]
        async with limiter:
            try:
                with anyio.fail_after(call_timeout):
                    completion = await target(case)
            except TimeoutError:
                completion = Completion(error=f"no answer within {call_timeout:g} s")
            except Exception as exc:  # a target's own failure is an error row
                completion = Completion(error=f"{type(exc).__name__}: {_short(exc)}")
            scores, problems = await _score(case, completion, judge, embed)
        outcomes[i, j] = Outcome(case.id, target.name, completion, scores, problems)
        if progress is not None:
            progress(len(outcomes), total)

    async with anyio.create_task_group() as tg:
        for i in range(len(cases)):
            for j in range(len(targets)):
                tg.start_soon(one, i, j)
    ordered = [outcomes[i, j] for i in range(len(cases)) for j in range(len(targets))]
    return ModelReport(names, [c.id for c in cases], ordered)


def _short(exc: BaseException) -> str:
    """An SDK error's status and type, not its body (which may quote the prompt)."""
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status is not None else "failed"


def load_baseline(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("outcomes"), list):
        raise ValueError("not a model evaluation report (no outcomes)")
    for n, o in enumerate(data["outcomes"]):
        if not (
            isinstance(o, dict)
            and all(isinstance(o.get(k), str) for k in ("case", "model", "status"))
        ):
            raise ValueError(
                f"not a model evaluation report (outcome {n} needs case, model and status)"
            )
    return data
