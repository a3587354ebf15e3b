"""What streaming costs compared with checking the whole text once.

For each policy and each text (prose with PII, the same prose with the PII
replaced by plain words), measured in this run:

  (a) one ``policy.validate_sync(text)``;
  (b) streaming the text through ``policy.stream_sync`` in 4-character chunks,
      and the ratio stream / validate                        (target <= 2x);
  (c) the same through the async ``policy.stream`` under ``anyio.run``, with an
      async-generator source and with a plain list as source;
  (d) cost growth for a 16x longer text: time(16x) / time(1x) for validate and
      for the 4-character stream                             (target <= 20x);
  (e) overhead per chunk, (stream - validate) / number of chunks, for chunk
      sizes 1, 4, 16, 64                                     (target <= 10 us);
  (f) that every concatenated stream output equals ``validate(text).text``.

Times are medians of ``--repeat`` runs after one warm-up (the machine is shared
and noisy).  Run:  .venv/bin/python benchmarks/stream_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable

import anyio

import _common as c
import guardrails_engine as ge

TARGET_RATIO = 2.0
TARGET_GROWTH = 20.0
TARGET_US = 10.0

mismatches: list[str] = []


def verify(label: str, got: str, want: str) -> str:
    if got == want:
        return "OK"
    mismatches.append(label)
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    at = min(len(got), len(want)) if at is None else at
    return f"MISMATCH (lengths {len(got)} vs {len(want)}, first difference at {at})"


def stream_sync(policy: ge.Policy, pieces: list[str]) -> Callable[[], tuple[str, int]]:
    def run() -> tuple[str, int]:
        s = policy.stream_sync(pieces)
        out = "".join(s)
        return out, s.run.received

    return run


def time_async(
    policy: ge.Policy, pieces: list[str], repeat: int, backend: str, as_agen: bool
) -> tuple[float, str]:
    async def source() -> AsyncIterator[str]:
        for p in pieces:
            yield p

    async def once() -> str:
        parts: list[str] = []
        async for piece in policy.stream(source() if as_agen else pieces):
            parts.append(piece)
        return "".join(parts)

    async def main() -> tuple[float, str]:
        out = await once()  # warm-up
        times = []
        for _ in range(repeat):
            gc.collect()
            t0 = time.perf_counter()
            out = await once()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), out

    return anyio.run(main, backend=backend)


def bench(
    name: str,
    policy: ge.Policy,
    kind: str,
    text: str,
    long_text: str | None,
    args: argparse.Namespace,
    summary: list[str],
) -> None:
    n = len(text)
    print(f"\n## policy {name}, {kind} text, {n:,} chars")
    t_val, res = c.timed(lambda: policy.validate_sync(text), args.repeat)
    assert isinstance(res, ge.Result)
    want = res.text
    print(
        f"(a) validate_sync                     {t_val * 1e3:9.1f} ms   "
        f"decision={res.decision}, {len(res.findings)} findings, {len(want):,} chars out"
    )

    pieces4 = c.chunks(text, 4)
    t_s4, (out, received) = c.timed(stream_sync(policy, pieces4), args.repeat)  # type: ignore[misc]
    whole = received >= n
    note = "" if whole else f"   (stream ended after {received:,} chars: the length check cut it)"
    print(
        f"(b) stream_sync, 4-char chunks        {t_s4 * 1e3:9.1f} ms   "
        f"stream/validate = {t_s4 / t_val:5.2f}x  (target <= {TARGET_RATIO:g}x){note}"
    )
    checks = [("sync 4", verify(f"{name}/{kind}/sync4", out, want))]

    t_a, out_a = time_async(policy, pieces4, args.repeat, args.backend, as_agen=True)
    print(
        f"(c) stream (async gen source, {args.backend}) {t_a * 1e3:9.1f} ms   "
        f"stream/validate = {t_a / t_val:5.2f}x"
    )
    checks.append(("async 4", verify(f"{name}/{kind}/async4", out_a, want)))
    t_al, out_al = time_async(policy, pieces4, args.repeat, args.backend, as_agen=False)
    print(
        f"    stream (list source, {args.backend})    {t_al * 1e3:9.1f} ms   "
        f"stream/validate = {t_al / t_val:5.2f}x"
    )
    checks.append(("async list 4", verify(f"{name}/{kind}/asynclist4", out_al, want)))

    growth = ""
    if long_text is not None:
        reps = args.long_repeat
        t_vl, res_l = c.timed(lambda: policy.validate_sync(long_text), reps)
        assert isinstance(res_l, ge.Result)
        t_sl, (out_l, _) = c.timed(  # type: ignore[misc]
            stream_sync(policy, c.chunks(long_text, 4)), reps
        )
        k = len(long_text) / n
        gv, gs = t_vl / t_val, t_sl / t_s4
        print(
            f"(d) {k:g}x longer ({len(long_text):,} chars): validate {t_vl:7.2f} s -> "
            f"{gv:5.1f}x;  4-char stream {t_sl:7.2f} s -> {gs:5.1f}x  "
            f"(target <= {TARGET_GROWTH:g}x)"
        )
        checks.append((f"sync 4 at {k:g}x", verify(f"{name}/{kind}/long", out_l, res_l.text)))
        growth = f"{gv:.1f}x / {gs:.1f}x"

    per_chunk = []
    for size in args.sizes:
        pieces = c.chunks(text, size)
        reps = args.repeat if size >= 4 else max(1, args.repeat - 2)
        t, (out_k, received_k) = c.timed(stream_sync(policy, pieces), reps)  # type: ignore[misc]
        checks.append((f"sync {size}", verify(f"{name}/{kind}/sync{size}", out_k, want)))
        if received_k >= n:
            us = (t - t_val) / len(pieces) * 1e6
            per_chunk.append(f"{us:.1f}")
            print(
                f"(e) chunk {size:3d}: {len(pieces):7,} chunks, stream {t * 1e3:8.1f} ms, "
                f"overhead {us:6.2f} us/chunk  (target <= {TARGET_US:g} us), "
                f"stream/validate {t / t_val:5.2f}x"
            )
        else:
            per_chunk.append("n/a")
            print(
                f"(e) chunk {size:3d}: stream {t * 1e3:8.1f} ms; n/a, the stream stopped after "
                f"{received_k:,} of {n:,} chars (length cut) while validate scans them all"
            )
    print("(f) stream output == validate(text).text: " + ", ".join(f"{k} {v}" for k, v in checks))
    summary.append(
        f"| {name} | {kind} | {t_val * 1e3:.0f} | {t_s4 * 1e3:.0f} | {t_s4 / t_val:.2f}x "
        f"| {t_a / t_val:.2f}x / {t_al / t_val:.2f}x | {growth or 'not run'} "
        f"| {' / '.join(per_chunk)} | {'OK' if all(v == 'OK' for _, v in checks) else 'MISMATCH'} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat (smoke run)")
    ap.add_argument("--size", type=int, default=32_000, help="text length (default 32000)")
    ap.add_argument("--growth", type=int, default=16, help="long text = size * this (16)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (3)")
    ap.add_argument("--long-repeat", type=int, default=1, help="timed runs for the long text (1)")
    ap.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    ap.add_argument(
        "--all-growth",
        action="store_true",
        help="also run (d) for support-chat (slow; off by default to keep under 2 minutes)",
    )
    args = ap.parse_args()
    args.sizes = [1, 4, 16, 64]
    if args.quick:
        args.size, args.repeat, args.long_repeat = 4_000, 1, 1
    c.header("stream_cost: streaming vs validating the whole text")
    print(f"# size {args.size:,} chars, 16x text {args.size * args.growth:,} chars, "
          f"median of {args.repeat} (long text: {args.long_repeat}) after a warm-up")

    policies = [
        ("pattern-pii", c.load(c.PATTERN_PII), True),
        ("support-chat", c.load(c.SUPPORT_CHAT), args.all_growth),
        ("support-chat, length lifted", c.support_chat_uncapped(), args.all_growth),
    ]
    texts = {
        "PII": (c.pii_text(args.size), c.pii_text(args.size * args.growth)),
        "PII-free": (c.clean_text(args.size), c.clean_text(args.size * args.growth)),
    }
    summary: list[str] = []
    t0 = time.perf_counter()
    for name, policy, with_growth in policies:
        for kind, (text, long_text) in texts.items():
            bench(name, policy, kind, text, long_text if with_growth else None, args, summary)
    print("\n## summary (ms; ratios against validate of the same text)")
    print(
        "| policy | text | validate ms | stream 4 ms | stream/validate sync | async agen / list "
        "| 16x growth validate / stream | us per chunk (1/4/16/64) | output |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in summary:
        print(row)
    print(f"\n(f) overall: {'OK' if not mismatches else 'MISMATCH in ' + ', '.join(mismatches)}")
    print(f"# wall time {time.perf_counter() - t0:.1f} s")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
