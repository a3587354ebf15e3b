"""What a call's trace costs the OpenAI adapter per chunk, in one process, interleaved.

The adapter as shipped (every call is traced: a ``CallRecorder`` per call) against the
same guarded stream over runs with no recorder (``Runs(rec=None)``), on the deltas of
``adapters.py`` (support-chat policy, 4-character deltas of prose with an e-mail), Chat
chunks and Responses events, async and sync.  Rounds alternate (untraced, traced, ...)
and each keeps its best (minimum) time; on a loaded machine run it several times.

Run:  .venv/bin/python benchmarks/adapter_trace_cost.py [--chunks N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

from adapters import ROOT, adapter_async, adapter_sync, agen, chat_chunks, deltas, gen, text_events

import guardrails_engine as ge
from guardrails_engine._adapters import _guard, _stream, chat, responses


def _translator(policy: ge.Policy, label: str, sync: bool) -> Any:
    runs = _guard.Runs(policy, sync=sync)  # no recorder: the call is not traced
    if label == "chat":
        return chat.ChatTranslator(runs, True)
    runs.part = "output_item"
    return responses.ResponsesTranslator(runs, True)


async def untraced_async(policy: ge.Policy, label: str, items: list[Any]) -> list[Any]:
    stream = _stream.GuardedStream(agen(items), _translator(policy, label, False))
    return [x async for x in stream]


def untraced_sync(policy: ge.Policy, label: str, items: list[Any]) -> list[Any]:
    return list(_stream.SyncGuardedStream(gen(items), _translator(policy, label, True)))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    policy = ge.load_policy(ROOT / "policies" / "support-chat.yaml")
    pieces = deltas(args.chunks)
    n = len(pieces)
    loop = asyncio.new_event_loop()
    builds: dict[str, Callable[[list[str]], list[Any]]] = {
        "chat": chat_chunks,
        "responses": text_events,
    }
    print(f"{n} chunks of 4 chars, best of {args.repeat} interleaved rounds (us per chunk)")
    for label, build in builds.items():
        for mode in ("async", "sync"):
            best = {"untraced": float("inf"), "traced": float("inf")}
            for _ in range(args.repeat):
                for kind in best:
                    items = build(pieces)
                    gc.collect()
                    began = time.perf_counter()
                    if mode == "async" and kind == "traced":
                        loop.run_until_complete(adapter_async(policy, items))
                    elif mode == "async":
                        loop.run_until_complete(untraced_async(policy, label, items))
                    elif kind == "traced":
                        adapter_sync(policy, items)
                    else:
                        untraced_sync(policy, label, items)
                    best[kind] = min(best[kind], time.perf_counter() - began)
            off, on = (best[k] / n * 1e6 for k in ("untraced", "traced"))
            print(f"{label:<10} {mode:<6} untraced {off:6.2f}  traced {on:6.2f}  {on - off:+.2f}")
    loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
