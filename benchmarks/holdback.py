"""How much text a stream holds back: received - released, after every chunk.

The text is streamed in random chunks of 1-8 characters (seeded).  After each
chunk is fed, hold-back = ``run.received - run.released`` (offsets in the
original text, so masking does not distort it); it is sampled from the source
side, just before the next chunk is handed over, and after the last chunk
before the run finishes.  Prints p50, p90, p95, p99 and max (target: p95 <= 16
characters) for:

  - benchmarks/policies/pattern-pii.yaml on PII-free prose and on prose with PII;
  - policies/support-chat.yaml as is (its 2,000-character length limit ends the
    stream early, and the length check holds back the last 32 characters before
    the limit), and with the length limit lifted.

Run:  .venv/bin/python benchmarks/holdback.py [--quick] [--seeds N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator

import _common as c

import guardrails_engine as ge

TARGET_P95 = 16


def sample(policy: ge.Policy, pieces: list[str]) -> tuple[list[int], list[int], str, int]:
    """Hold-back after each chunk, the run's own record, the output, and characters read."""
    samples: list[int] = []
    holder: list[ge.SyncStream] = []

    def source() -> Iterator[str]:
        for p in pieces:
            yield p
            run = holder[0].run
            samples.append(run.received - run.released)

    stream = policy.stream_sync(source())
    holder.append(stream)
    out = "".join(stream)
    own = list(stream.run.holdbacks)  # the run's own record, ascending
    return samples, own, out, stream.run.received


def context(text: str, at: int, width: int = 40) -> str:
    return repr(text[max(0, at - width) : at])


def report(
    name: str, policy: ge.Policy, kind: str, text: str, seeds: int, show_worst: bool
) -> tuple[float, float, float, float, float]:
    all_samples: list[int] = []
    worst = (-1, 0)  # (hold-back, offset received)
    ok = True
    received = 0
    want = policy.validate_sync(text).text
    for seed in range(seeds):
        pieces = c.random_chunks(text, 1, 8, seed)
        samples, own, out, received = sample(policy, pieces)
        ok = ok and out == want
        # the run's own per-chunk record must agree with the source-side samples
        if own and max(own) != max(samples):
            print(f"   note: Run.holdbacks differs from received - released (seed {seed})")
        pos = 0
        for p, h in zip(pieces, samples, strict=False):
            pos += len(p)
            if h > worst[0]:
                worst = (h, pos)
        all_samples.extend(samples)
    qs = [c.percentile(all_samples, q) for q in (50, 90, 95, 99)]
    mx = float(max(all_samples)) if all_samples else float("nan")
    verdict = "meets" if qs[2] <= TARGET_P95 else "MISSES"
    read = "" if received >= len(text) else f", stream ended after {received:,} chars"
    print(
        f"{name:28s} {kind:9s} p50 {qs[0]:5.0f}  p90 {qs[1]:5.0f}  p95 {qs[2]:5.0f}  "
        f"p99 {qs[3]:5.0f}  max {mx:5.0f}   ({len(all_samples):,} samples{read}; "
        f"p95 {verdict} target <= {TARGET_P95}; output {'OK' if ok else 'MISMATCH'})"
    )
    if show_worst and worst[0] >= 0:
        print(f"{'':38s} max held at offset {worst[1]:,}: ...{context(text, worst[1])}")
    return (*qs, mx)  # type: ignore[return-value]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4,000 characters, one seed")
    ap.add_argument("--size", type=int, default=32_000, help="text length (32000)")
    ap.add_argument("--seeds", type=int, default=3, help="chunkings per text (3)")
    ap.add_argument("--worst", action="store_true", help="show the text before the largest hold")
    args = ap.parse_args()
    if args.quick:
        args.size, args.seeds = 4_000, 1
    c.header("holdback: characters received but not yet released, after each chunk")
    print(f"# {args.size:,}-char texts, random 1-8 char chunks, seeds 0..{args.seeds - 1}")
    t0 = time.perf_counter()
    policies = [
        ("pattern-pii", c.load(c.PATTERN_PII)),
        ("support-chat", c.load(c.SUPPORT_CHAT)),
        ("support-chat, length lifted", c.support_chat_uncapped()),
    ]
    texts = [("PII-free", c.clean_text(args.size)), ("PII", c.pii_text(args.size))]
    print(f"{'policy':28s} {'text':9s} hold-back in characters")
    for name, policy in policies:
        for kind, text in texts:
            report(name, policy, kind, text, args.seeds, args.worst)
    print(f"# wall time {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
