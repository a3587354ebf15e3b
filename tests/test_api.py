"""The public surface: names, value types, errors, sharing one policy, offsets and reasons."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pydantic
import pytest
from _policies import PATTERN_ENTITIES, make_policy

import guardrails_engine as ge
from guardrails_engine import checks as ge_checks
from guardrails_engine._policy import policy as _policy

PII_TEXT = (
    "Write to jdoe@example.com or call +1 415 555 0132. Card 4111 1111 1111 1111, "
    "SSN 536-22-1234, server 10.1.2.3, IBAN GB82 WEST 1234 5698 7654 32. Bye."
)
PII_VALUES = {
    "EMAIL_ADDRESS": "jdoe@example.com",
    "PHONE_NUMBER": "+1 415 555 0132",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "US_SSN": "536-22-1234",
    "IP_ADDRESS": "10.1.2.3",
    "IBAN_CODE": "GB82 WEST 1234 5698 7654 32",
}
SECRET = "sk-" + "a1B2c3D4e5" * 3


# -- names ---------------------------------------------------------------------------


def test_all_is_sorted_and_complete() -> None:
    assert ge.__all__ == sorted(ge.__all__)
    assert len(set(ge.__all__)) == len(ge.__all__)
    public = {
        name
        for name in dir(ge)
        if not name.startswith("_") and not isinstance(getattr(ge, name), type(json))
    }
    assert public == set(ge.__all__)


@pytest.mark.parametrize("name", ge.__all__)
def test_public_names_exist_and_report_the_package(name: str) -> None:
    obj = getattr(ge, name)
    if isinstance(obj, type) or inspect.isfunction(obj):  # (not a type alias such as StreamEvent)
        assert obj.__module__ == "guardrails_engine"


@pytest.mark.parametrize(
    "module, name",
    [("guardrails_engine", n) for n in ge.__all__]
    + [("guardrails_engine.checks", n) for n in ge_checks.__all__],
)
def test_public_names_report_their_package_and_keep_their_type_hints(
    module: str, name: str
) -> None:
    obj = getattr(importlib.import_module(module), name)
    if isinstance(obj, type) or inspect.isfunction(obj):
        assert obj.__module__ == module
    if isinstance(obj, type):
        typing.get_type_hints(obj)  # annotations resolve where they were written


def test_issue_names_exist() -> None:
    for name in ("load_policy", "Policy", "Decision", "Finding", "Result", "PolicyError"):
        assert name in ge.__all__
    assert callable(ge.Policy.from_yaml)
    for method in ("validate", "validate_sync", "stream", "stream_sync"):
        assert callable(getattr(ge.Policy, method))


# -- values --------------------------------------------------------------------------


def test_decision_is_a_str_enum() -> None:
    assert issubclass(ge.Decision, str)
    assert issubclass(ge.Decision, enum.Enum)
    assert [d.value for d in ge.Decision] == ["pass", "repair", "block"]
    assert ge.Decision("block") is ge.Decision.BLOCK
    assert {"pass": 1}[ge.Decision.PASS] == 1  # equal to, and hashed like, its str value
    assert str(ge.Decision.REPAIR) == "repair"
    assert f"{ge.Decision.BLOCK}" == "block"
    assert json.dumps({"d": ge.Decision.PASS}) == '{"d": "pass"}'
    with pytest.raises(ValueError):
        ge.Decision("allow")


def test_action_is_a_str_enum() -> None:
    assert issubclass(ge.Action, str)
    assert {a.value for a in ge.Action} == {"repair", "block", "flag"}
    assert str(ge.Action.FLAG) == "flag"


def test_result_reasons_follow_findings(support_policy: ge.Policy) -> None:
    text = "Mail jdoe@example.com or ann@example.org, thanks"
    result = support_policy.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    assert result.text == "Mail <EMAIL_ADDRESS> or <EMAIL_ADDRESS>, thanks"
    assert result.reasons == tuple(f.reason for f in result.findings)
    assert result.reasons == (
        "pii: EMAIL_ADDRESS at 5-21, masked",
        "pii: EMAIL_ADDRESS at 25-40, masked",
    )
    assert not result.blocked


def test_result_and_finding_are_frozen(support_policy: ge.Policy) -> None:
    result = support_policy.validate_sync("mail jdoe@example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.findings[0].start = 0  # type: ignore[misc]
    assert isinstance(result.findings, tuple)


def test_result_to_dict_is_json(support_policy: ge.Policy) -> None:
    result = support_policy.validate_sync("mail jdoe@example.com")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["decision"] == "repair"
    assert data["text"] == "mail <EMAIL_ADDRESS>"
    assert data["reasons"] == ["pii: EMAIL_ADDRESS at 5-21, masked"]
    assert data["findings"][0]["check_id"] == "pii"
    assert data["findings"][0]["entity_type"] == "EMAIL_ADDRESS"
    assert (data["findings"][0]["start"], data["findings"][0]["end"]) == (5, 21)


# -- errors ---------------------------------------------------------------------------


def test_error_hierarchy() -> None:
    assert issubclass(ge.PolicyError, ValueError)
    assert issubclass(ge.PolicyError, ge.GuardrailsError)
    assert issubclass(ge.StreamStateError, ge.GuardrailsError)
    assert issubclass(ge.GuardrailsError, Exception)
    assert not issubclass(ge.GuardrailsError, ValueError)
    with pytest.raises(ValueError):
        ge.Policy.from_yaml("version: 1\n")


def test_a_block_is_a_value_not_an_exception(support_policy: ge.Policy) -> None:
    result = support_policy.validate_sync(f"your key is {SECRET} enjoy")
    assert isinstance(result, ge.Result)
    assert result.decision is ge.Decision.BLOCK
    assert result.blocked
    assert result.text == support_policy.block_message == "Sorry, I can't share that."
    assert [f.check_id for f in result.findings] == ["secrets"]
    assert result.findings[0].action is ge.Action.BLOCK


def test_policy_attributes_are_read_only(support_policy: ge.Policy) -> None:
    assert support_policy.name == "support-chat"
    with pytest.raises(AttributeError):
        support_policy.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        support_policy.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(pydantic.ValidationError):  # the spec is a frozen pydantic model
        support_policy.spec.name = "other"
    assert support_policy.name == "support-chat"


# -- validate and validate_sync ---------------------------------------------------------

LONG_TEXT = (
    "Plain words about an order that shipped on time and arrived in one piece. " * 230
    + "Reach me at jdoe@example.com. "
    + "More plain words. " * 40
    + "Card 4111 1111 1111 1111."
)
TEXTS = [
    "",
    "Hello, how can I help?",
    "mail me at jdoe@example.com please",
    f"here it is: {SECRET} and more",
    "call +1 415 555 0132 or write to ann@example.org",
    "this is INTERNAL use   only, sorry",
    PII_TEXT,
    "word " * 450,  # over the 2000-character limit: truncated
    LONG_TEXT,  # validated in a worker thread; truncated too
]


@pytest.mark.anyio
@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
async def test_validate_equals_validate_sync(support_policy: ge.Policy, text: str) -> None:
    assert await support_policy.validate(text) == support_policy.validate_sync(text)


def test_long_text_is_over_the_thread_threshold() -> None:
    assert len(LONG_TEXT) >= _policy.THREAD_THRESHOLD


def test_validate_sync_decisions(support_policy: ge.Policy) -> None:
    decisions = [support_policy.validate_sync(t).decision for t in TEXTS]
    assert decisions == [
        ge.Decision.PASS,
        ge.Decision.PASS,
        ge.Decision.REPAIR,
        ge.Decision.BLOCK,
        ge.Decision.REPAIR,
        ge.Decision.BLOCK,
        ge.Decision.REPAIR,
        ge.Decision.REPAIR,
        ge.Decision.REPAIR,
    ]


def test_long_text_validate_on_asyncio_then_trio(support_policy: ge.Policy) -> None:
    """Worker threads are limited per event loop: one process may run both backends."""
    expected = support_policy.validate_sync(LONG_TEXT)

    async def check() -> None:
        assert await support_policy.validate(LONG_TEXT) == expected

    anyio.run(check, backend="asyncio")
    anyio.run(check, backend="trio")
    anyio.run(check, backend="asyncio")


# -- one policy, many concurrent runs -----------------------------------------------------


async def _chunks(text: str, size: int) -> AsyncIterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]
        await anyio.lowlevel.checkpoint()  # let the other runs interleave


@pytest.mark.anyio
async def test_one_policy_shared_by_concurrent_runs(support_policy: ge.Policy) -> None:
    texts = [t for t in TEXTS if t] * 2
    expected = [support_policy.validate_sync(t) for t in texts]
    validated: list[ge.Result | None] = [None] * len(texts)
    streamed: list[tuple[str, ge.Result | None] | None] = [None] * len(texts)

    async def validate(i: int) -> None:
        validated[i] = await support_policy.validate(texts[i])

    async def stream(i: int) -> None:
        pieces = []
        async with support_policy.stream(_chunks(texts[i], 3 + i % 5)) as s:
            async for piece in s:
                pieces.append(piece)
        streamed[i] = ("".join(pieces), s.result)

    async with anyio.create_task_group() as tg:
        for i in range(len(texts)):
            tg.start_soon(validate, i)
            tg.start_soon(stream, i)

    assert validated == expected
    for (joined, result), want in zip(streamed, expected, strict=True):  # type: ignore[misc]
        assert result == want
        if want.decision is not ge.Decision.BLOCK:
            assert joined == want.text


def test_one_policy_shared_by_threads(support_policy: ge.Policy) -> None:
    # A threaded server calls the sync API of one policy from many threads at once.
    from _threads import from_threads

    texts = [t for t in TEXTS if t] * 4
    expected = [support_policy.validate_sync(t) for t in texts]
    done = from_threads(support_policy, texts)
    for (validated, joined, result), want in zip(done, expected, strict=True):
        assert validated == want
        assert result == want
        if want.decision is not ge.Decision.BLOCK:
            assert joined == want.text


def test_streams_of_one_policy_do_not_share_state(support_policy: ge.Policy) -> None:
    a = support_policy.stream_sync(iter(["mail me at jdoe@exa", "mple.com now"]))
    b = support_policy.stream_sync(iter(["nothing to see ", "here"]))
    # Interleave the two streams piece by piece.
    out_a: list[str] = []
    out_b: list[str] = []
    for _ in range(4):
        out_a.extend(next(a, ""))
        out_b.extend(next(b, ""))
    out_a.extend(a)
    out_b.extend(b)
    assert "".join(out_a) == "mail me at <EMAIL_ADDRESS> now"
    assert "".join(out_b) == "nothing to see here"
    assert a.result is not None and a.result.decision is ge.Decision.REPAIR
    assert b.result is not None and b.result.decision is ge.Decision.PASS


def test_stream_result_is_none_until_the_end(support_policy: ge.Policy) -> None:
    def source() -> Iterator[str]:
        yield "first part. "
        yield "second part."

    stream = support_policy.stream_sync(source())
    assert stream.result is None
    first = next(stream)
    assert first == "first part. "
    assert stream.result is None
    rest = list(stream)
    assert first + "".join(rest) == "first part. second part."
    assert stream.result == support_policy.validate_sync("first part. second part.")


# -- offsets and reasons ---------------------------------------------------------------


def test_offsets_point_into_the_input(support_policy: ge.Policy) -> None:
    result = support_policy.validate_sync(PII_TEXT)
    assert result.decision is ge.Decision.REPAIR
    found = {f.entity_type: PII_TEXT[f.start : f.end] for f in result.findings}
    assert found == PII_VALUES


def test_offsets_count_code_points() -> None:
    policy = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n  - id: words\n    type: content\n"
        "    terms: [secret plan]\n    action: flag\n"
    )
    text = "😀 café — naïve\r\n🎉 the SECRET   plan is out"
    result = policy.validate_sync(text)
    (finding,) = result.findings
    assert text[finding.start : finding.end] == "SECRET   plan"
    assert result.decision is ge.Decision.PASS  # a flag changes nothing
    assert result.text == text


def test_offsets_in_a_long_stream_point_into_the_input() -> None:
    # No length limit here: the PII sits past the first 16k characters.
    policy = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n  - id: pii\n    type: pii\n"
        "    entities: [EMAIL_ADDRESS, CREDIT_CARD]\n"
    )
    chunks = [LONG_TEXT[i : i + 5] for i in range(0, len(LONG_TEXT), 5)]
    stream = policy.stream_sync(chunks)
    released = "".join(stream)
    result = stream.result
    assert result is not None
    assert {(f.entity_type, LONG_TEXT[f.start : f.end]) for f in result.findings} == {
        ("EMAIL_ADDRESS", "jdoe@example.com"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
    }
    assert LONG_TEXT.index("jdoe@example.com") > _policy.THREAD_THRESHOLD
    assert result == policy.validate_sync(LONG_TEXT)
    assert released == result.text
    assert result.text.endswith(
        "Reach me at <EMAIL_ADDRESS>. " + "More plain words. " * 40 + "Card <CREDIT_CARD>."
    )


def test_reasons_and_findings_never_contain_pii(support_policy: ge.Policy) -> None:
    result = support_policy.validate_sync(PII_TEXT)
    dumped = json.dumps(result.to_dict())
    for value in PII_VALUES.values():
        assert not any(value in reason for reason in result.reasons)
        assert value not in dumped
        for finding in result.findings:
            assert all(value not in str(v) for v in dataclasses.astuple(finding))


@pytest.mark.parametrize("action", ["block", "flag"])
def test_reasons_never_contain_pii_for_blocks_and_flags(action: str) -> None:
    policy = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n  - id: pii\n    type: pii\n"
        f"    entities: [EMAIL_ADDRESS, CREDIT_CARD]\n    action: {action}\n"
    )
    text = "mail jdoe@example.com, card 4111 1111 1111 1111"
    result = policy.validate_sync(text)
    assert result.findings
    for finding in result.findings:
        value = text[finding.start : finding.end]
        assert value in ("jdoe@example.com", "4111 1111 1111 1111")
        assert value not in finding.reason
        assert all(value not in str(v) for v in dataclasses.astuple(finding))


def test_schema_reason_never_contains_pii_from_json_keys() -> None:
    policy = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n"
        "  - id: pii\n    type: pii\n    entities: [EMAIL_ADDRESS]\n"
        "  - id: json\n    type: schema\n"
        "    schema: {type: object, additionalProperties: {type: string}}\n"
    )
    result = policy.validate_sync('{"jdoe@example.com": 5}')
    assert result.decision is ge.Decision.BLOCK
    assert result.reasons
    assert not any("jdoe@example.com" in reason for reason in result.reasons)


# -- the other public modules ------------------------------------------------------------


def test_the_check_api_names() -> None:
    import guardrails_engine.checks as checks

    assert checks.__all__ == sorted(checks.__all__)
    assert set(checks.__all__) == {
        "Check",
        "CheckConfig",
        "Found",
        "Hit",
        "MalformedFinding",
        "RunContext",
        "Session",
        "UnitCheck",
        "unit_check",
    }
    public = {n for n in dir(checks) if not n.startswith("_") and n not in ("annotations",)}
    assert public - set(checks.__all__) == set()
    # Built-in checks are checks of the public API.
    policy = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n"
        "  - {id: p, type: pii, entities: [EMAIL_ADDRESS]}\n"
        "  - {id: c, type: content, terms: [x]}\n"
        "  - {id: s, type: schema, schema: {type: object}}\n"
        "  - {id: n, type: length, max_chars: 10}\n"
    )
    for check in policy.checks:
        assert isinstance(check, checks.Check)
        assert isinstance(check.session(), checks.Session)


def test_the_testing_helper_names() -> None:
    import guardrails_engine.testing as testing

    assert testing.__all__ == [
        "assert_stream_matches",
        "check_chunkings",
        "chunkings",
        "safe_prefix",
    ]
    for name in testing.__all__:
        assert callable(getattr(testing, name))


def test_the_adapter_module_names() -> None:
    import guardrails_engine.anthropic as ge_anthropic
    import guardrails_engine.openai as ge_openai

    expected = ["GuardedStream", "SyncGuardedStream", "guard", "guard_reply"]
    expected += ["guard_reply_sync", "guard_sync"]
    # both providers take the same keyword arguments, refusals= included
    assert ge_anthropic.__all__ == sorted([*expected, "Refusals"])
    assert ge_openai.__all__ == sorted([*expected, "Refusals"])
    for module in (ge_openai, ge_anthropic):
        for name in module.__all__:
            assert getattr(module, name) is not None


@pytest.mark.anyio
async def test_async_validate_of_a_short_hostile_text_leaves_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Hostile text costs up to ~0.2 ms a character: from THREAD_THRESHOLD characters
    # on, async validate runs in a worker thread; shorter texts are checked inline.
    import anyio.to_thread

    real = anyio.to_thread.run_sync
    hops: list[int] = []

    async def spy(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(len(args[0]) if args and isinstance(args[0], str) else -1)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", spy)
    short = ("12 " * 100)[: _policy.THREAD_THRESHOLD - 1]
    long = ("12 " * 100)[: _policy.THREAD_THRESHOLD]
    policy = make_policy([{"id": "pii", "type": "pii", "entities": list(PATTERN_ENTITIES)}])
    assert await policy.validate(short) == policy.validate_sync(short)
    assert hops == []
    assert await policy.validate(long) == policy.validate_sync(long)
    assert hops == [len(long)]
    assert _policy.THREAD_THRESHOLD <= 128
