"""PolicyError messages: every malformed policy names the file, the line and the field.

Each case is written to a file so that the message names it; the expected
string is the whole message, ``{path}`` standing for the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import guardrails_engine as ge


@dataclass(frozen=True)
class Case:
    text: str
    line: int | None
    field: str | None
    check_id: str | None
    message: str  # the whole str(exc), with {path} for the file


def _head(body: str) -> str:
    return "version: 1\nname: t\n" + body


CASES = {
    # -- YAML itself ---------------------------------------------------------
    "yaml-syntax-flow": Case(
        _head("checks:\n  - id: [c1\n    type: content\n"),
        5,
        None,
        None,
        "{path}:5: invalid YAML: expected ',' or ']', but got ':'",
    ),
    "yaml-syntax-tab": Case(
        _head("checks:\n\t- id: c1\n"),
        4,
        None,
        None,
        "{path}:4: invalid YAML: found character '\\t' that cannot start any token",
    ),
    "yaml-unclosed-quote": Case(
        'version: 1\nname: "t\n',
        3,
        None,
        None,
        "{path}:3: invalid YAML: found unexpected end of stream",
    ),
    "empty-file": Case("", 1, None, None, "{path}:1: the policy is empty"),
    "comments-only": Case("# nothing here\n", 1, None, None, "{path}:1: the policy is empty"),
    "not-a-mapping": Case(
        "- a\n- b\n", 1, None, None, "{path}:1: a policy must be a mapping of keys to values"
    ),
    # -- top level -----------------------------------------------------------
    "wrong-version": Case(
        "version: 2\nname: t\nchecks:\n  - id: c1\n    type: content\n    terms: [foo]\n",
        1,
        "version",
        None,
        "{path}:1: version: unsupported policy version 2 (this library reads version 1)",
    ),
    "version-missing": Case(
        "name: t\nchecks:\n  - id: c1\n    type: content\n    terms: [foo]\n",
        1,
        "version",
        None,
        "{path}:1: version: required field is missing",
    ),
    "checks-missing": Case(
        _head("description: no checks\n"),
        1,
        "checks",
        None,
        "{path}:1: checks: required field is missing",
    ),
    "checks-null": Case(
        _head("checks:\n"), 3, "checks", None, "{path}:3: checks: `checks` is empty"
    ),
    "checks-empty-list": Case(
        _head("checks: []\n"),
        3,
        "checks",
        None,
        "{path}:3: checks: List should have at least 1 item after validation, not 0",
    ),
    "unknown-top-level-key": Case(
        _head("colour: red\nchecks:\n  - id: c1\n    type: content\n    terms: [foo]\n"),
        3,
        "colour",
        None,
        "{path}:3: colour: unknown key",
    ),
    "bad-on-error": Case(
        _head("on_error: ignore\nchecks:\n  - id: c1\n    type: length\n    max_chars: 3\n"),
        3,
        "on_error",
        None,
        "{path}:3: on_error: Input should be 'block' or 'pass'",
    ),
    "max-holdback-chars-1": Case(
        _head(
            "stream:\n  max_holdback_chars: 1\nchecks:\n  - id: l\n    type: length\n"
            "    max_chars: 10\n"
        ),
        4,
        "stream.max_holdback_chars",
        None,
        "{path}:4: stream.max_holdback_chars: Input should be greater than or equal to 16",
    ),
    # -- checks ----------------------------------------------------------------
    "unknown-check-type": Case(
        _head("checks:\n  - id: c1\n    type: toxicity\n"),
        5,
        "checks[0].type",
        "c1",
        "{path}:5: checks[0].type (check 'c1'): unknown check type 'toxicity' "
        "(expected one of 'pii', 'content', 'schema', 'length', 'custom', 'topic', 'judge'); "
        "did you mean 'topic'?",
    ),
    "check-without-type": Case(
        _head("checks:\n  - id: c1\n    terms: [foo]\n"),
        4,
        "checks[0].type",
        "c1",
        "{path}:4: checks[0].type (check 'c1'): "
        "a check needs a `type` (pii, content, schema, length, custom or topic)",
    ),
    "check-not-a-mapping": Case(
        _head("checks:\n  - just a string\n"),
        4,
        "checks[0]",
        None,
        "{path}:4: checks[0]: Input should be a valid dictionary or object to extract fields from",
    ),
    "bad-check-id": Case(
        _head("checks:\n  - id: 'has space'\n    type: length\n    max_chars: 4\n"),
        4,
        "checks[0].id",
        "has space",
        "{path}:4: checks[0].id (check 'has space'): "
        "String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]*$'",
    ),
    "duplicate-ids": Case(
        _head(
            "checks:\n  - id: c1\n    type: content\n    terms: [foo]\n"
            "  - id: c1\n    type: length\n    max_chars: 5\n"
        ),
        7,
        "checks[1].id",
        "c1",
        "{path}:7: checks[1].id (check 'c1'): duplicate check id 'c1' (first at checks[0])",
    ),
    "unknown-check-key": Case(
        _head("checks:\n  - id: c1\n    type: content\n    terms: [foo]\n    colour: red\n"),
        7,
        "checks[0].colour",
        "c1",
        "{path}:7: checks[0].colour (check 'c1'): unknown key",
    ),
    "bad-action": Case(
        _head("checks:\n  - id: c1\n    type: content\n    terms: [foo]\n    action: explode\n"),
        7,
        "checks[0].action",
        "c1",
        "{path}:7: checks[0].action (check 'c1'): Input should be 'repair', 'block' or 'flag'",
    ),
    "schema-bad-release": Case(
        _head(
            "checks:\n  - id: j\n    type: schema\n    schema_file: s.json\n"
            "    release: eventually\n"
        ),
        7,
        "checks[0].release",
        "j",
        "{path}:7: checks[0].release (check 'j'): Input should be 'on_complete' or 'incremental'",
    ),
    "per-check-on-error": Case(
        _head("checks:\n  - id: l\n    type: length\n    max_chars: 3\n    on_error: maybe\n"),
        7,
        "checks[0].on_error",
        "l",
        "{path}:7: checks[0].on_error (check 'l'): Input should be 'block' or 'pass'",
    ),
    "content-without-terms-or-patterns": Case(
        _head("checks:\n  - id: c\n    type: content\n    action: block\n"),
        4,
        "checks[0]",
        "c",
        "{path}:4: checks[0] (check 'c'): a content check needs `patterns` or `terms`",
    ),
    "blank-term": Case(
        _head("checks:\n  - id: c\n    type: content\n    terms: ['  ']\n"),
        6,
        "checks[0].terms[0]",
        "c",
        "{path}:6: checks[0].terms[0] (check 'c'): term is blank",
    ),
    "regex-does-not-compile": Case(
        _head(
            "checks:\n  - id: c1\n    type: content\n    patterns:\n      - 'ok'\n"
            "      - '(unclosed'\n"
        ),
        8,
        "checks[0].patterns[1]",
        "c1",
        "{path}:8: checks[0].patterns[1] (check 'c1'): "
        "regular expression does not compile: missing ) at position 9",
    ),
    "regex-matches-empty": Case(
        _head("checks:\n  - id: c1\n    type: content\n    patterns: ['a*']\n"),
        6,
        "checks[0].patterns[0]",
        "c1",
        "{path}:6: checks[0].patterns[0] (check 'c1'): regular expression matches the empty string",
    ),
    "length-without-limit": Case(
        _head("checks:\n  - id: l\n    type: length\n"),
        4,
        "checks[0]",
        "l",
        "{path}:4: checks[0] (check 'l'): a length check needs `max_chars` or `max_words`",
    ),
    "max-chars-0": Case(
        _head("checks:\n  - id: l\n    type: length\n    max_chars: 0\n"),
        6,
        "checks[0].max_chars",
        "l",
        "{path}:6: checks[0].max_chars (check 'l'): Input should be greater than or equal to 1",
    ),
    "max-chars-fraction": Case(
        _head("checks:\n  - id: l\n    type: length\n    max_chars: 5.5\n"),
        6,
        "checks[0].max_chars",
        "l",
        "{path}:6: checks[0].max_chars (check 'l'): "
        "Input should be a valid integer, got a number with a fractional part",
    ),
    "min-score-3": pytest.param(
        Case(
            _head(
                "checks:\n  - id: p\n    type: pii\n    entities: [EMAIL_ADDRESS]\n"
                "    min_score: 3\n"
            ),
            7,
            "checks[0].min_score",
            "p",
            "{path}:7: checks[0].min_score (check 'p'): Input should be less than or equal to 1",
        ),
    ),
    "min-score-per-entity-3": pytest.param(
        Case(
            _head(
                "checks:\n  - id: p\n    type: pii\n    entities: [EMAIL_ADDRESS]\n"
                "    min_score: {EMAIL_ADDRESS: 3}\n"
            ),
            7,
            "checks[0].min_score.EMAIL_ADDRESS",
            "p",
            "{path}:7: checks[0].min_score.EMAIL_ADDRESS (check 'p'): "
            "Input should be less than or equal to 1",
        ),
    ),
    "entities-empty": Case(
        _head("checks:\n  - id: p\n    type: pii\n    entities: []\n"),
        4,
        "checks[0]",
        "p",
        "{path}:4: checks[0] (check 'p'): a pii check needs `entities`, `recognizers` or `deny`",
    ),
    "entities-missing": Case(
        _head("checks:\n  - id: p\n    type: pii\n"),
        4,
        "checks[0]",
        "p",
        "{path}:4: checks[0] (check 'p'): a pii check needs `entities`, `recognizers` or `deny`",
    ),
    "entity-listed-twice": Case(
        _head("checks:\n  - id: p\n    type: pii\n    entities: [EMAIL_ADDRESS, EMAIL_ADDRESS]\n"),
        6,
        "checks[0].entities",
        "p",
        "{path}:6: checks[0].entities (check 'p'): entity listed twice: EMAIL_ADDRESS",
    ),
    "entity-lower-case": Case(
        _head("checks:\n  - id: p\n    type: pii\n    entities: [email]\n"),
        6,
        "checks[0].entities[0]",
        "p",
        "{path}:6: checks[0].entities[0] (check 'p'): "
        "String should match pattern '^[A-Z][A-Z0-9_]*$'",
    ),
    "second-check-is-named": Case(
        _head(
            "checks:\n  - id: a\n    type: length\n    max_chars: 4\n"
            "  - id: b\n    type: length\n    max_chars: 0\n"
        ),
        9,
        "checks[1].max_chars",
        "b",
        "{path}:9: checks[1].max_chars (check 'b'): Input should be greater than or equal to 1",
    ),
    # Every problem is reported, one line each; the attributes are the first one's.
    "every-problem-is-reported": Case(
        _head(
            "checks:\n  - id: l\n    type: length\n    max_chars: 0\n    max_words: 0\n"
            "    action: explode\n"
        ),
        6,
        "checks[0].max_chars",
        "l",
        "{path}:6: checks[0].max_chars (check 'l'): Input should be greater than or equal to 1\n"
        "{path}:7: checks[0].max_words (check 'l'): Input should be greater than or equal to 1\n"
        "{path}:8: checks[0].action (check 'l'): Input should be 'repair', 'block' or 'flag'",
    ),
    "misspelt-action-is-suggested": Case(
        _head("checks:\n  - id: c\n    type: content\n    terms: [x]\n    action: blokc\n"),
        7,
        "checks[0].action",
        "c",
        "{path}:7: checks[0].action (check 'c'): Input should be 'repair', 'block' or 'flag'; "
        "did you mean 'block'?",
    ),
    "misspelt-check-key-is-suggested": Case(
        _head("checks:\n  - id: c\n    type: content\n    terms: [x]\n    replacment: x\n"),
        7,
        "checks[0].replacment",
        "c",
        "{path}:7: checks[0].replacment (check 'c'): unknown key; did you mean 'replacement'?",
    ),
    "misspelt-top-level-key-is-suggested": Case(
        _head("blockmessage: no\nchecks:\n  - id: c\n    type: content\n    terms: [x]\n"),
        3,
        "blockmessage",
        None,
        "{path}:3: blockmessage: unknown key; did you mean 'block_message'?",
    ),
    "misspelt-recognizer-key-is-suggested": Case(
        _head(
            "checks:\n  - id: p\n    type: pii\n    recognizers:\n      - entity: EMP\n"
            "        patterns: [{regex: 'E\\d+', scroe: 0.3}]\n"
        ),
        8,
        "checks[0].recognizers[0].patterns[0].scroe",
        "p",
        "{path}:8: checks[0].recognizers[0].patterns[0].scroe (check 'p'): unknown key; "
        "did you mean 'score'?",
    ),
    "misspelt-check-type-is-suggested": Case(
        _head("checks:\n  - id: c\n    type: contnet\n    terms: [x]\n"),
        5,
        "checks[0].type",
        "c",
        "{path}:5: checks[0].type (check 'c'): unknown check type 'contnet' "
        "(expected one of 'pii', 'content', 'schema', 'length', 'custom', 'topic', 'judge'); "
        "did you mean 'content'?",
    ),
    "duplicate-keys-and-other-problems-together": Case(
        _head(
            "name: u\nchecks:\n  - id: c\n    type: content\n    terms: [x]\n"
            "    terms: [y]\n    colour: red\n"
        ),
        3,
        "name",
        None,
        "{path}:3: name: key 'name' appears twice in the same mapping\n"
        "{path}:8: terms: key 'terms' appears twice in the same mapping\n"
        "{path}:9: checks[0].colour (check 'c'): unknown key",
    ),
    "pii-bad-action": Case(
        _head(
            "checks:\n  - id: p\n    type: pii\n    entities: [EMAIL_ADDRESS]\n"
            "    action: explode\n"
        ),
        7,
        "checks[0].action",
        "p",
        "{path}:7: checks[0].action (check 'p'): Input should be 'repair', 'block' or 'flag'",
    ),
    "schema-both-sources": Case(
        _head(
            "checks:\n  - id: j\n    type: schema\n    schema: {type: object}\n"
            "    schema_file: s.json\n"
        ),
        6,
        "checks[0].schema",
        "j",
        "{path}:6: checks[0].schema (check 'j'): "
        "give exactly one of `schema`, `schema_file` and `model`",
    ),
    "schema-no-source": Case(
        _head("checks:\n  - id: j\n    type: schema\n"),
        4,
        "checks[0]",
        "j",
        "{path}:4: checks[0] (check 'j'): give exactly one of `schema`, `schema_file` and `model`",
    ),
    # A plain value with ': ' is not YAML: refused, with what to do.
    "plain-value-with-colon-is-refused": Case(
        _head(
            "description: rules: a list\nchecks:\n  - id: c1\n    type: content\n    terms: [foo]\n"
        ),
        3,
        "description",
        None,
        "{path}:3: description: a plain YAML value cannot contain ': '; quote the value of "
        "`description` (description: '...' or description: \"...\")",
    ),
    "plain-value-with-colon-in-a-check-is-refused": Case(
        _head(
            "checks:\n  - id: c1\n    type: content\n    terms: [foo]\n"
            "    replacement: note: removed   # a comment\n"
        ),
        7,
        "replacement",
        None,
        "{path}:7: replacement: a plain YAML value cannot contain ': '; quote the value of "
        "`replacement` (replacement: '...' or replacement: \"...\")",
    ),
    # -- an inline `schema:` key must not confuse the field locator ------------
    "inline-schema-bad-action": pytest.param(
        Case(
            _head(
                "checks:\n  - id: j\n    type: schema\n    schema: {type: object}\n"
                "    action: explode\n"
            ),
            7,
            "checks[0].action",
            "j",
            "{path}:7: checks[0].action (check 'j'): Input should be 'block', 'flag' or 'repair'",
        ),
    ),
    "inline-schema-unknown-key": pytest.param(
        Case(
            _head(
                "checks:\n  - id: j\n    type: schema\n    schema:\n      type: object\n"
                "    colour: red\n"
            ),
            8,
            "checks[0].colour",
            "j",
            "{path}:8: checks[0].colour (check 'j'): unknown key",
        ),
    ),
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_policy_error_names_file_line_and_field(tmp_path: Path, case: Case) -> None:
    path = _write(tmp_path, case.text)
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    exc = info.value
    assert isinstance(exc, ValueError)
    assert exc.source == str(path)
    assert exc.line == case.line
    assert exc.field == case.field
    assert exc.check_id == case.check_id
    assert str(exc) == case.message.format(path=path)


def test_unknown_entity_suggests_the_nearest_known_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _head(
            "checks:\n  - id: p\n    type: pii\n"
            "    entities: [EMAIL_ADDRESS, EMAIL, PHONE_NUMBR, FOO_BAR]\n"
        ),
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    exc = info.value
    assert (exc.source, exc.line, exc.field, exc.check_id) == (
        str(path),
        6,
        "checks[0].entities[1]",
        "p",
    )
    assert [p.field for p in exc.problems] == [
        "checks[0].entities[1]",
        "checks[0].entities[2]",
        "checks[0].entities[3]",
    ]
    lines = str(exc).split("\n")
    where = f"{path}:6: checks[0].entities"
    assert (
        lines[0] == f"{where}[1] (check 'p'): unknown entity 'EMAIL'; did you mean 'EMAIL_ADDRESS'?"
    )
    assert lines[1].startswith(
        f"{where}[2] (check 'p'): unknown entity 'PHONE_NUMBR'; did you mean 'PHONE_NUMBER'"
    )
    # Nothing close: no list of ninety names, a pointer to the command that lists them.
    assert lines[2] == (
        f"{where}[3] (check 'p'): unknown entity 'FOO_BAR' "
        "(`guardrails-engine entities` lists the known ones)"
    )
    assert len(str(exc)) < 600


def test_a_per_entity_setting_for_an_entity_the_check_does_not_find(tmp_path: Path) -> None:
    # It would silently do nothing: a misspelt PHONE_NUMBER would keep the default score.
    path = _write(
        tmp_path,
        _head(
            "checks:\n  - id: p\n    type: pii\n    entities: [PHONE_NUMBER, EMAIL_ADDRESS]\n"
            "    deny: {PROJECT: [Blue Falcon]}\n"
            "    min_score: {default: 0.4, PHONE_NUMBR: 0.9, PROJECT: 0.5}\n"
            "    repair: {EMAIL_ADDRESS: hash, CREDIT_CARD: partial}\n"
            "    hash_key: 0123456789abcdef\n"
        ),
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:8: checks[0].min_score.PHONE_NUMBR (check 'p'): 'PHONE_NUMBR' is not an "
        "entity this check looks for; did you mean 'PHONE_NUMBER'?",
        f"{path}:9: checks[0].repair.CREDIT_CARD (check 'p'): 'CREDIT_CARD' is not an "
        "entity this check looks for",
    ]


def test_every_problem_is_a_policy_error_with_its_own_place(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _head(
            "checks:\n  - id: a\n    type: length\n    max_chars: 0\n"
            "  - id: a\n    type: content\n    terms: [x]\n    colour: red\n"
            "  - id: p\n    type: pii\n    entities: [EMAIL]\n"
        ),
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    problems = info.value.problems
    assert [(p.line, p.field, p.check_id) for p in problems] == [
        (6, "checks[0].max_chars", "a"),
        (7, "checks[1].id", "a"),
        (10, "checks[1].colour", "a"),
        (13, "checks[2].entities[0]", "p"),
    ]
    assert all(isinstance(p, ge.PolicyError) and p.source == str(path) for p in problems)
    assert str(info.value) == "\n".join(str(p) for p in problems)


def test_duplicate_check_ids_are_reported_with_the_other_problems(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _head(
            "checks:\n  - id: a\n    type: length\n    max_chars: 3\n"
            "  - id: a\n    type: length\n    max_chars: 4\n"
            "  - id: a\n    type: length\n    max_chars: 5\n"
        ),
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    assert [(p.line, p.message) for p in info.value.problems] == [
        (7, "duplicate check id 'a' (first at checks[0])"),
        (10, "duplicate check id 'a' (first at checks[0])"),
    ]


def test_min_score_out_of_range(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _head(
            "checks:\n  - id: p\n    type: pii\n    entities: [EMAIL_ADDRESS]\n    min_score: 3\n"
        ),
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    exc = info.value
    assert (exc.source, exc.line, exc.field, exc.check_id) == (
        str(path),
        7,
        "checks[0].min_score",
        "p",
    )
    assert str(exc).startswith(
        f"{path}:7: checks[0].min_score (check 'p'): Input should be less than or equal to 1"
    )


def test_invalid_inline_json_schema(tmp_path: Path) -> None:
    path = _write(
        tmp_path, _head("checks:\n  - id: j\n    type: schema\n    schema: {type: objekt}\n")
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    exc = info.value
    assert (exc.source, exc.line, exc.field, exc.check_id) == (
        str(path),
        6,
        "checks[0].schema",
        "j",
    )
    message = str(exc)
    assert message.startswith(
        f"{path}:6: checks[0].schema (check 'j'): not a valid JSON Schema at "
    )
    assert message.endswith(": 'objekt' is not valid under any of the given schemas")


def test_invalid_json_schema_names_the_place_in_the_users_schema(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _head(
            "checks:\n  - id: j\n    type: schema\n    schema:\n      type: object\n"
            "      properties:\n        a: {minLength: -1}\n"
        ),
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    message = str(info.value)
    assert message.startswith(
        f"{path}:6: checks[0].schema (check 'j'): not a valid JSON Schema at "
    )
    assert message.endswith(": -1 is less than the minimum of 0")
    where = message.split(" not a valid JSON Schema at ", 1)[1]
    assert "minLength" in where
    assert "allOf" not in where  # a metaschema path means nothing to the policy's author
    assert "$dynamicRef" not in where


def test_invalid_json_schema_in_schema_file(tmp_path: Path) -> None:
    (tmp_path / "answer.json").write_text('{"type": 5}', encoding="utf-8")
    path = _write(
        tmp_path, _head("checks:\n  - id: j\n    type: schema\n    schema_file: answer.json\n")
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    exc = info.value
    assert (exc.line, exc.field, exc.check_id) == (6, "checks[0].schema_file", "j")
    assert str(exc).startswith(
        f"{path}:6: checks[0].schema_file (check 'j'): not a valid JSON Schema at "
    )
    assert str(exc).endswith(": 5 is not valid under any of the given schemas")


def test_missing_schema_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path, _head("checks:\n  - id: j\n    type: schema\n    schema_file: nope.json\n")
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    exc = info.value
    assert (exc.source, exc.line, exc.field, exc.check_id) == (
        str(path),
        6,
        "checks[0].schema_file",
        "j",
    )
    # The schema file is resolved relative to the policy file, not the working directory.
    missing = tmp_path / "nope.json"
    assert str(exc) == (
        f"{path}:6: checks[0].schema_file (check 'j'): cannot read the schema: "
        f"[Errno 2] No such file or directory: '{missing}'"
    )


def test_schema_file_that_is_neither_json_nor_yaml(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{: nope [", encoding="utf-8")
    path = _write(
        tmp_path, _head("checks:\n  - id: j\n    type: schema\n    schema_file: bad.json\n")
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    assert str(info.value) == (
        f"{path}:6: checks[0].schema_file (check 'j'): cannot read the schema: "
        f"{tmp_path / 'bad.json'} is neither JSON nor YAML"
    )


def test_schema_file_relative_to_the_policy_loads(tmp_path: Path) -> None:
    (tmp_path / "answer.json").write_text(
        '{"type": "object", "required": ["answer"]}', encoding="utf-8"
    )
    path = _write(
        tmp_path, _head("checks:\n  - id: j\n    type: schema\n    schema_file: answer.json\n")
    )
    policy = ge.load_policy(path)
    assert policy.validate_sync('{"answer": 1}').decision is ge.Decision.PASS
    assert policy.validate_sync('{"other": 1}').decision is ge.Decision.BLOCK


def test_unreadable_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    exc = info.value
    assert (exc.source, exc.line, exc.field) == (str(path), None, None)
    assert str(exc) == (
        f"{path}: cannot read the policy: FileNotFoundError: "
        f"[Errno 2] No such file or directory: '{path}'"
    )


def test_policy_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(_head("description: caf\xe9\n").encode("latin-1"))
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    assert str(info.value).startswith(f"{path}: cannot read the policy: UnicodeDecodeError: ")


def test_from_yaml_names_the_given_source() -> None:
    text = _head("checks:\n  - id: l\n    type: length\n    max_chars: 0\n")
    with pytest.raises(ge.PolicyError) as info:
        ge.Policy.from_yaml(text)
    assert str(info.value) == (
        "<string>:6: checks[0].max_chars (check 'l'): Input should be greater than or equal to 1"
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.Policy.from_yaml(text, source="inline-policy")
    assert info.value.source == "inline-policy"
    assert str(info.value).startswith("inline-policy:6: ")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _head(
            "checks:\n  - id: secrets\n    type: content\n    terms: [password]\n"
            "checks:\n  - id: l\n    type: length\n    max_chars: 100\n"
        ),
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    assert info.value.line == 7
    assert info.value.field == "checks"


# -- plain values that contain ': ' are not YAML: refused, the shipped policies are strict --

ISSUE_EXAMPLE = """\
version: 1
name: support-assistant-json
description: Output rules for an assistant that answers in JSON, {"answer": "..."}.
checks:
  - id: max-length
    type: length
    max_chars: 4000
"""


def test_issue_example_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = _write(tmp_path, ISSUE_EXAMPLE)
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    assert (info.value.line, info.value.field) == (3, "description")
    assert "quote the value of `description`" in str(info.value)
    quoted = ISSUE_EXAMPLE.replace(
        'description: Output rules for an assistant that answers in JSON, {"answer": "..."}.',
        """description: 'Output rules for an assistant that answers in JSON, {"answer": "..."}.'""",
    )
    policy = ge.Policy.from_yaml(quoted)
    assert policy.description == (
        'Output rules for an assistant that answers in JSON, {"answer": "..."}.'
    )


def test_shipped_policies_are_strict_yaml(policies_dir: Path) -> None:
    paths = sorted(policies_dir.glob("*.yaml"))
    assert len(paths) >= 6
    for path in paths:
        yaml.safe_load(path.read_text(encoding="utf-8"))  # PyYAML itself reads every one
    policy = ge.load_policy(policies_dir / "support-json.yaml")
    assert policy.description == (
        'Output rules for an assistant that answers in JSON, {"answer": "..."}.'
    )


@pytest.mark.parametrize(
    "line",
    ["description: rules: a list", "description: it's a: test   # a comment", "  - x: a: b"],
)
def test_plain_value_with_colon_is_refused(line: str) -> None:
    with pytest.raises(ge.PolicyError) as info:
        ge.Policy.from_yaml(
            f"version: 1\nname: t\n{line}\nchecks:\n  - id: l\n    type: length\n    max_chars: 9\n"
        )
    assert info.value.line == 3
    assert "quote the value" in info.value.message or "invalid YAML" in info.value.message


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("description: 'quoted: fine'", "quoted: fine"),
        ('description: "it\'s: fine"', "it's: fine"),
        ("description: no colon-space:here", "no colon-space:here"),
    ],
)
def test_quoted_value_with_colon_is_read(line: str, value: str) -> None:
    policy = ge.Policy.from_yaml(
        f"version: 1\nname: t\n{line}\nchecks:\n  - id: l\n    type: length\n    max_chars: 9\n"
    )
    assert policy.description == value


def test_a_policy_error_pickles_with_every_problem() -> None:
    import pickle

    text = _head("colour: red\nchecks:\n  - id: l\n    type: length\n    max_chars: 0\n")
    with pytest.raises(ge.PolicyError) as info:
        ge.Policy.from_yaml(text, source="p.yaml")
    for exc in (info.value, info.value.problems[1]):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is ge.PolicyError
        assert str(back) == str(exc)
        assert (back.line, back.field, back.check_id, back.message) == (
            exc.line,
            exc.field,
            exc.check_id,
            exc.message,
        )
        assert [str(p) for p in back.problems] == [str(p) for p in exc.problems]
    assert len(info.value.problems) == 2


def test_problems_found_while_compiling_are_reported_together(tmp_path: Path) -> None:
    # Each check's problem is found only when it is compiled (a file, a module): all of
    # them are reported at once, each with its line and field.
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nname: t\nchecks:\n"
        "  - {id: a, type: schema, schema_file: missing.json}\n"
        "  - {id: b, type: custom, function: 'untrusted_mod:f'}\n"
        "  - {id: c, type: length, max_chars: 10}\n"
        "  - {id: d, type: pii, entities: [PERSON], ner_model: no_such_model_xyz}\n",
        encoding="utf-8",
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.load_policy(path)
    got = [(p.line, p.field) for p in info.value.problems]
    assert got == [
        (4, "checks[0].schema_file"),
        (5, "checks[1].function"),
        (7, "checks[3].ner_model"),
    ]
    assert "not trusted" in str(info.value.problems[1])
