"""The fallback guarantee, as a property: whatever the trigger and the chunking, the
released text is what validate gives for the text of the source that released it
(all of it, or a prefix of it when that source was cut off), plus at most one
ending message, and nothing unchecked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from _chunks import cut
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrails_engine as ge

POLICY = ge.Policy.from_yaml(
    """
version: 1
name: fallback-property
block_message: "[blocked]"
stream: {first_chunk_timeout_ms: 20}
fallback: {on: [error, timeout, refusal, block], closing_message: "[cut]"}
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}
  - {id: words, type: content, terms: [bad], action: block}
"""
)
VALUES = ("a@b.co", "x@y.io")
TOKENS = ["hi ", "ok", ". ", "\n", "bad ", "a@b.co ", "x@y.io ", "fine "]
texts = st.lists(st.sampled_from(TOKENS), max_size=10).map("".join)
sizes = st.lists(st.integers(1, 9), min_size=1, max_size=4)


def safe_output(text: str) -> str:
    """What may be shown of ``text``: validate's text, or before a block, the
    repaired text up to the block."""
    result = POLICY.validate_sync(text)
    if not result.blocked:
        return result.text
    block = min(f.start for f in result.findings if f.action is ge.Action.BLOCK)
    out, pos = [], 0
    for f in sorted(result.findings, key=lambda f: f.start):
        if f.action is ge.Action.REPAIR and f.end <= block:
            out += [text[pos : f.start], f.replacement or ""]
            pos = f.end
    out.append(text[pos:block])
    return "".join(out)


def check(events: list[Any], first: str, delivered: str, triggered: bool, second: str) -> None:
    """The guarantee, for the events of one stream."""
    *body, last = events
    assert isinstance(last, ge.Ended)
    endings = [e for e in body if not isinstance(e, ge.Released)]
    assert len(endings) <= 1 and (not endings or body[-1] is endings[0])  # one, last
    released = "".join(e.text for e in body if isinstance(e, ge.Released))
    result = last.result
    assert isinstance(result, ge.FallbackResult)
    for value in VALUES:  # nothing unchecked
        assert value not in released
    assert not re.search(r"\bbad\b", released)
    if result.source == 1:
        whole = POLICY.validate_sync(second)
        assert (result.decision, result.findings) == (whole.decision, whole.findings)
        if whole.blocked:
            assert endings == [ge.Blocked("[blocked]", whole.findings)]
            assert safe_output(second).startswith(released)
        else:
            assert not endings and released == whole.text
        return
    assert result.source == 0
    # The first source released it: the fallback was not due, or came too late.
    whole = POLICY.validate_sync(first)
    assert safe_output(first).startswith(released)
    if not triggered:
        assert (result.decision, result.findings) == (whole.decision, whole.findings)
        if whole.blocked:
            assert released  # (else the fallback takes over)
            assert endings == [ge.Blocked("[blocked]", whole.findings)]
        else:
            assert not endings and released == whole.text
        return
    assert released  # a trigger before any release falls back
    (ending,) = endings
    if isinstance(ending, ge.Blocked):  # decided before the source failed
        assert POLICY.validate_sync(delivered).blocked
    else:
        assert isinstance(ending, ge.Interrupted) and ending.message == "[cut]"
        assert result.ending == ending.reason and result.text == "[cut]"


def primary(chunks: list[str], at: int, trigger: str) -> Iterator[str]:
    yield from chunks[:at]
    if trigger == "error":
        raise OSError("connection reset")
    if trigger == "refusal":
        raise ge.Refusal("no")


@settings(max_examples=300, deadline=None)
@given(
    first=texts,
    second=texts,
    sizes1=sizes,
    sizes2=sizes,
    trigger=st.sampled_from(["none", "error", "refusal"]),
    at=st.integers(0, 12),
)
def test_sync_released_text_is_validate_of_its_source(
    first: str, second: str, sizes1: list[int], sizes2: list[int], trigger: str, at: int
) -> None:
    chunks = cut(first, sizes1)
    at = len(chunks) if trigger == "none" else min(at, len(chunks))
    with POLICY.stream_sync(
        primary(chunks, at, trigger), fallback=lambda why: cut(second, sizes2)
    ) as stream:
        events = list(stream.events())
    check(events, first, "".join(chunks[:at]), trigger != "none", second)
    # Iterating gives the same text: released, then the ending message.
    with POLICY.stream_sync(
        primary(chunks, at, trigger), fallback=lambda why: cut(second, sizes2)
    ) as stream:
        text = "".join(stream)
    shown = [e.text if isinstance(e, ge.Released) else e.message for e in events[:-1]]
    assert text == "".join(shown)
    a, b = stream.result, events[-1].result
    assert a is not None
    assert (a.decision, a.text, a.findings, a.ending, a.source) == (
        b.decision,
        b.text,
        b.findings,
        b.ending,
        b.source,
    )
    assert [x.ending for x in a.attempts] == [x.ending for x in b.attempts]


async def aprimary(chunks: list[str], at: int, trigger: str) -> AsyncIterator[str]:
    for chunk in chunks[:at]:
        yield chunk
    if trigger == "hang":
        await anyio.sleep(30)  # (before the first chunk only: first_chunk_timeout_ms)
    for chunk in primary([], 0, trigger):
        yield chunk


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=40, deadline=None)
@given(
    first=texts,
    second=texts,
    sizes1=sizes,
    sizes2=sizes,
    trigger=st.sampled_from(["none", "error", "refusal", "hang"]),
    at=st.integers(0, 12),
)
def test_async_released_text_is_validate_of_its_source(
    backend: str,
    first: str,
    second: str,
    sizes1: list[int],
    sizes2: list[int],
    trigger: str,
    at: int,
) -> None:
    chunks = cut(first, sizes1)
    at = len(chunks) if trigger == "none" else 0 if trigger == "hang" else min(at, len(chunks))

    async def run() -> list[Any]:
        async def fallback(why: ge.Fallback) -> AsyncIterator[str]:
            for chunk in cut(second, sizes2):
                yield chunk

        with anyio.fail_after(10):
            async with POLICY.stream(aprimary(chunks, at, trigger), fallback=fallback) as s:
                events = [e async for e in s.events()]
            async with POLICY.stream(aprimary(chunks, at, trigger), fallback=fallback) as s:
                text = "".join([piece async for piece in s])
        shown = [e.text if isinstance(e, ge.Released) else e.message for e in events[:-1]]
        assert text == "".join(shown)
        return events

    events = anyio.run(run, backend=backend)
    check(events, first, "".join(chunks[:at]), trigger != "none", second)
