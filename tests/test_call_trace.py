"""Call traces: a CallRecorder driven directly, as the adapters will drive it.

One record per guarded call, with the request, the upstream's first chunk, the first
released piece, tokens, finish reasons, response id and model, every run's trace, and
one attempt per upstream tried.  A record goes to each sink once; a run inside a call
is part of the call's record, not a record of its own.  Content is kept only on
request, and then only after the policy's pii and content checks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import guardrails_engine as ge

EMAIL = "jdoe@example.com"
CARD = "4111 1111 1111 1111"
SECRET = "sk-" + "a1B2c3D4e5" * 3
# fragments that a timing (0.4111 ms) cannot contain by chance
PLANTED = (EMAIL, CARD, SECRET, "jdoe@", "4111 1111", "1111 1111")


class Sink:
    """A trace sink that keeps what it receives."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    def __call__(self, record: Any) -> None:
        self.got.append(record)

    @property
    def calls(self) -> list[ge.CallTrace]:
        return [r for r in self.got if isinstance(r, ge.CallTrace)]


def _drive(
    rec: ge.CallRecorder,
    policy: ge.Policy,
    chunks: list[str],
    *,
    part: str = "choice",
    index: int = 0,
    name: str | None = None,
) -> str:
    """Feed ``chunks`` through one push run of ``policy`` hooked to ``rec``; the released text."""
    push = policy.push_sync(trace_id=rec.trace_id, on_trace=rec.run(part, index, name))
    out = []
    for chunk in chunks:
        rec.upstream_chunk()
        piece = push.feed(chunk)
        if piece:
            rec.released(piece)
            out.append(piece)
    piece = push.finish()
    if piece:
        rec.released(piece)
        out.append(piece)
    if push.blocked is not None:
        rec.released(push.blocked.message)
        out.append(push.blocked.message)
    return "".join(out)


def _call(
    policy: ge.Policy, texts: list[list[str]], sink: Sink | None = None, **kwargs: Any
) -> ge.CallTrace:
    rec = ge.CallRecorder(
        policy,
        provider="openai",
        request_model="gpt-test",
        parameters={"temperature": 0.3, "max_tokens": 64, "messages": [{"content": EMAIL}]},
        on_trace=sink,
        **kwargs,
    )
    rec.prompt(f"My card is {CARD}, mail {EMAIL}")
    rec.response(id="chatcmpl-1", model="gpt-test-2025")
    for i, chunks in enumerate(texts):
        _drive(rec, policy, chunks, index=i)
        rec.finish_reason("stop")
    rec.usage(input_tokens=12, output_tokens=7)
    return rec.finish()


def test_a_call_record_has_the_request_the_timings_the_tokens_and_the_decisions(
    support_policy: ge.Policy,
) -> None:
    sink = Sink()
    record = _call(support_policy, [["Write to ", "jdoe@exa", "mple.com today"], ["Fine."]], sink)
    assert sink.got == [record]
    assert record.operation == "chat" and record.streamed
    assert record.provider == "openai"
    assert record.request_model == "gpt-test"
    assert record.response_model == "gpt-test-2025"
    assert record.response_id == "chatcmpl-1"
    assert record.parameters == {"temperature": 0.3, "max_tokens": 64}  # never the messages
    assert record.finish_reasons == ("stop", "stop")
    assert (record.input_tokens, record.output_tokens) == (12, 7)
    assert record.upstream_first_ms is not None and record.first_out_ms is not None
    assert 0 <= record.upstream_first_ms <= record.first_out_ms <= record.duration_ms
    assert record.last.chunks == 4
    assert [(r.part, r.index, r.trace.decision) for r in record.runs] == [
        ("choice", 0, "repair"),
        ("choice", 1, "pass"),
    ]
    assert all(r.trace.trace_id == record.trace_id for r in record.runs)
    assert [f["check_id"] for f in record.runs[0].trace.findings] == ["pii"]
    assert (record.decision, record.ending) == ("repair", "completed")
    assert record.policy == support_policy.name
    assert record.policy_hash == support_policy.content_hash
    assert record.prompt is None and record.output is None
    data = json.dumps(record.to_dict())
    assert not any(v in data for v in PLANTED)


def test_a_block_in_one_run_blocks_the_call(support_policy: ge.Policy) -> None:
    record = _call(support_policy, [["All good."], ["the key is ", SECRET, " ok"]])
    assert [r.trace.decision for r in record.runs] == ["pass", "block"]
    assert (record.decision, record.ending) == ("block", "blocked")
    blocked = record.runs[1].trace.findings
    assert [(f["check_id"], f["action"]) for f in blocked] == [("secrets", "block")]
    assert SECRET not in json.dumps(record.to_dict())


def test_tool_calls_and_content_blocks_are_runs_of_their_own(support_policy: ge.Policy) -> None:
    rec = ge.CallRecorder(support_policy, provider="anthropic", request_model="claude-test")
    _drive(rec, support_policy, ["Hello"], part="content_block", index=0)
    _drive(rec, support_policy, [f'{{"to": "{EMAIL}"}}'], part="tool_call", index=1, name="send")
    record = rec.finish()
    assert [(r.part, r.index, r.name) for r in record.runs] == [
        ("content_block", 0, None),
        ("tool_call", 1, "send"),
    ]
    assert record.provider == "anthropic"
    assert record.runs[1].to_dict()["name"] == "send"


def test_each_sink_gets_the_call_once_and_runs_are_not_records_of_their_own(
    policies_dir: Any,
) -> None:
    sink = Sink()
    policy = ge.load_policy(policies_dir / "support-chat.yaml", on_trace=sink)
    record = _call(policy, [["one"], ["two"]], sink)  # the same sink twice
    assert sink.got == [record]
    other = Sink()
    record2 = _call(policy, [["three"]], other)
    assert sink.got == [record, record2] and other.got == [record2]
    policy.validate_sync("a run on its own")
    assert isinstance(sink.got[-1], ge.Trace) and len(sink.got) == 3


def test_attempts_keep_each_upstream_and_the_call_reports_the_last(
    support_policy: ge.Policy,
) -> None:
    rec = ge.CallRecorder(support_policy, provider="openai", request_model="primary")
    rec.upstream_chunk()
    rec.usage(input_tokens=5)
    rec.attempt(provider="anthropic", request_model="fallback", error=TimeoutError())
    rec.response(id="msg_1", model="fallback-1")
    _drive(rec, support_policy, ["Hello there"])
    rec.usage(input_tokens=6, output_tokens=3)
    rec.finish_reason("end_turn")
    record = rec.finish()
    first, second = record.attempts
    assert (first.provider, first.request_model, first.error, first.runs) == (
        "openai",
        "primary",
        "TimeoutError",
        (),
    )
    assert (second.provider, second.request_model, second.response_id) == (
        "anthropic",
        "fallback",
        "msg_1",
    )
    assert (record.provider, record.request_model, record.response_model) == (
        "anthropic",
        "fallback",
        "fallback-1",
    )
    assert (record.input_tokens, record.output_tokens) == (11, 3)
    assert record.finish_reasons == ("end_turn",)
    assert record.decision == "pass"
    assert record.upstream_first_ms is not None
    assert record.upstream_first_ms >= first.duration_ms


def test_finish_is_once_and_late_runs_are_not_added(support_policy: ge.Policy) -> None:
    sink = Sink()
    rec = ge.CallRecorder(support_policy, provider="openai", on_trace=sink)
    hook = rec.run("choice", 0)
    push = support_policy.push_sync(on_trace=hook)
    push.feed("still going")
    record = rec.finish(ending="closed")
    push.close()  # its trace comes after the call ended
    assert rec.finish() is record and rec.record is record
    assert sink.got == [record]
    assert record.runs == () and record.ending == "closed"
    assert record.decision == "pass"  # no run ended inside the call


def test_a_run_that_did_not_end_leaves_no_decision(support_policy: ge.Policy) -> None:
    rec = ge.CallRecorder(support_policy, provider="openai")
    push = support_policy.push_sync(on_trace=rec.run("choice", 0))
    push.feed("half a")
    push.close()
    record = rec.finish(ending="cancelled")
    assert (record.runs[0].trace.decision, record.runs[0].trace.ending) == (None, "cancelled")
    assert (record.decision, record.ending) == (None, "cancelled")


def test_an_error_is_kept_by_its_type_only(support_policy: ge.Policy) -> None:
    record = ge.CallRecorder(support_policy, provider="openai").finish(
        error=RuntimeError(f"upstream said {EMAIL}")
    )
    assert (record.ending, record.error, record.last.error) == (
        "error",
        "RuntimeError",
        "RuntimeError",
    )
    assert EMAIL not in json.dumps(record.to_dict())


def test_a_sink_that_raises_does_not_break_the_call(
    support_policy: ge.Policy, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(record: Any) -> None:
        raise ValueError(EMAIL)

    with caplog.at_level(logging.WARNING, logger="guardrails_engine"):
        record = _call(support_policy, [["hi"]], broken)  # type: ignore[arg-type]
    assert record.decision == "pass"
    assert "trace callback raised ValueError" in caplog.text
    assert EMAIL not in caplog.text


@pytest.fixture
def info_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="guardrails_engine"):
        yield caplog


def test_the_logger_writes_one_line_per_call(
    support_policy: ge.Policy, info_log: pytest.LogCaptureFixture
) -> None:
    record = _call(support_policy, [["mail ", EMAIL], ["x"]])
    lines = [json.loads(r.getMessage()) for r in info_log.records if r.levelno == logging.INFO]
    assert lines == [json.loads(json.dumps(record.to_dict()))]
    assert not any(v in info_log.text for v in PLANTED)


@pytest.mark.parametrize("capture", [False, True])
def test_planted_values_never_appear_with_or_without_capture(
    support_policy: ge.Policy, info_log: pytest.LogCaptureFixture, capture: bool
) -> None:
    record = _call(
        support_policy,
        [["card ", CARD, " mail ", EMAIL], ["key ", SECRET]],
        capture_content=capture,
    )
    text = json.dumps(record.to_dict())
    assert not any(v in text for v in PLANTED)
    assert not any(v in info_log.text for v in PLANTED)
    if capture:
        assert record.prompt == "My card is <CREDIT_CARD>, mail <EMAIL_ADDRESS>"
        # what was released: choice 0 repaired, choice 1 blocked (its message)
        assert record.output == "card <CREDIT_CARD> mail <EMAIL_ADDRESS>" + (
            support_policy.block_message
        )
    else:
        assert record.prompt is None and record.output is None


def test_a_captured_prompt_that_the_content_check_blocks_is_withheld(
    support_policy: ge.Policy,
) -> None:
    rec = ge.CallRecorder(support_policy, provider="openai", capture_content=True)
    rec.prompt(f"here is the key {SECRET}")
    _drive(rec, support_policy, ["fine"])
    record = rec.finish()
    assert record.prompt == support_policy.block_message
    assert record.output == "fine"


def test_capture_screens_with_pii_and_content_checks_only(policies_dir: Any) -> None:
    # support-chat's length check (2,000 characters) does not cut what is kept
    policy = ge.load_policy(policies_dir / "support-chat.yaml")
    rec = ge.CallRecorder(policy, provider="openai", capture_content=True)
    long = "word " * 1000
    rec.prompt(long)
    record = rec.finish()
    assert record.prompt == long


def test_a_policy_without_pii_or_content_checks_keeps_no_content() -> None:
    policy = ge.Policy.from_yaml(
        "version: 1\nname: len\nchecks:\n  - {id: l, type: length, max_chars: 50, action: repair}\n"
    )
    rec = ge.CallRecorder(policy, provider="openai", capture_content=True)
    rec.prompt(EMAIL)
    rec.released(EMAIL)
    record = rec.finish()
    assert (record.prompt, record.output) == ("", "")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"policy": "policy.yaml", "provider": "openai"}, "policy must be a Policy, got str"),
        ({"provider": 3}, "provider must be a str, got int"),
        ({"provider": "openai", "request_model": 4}, "request_model must be a str, got int"),
        ({"provider": "openai", "on_trace": "store"}, "on_trace must be callable, got str"),
    ],
)
def test_wrong_arguments_are_type_errors(
    support_policy: ge.Policy, kwargs: dict[str, Any], message: str
) -> None:
    policy = kwargs.pop("policy", support_policy)
    with pytest.raises(TypeError, match=message):
        ge.CallRecorder(policy, **kwargs)


def test_a_hostile_request_cannot_make_a_record_big(support_policy: ge.Policy) -> None:
    huge = "m" * 100_000
    params: dict[Any, Any] = {f"p{i}": i for i in range(1000)}
    params[3] = "a key that is not a string"
    params["k" * 1000] = 1
    rec = ge.CallRecorder(support_policy, provider=huge, request_model=huge, parameters=params)
    rec.response(id=huge, model=huge)
    for _ in range(1000):
        rec.finish_reason(huge)
    record = rec.finish()
    assert len(record.parameters) == 64 and all(isinstance(k, str) for k in record.parameters)
    assert all(len(k) <= 200 for k in record.parameters)
    assert len(record.finish_reasons) == 64
    for name in (record.provider, record.request_model, record.response_model, record.response_id):
        assert name == "m" * 256
    assert len(json.dumps(record.to_dict())) < 40_000


def test_capture_cuts_after_the_checks_so_no_value_is_split(support_policy: ge.Policy) -> None:
    from guardrails_engine._observe.calls import MAX_CAPTURE_CHARS, MAX_SCREEN_CHARS

    # the card straddles the cut: cut first, a part of it would pass the checks
    prompt = "x" * (MAX_CAPTURE_CHARS - 9) + " " + CARD + " done"
    rec = ge.CallRecorder(support_policy, provider="openai", capture_content=True)
    rec.prompt(prompt)
    rec.released("y" * (MAX_SCREEN_CHARS + 1))  # too long to screen: nothing kept
    record = rec.finish()
    assert record.prompt is not None and len(record.prompt) == MAX_CAPTURE_CHARS
    assert "4111" not in record.prompt and "1111" not in record.prompt
    assert record.output == ""
