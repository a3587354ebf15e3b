"""Hostile YAML: alias bombs, deep nesting and recursive aliases are PolicyErrors (or
CaseErrors) with a line, never a hang, a memory blow-up or a bare RecursionError.

Each hostile load runs in a child process with a time and a memory limit, so that a
regression fails its test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _child import run_limited

import guardrails_engine as ge
from guardrails_engine._spec.loader import MAX_ALIASES, MAX_DEPTH

HEAD = "version: 1\nname: bomb\n"
LIMITS = {"seconds": 60, "memory": 1_000_000_000}


def _laughs(levels: int, indent: str = "      ") -> list[str]:
    """The billion-laughs bomb: each level lists the one before nine times."""
    lines = [f"{indent}a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        name, prev = chr(97 + i), chr(96 + i)
        lines.append(f"{indent}{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return lines


def _schema_bomb(levels: int) -> str:
    body = ["checks:", "  - id: j", "    type: schema", "    schema:", *_laughs(levels)]
    return HEAD + "\n".join(body) + "\n"


def _load_in_child(text: str) -> dict[str, object]:
    """Load ``text`` as a policy in a limited child; what it raised, as a dict."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    code = f"""
    import json
    import guardrails_engine as ge
    with open({f.name!r}, encoding="utf-8") as f:
        text = f.read()
    try:
        ge.Policy.from_yaml(text, source="bomb.yaml")
    except ge.PolicyError as exc:
        print(json.dumps({{"error": type(exc).__name__, "line": exc.line,
                           "message": exc.message, "str": str(exc)}}))
    else:
        print(json.dumps({{"error": None}}))
    """
    try:
        out: dict[str, object] = json.loads(run_limited(code, **LIMITS))
    finally:
        os.unlink(f.name)
    return out


def test_an_alias_bomb_of_under_600_bytes_is_refused_at_its_line() -> None:
    text = _schema_bomb(9)
    assert len(text.encode()) < 600
    got = _load_in_child(text)
    # Level f (line 12) is the first whose expansion (9**6 values) passes the bound.
    assert got == {
        "error": "PolicyError",
        "line": 12,
        "message": "refused: aliases expand the document past 250,000 values",
        "str": "bomb.yaml:12: refused: aliases expand the document past 250,000 values",
    }


def test_an_alias_bomb_of_long_strings_is_refused() -> None:
    lines = ["checks:", "  - id: j", "    type: schema", "    schema:"]
    lines.append("      a: &a '" + "x" * 20_000 + "'")
    lines.append("      b: &b [" + ", ".join(["*a"] * 20) + "]")
    lines.append("      c: &c [" + ", ".join(["*b"] * 30) + "]")
    got = _load_in_child(HEAD + "\n".join(lines) + "\n")
    assert got["error"] == "PolicyError"
    assert got["line"] == 9
    assert got["message"] == "refused: aliases expand the document past 10,000,000 characters"


@pytest.mark.parametrize(
    "nested",
    [
        "description: " + "[" * 1000 + "]" * 1000,
        "description: " + "{a: " * 1000 + "b" + "}" * 1000,
        "description:\n" + "".join("  " * i + "- \n" for i in range(1, 1000)),
        "stream:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 1000)),
        # PyYAML's scanner reads ahead and re-checks every open bracket at each token: the
        # bound holds where it reads brackets, so 100,000 of them cost no more than 100.
        "description: " + "[" * 100_000 + "]" * 100_000,
    ],
    ids=["flow-sequences", "flow-mappings", "block-sequences", "block-mappings", "100k-brackets"],
)
def test_a_thousand_levels_of_nesting_is_refused_not_a_recursion_error(nested: str) -> None:
    got = _load_in_child(HEAD + nested + "\nchecks: [{id: l, type: length, max_chars: 3}]\n")
    assert got["error"] == "PolicyError"
    assert got["message"] == f"refused: nested more than {MAX_DEPTH} levels deep"
    assert isinstance(got["line"], int) and got["line"] >= 3


def test_nesting_within_the_bound_loads() -> None:
    schema = "{type: array, items: " * 30 + "{type: string}" + "}" * 30
    policy = ge.Policy.from_yaml(
        HEAD + f"checks:\n  - id: j\n    type: schema\n    schema: {schema}\n    extract: false\n"
    )
    deep = "[" * 30 + '"x"' + "]" * 30
    assert policy.validate_sync(deep).decision is ge.Decision.PASS
    assert policy.validate_sync("[" * 30 + "1" + "]" * 30).decision is ge.Decision.BLOCK


def test_aliases_that_nest_past_the_bound_are_refused() -> None:
    # Each alias wraps the one before: little text, no deep nesting as written.
    lines = ["description:", "  - &a0 [x]"]
    lines += [f"  - &a{i} [*a{i - 1}]" for i in range(1, 100)]
    got = _load_in_child(HEAD + "\n".join(lines) + "\n")
    assert got["error"] == "PolicyError"
    assert got["message"] == f"refused: aliases nest the document more than {MAX_DEPTH} levels deep"


def test_a_recursive_alias_is_refused() -> None:
    got = _load_in_child(HEAD + "description: &a [x, *a]\nchecks: []\n")
    assert got == {
        "error": "PolicyError",
        "line": 3,
        "message": "refused: an alias refers to a value that contains it",
        "str": "bomb.yaml:3: refused: an alias refers to a value that contains it",
    }


def test_too_many_aliases_are_refused() -> None:
    aliases = ", ".join(["*t"] * (MAX_ALIASES + 1))
    got = _load_in_child(HEAD + f"description: [&t x, {aliases}]\nchecks: []\n")
    assert got["error"] == "PolicyError"
    assert got["message"] == f"refused: more than {MAX_ALIASES:,} aliases"
    assert got["line"] == 3


def test_ordinary_aliases_still_work() -> None:
    policy = ge.Policy.from_yaml(
        HEAD + "checks:\n"
        "  - id: a\n    type: content\n    terms: &words [alpha, beta]\n    action: flag\n"
        "  - id: b\n    type: content\n    terms: *words\n    action: block\n"
    )
    result = policy.validate_sync("say beta")
    assert result.decision is ge.Decision.BLOCK
    assert [f.check_id for f in result.findings] == ["a", "b"]


def test_a_bomb_with_duplicate_keys_is_refused_before_any_walk() -> None:
    # The duplicate-key walk visits each node once; the bound refuses the bomb first anyway.
    lines = ["checks:", "  - id: j", "    type: schema", "    schema:"]
    lines += ["      a: &a {k: 1, k: 2}"]
    lines += [
        f"      {chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]"
        for i in range(1, 9)
    ]
    got = _load_in_child(HEAD + "\n".join(lines) + "\n")
    assert got["error"] == "PolicyError"
    assert str(got["message"]).startswith("refused: aliases expand the document past")


def test_repeated_keys_are_all_found_once_through_aliases() -> None:
    text = HEAD + (
        "description: x\n"
        "stream: &s {max_holdback_chars: 64, max_holdback_chars: 65}\n"
        "checks:\n  - id: l\n    type: length\n    max_chars: 3\n"
        "x-other: [*s, *s, *s]\n"
    )
    with pytest.raises(ge.PolicyError) as info:
        ge.Policy.from_yaml(text)
    repeated = [p for p in info.value.problems if "appears twice" in p.message]
    assert [(p.line, p.field) for p in repeated] == [(4, "max_holdback_chars")]


def test_a_case_file_bomb_is_a_case_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.cases.yaml"
    path.write_text(
        "- input: hi\n  expect: {decision: pass}\n  x:\n" + "\n".join(_laughs(9, "    ")) + "\n",
        encoding="utf-8",
    )
    code = f"""
    import guardrails_engine as ge
    try:
        ge.load_cases({str(path)!r})
    except ge.CaseError as exc:
        print(exc)
    """
    out = run_limited(code, **LIMITS)
    assert out == f"{path}:9: refused: aliases expand the document past 250,000 values\n"


def test_lint_of_a_bomb_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_schema_bomb(9), encoding="utf-8")
    deep = tmp_path / "deep.yaml"
    deep.write_text(HEAD + "description: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    code = f"""
    import sys
    from guardrails_engine._cli import main
    sys.exit(main(["lint", {str(bomb)!r}, {str(deep)!r}]))
    """
    script = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (10**9, 10**9))\n"
    done = subprocess.run(
        [sys.executable, "-c", script + code.replace("\n    ", "\n")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"{bomb}:12: refused: aliases expand the document past 250,000 values\n"
        f"{deep}:3: refused: nested more than {MAX_DEPTH} levels deep\n"
    )
