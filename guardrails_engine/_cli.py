"""The ``guardrails-engine`` command.

Exit status: 0 pass or repair (``eval``: every case passed; ``drift``: no window
alerts), 1 block (``eval``: a case failed; ``drift``: a window alerts), 2 a bad
policy, input or usage.
"""

from __future__ import annotations

import argparse
import codecs
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

import yaml

from . import __version__
from ._batch.inputs import BatchInputError
from ._batch.runners import BatchError
from ._common.errors import PolicyError
from ._common.model import Decision, Result
from ._evals.eval import CaseError, evaluate, load_cases
from ._observe.report import parse_since, render_csv, render_text, report
from ._observe.store import TraceStoreError
from ._policy.policy import Policy, load_policy
from ._spec.config import policy_json_schema
from ._spec.loader import load_yaml

__all__ = ["main"]

EXIT_OK, EXIT_BLOCK, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardrails-engine",
        description="Check LLM output against a guardrails policy.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check",
        help="check a text; the output text goes to stdout, the decision to stderr",
        description="Exit 0 for pass or repair, 1 for block, 2 for a bad policy or usage.",
    )
    check.add_argument("--policy", required=True, help="policy file (YAML)")
    check.add_argument("file", nargs="?", default="-", help="text to check (default: stdin)")
    check.add_argument(
        "--stream",
        action="store_true",
        help="stream: read the input as it arrives and write text as soon as it is released",
    )
    check.add_argument("--json", action="store_true", help="write the whole result as JSON")
    lint = sub.add_parser(
        "lint",
        help="check policy files; exit 2 if any is invalid",
        description="Every problem of every file is listed (file:line: field: problem). "
        "Evaluation case files (*.cases.yaml, *.jsonl, or a YAML list of cases) are read as "
        "case files and skipped as policies.",
    )
    lint.add_argument("policies", nargs="+")
    sub.add_parser("schema", help="print the policy format as a JSON Schema")
    sub.add_parser("entities", help="list the entity names a pii check knows")
    ev = sub.add_parser(
        "eval",
        help="replay cases whole and streamed; exit 0 only if every case passes",
        description="Exit 0 if every case passes, 1 if any fails, 2 for bad input.",
    )
    ev.add_argument("--policy", required=True, help="policy file (YAML)")
    ev.add_argument("cases", nargs="+", help="case files (.jsonl, or .yaml with a list of cases)")
    ev.add_argument("--format", choices=("text", "json", "junit"), default="text")
    ev.add_argument("--output", help="write the report to this file instead of stdout")
    ev.add_argument("--seed", type=int, default=0, help="seed of the random chunkings")
    _add_where(ev)
    models = ev.add_argument_group(
        "models",
        "with --model or --outputs the cases are model cases (a prompt, an expected output, "
        "criteria): each is sent to each model through the policy and scored; exit 1 below "
        "--min-pass-rate or on a regression against --baseline",
    )
    models.add_argument(
        "--model", action="append", default=[], help="provider:model (openai:..., anthropic:...)"
    )
    models.add_argument("--outputs", help="recorded outputs (JSON lines), scored offline")
    models.add_argument("--judge", help="the judge model (provider:model) for judge criteria")
    models.add_argument("--base-url", help="an OpenAI-compatible endpoint (else OPENAI_BASE_URL)")
    models.add_argument(
        "--anthropic-base-url", help="the Anthropic endpoint (else ANTHROPIC_BASE_URL)"
    )
    models.add_argument("--baseline", help="an earlier JSON report: list and fail on regressions")
    models.add_argument("--min-pass-rate", type=float, help="exit 1 below this pass rate (0-1)")
    models.add_argument("--concurrency", type=int, default=4, help="calls at once (default 4)")
    models.add_argument("--timeout", type=float, default=120.0, help="seconds per call")
    models.add_argument("--judge-cache", help="a JSON file of judge verdicts, read and updated")
    scan = sub.add_parser(
        "scan",
        help="scan logged texts (JSON lines, Parquet) into a folder of results",
        description="One output file per partition and _summary.json in --output; the "
        "summary on stderr. Exit 0 when done (--strict: 1 if a row could not be checked), "
        "2 for a bad policy, input or usage.",
    )
    scan.add_argument("--policy", required=True, help="policy file (YAML)")
    scan.add_argument("inputs", nargs="+", help=".jsonl/.ndjson/.parquet files or folders")
    scan.add_argument("--field", default="text", help="the field holding the text (default: text)")
    scan.add_argument("--id-field", default="id", help="the field holding the id (default: id)")
    scan.add_argument("--output", required=True, help="folder for the results")
    scan.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    scan.add_argument(
        "--write-text", action="store_true", help="also write the checked text, as repaired"
    )
    scan.add_argument("--strict", action="store_true", help="exit 1 if any row is bad")
    scan.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier scan"
    )
    scan.add_argument(
        "--partition-mb", type=float, default=8.0, help="JSON lines per task, in MB (default: 8)"
    )
    _add_where(scan)
    cases = sub.add_parser(
        "cases",
        help="grow an evaluation suite: add production failures from a trace database",
    )
    cases_sub = cases.add_subparsers(dest="cases_command", required=True)
    add = cases_sub.add_parser(
        "add",
        help="append the failed calls of a trace database as model cases",
        description="A failure is a call the policy blocked or one that ended in an error; "
        "its prompt (captured, screened by the policy) becomes the case's input. "
        "Exit 0, or 2 for bad input.",
    )
    add.add_argument("file", help="the case file to append to (YAML list or .jsonl)")
    add.add_argument("--traces", required=True, help="the trace database (TraceStore)")
    add.add_argument("--blocked", action="store_true", help="only calls the policy blocked")
    add.add_argument("--since", help="only calls since: 30m, 12h, 7d, or an ISO date")
    add.add_argument("--model", help="only calls to (or answered by) this model")
    dr = sub.add_parser(
        "drift",
        help="how much current traffic no reference text covers, per window (docs/semantic.md)",
        description="Exit 0 when no window alerts, 1 when one does, 2 for bad input.",
    )
    dr.add_argument(
        "--reference",
        help="eval case file, or JSON lines of texts (with a trace database: the policy's "
        "drift reference, to pick its runs)",
    )
    dr.add_argument(
        "current",
        nargs="+",
        help="JSON lines of current texts (or case files), or trace databases of a policy "
        "with drift: (their recorded numbers)",
    )
    dr.add_argument("--field", default="text", help="the text's key in JSON lines (default text)")
    dr.add_argument("--window", type=_positive, default=100, help="texts per window (100)")
    dr.add_argument("--q", type=float, default=0.05, help="coverage percentile (0.05)")
    form = dr.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="write the report as JSON")
    form.add_argument("--csv", action="store_true", help="write the windows as CSV")
    dr.add_argument(
        "--export-cases", metavar="FILE", help="write the uncovered texts as candidate eval cases"
    )
    traces = sub.add_parser(
        "traces",
        help="report on a trace database (TraceStore): calls, latency, tokens, decisions",
        description="Calls, p50/p95/p99 time to first token and duration, tokens, block and "
        "repair rates per check and per model, the most frequent reasons, and a histogram "
        "of the time to first token.",
    )
    traces.add_argument("db", help="the SQLite file a TraceStore writes")
    traces.add_argument("--since", help="only records since: 30m, 12h, 7d, or an ISO date")
    traces.add_argument("--model", help="only calls to (or answered by) this model")
    fmt = traces.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="the report as JSON")
    fmt.add_argument("--csv", action="store_true", help="one CSV row for all, per model, per check")
    return parser


def _add_where(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="a pool of N processes on this machine")
    where.add_argument("--local", type=int, help="a Dask LocalCluster of N worker processes")
    where.add_argument("--scheduler", help="an existing Dask cluster (tcp://host:8786)")


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _summary(result: Result) -> str:
    parts = [f"decision: {result.decision.value}"]
    parts.extend(result.reasons)
    return "; ".join(parts)


def _read_chunks(stream: TextIO | None, path: str) -> Iterator[str]:
    """Yield text as it arrives (stdin) or in blocks (a file), decoded as UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    if path == "-":
        fd = sys.stdin.fileno()
        while True:
            data = os.read(fd, 4096)
            if not data:
                break
            text = decoder.decode(data)
            if text:
                yield text
    else:
        with open(path, "rb") as f:
            while data := f.read(65536):
                text = decoder.decode(data)
                if text:
                    yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    policy: Policy = load_policy(args.policy)
    if args.stream:
        stream = policy.stream_sync(_read_chunks(None, args.file))
        last = ""
        for piece in stream:
            if not args.json and piece:
                out.write(piece)
                out.flush()
                last = piece
        result = stream.result
        assert result is not None
    else:
        text = "".join(_read_chunks(None, args.file))
        result = policy.validate_sync(text)
        last = result.text
        if not args.json:
            out.write(result.text)
    if args.json:
        out.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    elif result.decision is Decision.BLOCK and last and not last.endswith("\n"):
        out.write("\n")  # the block message ends its line, so stderr does not run into it
    out.flush()
    err.write(_summary(result) + "\n")
    return EXIT_BLOCK if result.decision is Decision.BLOCK else EXIT_OK


_CASE_SUFFIXES = (".cases.yaml", ".cases.yml", ".cases.jsonl", ".jsonl")


def _is_case_file(path: str) -> bool:
    """A file of evaluation cases: by its name, or a YAML list of mappings with
    ``input`` and ``expect`` (or a mapping with ``cases``)."""
    if path.endswith(_CASE_SUFFIXES):
        return True
    try:
        with open(path, encoding="utf-8") as f:
            _, data = load_yaml(f.read())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # the policy loader says what is wrong with it
    if isinstance(data, dict) and set(data) == {"cases"}:
        data = data["cases"]
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(c, dict) and {"input", "expect"} <= set(c) for c in data)
    )


def _lint(paths: Sequence[str], out: TextIO, err: TextIO) -> int:
    status = EXIT_OK
    for path in paths:
        try:
            if _is_case_file(path):
                n = len(load_cases(path))
                out.write(
                    f"{path}: skipped, an evaluation case file ({n} case{'s' * (n != 1)}; "
                    "run it with `guardrails-engine eval`)\n"
                )
                continue
            policy = load_policy(path)
        except (PolicyError, CaseError) as exc:
            err.write(f"{exc}\n")
            status = EXIT_USAGE
        except Exception as exc:  # lint reports every file and never prints a traceback
            err.write(f"{path}: cannot be checked: {exc.__class__.__name__} (please report it)\n")
            status = EXIT_USAGE
        else:
            out.write(f"{path}: ok ({policy.name}, {len(policy.checks)} checks)\n")
    return status


def _entities(out: TextIO) -> int:
    from .checks._pii.presidio import NER_ENTITIES, catalog

    pattern = catalog().entities
    for name in sorted(pattern | NER_ENTITIES):
        kind = "NER (spaCy)" if name in NER_ENTITIES else "pattern"
        out.write(f"{name}\t{kind}\n")
    return EXIT_OK


class _Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._on = err.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self._on:
            return
        width = 30
        filled = width * done // max(total, 1)
        self._err.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            self._err.write("\n")
        self._err.flush()


def _write_report(args: argparse.Namespace, text: str, out: TextIO) -> None:
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        out.write(text)


def _eval_models(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import modeleval as me

    if args.min_pass_rate is not None and not 0 <= args.min_pass_rate <= 1:
        raise CaseError(
            f"--min-pass-rate must be between 0 and 1, not {args.min_pass_rate}",
            source="<command line>",
            line=None,
            field="--min-pass-rate",
        )
    for name, value, ok in (
        ("--concurrency", args.concurrency, args.concurrency >= 1),
        ("--timeout", args.timeout, math.isfinite(args.timeout) and args.timeout > 0),
    ):
        if not ok:
            raise CaseError(
                f"{name} must be positive, not {value}",
                source="<command line>",
                line=None,
                field=name,
            )
    policy = load_policy(args.policy)
    cases: list[me.ModelCase] = []
    where: dict[str, str] = {}
    for path in args.cases:
        for c in me.load_model_cases(path):
            if where.setdefault(c.id, path) != path:
                raise CaseError(
                    f"case id {c.id!r} is used twice (also in {where[c.id]})",
                    source=path,
                    line=None,
                    field="id",
                )
            cases.append(c)
    baseline = None
    if args.baseline:
        with open(args.baseline, encoding="utf-8") as f:
            try:
                baseline = me.load_baseline(f.read())
            except ValueError as exc:
                raise CaseError(str(exc), source=args.baseline, line=None, field=None) from None
    targets: list[me.Target] = []
    for spec in args.model:
        base = args.anthropic_base_url if spec.startswith("anthropic:") else args.base_url
        try:
            targets.append(me.target(policy, spec, base_url=base))
        except ValueError as exc:
            raise CaseError(str(exc), source="<command line>", line=None, field="--model") from None
    if args.outputs:
        try:
            targets.extend(me.recorded.targets(policy, args.outputs))
        except ValueError as exc:
            raise CaseError(str(exc), source=args.outputs, line=None, field=None) from None
    cache: dict[str, dict[str, object]] = {}
    if args.judge_cache and os.path.exists(args.judge_cache):
        with open(args.judge_cache, encoding="utf-8") as f:
            try:
                cache = json.load(f)
            except ValueError:
                cache = None  # type: ignore[assignment]
        if not isinstance(cache, dict):
            raise CaseError(
                "not a judge cache (a JSON object of verdicts)",
                source=args.judge_cache,
                line=None,
                field="--judge-cache",
            )
    judge = None
    if args.judge:
        base = args.anthropic_base_url if args.judge.startswith("anthropic:") else args.base_url
        try:
            judge = me.judge(args.judge, base_url=base, cache=cache)
        except ValueError as exc:
            raise CaseError(str(exc), source="<command line>", line=None, field="--judge") from None
    report = me.evaluate_models(
        policy,
        cases,
        targets,
        judge=judge,
        concurrency=args.concurrency,
        call_timeout=args.timeout,
        progress=_Progress(err),
    )
    if args.judge_cache:
        with open(args.judge_cache, "w", encoding="utf-8") as f:
            json.dump(cache, f, indent=1)
    if args.format == "json":
        _write_report(args, json.dumps(report.to_dict(), indent=2) + "\n", out)
    elif args.format == "junit":
        _write_report(args, report.to_junit(), out)
    else:
        _write_report(args, report.to_text(), out)
    status = EXIT_OK
    rate = report.pass_rate()
    if args.min_pass_rate is not None and rate < args.min_pass_rate:
        err.write(f"pass rate {rate:.1%} is below {args.min_pass_rate:.1%}\n")
        status = EXIT_BLOCK
    if baseline is not None:
        regressions = report.regressions(baseline)
        for case, model, now in regressions:
            err.write(f"regression: {case} on {model} passed before, {now} now\n")
        if regressions:
            status = EXIT_BLOCK
    return status


_MODEL_CASE_KEYS = ("expected_output", "criteria", "messages", "system")


def _eval(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.model or args.outputs:
        return _eval_models(args, out, err)
    policy = load_policy(args.policy)
    try:
        cases = [c for path in args.cases for c in load_cases(path)]
    except CaseError as exc:
        if exc.field in _MODEL_CASE_KEYS:
            raise CaseError(
                f"{exc.message} (a model case: run it with --model or --outputs)",
                source=exc.source,
                line=exc.line,
                field=exc.field,
            ) from None
        raise
    if args.workers or args.local or args.scheduler:
        from .batch import evaluate as spread

        report = spread(
            policy,
            cases,
            seed=args.seed,
            workers=args.workers,
            local=args.local,
            scheduler=args.scheduler,
            progress=_Progress(err),
        )
    else:
        report = evaluate(policy, cases, seed=args.seed, progress=_Progress(err))
    if args.format == "json":
        text = json.dumps(report.to_dict(), indent=2) + "\n"
    elif args.format == "junit":
        text = report.to_junit()
    else:
        text = report.to_text()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        err.write(f"{len(report.results)} cases, {len(report.failed)} failed\n")
    else:
        out.write(text)
    return EXIT_OK if report.passed else EXIT_BLOCK


def _scan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .batch import scan_files

    if not math.isfinite(args.partition_mb) or args.partition_mb <= 0:
        raise BatchInputError(f"--partition-mb must be positive, not {args.partition_mb}")
    summary = scan_files(
        load_policy(args.policy),
        args.inputs,
        args.output,
        field=args.field,
        id_field=args.id_field or None,
        write_text=args.write_text,
        format=args.format,
        workers=args.workers,
        local=args.local,
        scheduler=args.scheduler,
        partition_bytes=max(1, int(args.partition_mb * 1024 * 1024)),
        overwrite=args.overwrite,
        progress=_Progress(err),
    )
    err.write(summary.to_text())
    return EXIT_BLOCK if args.strict and summary.bad_rows else EXIT_OK


def _drift(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._evals.drift import DriftError, DriftReference, check_traces, is_trace_db, read_texts

    try:
        if not 0 < args.q < 0.5:
            raise DriftError(f"--q must be between 0 and 0.5, got {args.q}")
        dbs = [is_trace_db(path) for path in args.current]
        if any(dbs):
            if not all(dbs):
                raise DriftError("give trace databases or text files as CURRENT, not both")
            if args.export_cases:
                raise DriftError("--export-cases needs texts: a trace database holds none")
            report = check_traces(args.current, reference=args.reference, window=args.window)
        else:
            if args.reference is None:
                raise DriftError("--reference is needed with texts as CURRENT")
            reference = read_texts(args.reference, args.field)
            current = [t for path in args.current for t in read_texts(path, args.field)]
            report = DriftReference(reference, q=args.q).check(current, window=args.window)
    except (DriftError, ImportError) as exc:
        err.write(f"guardrails-engine: {exc}\n")
        return EXIT_USAGE
    if args.json:
        out.write(json.dumps(report.to_dict(), indent=2) + "\n")
    elif args.csv:
        out.write(report.to_csv())
    else:
        out.write(report.to_text())
    if args.export_cases:
        with open(args.export_cases, "w", encoding="utf-8") as f:
            f.write(report.export_cases())
        err.write(f"{len(report.uncovered)} uncovered texts written to {args.export_cases}\n")
    return EXIT_BLOCK if report.alert else EXIT_OK


def _cases_add(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .modeleval import append_cases, cases_from_traces

    try:
        since = parse_since(args.since) if args.since is not None else None
    except ValueError as exc:
        err.write(f"guardrails-engine: {exc}\n")
        return EXIT_USAGE
    found, missing = cases_from_traces(
        args.traces, blocked_only=args.blocked, since=since, model=args.model
    )
    added = append_cases(args.file, found)
    out.write(
        f"{added} case{'s' * (added != 1)} added to {args.file} "
        f"({len(found) - added} already there)\n"
    )
    if missing:
        err.write(
            f"{missing} failed call{'s' * (missing != 1)} had no captured prompt "
            "(trace with capture_content=True to grow cases from them)\n"
        )
    return EXIT_OK


def _traces(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        since = parse_since(args.since) if args.since is not None else None
    except ValueError as exc:
        err.write(f"guardrails-engine: {exc}\n")
        return EXIT_USAGE
    data = report(args.db, since=since, model=args.model)
    if args.json:
        out.write(json.dumps(data, indent=2) + "\n")
    elif args.csv:
        out.write(render_csv(data))
    else:
        out.write(render_text(data))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        if args.command == "check":
            return _check(args, out, err)
        if args.command == "lint":
            return _lint(args.policies, out, err)
        if args.command == "eval":
            return _eval(args, out, err)
        if args.command == "drift":
            return _drift(args, out, err)
        if args.command == "entities":
            return _entities(out)
        if args.command == "scan":
            return _scan(args, out, err)
        if args.command == "traces":
            return _traces(args, out, err)
        if args.command == "cases":
            return _cases_add(args, out, err)
        out.write(json.dumps(policy_json_schema(), indent=2) + "\n")
        return EXIT_OK
    except (PolicyError, CaseError, BatchInputError, BatchError, TraceStoreError) as exc:
        err.write(f"guardrails-engine: {exc}\n")
        return EXIT_USAGE
    except (OSError, UnicodeDecodeError) as exc:
        err.write(f"guardrails-engine: cannot read the input: {exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
