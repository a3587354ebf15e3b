"""Structured output in the stream: early verdicts that jsonschema agrees with."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest
from _chunks import cut
from _policies import make_policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guardrails_engine as ge
from guardrails_engine.checks._schema.check import covers
from guardrails_engine.checks._schema.jsonstream import JsonScan, Violation

# -- random schemas and documents ----------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([0.5, -1.5, 2.0]),
    st.text(alphabet='ab\u00e9"\\\n', max_size=4),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=4),
    ),
    max_leaves=12,
)
TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"]


def schemas() -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        st.just(True),
        st.just({}),
        st.builds(lambda t: {"type": t}, st.sampled_from(TYPES)),
        st.builds(
            lambda t: {"type": t},
            st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True),
        ),
        st.builds(lambda e: {"enum": e}, st.lists(scalars, min_size=1, max_size=3)),
        st.builds(lambda c: {"const": c}, scalars),
        st.builds(lambda n: {"type": "string", "maxLength": n}, st.integers(0, 3)),
        st.builds(lambda n: {"minLength": n}, st.integers(0, 3)),
        st.builds(lambda p: {"pattern": p}, st.sampled_from(["^a", "b$", "[0-9]"])),
        st.builds(lambda n: {"minimum": n}, st.integers(-2, 2)),
        st.builds(lambda n: {"exclusiveMaximum": n}, st.integers(-2, 2)),
        st.builds(lambda n: {"multipleOf": n}, st.sampled_from([2, 3, 0.5, 1.5])),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(
                lambda props, req, extra: {
                    "type": "object",
                    "properties": props,
                    "required": req,
                    "additionalProperties": extra,
                },
                st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
                st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True),
                st.one_of(st.just(True), st.just(False), inner),
            ),
            st.builds(lambda i: {"items": i}, inner),
            st.builds(
                lambda i, n: {"type": "array", "items": i, "maxItems": n},
                inner,
                st.integers(0, 3),
            ),
            st.builds(lambda p: {"prefixItems": p}, st.lists(inner, min_size=1, max_size=2)),
            st.builds(lambda n: {"maxProperties": n, "minProperties": 1}, st.integers(0, 2)),
            st.builds(lambda names: {"propertyNames": names}, inner),
            st.builds(
                lambda deps: {"dependentRequired": deps},
                st.dictionaries(
                    st.sampled_from(["a", "b", "c"]),
                    st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=2, unique=True),
                    max_size=2,
                ),
            ),
            st.builds(lambda bs: {"anyOf": bs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda bs: {"oneOf": bs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda bs: {"allOf": bs}, st.lists(inner, min_size=1, max_size=2)),
            st.builds(lambda s: {"not": s}, inner),
        ),
        max_leaves=6,
    )


def rooted_schemas() -> st.SearchStrategy[Any]:
    """Schemas, some reached through a ``$ref`` from the root."""
    return st.one_of(
        schemas(), st.builds(lambda s: {"$defs": {"x": s}, "$ref": "#/$defs/x"}, schemas())
    )


def policy_for(
    schema: Any, release: str = "on_complete", extract: bool = False, duplicates: str = "reject"
) -> ge.Policy:
    entry = {"id": "j", "type": "schema", "release": release, "extract": extract}
    entry["duplicate_names"] = duplicates
    return make_policy([{**entry, "schema": schema}], block_message="[blocked]")


def scan_of(p: ge.Policy) -> JsonScan:
    """The streaming check of ``p``'s schema check, on its own."""
    check = p.checks[0]
    return JsonScan(
        check.schema,  # type: ignore[attr-defined]
        resolve=check.resolve,  # type: ignore[attr-defined]
        known=check.known,  # type: ignore[attr-defined]
        conforms=check.conforms,  # type: ignore[attr-defined]
        extract=False,
        reject_duplicates=check.reject_duplicates,  # type: ignore[attr-defined]
    )


def streaming_verdict(p: ge.Policy, text: str, sizes: list[int]) -> str | None:
    """The streaming check's own verdict, without the final jsonschema pass."""
    scan = scan_of(p)
    offset = 0
    try:
        for chunk in cut(text, sizes):
            scan.feed(chunk, offset)
            offset += len(chunk)
        scan.finish(offset)
    except Violation as v:
        return v.reason
    return None


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rooted_schemas(), documents, st.lists(st.integers(1, 6), min_size=1, max_size=8), st.booleans()
)
def test_streamed_verdict_equals_jsonschema(
    schema: Any, document: Any, sizes: list[int], indent: bool
) -> None:
    text = json.dumps(document, indent=2 if indent else None, ensure_ascii=False)
    one_verdict(schema, text, sizes, "on_complete")


def one_verdict(
    schema: Any, text: str, sizes: list[int], release: str, duplicates: str = "reject"
) -> None:
    """validate, the stream in these chunks and jsonschema (on ``json.loads(text)``)
    give one verdict."""
    valid = jsonschema.Draft202012Validator(schema).is_valid(json.loads(text))
    p = policy_for(schema, release, duplicates=duplicates)
    whole = p.validate_sync(text)
    assert (whole.decision is ge.Decision.PASS) == valid, whole.reasons
    # The streaming check alone: never a violation jsonschema would not report
    # (sound), and every one it would report when it covers the schema (complete).
    early = streaming_verdict(p, text, sizes)
    if early is not None:
        assert not valid, early
    elif covers(schema):
        assert valid
    stream = p.stream_sync(cut(text, sizes))
    out = "".join(stream)
    assert stream.result == whole
    if valid:
        assert out == text
    else:  # (incremental: what was checked may be out, never the violating span)
        assert out.endswith("[blocked]")
        assert len(out) - len("[blocked]") <= min(f.start for f in whole.findings)


@settings(max_examples=150, deadline=None)
@given(documents, st.integers(0, 10), st.sampled_from(["on_complete", "incremental"]))
def test_broken_documents_always_block(document: Any, drop: int, release: str) -> None:
    """A truncated or corrupted document is a block, never invented into JSON."""
    text = json.dumps(document)
    broken = text[: max(0, len(text) - 1 - drop)] if len(text) > 1 else "{"
    try:
        json.loads(broken)
    except json.JSONDecodeError:
        p = policy_for(True, release)
        assert p.validate_sync(broken).decision is ge.Decision.BLOCK
        assert "".join(p.stream_sync(cut(broken, [3]))).endswith("[blocked]")


# -- a corpus of documents across schemas ----------------------------------------------------

SCHEMAS: list[Any] = [
    {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}},
    {"type": "object", "additionalProperties": False, "properties": {"id": {"type": "integer"}}},
    {"type": "array", "items": {"type": "number", "minimum": 0}, "maxItems": 3},
    {"type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["a", "b"]}}}},
    {"type": "object", "properties": {"price": {"type": "number", "exclusiveMaximum": 100}}},
    {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "integer"}]},
    {"oneOf": [{"type": "object", "required": ["a"]}, {"type": "object", "required": ["b"]}]},
    {
        "$defs": {"item": {"type": "object", "required": ["sku"]}},
        "type": "array",
        "items": {"$ref": "#/$defs/item"},
    },
    {
        "type": "object",
        "properties": {"email": {"type": "string", "pattern": "@"}},
        "maxProperties": 2,
    },
    {
        "type": "object",
        "properties": {"n": {"const": 1}, "s": {"minLength": 2}},
        "minProperties": 1,
    },
    {
        "type": "object",
        "properties": {
            "items": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]}
        },
    },
    {
        "allOf": [{"type": "object"}, {"required": ["x"]}],
        "properties": {"x": {"type": ["null", "string"]}},
    },
]


def corpus() -> list[tuple[int, Any]]:
    rng = random.Random(11)
    values: list[Any] = [
        {"answer": "hi"},
        {"answer": 1},
        {},
        {"id": 3},
        {"id": 1.5},
        {"id": 1, "x": 2},
        [1, 2],
        [1, -1],
        [0, 1, 2, 3],
        {"tags": ["a", "b"]},
        {"tags": ["c"]},
        {"price": 99.5},
        {"price": 100},
        "abc",
        "abcd",
        7,
        7.5,
        {"a": 1},
        {"b": 1},
        {"a": 1, "b": 2},
        [{"sku": 1}],
        [{"no": 1}],
        {"email": "a@b"},
        {"email": "ab"},
        {"email": "a@b", "x": 1, "y": 2},
        {"n": 1, "s": "ab"},
        {"n": 2},
        {"s": "a"},
        {"items": ["x", True]},
        {"items": [1, True]},
        {"x": None},
        {"x": 3},
        {"y": 1},
        None,
        True,
        [],
        "",
        {"answer": "a", "deep": [[[{}]]]},
    ]
    out = []
    for i, _schema in enumerate(SCHEMAS):
        for value in rng.sample(values, 20):
            out.append((i, value))
    return out


def test_corpus_verdicts_equal_jsonschema() -> None:
    cases = corpus()
    assert len(cases) >= 200 and len(SCHEMAS) >= 10
    policies = [policy_for(s) for s in SCHEMAS]
    valid_seen = invalid_seen = 0
    for i, value in cases:
        text = json.dumps(value)
        valid = jsonschema.Draft202012Validator(SCHEMAS[i]).is_valid(value)
        valid_seen += valid
        invalid_seen += not valid
        for chunks in (list(text), cut(text, [4]), [text]):
            result = policies[i].stream_sync(chunks)
            list(result)
            assert result.result is not None
            assert (result.result.decision is ge.Decision.PASS) == valid, (i, text)
    assert valid_seen > 40 and invalid_seen > 40


# -- early detection -----------------------------------------------------------------------


def blocked_pulling(p: ge.Policy, text: str) -> tuple[Any, ge.Finding, int]:
    """A stream of ``text`` in 4-character chunks that blocks: the stream, its one
    finding, and how much of the source was pulled."""
    pulled = 0

    def source() -> Any:
        nonlocal pulled
        for chunk in cut(text, [4]):
            pulled += len(chunk)
            yield chunk

    stream = p.stream_sync(source())
    assert list(stream) == ["[blocked]"]
    assert stream.result is not None
    (finding,) = stream.result.findings
    return stream, finding, pulled


@pytest.mark.parametrize(
    "schema, document, reason",
    [
        (
            SCHEMAS[1],
            {"id": 1, "extra": "x" * 500},
            "$: properties not allowed by additionalProperties",
        ),
        (SCHEMAS[2], [1, 2, 3, 4, *range(200)], "$: violates maxItems 3"),
        (SCHEMAS[8], {"x": 1, "y": 2, "z": 3, "rest": "x" * 500}, "$: violates maxProperties 2"),
        (SCHEMAS[0], [{"answer": 1}], '$: expected "object", got array'),
        (SCHEMAS[5], "x" * 600, "$: matches none of the anyOf alternatives"),
        (
            {"type": "array", "items": {"multipleOf": 0.01}},
            [1.25, 0.005] + [1] * 200,
            "$[1]: violates multipleOf 0.01",
        ),
    ],
)
def test_stream_stops_at_the_token_that_reveals_the_violation(
    schema: Any, document: Any, reason: str
) -> None:
    text = json.dumps(document)
    p = policy_for(schema)
    _stream, finding, pulled = blocked_pulling(p, text)
    assert finding.reason == f"j: {reason}, blocked"
    assert pulled <= finding.end + 4  # the violation's end plus one chunk
    assert pulled < len(text) / 2


@pytest.mark.parametrize(
    "schema, document, reason",
    [
        (
            {"type": "array", "items": SCHEMAS[0]},
            [{"answer": 42, "more": 1}, {"rest": "x" * 500}],
            '$[0].answer: expected "string", got integer',
        ),
        (
            {"type": "array", "items": SCHEMAS[3]},
            [{"tags": ["c"]}, "x" * 500],
            '$[0].tags[0]: expected one of ["a", "b"]',
        ),
        (
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"qty": {"type": "integer", "multipleOf": 5}},
                },
            },
            [{"qty": 7}] + [{"qty": 5}] * 100,
            "$[0].qty: violates multipleOf 5",
        ),
    ],
)
def test_a_bad_property_value_is_sure_when_its_object_closes(
    schema: Any, document: Any, reason: str
) -> None:
    # With `duplicate_names: last` the name may come again, and then its last value
    # counts (as json.loads reads it): a violation in a property's value is pending
    # until the object closes.  With `reject` (the default) it is sure where it shows.
    text = json.dumps(document)
    close = text.index("}") + 1
    late = policy_for(schema, duplicates="last")
    stream, finding, pulled = blocked_pulling(late, text)
    assert finding.reason == f"j: {reason}, blocked"
    assert finding.end < close
    assert close <= pulled <= close + 4  # the object's close plus one chunk
    assert stream.result == late.validate_sync(text)
    early = policy_for(schema)
    stream, finding, pulled = blocked_pulling(early, text)
    assert finding.reason == f"j: {reason}, blocked"
    assert pulled <= finding.end + 4  # the revealing token plus one chunk
    assert stream.result == early.validate_sync(text)


def test_a_pending_violation_holds_incremental_release_back() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    p = policy_for(schema, "incremental", duplicates="last")
    pad = '"pad": "' + "p" * 40 + '"'
    value_start = len('{"a": ')
    for text, valid in (
        ('{"a": "x", ' + pad + ', "a": 1, "z": 2}', True),
        ('{"a": 1, ' + pad + ', "a": "x", ' + pad + "}", False),
        ('{"a": "x", ' + pad + ', "a": 2, "a": [], ' + pad + "}", False),
    ):
        second = text.index('"a"', 1)
        bad_value = text.rindex('"a": ') + len('"a": ')
        pulled = 0
        seen: list[tuple[int, int]] = []  # (pulled, released) as each piece comes out

        def source(text: str = text) -> Any:
            nonlocal pulled
            for chunk in cut(text, [3]):
                pulled += len(chunk)
                yield chunk

        stream = p.stream_sync(source())
        released = 0
        for piece in stream:
            released += len(piece)
            seen.append((pulled, released))
        assert stream.result is not None
        assert (stream.result.decision is ge.Decision.PASS) == valid
        assert stream.result == p.validate_sync(text)
        if valid:
            # Held at the start of the bad first value until the name came again.
            assert all(r <= value_start for n, r in seen if n <= second)
            assert any(r > value_start for n, r in seen if n < len(text))
        else:
            assert all(r <= bad_value for n, r in seen[:-1])  # (then the block message)


def test_a_repeated_forbidden_name_is_dropped_at_every_occurrence() -> None:
    p = ge.Policy.from_yaml(REPAIRING % "incremental")
    text = '{"x": 1, "a": 2, "x": {"y": [1]}, "b": [{"c": 1, "y": 2, "y": 3}], "x": 4}'
    whole = p.validate_sync(text)
    assert whole.decision is ge.Decision.REPAIR, whole.reasons
    assert json.loads(whole.text) == {"a": 2, "b": [{"c": 1}]}
    assert '"x"' not in whole.text and '"y"' not in whole.text
    assert len(whole.findings) == 5
    for sizes in ([1], [4], [2, 7]):
        stream = p.stream_sync(cut(text, sizes))
        assert "".join(stream) == whole.text
        assert stream.result == whole
    # Without the repair the name is forbidden however often it comes.
    plain = policy_for(SCHEMAS[1])
    result = plain.validate_sync('{"id": 1, "x": 2, "x": 3}')
    assert result.reasons == ("j: $: properties not allowed by additionalProperties, blocked",)


def _repairable_tree() -> st.SearchStrategy[Any]:
    """Documents for REPAIRING with names that may repeat (forbidden ones too)."""
    item = st.lists(st.tuples(st.sampled_from(["c", "x", "y"]), scalars), max_size=4)
    member = st.one_of(
        st.tuples(st.just("a"), st.one_of(st.integers(-3, 3), st.just("s"))),
        st.tuples(st.just("b"), st.lists(item.map(lambda ms: ("object", ms)), max_size=3)),
        st.tuples(st.sampled_from(["x", "zz"]), trees),
    )
    return st.lists(member, max_size=6).map(lambda ms: ("object", ms))


def _kept(tree: Any) -> dict[str, Any]:
    """What REPAIRING keeps: forbidden members dropped wherever they come, then the
    last occurrence of each name."""
    out: dict[str, Any] = {}
    for k, v in tree[1]:
        if k == "a":
            out[k] = v
        elif k == "b":
            out[k] = [{kk: vv for kk, vv in obj[1] if kk == "c"} for obj in v]
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.deferred(_repairable_tree),
    st.lists(st.integers(1, 6), min_size=1, max_size=6),
    st.sampled_from(["on_complete", "incremental"]),
)
def test_repairs_drop_a_repeated_forbidden_name_wherever_it_comes(
    tree: Any, sizes: list[int], release: str
) -> None:
    text = render(("object", [(k, ("array", v) if k == "b" else v) for k, v in tree[1]]))
    p = ge.Policy.from_yaml(REPAIRING % release)
    kept = _kept(tree)
    schema = {"properties": {"a": {"type": "integer"}}}
    ok = jsonschema.Draft202012Validator(schema).is_valid(kept)
    whole = p.validate_sync(text)
    assert (whole.decision is not ge.Decision.BLOCK) == ok, (text, whole.reasons)
    if ok:
        assert json.loads(whole.text) == kept
    stream = p.stream_sync(cut(text, sizes))
    out = "".join(stream)
    assert stream.result == whole
    if ok:
        assert out == whole.text


def test_pii_in_a_repeated_name_is_repaired_and_the_last_value_judged() -> None:
    p = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n"
        "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS], action: repair}\n"
        "  - id: j\n    type: schema\n    release: incremental\n    duplicate_names: last\n"
        "    schema: {type: object, properties: {a: {type: string, maxLength: 40}}}\n"
    )
    good = '{"a": 7, "a": "write to bob@example.com", "a": "mail ann@example.org now"}'
    whole = p.validate_sync(good)
    assert whole.decision is ge.Decision.REPAIR, whole.reasons
    assert whole.text == (
        '{"a": 7, "a": "write to <EMAIL_ADDRESS>", "a": "mail <EMAIL_ADDRESS> now"}'
    )
    bad = '{"a": "mail ann@example.org", "a": 7}'
    assert p.validate_sync(bad).decision is ge.Decision.BLOCK
    for text in (good, bad):
        for sizes in ([1], [3], [5, 2]):
            stream = p.stream_sync(cut(text, sizes))
            out = "".join(stream)
            assert stream.result == p.validate_sync(text)
            if stream.result.decision is not ge.Decision.BLOCK:
                assert out == stream.result.text
            else:
                assert "ann@" not in out


# -- repeated names: the last occurrence counts, as json.loads reads it ----------------------

NAMES = ["a", "b", "c"]
# A document as a tree whose objects are lists of members, so that a name may repeat.
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: ("array", xs)),
        st.lists(st.tuples(st.sampled_from(NAMES), inner), max_size=5).map(
            lambda ms: ("object", ms)
        ),
    ),
    max_leaves=12,
)


def render(tree: Any) -> str:
    if isinstance(tree, tuple) and tree[0] == "array":
        return "[" + ", ".join(render(x) for x in tree[1]) + "]"
    if isinstance(tree, tuple):
        return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in tree[1]) + "}"
    return json.dumps(tree, ensure_ascii=False)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rooted_schemas(),
    trees,
    st.lists(st.integers(1, 6), min_size=1, max_size=8),
    st.sampled_from(["on_complete", "incremental"]),
)
def test_repeated_names_give_the_verdict_of_jsonschema(
    schema: Any, tree: Any, sizes: list[int], release: str
) -> None:
    one_verdict(schema, render(tree), sizes, release, duplicates="last")


def _first_repeat(tree: Any, text: str) -> tuple[int, int] | None:
    """Where the first name given twice in one object is, in ``render(tree)``, by
    the order the names are written (None: no name repeats)."""
    found: list[tuple[int, int]] = []
    # Walk the text and the tree together: each member's name follows its own search.
    pos = 0

    def walk(node: Any) -> None:
        nonlocal pos
        if isinstance(node, tuple) and node[0] == "array":
            for x in node[1]:
                walk(x)
        elif isinstance(node, tuple):
            seen = set()
            for k, v in node[1]:
                pos = text.index(json.dumps(k) + ":", pos)
                if k in seen:
                    found.append((pos, pos + len(json.dumps(k))))
                seen.add(k)
                pos += len(json.dumps(k)) + 1
                walk(v)

    walk(tree)
    return min(found) if found else None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rooted_schemas(),
    trees,
    st.lists(st.integers(1, 6), min_size=1, max_size=8),
    st.sampled_from(["on_complete", "incremental"]),
)
def test_rejected_repeats_block_where_they_repeat_and_other_documents_get_jsonschemas_verdict(
    schema: Any, tree: Any, sizes: list[int], release: str
) -> None:
    text = render(tree)
    repeat = _first_repeat(tree, text)
    if repeat is None:
        one_verdict(schema, text, sizes, release)
        return
    p = policy_for(schema, release)
    whole = p.validate_sync(text)
    assert whole.decision is ge.Decision.BLOCK
    stream = p.stream_sync(cut(text, sizes))
    out = "".join(stream)
    assert stream.result == whole
    assert out.endswith("[blocked]")
    (finding,) = whole.findings
    if finding.reason.endswith("(duplicate_names: reject), blocked"):
        assert (finding.start, finding.end) == repeat
    else:  # a violation that shows before the repeat
        assert finding.end <= repeat[0]
        # ... and is found from the text before the repeat alone.
        with pytest.raises(Violation):
            scan_of(p).feed(text[: repeat[0]], 0)


def test_incremental_release_lets_validated_json_out() -> None:
    text = json.dumps({"answer": "x" * 100, "n": 1})
    p = policy_for(SCHEMAS[0], "incremental")
    stream = p.stream_sync(cut(text, [5]))
    pieces = list(stream)
    assert "".join(pieces) == text
    assert len(pieces) > 5  # released as it went, not at the end
    on_complete = list(policy_for(SCHEMAS[0]).stream_sync(cut(text, [5])))
    assert on_complete == [text]


def test_extract_finds_the_json_in_prose_and_fences() -> None:
    text = 'Sure! Here it is:\n```json\n{"answer": "ok"}\n```\nHope it helps.'
    p = policy_for(SCHEMAS[0], extract=True)
    assert p.validate_sync(text).decision is ge.Decision.PASS
    repair = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n  - id: j\n    type: schema\n    action: repair\n"
        "    schema: {type: object, required: [answer]}\n"
    )
    result = repair.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    assert result.text == '{"answer": "ok"}'
    assert "".join(repair.stream_sync(list(text))) == '{"answer": "ok"}'
    missing = repair.validate_sync('Here: {"reply": "ok"}')
    assert missing.decision is ge.Decision.BLOCK  # never invents the missing field


def test_deep_nesting_has_no_recursion_limit() -> None:
    depth = 10_000
    text = "[" * depth + "]" * depth
    p = policy_for({"type": "array"})
    assert "".join(p.stream_sync(cut(text, [64]))) == text
    bad = "[" * depth + "}" + "]" * (depth - 1)
    assert p.validate_sync(bad).decision is ge.Decision.BLOCK


def test_reasons_name_the_path_never_a_value() -> None:
    p = policy_for(SCHEMAS[8])
    result = p.validate_sync(json.dumps({"email": "jdoe.example.com"}))
    assert result.reasons == ('j: $.email: violates pattern "@", blocked',)
    assert "jdoe" not in repr(result)


def test_schema_from_a_pydantic_model_and_local_ref_files(tmp_path: Any) -> None:
    (tmp_path / "models_for_test.py").write_text(
        "import pydantic\nclass Answer(pydantic.BaseModel):\n    answer: str\n", encoding="utf-8"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        p = ge.Policy.from_yaml(
            "version: 1\nname: t\nchecks:\n  - id: j\n    type: schema\n"
            "    model: 'models_for_test:Answer'\n",
            trusted_modules=["models_for_test"],
        )
        assert p.validate_sync('{"answer": "x"}').decision is ge.Decision.PASS
        assert p.validate_sync('{"answer": 1}').decision is ge.Decision.BLOCK
    finally:
        sys.path.remove(str(tmp_path))
    (tmp_path / "item.json").write_text('{"type": "object", "required": ["sku"]}', encoding="utf-8")
    (tmp_path / "list.json").write_text(
        '{"type": "array", "items": {"$ref": "item.json"}}', encoding="utf-8"
    )
    (tmp_path / "p.yaml").write_text(
        "version: 1\nname: t\nchecks:\n  - id: j\n    type: schema\n    schema_file: list.json\n",
        encoding="utf-8",
    )
    q = ge.load_policy(tmp_path / "p.yaml")
    assert q.validate_sync('[{"sku": 1}]').decision is ge.Decision.PASS
    assert q.validate_sync('[{"no": 1}]').decision is ge.Decision.BLOCK
    with pytest.raises(ge.PolicyError, match="cannot read the schema: No module named"):
        ge.Policy.from_yaml(
            "version: 1\nname: t\nchecks:\n"
            "  - id: j\n    type: schema\n    model: 'no_such_mod:X'\n",
            trusted_modules=["no_such_mod"],
        )


# -- opt-in repairs ----------------------------------------------------------------------------

REPAIRING = """
version: 1
name: t
checks:
  - id: j
    type: schema
    release: %s
    duplicate_names: last
    repairs: [trailing_commas, additional_properties]
    schema:
      type: object
      additionalProperties: false
      properties:
        a: {type: integer}
        b: {type: array, items: {type: object, additionalProperties: false, properties: {c: {}}}}
"""


def strip_forbidden(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "a":
            out[k] = v
        elif k == "b":
            out[k] = [{kk: vv for kk, vv in item.items() if kk == "c"} for item in v]
    return out


items = st.dictionaries(st.sampled_from(["c", "x", "y"]), scalars, max_size=3)
repairable = st.fixed_dictionaries(
    {},
    optional={
        "a": st.integers(-3, 3),
        "b": st.lists(items, max_size=3),
        "x": documents,
        "zz": scalars,
    },
)


def add_trailing_commas(text: str, rng: random.Random) -> str:
    out = []
    for i, ch in enumerate(text):
        if ch in "]}" and i > 0 and text[i - 1] not in "[{" and rng.random() < 0.5:
            out.append(",")
        out.append(ch)
    return "".join(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    repairable,
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(1, 6), min_size=1, max_size=6),
    st.sampled_from(["on_complete", "incremental"]),
)
def test_repairs_drop_forbidden_properties_and_trailing_commas(
    document: dict[str, Any], seed: int, sizes: list[int], release: str
) -> None:
    p = ge.Policy.from_yaml(REPAIRING % release)
    rng = random.Random(seed)
    text = add_trailing_commas(json.dumps(document), rng)
    # (a trailing comma inside a forbidden value goes with the value)
    whole = p.validate_sync(text)
    expected = strip_forbidden(document)
    assert whole.decision is not ge.Decision.BLOCK, whole.reasons
    assert json.loads(whole.text) == expected
    if whole.decision is ge.Decision.REPAIR:
        assert all(f.action is ge.Action.REPAIR for f in whole.findings)
        assert all(f.reason.endswith("removed") for f in whole.findings)
    stream = p.stream_sync(cut(text, sizes))
    assert "".join(stream) == whole.text
    assert stream.result == whole


def test_repairs_are_opt_in() -> None:
    plain = policy_for(SCHEMAS[1])
    assert plain.validate_sync('{"id": 1, "x": 2}').decision is ge.Decision.BLOCK
    assert plain.validate_sync('{"id": 1,}').decision is ge.Decision.BLOCK


def test_the_schema_sees_the_repaired_document() -> None:
    """PII masked inside a JSON string keeps the JSON valid; the schema judges what is shown."""
    p = ge.Policy.from_yaml(
        "version: 1\nname: t\nblock_message: '[blocked]'\nchecks:\n"
        "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}\n"
        "  - id: j\n    type: schema\n"
        "    schema: {type: object, properties: {answer: {type: string}, "
        "contact: {type: string, format: email}}}\n"
    )
    text = '{"answer": "write to jdoe@example.com"}'
    result = p.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR
    assert json.loads(result.text) == {"answer": "write to <EMAIL_ADDRESS>"}
    # The e-mail address satisfies `format: email`; its mask does not.
    strict = '{"contact": "jdoe@example.com"}'
    blocked = p.validate_sync(strict)
    assert blocked.decision is ge.Decision.BLOCK
    assert blocked.reasons[-1] == 'j: $.contact: violates format "email", blocked'
    for size in (1, 3, 7):
        stream = p.stream_sync(cut(strict, [size]))
        assert list(stream) == ["[blocked]"]
        assert stream.result == blocked
        assert "".join(p.stream_sync(cut(text, [size]))) == result.text


def test_a_flagging_schema_flags_the_repaired_document() -> None:
    p = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n"
        "  - {id: pii, type: pii, entities: [EMAIL_ADDRESS]}\n"
        "  - id: j\n    type: schema\n    action: flag\n"
        "    schema: {type: object, properties: {contact: {type: string, format: email}}}\n"
    )
    result = p.validate_sync('{"contact": "jdoe@example.com"}')
    assert result.decision is ge.Decision.REPAIR
    assert result.text == '{"contact": "<EMAIL_ADDRESS>"}'
    assert result.reasons[-1] == 'j: $.contact: violates format "email", flagged'


# -- other checks inside JSON strings ------------------------------------------------------

JSON_PII = ge.Policy.from_yaml(
    """
version: 1
name: json-pii
checks:
  - id: pii
    type: pii
    entities: [EMAIL_ADDRESS, CREDIT_CARD, PHONE_NUMBER, US_SSN, URL]
    action: repair
  - id: words
    type: content
    terms: ["secret plan"]
    action: repair
    replacement: 'the "plan" \\ (redacted)'
  - id: answer
    type: schema
    schema: {type: object, required: [answer], properties: {answer: {type: string}}}
    action: block
"""
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                "card:\n4111 1111 1111 1111",
                "mail\tbob@example.com",
                "call\n+1 415 555 0100",
                'say "hi" to 212-45-6789',
                "the secret plan\nis set",
                "plain words\\ here",
                "https://example.com/docs",
                'read "www.example.org/x" first',
            ]
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.integers(1, 9), max_size=30),
)
def test_pii_after_json_escapes_is_masked_and_the_json_stays_valid(
    parts: list[str], sizes: list[int]
) -> None:
    # json.dumps writes \n, \t, \" and \\ escapes: a card number after "\n"
    # must still be found (it starts a word in the decoded string), a mask must
    # cover no part of an escape, and a replacement with a quote or a
    # backslash must not end the string.
    text = json.dumps({"answer": " / ".join(parts)})
    result = JSON_PII.validate_sync(text)
    plain = all(p == "plain words\\ here" for p in parts)
    assert result.decision is (ge.Decision.PASS if plain else ge.Decision.REPAIR)
    answer = json.loads(result.text)["answer"]
    for value in (
        "4111 1111 1111 1111",
        "bob@example.com",
        "415 555 0100",
        "212-45-6789",
        "example.com",
        "example.org",
    ):
        assert value not in answer
    if any(p.startswith("read") for p in parts):
        assert 'read "<URL>" first' in answer  # the quotes are not part of the address
    if any("secret plan" in p for p in parts):
        assert 'the "plan" \\ (redacted)' in answer
    pieces = list(JSON_PII.stream_sync(cut(text, sizes)))
    assert "".join(pieces) == result.text


def test_a_quoted_url_is_masked_inside_its_quotes() -> None:
    # presidio's "Quoted URL" patterns take the quotes in; they may be the
    # quotes of a JSON string, which the mask must leave whole.
    text = '{"answer": "https://example.com/a?b=1", "more": "see \\"http://example.org\\""}'
    result = JSON_PII.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR, result.reasons
    assert json.loads(result.text) == {"answer": "<URL>", "more": 'see "<URL>"'}
    assert [text[f.start : f.end] for f in result.findings] == [
        "https://example.com/a?b=1",
        "http://example.org",
    ]
    assert "".join(JSON_PII.stream_sync(cut(text, [3]))) == result.text
    prose = ge.Policy.from_yaml(
        "version: 1\nname: p\nchecks:\n  - {id: pii, type: pii, entities: [URL], action: repair}\n"
    )
    assert prose.validate_sync("he said 'https://example.com/x' twice").text == (
        "he said '<URL>' twice"
    )


def test_an_address_written_with_an_escape_is_an_address() -> None:
    text = '{"answer": "write to bob\\u0040example.com today"}'
    result = JSON_PII.validate_sync(text)
    assert json.loads(result.text) == {"answer": "write to <EMAIL_ADDRESS> today"}
    (finding,) = [f for f in result.findings if f.entity_type == "EMAIL_ADDRESS"]
    assert text[finding.start : finding.end] == "bob\\u0040example.com"


def test_property_names_are_checked_when_the_key_ends() -> None:
    p = policy_for(
        {"type": "object", "propertyNames": {"pattern": "^[a-z_]+$", "maxLength": 12}},
        release="incremental",
    )
    text = '{"name": 1, "Secret-Token-4111": 2, "rest": "x"}'
    pulled: list[str] = []

    def source() -> Any:
        for i in range(0, len(text), 3):
            pulled.append(text[i : i + 3])
            yield text[i : i + 3]

    stream = p.stream_sync(source())
    out = "".join(stream)
    assert stream.result is not None and stream.result.decision is ge.Decision.BLOCK
    (reason,) = stream.result.reasons
    assert reason == "j: $ (property name): violates maxLength 12, blocked"
    assert "Secret" not in reason
    # Stopped within a chunk of the end of the offending key.
    key_end = text.index('"Secret-Token-4111"') + len('"Secret-Token-4111"')
    assert len("".join(pulled)) <= key_end + 3
    # Incremental release: what was validated before the key went out, the key never.
    assert out == '{"name": 1, [blocked]'


def test_dependent_required_is_checked_when_the_object_closes() -> None:
    schema = {
        "type": "object",
        "properties": {"order": {"type": "object", "dependentRequired": {"card": ["billing"]}}},
    }
    p = policy_for(schema, release="incremental")
    bad = '{"order": {"card": "x", "note": "y"}, "rest": "' + "z" * 300 + '"}'
    stream = p.stream_sync(cut(bad, [4]))
    out = "".join(stream)
    assert stream.result is not None and stream.result.decision is ge.Decision.BLOCK
    assert stream.result.reasons == (
        "j: $.order: property 'billing' is required by 'card' (dependentRequired), blocked",
    )
    # Found at the brace that closes the order (pending until the document closes:
    # "order" may come again); from the brace on nothing goes out.
    assert out.startswith('{"order": {"card": "x", "note": ') and out.endswith("[blocked]")
    assert "}" not in out and "z" not in out
    good = '{"order": {"card": "x", "billing": "y"}, "rest": "z"}'
    assert p.validate_sync(good).decision is ge.Decision.PASS
    assert p.validate_sync('{"order": {"billing": "y"}}').decision is ge.Decision.PASS


def test_keywords_of_another_draft_are_not_checked_early() -> None:
    # Draft 7 has no dependentRequired: jsonschema ignores it, and so does the stream.
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "dependentRequired": {"card": ["billing"]},
    }
    text = '{"card": "x"}'
    assert jsonschema.validators.validator_for(schema)(schema).is_valid(json.loads(text))
    p = policy_for(schema)
    assert p.validate_sync(text).decision is ge.Decision.PASS
    assert "".join(p.stream_sync(cut(text, [2]))) == text


NUMBERS = """
version: 1
name: json-numbers
checks:
  - id: pii
    type: pii
    entities: [PHONE_NUMBER, CREDIT_CARD, US_SSN]
    action: repair
    repair: {repair}
  - id: j
    type: schema
    schema: {schema}
"""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 7), max_size=20))
def test_pii_written_as_a_json_number_becomes_a_string(sizes: list[int]) -> None:
    # A mask in place of a bare number would break the JSON (and so block):
    # there it is written as a JSON string; inside a string it stays bare.
    p = ge.Policy.from_yaml(NUMBERS.format(repair="mask", schema="{type: object}"))
    text = (
        '{"phone": 4155550100, "card": 4111111111111111, "n": 12,'
        ' "note": "call 4155550100", "list": [2125550199, 7]}'
    )
    result = p.validate_sync(text)
    assert result.decision is ge.Decision.REPAIR, result.reasons
    assert json.loads(result.text) == {
        "phone": "<PHONE_NUMBER>",
        "card": "<CREDIT_CARD>",
        "n": 12,
        "note": "call <PHONE_NUMBER>",
        "list": ["<PHONE_NUMBER>", 7],
    }
    assert "".join(p.stream_sync(cut(text, sizes))) == result.text


def test_a_number_that_must_stay_a_number_blocks_once_masked() -> None:
    typed = "{type: object, properties: {phone: {type: integer}}}"
    p = ge.Policy.from_yaml(NUMBERS.format(repair="redact", schema=typed))
    result = p.validate_sync('{"phone": 4155550100}')
    assert result.decision is ge.Decision.BLOCK
    assert result.reasons[-1] == 'j: $.phone: expected "integer", got string, blocked'
    untyped = ge.Policy.from_yaml(NUMBERS.format(repair="redact", schema="{type: object}"))
    assert untyped.validate_sync('{"phone": 4155550100}').text == '{"phone": ""}'


_PII_VALUES = st.sampled_from(
    [4155550100, 4111111111111111, 2125550199, "call 4155550100", "4111 1111 1111 1111", 17, 4242]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        _PII_VALUES,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(["a", "b", "phone"]), inner, max_size=3),
        ),
        max_leaves=6,
    ),
    st.booleans(),
    st.lists(st.integers(1, 9), max_size=30),
)
def test_pii_anywhere_in_json_is_repaired_and_the_json_stays_valid(
    document: Any, indent: bool, sizes: list[int]
) -> None:
    p = ge.Policy.from_yaml(NUMBERS.format(repair="mask", schema="true"))
    text = json.dumps({"d": document}, indent=2 if indent else None)
    result = p.validate_sync(text)
    assert result.decision is not ge.Decision.BLOCK, result.reasons
    out = json.loads(result.text)  # still JSON
    flat = json.dumps(out)
    for value in ("4155550100", "4111111111111111", "2125550199", "4111 1111 1111 1111"):
        assert value not in flat
    assert "".join(p.stream_sync(cut(text, sizes))) == result.text


# -- length and schema together ------------------------------------------------------------


def test_a_json_policy_blocks_a_long_answer_instead_of_cutting_it(policies_dir: Any) -> None:
    policy = ge.load_policy(policies_dir / "support-json.yaml")
    doc = json.dumps({"answer": "word " * 200_000})  # 1 MB, over the 4,000-character limit
    whole = policy.validate_sync(doc)
    assert whole.decision is ge.Decision.BLOCK
    assert whole.reasons == (
        "max-length: longer than 4000 characters (JSON output is never truncated), blocked",
    )
    pulls = 0

    def source() -> Any:
        nonlocal pulls
        for i in range(0, len(doc), 64):
            pulls += 1
            yield doc[i : i + 64]

    stream = policy.stream_sync(source())
    assert "".join(stream) == whole.text == policy.block_message
    assert stream.result == whole
    assert pulls <= 4000 // 64 + 2  # it stops at the limit, not at the end of the source
    # Short answers are untouched.
    short = json.dumps({"answer": "fine"})
    assert policy.validate_sync(short).text == short


def test_a_failing_schema_check_with_on_error_pass_lets_the_text_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from guardrails_engine.checks._schema import jsonstream as _jsonstream

    def boom(self: Any, text: str, base: int) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(_jsonstream.JsonScan, "feed", boom)
    policy = ge.Policy.from_yaml(
        "version: 1\nname: t\non_error: pass\nchecks:\n  - id: j\n    type: schema\n"
        "    schema: {type: object}\n"
    )
    doc = '{"answer": "kept"}'
    whole = policy.validate_sync(doc)
    assert (whole.decision, whole.text) == (ge.Decision.PASS, doc)
    assert whole.reasons == ("j: check failed (RuntimeError), skipped (on_error: pass)",)
    stream = policy.stream_sync(iter(doc))
    assert "".join(stream) == doc
    assert stream.result is not None
    # (The failure's span is what had been read when it failed.)
    assert (stream.result.decision, stream.result.text, stream.result.reasons) == (
        whole.decision,
        whole.text,
        whole.reasons,
    )
