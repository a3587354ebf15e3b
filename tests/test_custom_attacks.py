"""Attacks on the public check API: unit boundaries under any chunking, malformed
findings, checks that raise, cancel, block or hang, incremental sessions that
break their contract, nested event loops, pickling, and privacy of reasons,
logs and traces."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _child import run_limited
from _policies import make_policy
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import guardrails_engine as ge
from guardrails_engine.checks import (
    Check,
    CheckConfig,
    Found,
    Hit,
    MalformedFinding,
    Session,
    unit_check,
)
from guardrails_engine.testing import assert_stream_matches, check_chunkings

MOD = "test_custom_attacks"
SECRET = "Zyxwvut"  # a "detected value" that must never reach reasons, logs or traces


def _policy(body: str, *, cap: int = 1024) -> ge.Policy:
    return make_policy(body, block_message="[blocked]", cap=cap, trusted=[MOD])


def _custom(name: str, **keys: Any) -> str:
    extra = "".join(f", {k}: {json.dumps(v)}" for k, v in keys.items())
    return f"  - {{id: c, type: custom, function: '{MOD}:{name}'{extra}}}\n"


def _streamed(policy: ge.Policy, chunks: list[str]) -> tuple[str, ge.Result]:
    with policy.stream_sync(chunks) as stream:
        pieces = list(stream)
        result = stream.result
    assert result is not None
    return "".join(pieces), result


def _astreamed(
    policy: ge.Policy, chunks: list[str], backend: str = "asyncio"
) -> tuple[str, ge.Result]:
    async def main() -> tuple[str, ge.Result]:
        async with policy.stream(chunks) as stream:
            pieces = [p async for p in stream]
            result = stream.result
        assert result is not None
        return "".join(pieces), result

    return anyio.run(main, backend=backend)


# -- unit boundaries: every unit is a finding, so findings show where units were cut ---------


@unit_check
def every_unit(sentence: str) -> Found:
    return Found(label="U", reason="a unit")


@unit_check(unit="line")
def every_line(line: str) -> Found:
    return Found(label="L", reason="a line")


@unit_check(unit="text")
def whole_text(text: str) -> Found | None:
    return Found(0, 1, label="T", reason="first character") if "flagme" in text else None


calls: list[str] = []


@unit_check
def recorded(sentence: str) -> None:
    calls.append(sentence)


BOUNDARY_TEXTS = [
    'Wait... what?! He said "stop." Then (left.) Fine',
    "One.\r\nTwo?\r\n\r\nThree!\rFour",
    "Ellipsis\u2026 next\u2026\u2026 and \u201cquoted.\u201d done\u2019s. ok",
    "Stop&#46; Go&#x2E; now%2E then &period; end",
    "unicode\u2028sep.\u2029para. nbsp.\u00a0x. ideographic.\u3000y.",
    "emoji \U0001f600. more \U0001f600\U0001f600! z",
    "lone \ud83d. surrogates\ude00! x\x1c. y\x85z. w",
    "a.b.c. d?e!f. ..  . ! ?",
    "tab.\tand\vvertical.\fform. end",
    "",
    "   \n \n  ",
    "no terminator at all",
]


@pytest.mark.parametrize("check", ["every_unit", "every_line"])
def test_units_are_cut_alike_under_random_chunkings(check: str) -> None:
    policy = _policy(_custom(check, action="flag"))
    check_chunkings(policy, BOUNDARY_TEXTS, max_examples=60, asynchronous=False, max_chunk=5)


_PIECES = st.sampled_from(
    [
        *"ab.!?\u2026\"')] \n\r\t",
        "\u2028",
        "\u00a0",
        "\u3000",
        "&#46;",
        "&#x2e;",
        "%2E",
        "&amp;",
        "\\u002e",
        "\u200b",
        "A\u0441me",
        "\U0001f600",
        "word",
        "...",
        "?!",
    ]
)


@pytest.mark.parametrize("check", ["every_unit", "async_unit"])
def test_random_texts_are_cut_alike_under_random_chunkings(check: str) -> None:
    # The guarantee holds while no unit is longer than max_holdback_chars in the text as
    # written: 16 canonical characters are at most 96 written ones here (`&#x2e;` is 6),
    # so the cap is above that.  (At cap=40, `a` and eight `&#46;` are a 41-character
    # unit: past the cap a stream decides it in parts, as documented.)
    policy = _policy(
        _custom(check, action="flag", max_unit_chars=16)
        + "  - {id: w, type: content, terms: [acme], action: repair}\n",
        cap=256,
    )

    @settings(max_examples=300 if check == "every_unit" else 60, deadline=None, database=None)
    @given(
        pieces=st.lists(_PIECES, max_size=40),
        cuts=st.lists(st.integers(1, 7), min_size=1, max_size=12),
    )
    def prop(pieces: list[str], cuts: list[int]) -> None:
        text = "".join(pieces)
        chunks, i, k = [], 0, 0
        while i < len(text):
            chunks.append(text[i : i + cuts[k % len(cuts)]])
            i += cuts[k % len(cuts)]
            k += 1
        assert_stream_matches(policy, text, chunks, asynchronous=check == "async_unit")

    prop()


def test_units_at_exactly_max_unit_chars() -> None:
    policy = _policy(_custom("every_unit", action="flag", max_unit_chars=16), cap=48)
    texts = [
        "abcdefghijklmno. next",  # terminator at the 16th character, whitespace after it
        "abcdefghijklmnop. next",  # terminator right after the limit
        "abcdefghijklmnop!? next",
        "abcdefghijklmnop qrstuvwxyzabcdef uvw",
        "a" * 16 + "." + "b" * 16 + "!" + " " + "c" * 40,
        "x" * 65,
    ]
    check_chunkings(policy, texts, max_examples=40, asynchronous=False, max_chunk=7)


def test_each_unit_is_checked_exactly_once_in_text_order() -> None:
    policy = _policy(_custom("recorded"), cap=40)
    text = "First one. Second one!  Third?\nFourth " + "y" * 100 + ". Last"
    calls.clear()
    policy.validate_sync(text)
    whole = list(calls)
    assert whole[0] == "First one." and whole[-1] == "Last"
    assert all(len(u) <= 40 for u in whole)

    @settings(max_examples=40, deadline=None, database=None)
    @given(cuts=st.lists(st.integers(1, 9), min_size=1, max_size=20))
    def prop(cuts: list[int]) -> None:
        chunks, i, k = [], 0, 0
        while i < len(text):
            chunks.append(text[i : i + cuts[k % len(cuts)]])
            i += cuts[k % len(cuts)]
            k += 1
        calls.clear()
        _streamed(policy, chunks)
        assert calls == whole

    prop()


def test_unit_checks_with_length_schema_and_content_checks() -> None:
    length = _policy(
        _custom("every_unit", action="flag")
        + "  - {id: n, type: length, max_chars: 30, action: repair}\n"
        + "  - {id: w, type: content, terms: [gamma], action: repair, replacement: '***'}\n"
    )
    texts = [
        "Alpha beta. Gamma delta! Epsilon zeta eta theta. Iota kappa.",
        "gamma. " * 8,
        "A long one. " * 40,  # (validate decides early: it reads only as far as a stream)
    ]
    check_chunkings(length, texts, max_examples=40, asynchronous=False)
    text_unit = _policy(
        _custom("whole_text", action="block")
        + "  - {id: n, type: length, max_chars: 20, action: repair}\n"
    )
    check_chunkings(
        text_unit, ["short text", "x" * 30 + " flagme", "flagme " + "y" * 40], max_examples=30
    )
    schema = _policy(
        _custom("every_unit", action="flag")
        + "  - {id: s, type: schema, schema: {type: object}, action: block}\n"
    )
    check_chunkings(schema, ['{"a": "x. y. z"}', '{"a": 1}. Not json'], max_examples=30)


@unit_check
async def async_unit(sentence: str) -> Found | None:
    await anyio.lowlevel.checkpoint()
    return Found(label="U") if len(sentence) % 2 else None


@unit_check(unit="text", blocking=True)
def blocking_text(text: str) -> Found | None:
    return Found(0, 1, label="T") if "flagme" in text else None


def test_deferred_and_text_checks_under_random_chunkings_and_a_small_cap() -> None:
    policy = _policy(
        _custom("async_unit", action="repair", max_unit_chars=20)
        + f"  - {{id: t, type: custom, function: '{MOD}:blocking_text', action: repair}}\n",
        cap=24,
    )
    texts = [
        'Wait... what?! He said "stop." Then (left.) Fine',
        "flagme " + "z" * 60 + ". And then some more words here.",
        "x" * 70,
    ]
    check_chunkings(policy, texts, max_examples=30, max_chunk=9)


@pytest.fixture(scope="module")
def pii_policy() -> ge.Policy:
    return _policy(
        _custom("every_unit", action="flag")
        + "  - {id: p, type: pii, entities: [EMAIL_ADDRESS, CREDIT_CARD], action: repair}\n"
        + "  - {id: w, type: content, terms: [acme], action: repair}\n"
    )


def test_unit_checks_next_to_pii_and_content(pii_policy: ge.Policy) -> None:
    texts = [
        "Mail a@b.com. Card 4111 1111 1111 1111! Acme.",
        "a&#64;b.com is mine. Acme&#46; Done",
    ]
    check_chunkings(pii_policy, texts, max_examples=30, asynchronous=False)


# -- malformed findings ----------------------------------------------------------------------


@unit_check
def negative(sentence: str) -> Any:
    return [Found(-1, 2)]


@unit_check
def boolean(sentence: str) -> Any:
    return [Found(True, 3)]


@unit_check
def floats(sentence: str) -> Any:
    return [Found(0.0, 2.0)]  # type: ignore[arg-type]


@unit_check
def nan_score(sentence: str) -> Any:
    return [Found(0, 2, score=float("nan"))]


@unit_check
def empty_span(sentence: str) -> Any:
    return [Found(1, 1)]


@unit_check
def bad_label(sentence: str) -> Any:
    return [Found(0, 2, label=5)]  # type: ignore[arg-type]


@unit_check
def a_string(sentence: str) -> Any:
    return "Found"


@unit_check
def a_dict(sentence: str) -> Any:
    return {"start": 0}


def _raising_generator(sentence: str) -> Iterator[Found]:
    yield Found(0, 1)
    raise ValueError(f"broke on {sentence}")


gen_raises = unit_check(_raising_generator)


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("negative", "check returned a malformed finding (a finding's span -1-2"),
        ("boolean", "check returned a malformed finding (a finding's start and end must be"),
        ("floats", "check returned a malformed finding (a finding's start and end must be"),
        ("nan_score", "check returned a malformed finding (a finding's score must be"),
        ("empty_span", "check returned a malformed finding (a finding's span 1-1"),
        ("bad_label", "check returned a malformed finding (a finding's label must be a str"),
        ("a_string", "check returned a malformed finding (a unit check returns findings"),
        ("a_dict", "check returned a malformed finding (a finding must be a Found, got str"),
        ("gen_raises", "check failed (ValueError)"),
    ],
)
def test_malformed_findings_fail_the_check_alike_everywhere(name: str, detail: str) -> None:
    policy = _policy(_custom(name))
    text = f"Hello {SECRET} there. More."
    results = [policy.validate_sync(text), _streamed(policy, list(text))[1]]
    results.append(_astreamed(policy, [text[:5], text[5:]])[1])
    for result in results:
        assert result.blocked, result
        (reason,) = result.reasons
        assert reason.startswith(f"c: {detail}"), reason
        assert SECRET not in reason
    assert _streamed(policy, list(text))[0] == "[blocked]"


@unit_check
def many(sentence: str) -> list[Found]:
    return [Found(0, 1, label="X")] * 9_999 + [Found(label="ALL")]


def test_a_huge_list_of_findings_is_merged_not_multiplied() -> None:
    policy = _policy(_custom("many", action="repair"))
    result = policy.validate_sync("ab. cd.")
    assert result.text == "<ALL> <ALL>"
    assert len(result.findings) <= 4
    assert _streamed(policy, list("ab. cd."))[1] == result


_ENDLESS = """
import sys, itertools
import guardrails_engine as ge
from guardrails_engine.checks import Found, unit_check

@unit_check
def endless(s):
    return itertools.repeat(Found(0, 1))

sys.modules["endless_mod"] = sys.modules[__name__]
policy = ge.Policy.from_yaml(
    "version: 1\\nname: t\\nchecks:\\n"
    "  - {id: c, type: custom, function: 'endless_mod:endless'}\\n",
    trusted_modules=["endless_mod"],
)
print(policy.validate_sync("One. Two.").reasons)
with policy.stream_sync(list("One. Two.")) as stream:
    print(repr("".join(stream)), stream.result.reasons)
"""


def test_an_endless_generator_of_findings_is_malformed_not_a_hang() -> None:
    out = run_limited(_ENDLESS, seconds=60, memory=1_500_000_000).splitlines()
    assert out == [
        "('c: check returned a malformed finding (more than 10,000 findings in one unit), "
        "blocked',)",
        "'' ('c: check returned a malformed finding (more than 10,000 findings in one unit), "
        "blocked',)",
    ]


class Shifty(Found):
    """A Found whose fields change each time they are read."""

    __slots__ = ("_reads",)

    _reads: int

    def __init__(self) -> None:
        object.__setattr__(self, "_reads", 0)

    def _read(self, first: Any, later: Any) -> Any:
        n = self._reads
        object.__setattr__(self, "_reads", n + 1)
        return first if n == 0 else later

    @property
    def reason(self) -> Any:
        return self._read("fine", 42)

    @property
    def label(self) -> Any:
        return None


@unit_check
def shifty(sentence: str) -> Any:
    return [Shifty()]


def test_a_found_subclass_that_changes_under_reading_cannot_crash_the_run() -> None:
    policy = _policy(_custom("shifty", action="flag"))
    result = policy.validate_sync("Some text.")  # must not raise
    assert all(isinstance(r, str) for r in result.reasons)
    assert result.decision in (ge.Decision.PASS, ge.Decision.BLOCK)
    assert _streamed(policy, list("Some text."))[1] == result


@unit_check
def quoting_case(sentence: str) -> Any:
    i = sentence.find(SECRET)
    if i < 0:
        return None
    return [
        Found(i, i + len(SECRET), label="NAME", reason=f"mentions {SECRET.upper()}"),
    ]


@unit_check
def quoting_space(sentence: str) -> Any:
    i = sentence.find("Acme  Corp")
    return [Found(i, i + 10, label="ORG", reason="mentions acme corp")] if i >= 0 else None


@unit_check
def quoting_label(sentence: str) -> Any:
    i = sentence.find(SECRET)
    return [Found(i, i + len(SECRET), label=SECRET)] if i >= 0 else None


@unit_check
def quoting_unit(sentence: str) -> Any:
    return [Found(0, 2, label="X", reason=f"in {sentence!r}")] if SECRET in sentence else None


@unit_check
def quoting_squeezed(sentence: str) -> Any:
    i = sentence.find("4111 1111")
    return [Found(i, i + 9, label="NUM", reason="number 41111111")] if i >= 0 else None


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("quoting_unit", f"We met {SECRET} today.", SECRET),
        ("quoting_squeezed", "Card 4111 1111 here.", "41111111"),
        ("quoting_case", f"We met {SECRET} today.", SECRET),
        ("quoting_space", "We met Acme  Corp today.", "acme corp"),
        ("quoting_label", f"We met {SECRET} today.", SECRET),
    ],
)
def test_a_reason_never_quotes_the_value_in_another_case_or_spacing(
    name: str, text: str, value: str
) -> None:
    policy = _policy(_custom(name, action="block"))
    result = policy.validate_sync(text)
    assert result.blocked
    (reason,) = result.reasons
    assert value.casefold() not in reason.casefold(), reason


@unit_check
def own_replacement(sentence: str) -> Any:
    i = sentence.find("Acme")
    return [Found(i, i + 4, label="R", replacement="[X]")] if i >= 0 else None


@pytest.mark.parametrize(
    "text", ["We beat Acme. Fine.", "We beat Ac\u200bme. Fine.", "We&#32;beat Acme. Fine."]
)
def test_a_findings_own_replacement_survives_escapes_and_invisible_characters(text: str) -> None:
    # (The canonical view differs from the text: hits are moved back to it.)
    policy = _policy(_custom("own_replacement", action="repair"))
    result = policy.validate_sync(text)
    assert result.text.startswith("We") and "[X]. Fine." in result.text, result.text
    assert_stream_matches(policy, text, list(text), asynchronous=True)


# -- checks that raise: privacy of reasons, logs and traces ----------------------------------


@unit_check
def raises_own_malformed(sentence: str) -> None:
    raise MalformedFinding(f"bad: {sentence}")


@unit_check
async def araises_own_malformed(sentence: str) -> None:
    raise MalformedFinding(f"bad: {sentence}")


@unit_check(blocking=True)
def braises(sentence: str) -> None:
    raise RuntimeError(f"bad: {sentence}")


@unit_check
async def araises(sentence: str) -> None:
    await anyio.lowlevel.checkpoint()
    raise ValueError(f"bad: {sentence}")


@pytest.mark.parametrize(
    "name", ["raises_own_malformed", "araises_own_malformed", "braises", "araises"]
)
@pytest.mark.parametrize("on_error", ["block", "pass"])
def test_a_check_error_message_reaches_no_reason_log_or_trace(
    name: str, on_error: str, caplog: pytest.LogCaptureFixture
) -> None:
    traces: list[ge.Trace] = []
    policy = _policy(_custom(name, on_error=on_error))
    text = f"Hello {SECRET} there. More."
    with caplog.at_level(logging.DEBUG, logger="guardrails_engine"):
        results: list[ge.Result | None] = [policy.validate_sync(text, on_trace=traces.append)]
        with policy.stream_sync(list(text), on_trace=traces.append) as stream:
            released = "".join(stream)
        results.append(stream.result)
        results.append(anyio.run(lambda: policy.validate(text, on_trace=traces.append)))
    assert len(traces) == 3
    for result in results:
        assert isinstance(result, ge.Result)
        (reason,) = result.reasons
        assert SECRET not in reason and "bad:" not in reason, reason
        assert (result.blocked is not None) is (on_error == "block")
    if on_error == "block":
        assert released == "[blocked]"
    for trace in traces:
        assert SECRET not in repr(trace) and SECRET not in json.dumps(trace.to_dict(), default=str)
    assert SECRET not in caplog.text


# -- async and blocking checks that misbehave --------------------------------------------------


class Weird(BaseException):
    pass


@unit_check
async def raises_base(sentence: str) -> None:
    await anyio.lowlevel.checkpoint()
    if "boom" in sentence:
        raise Weird("boom")


@unit_check(blocking=True)
def braises_base(sentence: str) -> None:
    if "boom" in sentence:
        raise Weird("boom")


@unit_check
def sraises_base(sentence: str) -> None:
    if "boom" in sentence:
        raise Weird("boom")


@unit_check
async def raises_cancelled(sentence: str) -> None:
    if "boom" in sentence:
        raise asyncio.CancelledError()


@unit_check
async def cancels_itself(sentence: str) -> None:
    if "boom" in sentence:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)


@unit_check
async def raises_generator_exit(sentence: str) -> None:
    if "boom" in sentence:
        raise GeneratorExit()


@unit_check
async def swallows_cancel(sentence: str) -> Found | None:
    if "boom" in sentence:
        try:
            await anyio.sleep(5)
        except anyio.get_cancelled_exc_class():
            return None  # the deadline passed: pretend all is well
    return None


@pytest.mark.parametrize(
    "name",
    [
        "raises_base",
        "braises_base",
        "sraises_base",
        "raises_cancelled",
        "cancels_itself",
        "raises_generator_exit",
        "swallows_cancel",
    ],
)
def test_a_check_that_raises_base_exceptions_or_cancels_fails_by_on_error(name: str) -> None:
    policy = _policy(_custom(name, timeout_ms=200))
    text = "Fine start. Then boom here. More text."
    for how in ("validate", "avalidate", "stream", "astream"):
        if how == "validate":
            result, released = policy.validate_sync(text), None
        elif how == "avalidate":
            result, released = anyio.run(policy.validate, text), None
        elif how == "stream":
            released, result = _streamed(policy, list(text))
        else:
            released, result = _astreamed(policy, [text[i : i + 4] for i in range(0, len(text), 4)])
        assert result.blocked, (how, result)
        (reason,) = result.reasons
        assert reason.startswith("c: check "), (how, reason)
        if released is not None:
            assert "boom" not in released and released.endswith("[blocked]"), (how, released)


@unit_check
async def blocks_loop(sentence: str) -> None:
    if "slow" in sentence:
        time.sleep(0.4)  # blocks the event loop: the deadline cannot interrupt it  # noqa: ASYNC251


def test_an_async_check_that_blocks_the_loop_past_its_time_fails() -> None:
    policy = _policy(_custom("blocks_loop", timeout_ms=100))
    text = "Fine. This is slow. More."
    assert policy.validate_sync(text).reasons == ("c: check timed out after 100 ms, blocked",)
    released, result = _streamed(policy, list(text))
    assert result.blocked and "slow" not in released


@unit_check
async def not_awaitable(sentence: str) -> Any:
    return None


def test_an_async_check_returning_a_non_awaitable_fails() -> None:
    def sync_call(sentence: str) -> Any:
        return Found()

    check = unit_check(not_awaitable.function)
    assert check.is_async
    # a callable that pretends to be async but returns a plain value
    object.__setattr__(check, "function", sync_call)
    from guardrails_engine.checks._unit import Compiled, Job

    config = CheckConfig("c", "custom", ge.Action.BLOCK, "block", None, None, 100)
    job = Job(Compiled(config, check, unit="sentence", max_unit_chars=100), "x", 0)
    with pytest.raises(MalformedFinding, match="must return an awaitable, got Found"):
        job.acall()


# -- concurrency ----------------------------------------------------------------------------

order: list[tuple[str, str]] = []
_lock = threading.Lock()


@unit_check
async def slow_a(sentence: str) -> Found | None:
    await anyio.sleep(0.01 * (len(sentence) % 3))
    with _lock:
        order.append(("a", sentence))
    return Found(label="A") if "alpha" in sentence else None


@unit_check
async def slow_b(sentence: str) -> Found | None:
    await anyio.sleep(0.005)
    with _lock:
        order.append(("b", sentence))
    return Found(0, 1, label="B") if "beta" in sentence else None


@unit_check(blocking=True)
def thread_c(sentence: str) -> Found | None:
    time.sleep(0.002)
    with _lock:
        order.append(("c", sentence))
    return Found(label="C") if "gamma" in sentence else None


def _three() -> ge.Policy:
    return _policy(
        f"  - {{id: a, type: custom, function: '{MOD}:slow_a', action: repair}}\n"
        f"  - {{id: b, type: custom, function: '{MOD}:slow_b', action: flag}}\n"
        f"  - {{id: c, type: custom, function: '{MOD}:thread_c', action: repair}}\n"
    )


def test_several_deferred_checks_many_units_per_chunk() -> None:
    policy = _three()
    text = " ".join(
        f"{w} number {i}." for i, w in enumerate(["alpha", "beta", "gamma", "delta"] * 5)
    )
    order.clear()
    whole = policy.validate_sync(text)
    units = sorted(order)
    assert len(units) == 60 and len(set(units)) == 60  # each check saw each unit once
    assert whole.text.count("<A>") == 5 and whole.text.count("<C>") == 5
    for chunks in ([text], [text[:97], text[97:]], list(text)):
        order.clear()
        assert_stream_matches(policy, text, chunks, asynchronous=True)
        # (validate, sync stream, async stream: each unit once per check in each)
        assert sorted(order) == sorted(units * 3)


def test_interleaved_runs_of_one_policy_do_not_share_state() -> None:
    policy = _three()
    a = "alpha one. beta two. gamma three."
    b = "delta one. gamma two. alpha three."
    sa, sb = policy.stream_sync(list(a)), policy.stream_sync(list(b))
    pa, pb = [], []
    ia, ib = iter(sa), iter(sb)
    done_a = done_b = False
    while not (done_a and done_b):
        if not done_a:
            try:
                pa.append(next(ia))
            except StopIteration:
                done_a = True
        if not done_b:
            try:
                pb.append(next(ib))
            except StopIteration:
                done_b = True
    assert sa.result == policy.validate_sync(a) and "".join(pa) == sa.result.text
    assert sb.result == policy.validate_sync(b) and "".join(pb) == sb.result.text


def test_concurrent_runs_on_one_loop_keep_their_own_findings() -> None:
    policy = _three()
    texts = [f"{w} {i}. more {i}. gamma {w}." for i, w in enumerate(["alpha", "beta", "x"] * 5)]
    expected = [policy.validate_sync(t) for t in texts]
    got: dict[int, ge.Result] = {}

    async def one(i: int) -> None:
        if i % 2:
            got[i] = await policy.validate(texts[i])
        else:
            async with policy.stream(
                [texts[i][k : k + 3] for k in range(0, len(texts[i]), 3)]
            ) as s:
                "".join([p async for p in s])
                assert s.result is not None
                got[i] = s.result

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(len(texts)):
                tg.start_soon(one, i)

    for backend in ("asyncio", "trio"):
        got.clear()
        anyio.run(main, backend=backend)
        assert [got[i] for i in range(len(texts))] == expected


@unit_check
def json_repair(sentence: str) -> Any:
    i = sentence.find("Acme")
    return [Found(i, i + 4, label="R", replacement='"q"\\')] if i >= 0 else None


def test_a_findings_replacement_is_escaped_in_json_output() -> None:
    policy = _policy(
        _custom("json_repair", action="repair")
        + "  - {id: s, type: schema, schema: {type: object}, action: block}\n"
    )
    text = '{"a": "We beat Acme. ok"}'
    result = assert_stream_matches(policy, text, list(text), asynchronous=True)
    assert result.decision is ge.Decision.REPAIR
    assert json.loads(result.text) == {"a": 'We beat "q"\\. ok'}


@unit_check
async def sleepy(sentence: str) -> None:
    await anyio.sleep(0.06)


def test_timeout_is_per_run_not_per_unit_in_validate() -> None:
    # Five units of 60 ms each, awaited side by side: 60 ms of the run's 250.
    policy = _policy(_custom("sleepy", timeout_ms=250))
    text = "One. Two. Three. Four. Five."
    assert policy.validate_sync(text).decision is ge.Decision.PASS
    # One unit longer than the time: timed out, in validate and in a stream.
    tight = _policy(_custom("sleepy", timeout_ms=30))
    assert tight.validate_sync("One.").reasons == ("c: check timed out after 30 ms, blocked",)
    released, result = _streamed(tight, ["One. Two."])
    assert result.blocked and released == "[blocked]"


@unit_check
async def slow_units(sentence: str) -> None:
    await anyio.sleep(0.06)


def test_a_per_unit_delay_cannot_stretch_a_stream_past_the_runs_time() -> None:
    # timeout_ms is per run: a stream that waits on each of ten units in turn is
    # charged for all of them, and stops at the budget, not after ten delays.
    policy = _policy(_custom("slow_units", timeout_ms=200))
    text = " ".join(f"Unit {i}." for i in range(10))
    began = time.perf_counter()
    released, result = _streamed(policy, list(text))
    assert time.perf_counter() - began < 0.55
    assert result.reasons == ("c: check timed out after 200 ms, blocked",)
    assert released.endswith("[blocked]") and "Unit 9" not in released


@unit_check
def sync_boom(sentence: str) -> None:
    if "boom" in sentence:
        raise RuntimeError("x")


@pytest.mark.parametrize("name", ["sync_boom", "raises_base"])
def test_a_failing_check_has_the_same_finding_in_stream_and_validate(name: str) -> None:
    policy = _policy(_custom(name))
    text = "Fine start. Then boom here. More text."
    assert_stream_matches(policy, text, list(text), asynchronous=True)


@unit_check
async def very_slow(sentence: str) -> None:
    await anyio.sleep(5)


def test_cancelling_a_stream_while_a_check_is_awaited_cancels_it() -> None:
    policy = _policy(_custom("very_slow", timeout_ms=10_000))

    async def consume() -> list[str]:
        stream = policy.stream(["One. ", "Two. ", "Three."])
        return [p async for p in stream]

    async def with_wait_for() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(consume(), 0.2)

    async def with_scope() -> None:
        with anyio.move_on_after(0.2) as scope:
            await consume()
        assert scope.cancelled_caught

    for main, backend in (
        (with_wait_for, "asyncio"),
        (with_scope, "asyncio"),
        (with_scope, "trio"),
    ):
        began = time.perf_counter()
        anyio.run(main, backend=backend)
        assert time.perf_counter() - began < 2


# -- event loops ------------------------------------------------------------------------------


def test_validate_sync_and_stream_sync_inside_running_loops() -> None:
    policy = _three()
    text = "alpha one. beta two. gamma three."
    expected = policy.validate_sync(text)

    async def inside() -> list[Any]:
        out: list[Any] = [policy.validate_sync(text)]
        with policy.stream_sync(list(text)) as stream:
            out.append(("".join(stream), stream.result))
        out.append(await policy.validate(text))
        return out

    for backend in ("asyncio", "trio"):
        got = anyio.run(inside, backend=backend)
        assert got[0] == expected and got[2] == expected
        assert got[1] == (expected.text, expected)
        assert _astreamed(policy, list(text), backend=backend) == (expected.text, expected)


# -- pickling ----------------------------------------------------------------------------------


class Opts(BaseModel):
    word: str


@unit_check(options=Opts)
def has_word(sentence: str, options: Opts) -> Found | None:
    i = sentence.find(options.word)
    return Found(i, i + len(options.word), label="W") if i >= 0 else None


def test_a_policy_with_custom_checks_pickles() -> None:
    policy = _policy(
        _custom("has_word", action="repair", options={"word": "kiwi"}) + _custom_terms()
    )
    text = "I like kiwi. And Blue Falcon too."
    again = pickle.loads(pickle.dumps(policy))
    assert again.validate_sync(text) == policy.validate_sync(text)
    assert again.validate_sync(text).text == "I like <W>. And [term] too."


def test_a_policy_with_custom_checks_unpickles_in_another_process(tmp_path: Any) -> None:
    policy = _policy(
        _custom("has_word", action="repair", options={"word": "kiwi"})
        + _custom_terms()
        + f"  - {{id: a, type: custom, function: '{MOD}:slow_a', action: repair}}\n"
    )
    (tmp_path / "policy.pickle").write_bytes(pickle.dumps(policy))
    out = run_limited(
        f"""
import pickle, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
policy = pickle.loads(open({str(tmp_path / "policy.pickle")!r}, "rb").read())
print(policy.validate_sync("I like kiwi. And Blue Falcon too. alpha."))
""",
        seconds=120,
    )
    assert out.strip() == repr(policy.validate_sync("I like kiwi. And Blue Falcon too. alpha."))


def _custom_terms() -> str:
    return (
        f"  - {{id: t, type: custom, function: '{MOD}:Terms', action: repair,"
        " replacement: '[term]'}\n"
    )


# -- incremental checks that break the contract in new ways -------------------------------------


class _Sess(Session):
    scans = True

    def __init__(self, check: Check, mode: str) -> None:
        self.check = check
        self.mode = mode
        if mode == "hold-none":
            self.hold = None  # type: ignore[assignment]
        elif mode == "hold-float":
            self.hold = 0.0  # type: ignore[assignment]
        elif mode != "no-hold":
            self.hold = 0
        self.done = False

    def feed(self, buf: str, base: int, chunk: str) -> Any:
        return self._go(buf, base, final=False)

    def finish(self, buf: str, base: int) -> Any:
        return self._go(buf, base, final=True)

    def _go(self, buf: str, base: int, *, final: bool) -> Any:
        end = base + len(buf)
        mode = self.mode
        if mode == "raise-malformed":
            raise MalformedFinding(f"saw {buf}")
        if mode == "raise-base" and SECRET in buf:
            raise Weird("x")
        if mode == "other-check":
            return [Hit(OTHER, 0, 1, "x")] if end > 3 else []
        if not final or end < 3:
            return []
        hit = Hit(self.check, 0, 2, "found", entity="E")
        if mode == "bad-action":
            hit.action = "explode"  # type: ignore[assignment]
        elif mode == "bad-replacement":
            hit.replacement = 5  # type: ignore[assignment]
        elif mode == "bad-entity":
            hit.entity = 5  # type: ignore[assignment]
        elif mode == "bad-score":
            hit.score = "high"  # type: ignore[assignment]
        elif mode == "bad-floor":
            hit.floor = None  # type: ignore[assignment]
        elif mode == "bool-start":
            hit.start = False
        elif mode == "quoting-what":
            i = buf.find(SECRET)
            hit = Hit(self.check, base + i, base + i + len(SECRET), f"found {SECRET.lower()}")
            hit.entity = SECRET
        return [hit]


class _Mode(BaseModel):
    mode: str


class Weirdo(Check):
    Options = _Mode

    def session(self) -> Session:
        mode = self.config.options.mode
        if mode == "session-raises":
            raise RuntimeError(f"no session for {SECRET}")
        if mode == "not-a-session":
            return object()  # type: ignore[return-value]
        return _Sess(self, mode)

    def render(self, hit: Hit, context: Any) -> str:
        mode = self.config.options.mode
        if mode == "render-raises":
            raise ValueError(SECRET)
        if mode == "render-int":
            return 5  # type: ignore[return-value]
        return "[r]"

    def outcome(self, hit: Hit) -> str:
        mode = self.config.options.mode
        if mode == "outcome-raises":
            raise ValueError(SECRET)
        if mode == "outcome-int":
            return 7  # type: ignore[return-value]
        return super().outcome(hit)


OTHER = Check(CheckConfig("other", "custom", ge.Action.BLOCK, "block", None, None, 10))


@pytest.mark.parametrize(
    "mode",
    [
        "hold-none",
        "hold-float",
        "no-hold",
        "session-raises",
        "not-a-session",
        "raise-malformed",
        "raise-base",
        "other-check",
        "bad-action",
        "bad-replacement",
        "bad-entity",
        "bad-score",
        "bad-floor",
        "render-raises",
        "render-int",
        "outcome-raises",
        "outcome-int",
    ],
)
@pytest.mark.parametrize("on_error", ["block", "pass"])
def test_a_broken_incremental_check_never_raises_from_the_library(mode: str, on_error: str) -> None:
    policy = _policy(
        f"  - {{id: c, type: custom, function: '{MOD}:Weirdo', action: repair,"
        f" on_error: {on_error}, options: {{mode: {mode}}}}}\n"
    )
    text = f"ab {SECRET} cd."
    degraded = mode.startswith(("render-", "outcome-"))
    for result, released in (
        (policy.validate_sync(text), None),
        _streamed(policy, list(text))[::-1],
        _astreamed(policy, list(text))[::-1],
    ):
        assert isinstance(result, ge.Result)
        assert all(isinstance(r, str) and SECRET not in r for r in result.reasons), result.reasons
        if degraded:
            # The check's render or outcome failed: the span is repaired all the same.
            assert result.decision is ge.Decision.REPAIR
            expected = "<E>" if mode.startswith("render-") else "[r]"  # the default: <ENTITY>
            assert result.text == f"{expected} {SECRET} cd."
            assert result.reasons[0].startswith("c: found at 0-2, ")
            assert released in (None, result.text)
            continue
        (reason,) = result.reasons
        assert reason.startswith("c: check "), reason
        if on_error == "block":
            assert result.blocked and released in (None, "[blocked]")
        else:  # unchecked text passes by policy only
            assert result.decision is ge.Decision.PASS and result.text == text
            assert reason.endswith("skipped (on_error: pass)")


def test_bool_offsets_and_quoting_hits_of_an_incremental_check() -> None:
    for mode in ("bool-start", "quoting-what"):
        policy = _policy(
            f"  - {{id: c, type: custom, function: '{MOD}:Weirdo', action: repair,"
            f" options: {{mode: {mode}}}}}\n"
        )
        text = f"ab {SECRET} cd."
        for result in (policy.validate_sync(text), _streamed(policy, list(text))[1]):
            assert all(SECRET.lower() not in r.lower() for r in result.reasons), result.reasons
            assert all(f.entity_type != SECRET for f in result.findings)
            if mode == "bool-start":
                assert result.blocked and "integers" in result.reasons[0]
            else:
                assert result.text == "ab [r] cd."


class Terms(Check):
    """A small incremental check: "blue falcon", decided when the text ends."""

    def session(self) -> Session:
        return _TermsSession(self)


class _TermsSession(Session):
    scans = True

    def __init__(self, check: Check) -> None:
        self.check = check
        self.hold = 0

    def feed(self, buf: str, base: int, chunk: str) -> list[Hit]:
        return []

    def finish(self, buf: str, base: int) -> list[Hit]:
        i = buf.lower().find("blue falcon")
        self.hold = base + len(buf)
        return [Hit(self.check, base + i, base + i + 11, "listed term")] if i >= 0 else []

    def force(self, buf: str, base: int, upto: int) -> list[Hit]:
        self.hold = max(self.hold, upto)
        return []


class LateDecider(Check):
    """Decides only when the text ends, and has no force(): past the hold-back cap
    the run cannot make it decide."""

    def session(self) -> Session:
        return _LateSession(self)


class _LateSession(Session):
    scans = True

    def __init__(self, check: Check) -> None:
        self.check = check
        self.hold = 0

    def feed(self, buf: str, base: int, chunk: str) -> list[Hit]:
        return []

    def finish(self, buf: str, base: int) -> list[Hit]:
        i = buf.find(SECRET)
        self.hold = base + len(buf)
        return [Hit(self.check, base + i, base + i + len(SECRET), "secret")] if i >= 0 else []


@pytest.mark.parametrize("on_error", ["block", "pass"])
def test_a_session_without_force_releases_nothing_unchecked_past_the_cap(on_error: str) -> None:
    policy = _policy(
        f"  - {{id: c, type: custom, function: '{MOD}:LateDecider', action: repair,"
        f" on_error: {on_error}}}\n",
        cap=64,
    )
    text = f"Intro {SECRET} and then " + "many more words " * 20
    assert policy.validate_sync(text).text.startswith("Intro [removed] and")
    released, result = _streamed(policy, list(text))
    if on_error == "block":
        assert SECRET not in released, "text the check had not decided was released"
        assert result.reasons == ("c: check failed (NotImplementedError), blocked",)
    else:  # released unchecked by policy, and said so
        assert "on_error: pass" in " ".join(result.reasons)


class _NoopForce(_LateSession):
    def force(self, buf: str, base: int, upto: int) -> list[Hit]:
        return []  # claims to have decided, and moves no hold


class NoopForcer(LateDecider):
    def session(self) -> Session:
        return _NoopForce(self)


def test_a_force_that_decides_nothing_is_a_failure() -> None:
    policy = _policy(
        f"  - {{id: c, type: custom, function: '{MOD}:NoopForcer', action: repair}}\n", cap=64
    )
    text = f"Intro {SECRET} and then " + "many more words " * 20
    released, result = _streamed(policy, list(text))
    assert SECRET not in released and result.blocked
    assert result.reasons == (
        "c: check returned a malformed finding (force() must decide the text before 1: "
        "the hold stays at 0), blocked",
    )


def test_a_text_check_takes_no_max_unit_chars() -> None:
    with pytest.raises(ge.PolicyError) as info:
        _policy(_custom("whole_text", max_unit_chars=100))
    problems = info.value.problems or (info.value,)
    assert any(p.field == "checks[0].max_unit_chars" for p in problems)
    with pytest.raises(ge.PolicyError):
        _policy(_custom("every_unit", unit="text", max_unit_chars=100))
    _policy(_custom("every_unit", unit="line", max_unit_chars=100))  # (a line is cut in parts)


# -- policy errors -------------------------------------------------------------------------------


def test_a_module_that_raises_on_import_is_a_policy_error(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "explodes_on_import.py").write_text("raise RuntimeError('nope')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ge.PolicyError) as info:
        ge.Policy.from_yaml(
            "version: 1\nname: t\nchecks:\n"
            "  - {id: c, type: custom, function: 'explodes_on_import:f'}\n",
            source="p.yaml",
            trusted_modules=["explodes_on_import"],
        )
    problems = info.value.problems or (info.value,)
    assert any(p.field == "checks[0].function" for p in problems), [str(p) for p in problems]


class _Validating(BaseModel):
    x: int

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("unexpected")


@unit_check(options=_Validating)
def odd_options(sentence: str, options: Any) -> None:
    return None


def test_options_validation_that_raises_is_a_policy_error() -> None:
    with pytest.raises(ge.PolicyError) as info:
        _policy(_custom("odd_options", options={"x": 1}))
    problems = info.value.problems or (info.value,)
    assert any(p.field == "checks[0].options" for p in problems), [str(p) for p in problems]


# -- a hang that no deadline can interrupt: in a child ---------------------------------------------

_STUBBORN = """
import sys, anyio, time
import guardrails_engine as ge
from guardrails_engine.checks import unit_check

@unit_check
async def stubborn(s):
    if "hang" in s:
        for _ in range(30):
            try:
                await anyio.sleep(0.1)
            except anyio.get_cancelled_exc_class():
                pass

sys.modules["stubmod"] = sys.modules[__name__]
policy = ge.Policy.from_yaml(
    "version: 1\\nname: t\\nblock_message: '[blocked]'\\nchecks:\\n"
    "  - {id: c, type: custom, function: 'stubmod:stubborn', timeout_ms: 100}\\n",
    trusted_modules=["stubmod"],
)
t0 = time.perf_counter()
result = policy.validate_sync("Fine. Now hang here. More.")
print(result.decision, result.reasons, round(time.perf_counter() - t0, 1))
"""


def test_a_check_that_ignores_cancellation_still_fails_by_on_error() -> None:
    out = run_limited(_STUBBORN, seconds=60)
    assert out.startswith("block ('c: check timed out after 100 ms, blocked',)"), out
