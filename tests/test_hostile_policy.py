"""Hostile policies, round two: what a policy file can make the engine do.

A schema check that runs out of time (or fails) has vouched for nothing past what it
released: the document it holds is not let out with the block after it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _child import run_limited
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrails_engine as ge

SLOW_SCHEMA = ge.Policy.from_yaml(
    """
version: 1
name: slow-schema
check_timeout_ms: 1
block_message: "[blocked]"
checks:
  - id: doc
    type: schema
    schema:
      type: object
      properties: {b: {not: {const: SECRET-VALUE}}}
"""
)
#: A document the check cannot read within 1 ms, its forbidden value at the end.
BIG = json.dumps({f"k{i}": "v" * 20 for i in range(3000)} | {"b": "SECRET-VALUE"})


@settings(max_examples=10, deadline=None)
@given(size=st.sampled_from([1, 97, 1024, 8192, len(BIG)]))
def test_a_schema_check_out_of_time_releases_none_of_its_document(size: int) -> None:
    chunks = [BIG[i : i + size] for i in range(0, len(BIG), size)]
    stream = SLOW_SCHEMA.stream_sync(chunks)
    out = "".join(stream)
    # Blocked (out of time, or the value found): only the block message goes out.
    assert out == "[blocked]"
    assert stream.result is not None and stream.result.decision is ge.Decision.BLOCK
    assert SLOW_SCHEMA.validate_sync(BIG).decision is ge.Decision.BLOCK


# -- a schema's patterns and branches are bounded ------------------------------------------

REDOS_SCHEMAS = {
    "pattern": {"type": "object", "properties": {"x": {"type": "string", "pattern": "^(a+)+$"}}},
    "patternProperties": {"type": "object", "patternProperties": {"^(a|aa)+$": {}}},
}


@pytest.mark.parametrize("where", sorted(REDOS_SCHEMAS))
def test_a_schema_pattern_that_backtracks_is_refused_at_load(where: str, tmp_path: Path) -> None:
    # jsonschema matches with Python's re, which no deadline interrupts: a pattern the
    # policy's own patterns would be refused for is refused in a schema too.
    schema = REDOS_SCHEMAS[where]
    inline = (
        f"version: 1\nname: r\nchecks:\n  - {{id: j, type: schema, schema: {json.dumps(schema)}}}\n"
    )
    with pytest.raises(
        ge.PolicyError,
        match=rf":4: .*\$\.(properties\.x\.)?{where}: .*"
        "may backtrack catastrophically",
    ):
        ge.Policy.from_yaml(inline)
    # From a file: where it is, never the file's text.
    (tmp_path / "s.json").write_text(json.dumps(schema))
    (tmp_path / "p.yaml").write_text(
        "version: 1\nname: r\nchecks:\n  - {id: j, type: schema, schema_file: s.json}\n"
    )
    with pytest.raises(ge.PolicyError, match="may backtrack catastrophically") as caught:
        ge.load_policy(tmp_path / "p.yaml")
    assert "(a" not in str(caught.value) and str(tmp_path / "p.yaml") in str(caught.value)


def _fan(keyword: str, levels: int, leaf: str) -> dict[str, Any]:
    defs: dict[str, Any] = {
        f"d{i}": {keyword: [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": leaf}
    return {"$defs": defs, "type": "object", "properties": {"a": {"$ref": "#/$defs/d0"}}}


CHILD = """
import json, sys, guardrails_engine as ge
policy = ge.Policy.from_yaml(sys.argv[1] if len(sys.argv) > 1 else {policy!r})
chunks = {chunks!r}
stream = policy.stream_sync(chunks)
out = "".join(stream)
result = policy.validate_sync("".join(chunks))
print(json.dumps([out, stream.result.reasons, result.text, result.reasons]))
"""


#: What stops it: the check's time, or (the streaming check) the count, whichever first.
CUT_OFF = {"j: check timed out after 300 ms, blocked", "j: check failed (SchemaFanOut), blocked"}


@pytest.mark.parametrize(("keyword", "leaf"), [("anyOf", "integer"), ("allOf", "string")])
def test_a_schema_that_fans_out_is_cut_off(keyword: str, leaf: str) -> None:
    # Two branches a level, each to the next, 25 levels: 2**25 schemas for one value.
    # The streaming check follows anyOf branches: it stops past 100,000 (memory) or at
    # the check's time; allOf it reads once, and jsonschema's reading at the end (which
    # reads every branch) looks at the check's time at every keyword.  Before, anyOf ran
    # 50 s to a MemoryError, allOf (20 levels) 40 s, with a timeout of 1 s.
    schema = _fan(keyword, 25, leaf)
    policy = (
        "version: 1\nname: fan\ncheck_timeout_ms: 300\nblock_message: '[blocked]'\n"
        f"checks:\n  - {{id: j, type: schema, schema: {json.dumps(schema)}}}\n"
    )
    out = run_limited(CHILD.format(policy=policy, chunks=['{"a"', ': "xx"}']), seconds=60)
    streamed, stream_reasons, text, reasons = json.loads(out.splitlines()[-1])
    assert streamed == text == "[blocked]"
    assert len(stream_reasons) == len(reasons) == 1
    assert {*stream_reasons, *reasons} <= CUT_OFF


def test_a_pattern_only_regex_reads_is_bounded_by_the_deadline() -> None:
    # `\p{L}` is read by the regex package only (not analysed at load): its search is
    # given the check's time.
    schema = {
        "type": "object",
        "properties": {"x": {"type": "string", "pattern": r"^(\p{L}|\p{L}\p{L})+$"}},
    }
    policy = (
        "version: 1\nname: p\ncheck_timeout_ms: 300\nblock_message: '[blocked]'\n"
        f"checks:\n  - {{id: j, type: schema, schema: {json.dumps(schema)}}}\n"
    )
    doc = json.dumps({"x": "a" * 40 + "1"})  # (about a minute without a limit)
    out = run_limited(CHILD.format(policy=policy, chunks=[doc[:10], doc[10:]]), seconds=60)
    streamed, stream_reasons, text, reasons = json.loads(out.splitlines()[-1])
    assert streamed == text == "[blocked]"
    assert stream_reasons == reasons == ["j: check timed out after 300 ms, blocked"]


# -- ner_model names an installed spaCy model package, and nothing is imported to tell ---


@pytest.mark.parametrize("name", ["this.x", "antigravity.x", "..x", "json", "pip", "/tmp/model"])
def test_ner_model_is_a_model_package_and_nothing_else_is_imported(name: str) -> None:
    # `this.x` ran `import this` (find_spec imports a dotted name's parents), and `json`
    # or `pip` went to spacy.load, which imports what it is given: raw errors.
    out = run_limited(
        f"""
        import sys, guardrails_engine as ge
        policy = '''
        version: 1
        name: n
        checks:
          - {{id: p, type: pii, entities: [PERSON], ner_model: {name!r}}}
        '''
        try:
            ge.Policy.from_yaml(policy)
        except ge.PolicyError as exc:
            print("PolicyError", exc)
        print(sorted({{"this", "antigravity", "pip"}} & set(sys.modules)))
        """,
        seconds=120,
    )
    error, imported = out.splitlines()[-2:]
    assert error.startswith("PolicyError <string>:5: checks[0].ner_model")
    assert imported == "[]"


# -- every value error is a PolicyError at its place, quoting nothing of a file ---------

BAD_VALUES = {
    "a date that does not exist": "description: 2001-02-30",
    "an integer past Python's digits": "check_timeout_ms: " + "9" * 5000,
    "!!int of text": "description: !!int abc",
    "!!bool of text": "description: !!bool maybe",
    "!!timestamp of text": "description: !!timestamp nope",
    "!!float of text": "description: !!float nope",
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_a_value_yaml_cannot_read_is_a_policy_error_at_its_line(case: str) -> None:
    checks = "checks:\n  - {id: l, type: length, max_chars: 9}\n"
    text = f"version: 1\nname: v\n{BAD_VALUES[case]}\n{checks}"
    with pytest.raises(ge.PolicyError, match=r"^<string>:3: .*cannot be read as") as caught:
        ge.Policy.from_yaml(text)
    assert caught.value.line == 3
    assert not any(v in str(caught.value) for v in ("abc", "maybe", "nope", "99999"))


@pytest.mark.parametrize(
    "schema_text",
    [
        "type: string\nmaxLength: !!float TOP-SECRET-hunter2\n",
        "type: string\nmaxLength: !!bool top-secret\n",
        '{"$ref": "#/definitions/SECRET-PTR"}',
        "type: object\nproperties: {a: {$ref: '#/$defs/SECRET-PTR'}}\n",
    ],
)
def test_a_schema_file_s_content_is_never_quoted(schema_text: str, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(schema_text)
    (tmp_path / "p.yaml").write_text(
        "version: 1\nname: f\nchecks:\n  - {id: j, type: schema, schema_file: s.yaml}\n"
    )
    with pytest.raises(ge.PolicyError, match=r"p\.yaml:4: checks\[0\]\.schema_file") as caught:
        ge.load_policy(tmp_path / "p.yaml")
    assert "secret" not in str(caught.value).lower()
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ("{id: c, type: content, patterns: ['a{10000000}']}", "patterns[0]", "more than 1,000"),
        ("{id: c, type: content, patterns: ['x{2,4294967294}']}", "patterns[0]", "more than 1,000"),
        (
            "{id: c, type: content, patterns: ['" + "(" * 5000 + "a" + ")" * 5000 + "']}",
            "patterns[0]",
            "nested too deeply",
        ),
        (
            "{id: c, type: pii, entities: [EMAIL_ADDRESS], mask_template: '{entity:>999999999}'}",
            "mask_template",
            "only use the placeholder",
        ),
        (
            "{id: c, type: pii, entities: [EMAIL_ADDRESS], mask_template: '{entity.foo}'}",
            "mask_template",
            "only use the placeholder",
        ),
        (
            "{id: c, type: pii, entities: [EMAIL_ADDRESS], mask_template: '{entity!r}'}",
            "mask_template",
            "only use the placeholder",
        ),
    ],
)
def test_a_policy_line_that_would_eat_memory_or_stack_is_refused(
    entry: str, field: str, message: str
) -> None:
    # Before: a{10000000} took over 4 GB to compile; `{entity:>999999999}` wrote a
    # gigabyte for each value masked; `{entity.foo}` raised AttributeError; 5,000
    # nested groups raised RecursionError.
    policy = f"version: 1\nname: m\nchecks:\n  - {entry}\n"
    out = run_limited(
        f"""
        import guardrails_engine as ge
        try:
            ge.Policy.from_yaml({policy!r})
        except ge.PolicyError as exc:
            print(exc)
        """,
        seconds=60,
    )
    assert out.startswith(f"<string>:4: checks[0].{field} ")
    assert message in out


def test_a_schema_file_nested_hundreds_deep_is_a_policy_error(tmp_path: Path) -> None:
    # (YAML in the policy stops at 64 levels; a JSON file is read by json, then by
    # jsonschema's own recursion: a RecursionError, raw, before.)
    (tmp_path / "s.json").write_text('{"items": ' * 300 + "{}" + "}" * 300)
    (tmp_path / "p.yaml").write_text(
        "version: 1\nname: f\nchecks:\n  - {id: j, type: schema, schema_file: s.json}\n"
    )
    with pytest.raises(ge.PolicyError, match=r"p\.yaml:4: checks\[0\]\.schema_file .*nested too"):
        ge.load_policy(tmp_path / "p.yaml")


# -- a judge's base_url: this machine, or where the service's owner allows -----------------

JUDGE = """
version: 1
name: j
checks:
  - id: on-topic
    type: judge
    options:
      rubric: "Answers politely."
      client: "openai:gpt-4o-mini"
      base_url: "{url}"
"""


@pytest.mark.parametrize(
    ("url", "allowed", "loads"),
    [
        ("http://127.0.0.1:8000/v1", "", True),
        ("http://localhost:8000/v1", "", True),
        ("https://judge.corp.example/v1", "", False),
        ("https://judge.corp.example/v1", "https://judge.corp.example", True),
        ("https://judge.corp.example.evil.io/v1", "https://judge.corp.example", False),
        ("http://judge.corp.example/v1", "https://judge.corp.example", False),
        ("https://user:pw@localhost/v1", "", False),
        ("file:///etc/passwd", "", False),
    ],
)
def test_a_judge_s_base_url_is_this_machine_or_allowed(
    url: str, allowed: str, loads: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK sends the text, and the API key of its environment, to base_url: a policy
    # file alone cannot point it at another host.
    monkeypatch.setenv("GUARDRAILS_JUDGE_BASE_URLS", allowed)
    text = JUDGE.format(url=url)
    if loads:
        ge.Policy.from_yaml(text)
        return
    with pytest.raises(ge.PolicyError, match=r"<string>:10: checks\[0\]\.options\.base_url"):
        ge.Policy.from_yaml(text)


# -- a policy full of mistakes is reported in time linear in its size ----------------------

#: Python expressions of the policies (built in the child: too long for its command line).
MANY_MISTAKES = {
    # each reported mistake looked a key up along its mapping: 80 s for 20,000 (here 40,000)
    "unknown keys": '"version: 1\\nname: k\\n"'
    ' + "".join(f"unknown_{i}: 1\\n" for i in range(40_000))'
    ' + "checks:\\n  - {id: l, type: length, max_chars: 9}\\n"',
    # each type error was compared with every other error: 119 s for 20,000
    "wrong types": '"version: 1\\nname: t\\nchecks:\\n" + "".join('
    'f"  - {{id: c{i}, type: length, max_chars: x}}\\n" for i in range(20_000))',
    # the hint about ': ' in a plain value tried `[ \t]+#` at every character: 8.5 s
    # for 40,000 spaces
    "a colon in a long value": '"version: 1\\nname: c\\ndescription: a: " + " " * 150_000 + "x\\n"',
}


@pytest.mark.parametrize("case", sorted(MANY_MISTAKES))
def test_a_policy_full_of_mistakes_is_reported_in_linear_time(case: str) -> None:
    out = run_limited(
        f"""
        import guardrails_engine as ge
        try:
            ge.Policy.from_yaml({MANY_MISTAKES[case]})
        except ge.PolicyError as exc:
            print(len(exc.problems), str(exc).splitlines()[0][:120])
        """,
        seconds=60,
    )
    count, first = out.strip().splitlines()[-1].split(" ", 1)
    assert int(count) >= 1 and first.startswith("<string>:")


def test_tools_naming_one_file_compile_it_once(tmp_path: Path) -> None:
    # Three levels, 30 tools a level each naming the next file: 27,000 compilations before
    # (20 tools: 21 s), one per file now; each tool still gets the file's rules.
    for name, nxt in (("a", "b"), ("b", "c")):
        tools = "".join(f"  t{i}: {{policy: {nxt}.yaml}}\n" for i in range(30))
        (tmp_path / f"{name}.yaml").write_text(
            f"version: 1\nname: {name}\nchecks:\n  - {{id: w, type: content, terms: [foo]}}\n"
            f"tools:\n{tools}"
        )
    (tmp_path / "c.yaml").write_text(
        "version: 1\nname: c\nchecks:\n  - {id: w, type: content, terms: [bar], action: block}\n"
    )
    out = run_limited(
        f"""
        import guardrails_engine as ge
        policy = ge.load_policy({str(tmp_path / "a.yaml")!r})
        print(len(policy.tools), sorted({{id(t.policy) for t in policy.tools.values()}}).__len__())
        """,
        seconds=60,
    )
    assert out.split() == ["30", "1"]
