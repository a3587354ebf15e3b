"""Every check type is built one way (a factory per ``type:``, one table), and the run
knows a check only by what it declares (``json_output``), never by its type name."""

from __future__ import annotations

from collections.abc import Sequence

from _policies import make_policy

import guardrails_engine as ge
from guardrails_engine._policy.registry import CHECK_TYPES
from guardrails_engine._spec.config import CHECK_SPECS
from guardrails_engine.checks import Check, Hit, Session


def test_every_check_type_has_one_factory() -> None:
    assert CHECK_TYPES.keys() == CHECK_SPECS.keys()
    assert {"pii", "content", "schema", "length", "custom"} <= CHECK_TYPES.keys()


class _Quiet(Session):
    """Finds nothing; everything it has seen is decided."""

    scans = False
    capped = False

    def __init__(self) -> None:
        self.hold = 0

    def feed(self, buf: str, base: int, chunk: str) -> Sequence[Hit]:
        self.hold += len(chunk)
        return []

    def finish(self, buf: str, base: int) -> Sequence[Hit]:
        return []


class JsonShape(Check):
    """A check of one's own that reads the output as JSON (and finds nothing)."""

    json_output = True

    def session(self) -> Session:
        return _Quiet()


def _policy(*checks: str) -> ge.Policy:
    return make_policy(checks, trusted=["test_registry"])


_JSON = "{id: shape, type: custom, function: 'test_registry:JsonShape'}"


def test_a_check_of_ones_own_that_reads_json_makes_a_truncation_a_block() -> None:
    text = '{"a": "' + "word " * 20 + '"}'
    plain = _policy("{id: cap, type: length, max_chars: 30}")
    assert plain.validate_sync(text).decision is ge.Decision.REPAIR
    policy = _policy("{id: cap, type: length, max_chars: 30}", _JSON)
    result = policy.validate_sync(text)
    assert result.decision is ge.Decision.BLOCK
    assert [f.reason for f in result.findings] == [
        "cap: longer than 30 characters (JSON output is never truncated), blocked"
    ]
    streamed = policy.stream_sync([text[i : i + 7] for i in range(0, len(text), 7)])
    assert "".join(streamed) == ""
    assert streamed.result == result


def test_a_check_of_ones_own_that_reads_json_gets_replacements_json_escaped() -> None:
    content = "{id: c, type: content, terms: [secret], action: repair, replacement: 'x\"y'}"
    text = '{"a": "the secret is out"}'
    assert _policy(content).validate_sync(text).text == '{"a": "the x"y is out"}'
    assert _policy(content, _JSON).validate_sync(text).text == '{"a": "the x\\"y is out"}'
