"""Batch scan throughput: rows per second in this process, with a process pool of 2,
and with Dask LocalClusters of 1 and 2 workers, on logged answers in the style of
the shared corpus (``data/pii_dev.jsonl``, all variants, repeated to ``--rows``),
through the six-entity pattern policy; and what a worker costs to start.

Every configuration scans the same JSON-lines file into a fresh folder and is
checked to give the same rows as the in-process run (ids and decisions).  The
start-up cost is measured apart: the time to start a cluster (or pool) and finish
one tiny partition on every worker, which includes importing the engine and
compiling the policy once per worker process.

    .venv/bin/python benchmarks/batch_scan.py [--rows 100000] [--partition-mb 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

import guardrails_engine as ge
import guardrails_engine.batch as geb


def _write_logs(path: Path, n: int) -> None:
    with c.DATA.open(encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            out.write(json.dumps({"id": f"r{i}", "response": texts[i % len(texts)]}) + "\n")


def _rows(folder: Path) -> dict[str, str]:
    got: dict[str, str] = {}
    for part in folder.glob("part-*.jsonl"):
        for line in part.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            got[r["id"]] = r["decision"]
    return got


def _startup(policy: ge.Policy, tmp: Path, tiny: Path, **where: Any) -> float:
    out = tmp / f"start-{'-'.join(f'{k}{v}' for k, v in where.items())}"
    started = time.perf_counter()
    geb.scan_files(policy, [str(tiny)], out, field="response", partition_bytes=200, **where)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--partition-mb", type=float, default=2.0)
    args = parser.parse_args()
    policy = ge.load_policy(c.PATTERN_PII)
    policy.validate_sync("warm up jdoe@example.com")
    configs: list[tuple[str, dict[str, Any]]] = [
        ("in-process", {}),
        ("process pool, 2", {"workers": 2}),
        ("Dask LocalCluster, 1 worker", {"local": 1}),
        ("Dask LocalCluster, 2 workers", {"local": 2}),
    ]
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{args.rows:,} rows, partitions of {args.partition_mb} MB"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        logs = tmp / "logs.jsonl"
        _write_logs(logs, args.rows)
        tiny = tmp / "tiny.jsonl"
        _write_logs(tiny, 8)
        size = logs.stat().st_size
        print(f"input: {size / 1e6:.1f} MB\n")
        print(f"{'where':<30} {'rows/s':>9} {'wall s':>8} {'start-up s':>11}")
        reference: dict[str, str] | None = None
        for name, where in configs:
            startup = _startup(policy, tmp, tiny, **where) if where else 0.0
            out = tmp / name.replace(" ", "_").replace(",", "")
            started = time.perf_counter()
            summary = geb.scan_files(
                policy,
                [str(logs)],
                out,
                field="response",
                partition_bytes=int(args.partition_mb * 1024 * 1024),
                **where,
            )
            wall = time.perf_counter() - started
            got = _rows(out)
            if reference is None:
                reference = got
            same = "" if got == reference else "  MISMATCH"
            print(f"{name:<30} {summary.rows / wall:>9.0f} {wall:>8.2f} {startup:>11.2f}{same}")


if __name__ == "__main__":
    main()
