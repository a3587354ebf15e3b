"""One policy used from many threads at once, as a threaded server would."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import guardrails_engine as ge

Answer = tuple[ge.Result, str, ge.Result | None]


def from_threads(policy: ge.Policy, texts: list[str]) -> list[Answer]:
    """For each text, from eight threads at once: ``validate_sync``, the joined
    output of ``stream_sync`` (in chunks of 1-7 characters) and the stream's result."""

    def work(i: int) -> Answer:
        text, size = texts[i], 1 + i % 7
        stream = policy.stream_sync(text[k : k + size] for k in range(0, len(text), size))
        joined = "".join(stream)
        return policy.validate_sync(text), joined, stream.result

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(work, range(len(texts))))
