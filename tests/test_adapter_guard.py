"""guardrails_engine._adapters._guard and _stream: push text into a policy run, get released
text out; the steps of a translator driven sync and async."""

from __future__ import annotations

import gc
import itertools
import json

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrails_engine as ge
from guardrails_engine._adapters._guard import (
    Runs,
    SyncTextGuard,
    SyncToolArgsGuard,
    TextGuard,
    ToolArgsGuard,
)
from guardrails_engine._adapters._stream import Step, drive_sync, whole

MESSAGE = "[blocked]"
POLICY = ge.Policy.from_yaml(
    f"""
version: 1
name: guard
block_message: "{MESSAGE}"
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
  - {{id: secrets, type: content, terms: ["internal use only"], action: block}}
tools:
  order:
    checks:
      - id: args
        type: schema
        schema:
          type: object
          properties: {{id: {{type: string, pattern: "^[0-9]+$"}}, note: {{type: string}}}}
          required: [id]
          additionalProperties: false
      - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
  note:
    release: incremental
    checks:
      - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
unknown_tools: block
"""
)
TEXTS = [
    "Mail jdoe@example.com or ann@example.org, thanks a lot.",
    "Fine words, then internal use only, then more.",
    "Nothing at all to see in this one.",
]


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return "asyncio"


def cut(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


async def run_async(pieces: list[str]) -> tuple[str, ge.Blocked | None, ge.Result | None]:
    guard = TextGuard(POLICY)
    try:
        out = ""
        for p in pieces:
            out += await guard.feed(p)
            if guard.blocked is not None:
                break
        else:
            out += await guard.finish()
        return out, guard.blocked, guard.result
    finally:
        await guard.aclose()


def check(text: str, out: str, blocked: ge.Blocked | None) -> None:
    expected = POLICY.validate_sync(text)
    if expected.blocked:
        assert blocked is not None and blocked.message == MESSAGE
        assert MESSAGE not in out and blocked.findings
    else:
        assert blocked is None and out == expected.text


@settings(max_examples=40, deadline=None)
@given(text=st.sampled_from(TEXTS), cuts=st.lists(st.integers(0, 200), max_size=15))
def test_async_and_sync_guards_release_what_validate_gives(text: str, cuts: list[int]) -> None:
    pieces = cut(text, cuts)
    out, blocked, result = anyio.run(run_async, pieces)
    check(text, out, blocked)
    assert result is not None and result.decision == POLICY.validate_sync(text).decision
    with SyncTextGuard(POLICY) as guard:
        out = ""
        for p in pieces:
            out += guard.feed(p)
        out += guard.finish()
        check(text, out, guard.blocked)
        assert guard.done


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_feed_after_the_end_and_aclose_are_quiet(anyio_backend: str) -> None:
    guard = TextGuard(POLICY)
    assert await guard.feed("this is internal") == "this is "
    assert await guard.feed(" use only, yes") == ""
    assert guard.blocked is not None and guard.done
    assert await guard.feed("more") == "" and await guard.finish() == ""
    await guard.aclose()
    await guard.aclose()
    early = TextGuard(POLICY)
    await early.feed("write to jdoe@exa")
    await early.aclose()  # stopped early: no result, nothing held back comes out
    assert early.result is None and early.done and await early.feed("mple.com") == ""


@pytest.mark.anyio
async def test_a_dropped_guard_is_closed_on_its_loop() -> None:
    traces: list[ge.Trace] = []
    guard = TextGuard(POLICY, on_trace=traces.append)
    await guard.feed("held jdoe@")
    assert traces == []
    del guard
    gc.collect()
    await anyio.sleep(0.01)  # (the close may run as a task; nothing must warn)
    assert [t.ending for t in traces] == ["cancelled"]


@pytest.mark.anyio
async def test_tool_args_guard_modes() -> None:
    complete = ToolArgsGuard(POLICY, "order")
    assert complete.mode == "complete"
    args = json.dumps({"id": "12", "note": "jdoe@example.com"})
    assert [await complete.feed(p) for p in cut(args, [5, 11, 20, 30])] == [""] * 5
    shown = await complete.finish()
    assert json.loads(shown) == {"id": "12", "note": "<EMAIL_ADDRESS>"}
    bad = ToolArgsGuard(POLICY, "order")
    for p in ['{"id": "1', "2x", '"}']:
        await bad.feed(p)
    assert bad.blocked is not None and await bad.finish() == ""
    await bad.aclose()
    incremental = ToolArgsGuard(POLICY, "note")
    assert incremental.mode == "incremental"
    out = await incremental.feed('{"text": "some long words here ') + await incremental.finish()
    assert out == POLICY.tools["note"].policy.validate_sync('{"text": "some long words here ').text
    unknown = ToolArgsGuard(POLICY, "rm")
    assert unknown.mode == "block" and unknown.blocked is not None
    assert unknown.blocked.message == MESSAGE and await unknown.feed("{}") == ""
    lenient = ge.Policy.from_yaml(
        "version: 1\nname: l\nchecks:\n  - {id: len, type: length, max_chars: 100}\n"
    )
    passing = ToolArgsGuard(lenient, "anything")
    assert passing.mode == "pass" and await passing.feed('{"a": 1}') == '{"a": 1}'


def mail_step(runs: Runs) -> Step[str]:
    """A step as a translator writes it: its runs are sync or async as the call is."""
    return whole(runs.text(), "mail jdoe@example.com ")


def test_sync_guards_and_the_sync_driver() -> None:
    text = SyncTextGuard(POLICY)
    tool = SyncToolArgsGuard(POLICY, "order")
    assert text.feed("hello there ") + text.finish() == "hello there "
    assert tool.feed('{"id": "7"}') == "" and tool.finish() == '{"id": "7"}'
    text.close()
    tool.close()
    # A step of an adapter runs inline, its runs sync push runs: no event loop.
    runs = Runs(POLICY, sync=True)
    assert drive_sync(mail_step(runs)) == "mail <EMAIL_ADDRESS> "
    runs.close()


@pytest.mark.anyio
async def test_a_sync_guard_works_where_an_event_loop_runs() -> None:
    guard = SyncTextGuard(POLICY)
    assert guard.feed("write to jdoe@example.com ") + guard.finish() == (
        "write to <EMAIL_ADDRESS> "
    )
    runs = Runs(POLICY, sync=True)
    assert drive_sync(mail_step(runs)) == "mail <EMAIL_ADDRESS> "
    # The same step, async: its runs are awaited on this loop.
    assert await mail_step(Runs(POLICY, sync=False)) == "mail <EMAIL_ADDRESS> "
