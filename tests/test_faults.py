"""Streaming guarantees 5 and 6: stop paying early, and faults never release unchecked text.

Sources are generators that count the chunks pulled from them and record, in
a ``finally``, that they were closed.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _policies import make_policy

import guardrails_engine as ge
from guardrails_engine.checks import _base as _check

SECRET = "sk-" + "Zx9" * 8
BLOCK_MESSAGE = "Sorry, I can't share that."


class Boom(Exception):
    """What a failing source raises."""


class Source:
    """A chunk source that counts pulls and knows whether it was closed."""

    def __init__(self, chunks: Sequence[Any], *, then_raise: BaseException | None = None) -> None:
        self.chunks = list(chunks)
        self.then_raise = then_raise
        self.pulls = 0
        self.closed = False

    def sync(self) -> Iterator[Any]:
        try:
            for chunk in self.chunks:
                self.pulls += 1
                yield chunk
            if self.then_raise is not None:
                raise self.then_raise
        finally:
            self.closed = True

    async def asynchronous(self) -> AsyncIterator[Any]:
        try:
            for chunk in self.chunks:
                await anyio.lowlevel.checkpoint()
                self.pulls += 1
                yield chunk
            if self.then_raise is not None:
                raise self.then_raise
        finally:
            self.closed = True

    def endless_sync(self, chunk: str = "and so on ") -> Iterator[str]:
        try:
            while True:
                self.pulls += 1
                yield chunk
        finally:
            self.closed = True

    async def endless(self, chunk: str = "and so on ") -> AsyncIterator[str]:
        try:
            while True:
                await anyio.lowlevel.checkpoint()
                self.pulls += 1
                yield chunk
        finally:
            self.closed = True


async def _collect(stream: ge.Stream) -> list[str]:
    return [piece async for piece in stream]


async def _drain_ended(stream: ge.Stream) -> None:
    """Iterating a stream that ended (decided, or its source failed) gives nothing."""
    assert await _collect(stream) == []


def _drain_ended_sync(stream: ge.SyncStream) -> None:
    assert list(stream) == []


async def _drain_closed(stream: ge.Stream) -> None:
    """Iterating a stream the consumer closed before it ended is a StreamStateError."""
    with pytest.raises(ge.StreamStateError, match="closed before it ended"):
        await _collect(stream)


def _drain_closed_sync(stream: ge.SyncStream) -> None:
    with pytest.raises(ge.StreamStateError, match="closed before it ended"):
        list(stream)


def _length_policy(max_chars: int) -> ge.Policy:
    return make_policy([{"id": "len", "type": "length", "max_chars": max_chars}])


# The comma after the key ends it for every pattern (after a bare space, an address
# written in words, "sk-... at example dot com", might still be in progress).
BLOCKING_CHUNKS = [
    "Hello there, ",
    f"here it is: {SECRET}, ",
    "more text",
    " and more",
    " and more",
]


def _assert_blocked_before_the_key(pieces: list[str]) -> None:
    """The text before the key may go out (all of it or less), then the block message."""
    assert pieces[-1] == BLOCK_MESSAGE
    released = "".join(pieces[:-1])
    assert released.startswith("Hello there, ")  # the first chunk was safe and went out
    assert "Hello there, here it is: ".startswith(released)


# A run of "word " chunks: the 5th takes the text past 20 characters.
WORD_CHUNKS = ["word "] * 12


# -- 5. the outcome is decided: the source is closed, nothing more is pulled -----------------


def test_sync_block_closes_the_source(support_policy: ge.Policy) -> None:
    source = Source(BLOCKING_CHUNKS)
    stream = support_policy.stream_sync(source.sync())
    pieces = list(stream)
    assert source.closed
    assert source.pulls == 2  # the key (and the comma that ends it) came in the 2nd chunk
    _assert_blocked_before_the_key(pieces)
    assert stream.result is not None and stream.result.decision is ge.Decision.BLOCK
    _drain_ended_sync(stream)
    assert source.pulls == 2


@pytest.mark.anyio
async def test_async_block_closes_the_source(support_policy: ge.Policy) -> None:
    source = Source(BLOCKING_CHUNKS)
    stream = support_policy.stream(source.asynchronous())
    pieces = await _collect(stream)
    assert source.closed
    assert source.pulls == 2
    _assert_blocked_before_the_key(pieces)
    assert stream.result is not None and stream.result.decision is ge.Decision.BLOCK
    await _drain_ended(stream)
    assert source.pulls == 2


@pytest.mark.anyio
async def test_async_stream_of_a_sync_source_closes_it_on_block(support_policy: ge.Policy) -> None:
    source = Source(BLOCKING_CHUNKS)
    stream = support_policy.stream(source.sync())
    assert (await _collect(stream))[-1] == BLOCK_MESSAGE
    assert source.closed
    assert source.pulls == 2


def test_sync_truncation_closes_the_source() -> None:
    source = Source(WORD_CHUNKS)
    stream = _length_policy(20).stream_sync(source.sync())
    pieces = list(stream)
    assert source.closed
    assert source.pulls == 5  # 20 characters are within the limit; the 21st decides
    assert "".join(pieces) == "word word word word"
    assert stream.result is not None and stream.result.decision is ge.Decision.REPAIR


@pytest.mark.anyio
async def test_async_truncation_closes_the_source() -> None:
    source = Source(WORD_CHUNKS)
    stream = _length_policy(20).stream(source.asynchronous())
    pieces = await _collect(stream)
    assert source.closed
    assert source.pulls == 5
    assert "".join(pieces) == "word word word word"
    assert stream.result is not None and stream.result.decision is ge.Decision.REPAIR


def test_sync_truncation_of_an_endless_source() -> None:
    source = Source([])
    stream = _length_policy(100).stream_sync(source.endless_sync())
    text = "".join(stream)
    assert source.closed
    assert source.pulls == 11  # 10 chunks of 10 characters reach the limit, the 11th passes it
    assert text == ("and so on " * 10).rstrip()


@pytest.mark.anyio
async def test_async_truncation_of_an_endless_source() -> None:
    source = Source([])
    stream = _length_policy(100).stream(source.endless())
    text = "".join(await _collect(stream))
    assert source.closed
    assert source.pulls == 11
    assert text == ("and so on " * 10).rstrip()


def test_source_runs_to_the_end_when_nothing_is_decided(support_policy: ge.Policy) -> None:
    source = Source(["nothing ", "to see ", "here"])
    assert "".join(support_policy.stream_sync(source.sync())) == "nothing to see here"
    assert source.pulls == 3
    assert source.closed  # exhausted


# -- 5. the consumer stops early: the source is closed --------------------------------------


@pytest.mark.anyio
async def test_aclose_closes_the_source(support_policy: ge.Policy) -> None:
    source = Source([])
    stream = support_policy.stream(source.endless())
    first = await stream.__anext__()
    # The last word may still begin an address written in words ("on at example dot com").
    assert first == "and so "
    pulls = source.pulls
    await stream.aclose()
    assert source.closed
    await _drain_closed(stream)
    assert source.pulls == pulls
    assert stream.result is None  # the stream did not end: it has no final answer
    await stream.aclose()  # closing twice is harmless


@pytest.mark.anyio
async def test_break_out_of_async_with_closes_the_source(support_policy: ge.Policy) -> None:
    source = Source([])
    async with support_policy.stream(source.endless()) as stream:
        async for _piece in stream:
            break
    assert source.closed
    pulls = source.pulls
    await _drain_closed(stream)
    assert source.pulls == pulls
    assert stream.result is None


@pytest.mark.anyio
async def test_aclose_closes_a_sync_source(support_policy: ge.Policy) -> None:
    source = Source([])
    stream = support_policy.stream(source.endless_sync())
    await stream.__anext__()
    await stream.aclose()
    assert source.closed


@pytest.mark.anyio
async def test_aclose_after_the_end_keeps_the_result(support_policy: ge.Policy) -> None:
    source = Source(["mail jdoe@example.com ", "today"])
    stream = support_policy.stream(source.asynchronous())
    assert "".join(await _collect(stream)) == "mail <EMAIL_ADDRESS> today"
    await stream.aclose()
    assert stream.result == support_policy.validate_sync("mail jdoe@example.com today")


@pytest.mark.anyio
async def test_cancelling_the_consumer_closes_the_source(support_policy: ge.Policy) -> None:
    closed = False

    async def source() -> AsyncIterator[str]:
        nonlocal closed
        try:
            yield "mail me at jdoe@exa"
            await anyio.sleep_forever()
            yield "mple.com"  # pragma: no cover
        finally:
            closed = True

    pieces: list[str] = []
    stream = support_policy.stream(source())
    with anyio.CancelScope() as scope:
        async for piece in stream:
            pieces.append(piece)
            scope.cancel()
    assert scope.cancelled_caught
    assert closed
    assert pieces == ["mail me at "]
    assert stream.result is None


def test_close_closes_the_sync_source(support_policy: ge.Policy) -> None:
    source = Source([])
    stream = support_policy.stream_sync(source.endless_sync())
    assert next(stream) == "and so "  # (as above: "on at example dot com")
    pulls = source.pulls
    stream.close()
    assert source.closed
    _drain_closed_sync(stream)
    assert source.pulls == pulls
    assert stream.result is None


def test_break_out_of_with_closes_the_sync_source(support_policy: ge.Policy) -> None:
    source = Source([])
    with support_policy.stream_sync(source.endless_sync()) as stream:
        for _piece in stream:
            break
    assert source.closed


# -- 6. the source raises ------------------------------------------------------------------

FAILING_CHUNKS = ["Hello, ", "mail me at jdoe@exa"]


def test_sync_source_error_reaches_the_consumer(support_policy: ge.Policy) -> None:
    error = Boom("the model went away")
    source = Source(FAILING_CHUNKS, then_raise=error)
    stream = support_policy.stream_sync(source.sync())
    pieces: list[str] = []
    with pytest.raises(Boom) as info:
        for piece in stream:
            pieces.append(piece)
    assert info.value is error
    assert pieces == ["Hello, ", "mail me at "]
    assert not any("jdoe" in piece for piece in pieces)
    _drain_ended_sync(stream)  # the held-back text is discarded, not released later
    assert source.closed
    assert stream.result is None  # a stream whose source failed has no final answer


@pytest.mark.anyio
async def test_async_source_error_reaches_the_consumer(support_policy: ge.Policy) -> None:
    error = Boom("the model went away")
    source = Source(FAILING_CHUNKS, then_raise=error)
    stream = support_policy.stream(source.asynchronous())
    pieces: list[str] = []
    with pytest.raises(Boom) as info:
        async for piece in stream:
            pieces.append(piece)
    assert info.value is error
    assert pieces == ["Hello, ", "mail me at "]
    assert not any("jdoe" in piece for piece in pieces)
    await _drain_ended(stream)
    assert source.closed
    assert stream.result is None


@pytest.mark.anyio
async def test_source_error_during_a_partial_key(support_policy: ge.Policy) -> None:
    source = Source(["The key is ", SECRET[:10]], then_raise=Boom())
    stream = support_policy.stream(source.asynchronous())
    pieces: list[str] = []
    with pytest.raises(Boom):
        async for piece in stream:
            pieces.append(piece)
    assert "sk-" not in "".join(pieces)


def test_source_error_with_a_length_check_only() -> None:
    # Nothing is held back by a length check far from its limit: what was released stays.
    source = Source(["one ", "two "], then_raise=Boom())
    stream = _length_policy(100).stream_sync(source.sync())
    pieces: list[str] = []
    with pytest.raises(Boom):
        for piece in stream:
            pieces.append(piece)
    assert pieces == ["one ", "two "]
    assert stream.result is None


# -- 6. a check raises: on_error decides --------------------------------------------------

FAULTY_POLICY = """\
version: 1
name: faulty
block_message: "[blocked]"
{policy_on_error}
checks:
  - id: forbidden-words
    type: content
    terms: [foo]
{check_on_error}
  - id: len
    type: length
    max_chars: 1000
"""


def _faulty(policy_on_error: str | None = None, check_on_error: str | None = None) -> ge.Policy:
    return ge.Policy.from_yaml(
        FAULTY_POLICY.format(
            policy_on_error=f"on_error: {policy_on_error}" if policy_on_error else "",
            check_on_error=f"    on_error: {check_on_error}" if check_on_error else "",
        )
    )


@pytest.fixture
def exploding_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pattern check raises when fed (with text in the message, which must not leak)."""

    def feed(self: Any, buf: str, base: int, chunk: str) -> Any:
        raise RuntimeError(f"cannot scan {chunk!r}")

    def finish(self: Any, buf: str, base: int) -> Any:
        raise RuntimeError(f"cannot scan {buf!r}")

    # A stream feeds the session; validate scans the whole text in finish.
    monkeypatch.setattr(_check.PatternSession, "feed", feed)
    monkeypatch.setattr(_check.PatternSession, "finish", finish)


BLOCK_REASON = "forbidden-words: check failed (RuntimeError), blocked"
FLAG_REASON = "forbidden-words: check failed (RuntimeError), skipped (on_error: pass)"


@pytest.mark.usefixtures("exploding_feed")
@pytest.mark.parametrize(
    ("policy_on_error", "check_on_error"), [(None, None), ("block", None), ("pass", "block")]
)
def test_failing_check_blocks_by_default(
    policy_on_error: str | None, check_on_error: str | None
) -> None:
    policy = _faulty(policy_on_error, check_on_error)
    result = policy.validate_sync("a harmless text, jdoe@example.com")
    assert result.decision is ge.Decision.BLOCK
    assert result.text == "[blocked]"
    assert result.reasons == (BLOCK_REASON,)
    assert result.findings[0].check_id == "forbidden-words"
    assert "jdoe" not in result.reasons[0]


@pytest.mark.usefixtures("exploding_feed")
@pytest.mark.parametrize(("policy_on_error", "check_on_error"), [("pass", None), ("block", "pass")])
def test_failing_check_passes_with_on_error_pass(
    policy_on_error: str | None, check_on_error: str | None
) -> None:
    policy = _faulty(policy_on_error, check_on_error)
    text = "a text with foo in it"  # the check that would block it is the one that failed
    result = policy.validate_sync(text)
    assert result.decision is ge.Decision.PASS
    assert result.text == text
    (finding,) = result.findings
    assert finding.check_id == "forbidden-words"
    assert finding.action is ge.Action.FLAG
    assert finding.reason == FLAG_REASON


@pytest.mark.usefixtures("exploding_feed")
def test_failing_check_in_a_stream_blocks_and_closes_the_source() -> None:
    source = Source(["first chunk ", "second chunk ", "third"])
    stream = _faulty().stream_sync(source.sync())
    pieces = list(stream)
    assert pieces == ["[blocked]"]
    assert source.closed
    assert source.pulls == 1
    assert stream.result is not None
    assert stream.result.reasons == (BLOCK_REASON,)


@pytest.mark.anyio
@pytest.mark.usefixtures("exploding_feed")
async def test_failing_check_in_an_async_stream_passes_with_on_error_pass() -> None:
    source = Source(["a text ", "with foo ", "in it"])
    stream = _faulty("pass").stream(source.asynchronous())
    assert "".join(await _collect(stream)) == "a text with foo in it"
    assert stream.result is not None
    assert stream.result.decision is ge.Decision.PASS
    assert stream.result.reasons == (FLAG_REASON,)


def test_check_failing_mid_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text released before the failure stays released; nothing after it is."""
    original = _check.PatternSession.feed
    calls = 0

    def feed(self: Any, buf: str, base: int, chunk: str) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyError("boom")
        return original(self, buf, base, chunk)

    monkeypatch.setattr(_check.PatternSession, "feed", feed)
    source = Source(["one two ", "three four ", "five six ", "seven"])
    stream = _faulty().stream_sync(source.sync())
    pieces = list(stream)
    assert pieces == ["one two ", "three four ", "[blocked]"]
    assert source.pulls == 3
    assert source.closed
    assert stream.result is not None
    assert stream.result.reasons == ("forbidden-words: check failed (KeyError), blocked",)


def test_failing_checks_of_a_shipped_policy_are_named(
    support_policy: ge.Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    def finish(self: Any, buf: str, base: int) -> Any:
        raise ValueError("nope")

    monkeypatch.setattr(_check.PatternSession, "finish", finish)
    result = support_policy.validate_sync("mail me at jdoe@example.com")
    assert result.decision is ge.Decision.BLOCK
    assert result.text == BLOCK_MESSAGE
    assert result.reasons == (
        "pii: check failed (ValueError), blocked",
        "secrets: check failed (ValueError), blocked",
    )


def test_check_failing_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    def finish(self: Any, buf: str, base: int) -> Any:
        raise RuntimeError("late")

    monkeypatch.setattr(_check.PatternSession, "finish", finish)
    result = _faulty().validate_sync("nothing wrong here")
    assert result.decision is ge.Decision.BLOCK
    assert result.reasons == (BLOCK_REASON,)


# -- a source that yields something other than str ---------------------------------------------


@pytest.mark.parametrize("bad", [b"bytes", 5, None])
def test_sync_source_of_non_str_raises_type_error(support_policy: ge.Policy, bad: Any) -> None:
    source = Source(["fine so far ", bad, "never pulled"])
    stream = support_policy.stream_sync(source.sync())
    with pytest.raises(
        TypeError, match=f"a stream source must yield str, got {type(bad).__name__}"
    ):
        list(stream)
    assert source.closed
    assert source.pulls == 2
    assert stream.result is None


@pytest.mark.anyio
async def test_async_source_of_non_str_raises_type_error(support_policy: ge.Policy) -> None:
    source = Source(["mail me at jdoe@exa", 5, "mple.com"])
    stream = support_policy.stream(source.asynchronous())
    pieces: list[str] = []
    with pytest.raises(TypeError, match="a stream source must yield str, got int"):
        async for piece in stream:
            pieces.append(piece)
    assert not any("jdoe" in piece for piece in pieces)
    assert source.closed
    assert source.pulls == 2
    assert stream.result is None


def test_using_a_closed_stream_raises_stream_state_error(support_policy: ge.Policy) -> None:
    source = Source([])
    stream = support_policy.stream_sync(source.endless_sync())
    next(stream)
    stream.close()
    with pytest.raises(ge.StreamStateError):
        next(stream)


# -- a policy whose checks block (NER) feeds the run in a worker thread ------------------------


@pytest.fixture(scope="module")
def ner_policy() -> ge.Policy:
    policy = ge.Policy.from_yaml(
        "version: 1\nname: ner\nchecks:\n  - id: pii\n    type: pii\n"
        "    entities: [PERSON, EMAIL_ADDRESS]\n"
    )
    assert policy.blocking  # the stream feeds the run in a worker thread
    return policy


NER_CHUNKS = ["Hello there. ", "I am writing to you. ", "John Smith is here. ", "Bye. "]


@pytest.mark.anyio
async def test_blocking_policy_stream_and_source_error(ner_policy: ge.Policy) -> None:
    text = "".join(NER_CHUNKS)
    source = Source(NER_CHUNKS)
    stream = ner_policy.stream(source.asynchronous())
    pieces = await _collect(stream)
    assert "".join(pieces) == ner_policy.validate_sync(text).text
    assert "John" not in "".join(pieces)
    assert source.closed

    failing = Source(NER_CHUNKS[:2], then_raise=Boom())
    stream = ner_policy.stream(failing.asynchronous())
    with pytest.raises(Boom):
        await _collect(stream)
    assert failing.closed
    assert stream.result is None


@pytest.mark.anyio
async def test_cancel_during_a_blocking_feed_closes_the_source(ner_policy: ge.Policy) -> None:
    source = Source(NER_CHUNKS)  # a sync source: the cancellation lands in the worker-thread call
    stream = ner_policy.stream(source.sync())
    pieces: list[str] = []
    with anyio.CancelScope() as scope:
        async for piece in stream:
            pieces.append(piece)
            scope.cancel()
    assert scope.cancelled_caught
    assert source.closed
    with contextlib.suppress(ge.StreamStateError):
        rest = await _collect(stream)
        if rest:  # if going on is allowed, nothing may be lost
            assert "".join(pieces + rest) == ner_policy.validate_sync("".join(NER_CHUNKS)).text


# -- streams dropped without being closed, and sources that block ------------------------------


def _prose_policy() -> ge.Policy:
    return make_policy(["{id: c, type: content, terms: [forbidden]}"], name="p")


def test_a_dropped_sync_stream_closes_its_source() -> None:
    source = Source(["some words "] * 50)
    held = source.sync()  # the caller keeps the generator: only the stream can close it
    stream = _prose_policy().stream_sync(held)
    for _ in stream:
        break  # out of the loop without closing
    assert not source.closed
    del stream
    gc.collect()
    assert source.closed
    assert source.pulls < 50


def test_a_stream_that_ended_leaves_an_exhausted_source_alone() -> None:
    class Reusable:
        """A source the caller reads again later (a file it will seek back in)."""

        def __init__(self) -> None:
            self.closed = False
            self.items = ["a ", "b "]

        def __iter__(self) -> Reusable:
            return self

        def __next__(self) -> str:
            if not self.items:
                raise StopIteration
            return self.items.pop(0)

        def close(self) -> None:
            self.closed = True

    source = Reusable()
    stream = _prose_policy().stream_sync(source)
    assert "".join(stream) == "a b "
    del stream
    gc.collect()
    assert not source.closed


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_dropped_async_stream_closes_its_source(kind: str) -> None:
    source = Source(["some words "] * 50)
    held: Any = source.asynchronous() if kind == "async" else source.sync()
    stream = _prose_policy().stream(held)
    async for _ in stream:
        break
    assert not source.closed
    del stream
    gc.collect()
    with anyio.fail_after(10):  # closed on the event loop, soon
        while not source.closed:  # noqa: ASYNC110 (set by a finalizer, not an event)
            await anyio.sleep(0.01)
    assert source.pulls < 50


@pytest.mark.anyio
async def test_a_blocking_sync_source_does_not_hold_up_a_deadline() -> None:
    closed = threading.Event()

    def slow() -> Iterator[str]:
        try:
            while True:
                time.sleep(2)  # a blocking client waiting for its next chunk
                yield "word "
        finally:
            closed.set()

    pieces: list[str] = []
    started = time.monotonic()
    with anyio.move_on_after(0.3) as scope:
        async for piece in _prose_policy().stream(slow()):
            pieces.append(piece)
    elapsed = time.monotonic() - started
    assert scope.cancelled_caught and pieces == []
    assert elapsed < 1.5, elapsed  # a behaviour bound: the source blocks 2 s per chunk
    # The abandoned pull closes the source when it returns.
    with anyio.fail_after(10):
        while not closed.is_set():  # noqa: ASYNC110 (a threading.Event, set in a thread)
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_which_sync_sources_are_pulled_in_a_worker_thread() -> None:
    policy = _prose_policy()
    loop_thread = threading.get_ident()

    def where(record: list[int], slow_from: int = 99) -> Iterator[str]:
        for i, word in enumerate(("a ", "b ", "c ", "d ")):
            if i >= slow_from:
                time.sleep(0.01)  # (well over the 1 ms that marks a pull slow)
            record.append(threading.get_ident())
            yield word

    async def pulled_by(**kwargs: Any) -> list[int]:
        record: list[int] = []
        slow_from = kwargs.pop("slow_from", 99)
        out = [p async for p in policy.stream(where(record, slow_from), **kwargs)]
        assert "".join(out) == "a b c d "
        return [0 if t == loop_thread else 1 for t in record]  # 1: a worker thread

    # A generator: its first pull in a thread, timed; fast, so the rest inline.
    assert await pulled_by() == [1, 0, 0, 0]
    # Slow from the start: threads all along.
    assert await pulled_by(slow_from=0) == [1, 1, 1, 1]
    # Slow later: the slow pull was inline, the ones after it are not.
    assert await pulled_by(slow_from=2) == [1, 0, 0, 1]
    assert await pulled_by(blocking_source=True) == [1, 1, 1, 1]
    assert await pulled_by(blocking_source=False) == [0, 0, 0, 0]
    assert "".join([p async for p in policy.stream(["a ", "b "])]) == "a b "
