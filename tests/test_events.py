"""The typed event view of a stream: released text, the block, the end."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrails_engine as ge

POLICY = ge.Policy.from_yaml(
    """
version: 1
name: events
block_message: "[blocked]"
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS], action: repair}
  - {id: words, type: content, terms: [forbidden], action: block}
"""
)
SILENT = ge.Policy.from_yaml(
    """
version: 1
name: silent
checks:
  - {id: words, type: content, terms: [forbidden], action: block}
"""
)


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _sync_events(policy: ge.Policy, chunks: list[str]) -> list[ge.StreamEvent]:
    with policy.stream_sync(chunks) as stream:
        return list(stream.events())


def _async_events(policy: ge.Policy, chunks: list[str]) -> list[ge.StreamEvent]:
    async def main() -> list[ge.StreamEvent]:
        async with policy.stream(chunks) as stream:
            return [event async for event in stream.events()]

    return anyio.run(main)


DRIVERS = [_sync_events, _async_events]


@pytest.mark.parametrize("drive", DRIVERS)
def test_a_passing_stream_is_released_text_then_the_end(drive) -> None:  # type: ignore[no-untyped-def]
    text = "Write to jdoe@example.com today, thanks."
    events = drive(POLICY, _chunks(text, 3))
    assert all(isinstance(e, ge.Released) for e in events[:-1])
    end = events[-1]
    assert isinstance(end, ge.Ended)
    assert end.result is not None and end.result.decision is ge.Decision.REPAIR
    assert "".join(e.text for e in events[:-1]) == end.result.text
    assert "jdoe" not in end.result.text


@pytest.mark.parametrize("drive", DRIVERS)
def test_a_block_is_its_own_event_carrying_message_and_findings(drive) -> None:  # type: ignore[no-untyped-def]
    events = drive(POLICY, _chunks("Fine words here. Then forbidden ones.", 4))
    kinds = [type(e) for e in events]
    assert kinds[-2:] == [ge.Blocked, ge.Ended]
    assert all(k is ge.Released for k in kinds[:-2])
    blocked = events[-2]
    assert isinstance(blocked, ge.Blocked)
    assert blocked.message == "[blocked]"
    assert [f.check_id for f in blocked.findings] == ["words"]
    end = events[-1]
    assert isinstance(end, ge.Ended) and end.result is not None and end.result.blocked
    assert "forbidden" not in "".join(e.text for e in events if isinstance(e, ge.Released))


@pytest.mark.parametrize("drive", DRIVERS)
def test_an_empty_block_message_still_gives_a_blocked_event(drive) -> None:  # type: ignore[no-untyped-def]
    events = drive(SILENT, ["a forbidden", " word"])
    assert [type(e) for e in events][-2:] == [ge.Blocked, ge.Ended]
    blocked = events[-2]
    assert isinstance(blocked, ge.Blocked) and blocked.message == ""
    assert sum(isinstance(e, ge.Blocked) for e in events) == 1


def test_a_block_message_that_looks_like_text_is_still_the_block() -> None:
    # Released text equal to the block message must not be mistaken for it.
    policy = ge.Policy.from_yaml(
        "version: 1\nname: x\nblock_message: ok\n"
        "checks:\n  - {id: words, type: content, terms: [forbidden], action: block}\n"
    )
    events = _sync_events(policy, ["ok", " ok", " fine"])
    assert not any(isinstance(e, ge.Blocked) for e in events)
    events = _sync_events(policy, ["ok", " ok", " forbidden"])
    assert [type(e) for e in events][-2:] == [ge.Blocked, ge.Ended]


def test_a_source_error_raises_from_events() -> None:
    def source():  # type: ignore[no-untyped-def]
        yield "hello "
        raise RuntimeError("upstream died")

    with POLICY.stream_sync(source()) as stream, pytest.raises(RuntimeError):
        list(stream.events())


def test_closing_the_events_closes_the_source() -> None:
    closed: list[bool] = []

    def source():  # type: ignore[no-untyped-def]
        try:
            for _ in range(1000):
                yield "word "
        finally:
            closed.append(True)

    stream = POLICY.stream_sync(source())
    events = stream.events()
    assert isinstance(next(events), ge.Released)
    events.close()
    assert closed == [True]
    assert stream.result is None


@settings(max_examples=60, deadline=None)
@given(
    text=st.sampled_from(
        [
            "Mail jdoe@example.com now.",
            "All fine here, nothing to see.",
            "Before forbidden after",
            "x forbidden jdoe@example.com",
        ]
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=10),
)
def test_events_agree_with_validate_on_every_chunking(text: str, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if c < len(text)})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    events = _sync_events(POLICY, chunks)
    expected = POLICY.validate_sync(text)
    end = events[-1]
    assert isinstance(end, ge.Ended) and end.result == expected
    shown = "".join(
        e.text if isinstance(e, ge.Released) else e.message
        for e in events
        if isinstance(e, ge.Released | ge.Blocked)
    )
    if expected.blocked:
        assert isinstance(events[-2], ge.Blocked)
        assert shown.endswith(expected.text)
    else:
        assert shown == expected.text
