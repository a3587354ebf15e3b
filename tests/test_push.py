"""Push runs: text fed by hand (as an adapter reading an SDK stream feeds it)."""

from __future__ import annotations

import gc

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrails_engine as ge

POLICY = ge.Policy.from_yaml(
    """
version: 1
name: push
block_message: "[blocked]"
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS, PHONE_NUMBER]}
  - {id: words, type: content, terms: [forbidden], action: block}
  - {id: len, type: length, max_chars: 80}
"""
)
TEXTS = [
    "Mail jdoe@example.com or call +1 415 555 0132 today.",
    "All fine here, nothing to see at all.",
    "Before the forbidden word, after it.",
    "x" * 30 + " " + "word " * 20,
]


def _pushed_sync(policy: ge.Policy, chunks: list[str]) -> tuple[str, ge.SyncPush]:
    push = policy.push_sync()
    out = [push.feed(c) for c in chunks]
    out.append(push.finish())
    return "".join(out), push


def _pushed_async(policy: ge.Policy, chunks: list[str]) -> tuple[str, ge.Push]:
    async def main() -> tuple[str, ge.Push]:
        push = policy.push()
        out = [await push.feed(c) for c in chunks]
        out.append(await push.finish())
        return "".join(out), push

    return anyio.run(main)


@settings(max_examples=150, deadline=None)
@given(
    text=st.sampled_from(TEXTS),
    cuts=st.lists(st.integers(1, 9), min_size=1, max_size=20),
    asynchronous=st.booleans(),
)
def test_a_push_run_gives_validate_on_every_chunking(
    text: str, cuts: list[int], asynchronous: bool
) -> None:
    chunks, i, k = [], 0, 0
    while i < len(text):
        chunks.append(text[i : i + cuts[k % len(cuts)]])
        i += cuts[k % len(cuts)]
        k += 1
    released, push = (_pushed_async if asynchronous else _pushed_sync)(POLICY, chunks)
    expected = POLICY.validate_sync(text)
    assert push.done and push.result == expected
    if expected.blocked:
        blocked = push.blocked
        assert blocked is not None and blocked.message == "[blocked]"
        assert blocked.findings == expected.findings
        assert "forbidden" not in released and "[blocked]" not in released
    else:
        assert push.blocked is None
        assert released == expected.text


def test_feeding_after_the_end_gives_nothing_and_bad_input_is_a_type_error() -> None:
    push = POLICY.push_sync()
    released = push.feed("the forbidden word. ")
    released += push.finish()
    assert "the ".startswith(released)  # at most what comes before the block
    assert push.done and push.blocked is not None
    assert push.feed("more") == "" and push.finish() == ""
    with pytest.raises(TypeError, match="feed\\(\\) takes a str, got bytes"):
        POLICY.push_sync().feed(b"x")  # type: ignore[arg-type]


def test_closing_early_is_a_run_without_a_result() -> None:
    push = POLICY.push_sync()
    push.feed("Mail jdoe@exa")
    push.close()
    assert push.done and push.result is None
    assert push.feed("mple.com") == ""


def test_a_push_run_is_traced_like_a_stream() -> None:
    traces: list[ge.Trace] = []
    push = POLICY.push_sync(trace_id="t-1", on_trace=traces.append)
    push.feed("Hello jdoe@example.com")
    push.finish()
    assert [t.trace_id for t in traces] == ["t-1"]
    assert traces[0].decision == "repair"


def test_push_runs_close_as_context_managers() -> None:
    with POLICY.push_sync() as push:
        push.feed("Mail jdoe@exa")
    assert push.done and push.result is None  # left unfinished: closed, no result
    with POLICY.push_sync() as push:
        shown = push.feed("Mail jdoe@example.com now. ") + push.finish()
    assert shown == "Mail <EMAIL_ADDRESS> now. " and push.result is not None

    async def main() -> tuple[ge.Push, ge.Push]:
        async with POLICY.push() as unfinished:
            await unfinished.feed("Mail jdoe@exa")
        async with POLICY.push() as finished:
            await finished.feed("the forbidden word. ")
            await finished.finish()
        await finished.aclose()  # idempotent, and a run that ended keeps its result
        return unfinished, finished

    unfinished, finished = anyio.run(main)
    assert unfinished.done and unfinished.result is None and unfinished.blocked is None
    assert finished.result is not None and finished.result.decision is ge.Decision.BLOCK


def test_blocked_is_one_value_everywhere() -> None:
    text = "Before the forbidden word, after it."
    result = POLICY.validate_sync(text)
    push = POLICY.push_sync()
    push.feed(text)
    push.finish()
    events = list(POLICY.stream_sync([text]).events())
    assert isinstance(result.blocked, ge.Blocked)
    assert result.blocked == push.blocked == events[-2]
    assert result.blocked == ge.Blocked("[blocked]", result.findings)
    assert POLICY.validate_sync("All fine.").blocked is None


def test_a_dropped_push_run_ends_as_cancelled() -> None:
    traces: list[ge.Trace] = []
    push = POLICY.push_sync(on_trace=traces.append)
    assert push.feed("Mail jdoe@exa") == "Mail "
    del push
    gc.collect()
    assert [t.ending for t in traces] == ["cancelled"]
