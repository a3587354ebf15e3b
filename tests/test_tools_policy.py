"""The `tools:` policy key: per-tool checks of tool-call arguments."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

import guardrails_engine as ge

POLICY = """
version: 1
name: tools
block_message: "[blocked]"
checks:
  - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}
tools:
  lookup_order:
    checks:
      - id: args
        type: schema
        schema:
          type: object
          properties: {order_id: {type: string, pattern: "^[0-9]+$"}}
          required: [order_id]
          additionalProperties: false
      - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}
  send_note:
    release: incremental
    checks:
      - {id: secrets, type: content, terms: [password], action: block}
unknown_tools: block
"""


def test_tool_policies_are_compiled_with_the_policy() -> None:
    policy = ge.Policy.from_yaml(POLICY)
    assert set(policy.tools) == {"lookup_order", "send_note"}
    assert policy.unknown_tools == "block"
    tool = policy.tools["lookup_order"]
    assert isinstance(tool, ge.ToolPolicy)
    assert tool.release == "complete"
    assert policy.tools["send_note"].release == "incremental"
    # A tool's policy inherits the block message.
    assert tool.policy.block_message == "[blocked]"
    bad = tool.policy.validate_sync('{"order_id": "12x"}')
    assert bad.blocked
    good = tool.policy.validate_sync('{"order_id": "123"}')
    assert good.decision is ge.Decision.PASS
    masked = ge.Policy.from_yaml(POLICY).tools["lookup_order"].policy
    # PII inside an argument string is repaired and the JSON stays valid.
    extra = masked.validate_sync('{"order_id": "1", "note": "jdoe@example.com"}')
    assert extra.blocked  # additionalProperties
    note = ge.Policy.from_yaml(POLICY).tools["send_note"].policy
    assert note.validate_sync("the password is x").blocked


def test_pii_in_a_tool_argument_keeps_the_json_valid() -> None:
    policy = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n  - {id: len, type: length, max_chars: 1000}\n"
        "tools:\n  mail:\n    checks:\n"
        "      - {id: args, type: schema, schema: {type: object}}\n"
        "      - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}\n"
    )
    args = '{"to": "jdoe@example.com", "body": "hi"}'
    result = policy.tools["mail"].policy.validate_sync(args)
    assert result.decision is ge.Decision.REPAIR
    assert json.loads(result.text) == {"to": "<EMAIL_ADDRESS>", "body": "hi"}


def test_unknown_tools_defaults_to_check_and_no_tools() -> None:
    policy = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n  - {id: len, type: length, max_chars: 10}\n"
    )
    assert dict(policy.tools) == {}
    assert policy.unknown_tools == "check"


def test_a_tool_policy_file_is_read_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "args.yaml").write_text(
        "version: 1\nname: args\nchecks:\n  - {id: s, type: schema, schema: {type: object}}\n"
    )
    (tmp_path / "main.yaml").write_text(
        "version: 1\nname: main\nchecks:\n  - {id: len, type: length, max_chars: 10}\n"
        "tools:\n  t:\n    policy: args.yaml\n"
    )
    policy = ge.load_policy(tmp_path / "main.yaml")
    assert policy.tools["t"].policy.name == "args"
    assert policy.tools["t"].policy.validate_sync("[1]").blocked
    # It pickles with its parent.
    again = pickle.loads(pickle.dumps(policy))
    assert again.tools["t"].policy.validate_sync("{}").decision is ge.Decision.PASS


def test_a_tool_policy_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "secret.yaml").write_text("token: hunter2-do-not-show\n")
    (inner / "main.yaml").write_text(
        "version: 1\nname: main\nchecks:\n  - {id: len, type: length, max_chars: 10}\n"
        "tools:\n  t:\n    policy: ../secret.yaml\n"
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(inner / "main.yaml")
    assert "outside the policy's folder" in str(info.value)
    assert info.value.field == "tools.t.policy"
    assert "hunter2" not in str(info.value)


def test_a_tool_policy_naming_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").write_text(
        "version: 1\nname: loop\nchecks:\n  - {id: len, type: length, max_chars: 10}\n"
        "tools:\n  t:\n    policy: loop.yaml\n"
    )
    with pytest.raises(ge.PolicyError, match="nest too deeply"):
        ge.load_policy(tmp_path / "loop.yaml")


@pytest.mark.parametrize(
    ("tools", "field", "message"),
    [
        ("  t: {}\n", "tools.t", "exactly one of `checks` and `policy`"),
        ("  t: {checks: [], policy: x.yaml}\n", "tools.t", "exactly one"),
        ("  t: {checks: []}\n", "tools.t", "`checks` is empty"),
        ("  t: {policy: x.yaml, release: eventually}\n", "tools.t.release", "'complete'"),
        (
            "  t:\n    checks:\n      - {id: a, type: length, max_chars: 5}\n"
            "      - {id: a, type: length, max_chars: 6}\n",
            "tools.t.checks[1].id",
            "duplicate check id 'a' (first at tools.t.checks[0])",
        ),
        (
            "  t:\n    checks:\n      - {id: p, type: pii, entities: [EMAIL_ADRESS]}\n",
            "tools.t.checks[0].entities[0]",
            "did you mean 'EMAIL_ADDRESS'",
        ),
        (
            "  t:\n    checks:\n      - {id: p, type: pi}\n",
            "tools.t.checks[0].type",
            "unknown check type 'pi'",
        ),
        (
            "  t:\n    checks:\n      - {id: p, type: length, max_char: 3}\n",
            "tools.t.checks[0].max_char",
            "did you mean 'max_chars'",
        ),
        ("  'bad name!': {policy: x.yaml}\n", "tools", "match pattern"),
    ],
)
def test_a_bad_tools_entry_names_its_field(tools: str, field: str, message: str) -> None:
    text = "version: 1\nname: t\nchecks:\n  - {id: len, type: length, max_chars: 10}\ntools:\n"
    text += tools
    with pytest.raises(ge.PolicyError) as info:
        ge.Policy.from_yaml(text, source="p.yaml")
    problems = info.value.problems or (info.value,)
    assert any(p.field == field and message in str(p) for p in problems), [str(p) for p in problems]
    assert all(p.line is not None for p in problems)
