"""The run core under hostile output: deadlines that bound the work, big chunks taken
in slices, held text not read again, a loop that is handed back, a stream's own time
limits, bounded threads for blocking checks and bounded findings.

Anything that could run long or grow large runs in a child process with a time and
a memory limit (``_child.py``); the limit is what fails on the code before the fix.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _child import run_limited
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge
from guardrails_engine.checks import Found, unit_check

SUPPORT_CHAT = """
version: 1
name: support-chat
block_message: "[blocked]"
checks:
  - id: pii
    type: pii
    entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE]
  - id: secrets
    type: content
    patterns: ['\\bsk-[A-Za-z0-9]{20,}\\b']
    terms: ["internal use only"]
    action: block
  - id: max-length
    type: length
    max_chars: 2000
"""


def _last_json(out: str) -> Any:
    return json.loads(out.strip().splitlines()[-1])


# -- validate within its deadline ---------------------------------------------------------


def test_dotted_digits_with_ip_address_are_linear() -> None:
    # The context-word lookup read the whole dotted run once per IP finding:
    # 100k characters took 27 s (quadratic); the check's own deadline (1 s here)
    # was never looked at inside it.
    out = run_limited(
        """
import json, guardrails_engine as ge
p = ge.Policy.from_yaml("version: 1\\nname: ip\\ncheck_timeout_ms: 60000\\nchecks:\\n"
                        "  - {id: pii, type: pii, entities: [IP_ADDRESS]}\\n")
t = ("1.2." * 25_000)
r = p.validate_sync(t)
print(json.dumps([r.decision.value, len(r.findings), any("timed out" in x for x in r.reasons)]))
""",
        seconds=25,
    )
    decision, findings, timed_out = _last_json(out)
    assert (decision, timed_out) == ("repair", False)
    assert findings == 12_500  # 1.2.1.2 every 8 characters


def test_validate_of_spaced_digits_stops_at_its_deadline() -> None:
    # 1M characters of spaced digits without a length limit: each phone-like match
    # is parsed (about a millisecond); the interpretation of the matches found
    # within the deadline never looked at it (20.7 s, and minutes here).
    out = run_limited(
        """
import json, time, guardrails_engine as ge
p = ge.Policy.from_yaml("version: 1\\nname: d\\ncheck_timeout_ms: 5000\\nchecks:\\n"
                        "  - {id: pii, type: pii, entities: [PHONE_NUMBER, CREDIT_CARD]}\\n")
t = ("12 " * 340_000)[:1_000_000]
r = p.validate_sync(t)
print(json.dumps([r.decision.value, list(r.reasons)]))
""",
        seconds=150,  # (before: about 170 s here; a phone candidate may still overrun)
    )
    assert _last_json(out) == ["block", ["pii: check timed out after 5,000 ms, blocked"]]


_SLOW_UNITS: list[str] = []


@unit_check
def slow_sentence(sentence: str) -> None:
    """A check of one's own that takes 300 ms a unit."""
    _SLOW_UNITS.append(sentence)
    time.sleep(0.3)


def _slow_policy() -> ge.Policy:
    return ge.Policy.from_yaml(
        "version: 1\nname: t\nblock_message: '[blocked]'\nchecks:\n"
        "  - {id: slow, type: custom, function: 'test_hostile_core:slow_sentence',"
        " timeout_ms: 100}\n",
        trusted_modules=["test_hostile_core"],
    )


def test_a_slow_sync_unit_check_is_not_called_past_its_deadline() -> None:
    # 300 ms a unit with timeout_ms: 100: validate called it on all 20 units (6 s)
    # where the stream stops after one.  Both stop after the first now, and agree.
    policy = _slow_policy()
    text = " ".join(f"Sentence number {i} is here." for i in range(20))
    _SLOW_UNITS.clear()
    result = policy.validate_sync(text)
    called_by_validate = len(_SLOW_UNITS)
    _SLOW_UNITS.clear()
    stream = policy.stream_sync(iter(text.split(" ")))
    streamed = "".join(stream)
    assert called_by_validate == 1 and len(_SLOW_UNITS) == 1
    assert result.decision is ge.Decision.BLOCK
    assert result.reasons == ("slow: check timed out after 100 ms, blocked",)
    assert stream.result is not None and stream.result.reasons == result.reasons
    assert streamed == "[blocked]"


# -- big chunks ------------------------------------------------------------------------


def test_one_10mb_chunk_gives_what_validate_gives() -> None:
    # One 10 MB chunk with a 2,000-character limit: validate repairs in 0.2 s; the
    # stream took 17 s, then pii and content timed out and it blocked.
    out = run_limited(
        f"""
import json, guardrails_engine as ge
p = ge.Policy.from_yaml({SUPPORT_CHAT!r})
big = ("Hello there, bob@example.com wrote. " * 300_000)[:10_000_000]
r = p.validate_sync(big)
s = p.stream_sync([big])
out = "".join(s)
print(json.dumps([r.decision.value, s.result.decision.value, out == r.text, len(out)]))
""",
        seconds=40,
        memory=2_000_000_000,
    )
    decision, streamed, same, size = _last_json(out)
    assert (decision, streamed, same) == ("repair", "repair", True)
    assert size < 2000


# -- held text is not read again ------------------------------------------------------------


@pytest.mark.parametrize("unit", ["a@", "deadbeef"])
def test_a_long_word_costs_the_same_whatever_the_cap(unit: str) -> None:
    # Whitespace-free runs: each chunk read the whole held text again, so the cost
    # per character grew with max_holdback_chars (443 us a character at 8192 for
    # `a@`; 40k characters took minutes here, and the pii check ran out of time).
    out = run_limited(
        f"""
import json, guardrails_engine as ge
from guardrails_engine._scanning.cap import cap_facts
p = ge.Policy.from_yaml("version: 1\\nname: h\\ncheck_timeout_ms: 120000\\n"
                        "stream: {{max_holdback_chars: 8192}}\\nchecks:\\n"
                        "  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS, URL]}}\\n")
t = ({unit!r} * 20_000)[:40_000]
chunks = [t[i:i + 4] for i in range(0, len(t), 4)]
s = p.stream_sync(iter(chunks))
out = "".join(s)
print(json.dumps([s.result.decision.value, any("timed out" in r for r in s.result.reasons)]))
""",
        seconds=60,
    )
    decision, timed_out = _last_json(out)
    assert decision != "block" and not timed_out


# -- the event loop is handed back -----------------------------------------------------------


async def _buffered(text: str, size: int) -> AsyncIterator[str]:
    """An async source whose data is already there (an SDK reading a full socket)."""
    for i in range(0, len(text), size):
        yield text[i : i + size]


@pytest.mark.anyio
async def test_a_buffered_async_source_does_not_stall_the_loop() -> None:
    policy = _limited()
    text = "Write to bob@example.com today, it is fine. " * 3000  # 132k characters
    ticks = 0
    done = False

    async def other_task() -> None:
        # Another task of a service: it wakes every millisecond.  (Not a task that
        # spins on checkpoints: a loop kept 100 % busy starves the worker threads a
        # long chunk is read in, by the interpreter lock; they then run out of time
        # and the stream blocks, fail-closed.)
        nonlocal ticks
        while not done:
            ticks += 1
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
        await anyio.lowlevel.checkpoint()
        before = ticks
        async with policy.stream(_buffered(text, 2000)) as stream:
            out = "".join([piece async for piece in stream])
        during = ticks - before
        done = True
    assert out == policy.validate_sync(text).text
    # The stream never awaited its source: other tasks ran because of the work it did.
    assert during >= 10


# -- a stream's own time limits ------------------------------------------------------------

LIMITED = """
version: 1
name: limited
block_message: "[blocked]"
stream:
  deadline_ms: {deadline}
  idle_timeout_ms: {idle}
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
"""


def _limited(deadline: int = 60_000, idle: int = 60_000) -> ge.Policy:
    return ge.Policy.from_yaml(LIMITED.format(deadline=deadline, idle=idle))


@pytest.mark.anyio
async def test_an_idle_async_source_ends_the_stream_blocked() -> None:
    async def source() -> AsyncIterator[str]:
        yield "Hello there, "
        await anyio.sleep(3600)
        yield "never"

    stream = _limited(idle=100).stream(source())
    with anyio.fail_after(10):
        events = [e async for e in stream.events()]
    assert [type(e).__name__ for e in events] == ["Released", "Blocked", "Ended"]
    assert events[0] == ge.Released("Hello there, ")
    result = stream.result
    assert result is not None and result.decision is ge.Decision.BLOCK
    assert result.reasons == ("stream: no text from the source for 100 ms, blocked",)
    assert stream.run.ending is not None and stream.run.ending.value == "idle"


@pytest.mark.anyio
async def test_a_stream_past_its_deadline_ends_blocked_and_closes_the_source() -> None:
    closed = anyio.Event()

    async def source() -> AsyncIterator[str]:
        try:
            while True:
                yield "word "
                await anyio.sleep(0.01)
        finally:
            closed.set()

    stream = _limited(deadline=200).stream(source())
    with anyio.fail_after(10):
        out = "".join([piece async for piece in stream])
        await closed.wait()
    assert out.endswith("[blocked]") and "word" in out
    assert stream.result is not None
    assert stream.result.reasons == ("stream: deadline of 200 ms passed, blocked",)
    assert stream.run.ending is not None and stream.run.ending.value == "timed_out"


def test_a_sync_stream_and_a_push_run_keep_their_limits() -> None:
    def slow() -> Iterator[str]:
        yield "Hello there, "
        time.sleep(0.3)
        yield "bob@example.com"

    stream = _limited(idle=100).stream_sync(slow())
    assert "".join(stream) == "Hello there, [blocked]"
    assert stream.result is not None and stream.result.decision is ge.Decision.BLOCK

    push = _limited(idle=100).push_sync()
    assert push.feed("Hi bob@example.com ") == "Hi "
    left = push.time_left()
    assert left is not None and 0 < left <= 0.1
    time.sleep(0.2)
    assert push.feed("more") == ""
    assert push.blocked is not None and push.blocked.message == "[blocked]"
    # What was held (the address) is not listed as released, and nothing else is.
    assert push.result is not None
    assert push.result.reasons == ("stream: no text from the source for 100 ms, blocked",)


SLOW_READER = ["Hello there. ", "All ", "is ", "well. "]


def test_a_slow_sync_reader_is_not_an_idle_source() -> None:
    # The idle limit is the source's: a consumer that takes longer than it between two
    # pieces (a slow client of the service) does not end the stream, with fallbacks or not.
    for fallback in (None, lambda why: ["second"]):
        stream = _limited(idle=100).stream_sync(iter(SLOW_READER), fallback=fallback)
        out = []
        for piece in stream:
            out.append(piece)
            time.sleep(0.2)  # past idle_timeout_ms
        assert "".join(out) == "".join(SLOW_READER)
        assert stream.result is not None and stream.result.decision is ge.Decision.PASS


@pytest.mark.anyio
async def test_a_slow_async_reader_is_not_an_idle_source() -> None:
    async def source() -> AsyncIterator[str]:
        for text in SLOW_READER:
            await anyio.lowlevel.checkpoint()  # (as a network read has)
            yield text

    for fallback in (None, lambda why: ["second"]):
        stream = _limited(idle=100).stream(source(), fallback=fallback)
        out = []
        async for piece in stream:
            out.append(piece)
            await anyio.sleep(0.2)  # past idle_timeout_ms
        assert "".join(out) == "".join(SLOW_READER)
        assert stream.result is not None and stream.result.decision is ge.Decision.PASS


@pytest.mark.anyio
async def test_an_adapter_bounds_its_wait_with_time_left() -> None:
    push = _limited(deadline=150).push()
    assert (await push.feed("Hello there, all is well. ")).startswith("Hello")
    with anyio.move_on_after(push.time_left() or 0):
        await anyio.sleep(3600)  # an upstream that never answers
    push.expire()
    assert push.done and push.blocked is not None
    assert push.result is not None
    assert push.result.reasons == ("stream: deadline of 150 ms passed, blocked",)


@pytest.mark.parametrize("key", ["deadline_ms", "idle_timeout_ms"])
def test_bad_stream_limits_are_policy_errors(key: str) -> None:
    text = (
        f"version: 1\nname: x\nstream:\n  {key}: 0\n"
        "checks:\n  - {id: c, type: content, terms: [x]}\n"
    )
    with pytest.raises(ge.PolicyError, match=key):
        ge.Policy.from_yaml(text)


# -- threads -----------------------------------------------------------------------------------


def test_hung_blocking_checks_leave_a_bounded_number_of_threads() -> None:
    # Each hung blocking check left a thread; after about 320 every later run
    # blocked with "check failed (RuntimeError)" and other policies raised
    # "can't start new thread".  Now a check leaves at most 32, then fails at once
    # with the library's error, and other policies do not notice.
    out = run_limited(
        """
import json, sys, threading, time
import guardrails_engine as ge
from guardrails_engine.checks import unit_check

@unit_check(blocking=True)
def hangs(s):
    time.sleep(3600)

sys.modules["hangmod"] = sys.modules[__name__]
hung = ge.Policy.from_yaml(
    "version: 1\\nname: t\\nchecks:\\n"
    "  - {id: c, type: custom, function: 'hangmod:hangs', timeout_ms: 20}\\n",
    trusted_modules=["hangmod"],
)
other = ge.Policy.from_yaml("version: 1\\nname: o\\nchecks:\\n"
                            "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}\\n")
base = threading.active_count()
reasons = [hung.validate_sync("One sentence.").reasons[0] for _ in range(60)]
grown = threading.active_count() - base
ok = other.validate_sync("mail bob@example.com").text
print(json.dumps([reasons[0], reasons[-1], grown, ok]))
""",
        seconds=60,
    )
    first, last, grown, ok = _last_json(out)
    assert first == "c: check timed out after 20 ms, blocked"
    assert last == "c: check failed (CheckThreadsExhausted), blocked"
    assert grown <= 32 + 2
    assert ok == "mail <EMAIL_ADDRESS>"


# -- findings bounds ---------------------------------------------------------------------------


def test_findings_per_run_are_bounded() -> None:
    # 9,999 findings per unit: 200 units took 810 MB, 400 took 1.8 GB.
    out = run_limited(
        """
import json, sys
import guardrails_engine as ge
from guardrails_engine.checks import Found, unit_check

@unit_check
def many(s):
    return [Found(0, len(s), label="X") for _ in range(9_999)]

sys.modules["manymod"] = sys.modules[__name__]
p = ge.Policy.from_yaml(
    "version: 1\\nname: t\\nchecks:\\n"
    "  - {id: m, type: custom, function: 'manymod:many', action: flag}\\n",
    trusted_modules=["manymod"],
)
text = " ".join(f"Sentence {i} is here and it is long enough to hold findings." for i in range(400))
r = p.validate_sync(text)
s = p.stream_sync([text[i:i + 7] for i in range(0, len(text), 7)])
"".join(s)
print(json.dumps([r.decision.value, r.reasons[-1], len(r.findings), s.result.reasons[-1]]))
""",
        seconds=120,
        memory=900_000_000,
    )
    decision, reason, count, streamed = _last_json(out)
    assert decision == "block"
    assert (
        reason
        == "m: check returned a malformed finding (more than 100,000 findings in one run), blocked"
    )
    assert streamed == reason
    assert count <= 100_001 + 10_000


# -- property: a deadline never lets out what validate removes ---------------------------------

_SLOW_MARK = "slowly"


@unit_check
def sometimes_slow(sentence: str) -> list[Found]:
    """Flags nothing; takes longer than its time on a sentence with the mark."""
    if _SLOW_MARK in sentence:
        time.sleep(0.03)
    return []


_DEADLINED = ge.Policy.from_yaml(
    "version: 1\nname: t\nblock_message: ''\nchecks:\n"
    "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS, CREDIT_CARD]}\n"
    "  - {id: slow, type: custom, function: 'test_hostile_core:sometimes_slow',"
    " timeout_ms: 20}\n",
    trusted_modules=["test_hostile_core"],
)
_UNBOUNDED = ge.Policy.from_yaml(
    "version: 1\nname: t\nchecks:\n"
    "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS, CREDIT_CARD]}\n"
)

_WORDS = st.sampled_from(
    ["Hello", "there", "bob@example.com", "4111 1111 1111 1111", _SLOW_MARK, "ok.", "\n", "x"]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(_WORDS, min_size=1, max_size=14),
    cuts=st.lists(st.integers(1, 9), min_size=1, max_size=6),
)
def test_a_stream_past_a_deadline_never_releases_what_validate_removes(
    words: list[str], cuts: list[int]
) -> None:
    text = " ".join(words)
    chunks, i, k = [], 0, 0
    while i < len(text):
        chunks.append(text[i : i + cuts[k % len(cuts)]])
        i += cuts[k % len(cuts)]
        k += 1
    stream = _DEADLINED.stream_sync(iter(chunks))
    released = "".join(stream)
    full = _UNBOUNDED.validate_sync(text)
    # What the stream let out is a prefix of the text as validate repairs it
    # (validate without the slow check, so with every finding): no value it masks.
    assert full.text.startswith(released)
    if _SLOW_MARK in text:
        assert stream.result is not None and stream.result.decision is ge.Decision.BLOCK


def test_no_thread_is_left_by_fast_blocking_checks() -> None:
    @unit_check(blocking=True)
    def quick(s: str) -> None:
        return None

    import sys

    sys.modules["quickmod"] = type(sys)("quickmod")
    sys.modules["quickmod"].quick = quick  # type: ignore[attr-defined]
    policy = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n  - {id: q, type: custom, function: 'quickmod:quick'}\n",
        trusted_modules=["quickmod"],
    )
    before = threading.active_count()
    for _ in range(20):
        assert policy.validate_sync("One. Two. Three.").decision is ge.Decision.PASS
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before
    assert policy.checks[0].threads.abandoned == 0  # type: ignore[attr-defined]
