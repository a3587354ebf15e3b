"""What the OpenAI adapter adds per chunk over the bare ``policy.stream``.

The same text deltas, cut the same way, go (a) as ``str`` through ``policy.stream`` /
``policy.stream_sync`` and (b) as the SDK's own objects (``ChatCompletionChunk``, Responses
``response.output_text.delta`` events, built before the clock starts) through
``guardrails_engine.openai.guard`` / ``guard_sync``.  Both sources are plain generators
over objects in memory, so the difference is the adapter: pushing deltas into the run,
writing released text back into the SDK objects, the iterator.  Rounds are interleaved
(bare, adapter, bare, ...), each keeps its best (minimum) time, and the table shows the
per-chunk difference (target: at most +3 us a chunk for the async adapter).

The policy is the shipped support-chat policy with its length limit raised above the text
(``max_chars: 2000`` -> 1,000,000), so that every chunk is checked and released on both
sides: with the limit as shipped, the stream stops reading at the cut (about 500 of the
4,000 chunks), and so, since the adapters stop at a length cut too, does the adapter.
The last line says how many chunks each side read with the shipped policy.

``--calls``: on a loaded machine, where a fraction of a microsecond is lost in the noise,
also count the Python function calls the adapter adds per chunk (``sys.setprofile``, one
run each after a warm-up): a count that does not depend on load.

Run:  .venv/bin/python benchmarks/adapters.py [--chunks N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseTextDeltaEvent

import guardrails_engine as ge
from guardrails_engine import openai as ge_openai

TARGET_US = 3.0
ROOT = Path(__file__).resolve().parent.parent
PROSE = (
    "Thanks for reaching out. Your order shipped yesterday and should arrive soon; "
    "if it does not, write to jdoe@example.com or call us, we answer within a day. "
)


def deltas(n: int) -> list[str]:
    text = PROSE * (n * 4 // len(PROSE) + 1)
    return [text[i * 4 : i * 4 + 4] for i in range(n)]


def chat_chunks(pieces: list[str]) -> list[ChatCompletionChunk]:
    return [
        ChatCompletionChunk.model_validate(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}],
            }
        )
        for p in pieces
    ]


def text_events(pieces: list[str]) -> list[ResponseTextDeltaEvent]:
    return [
        ResponseTextDeltaEvent.model_validate(
            {
                "type": "response.output_text.delta",
                "sequence_number": i,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": p,
                "logprobs": [],
            }
        )
        for i, p in enumerate(pieces)
    ]


async def agen(items: list[Any]) -> AsyncIterator[Any]:
    for x in items:
        yield x


def gen(items: list[Any]) -> Iterator[Any]:
    yield from items


async def bare_async(policy: ge.Policy, pieces: list[str]) -> str:
    return "".join([p async for p in policy.stream(agen(pieces))])


async def adapter_async(policy: ge.Policy, items: list[Any]) -> list[Any]:
    return [x async for x in ge_openai.guard(policy, agen(items))]


def bare_sync(policy: ge.Policy, pieces: list[str]) -> str:
    return "".join(policy.stream_sync(gen(pieces)))


def adapter_sync(policy: ge.Policy, items: list[Any]) -> list[Any]:
    return list(ge_openai.guard_sync(policy, gen(items)))


def _text(out: str | list[Any]) -> str:
    """The text of what came out (read after the clock stops)."""
    if isinstance(out, str):
        return out
    parts = []
    for x in out:
        if isinstance(x, ChatCompletionChunk):
            parts.extend(c.delta.content or "" for c in x.choices)
        else:
            parts.append(str(getattr(x, "delta", "") or ""))
    return "".join(parts)


def best(fn: Callable[[], Any], repeat: int, fresh: Callable[[], None]) -> tuple[float, str]:
    times = []
    out: Any = ""
    for _ in range(repeat):
        fresh()
        gc.collect()
        began = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - began)
    return min(times), _text(out)


def pulled(policy: ge.Policy, pieces: list[str]) -> tuple[int, int]:
    """How many chunks the bare stream and the sync adapter read of ``pieces``."""
    counts = [0, 0]

    def counted(items: list[Any], at: int) -> Iterator[Any]:
        for x in items:
            counts[at] += 1
            yield x

    "".join(policy.stream_sync(counted(pieces, 0)))
    list(ge_openai.guard_sync(policy, counted(chat_chunks(pieces), 1)))
    return counts[0], counts[1]


def calls(fn: Callable[[], Any], n: int) -> float:
    """Python function calls per chunk while ``fn`` runs."""
    count = [0]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            count[0] += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count[0] / n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--calls", action="store_true", help="also count calls per chunk")
    args = parser.parse_args()
    shipped = ROOT / "policies" / "support-chat.yaml"
    text = shipped.read_text(encoding="utf-8")
    assert "max_chars: 2000" in text
    policy = ge.Policy.from_yaml(text.replace("max_chars: 2000", "max_chars: 1000000"))
    pieces = deltas(args.chunks)
    n = len(pieces)
    expected = policy.validate_sync("".join(pieces)).text
    loop = asyncio.new_event_loop()
    rows = []
    failures = []
    holder: dict[str, list[Any]] = {}
    for label, build in (("chat", chat_chunks), ("responses", text_events)):

        def fresh(build: Callable[[list[str]], list[Any]] = build) -> None:
            holder["items"] = build(pieces)  # the adapter writes into them: new ones each round

        cases = [
            (
                "async",
                lambda: loop.run_until_complete(bare_async(policy, pieces)),
                lambda: loop.run_until_complete(adapter_async(policy, holder["items"])),
            ),
            (
                "sync",
                lambda: bare_sync(policy, pieces),
                lambda: adapter_sync(policy, holder["items"]),
            ),
        ]
        for mode, bare, adapted in cases:
            bare_t = adapt_t = float("inf")
            for _ in range(args.repeat):  # interleaved rounds, best of each
                t, out_b = best(bare, 1, lambda: None)
                bare_t = min(bare_t, t)
                t, out_a = best(adapted, 1, fresh)
                adapt_t = min(adapt_t, t)
            if out_b != expected or out_a != expected:
                failures.append(f"{label}/{mode}: output differs from validate()")
            diff = (adapt_t - bare_t) / n * 1e6
            more = ""
            if args.calls:
                fresh()
                more = f"{calls(adapted, n) - calls(bare, n):>+8.2f}"
            rows.append((label, mode, bare_t / n * 1e6, adapt_t / n * 1e6, diff, more))
    loop.close()
    version = sys.version.split()[0]
    print(f"guardrails-engine {ge.__version__}, Python {version}, {n} chunks of 4 chars")
    head = (
        f"{'API':<10} {'mode':<6} {'bare us/chunk':>14} {'adapter us/chunk':>17} {'+us/chunk':>10}"
    )
    print(head + ("  +calls/chunk" if args.calls else ""))
    for label, mode, b, a, d, more in rows:
        mark = "" if mode == "sync" else ("  ok" if d <= TARGET_US else f"  > {TARGET_US}")
        print(f"{label:<10} {mode:<6} {b:>14.2f} {a:>17.2f} {d:>+10.2f}{more}{mark}")
    bare_n, adapter_n = pulled(ge.load_policy(shipped), pieces)
    print(f"with the shipped length limit, chunks read: bare {bare_n:,}, adapter {adapter_n:,}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
