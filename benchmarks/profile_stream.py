"""Where the time goes: the 4-character stream against validate (diagnostic, not a target).

1. cProfile of ``validate_sync`` and of a 4-character ``stream_sync`` on the same
   32,000-character text (pattern-pii policy), top functions by cumulative and
   by own time.
2. Time inside each compiled regular expression of the scanner, and how many
   buffer characters each one was asked to scan per character of text.  This
   wraps the scanner's compiled patterns in memory (private attributes of
   ``guardrails_engine._scanning.scan``); nothing on disk is changed.
3. Text with an unbroken token (base64, hex): hold-back grows to the cap and
   the cost per chunk grows with it.

Run:  .venv/bin/python benchmarks/profile_stream.py [--quick] [--text pii|clean] [--top N]
"""

from __future__ import annotations

import argparse
import base64
import collections
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Any

import _common as c

import guardrails_engine as ge


def short(path: str) -> str:
    for marker in ("site-packages/", "guardrails_engine/", "lib/python3"):
        if marker in path:
            return (
                path.split(marker, 1)[1]
                if marker != "guardrails_engine/"
                else path[path.index(marker) :]
            )
    return Path(path).name


def profile(label: str, fn: Any, top: int) -> None:
    pr = cProfile.Profile()
    t0 = time.perf_counter()
    pr.enable()
    fn()
    pr.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(pr)
    rows: list[tuple[int, float, float, str]] = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        where = f"{short(file)}:{line}({func})" if line else func
        rows.append((nc, tt, ct, where))
    total = sum(r[1] for r in rows)
    print(f"\n### {label}: {wall * 1e3:.0f} ms under cProfile ({total * 1e3:.0f} ms own time)")
    orders = (("cumulative", lambda r: -r[2]), ("own (tottime)", lambda r: -r[1]))
    for title, order in orders:
        print(f"top {top} by {title}:")
        print(f"  {'ncalls':>8s} {'tottime':>8s} {'cumtime':>8s}  function")
        for nc, tt, ct, where in sorted(rows, key=order)[:top]:
            print(f"  {nc:8d} {tt * 1e3:7.1f}m {ct * 1e3:7.1f}m  {where}")


class Timed:
    """A compiled pattern that records time and characters scanned per search."""

    def __init__(self, pat: Any, name: str, stats: dict[str, list[float]]) -> None:
        self.pat, self.name, self.stats = pat, name, stats

    def search(self, buf: str, pos: int = 0, *a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        m = self.pat.search(buf, pos, *a, **k)
        s = self.stats[self.name]
        s[0] += time.perf_counter() - t0
        s[1] += 1
        s[2] += len(buf) - pos
        return m

    def match(self, buf: str, pos: int = 0, *a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        m = self.pat.match(buf, pos, *a, **k)
        s = self.stats[self.name + " (match)"]
        s[0] += time.perf_counter() - t0
        s[1] += 1
        s[2] += len(buf) - pos if m is None else m.end() - pos
        return m

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pat, name)


def instrument(policy: ge.Policy, stats: dict[str, list[float]]) -> bool:
    """Wrap every compiled pattern of the policy's scanners (private objects, in memory)."""
    try:
        sets = [(check.id, getattr(check, "patterns", None)) for check in policy.checks]
        shared = policy.shared_patterns
        if shared is not None:
            sets.append(("shared", shared[0]))
        for name, ps in sets:
            if ps is None:
                continue
            if ps._trigger is not None:
                ps._trigger = Timed(ps._trigger, f"{name} required chars (all groups)", stats)
            for gi, g in enumerate(ps._groups):
                tag = f"{name}.group{gi}[{len(g.patterns)} patterns]"
                for finder, what in ((g.finder, "candidates"), (g.far, "far candidates")):
                    if finder is None:
                        continue
                    if finder.first is not None:
                        finder.first = Timed(finder.first, f"{tag} {what} (class)", stats)
                    finder.probe = Timed(finder.probe, f"{tag} {what} probe (partial)", stats)
                if g.trigger is not None:
                    g.trigger = Timed(g.trigger, f"{tag} required chars", stats)
                g.patterns = tuple(Timed(q, f"{tag} per-pattern search", stats) for q in g.patterns)
    except (AttributeError, TypeError) as exc:
        print(f"(scanner internals changed, per-regex breakdown skipped: {exc})")
        return False
    return True


def regex_breakdown(text: str, top: int) -> None:
    stats: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0, 0])
    policy = c.load(c.PATTERN_PII)  # a fresh copy: the instrumented one is not reused
    if not instrument(policy, stats):
        return
    for label, fn in (
        ("validate_sync", lambda: policy.validate_sync(text)),
        ("stream_sync, 4-char chunks", lambda: "".join(policy.stream_sync(c.chunks(text, 4)))),
    ):
        stats.clear()
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        in_re = sum(v[0] for v in stats.values())
        print(f"\n### regex time, {label}: {wall * 1e3:.0f} ms, {in_re * 1e3:.0f} ms in search")
        print(f"  {'ms':>7s} {'calls':>7s} {'chars scanned/char':>19s}  pattern")
        for name, (t, n, chars) in sorted(stats.items(), key=lambda kv: -kv[1][0])[:top]:
            print(f"  {t * 1e3:7.1f} {int(n):7d} {chars / len(text):19.2f}  {name}")


def unbroken(sizes: list[int]) -> None:
    policy = c.load(c.PATTERN_PII)
    rng = random.Random(1)
    blob = base64.b64encode(bytes(rng.randrange(256) for _ in range(max(sizes)))).decode()
    hexs = "".join(rng.choice("0123456789abcdef") for _ in range(max(sizes)))
    prose = c.clean_text(max(sizes))
    print("\n### unbroken tokens (no spaces): validate and 4-char stream, pattern-pii policy")
    print(
        f"  {'text':10s} {'chars':>6s} {'validate ms':>12s} {'stream4 ms':>11s} {'ratio':>7s} "
        f"{'max hold':>9s} {'mean hold':>9s}"
    )
    for name, src in (("prose", prose), ("hex", hexs), ("base64", blob)):
        for n in sizes:
            text = src[:n]
            t0 = time.perf_counter()
            res = policy.validate_sync(text)
            tv = time.perf_counter() - t0
            s = policy.stream_sync(c.chunks(text, 4))
            t0 = time.perf_counter()
            out = "".join(s)
            ts = time.perf_counter() - t0
            holds = list(getattr(s.run, "holdbacks", [0]))
            ok = "" if out == res.text else "  MISMATCH"
            print(
                f"  {name:10s} {n:6d} {tv * 1e3:12.1f} {ts * 1e3:11.1f} {ts / tv:6.1f}x "
                f"{max(holds):9d} {sum(holds) / len(holds):9.0f}{ok}"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4,000-char text, small token sizes")
    ap.add_argument("--size", type=int, default=32_000)
    ap.add_argument("--text", choices=["pii", "clean"], default="pii")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    if args.quick:
        args.size = 4_000
    c.header("profile_stream: where the time of a 4-char stream goes")
    text = c.pii_text(args.size) if args.text == "pii" else c.clean_text(args.size)
    print(f"# {len(text):,}-char {'prose with PII' if args.text == 'pii' else 'PII-free prose'}")
    policy = c.load(c.PATTERN_PII)
    policy.validate_sync(text)  # warm-up: lazy imports, phonenumbers metadata
    pieces = c.chunks(text, 4)
    profile("validate_sync", lambda: policy.validate_sync(text), args.top)
    profile("stream_sync, 4-char chunks", lambda: "".join(policy.stream_sync(pieces)), args.top)
    regex_breakdown(text, args.top)
    unbroken([500, 1000, 2000] if args.quick else [1000, 2000, 4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
