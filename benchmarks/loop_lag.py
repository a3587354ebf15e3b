"""Event-loop responsiveness while many streams run a policy with NER.

Under ``anyio.run`` (asyncio backend), N concurrent streams (default 100) each
wrap an async token source: three corpus texts (stream i gets texts i, i+N,
i+2N of ``benchmarks/data/pii_dev.jsonl``, wrapping round) joined by a space,
yielded in random chunks of 1-8 characters (seeded per stream) with
``await anyio.sleep(0)`` between chunks.  Meanwhile a monitor task sleeps 5 ms
in a loop and records lag = actual wake-up delay - 5 ms.  Each stream's output
is compared with ``validate_sync`` of its text afterwards (outside the timed
part).

Scenarios, one after the other in the same process:

  - ner:      pii [PERSON, LOCATION, EMAIL_ADDRESS] (NER runs in worker threads)
  - email:    pii [EMAIL_ADDRESS]  (the same policy without NER; runs on the loop)
  - pattern:  pii [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE]
  - sources:  no policy, the sources alone (the monitor's floor)

Prints lag p50/p90/p99/max (ms), streams completed, total time, and
PASS/FAIL for p99 <= 20 ms (the target is for the NER policy; the others are
printed against the same bar for comparison).

With ``--hostile``, instead: 100k hostile characters in flight at once (runs
of ``a@``, hex, dotted and spaced digits under a support-chat-style policy
without a length limit): two streams whose async source has its data already
buffered (each hands over 25k characters in 1,000-character chunks without
ever awaiting, as an SDK reading a full socket does) and two ``await
policy.validate(...)`` of 25k characters each.  Target: lag p99 <= 10 ms and
max <= 50 ms.

With ``--topic``, instead: ``await policy.validate(text)`` of texts under 16K
characters (where validate used to stay on the event loop) with the benchmark's topic
policy (``policies/topics.yaml``, WordLlama): 8 tasks each validating 5 texts of
~15,000 characters (sentences of ``data/topics.jsonl``), then 200 tasks each
validating 5 one-sentence texts; once as shipped (the check is ``costly``: validate
runs in a worker thread) and once forced onto the loop (as before), with lag p99/max.
Target: lag p99 <= 20 ms as shipped.

Run:  .venv/bin/python benchmarks/loop_lag.py [--quick] [--streams N] [--seed S] [--hostile]
      [--topic]
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import random
import shutil
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
from _common import library_version

import guardrails_engine as ge

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data" / "pii_dev.jsonl"
SOURCE_DATA = ROOT / "tests" / "data" / "pii_dev.jsonl"

TICK = 0.005
TARGET_P99_MS = 20.0
TEXTS_PER_STREAM = 3

SCENARIOS: dict[str, list[str] | None] = {
    "ner": ["PERSON", "LOCATION", "EMAIL_ADDRESS"],
    "email": ["EMAIL_ADDRESS"],
    "pattern": [
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "US_SSN",
        "IP_ADDRESS",
        "IBAN_CODE",
    ],
    "sources": None,
}


def load_texts() -> list[str]:
    if not DATA.exists():
        DATA.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE_DATA, DATA)
    with DATA.open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def policy_for(entities: Sequence[str]) -> ge.Policy:
    return ge.Policy.from_yaml(
        "version: 1\n"
        "name: loop-lag\n"
        "checks:\n"
        "  - id: pii\n"
        "    type: pii\n"
        f"    entities: [{', '.join(entities)}]\n"
        "    action: repair\n",
        source="loop_lag",
    )


def random_chunks(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    i = 0
    while i < len(text):
        k = rng.randint(1, 8)
        out.append(text[i : i + k])
        i += k
    return out


async def source(pieces: Sequence[str]) -> AsyncIterator[str]:
    for p in pieces:
        yield p
        await anyio.sleep(0)  # noqa: ASYNC115 - as specified: a plain sleep(0) between chunks


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))
    return ordered[int(k)]


async def scenario(
    policy: ge.Policy | None, stream_texts: Sequence[str], seed: int
) -> tuple[list[float], list[str | None], float, int]:
    """Run the streams and the monitor; lags (ms), each stream's output, wall time, chunks."""
    lags: list[float] = []
    outputs: list[str | None] = [None] * len(stream_texts)
    plans = [random_chunks(t, seed * 100_003 + i) for i, t in enumerate(stream_texts)]
    done = anyio.Event()

    async def monitor() -> None:
        clock = time.perf_counter
        while not done.is_set():
            t0 = clock()
            await anyio.sleep(TICK)
            lags.append((clock() - t0 - TICK) * 1000)

    async def consume(i: int) -> None:
        if policy is None:
            out = [p async for p in source(plans[i])]
            outputs[i] = "".join(out)
            return
        pieces: list[str] = []
        async with policy.stream(source(plans[i])) as stream:
            async for piece in stream:
                pieces.append(piece)
            if stream.result is not None:
                outputs[i] = "".join(pieces)

    t0 = time.perf_counter()
    async with anyio.create_task_group() as outer:
        outer.start_soon(monitor)
        async with anyio.create_task_group() as tg:
            for i in range(len(stream_texts)):
                tg.start_soon(consume, i)
        wall = time.perf_counter() - t0
        done.set()
    return lags, outputs, wall, sum(len(p) for p in plans)


async def amain(args: argparse.Namespace) -> int:
    texts = load_texts()
    n = args.streams
    stream_texts = [
        " ".join(texts[(i + k * n) % len(texts)] for k in range(TEXTS_PER_STREAM)) for i in range(n)
    ]
    chars = sum(len(t) for t in stream_texts)
    print("# event-loop lag while streams run (asyncio backend via anyio.run)")
    print(
        f"# python {platform.python_version()}, {platform.machine()}; {n} concurrent streams, "
        f"{TEXTS_PER_STREAM} corpus texts each ({chars:,} chars in all), chunks of 1-8 chars with "
        f"sleep(0) between; monitor tick {TICK * 1000:.0f} ms; worker threads "
        f"{_worker_threads()}"
    )
    print(f"# guardrails_engine {library_version()}")
    print(
        f"{'scenario':9s} {'entities':70s} | {'p50':>6s} {'p90':>6s} {'p99':>6s} {'max':>6s} "
        f"| {'ticks':>5s} | {'done':>7s} {'match':>5s} | {'total s':>7s} | "
        f"p99<={TARGET_P99_MS:.0f}ms"
    )
    verdicts: dict[str, bool] = {}
    for name, entities in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        policy = policy_for(entities) if entities is not None else None
        if policy is not None:  # load the model and warm the caches outside the timed part
            policy.validate_sync(stream_texts[0])
        lags, outputs, wall, chunks = await scenario(policy, stream_texts, args.seed)
        completed = sum(o is not None for o in outputs)
        if policy is None:
            match = sum(o == t for o, t in zip(outputs, stream_texts, strict=True))
        else:
            match = sum(
                o == policy.validate_sync(t).text
                for o, t in zip(outputs, stream_texts, strict=True)
            )
        q = [percentile(lags, p) for p in (50, 90, 99)]
        mx = max(lags) if lags else float("nan")
        ok = q[2] <= TARGET_P99_MS
        verdicts[name] = ok
        label = ", ".join(entities) if entities else "(no policy)"
        print(
            f"{name:9s} {label:70s} | {q[0]:6.2f} {q[1]:6.2f} {q[2]:6.2f} {mx:6.1f} "
            f"| {len(lags):5d} | {completed:3d}/{n:<3d} {match:5d} | {wall:7.2f} | "
            f"{'PASS' if ok else 'FAIL'}"
        )
    print("(lag in ms = wake-up delay of a 5 ms sleep minus 5 ms; done = streams that ended with a")
    print(" result; match = outputs equal to validate_sync of the same text; chunks: ", end="")
    print(f"{chunks:,} per scenario)")
    if "ner" in verdicts:
        print(
            f"{'PASS' if verdicts['ner'] else 'FAIL'}  target: NER policy, loop lag p99 <= "
            f"{TARGET_P99_MS:.0f} ms"
        )
        return 0 if verdicts["ner"] else 1
    return 0


HOSTILE_POLICY = """
version: 1
name: hostile-lag
checks:
  - id: pii
    type: pii
    entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE]
  - id: secrets
    type: content
    patterns: ['\\bsk-[A-Za-z0-9]{20,}\\b']
    terms: ["internal use only"]
    action: block
"""
HOSTILE_TARGET_P99_MS = 10.0
SHORT_SIZES = (100, 250, 500, 1000)
HOSTILE_TARGET_MAX_MS = 50.0


async def _floor() -> tuple[float, float, float]:
    """The lag of the monitor alone (what the machine gives): p50, p99, max."""
    lags = []
    for _ in range(300):
        t0 = time.perf_counter()
        await anyio.sleep(TICK)
        lags.append((time.perf_counter() - t0 - TICK) * 1000)
    return percentile(lags, 50), percentile(lags, 99), max(lags)


async def buffered(text: str, size: int = 1000) -> AsyncIterator[str]:
    """An async source whose data is already there: it never awaits anything."""
    for i in range(0, len(text), size):
        yield text[i : i + size]


def _counted(results: list[str]) -> str:
    counts = collections.Counter(results)
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(counts.items()))


async def hostile(args: argparse.Namespace) -> int:
    policy = ge.Policy.from_yaml(HOSTILE_POLICY, source="loop_lag")
    n = 25_000
    texts = [(u * n)[:n] for u in ("a@", "deadbeef", "1.2.", "12 ")]
    # Warm the caches outside the timed part (the hold-back cap compiles what it
    # knows of each pattern once per process, on first use).
    for t in texts:
        policy.validate_sync(t[:3000])
        "".join(policy.stream_sync([t[:3000]]))
    floor = await _floor()
    lags: list[float] = []
    done = anyio.Event()
    results: list[str] = []

    async def monitor() -> None:
        clock = time.perf_counter
        while not done.is_set():
            t0 = clock()
            await anyio.sleep(TICK)
            lags.append((clock() - t0 - TICK) * 1000)

    async def stream(text: str) -> None:
        async with policy.stream(buffered(text)) as s:
            out = "".join([p async for p in s])
        results.append("stream " + ("ok" if s.result is not None else "no result") + f" {len(out)}")

    async def validate(text: str) -> None:
        r = await policy.validate(text)
        results.append(f"validate {r.decision.value}")

    t0 = time.perf_counter()
    async with anyio.create_task_group() as outer:
        outer.start_soon(monitor)
        await anyio.sleep(0.05)
        async with anyio.create_task_group() as tg:
            if args.hostile in ("all", "streams"):
                tg.start_soon(stream, texts[0])
                tg.start_soon(stream, texts[1])
            if args.hostile in ("all", "validates"):
                tg.start_soon(validate, texts[2])
                tg.start_soon(validate, texts[3])
            if args.hostile == "short":
                # The same 100k characters as many short texts (100 to 1,000
                # characters): each short enough that one might be checked on the loop.
                for i, size in enumerate(SHORT_SIZES * (100_000 // sum(SHORT_SIZES))):
                    tg.start_soon(validate, texts[i % 4][:size])
        wall = time.perf_counter() - t0
        done.set()
    q = [percentile(lags, p) for p in (50, 90, 99)]
    mx = max(lags)
    ok = q[2] <= HOSTILE_TARGET_P99_MS and mx <= HOSTILE_TARGET_MAX_MS
    what = {
        "all": "2 buffered streams, 2 validates",
        "streams": "2 buffered streams",
        "validates": "2 validates",
        "short": "validates of 100 to 1,000 characters",
    }[args.hostile]
    print(f"# event-loop lag, 100k hostile characters in flight ({what})")
    print(f"# python {platform.python_version()}, {platform.machine()}; guardrails_engine "
          f"{library_version()}")  # fmt: skip
    print(f"floor (the monitor alone, 1.5 s): p50 {floor[0]:.2f}  p99 {floor[1]:.2f}  "
          f"max {floor[2]:.1f}")  # fmt: skip
    print(
        f"lag ms: p50 {q[0]:.2f}  p90 {q[1]:.2f}  p99 {q[2]:.2f}  max {mx:.1f}  "
        f"({len(lags)} ticks, {wall:.2f} s; {_counted(results)})"
    )
    print(
        f"{'PASS' if ok else 'FAIL'}  target: p99 <= {HOSTILE_TARGET_P99_MS:.0f} ms and max <= "
        f"{HOSTILE_TARGET_MAX_MS:.0f} ms"
    )
    return 0 if ok else 1


async def topic(args: argparse.Namespace) -> int:
    sentences = [
        json.loads(line)["text"]
        for line in (HERE / "data" / "topics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    policy = ge.load_policy(HERE / "policies" / "topics.yaml")
    rng = random.Random(args.seed)
    long_texts, short_texts = [], []
    for _ in range(40):
        text = ""
        while len(text) < 15_000:
            text += rng.choice(sentences) + " "
        long_texts.append(text[:15_500].rsplit(" ", 1)[0])
    short_texts = [rng.choice(sentences) for _ in range(1000)]
    policy.validate_sync(long_texts[0])  # warm: the model and the caches
    print("# event-loop lag during async validate of texts under 16K characters, topic policy")
    print(f"# guardrails_engine {library_version()}; worker threads {_worker_threads()}")
    print(f"{'where':8s} {'texts':28s} | {'p50':>6s} {'p99':>6s} {'max':>6s} | {'total s':>7s}")
    verdict = True
    for where in ("thread", "loop"):
        threaded = policy._threaded
        if where == "loop":
            object.__setattr__(policy, "_threaded", False)  # as before: on the loop
        for label, texts, tasks in (
            (f"8 tasks x 5 of ~{len(long_texts[0]):,} chars", long_texts, 8),
            ("200 tasks x 5 of one sentence", short_texts, 200),
        ):
            lags: list[float] = []
            done = anyio.Event()

            async def monitor(lags: list[float] = lags, done: anyio.Event = done) -> None:
                clock = time.perf_counter
                while not done.is_set():
                    t0 = clock()
                    await anyio.sleep(TICK)
                    lags.append((clock() - t0 - TICK) * 1000)

            async def work(i: int, texts: list[str] = texts, tasks: int = tasks) -> None:
                for k in range(5):
                    await policy.validate(texts[(i + k * tasks) % len(texts)])

            t0 = time.perf_counter()
            async with anyio.create_task_group() as outer:
                outer.start_soon(monitor)
                async with anyio.create_task_group() as tg:
                    for i in range(tasks):
                        tg.start_soon(work, i)
                done.set()
            wall = time.perf_counter() - t0
            q50, q99, mx = percentile(lags, 50), percentile(lags, 99), max(lags)
            if where == "thread":
                verdict = verdict and q99 <= TARGET_P99_MS
            print(f"{where:8s} {label:28s} | {q50:6.2f} {q99:6.2f} {mx:6.1f} | {wall:7.2f}")
        object.__setattr__(policy, "_threaded", threaded)
    print(f"{'PASS' if verdict else 'FAIL'}  target: in a worker thread, loop lag p99 <= 20 ms")
    return 0 if verdict else 1


def _worker_threads() -> Any:
    from guardrails_engine._common.threads import WORKER_THREADS

    return WORKER_THREADS


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20 streams instead of 100")
    ap.add_argument("--streams", type=int, default=None, help="number of concurrent streams")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", choices=list(SCENARIOS), help="run only these scenarios")
    ap.add_argument(
        "--hostile",
        nargs="?",
        const="all",
        choices=["all", "streams", "validates", "short"],
        help="100k hostile characters in flight (or only the streams, or the validates)",
    )
    ap.add_argument("--topic", action="store_true", help="async validate with a topic check")
    args = ap.parse_args(argv)
    if args.topic:
        return anyio.run(topic, args, backend="asyncio")
    if args.hostile:
        return anyio.run(hostile, args, backend="asyncio")
    if args.streams is None:
        args.streams = 20 if args.quick else 100
    return anyio.run(amain, args, backend="asyncio")


if __name__ == "__main__":
    sys.exit(main())
