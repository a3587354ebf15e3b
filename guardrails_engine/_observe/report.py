"""What ``guardrails-engine traces DB`` reports, computed from a trace database.

Times are milliseconds.  "Time to first token" is the time to the first piece the
guard released (what a reader waits for, hold-back included); the upstream's time to
first chunk is reported beside it for calls.  Percentiles are nearest-rank.  Rates
are shares of calls: a call *blocked by* a check is one with a ``block`` finding of
that check; *repaired by* one with a ``repair`` finding.
"""

from __future__ import annotations

import csv
import io
import math
import re
import sqlite3
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from .store import TraceStoreError, connect

__all__ = ["histogram", "parse_since", "render_csv", "render_text", "report"]

TOP_REASONS: Final = 10
#: Where a finding is, in its reason ("EMAIL_ADDRESS at 3-19"): left out to count reasons.
_POSITION: Final = re.compile(r" at \d+-\d+")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> float:
    """``30m``, ``12h``, ``7d``, ``2w`` (ago) or an ISO date/time -> seconds since the epoch.

    :raises ValueError: naming what was given.
    """
    now = time.time() if now is None else now
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since takes a duration (30m, 12h, 7d) or an ISO date, got {text!r}"
        ) from None
    return when.timestamp()


def percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for p in (50, 95, 99):
        out[f"p{p}"] = (
            round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 3) if ordered else None
        )
    return out


def report(
    path: str | Path, *, since: float | None = None, model: str | None = None
) -> dict[str, Any]:
    """The report of the records in ``path`` started at or after ``since``, for ``model``.

    :raises TraceStoreError: when ``path`` is missing or not a trace database.
    """
    if not Path(path).is_file():
        raise TraceStoreError(f"{path}: no such trace database")
    conn = connect(path, create=False)
    try:
        return _report(conn, since, model)
    finally:
        conn.close()


def _report(conn: sqlite3.Connection, since: float | None, model: str | None) -> dict[str, Any]:
    where: list[str] = ["1"]
    args: list[object] = []
    if since is not None:
        where.append("c.started_at >= ?")
        args.append(since)
    if model is not None:
        where.append("(c.request_model = ? OR c.response_model = ?)")
        args += [model, model]
    cond = " AND ".join(where)
    rows = conn.execute(
        "SELECT c.request_model, c.decision, c.first_out_ms, c.upstream_first_ms, "
        f"c.duration_ms, c.input_tokens, c.output_tokens, c.started_at FROM calls c WHERE {cond}",
        args,
    ).fetchall()
    calls = len(rows)

    def summary(group: list[tuple[Any, ...]]) -> dict[str, Any]:
        n = len(group)
        blocks = sum(1 for r in group if r[1] == "block")
        repairs = sum(1 for r in group if r[1] == "repair")
        return {
            "calls": n,
            "blocked": blocks,
            "repaired": repairs,
            "block_rate": round(blocks / n, 4) if n else None,
            "repair_rate": round(repairs / n, 4) if n else None,
            "ttft_ms": percentiles([r[2] for r in group if r[2] is not None]),
            "upstream_ttfc_ms": percentiles([r[3] for r in group if r[3] is not None]),
            "duration_ms": percentiles([r[4] for r in group]),
            "input_tokens": sum(r[5] or 0 for r in group),
            "output_tokens": sum(r[6] or 0 for r in group),
        }

    by_model: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        by_model.setdefault(r[0] or "(none)", []).append(r)
    checks = conn.execute(
        "SELECT f.check_id, "
        "COUNT(DISTINCT CASE WHEN f.action = 'block' THEN f.call_id END), "
        "COUNT(DISTINCT CASE WHEN f.action = 'repair' THEN f.call_id END), "
        "COUNT(DISTINCT f.call_id), COUNT(*) "
        f"FROM findings f JOIN calls c ON c.id = f.call_id WHERE {cond} "
        "GROUP BY f.check_id ORDER BY f.check_id",
        args,
    ).fetchall()
    counted: Counter[tuple[str, str]] = Counter()
    for check_id, reason in conn.execute(
        "SELECT f.check_id, f.reason FROM findings f "
        f"JOIN calls c ON c.id = f.call_id WHERE {cond}",
        args,
    ):
        counted[check_id, _POSITION.sub("", reason)] += 1
    reasons = sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    started = [r[7] for r in rows]
    return {
        "calls": calls,
        "window": {
            "since": since,
            "first": min(started) if started else None,
            "last": max(started) if started else None,
        },
        "model": model,
        "overall": summary(rows),
        "models": {name: summary(group) for name, group in sorted(by_model.items())},
        "checks": {
            check_id: {
                "calls_with_findings": with_findings,
                "findings": n,
                "blocked": blocked,
                "repaired": repaired,
                "block_rate": round(blocked / calls, 4) if calls else None,
                "repair_rate": round(repaired / calls, 4) if calls else None,
            }
            for check_id, blocked, repaired, with_findings, n in checks
        },
        "reasons": [{"check_id": c, "reason": reason, "count": n} for (c, reason), n in reasons],
        "ttft_histogram": histogram([r[2] for r in rows if r[2] is not None]),
    }


def histogram(values: list[float], bins: int = 12) -> list[dict[str, float | int]]:
    """Counts of ``values`` in ``bins`` bins between their smallest and largest value."""
    if not values:
        return []
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / width))] += 1
    return [
        {"from_ms": round(low + i * width, 3), "to_ms": round(low + (i + 1) * width, 3), "count": c}
        for i, c in enumerate(counts)
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def render_text(data: dict[str, Any], width: int = 40) -> str:
    """The report for a terminal, with a histogram of the time to first token."""
    o = data["overall"]
    lines = [f"calls: {data['calls']}"]
    if data["window"]["first"] is not None:
        first = datetime.fromtimestamp(data["window"]["first"]).isoformat(timespec="seconds")
        last = datetime.fromtimestamp(data["window"]["last"]).isoformat(timespec="seconds")
        lines.append(f"window: {first} .. {last}")
    lines.append(
        f"decisions: {o['blocked']} blocked ({_rate(o['block_rate'])}), "
        f"{o['repaired']} repaired ({_rate(o['repair_rate'])})"
    )
    lines.append(f"tokens: {o['input_tokens']} in, {o['output_tokens']} out")
    for label, key in (
        ("time to first token", "ttft_ms"),
        ("upstream first chunk", "upstream_ttfc_ms"),
        ("duration", "duration_ms"),
    ):
        p = o[key]
        lines.append(
            f"{label} (ms): p50 {_fmt(p['p50'])}  p95 {_fmt(p['p95'])}  p99 {_fmt(p['p99'])}"
        )
    if data["models"]:
        lines += ["", "per model:"]
        for name, m in data["models"].items():
            lines.append(
                f"  {name}: {m['calls']} calls, block {_rate(m['block_rate'])}, repair "
                f"{_rate(m['repair_rate'])}, ttft p50 {_fmt(m['ttft_ms']['p50'])} p95 "
                f"{_fmt(m['ttft_ms']['p95'])} ms, tokens {m['input_tokens']}/{m['output_tokens']}"
            )
    if data["checks"]:
        lines += ["", "per check:"]
        for check_id, c in data["checks"].items():
            lines.append(
                f"  {check_id}: block {_rate(c['block_rate'])}, repair "
                f"{_rate(c['repair_rate'])} ({c['findings']} findings)"
            )
    if data["reasons"]:
        lines += ["", "most frequent reasons:"]
        lines += [f"  {r['count']:>6}  {r['reason']}" for r in data["reasons"]]
    hist = data["ttft_histogram"]
    if hist:
        lines += ["", "time to first token (ms):"]
        top = max(b["count"] for b in hist) or 1
        for b in hist:
            bar = "#" * math.ceil(int(b["count"]) * width / top) if b["count"] else ""
            lines.append(f"  {_fmt(b['from_ms']):>9} .. {_fmt(b['to_ms']):>9} | {bar} {b['count']}")
    return "\n".join(lines) + "\n"


CSV_COLUMNS: Final = (
    "scope",
    "name",
    "calls",
    "blocked",
    "repaired",
    "block_rate",
    "repair_rate",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "duration_p50_ms",
    "duration_p95_ms",
    "duration_p99_ms",
    "input_tokens",
    "output_tokens",
)


def render_csv(data: dict[str, Any]) -> str:
    """One row for all calls, one per model, one per check."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def row(scope: str, name: str, s: dict[str, Any]) -> list[Any]:
        t, d = s["ttft_ms"], s["duration_ms"]
        return [
            scope,
            name,
            s["calls"],
            s["blocked"],
            s["repaired"],
            s["block_rate"],
            s["repair_rate"],
            t["p50"],
            t["p95"],
            t["p99"],
            d["p50"],
            d["p95"],
            d["p99"],
            s["input_tokens"],
            s["output_tokens"],
        ]

    writer.writerow(row("all", "", data["overall"]))
    for name, m in data["models"].items():
        writer.writerow(row("model", name, m))
    for check_id, c in data["checks"].items():
        writer.writerow(
            [
                "check",
                check_id,
                c["calls_with_findings"],
                c["blocked"],
                c["repaired"],
                c["block_rate"],
                c["repair_rate"],
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            ]
        )
    return out.getvalue()
