"""The ``guardrails-engine`` command.

Exit status: 0 pass or repair (``eval``: every case passed), 1 block (``eval``:
a case failed), 2 a bad policy, input or usage.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

import yaml

from . import __version__
from ._core.errors import PolicyError
from ._core.model import Decision, Result
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


def _eval(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    policy = load_policy(args.policy)
    cases = [c for path in args.cases for c in load_cases(path)]
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
        if args.command == "entities":
            return _entities(out)
        if args.command == "traces":
            return _traces(args, out, err)
        out.write(json.dumps(policy_json_schema(), indent=2) + "\n")
        return EXIT_OK
    except (PolicyError, CaseError, TraceStoreError) as exc:
        err.write(f"guardrails-engine: {exc}\n")
        return EXIT_USAGE
    except (OSError, UnicodeDecodeError) as exc:
        err.write(f"guardrails-engine: cannot read the input: {exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
