"""Early checks never change the verdict: for each keyword family and each draft, the
stream (in any chunks), validate and jsonschema give one verdict.

The cases are written for this suite (not copied from the official suite): each is a
schema body, documents it accepts and documents it refuses, for the drafts named.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from _policies import make_policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge

DRAFTS = {
    "4": "http://json-schema.org/draft-04/schema#",
    "6": "http://json-schema.org/draft-06/schema#",
    "7": "http://json-schema.org/draft-07/schema#",
    "2019-09": "https://json-schema.org/draft/2019-09/schema",
    "2020-12": "https://json-schema.org/draft/2020-12/schema",
}
ALL = tuple(DRAFTS)
SINCE_6 = ("6", "7", "2019-09", "2020-12")
SINCE_7 = ("7", "2019-09", "2020-12")
SINCE_2019 = ("2019-09", "2020-12")
UP_TO_7 = ("4", "6", "7")

# (name, drafts, schema, documents) - each document is JSON text; the expected verdict
# is jsonschema's, asserted below, so a case cannot pass by agreeing with itself.
CASES: list[tuple[str, tuple[str, ...], dict[str, Any], list[str]]] = [
    (
        "type",
        ALL,
        {"properties": {"i": {"type": "integer"}, "n": {"type": ["number", "null"]}}},
        ['{"i": 1}', '{"i": 1.0}', '{"i": 1.5}', '{"i": true}', '{"n": null}', '{"n": "1"}'],
    ),
    (
        "enum and const",
        SINCE_6,
        {"properties": {"e": {"enum": [1, "a", None]}, "c": {"const": 2}}},
        ['{"e": 1.0}', '{"e": true}', '{"e": null}', '{"c": 2.0}', '{"c": 3}', '{"e": [1]}'],
    ),
    (
        "numeric bounds",
        SINCE_6,
        {"properties": {"x": {"minimum": 0, "exclusiveMaximum": 10, "multipleOf": 0.5}}},
        ['{"x": 0}', '{"x": -0.5}', '{"x": 9.5}', '{"x": 10}', '{"x": 0.25}', '{"x": 1e1}'],
    ),
    (
        "draft 4 boolean exclusive bounds",
        ("4",),
        {"properties": {"x": {"minimum": 0, "exclusiveMinimum": True, "maximum": 3}}},
        ['{"x": 0}', '{"x": 0.1}', '{"x": 3}', '{"x": 3.1}'],
    ),
    (
        "multipleOf of big and small numbers",
        ALL,
        {"properties": {"x": {"multipleOf": 0.01}, "y": {"multipleOf": 3}}},
        ['{"x": 0.07}', '{"x": 0.075}', '{"y": 300000000000000000000000000003}', '{"y": 1e300}'],
    ),
    (
        "string lengths and patterns",
        ALL,
        {"properties": {"s": {"minLength": 2, "maxLength": 3, "pattern": "^[a-z\\u00e9]+$"}}},
        ['{"s": "ab"}', '{"s": "a"}', '{"s": "abcd"}', '{"s": "\\u00e9t\\u00e9"}', '{"s": "A1"}'],
    ),
    (
        "lengths count code points (escaped pairs are one)",
        ALL,
        {"properties": {"s": {"maxLength": 2}}},
        ['{"s": "\\ud83d\\ude00x"}', '{"s": "\\ud83d\\ude00xy"}', '{"s": "\\ud800\\ud800x"}'],
    ),
    (
        "formats",
        ALL,
        {
            "properties": {
                "d": {"format": "date-time"},
                "e": {"format": "email"},
                "u": {"format": "uri"},
                "h": {"format": "hostname"},
                "i": {"format": "ipv4"},
            }
        },
        [
            '{"d": "2024-01-02T03:04:05Z"}',
            '{"d": "2024-13-02T03:04:05Z"}',
            '{"e": "a@b.example"}',
            '{"e": "nope"}',
            '{"u": "https://example.com/x"}',
            '{"u": "not a uri"}',
            '{"h": "example.com"}',
            '{"h": "-bad-.com"}',
            '{"i": "10.0.0.1"}',
            '{"i": "10.0.0.300"}',
            '{"d": 5}',
        ],
    ),
    (
        "items as one schema, min/max items",
        ALL,
        {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
        ["[1]", "[]", "[1, 2, 3]", '[1, "a"]'],
    ),
    (
        "tuple items and additionalItems",
        ("4", "6", "7", "2019-09"),
        {"items": [{"type": "string"}, {"type": "integer"}], "additionalItems": False},
        ['["a", 1]', '["a"]', "[1, 1]", '["a", 1, 2]'],
    ),
    (
        "prefixItems and items",
        ("2020-12",),
        {"prefixItems": [{"type": "string"}], "items": {"type": "integer"}},
        ['["a", 1, 2]', '["a", "b"]', "[1]", "[]"],
    ),
    (
        "uniqueItems and contains",
        SINCE_6,
        {"uniqueItems": True, "contains": {"type": "string"}},
        ['[1, "a"]', "[1, 2]", '["a", "a"]', '[{"a": 1}, {"a": 1.0}, "x"]'],
    ),
    (
        "minContains and maxContains",
        SINCE_2019,
        {"contains": {"type": "integer"}, "minContains": 2, "maxContains": 3},
        ["[1, 2]", "[1]", "[1, 2, 3, 4]", '[1, "a", 2]'],
    ),
    (
        "properties, required, additionalProperties",
        ALL,
        {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "required": ["a"],
            "additionalProperties": {"type": "integer"},
        },
        ['{"a": "x"}', '{"a": "x", "b": 1}', '{"a": "x", "b": "y"}', '{"b": 1}', '{"a": 1}'],
    ),
    (
        "patternProperties and additionalProperties false",
        ALL,
        {"patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False},
        ['{"x-a": 1}', '{"x-a": "1"}', '{"y": 1}', "{}"],
    ),
    (
        "propertyNames and property counts",
        SINCE_6,
        {"propertyNames": {"maxLength": 2, "pattern": "^[a-z]"}, "maxProperties": 2},
        ['{"ab": 1}', '{"abc": 1}', '{"1": 1}', '{"a": 1, "b": 2, "c": 3}', "{}"],
    ),
    (
        "minProperties",
        ALL,
        {"minProperties": 2},
        ['{"a": 1, "b": 2}', '{"a": 1}', "[]"],
    ),
    (
        "dependencies",
        UP_TO_7,
        {"dependencies": {"a": ["b"], "c": {"required": ["d"]}}},
        ['{"a": 1, "b": 2}', '{"a": 1}', '{"c": 1, "d": 1}', '{"c": 1}'],
    ),
    (
        "dependentRequired and dependentSchemas",
        SINCE_2019,
        {"dependentRequired": {"a": ["b"]}, "dependentSchemas": {"c": {"required": ["d"]}}},
        ['{"a": 1, "b": 2}', '{"a": 1}', '{"c": 1, "d": 1}', '{"c": 1}', '{"b": 1}'],
    ),
    (
        "allOf, anyOf, oneOf, not",
        ALL,
        {
            "allOf": [{"type": "object"}],
            "properties": {
                "any": {"anyOf": [{"type": "string", "maxLength": 2}, {"type": "integer"}]},
                "one": {"oneOf": [{"type": "integer"}, {"minimum": 2}]},
                "not": {"not": {"type": "string"}},
            },
        },
        [
            '{"any": "ab"}',
            '{"any": "abc"}',
            '{"any": 5}',
            '{"one": 1}',
            '{"one": 3}',
            '{"one": 2.5}',
            '{"not": 1}',
            '{"not": "s"}',
            "[]",
        ],
    ),
    (
        "if, then, else",
        SINCE_7,
        {"if": {"properties": {"k": {"const": "n"}}}, "then": {"required": ["n"]}},
        ['{"k": "n", "n": 1}', '{"k": "n"}', '{"k": "s"}'],
    ),
    (
        "local $ref",
        SINCE_2019,
        {"$defs": {"pos": {"type": "integer", "minimum": 1}}, "items": {"$ref": "#/$defs/pos"}},
        ["[1, 2]", "[0]", '["a"]'],
    ),
    (
        "$ref to definitions, recursive",
        ALL,
        {
            "definitions": {
                "node": {
                    "type": "object",
                    "properties": {
                        "kids": {"type": "array", "items": {"$ref": "#/definitions/node"}}
                    },
                    "required": ["v"],
                }
            },
            "$ref": "#/definitions/node",
        },
        ['{"v": 1, "kids": [{"v": 2, "kids": []}]}', '{"v": 1, "kids": [{"kids": []}]}'],
    ),
    (
        "keywords beside $ref are ignored up to draft 7",
        UP_TO_7,
        {
            "definitions": {"r": {"type": "array"}},
            "properties": {"foo": {"$ref": "#/definitions/r", "maxItems": 2}},
        },
        ['{"foo": [1, 2, 3]}', '{"foo": 1}'],
    ),
    (
        "keywords beside $ref apply from 2019-09",
        SINCE_2019,
        {
            "$defs": {"r": {"type": "array"}},
            "properties": {"foo": {"$ref": "#/$defs/r", "maxItems": 2}},
        },
        ['{"foo": [1, 2, 3]}', '{"foo": [1]}', '{"foo": 1}'],
    ),
    (
        "$ref resolved against the base of its own $id",
        SINCE_2019,
        {
            "$id": "https://example.com/root.json",
            "$defs": {
                "n": {"type": "string"},
                "item": {
                    "$id": "https://example.com/item.json",
                    "$defs": {"n": {"type": "integer"}},
                    "properties": {"v": {"$ref": "#/$defs/n"}},
                },
            },
            "properties": {"x": {"$ref": "item.json"}, "y": {"$ref": "#/$defs/n"}},
        },
        ['{"x": {"v": 1}}', '{"x": {"v": "a"}}', '{"y": "a"}', '{"y": 1}'],
    ),
    (
        "$ref resolved against the base of its own $id (draft 7)",
        ("6", "7"),
        {
            "$id": "http://example.com/root.json",
            "definitions": {
                "n": {"type": "string"},
                "item": {
                    "$id": "http://example.com/item.json",
                    "definitions": {"n": {"type": "integer"}},
                    "properties": {"v": {"$ref": "#/definitions/n"}},
                },
            },
            "properties": {"x": {"$ref": "item.json"}},
        },
        ['{"x": {"v": 1}}', '{"x": {"v": "a"}}'],
    ),
    (
        "lone surrogates are kept as they are",
        SINCE_6,
        {
            "properties": {
                "c": {"const": "\ud800"},
                "e": {"enum": ["\udc00x"]},
                "p": {"pattern": "^\ud800$"},
                "o": {"propertyNames": {"const": "\udfff"}},
            }
        },
        [
            '{"c": "\\ud800"}',
            '{"c": "\\ufffd"}',
            '{"e": "\\udc00x"}',
            '{"p": "\\ud800"}',
            '{"o": {"\\udfff": 1}}',
            '{"o": {"\\ufffd": 1}}',
        ],
    ),
    (
        "unevaluatedProperties (left to the final pass)",
        SINCE_2019,
        {"properties": {"a": {}}, "unevaluatedProperties": False},
        ['{"a": 1}', '{"b": 1}'],
    ),
]


# A property named twice: with `duplicate_names: last` the last occurrence counts, as
# json.loads (and so jsonschema) reads it; with `reject` (the default) each of these
# documents is blocked where the name repeats.  (name, drafts, schema, documents), each
# document with a repeated name.
DUPLICATES: list[tuple[str, tuple[str, ...], dict[str, Any], list[str]]] = [
    (
        "the last value of a property counts",
        ALL,
        {"properties": {"a": {"type": "integer"}}},
        [
            '{"a": "x", "a": 1}',  # first bad, last good: valid
            '{"a": 1, "a": "x"}',  # first good, last bad: invalid
            '{"a": 1, "a": 1}',
            '{"a": "x", "a": [], "a": 2}',  # three times, the last good
            '{"a": 1, "a": 2, "a": null}',  # three times, the last bad
            '{"a": "x", "b": true, "a": 1, "c": [1]}',
        ],
    ),
    (
        "nested objects",
        ALL,
        {
            "properties": {
                "o": {"properties": {"k": {"type": "integer", "minimum": 0}}, "required": ["k"]},
                "l": {"items": {"properties": {"v": {"enum": [1, 2]}}}},
            }
        },
        [
            '{"o": {"k": "x", "k": 1}}',
            '{"o": {"k": 1, "k": -1}}',
            '{"o": {"k": -1}, "o": {"k": 1}}',
            '{"o": {"k": 1}, "o": {"k": 1, "k": "x"}}',
            '{"o": {"z": 1}, "o": {"k": 0}}',  # a first value missing "k" is superseded
            '{"o": {"k": 0}, "o": {"z": 1}}',
            '{"l": [{"v": 3, "v": 1}], "l": [{"v": 2, "v": 1}]}',
            '{"l": [{"v": 1}], "l": [{"v": 1}, {"v": 1, "v": 3}]}',
            '{"o": {"o": {"k": "x"}, "k": 1}}',
        ],
    ),
    (
        "property counts and required count each name once",
        SINCE_6,
        {"maxProperties": 2, "minProperties": 2, "required": ["a", "b"]},
        [
            '{"a": 1, "b": 2, "a": 3}',
            '{"a": 1, "a": 2, "a": 3, "b": 4}',
            '{"a": 1, "a": 2}',  # one name: too few, and "b" missing
            '{"a": 1, "b": 2, "c": 3, "a": 4}',
            '{"b": 1, "b": 2, "c": 3}',
        ],
    ),
    (
        "dependentRequired counts names",
        SINCE_2019,
        {"dependentRequired": {"a": ["b"]}},
        ['{"a": 1, "b": 2, "a": 3}', '{"a": 1, "a": 2}', '{"b": 1, "b": 2}'],
    ),
    (
        "additionalProperties false and propertyNames",
        SINCE_6,
        {
            "properties": {"a": {"type": "string"}},
            "additionalProperties": False,
            "propertyNames": {"maxLength": 3},
        },
        [
            '{"a": 1, "a": "x"}',
            '{"a": "x", "a": 1}',
            '{"zz": 1, "zz": 2}',  # a forbidden name, however often
            '{"a": "x", "long": 1, "a": "y"}',
        ],
    ),
    (
        "additionalProperties and patternProperties as schemas",
        ALL,
        {
            "patternProperties": {"^x": {"type": "integer"}},
            "additionalProperties": {"type": "string"},
        },
        [
            '{"x1": "s", "x1": 1}',
            '{"x1": 1, "x1": "s"}',
            '{"b": 1, "b": "s"}',
            '{"b": "s", "b": 1}',
        ],
    ),
    (
        "anyOf and oneOf around a repeated name",
        ALL,
        {
            "anyOf": [
                {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"a": {"type": "string"}}, "required": ["a"]},
            ],
            "properties": {
                "o": {"oneOf": [{"properties": {"k": {"type": "integer"}}}, {"type": "array"}]}
            },
        },
        [
            '{"a": null, "a": 1}',
            '{"a": "s", "a": null}',
            '{"a": 1, "a": "s", "o": {"k": "x", "k": 1}}',
            '{"a": 1, "o": {"k": 1, "k": "x"}}',
            '{"a": 1, "o": [], "o": {"k": "x"}}',
        ],
    ),
    (
        "a repeated name inside an array",
        ALL,
        {"type": "array", "items": {"properties": {"n": {"maxLength": 1}}}},
        [
            '[{"n": "long", "n": "s"}]',
            '[{"n": "s", "n": "long"}]',
            '[{"n": "s"}, {"n": "xx", "n": "", "n": "yy"}]',
        ],
    ),
]

DUPLICATE_PARAMS = [
    pytest.param(draft, body, docs, "last", id=f"repeated names: {name} [draft {draft}]")
    for name, drafts, body, docs in DUPLICATES
    for draft in drafts
]


def _schema(draft: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DRAFTS[draft], **body}


def _policy(
    schema: dict[str, Any], release: str = "on_complete", duplicates: str = "reject"
) -> ge.Policy:
    entry = {"id": "j", "type": "schema", "extract": False, "release": release}
    entry["duplicate_names"] = duplicates
    return make_policy([{**entry, "schema": schema}], name="conformance")


def _jsonschema_accepts(schema: dict[str, Any], text: str) -> bool:
    cls = jsonschema.validators.validator_for(schema)
    return bool(cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid(json.loads(text)))


def _repeats(text: str) -> bool:
    """Whether some object in ``text`` gives a name twice."""
    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        out = dict(items)
        repeated = repeated or len(out) < len(items)
        return out

    json.loads(text, object_pairs_hook=pairs)
    return repeated


def _first_repeat(text: str) -> tuple[int, int]:
    """The span of the first name given twice in one object (names without escapes)."""
    objects: list[set[str] | None] = []  # None: an array
    i = 0
    while i < len(text):
        c = text[i]
        if c in "{[":
            objects.append(set() if c == "{" else None)
        elif c in "}]":
            objects.pop()
        elif c == '"':
            end = text.index('"', i + 1) + 1
            names = objects[-1]
            if names is not None and text[end:].lstrip().startswith(":"):
                name = text[i + 1 : end - 1]
                if name in names:
                    return i, end
                names.add(name)
            i = end
            continue
        i += 1
    raise AssertionError(f"no repeated name in {text!r}")


def _cut(text: str, sizes: list[int]) -> list[str]:
    chunks, i, k = [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        chunks.append(text[i : i + n])
        i, k = i + n, k + 1
    return chunks


def _streamed(policy: ge.Policy, text: str, sizes: list[int]) -> ge.Result:
    stream = policy.stream_sync(_cut(text, sizes))
    out = "".join(stream)
    assert stream.result is not None
    assert out == stream.result.text
    return stream.result


PARAMS = [
    pytest.param(draft, body, docs, "reject", id=f"{name} [draft {draft}]")
    for name, drafts, body, docs in CASES
    for draft in drafts
]
_POLICIES: dict[str, ge.Policy] = {}


def _cached(
    schema: dict[str, Any], release: str = "on_complete", duplicates: str = "reject"
) -> ge.Policy:
    key = json.dumps(schema, sort_keys=True) + release + duplicates
    if key not in _POLICIES:
        _POLICIES[key] = _policy(schema, release, duplicates)
    return _POLICIES[key]


@pytest.mark.parametrize(("draft", "body", "docs", "duplicates"), PARAMS + DUPLICATE_PARAMS)
def test_validate_and_stream_agree_with_jsonschema(
    draft: str, body: dict[str, Any], docs: list[str], duplicates: str
) -> None:
    schema = _schema(draft, body)
    policy = _cached(schema, duplicates=duplicates)
    verdicts = set()
    for text in docs:
        want = _jsonschema_accepts(schema, text)
        verdicts.add(want)
        whole = policy.validate_sync(text)
        assert (whole.decision is ge.Decision.PASS) == want, (text, whole.reasons)
        if want:
            assert whole.text == text
        for sizes in ([1], [3, 1, 7], [len(text)]):
            assert _streamed(policy, text, sizes) == whole, (text, sizes)
    assert verdicts == {True, False}, "each case holds a document of each verdict"


def test_the_format_checker_has_the_formats_the_extra_brings() -> None:
    for cls in (jsonschema.Draft7Validator, jsonschema.Draft202012Validator):
        assert {"date-time", "uri", "hostname", "email", "ipv4"} <= set(cls.FORMAT_CHECKER.checkers)


def test_format_annotate_does_not_check_formats() -> None:
    text = "version: 1\nname: f\nchecks:\n  - id: j\n    type: schema\n    format: {mode}\n"
    text += "    schema: {{properties: {{d: {{format: date-time}}}}}}\n"
    doc = '{"d": "yesterday"}'
    asserted = ge.Policy.from_yaml(text.format(mode="assert")).validate_sync(doc)
    assert asserted.reasons == ('j: $.d: violates format "date-time", blocked',)
    annotated = ge.Policy.from_yaml(text.format(mode="annotate"))
    assert annotated.validate_sync(doc).decision is ge.Decision.PASS
    assert "".join(annotated.stream_sync(iter(doc))) == doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([(d, b, docs) for _, ds, b, docs in DUPLICATES for d in ds]),
    st.data(),
    st.lists(st.integers(1, 9), min_size=1, max_size=6),
    st.sampled_from(["on_complete", "incremental"]),
    st.sampled_from(["reject", "last"]),
)
def test_repeated_names_in_random_chunkings_give_the_verdict_of_jsonschema(
    case: tuple[str, dict[str, Any], list[str]],
    data: st.DataObject,
    sizes: list[int],
    release: str,
    duplicates: str,
) -> None:
    """`last`: jsonschema's verdict on json.loads's reading; `reject`: each is blocked."""
    draft, body, docs = case
    text = data.draw(st.sampled_from(docs))
    schema = _schema(draft, body)
    policy = _cached(schema, release, duplicates)
    want = (duplicates == "last" or not _repeats(text)) and _jsonschema_accepts(schema, text)
    stream = policy.stream_sync(_cut(text, sizes))
    out = "".join(stream)
    got = stream.result
    assert got is not None
    assert (got.decision is ge.Decision.PASS) == want
    assert got == policy.validate_sync(text)
    if want:
        assert out == text
    else:  # (incremental: what was checked may be out; never the violating value)
        assert text.startswith(out)
        assert len(out) <= min(f.start for f in got.findings)


@pytest.mark.parametrize(
    ("draft", "body", "text"),
    [(d, b, t) for _, ds, b, docs in DUPLICATES for d in ds[-1:] for t in docs if _repeats(t)],
)
def test_rejected_repeats_block_at_the_name_that_repeats(
    draft: str, body: dict[str, Any], text: str
) -> None:
    policy = _cached(_schema(draft, body))
    whole = policy.validate_sync(text)
    assert whole.decision is ge.Decision.BLOCK
    (finding,) = whole.findings
    repeat = _first_repeat(text)
    if "(duplicate_names: reject)" in finding.reason:
        assert (finding.start, finding.end) == repeat
    else:  # another violation showed first, before the repeat
        assert finding.end <= repeat[0]
    for sizes in ([1], [3, 1, 7]):
        assert _streamed(policy, text, sizes) == whole, (text, sizes)


def test_a_number_past_the_digit_limit_is_refused() -> None:
    policy = _policy({"properties": {"a": {"type": "integer"}}})
    doc = '{"a": ' + "9" * 5000 + "}"
    whole = policy.validate_sync(doc)
    assert whole.reasons == ("j: $.a: a number with more than 4,300 digits, blocked",)
    assert _streamed(policy, doc, [2, 5]) == whole


def test_multiple_of_an_integer_too_large_for_a_float_is_decided_exactly() -> None:
    # jsonschema raises OverflowError here; exact fractions decide (the step as written).
    policy = _policy({"properties": {"a": {"multipleOf": 0.1}, "b": {"multipleOf": 0.3}}})
    assert policy.validate_sync('{"a": 1' + "0" * 400 + "}").decision is ge.Decision.PASS
    bad = '{"b": 1' + "0" * 400 + "}"  # 10**400 / 0.3 is not an integer
    whole = policy.validate_sync(bad)
    assert whole.reasons == ("j: $.b: violates multipleOf 0.3, blocked",)
    assert _streamed(policy, bad, [3]) == whole


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([(d, b, docs) for _, ds, b, docs in CASES for d in ds]),
    st.data(),
    st.lists(st.integers(1, 9), min_size=1, max_size=6),
)
def test_random_chunkings_give_the_verdict_of_jsonschema(
    case: tuple[str, dict[str, Any], list[str]], data: st.DataObject, sizes: list[int]
) -> None:
    draft, body, docs = case
    text = data.draw(st.sampled_from(docs))
    schema = _schema(draft, body)
    policy = _cached(schema)
    got = _streamed(policy, text, sizes)
    assert (got.decision is ge.Decision.PASS) == _jsonschema_accepts(schema, text)
    assert got == policy.validate_sync(text)
