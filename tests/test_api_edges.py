"""What a new user trips on: wrong argument types, named patterns, terms kept out of
reasons, the version, findings as dicts."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import anyio.lowlevel
import pytest

import guardrails_engine as ge

SECRET = "sk-" + "Zx9" * 8


@pytest.fixture(scope="module")
def content() -> ge.Policy:
    return ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n  - id: secrets\n    type: content\n"
        "    patterns:\n      - {name: api-key, regex: '\\bsk-[A-Za-z0-9]{20,}\\b'}\n"
        "      - '\\bAKIA[0-9A-Z]{16}\\b'\n"
        "    terms: [blue falcon, red heron]\n    action: repair\n"
    )


# -- anything that is not str is a TypeError that says what was passed -----------------

NOT_TEXT = [
    (None, "got None (an SDK's content=None"),
    (42, "got int"),
    (b"jdoe@example.com", "got bytes (16 bytes): decode it first"),
    (bytearray(b"abc"), "got bytearray (3 bytes): decode it first"),
    (["a", "b"], "got list"),
]


@pytest.mark.parametrize(("value", "says"), NOT_TEXT, ids=[type(v).__name__ for v, _ in NOT_TEXT])
def test_validate_sync_of_what_is_not_str_is_a_type_error(
    content: ge.Policy, value: object, says: str
) -> None:
    with pytest.raises(TypeError) as info:
        content.validate_sync(value)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("validate_sync() takes the text to check as a str, ")
    assert says in message
    assert "jdoe" not in message  # what was passed is named by its type, never shown


@pytest.mark.anyio
@pytest.mark.parametrize(("value", "says"), NOT_TEXT, ids=[type(v).__name__ for v, _ in NOT_TEXT])
async def test_validate_of_what_is_not_str_is_a_type_error(
    content: ge.Policy, value: object, says: str
) -> None:
    with pytest.raises(TypeError) as info:
        await content.validate(value)  # type: ignore[arg-type]
    assert str(info.value).startswith("validate() takes the text to check as a str, ")
    assert says in str(info.value)


def test_an_empty_text_is_still_fine(content: ge.Policy) -> None:
    result = content.validate_sync("")
    assert (result.decision, result.text, result.findings) == (ge.Decision.PASS, "", ())


@pytest.mark.parametrize("source", [None, 42, b"abc"], ids=["None", "int", "bytes"])
def test_a_stream_of_what_is_not_iterable_is_a_type_error_at_once(
    content: ge.Policy, source: object
) -> None:
    for call in ("stream", "stream_sync"):
        with pytest.raises(TypeError) as info:
            getattr(content, call)(source)
        assert str(info.value) == (
            f"{call}() takes an iterable (sync or async) of str chunks, got {type(source).__name__}"
        )


@pytest.mark.parametrize("chunk", [None, 42, b"x"], ids=["None", "int", "bytes"])
def test_a_source_yielding_what_is_not_str_is_a_type_error_and_closes(
    content: ge.Policy, chunk: object
) -> None:
    closed = []

    def source():  # type: ignore[no-untyped-def]
        try:
            yield "Hello "
            yield chunk
            yield "never"
        finally:
            closed.append(True)

    stream = content.stream_sync(source())
    with pytest.raises(TypeError) as info:
        list(stream)
    assert str(info.value) == f"a stream source must yield str, got {type(chunk).__name__}"
    assert closed == [True]
    assert stream.result is None  # no final answer for a failed source


@pytest.mark.anyio
async def test_an_async_source_yielding_none_is_a_type_error(content: ge.Policy) -> None:
    async def source():  # type: ignore[no-untyped-def]
        yield "Hello "
        await anyio.lowlevel.checkpoint()
        yield None

    with pytest.raises(TypeError, match="a stream source must yield str, got NoneType"):
        async for _ in content.stream(source()):
            pass


# -- named patterns; terms kept out of reasons --------------------------------------------


def test_a_named_pattern_is_named_in_the_reason(content: ge.Policy) -> None:
    result = content.validate_sync(f"key {SECRET} and AKIA{'A' * 16} there")
    assert result.reasons == (
        "secrets: api-key at 4-31, replaced",
        "secrets: patterns[1] at 36-56, replaced",
    )


def test_a_term_is_not_quoted_in_reasons_unless_the_policy_says(content: ge.Policy) -> None:
    text = "The Blue  Falcon and red heron launch."
    result = content.validate_sync(text)
    assert result.text == "The [removed] and [removed] launch."
    assert result.reasons == (
        "secrets: terms[0] at 4-16, replaced",
        "secrets: terms[1] at 21-30, replaced",
    )
    assert "falcon" not in " ".join(result.reasons).casefold()
    assert all("falcon" not in str(f.to_dict()).casefold() for f in result.findings)
    shown = ge.Policy.from_yaml(
        "version: 1\nname: t\nchecks:\n  - id: c\n    type: content\n"
        "    terms: [blue falcon]\n    show_terms: true\n"
    )
    assert shown.validate_sync(text).reasons == ("c: term 'blue falcon' at 4-16, blocked",)


@pytest.mark.parametrize(
    ("patterns", "line", "field", "message"),
    [
        (
            "[{name: k, regex: 'a'}, {name: k, regex: 'b'}]",
            4,
            "checks[0]",
            "pattern name used twice: k",
        ),
        ("[{name: 'has space', regex: 'a'}]", 6, "checks[0].patterns[0].name", "String should"),
        ("[{name: k, regex: ''}]", 6, "checks[0].patterns[0].regex", "regular expression matches"),
        ("[{name: k, rgx: 'a'}]", 6, "checks[0].patterns[0].rgx", "unknown key; did you mean"),
        ("[{regex: 'a'}]", 6, "checks[0].patterns[0].name", "required field is missing"),
    ],
    ids=["duplicate-name", "bad-name", "empty-match", "misspelt-key", "no-name"],
)
def test_a_bad_named_pattern_is_a_policy_error(
    patterns: str, line: int, field: str, message: str
) -> None:
    with pytest.raises(ge.PolicyError) as info:
        ge.Policy.from_yaml(
            "version: 1\nname: t\nchecks:\n  - id: c\n    type: content\n"
            f"    patterns: {patterns}\n"
        )
    (problem,) = [p for p in info.value.problems if p.field == field]
    assert (problem.line, problem.field, problem.check_id) == (line, field, "c")
    assert problem.message.startswith(message)


def test_the_policy_schema_describes_named_patterns_and_show_terms() -> None:
    schema = ge.policy_json_schema()
    defs = schema["$defs"]
    assert set(defs["ContentPatternSpec"]["required"]) == {"name", "regex"}
    assert defs["ContentSpec"]["properties"]["show_terms"]["type"] == "boolean"
    items = defs["ContentSpec"]["properties"]["patterns"]["items"]
    assert {"$ref": "#/$defs/ContentPatternSpec"} in items["anyOf"]
    assert {"type": "string"} in items["anyOf"]


# -- the version, findings as dicts -----------------------------------------------------


def test_version_is_the_installed_distributions() -> None:
    assert ge.__version__ == version("guardrails-engine")
    assert ge.__version__.count(".") >= 2


def test_finding_to_dict_includes_the_replacement(content: ge.Policy) -> None:
    (finding,) = content.validate_sync("a red heron").findings
    assert finding.to_dict() == {
        "check_id": "secrets",
        "check_type": "content",
        "action": "repair",
        "reason": "secrets: terms[1] at 2-11, replaced",
        "start": 2,
        "end": 11,
        "entity_type": None,
        "score": None,
        "replacement": "[removed]",
    }


# -- logging: presidio's label warnings silenced, our logger quiet unless configured ------

_LOGGING_CHILD = """
import logging, sys
import guardrails_engine as ge

def boom(trace):
    raise RuntimeError("callback failed")

# Logging not configured: a callback that raises is logged by us, and nothing is printed.
quiet = ge.Policy.from_yaml(
    "version: 1\\nname: q\\nchecks:\\n  - id: l\\n    type: length\\n    max_chars: 5\\n"
)
quiet.validate_sync("hello there", on_trace=boom)
sys.stderr.write("--configured--\\n")
sys.stderr.flush()
# The application configures logging: presidio's warning for each spaCy label it does not
# map (CARDINAL, MONEY, PERCENT, ...) is not among what it gets.
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
ner = ge.Policy.from_yaml(
    "version: 1\\nname: n\\nchecks:\\n  - id: p\\n    type: pii\\n    entities: [PERSON]\\n"
)
text = "On 3 May 2021 John Smith paid $300, 40% of it, for 2 games in English."
print(ner.validate_sync(text).reasons)
quiet.validate_sync("hello there", on_trace=boom)
"""


def test_presidio_label_warnings_are_silenced_and_our_logger_is_quiet() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LOGGING_CHILD],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "('p: PERSON at 14-24, masked',)\n"
    # Before logging is configured nothing at all; after, only our own warning.
    assert done.stderr == (
        "--configured--\nguardrails_engine: guardrails_engine: trace callback raised RuntimeError\n"
    )
