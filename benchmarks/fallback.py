"""Fallback: how fast a fallback takes over, and what the machinery costs when it does not.

(a) Takeover: a first source that never gives a chunk, ``stream.first_chunk_timeout_ms``
    of 50 ms, a fallback that answers at once (a list, 4-character chunks, pattern-pii).
    Measured: from the moment the time limit passes (the stream's start + 50 ms) to the
    first released piece of the fallback; p50 and p99 over many runs; async (asyncio:
    an async source interrupted) and sync (a sync source pulled in a thread that the
    limit abandons).
(b) Cost when it does not fire: a 16,000-character text in 4-character chunks through
    ``policy.stream_sync`` / ``policy.stream``: without fallback, with ``fallback=``
    (a callable never called), and with ``fallback=`` plus ``first_chunk_timeout_ms``
    (the first chunk pulled within the limit); runs interleaved, best of each; the
    difference per chunk (us) against no fallback; with pattern-pii and with a light
    policy (one content check), on which the difference is not lost in the checks' cost.

    .venv/bin/python benchmarks/fallback.py [--quick]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import AsyncIterator, Iterator

import _common as c
import anyio

import guardrails_engine as ge

LIMIT_MS = 50


#: A policy whose run costs little per chunk, so that what the fallback adds shows.
LIGHT = """
version: 1
name: light
checks:
  - {id: words, type: content, terms: ["internal use only"], action: repair}
"""


def policy(extra: str, base: str | None = None) -> ge.Policy:
    text = c.PATTERN_PII.read_text(encoding="utf-8") if base is None else base
    return ge.Policy.from_yaml(text + extra)


def takeover(runs: int) -> None:
    p = policy(f"stream: {{first_chunk_timeout_ms: {LIMIT_MS}}}\n")
    answer = c.chunks("A second model answers: write to help@example.com today.", 4)
    never = threading.Event()

    async def hung() -> AsyncIterator[str]:
        await anyio.sleep(3600)
        yield ""

    def hung_sync() -> Iterator[str]:
        never.wait(3600)
        yield ""

    async def one_async() -> float:
        began = time.perf_counter()
        async with p.stream(hung(), fallback=lambda why: answer) as s:
            async for _ in s:
                return time.perf_counter() - (began + LIMIT_MS / 1000)
        raise AssertionError("no text")

    def one_sync() -> float:
        began = time.perf_counter()
        with p.stream_sync(hung_sync(), fallback=lambda why: answer) as s:
            for _ in s:
                return time.perf_counter() - (began + LIMIT_MS / 1000)
        raise AssertionError("no text")

    async def many() -> list[float]:
        return [await one_async() for _ in range(runs)]

    for name, took in (
        ("async (asyncio)", anyio.run(many)),
        ("sync (thread)", [one_sync() for _ in range(runs)]),
    ):
        ms = sorted(t * 1000 for t in took)
        p50 = ms[len(ms) // 2]
        p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
        print(
            f"  {name:<16} limit {LIMIT_MS} ms, {runs} runs: limit passed -> first released "
            f"piece p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms"
        )
    never.set()


def cost(size: int, rounds: int, base: str | None) -> None:
    text = c.pii_text(size)
    chunks = c.chunks(text, 4)
    plain = policy("", base)
    timed = policy("stream: {first_chunk_timeout_ms: 1000}\n", base)
    expected = plain.validate_sync(text).text

    def never(why: ge.Fallback) -> list[str]:
        raise AssertionError("the fallback fired")

    def source() -> Iterator[str]:
        yield from chunks

    async def asource() -> AsyncIterator[str]:
        for chunk in chunks:
            yield chunk

    def sync_run(p: ge.Policy, fallback: object) -> str:
        if fallback is None:
            return "".join(p.stream_sync(source()))
        return "".join(p.stream_sync(source(), fallback=never))

    async def async_run(p: ge.Policy, fallback: object) -> str:
        s = p.stream(asource()) if fallback is None else p.stream(asource(), fallback=never)
        return "".join([piece async for piece in s])

    cases = {
        "sync, no fallback": lambda: sync_run(plain, None),
        "sync, fallback=": lambda: sync_run(plain, never),
        "sync, fallback= + first chunk limit": lambda: sync_run(timed, never),
        "async, no fallback": lambda: anyio.run(async_run, plain, None),
        "async, fallback=": lambda: anyio.run(async_run, plain, never),
        "async, fallback= + first chunk limit": lambda: anyio.run(async_run, timed, never),
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):  # interleaved: every case sees the same background load
        for name, run in cases.items():
            began = time.perf_counter()
            out = run()
            best[name] = min(best[name], time.perf_counter() - began)
            assert out == expected, f"{name}: output differs from validate"
    n = len(chunks)
    for name, seconds in best.items():
        base = best["sync, no fallback" if name.startswith("sync") else "async, no fallback"]
        extra = (seconds - base) / n * 1e6
        print(
            f"  {name:<38} {seconds * 1000:8.1f} ms  {seconds / n * 1e6:6.2f} us/chunk"
            f"  ({extra:+.2f} us/chunk against no fallback)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few runs")
    args = parser.parse_args()
    c.header("fallback")
    print("(a) takeover after a hung first source")
    takeover(30 if args.quick else 200)
    size, rounds = (8_000, 3) if args.quick else (16_000, 15)
    for name, base in (("pattern-pii", None), ("light (one content check)", LIGHT)):
        print(f"(b) cost when no fallback fires, {name}: {size:,} characters in 4-character chunks")
        cost(size, rounds, base)


if __name__ == "__main__":
    main()
