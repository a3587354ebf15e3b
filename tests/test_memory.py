"""Long outputs in small chunks: memory near the size of the text, same answers."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from _child import run_limited
from _policies import make_policy

import guardrails_engine as ge

ORDER = {"id": 7, "sku": "ABC-0007", "note": "handle with care, deliver before noon", "n": [1, 2]}
SCHEMA = {"type": "object", "properties": {"orders": {"type": "array", "maxItems": 100000}}}


def _policy(release: str) -> ge.Policy:
    entry = {"id": "j", "type": "schema", "extract": False, "release": release}
    return make_policy([{**entry, "schema": SCHEMA}], name="m")


def _peak(policy: ge.Policy, text: str) -> tuple[int, ge.Result | None]:
    """Stream ``text`` in 4-character chunks, checking each piece as it comes
    (not keeping it); the peak of Python allocations and the stream's result."""
    assert "".join(policy.stream_sync(iter(["{}"]))) == "{}"  # warm up
    tracemalloc.start()
    try:
        stream = policy.stream_sync(text[i : i + 4] for i in range(0, len(text), 4))
        at = 0
        for piece in stream:
            assert text.startswith(piece, at)
            at += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert at == len(text)
    return peak, stream.result


@pytest.mark.parametrize("release", ["incremental", "on_complete"])
def test_a_long_json_stream_in_small_chunks_holds_about_its_size(release: str) -> None:
    text = json.dumps({"orders": [ORDER] * 1200})  # about 110,000 characters
    peak, result = _peak(_policy(release), text)
    assert result is not None and result.text == text
    # The parsed document for the final validation is about 5x the text, the
    # text itself is held once or twice; a string per 4-character chunk would
    # be another 13x each time it is kept.
    assert peak < 12 * len(text), peak / len(text)


def test_long_prose_char_by_char_equals_validate(support_policy: ge.Policy) -> None:
    # Over a thousand one-character chunks: held and released text go through blocks.
    text = ("Plain words, then mail ann@example.org or call +1 415 555 0132. " * 40)[:1900]
    whole = support_policy.validate_sync(text)
    assert whole.decision is ge.Decision.REPAIR
    stream = support_policy.stream_sync(iter(text))
    assert "".join(stream) == whole.text
    assert stream.result == whole


def test_one_long_json_string_in_small_chunks_holds_about_its_size() -> None:
    # The token being read is kept whole (for maxLength, pattern, the value):
    # in blocks, not a string per chunk.
    policy = ge.Policy.from_yaml(
        "version: 1\nname: m\nchecks:\n  - id: j\n    type: schema\n    extract: false\n"
        "    release: incremental\n"
        "    schema: {type: object, properties: {s: {type: string, maxLength: 1000000}}}\n"
    )
    text = json.dumps({"s": "word " * 20000})  # one string of 100,000 characters
    peak, _ = _peak(policy, text)
    assert peak < 8 * len(text), peak / len(text)


DEEP = """
import json, sys
import guardrails_engine as ge
n = 100_000
schemas = {
    "properties": {"$defs": {"n": {"type": "object", "properties": {"a": {"$ref": "#/$defs/n"}},
                                   "additionalProperties": False}}, "$ref": "#/$defs/n"},
    "anyOf": {"$defs": {"n": {"anyOf": [{"type": "array", "items": {"$ref": "#/$defs/n"}},
                                        {"type": "integer"}]}}, "$ref": "#/$defs/n"},
}
docs = {
    "properties": ('{"a": ' * n + '{"b": 1}' + "}" * n,),
    "anyOf": ("[" * n + '"s"' + "]" * n, "[" * n + "1" + "]" * n),
}
out = {}
for name, schema in schemas.items():
    policy = ge.Policy.from_yaml(
        "version: 1\\nname: d\\ncheck_timeout_ms: 3600000\\nchecks:\\n"
        "  - id: j\\n    type: schema\\n"
        f"    schema: {json.dumps(schema)}\\n"
    )
    for i, text in enumerate(docs[name]):
        whole = policy.validate_sync(text)
        stream = policy.stream_sync(text[k : k + 4] for k in range(0, len(text), 4))
        streamed = "".join(stream)
        assert stream.result == whole, (name, i)
        out[f"{name}{i}"] = [whole.decision.value, list(whole.reasons), streamed == whole.text]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_json_nested_100000_levels_fits_in_modest_memory() -> None:
    # Each level costs a constant: paths are built only when a reason is written,
    # and a reason shows the two ends of a long path.
    out = json.loads(run_limited(DEEP, seconds=300, memory=1_500_000_000).splitlines()[-1])
    bad_key, bad_type, good_any = out["properties0"], out["anyOf0"], out["anyOf1"]
    assert bad_key[0] == "block"
    (reason,) = bad_key[1]
    assert reason == (
        "j: $.a.a.a.a.a.a.a.a.a.a...(99,980 more)...a.a.a.a.a.a.a.a.a.a: "
        "properties not allowed by additionalProperties, blocked"
    )
    assert bad_type == ["block", ["j: $: matches none of the anyOf alternatives, blocked"], True]
    assert good_any == ["pass", [], True]
