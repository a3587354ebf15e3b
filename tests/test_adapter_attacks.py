"""Attacks on the provider adapters: raw text through side fields, names that change,
pieces split across choices, closing, cancellation, privacy of what is reported.

Upstreams here are the SDKs' own types (built with ``model_validate`` from the wire
format) handed to the guards as plain (async) iterables that record being closed; a
few tests use the real SDK clients against the fake servers.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import logging
from typing import Any

import anyio
import pytest
from anthropic.types import RawMessageStreamEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

import guardrails_engine as ge
from guardrails_engine import anthropic as ge_anthropic
from guardrails_engine import openai as ge_openai
from guardrails_engine.checks import Found, unit_check

EMAIL = "jdoe@example.com"
MESSAGE = "BLOCKED-MSG"
POLICY_YAML = f"""
version: 1
name: attacks
block_message: "{MESSAGE}"
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
tools:
  send_note:
    checks:
      - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
  strict:
    checks:
      - id: args
        type: schema
        schema: {{type: object, properties: {{n: {{type: integer}}}}, required: [n]}}
unknown_tools: pass
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def policy() -> ge.Policy:
    return ge.Policy.from_yaml(POLICY_YAML)


def leaked(objects: list[Any], value: str = EMAIL) -> bool:
    """Whether ``value`` (or its bytes) shows anywhere in what came out."""
    dumped = json.dumps([o.model_dump(mode="json") for o in objects])
    return value in dumped or str(list(value.encode())).strip("[]") in dumped


# -- building SDK objects -------------------------------------------------------------------
def chunk(choices: list[dict[str, Any]], **extra: Any) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": choices,
            **extra,
        }
    )


def choice(
    index: int,
    delta: dict[str, Any],
    finish: str | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": logprobs}


def text_chunks(pieces: list[str], index: int = 0) -> list[ChatCompletionChunk]:
    return (
        [chunk([choice(index, {"role": "assistant", "content": ""})])]
        + [chunk([choice(index, {"content": p})]) for p in pieces]
        + [chunk([choice(index, {}, "stop")])]
    )


def content_of(chunks: list[ChatCompletionChunk], index: int = 0) -> str:
    return "".join(c.delta.content or "" for ch in chunks for c in ch.choices if c.index == index)


_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
_RAW: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
RESPONSE = {
    "id": "r1",
    "object": "response",
    "created_at": 1,
    "model": "m",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "status": "in_progress",
}
MSG = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "c",
    "content": [],
    "stop_reason": None,
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}


def rev(d: dict[str, Any]) -> Any:
    return _EVENTS.validate_python({"sequence_number": 0, **d})


def aev(d: dict[str, Any]) -> Any:
    return _RAW.validate_python(d)


def responses_text(pieces: list[str]) -> list[Any]:
    """A message item streamed as these deltas, with the full text in every done event."""
    full = "".join(pieces)
    part = {"type": "output_text", "text": full, "annotations": []}
    item = {
        "id": "m1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [part],
    }
    ids = {"output_index": 0, "content_index": 0, "item_id": "m1"}
    return [
        rev({"type": "response.created", "response": RESPONSE}),
        rev(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            }
        ),
        rev(
            {
                "type": "response.content_part.added",
                **ids,
                "part": {"type": "output_text", "text": "", "annotations": []},
            }
        ),
        *(
            rev({"type": "response.output_text.delta", **ids, "delta": p, "logprobs": []})
            for p in pieces
        ),
        rev({"type": "response.output_text.done", **ids, "text": full, "logprobs": []}),
        rev({"type": "response.content_part.done", **ids, "part": part}),
        rev({"type": "response.output_item.done", "output_index": 0, "item": item}),
        rev(
            {
                "type": "response.completed",
                "response": {**RESPONSE, "status": "completed", "output": [item]},
            }
        ),
    ]


class AsyncUp:
    """An async upstream that records being closed (and can raise or hang)."""

    def __init__(
        self, items: list[Any], *, fail_at: int | None = None, hang_at: int | None = None
    ) -> None:
        self.items = list(items)
        self.n = 0
        self.fail_at = fail_at
        self.hang_at = hang_at
        self.closed = False

    def __aiter__(self) -> AsyncUp:
        return self

    async def __anext__(self) -> Any:
        if self.n == self.fail_at:
            raise ConnectionError("upstream went away")
        if self.n == self.hang_at:
            await anyio.sleep(5)  # (bounded: a test that fails does not hang)
        if self.n >= len(self.items):
            raise StopAsyncIteration
        self.n += 1
        return self.items[self.n - 1]

    async def aclose(self) -> None:
        self.closed = True


class SyncUp:
    def __init__(self, items: list[Any], *, fail_at: int | None = None) -> None:
        self.items = list(items)
        self.n = 0
        self.fail_at = fail_at
        self.closed = False

    def __iter__(self) -> SyncUp:
        return self

    def __next__(self) -> Any:
        if self.n == self.fail_at:
            raise ConnectionError("upstream went away")
        if self.n >= len(self.items):
            raise StopIteration
        self.n += 1
        return self.items[self.n - 1]

    def close(self) -> None:
        self.closed = True


async def collect(stream: Any) -> list[Any]:
    return [x async for x in stream]


# -- Chat: side fields ------------------------------------------------------------------------
def test_chat_logprobs_without_their_text_are_not_shown(policy: ge.Policy) -> None:
    # A chunk with no content but token logprobs that spell the address.
    lp = {
        "content": [
            {
                "token": EMAIL,
                "logprob": -0.1,
                "bytes": list(EMAIL.encode()),
                "top_logprobs": [{"token": EMAIL, "logprob": -0.2, "bytes": None}],
            }
        ],
        "refusal": [{"token": EMAIL, "logprob": -0.1, "bytes": None, "top_logprobs": []}],
    }
    up = [
        chunk([choice(0, {"role": "assistant", "content": ""}, logprobs=lp)]),
        chunk([choice(0, {"content": "ok"})]),
        chunk([choice(0, {}, "stop", logprobs=lp)]),
    ]
    out = list(ge_openai.guard_sync(policy, up))
    assert not leaked(out)
    assert content_of(out) == "ok"


def test_chat_logprobs_of_held_text_wait_and_repaired_ones_are_dropped(policy: ge.Policy) -> None:
    pieces = ["Mail ", "jdoe@ex", "ample.com", " now"]
    up = [
        chunk(
            [
                choice(
                    0,
                    {"content": p},
                    logprobs={
                        "content": [
                            {
                                "token": p,
                                "logprob": -1.0,
                                "bytes": list(p.encode()),
                                "top_logprobs": [],
                            }
                        ]
                    },
                )
            ]
        )
        for p in pieces
    ] + [chunk([choice(0, {}, "stop")])]
    out = list(ge_openai.guard_sync(policy, up))
    assert content_of(out) == policy.validate_sync("".join(pieces)).text
    assert not leaked(out, "jdoe@ex") and not leaked(out, "ample.com")


def test_chat_delta_after_finish_reason_is_not_shown(policy: ge.Policy) -> None:
    up = [
        *text_chunks(["hello"]),
        chunk([choice(0, {"content": EMAIL})]),
        chunk([choice(0, {}, "stop")]),
    ]
    out = list(ge_openai.guard_sync(policy, up))
    assert not leaked(out)
    assert content_of(out).startswith("hello")


def test_chat_pii_split_across_duplicate_indexes_of_one_chunk(policy: ge.Policy) -> None:
    up = [
        chunk([choice(0, {"content": "to jdoe@"}), choice(0, {"content": "example.com ok"})]),
        chunk([choice(0, {}, "stop")]),
    ]
    out = list(ge_openai.guard_sync(policy, up))
    assert not leaked(out, "jdoe@")
    assert content_of(out) == policy.validate_sync("to jdoe@example.com ok").text


def test_chat_n2_one_choice_blocks_the_other_keeps_nothing_held() -> None:
    blocking = ge.Policy.from_yaml(
        POLICY_YAML.replace("[EMAIL_ADDRESS]}\ntools", "[EMAIL_ADDRESS], action: block}\ntools")
    )
    assert blocking.validate_sync(EMAIL).blocked
    up = [
        chunk([choice(0, {"content": "one jdoe@"}), choice(1, {"content": "two jdoe@"})]),
        chunk([choice(1, {"content": "example.com"})]),
        chunk([choice(0, {"content": "example.com"})]),
    ]
    g = ge_openai.guard_sync(blocking, SyncUp(up))
    out = list(g)
    assert not leaked(out, "jdoe@")
    assert g.blocked is not None
    # (both are held to the end; the first choice's run is finished first and blocks)
    assert content_of(out, 0) == "one " + MESSAGE and content_of(out, 1) == "two "
    assert g._upstream.closed  # type: ignore[attr-defined]
    finishes = {c.index: c.finish_reason for ch in out for c in ch.choices if c.finish_reason}
    assert finishes == {0: "content_filter", 1: "content_filter"}


def test_chat_many_choices_and_calls_stay_bounded(policy: ge.Policy) -> None:
    n = 300
    up = [
        chunk([choice(i, {"content": f"c{i} jdoe@"}) for i in range(n)]),
        chunk([choice(i, {"content": "example.com"}, "stop") for i in range(n)]),
        chunk(
            [
                choice(
                    0,
                    {
                        "tool_calls": [
                            {
                                "index": k,
                                "id": f"t{k}",
                                "type": "function",
                                "function": {
                                    "name": "send_note",
                                    "arguments": f'{{"n": "{EMAIL}"}}',
                                },
                            }
                            for k in range(n)
                        ]
                    },
                )
            ]
        ),
        chunk([choice(0, {}, "tool_calls")]),
    ]
    out = list(ge_openai.guard_sync(policy, up))
    assert not leaked(out)
    assert all(content_of(out, i) == f"c{i} <EMAIL_ADDRESS>" for i in (0, n - 1))


# -- Chat: tool calls ------------------------------------------------------------------------
def _call(
    index: int, *, name: str | None = None, args: str | None = None, id: str | None = None
) -> dict[str, Any]:
    fn: dict[str, Any] = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    tc: dict[str, Any] = {"index": index, "function": fn}
    if id is not None:
        tc.update(id=id, type="function")
    return tc


@pytest.mark.parametrize("first", [None, "other"], ids=["late", "changed"])
def test_chat_tool_name_that_comes_late_or_changes_is_blocked(
    policy: ge.Policy, first: str | None
) -> None:
    # Arguments passed as a tool without a rule, then the name of a checked tool.
    up = [
        chunk([choice(0, {"tool_calls": [_call(0, id="t", name=first, args='{"n": "jdoe@')]})]),
        chunk([choice(0, {"tool_calls": [_call(0, name="send_note", args='example.com"}')]})]),
        chunk([choice(0, {}, "tool_calls")]),
    ]
    g = ge_openai.guard_sync(policy, SyncUp(up))
    out = list(g)
    # (a first piece under a name without a rule passes, as that name's rule says)
    assert not leaked(out, "example.com") and (first is not None or not leaked(out, "jdoe@"))
    assert g.blocked is not None
    assert [c.finish_reason for ch in out for c in ch.choices if c.finish_reason] == [
        "content_filter"
    ]
    assert g._upstream.closed  # type: ignore[attr-defined]


def test_chat_tool_without_a_name_passes_when_names_do_not_matter() -> None:
    lenient = ge.Policy.from_yaml(POLICY_YAML.split("tools:")[0])
    up = [
        chunk([choice(0, {"tool_calls": [_call(0, id="t", args='{"a": 1}')]})]),
        chunk([choice(0, {}, "tool_calls")]),
    ]
    out = list(ge_openai.guard_sync(lenient, up))
    args = "".join(
        tc.function.arguments or ""
        for ch in out
        for c in ch.choices
        for tc in c.delta.tool_calls or ()
        if tc.function
    )
    assert args == '{"a": 1}'


def test_chat_legacy_function_call_renamed_is_blocked(policy: ge.Policy) -> None:
    up = [
        chunk([choice(0, {"function_call": {"name": "other", "arguments": '{"n": "jdoe@'}})]),
        chunk([choice(0, {"function_call": {"name": "send_note", "arguments": 'example.com"}'}})]),
        chunk([choice(0, {}, "function_call")]),
    ]
    g = ge_openai.guard_sync(policy, up)
    out = list(g)
    assert not leaked(out, "example.com") and g.blocked is not None


def test_chat_arguments_in_the_finish_chunk_and_not_json(policy: ge.Policy) -> None:
    up = [
        chunk([choice(0, {"tool_calls": [_call(0, id="t", name="send_note", args="mail ")]})]),
        chunk([choice(0, {"tool_calls": [_call(0, args=EMAIL)]}, "tool_calls")]),
    ]
    out = list(ge_openai.guard_sync(policy, up))
    assert not leaked(out)
    args = "".join(
        tc.function.arguments or ""
        for ch in out
        for c in ch.choices
        for tc in c.delta.tool_calls or ()
        if tc.function
    )
    assert args == "mail <EMAIL_ADDRESS>"


def test_chat_schema_violation_in_a_second_call_blocks(policy: ge.Policy) -> None:
    up = [
        chunk(
            [
                choice(
                    0,
                    {
                        "tool_calls": [
                            _call(0, id="a", name="strict", args='{"n": 1}'),
                            _call(1, id="b", name="strict", args='{"n": "x"}'),
                        ]
                    },
                )
            ]
        ),
        chunk([choice(0, {}, "tool_calls")]),
    ]
    g = ge_openai.guard_sync(policy, up)
    out = list(g)
    assert g.blocked is not None
    assert not leaked(out, '"x"')


@pytest.mark.parametrize("refusals", ["guard", "pass"])
def test_chat_refusal_with_pii(policy: ge.Policy, refusals: Any) -> None:
    up = [
        chunk([choice(0, {"refusal": "no, jdoe@"})]),
        chunk([choice(0, {"refusal": "example.com"})]),
        chunk([choice(0, {}, "stop")]),
    ]
    out = list(ge_openai.guard_sync(policy, up, refusals=refusals))
    refusal = "".join(c.delta.refusal or "" for ch in out for c in ch.choices)
    if refusals == "guard":
        assert refusal == "no, <EMAIL_ADDRESS>"
    else:  # documented: passed as is
        assert refusal == "no, " + EMAIL


# -- Responses: side fields ------------------------------------------------------------------
def test_responses_every_done_field_carries_the_repaired_text(policy: ge.Policy) -> None:
    events = responses_text(["Write to jd", "oe@exa", "mple.com today"])
    out = list(ge_openai.guard_sync(policy, events))
    assert not leaked(out) and not leaked(out, "jdoe@")
    want = policy.validate_sync("Write to jdoe@example.com today").text
    done = {e.type: e for e in out}
    assert done["response.output_text.done"].text == want
    assert done["response.content_part.done"].part.text == want
    assert done["response.output_item.done"].item.content[0].text == want
    assert done["response.completed"].response.output[0].content[0].text == want
    assert [e.sequence_number for e in out] == list(range(len(out)))


def test_responses_prefilled_added_events_show_no_text(policy: ge.Policy) -> None:
    part = {"type": "output_text", "text": EMAIL, "annotations": []}
    item = {
        "id": "m1",
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [part],
    }
    events = [
        rev({"type": "response.created", "response": {**RESPONSE, "output": [item]}}),
        rev({"type": "response.output_item.added", "output_index": 0, "item": item}),
        rev(
            {
                "type": "response.content_part.added",
                "output_index": 0,
                "content_index": 0,
                "item_id": "m1",
                "part": part,
            }
        ),
        rev(
            {
                "type": "response.output_item.added",
                "output_index": 1,
                "item": {
                    "id": "fc1",
                    "type": "function_call",
                    "call_id": "c",
                    "name": "send_note",
                    "arguments": EMAIL,
                    "status": "in_progress",
                },
            }
        ),
        rev(
            {
                "type": "response.function_call_arguments.done",
                "output_index": 1,
                "item_id": "fc1",
                "arguments": EMAIL,
            }
        ),
    ]
    out = list(ge_openai.guard_sync(policy, events))
    assert out and not leaked(out)


def test_responses_arguments_of_an_unannounced_call_are_not_shown(policy: ge.Policy) -> None:
    ids = {"output_index": 3, "item_id": "fc9"}
    events = [
        rev({"type": "response.created", "response": RESPONSE}),
        rev({"type": "response.function_call_arguments.delta", **ids, "delta": EMAIL}),
        rev({"type": "response.function_call_arguments.done", **ids, "arguments": EMAIL}),
    ]
    out = list(ge_openai.guard_sync(policy, events))
    assert [e.type for e in out] == ["response.created"] and not leaked(out)


def test_anthropic_message_start_with_content_shows_none(policy: ge.Policy) -> None:
    events = [
        aev(
            {
                "type": "message_start",
                "message": {**MSG, "content": [{"type": "text", "text": EMAIL}]},
            }
        ),
        aev({"type": "message_stop"}),
    ]
    out = list(ge_anthropic.guard_sync(policy, events))
    assert out[0].type == "message_start" and out[0].message.content == []
    assert not leaked(out)


@pytest.mark.anyio
async def test_responses_upstream_raising_mid_part_releases_nothing_held(policy: ge.Policy) -> None:
    events = responses_text(["Write to jdoe@", "example.com"])
    up = AsyncUp(events, fail_at=4)  # after the first delta
    g = ge_openai.guard(policy, up)
    got: list[Any] = []
    with pytest.raises(ConnectionError):
        async for e in g:
            got.append(e)
    assert not leaked(got, "jdoe@") and up.closed


# -- Anthropic ---------------------------------------------------------------------------------
def _anthropic(blocks: list[dict[str, Any]], deltas: list[tuple[int, dict[str, Any]]]) -> list[Any]:
    return (
        [aev({"type": "message_start", "message": MSG})]
        + [
            aev({"type": "content_block_start", "index": i, "content_block": b})
            for i, b in enumerate(blocks)
        ]
        + [aev({"type": "content_block_delta", "index": i, "delta": d}) for i, d in deltas]
        + [aev({"type": "content_block_stop", "index": i}) for i in range(len(blocks))]
        + [
            aev(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 3},
                }
            ),
            aev({"type": "message_stop"}),
        ]
    )


def test_anthropic_foreign_deltas_show_no_unchecked_text(policy: ge.Policy) -> None:
    events = _anthropic(
        [
            {"type": "text", "text": ""},
            {"type": "tool_use", "id": "t", "name": "send_note", "input": {}},
        ],
        [
            (0, {"type": "input_json_delta", "partial_json": EMAIL}),
            (0, {"type": "thinking_delta", "thinking": EMAIL}),
            (1, {"type": "thinking_delta", "thinking": EMAIL}),
            (1, {"type": "text_delta", "text": EMAIL}),
            (9, {"type": "input_json_delta", "partial_json": EMAIL}),
            (0, {"type": "text_delta", "text": "fine"}),
        ],
    )
    out = list(ge_anthropic.guard_sync(policy, events))
    assert not leaked(out)
    assert out[-1].type == "message_stop"


def test_anthropic_prefilled_start_text_and_input_are_checked(policy: ge.Policy) -> None:
    events = _anthropic(
        [
            {"type": "text", "text": f"hi {EMAIL} "},
            {"type": "tool_use", "id": "t", "name": "send_note", "input": {"to": EMAIL}},
        ],
        [],
    )
    out = list(ge_anthropic.guard_sync(policy, events))
    assert not leaked(out)
    args = "".join(
        e.delta.partial_json
        for e in out
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )
    assert json.loads(args) == {"to": "<EMAIL_ADDRESS>"}


def test_anthropic_citations_show_no_unchecked_text(policy: ge.Policy) -> None:
    cite = {
        "type": "char_location",
        "cited_text": EMAIL,
        "document_index": 0,
        "document_title": None,
        "start_char_index": 0,
        "end_char_index": 3,
    }
    events = _anthropic(
        [{"type": "text", "text": "", "citations": [cite]}],
        [(0, {"type": "citations_delta", "citation": cite})],
    )
    out = list(ge_anthropic.guard_sync(policy, events))
    assert not leaked(out)
    # The citations stay, their quoted text repaired as any text is.
    quoted = [
        e.delta.citation.cited_text
        for e in out
        if e.type == "content_block_delta" and e.delta.type == "citations_delta"
    ]
    quoted += [
        c.cited_text
        for e in out
        if e.type == "content_block_start" and e.content_block.citations
        for c in e.content_block.citations
    ]
    assert quoted == ["<EMAIL_ADDRESS>", "<EMAIL_ADDRESS>"]


@pytest.mark.anyio
async def test_anthropic_dropped_async_stream_closes_its_upstream(policy: ge.Policy) -> None:
    events = _anthropic(
        [{"type": "text", "text": ""}], [(0, {"type": "text_delta", "text": "word "})] * 20
    )
    up = AsyncUp(events)
    async for _ in ge_anthropic.guard(policy, up):
        break  # no aclose, no async with
    gc.collect()
    for _ in range(20):
        await asyncio.sleep(0)
        if up.closed:
            break
    assert up.closed


@pytest.mark.anyio
async def test_openai_dropped_async_stream_closes_its_upstream(policy: ge.Policy) -> None:
    up = AsyncUp(text_chunks([f"w{i} " for i in range(20)]))
    async for _ in ge_openai.guard(policy, up):
        break
    gc.collect()
    for _ in range(20):
        await asyncio.sleep(0)
        if up.closed:
            break
    assert up.closed


@pytest.mark.anyio
@pytest.mark.parametrize("which", ["openai", "anthropic"])
async def test_cancellation_while_waiting_for_upstream_closes_it(
    policy: ge.Policy, which: str
) -> None:
    if which == "openai":
        up = AsyncUp(text_chunks(["to jdoe@", "example.com"]), hang_at=2)
        stream: Any = ge_openai.guard(policy, up)
    else:
        up = AsyncUp(
            _anthropic(
                [{"type": "text", "text": ""}],
                [(0, {"type": "text_delta", "text": "to jdoe@"})] * 3,
            ),
            hang_at=3,
        )
        stream = ge_anthropic.guard(policy, up)
    got: list[Any] = []
    with anyio.move_on_after(0.3):
        async for e in stream:
            got.append(e)
    assert up.closed and not leaked(got, "jdoe@")


@pytest.mark.parametrize("which", ["openai", "anthropic"])
def test_sync_upstream_error_releases_nothing_held(policy: ge.Policy, which: str) -> None:
    if which == "openai":
        up = SyncUp(text_chunks(["to jdoe@", "example.com"]), fail_at=2)
        stream: Any = ge_openai.guard_sync(policy, up)
    else:
        up = SyncUp(
            _anthropic(
                [{"type": "text", "text": ""}],
                [(0, {"type": "text_delta", "text": "to jdoe@"})] * 3,
            ),
            fail_at=3,
        )
        stream = ge_anthropic.guard_sync(policy, up)
    got: list[Any] = []
    with pytest.raises(ConnectionError):
        for e in stream:
            got.append(e)
    assert up.closed and not leaked(got, "jdoe@")


# -- async custom checks through sync and async adapters -------------------------------------
@unit_check(unit="sentence")
async def async_secret(sentence: str) -> Found | None:
    await asyncio.sleep(0)
    if "zebra" in sentence.lower():
        return Found(label="SECRET", reason="a secret word")
    return None


CUSTOM = """
version: 1
name: custom
block_message: "BLOCKED-MSG"
checks:
  - {id: s, type: custom, function: "test_adapter_attacks:async_secret", action: repair}
"""


@pytest.fixture(scope="module")
def custom() -> ge.Policy:
    return ge.Policy.from_yaml(CUSTOM, trusted_modules=["test_adapter_attacks"])


def test_async_custom_check_through_the_sync_adapter(custom: ge.Policy) -> None:
    pieces = ["The ze", "bra code. Fine."]
    out = list(ge_openai.guard_sync(custom, text_chunks(pieces)))
    assert content_of(out) == custom.validate_sync("".join(pieces)).text
    assert "zebra" not in content_of(out).lower()


@pytest.mark.anyio
async def test_async_custom_check_sync_adapter_inside_a_running_loop(custom: ge.Policy) -> None:
    pieces = ["The ze", "bra code. Fine."]
    events = _anthropic(
        [{"type": "text", "text": ""}], [(0, {"type": "text_delta", "text": p}) for p in pieces]
    )
    out = list(ge_anthropic.guard_sync(custom, events))  # on this loop's thread
    text = "".join(e.delta.text for e in out if e.type == "content_block_delta")
    assert text == (await custom.validate("".join(pieces))).text
    chat = await collect(ge_openai.guard(custom, AsyncUp(text_chunks(pieces))))
    assert content_of(chat) == text


# -- privacy of reprs, logs, exceptions ------------------------------------------------------
def test_nothing_detected_reaches_reprs_logs_or_blocks(
    policy: ge.Policy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    up = [
        chunk(
            [
                choice(
                    0, {"tool_calls": [_call(0, id="t", name="strict", args=f'{{"n": "{EMAIL}"}}')]}
                )
            ]
        ),
        chunk([choice(0, {}, "tool_calls")]),
    ]
    g = ge_openai.guard_sync(policy, up)
    out = list(g)
    assert g.blocked is not None
    seen = [repr(g), repr(g.blocked), str(g.blocked), *map(repr, g.blocked.findings), caplog.text]
    a = ge_anthropic.guard_sync(policy, _anthropic([{"type": "text", "text": EMAIL}], []))
    list(a)
    seen += [repr(a)]
    assert not any(EMAIL in s or "jdoe" in s for s in seen)
    assert not leaked(out)


# -- chunking properties through the adapters ----------------------------------------------
TEXT = "Mail jdoe@example.com or j.doe@example.org, then call. Done jdoe@example.com"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    cuts=st.lists(st.integers(0, len(TEXT)), max_size=12),
    n=st.integers(1, 3),
    where=st.sampled_from(["chat", "responses", "anthropic"]),
)
def test_any_chunking_across_providers_equals_validate(
    policy: ge.Policy, cuts: list[int], n: int, where: str
) -> None:
    bounds = sorted({0, len(TEXT), *cuts})
    pieces = [TEXT[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    want = policy.validate_sync(TEXT).text
    if where == "chat":  # n choices, interleaved, each the same pieces
        up = [chunk([choice(i, {"content": p}) for i in range(n)]) for p in pieces]
        up.append(chunk([choice(i, {}, "stop") for i in range(n)]))
        out = list(ge_openai.guard_sync(policy, up))
        assert all(content_of(out, i) == want for i in range(n))
    elif where == "responses":
        out = list(ge_openai.guard_sync(policy, responses_text(pieces)))
        got = "".join(e.delta for e in out if e.type == "response.output_text.delta")
        assert got == want
    else:
        events = _anthropic(
            [{"type": "text", "text": ""}], [(0, {"type": "text_delta", "text": p}) for p in pieces]
        )
        out = list(ge_anthropic.guard_sync(policy, events))
        got = "".join(e.delta.text for e in out if e.type == "content_block_delta")
        assert got == want
    assert not leaked(out, "jdoe@") and not leaked(out, "j.doe@")


def test_sync_adapter_from_a_worker_thread_while_a_loop_runs(custom: ge.Policy) -> None:
    results: list[str] = []

    def work() -> None:
        out = list(ge_openai.guard_sync(custom, text_chunks(["A ze", "bra. ok"])))
        results.append(content_of(out))

    async def main() -> None:
        await asyncio.to_thread(work)  # a worker thread, while this loop runs

    asyncio.run(main())
    assert results == [custom.validate_sync("A zebra. ok").text]


@unit_check(unit="sentence")
async def slow_secret(sentence: str) -> Found | None:
    await asyncio.sleep(5)
    return None


@pytest.mark.anyio
@pytest.mark.parametrize("which", ["openai", "anthropic"])
async def test_cancellation_while_a_check_is_awaited_closes_upstream(which: str) -> None:
    slow = ge.Policy.from_yaml(
        CUSTOM.replace("async_secret", "slow_secret"), trusted_modules=["test_adapter_attacks"]
    )
    pieces = ["Mail jdoe@example.com. ", "More. "]
    if which == "openai":
        up = AsyncUp(text_chunks(pieces))
        stream: Any = ge_openai.guard(slow, up)
    else:
        up = AsyncUp(
            _anthropic(
                [{"type": "text", "text": ""}],
                [(0, {"type": "text_delta", "text": p}) for p in pieces],
            )
        )
        stream = ge_anthropic.guard(slow, up)
    got: list[Any] = []
    with anyio.move_on_after(0.3) as scope:
        async for e in stream:
            got.append(e)
    assert scope.cancelled_caught and up.closed
    assert not leaked(got, "Mail")


@pytest.mark.parametrize("index", [-1, 0, 2**70])
def test_responses_blocked_call_at_any_output_index_ends_natively(index: int) -> None:
    # An output index of -1 was taken for "a text part blocked": a RuntimeError
    # (coroutine raised StopIteration) reached the caller.
    strict = ge.Policy.from_yaml(POLICY_YAML.replace("unknown_tools: pass", "unknown_tools: block"))
    events = [
        rev({"type": "response.created", "response": RESPONSE}),
        rev(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {
                    "id": "fc1",
                    "type": "function_call",
                    "call_id": "c",
                    "name": "nope",
                    "arguments": "",
                    "status": "in_progress",
                },
            }
        ),
    ]
    g = ge_openai.guard_sync(strict, SyncUp(events))
    out = list(g)
    assert out[-1].type == "response.incomplete"
    assert out[-1].response.incomplete_details.reason == "content_filter"
    assert MESSAGE in "".join(e.delta for e in out if e.type == "response.output_text.delta")
    assert g.blocked is not None and g._upstream.closed  # type: ignore[attr-defined]


def test_anthropic_reply_citations_are_checked(policy: ge.Policy) -> None:
    from anthropic.types import Message

    cite = {
        "type": "char_location",
        "cited_text": f"write to {EMAIL}",
        "document_index": 0,
        "document_title": None,
        "start_char_index": 0,
        "end_char_index": 3,
    }
    message = Message.model_validate(
        {**MSG, "content": [{"type": "text", "text": "See the doc.", "citations": [cite]}]}
    )
    guarded = ge_anthropic.guard_reply_sync(policy, message)
    assert not leaked([guarded])
    (block,) = guarded.content
    assert block.text == "See the doc."
    assert [c.cited_text for c in block.citations] == ["write to <EMAIL_ADDRESS>"]
    assert message.content[0].citations[0].cited_text == f"write to {EMAIL}"  # not changed


def test_a_reply_that_opens_too_many_runs_is_blocked(
    policy: ge.Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardrails_engine._adapters import _guard

    monkeypatch.setattr(_guard, "MAX_RUNS", 5)
    # Chat: a run per choice; the sixth choice is one too many.
    up = [chunk([choice(i, {"content": f"c{i} "}) for i in range(6)])]
    up.append(chunk([choice(i, {"content": "end"}, "stop") for i in range(6)]))
    guarded = ge_openai.guard_sync(policy, up)
    out = list(guarded)
    assert guarded.blocked is not None
    assert [f.check_id for f in guarded.blocked.findings] == ["runs"]
    assert "more than 5 runs" in guarded.blocked.findings[0].reason
    finishes = {c.index: c.finish_reason for ch in out for c in ch.choices if c.finish_reason}
    assert set(finishes.values()) == {"content_filter"}
    # Five are fine.
    up = [chunk([choice(i, {"content": f"c{i} "}, "stop") for i in range(5)])]
    fine = ge_openai.guard_sync(policy, up)
    shown = list(fine)
    assert fine.blocked is None
    assert [content_of(shown, i) for i in range(5)] == [f"c{i} " for i in range(5)]
    # Anthropic: a run per text block.
    events = _anthropic(
        [{"type": "text", "text": ""} for _ in range(6)],
        [(i, {"type": "text_delta", "text": f"b{i} "}) for i in range(6)],
    )
    stream = ge_anthropic.guard_sync(policy, events)
    got = list(stream)
    assert stream.blocked is not None and stream.blocked.findings[0].check_id == "runs"
    assert [e.delta.stop_reason for e in got if e.type == "message_delta"] == ["refusal"]
