"""Tool names are matched after canonicalisation; tools without a rule are checked.

Policy level: ``Policy.tool_rule(name)``.  Adapter level: fake servers speaking the real
wire formats, driven by the real SDK clients, both providers, streamed and not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from _fake_anthropic import FakeAnthropic, Reply, Tool, message_json, sse_events
from _fake_openai import FakeOpenAI, chat_chunks, completion

import guardrails_engine as ge
from guardrails_engine import anthropic as ge_anthropic
from guardrails_engine import openai as ge_openai

MESSAGE = "[blocked]"
CARD = "4111 1111 1111 1111"
EMAIL = "jdoe@example.com"
ARGS = json.dumps({"to": EMAIL, "card": CARD, "n": 7, "tags": ["x", CARD]})

POLICY = f"""
version: 1
name: tools
block_message: "{MESSAGE}"
checks:
  - {{id: pii, type: pii, entities: [EMAIL_ADDRESS, CREDIT_CARD]}}
  - {{id: words, type: content, terms: ["internal use only"], action: block}}
  - {{id: len, type: length, max_chars: 40, action: repair}}
tools:
  lookup_order:
    checks:
      - {{id: pii, type: pii, entities: [EMAIL_ADDRESS]}}
"""

#: Names that canonicalise to ``lookup_order`` but are written differently.
LOOK_ALIKES = [
    "lookup_\u043erder",  # a Cyrillic o
    "Lookup_Order",  # another case
    "lookup_order ",  # a trailing space
    " lookup_order",  # a leading space
    "lookup_order\u200b",  # a zero-width space
    "look\u200dup_order",  # a zero-width joiner inside
    "\uff4c\uff4f\uff4f\uff4b\uff55\uff50_order",  # full-width letters
    "LOOKUP_ORDER\t",
]


@pytest.fixture(scope="module")
def policy() -> ge.Policy:
    return ge.Policy.from_yaml(POLICY)


def _with(mode: str) -> ge.Policy:
    return ge.Policy.from_yaml(POLICY + f"unknown_tools: {mode}\n")


# -- the policy layer ------------------------------------------------------------------------


def test_the_listed_name_gets_its_rule(policy: ge.Policy) -> None:
    rule = policy.tool_rule("lookup_order")
    assert rule is policy.tools["lookup_order"]


@pytest.mark.parametrize("name", LOOK_ALIKES)
def test_a_name_written_unlike_the_listed_one_is_blocked(policy: ge.Policy, name: str) -> None:
    for p in (policy, _with("pass"), _with("block")):
        rule = p.tool_rule(name)
        assert isinstance(rule, ge.Blocked), name
        assert rule.message == MESSAGE
        (finding,) = rule.findings
        assert finding.check_type == "tools" and "written unlike" in finding.reason


def test_an_unlisted_tool_has_its_argument_strings_checked(policy: ge.Policy) -> None:
    assert policy.unknown_tools == "check"
    rule = policy.tool_rule("send_mail")
    assert isinstance(rule, ge.ToolPolicy)
    result = rule.policy.validate_sync(ARGS)
    assert result.decision is ge.Decision.REPAIR
    args = json.loads(result.text)  # the JSON stays valid
    assert args == {
        "to": "<EMAIL_ADDRESS>",
        "card": "<CREDIT_CARD>",
        "n": 7,
        "tags": ["x", "<CREDIT_CARD>"],
    }
    # The content check too; the length limit (of the reply's text) does not apply.
    assert rule.policy.validate_sync('{"note": "internal use only"}').blocked
    long = json.dumps({"text": "word " * 40})
    assert rule.policy.validate_sync(long).decision is ge.Decision.PASS
    # The same rule for every unlisted name (compiled once).
    assert policy.tool_rule("other") is rule
    assert policy.tool_rule(None) is rule


def test_a_replacement_in_the_arguments_is_json_escaped() -> None:
    quoting = ge.Policy.from_yaml(
        "version: 1\nname: q\nchecks:\n"
        "  - {id: w, type: content, terms: [secret], action: repair,"
        " replacement: 'a \"quoted\" word'}\n"
    )
    rule = quoting.tool_rule("anything")
    assert isinstance(rule, ge.ToolPolicy)
    result = rule.policy.validate_sync(json.dumps({"a": "the secret plan"}))
    assert json.loads(result.text) == {"a": 'the a "quoted" word plan'}


def test_numbers_and_empty_arguments_keep_the_json_valid(policy: ge.Policy) -> None:
    rule = policy.tool_rule("anything")
    assert isinstance(rule, ge.ToolPolicy)
    result = rule.policy.validate_sync('{"n": 4111111111111111, "ok": [1, 2]}')
    assert json.loads(result.text) == {"n": "<CREDIT_CARD>", "ok": [1, 2]}
    for empty in ("", "{}"):  # a tool without parameters
        assert not rule.policy.validate_sync(empty).blocked


def test_a_custom_tools_free_text_is_checked_as_text(policy: ge.Policy) -> None:
    rule = policy.tool_rule("shell", json=False)
    assert isinstance(rule, ge.ToolPolicy)
    result = rule.policy.validate_sync(f"mail {EMAIL} now")
    assert result.text == "mail <EMAIL_ADDRESS> now"


def test_unknown_tools_pass_opts_out_and_block_refuses() -> None:
    assert _with("pass").tool_rule("send_mail") is None
    blocked = _with("block").tool_rule("send_mail")
    assert isinstance(blocked, ge.Blocked)
    assert blocked.findings[0].check_id == "unknown_tools"


def test_a_policy_with_neither_pii_nor_content_passes_unlisted_tools() -> None:
    bare = ge.Policy.from_yaml(
        "version: 1\nname: b\nchecks:\n  - {id: l, type: length, max_chars: 9}\n"
    )
    assert bare.tool_rule("x") is None


@pytest.mark.parametrize("name", ["support-chat", "support-json", "strict-redact"])
def test_the_shipped_policies_mask_a_card_in_tool_arguments(name: str) -> None:
    shipped = ge.load_policy(f"policies/{name}.yaml")
    assert dict(shipped.tools) == {}
    rule = shipped.tool_rule("refund")
    assert isinstance(rule, ge.ToolPolicy)
    result = rule.policy.validate_sync(json.dumps({"card": CARD, "amount": 12}))
    assert not result.blocked
    assert "4111" not in result.text and json.loads(result.text)["amount"] == 12


# -- OpenAI ------------------------------------------------------------------------------------

CHAT = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def oai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def oclient(oai: FakeOpenAI) -> Iterator[openai.OpenAI]:
    oai.replies.clear()
    with openai.OpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as c:
        yield c
    assert not oai.replies


def _call_stream(name: str, args: str) -> list[dict[str, Any]]:
    pieces = [args[i : i + 7] for i in range(0, len(args), 7)]
    first = {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
        ]
    }
    rest = [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces]
    return chat_chunks([(0, first)] + [(0, d) for d in rest], finish={0: "tool_calls"})


def _streamed_args(chunks: list[Any]) -> tuple[str | None, str, list[str | None]]:
    name, args, finish = None, "", []
    for chunk in chunks:
        for choice in chunk.choices:
            finish.append(choice.finish_reason)
            for tc in choice.delta.tool_calls or ():
                if tc.function is not None:
                    name = tc.function.name or name
                    args += tc.function.arguments or ""
    return name, args, finish


@pytest.mark.parametrize("name", [LOOK_ALIKES[0], LOOK_ALIKES[2], LOOK_ALIKES[6]])
def test_openai_stream_blocks_a_look_alike_tool(
    oai: FakeOpenAI, oclient: openai.OpenAI, policy: ge.Policy, name: str
) -> None:
    oai.add("chat", _call_stream(name, ARGS))
    chunks = list(
        ge_openai.guard_sync(policy, oclient.chat.completions.create(**CHAT, stream=True))
    )
    _, args, finish = _streamed_args(chunks)
    assert EMAIL not in args and "4111" not in args
    assert "content_filter" in finish


def test_openai_stream_checks_an_unlisted_tool(
    oai: FakeOpenAI, oclient: openai.OpenAI, policy: ge.Policy
) -> None:
    oai.add("chat", _call_stream("refund", ARGS))
    chunks = list(
        ge_openai.guard_sync(policy, oclient.chat.completions.create(**CHAT, stream=True))
    )
    name, args, _ = _streamed_args(chunks)
    assert name == "refund"
    assert json.loads(args)["card"] == "<CREDIT_CARD>" and EMAIL not in args


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the SDK streams' own generators warn when collected under trio


@pytest.mark.anyio
async def test_openai_async_stream_with_a_shipped_policy_masks_the_card(oai: FakeOpenAI) -> None:
    oai.replies.clear()
    shipped = ge.load_policy("policies/support-chat.yaml")
    oai.add("chat", _call_stream("refund", json.dumps({"card": CARD})))
    async with openai.AsyncOpenAI(base_url=oai.base_url, api_key="x", max_retries=0) as c:
        stream = await c.chat.completions.create(**CHAT, stream=True)
        chunks = [chunk async for chunk in ge_openai.guard(shipped, stream)]
    _, args, _ = _streamed_args(chunks)
    assert json.loads(args) == {"card": "<CREDIT_CARD>"}


def test_openai_reply_checks_and_blocks_by_name(
    oai: FakeOpenAI, oclient: openai.OpenAI, policy: ge.Policy
) -> None:
    def reply(name: str) -> dict[str, Any]:
        call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": ARGS}}
        return completion(
            [{"message": {"content": None, "tool_calls": [call]}, "finish_reason": "tool_calls"}]
        )

    oai.add("json", reply("refund"))
    guarded = ge_openai.guard_reply_sync(policy, oclient.chat.completions.create(**CHAT))
    calls = guarded.choices[0].message.tool_calls
    assert calls is not None
    assert json.loads(calls[0].function.arguments)["card"] == "<CREDIT_CARD>"
    oai.add("json", reply(LOOK_ALIKES[1]))
    guarded = ge_openai.guard_reply_sync(policy, oclient.chat.completions.create(**CHAT))
    assert guarded.choices[0].finish_reason == "content_filter"
    assert guarded.choices[0].message.tool_calls is None
    assert guarded.choices[0].message.content == MESSAGE


# -- Anthropic ---------------------------------------------------------------------------------

ACALL = {
    "model": "claude-fake-1",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture(scope="module")
def ant() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aclient(ant: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=ant.url, api_key="x", max_retries=0) as c:
        yield c


def _inputs(events: list[Any]) -> str:
    return "".join(
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )


def _tool(name: str) -> Tool:
    return Tool(name, [ARGS[i : i + 9] for i in range(0, len(ARGS), 9)])


@pytest.mark.parametrize("name", [LOOK_ALIKES[0], LOOK_ALIKES[4], LOOK_ALIKES[7]])
def test_anthropic_stream_blocks_a_look_alike_tool(
    ant: FakeAnthropic, aclient: anthropic.Anthropic, policy: ge.Policy, name: str
) -> None:
    ant.stream(sse_events([_tool(name)], stop_reason="tool_use"))
    events = list(ge_anthropic.guard_sync(policy, aclient.messages.create(**ACALL, stream=True)))
    assert EMAIL not in _inputs(events) and "4111" not in _inputs(events)
    (delta,) = [e for e in events if e.type == "message_delta"]
    assert delta.delta.stop_reason == "refusal"


def test_anthropic_stream_checks_an_unlisted_tool(
    ant: FakeAnthropic, aclient: anthropic.Anthropic, policy: ge.Policy
) -> None:
    ant.stream(sse_events([_tool("refund")], stop_reason="tool_use"))
    events = list(ge_anthropic.guard_sync(policy, aclient.messages.create(**ACALL, stream=True)))
    args = json.loads(_inputs(events))
    assert args["to"] == "<EMAIL_ADDRESS>" and args["tags"] == ["x", "<CREDIT_CARD>"]


def test_anthropic_reply_checks_and_blocks_by_name(
    ant: FakeAnthropic, aclient: anthropic.Anthropic, policy: ge.Policy
) -> None:
    ant.reply(Reply(message=message_json([_tool("refund")], stop_reason="tool_use")))
    message = ge_anthropic.guard_reply_sync(policy, aclient.messages.create(**ACALL))
    (block,) = message.content
    assert block.type == "tool_use" and block.input["card"] == "<CREDIT_CARD>"
    ant.reply(Reply(message=message_json([_tool(LOOK_ALIKES[3])], stop_reason="tool_use")))
    message = ge_anthropic.guard_reply_sync(policy, aclient.messages.create(**ACALL))
    assert message.stop_reason == "refusal"
    assert [b.type for b in message.content] == ["text"]
    # unknown_tools: pass opts out: the arguments go as they are.
    ant.reply(Reply(message=message_json([_tool("refund")], stop_reason="tool_use")))
    message = ge_anthropic.guard_reply_sync(_with("pass"), aclient.messages.create(**ACALL))
    (block,) = message.content
    assert block.type == "tool_use" and block.input["to"] == EMAIL
