"""Fallback: a second source takes over before anything was released, and only then.

Every trigger (the source raises, stalls before its first chunk, refuses, is
blocked), before and after the first release, sync and async (asyncio and trio).
Stalls are bounded by the time limits under test (and an outer ``fail_after``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import guardrails_engine as ge

YAML = """
version: 1
name: fallback
block_message: "[blocked]"
stream: {{first_chunk_timeout_ms: 300}}
fallback: {{on: [{on}], closing_message: "[cut]"{extra}}}
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS, CREDIT_CARD], repair: partial}}
  - {{id: words, type: content, terms: [forbidden], action: block}}
"""


def policy(on: str = "error, timeout, refusal, block", extra: str = "") -> ge.Policy:
    return ge.Policy.from_yaml(YAML.format(on=on, extra=extra))


POLICY = policy()
SECOND = "Second model: mail ann@example.com today."
SECOND_OUT = POLICY.validate_sync(SECOND).text
#: Released by the first source before its trigger, in the "after" cases.
BEFORE = ["Hello there. ", "Some text "]


class Source:
    """A source that yields ``chunks`` then ends, raises, refuses or stalls; it says
    whether it was closed."""

    def __init__(self, chunks: list[str], then: str = "end") -> None:
        self.chunks = chunks
        self.then = then
        self.closed = False
        self.release = threading.Event()  # ends a sync stall

    def closes(self) -> bool:
        """Whether it is closed, once a sync stall (abandoned in its thread) returns."""
        self.release.set()
        for _ in range(500):
            if self.closed:
                return True
            time.sleep(0.01)
        return False

    async def agen(self) -> AsyncIterator[str]:
        try:
            for chunk in self.chunks:
                yield chunk
            if self.then == "raise":
                raise ConnectionError("upstream said jdoe@example.com")
            if self.then == "refuse":
                raise ge.Refusal("I cannot help with that")
            if self.then == "hang":
                await anyio.sleep(60)
        finally:
            self.closed = True

    def gen(self) -> Iterator[str]:
        try:
            yield from self.chunks
            if self.then == "raise":
                raise ConnectionError("upstream said jdoe@example.com")
            if self.then == "refuse":
                raise ge.Refusal("I cannot help with that")
            if self.then == "hang":
                self.release.wait(60)
        finally:
            self.closed = True


class Second:
    """A fallback: records what it was told, returns a source of ``SECOND``."""

    def __init__(self, text: str = SECOND, *, sync: bool = False) -> None:
        self.text = text
        self.sync = sync
        self.calls: list[ge.Fallback] = []
        self.source: Source | None = None

    def __call__(self, why: ge.Fallback) -> Any:
        self.calls.append(why)
        self.source = Source([self.text[i : i + 5] for i in range(0, len(self.text), 5)])
        return self.source.gen() if self.sync else self.source.agen()


def run_sync(p: ge.Policy, source: Source, fallback: Any) -> list[Any]:
    with p.stream_sync(source.gen(), fallback=fallback) as stream:
        return list(stream.events())


async def run_async(p: ge.Policy, source: Source, fallback: Any) -> tuple[list[Any], Any]:
    with anyio.fail_after(10):
        async with p.stream(source.agen(), fallback=fallback) as stream:
            events = [e async for e in stream.events()]
    return events, stream.result


def released(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, ge.Released))


def _first_chunks(trigger: str) -> tuple[list[str], str]:
    if trigger == "block":
        return ["This is forbidden. "], "end"
    return [], trigger


TRIGGERS = {"raise": "error", "refuse": "refusal", "hang": "timeout", "block": "block"}


def _check_fell_back(events: list[Any], first: Source, second: Second, trigger: str) -> None:
    assert released(events) == SECOND_OUT
    assert not any(isinstance(e, ge.Blocked | ge.Interrupted) for e in events)
    result = events[-1].result
    assert isinstance(result, ge.FallbackResult)
    assert result.ending == "completed" and result.source == 1
    assert [a.ending for a in result.attempts] == [TRIGGERS[trigger], "completed"]
    assert result.attempts[1].trigger == TRIGGERS[trigger]
    assert [c.reason for c in second.calls] == [TRIGGERS[trigger]]
    assert second.calls[0].attempt == 1
    assert first.closes()  # the abandoned source is closed
    # Nothing of the exception's message, nor of the text, reaches the fallback.
    assert "jdoe" not in repr(second.calls[0])


@pytest.mark.parametrize("trigger", list(TRIGGERS))
def test_sync_trigger_before_release_falls_back(trigger: str) -> None:
    chunks, then = _first_chunks(trigger)
    first, second = Source(chunks, then), Second(sync=True)
    events = run_sync(POLICY, first, second)
    _check_fell_back(events, first, second, trigger)


@pytest.mark.anyio
@pytest.mark.parametrize("trigger", list(TRIGGERS))
async def test_async_trigger_before_release_falls_back(trigger: str) -> None:
    chunks, then = _first_chunks(trigger)
    first, second = Source(chunks, then), Second()
    events, _ = await run_async(POLICY, first, second)
    _check_fell_back(events, first, second, trigger)


def _check_no_replay(events: list[Any], first: Source, second: Second, trigger: str) -> None:
    assert second.calls == []  # text was released: no fallback
    assert released(events).startswith("Hello there. ")
    assert SECOND_OUT not in released(events)
    result = events[-1].result
    endings = [e for e in events if isinstance(e, ge.Blocked | ge.Interrupted)]
    assert len(endings) == 1
    if trigger == "block":
        assert endings[0] == ge.Blocked("[blocked]", result.findings)
        assert result.ending == "blocked" and result.decision is ge.Decision.BLOCK
    else:
        ending = endings[0]
        assert isinstance(ending, ge.Interrupted)
        assert (ending.reason, ending.message) == (TRIGGERS[trigger], "[cut]")
        assert result.ending == TRIGGERS[trigger] and result.text == "[cut]"
        assert result.decision is ge.Decision.BLOCK and result.interrupted
    assert result.source == 0
    assert first.closed


def _after(trigger: str) -> Source:
    if trigger == "block":
        return Source([*BEFORE, "and forbidden words. "])
    return Source(BEFORE, trigger)


AFTER = [t for t in TRIGGERS if t != "hang"]  # (a hang after a release: idle, below)


@pytest.mark.parametrize("trigger", AFTER)
def test_sync_trigger_after_release_ends_without_replay(trigger: str) -> None:
    first, second = _after(trigger), Second(sync=True)
    events = run_sync(POLICY, first, second)
    _check_no_replay(events, first, second, trigger)


@pytest.mark.anyio
@pytest.mark.parametrize("trigger", AFTER)
async def test_async_trigger_after_release_ends_without_replay(trigger: str) -> None:
    first, second = _after(trigger), Second()
    events, _ = await run_async(POLICY, first, second)
    _check_no_replay(events, first, second, trigger)


IDLE = YAML.format(on="error, timeout, refusal, block", extra="").replace(
    "first_chunk_timeout_ms: 300", "first_chunk_timeout_ms: 300, idle_timeout_ms: 300"
)


@pytest.mark.anyio
@pytest.mark.parametrize("released_first", [False, True])
async def test_async_hang_mid_stream(released_first: bool) -> None:
    # Mid-stream: chunks came, then nothing (stream.idle_timeout_ms). Before a release
    # ("Hello" is held: a value may go on) the fallback takes over; after, the stream
    # ends with a timeout, not the block message.
    p = ge.Policy.from_yaml(IDLE)
    chunks = BEFORE if released_first else ["Hello"]
    first, second = Source(chunks, "hang"), Second()
    events, result = await run_async(p, first, second)
    assert first.closed
    if released_first:
        _check_no_replay(events, first, second, "hang")
    else:
        assert released(events) == SECOND_OUT and result.source == 1
        assert [a.ending for a in result.attempts] == ["timeout", "completed"]


def test_sync_hang_mid_stream() -> None:
    # A sync source cannot be interrupted: the idle limit is looked at when it returns.
    p = ge.Policy.from_yaml(IDLE)

    def slow() -> Iterator[str]:
        yield "Hello"
        time.sleep(0.5)  # past idle_timeout_ms
        yield " there."

    second = Second(sync=True)
    with p.stream_sync(slow(), fallback=second) as stream:
        text = "".join(stream)
    assert text == SECOND_OUT
    assert [c.reason for c in second.calls] == ["timeout"]


def test_the_deadline_after_a_release_is_an_interrupted_ending() -> None:
    p = ge.Policy.from_yaml(IDLE.replace("idle_timeout_ms: 300", "deadline_ms: 300"))

    def slow() -> Iterator[str]:
        yield "Hello there. "
        time.sleep(0.5)  # past deadline_ms
        yield "More text. "

    with p.stream_sync(slow(), fallback=Second(sync=True)) as stream:
        events = list(stream.events())
    assert released(events) == "Hello there. "
    ending = events[-2]
    assert isinstance(ending, ge.Interrupted) and ending.reason == "timeout"
    assert ending.message == "[cut]" and events[-1].result.ending == "timeout"
    assert not any(isinstance(e, ge.Blocked) for e in events)


def test_iterating_gives_the_text_and_the_ending_message() -> None:
    with POLICY.stream_sync(Source(BEFORE, "raise").gen(), fallback=Second(sync=True)) as s:
        text = "".join(s)
    assert text == "Hello there. Some [cut]"  # ("text " waits: a value may go on)
    assert s.result is not None and s.result.ending == "error"


def test_a_trigger_not_listed_does_not_fall_back() -> None:
    only_errors = policy("error")
    second = Second(sync=True)
    events = run_sync(only_errors, Source(["This is forbidden. "]), second)
    assert second.calls == []
    assert [type(e) for e in events] == [ge.Blocked, ge.Ended]
    only_blocks = policy("block")
    events = run_sync(only_blocks, Source([], "raise"), second)
    assert second.calls == []
    assert isinstance(events[0], ge.Interrupted) and events[0].reason == "error"
    assert events[-1].result.ending == "error"


def test_the_next_fallback_after_a_failing_one_and_max_attempts() -> None:
    failing = Second(sync=True)
    failing.text = ""

    def broken(why: ge.Fallback) -> Iterator[str]:
        failing.calls.append(why)
        return Source([], "raise").gen()

    second = Second(sync=True)
    events = run_sync(POLICY, Source([], "raise"), [broken, second])
    assert released(events) == SECOND_OUT
    assert [c.attempt for c in failing.calls] == [1]
    assert [c.attempt for c in second.calls] == [2]
    assert [a.ending for a in events[-1].result.attempts] == ["error", "error", "completed"]
    # At most max_attempts sources, the first included: the last failure ends the stream.
    limited = policy(extra=", max_attempts: 2")
    second = Second(sync=True)
    failing.calls.clear()
    events = run_sync(limited, Source([], "raise"), [broken, second])
    assert second.calls == [] and len(failing.calls) == 1
    assert [type(e) for e in events] == [ge.Interrupted, ge.Ended]
    assert events[-1].result.text == "[cut]"


def test_a_fixed_text_is_checked_like_any_other_source() -> None:
    p = policy(extra=', text: "Sorry, write to help@example.com."')
    events = run_sync(p, Source([], "raise"), None)
    assert released(events) == "Sorry, write to <EMAIL_ADDRESS>."
    assert events[-1].result.findings[0].entity_type == "EMAIL_ADDRESS"
    blocked = policy(extra=', text: "a forbidden answer"')
    events = run_sync(blocked, Source([], "raise"), None)
    assert [type(e) for e in events] == [ge.Blocked, ge.Ended]
    assert events[0].message == "[blocked]"
    # Given in code and in the policy: the code's fallbacks first, then the text.
    second = Second(sync=True)
    events = run_sync(p, Source([], "raise"), [lambda why: Source([], "raise").gen(), second])
    assert released(events) == SECOND_OUT


@pytest.mark.anyio
async def test_async_fallback_may_be_a_coroutine_or_a_sync_iterable() -> None:
    async def coroutine(why: ge.Fallback) -> AsyncIterator[str]:
        await anyio.lowlevel.checkpoint()
        return Second()(why)

    events, _ = await run_async(POLICY, Source([], "raise"), coroutine)
    assert released(events) == SECOND_OUT
    events, _ = await run_async(POLICY, Source([], "raise"), lambda why: [SECOND])
    assert released(events) == SECOND_OUT


def test_sync_stream_fallback_returning_an_async_source_is_its_failure() -> None:
    async def coroutine(why: ge.Fallback) -> list[str]:
        return [SECOND]

    events = run_sync(POLICY, Source([], "raise"), [coroutine, lambda why: 42])
    assert [type(e) for e in events] == [ge.Interrupted, ge.Ended]
    assert [a.ending for a in events[-1].result.attempts] == ["error", "error", "error"]
    assert "TypeError" in events[0].detail


def test_why_findings_name_checks_and_places_never_values() -> None:
    second = Second(sync=True)
    card = "4111 1111 1111 1111"
    run_sync(POLICY, Source([f"Card {card} is forbidden. "]), second)
    (why,) = second.calls
    assert why.reason == "block"
    assert {f.check_id for f in why.findings} == {"pii", "words"}
    assert all(f.replacement is None for f in why.findings)
    assert "1111" not in repr(why)


def test_a_schema_released_on_completion_can_always_fall_back() -> None:
    p = ge.Policy.from_yaml(
        """
version: 1
name: json
fallback: {on: [error, block]}
checks:
  - id: shape
    type: schema
    schema: {type: object, required: [answer], properties: {answer: {type: string}}}
"""
    )
    told: list[ge.Fallback] = []

    def again(why: ge.Fallback) -> list[str]:
        told.append(why)
        return ['{"answer": ', '"yes"}']

    long_ok = ['{"answer": "', *["word " for _ in range(300)]]
    with p.stream_sync(Source(long_ok, "raise").gen(), fallback=again) as s:
        assert "".join(s) == '{"answer": "yes"}'
    with p.stream_sync(['{"answer": 3}'], fallback=again) as s:
        assert "".join(s) == '{"answer": "yes"}'
    assert [w.reason for w in told] == ["error", "block"]
    assert "$.answer" in told[1].findings[0].reason and "3" not in told[1].findings[0].reason


@pytest.mark.anyio
async def test_async_stream_over_a_stalled_sync_source() -> None:
    # A sync source that blocks is pulled in a worker thread the time limit abandons;
    # it is closed when that pull returns.
    first, second = Source([], "hang"), Second()
    with anyio.fail_after(10):
        async with POLICY.stream(first.gen(), fallback=second) as stream:
            text = "".join([piece async for piece in stream])
    assert text == SECOND_OUT
    assert stream.result is not None and stream.result.attempts[0].ending == "timeout"
    assert first.closes()


@pytest.mark.anyio
async def test_cancelled_while_waiting_closes_the_source() -> None:
    first = Source(BEFORE, "hang")
    stream = POLICY.stream(first.agen(), fallback=Second())
    got: list[str] = []
    with anyio.move_on_after(0.2):
        async for piece in stream:
            got.append(piece)
    assert "".join(got) == "Hello there. Some "
    assert first.closed and stream.result is None
    await stream.aclose()


@pytest.mark.anyio
async def test_closing_early_closes_the_source_and_iteration_then_raises() -> None:
    first = Source([*BEFORE, "more. "] * 3)
    stream = POLICY.stream(first.agen(), fallback=Second())
    assert await stream.__anext__() == "Hello there. "
    await stream.aclose()
    assert first.closed and stream.result is None
    with pytest.raises(ge.StreamStateError):
        await stream.__anext__()


def test_each_attempt_is_traced() -> None:
    # Each source's run has its own trace; the result lists every attempt.
    p = ge.Policy.from_yaml(
        YAML.format(on="error", extra="").replace("stream: {first_chunk_timeout_ms: 300}", "")
    )
    traces: list[ge.Trace] = []
    with p.stream_sync(
        Source(["Hi "], "raise").gen(), fallback=Second(sync=True), on_trace=traces.append
    ) as s:
        list(s)
    assert [t.to_dict()["ending"] for t in traces] == ["source_error", "completed"]
    assert s.result is not None and [a.ending for a in s.result.attempts] == ["error", "completed"]


def test_breaker_skips_a_failing_first_source_not_a_blocked_one() -> None:
    breaker = ge.Breaker(failures=2, window_s=60, cooldown_s=0.2)
    for _ in range(3):  # blocks and refusals never count
        run_sync(POLICY, Source(["This is forbidden. "]), Second(sync=True))
        with POLICY.stream_sync(
            Source([], "refuse").gen(), fallback=Second(sync=True), breaker=breaker
        ) as s:
            list(s)
    assert not breaker.open
    for _ in range(2):
        with POLICY.stream_sync(
            Source([], "raise").gen(), fallback=Second(sync=True), breaker=breaker
        ) as s:
            list(s)
    assert breaker.open
    skipped = Source(["Fine. "])
    second = Second(sync=True)
    with POLICY.stream_sync(skipped.gen(), fallback=second, breaker=breaker) as s:
        assert "".join(s) == SECOND_OUT
    assert [c.reason for c in second.calls] == ["breaker"]
    assert s.result is not None and s.result.attempts[0].ending == "skipped"
    time.sleep(0.3)  # the cooldown passes
    with POLICY.stream_sync(iter(["Fine. "]), fallback=second, breaker=breaker) as s:
        assert "".join(s) == "Fine. "


def test_bad_arguments_and_policies() -> None:
    with pytest.raises(TypeError, match="got int"):
        POLICY.stream_sync(["x"], fallback=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got str"):
        POLICY.stream(["x"], breaker="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="failures"):
        ge.Breaker(failures=0)
    with pytest.raises(ge.PolicyError) as err:
        policy("error, sometimes")
    assert err.value.line == 6 and "fallback.on" in str(err.value)
    with pytest.raises(ge.PolicyError, match="max_attempts"):
        policy(extra=", max_attempts: 0")
