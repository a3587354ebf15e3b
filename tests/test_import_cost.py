"""What importing the package costs: ``import guardrails_engine`` and
``guardrails-engine --version`` load neither jsonschema (its format checkers
import rfc3987_syntax, about a second) nor presidio nor spaCy; those load when a
policy needs them.  Behaviour only: the time is in ``benchmarks/import_time.py``."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Top-level packages that a bare import must not load.
HEAVY = ("jsonschema", "rfc3987_syntax", "presidio_analyzer", "spacy", "thinc")


def _imported(*args: str) -> set[str]:
    """The modules a fresh interpreter imports running ``args`` (from ``-X importtime``)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "guardrails_engine" in names  # (the measure works)
    return names


def _heavy(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in HEAVY}


@pytest.mark.parametrize(
    "args",
    [
        ["-c", "import guardrails_engine"],
        ["-c", "import guardrails_engine.checks, guardrails_engine.testing"],
        ["-m", "guardrails_engine", "--version"],
    ],
    ids=["import", "import-checks", "cli-version"],
)
def test_importing_loads_no_heavy_dependency(args: list[str]) -> None:
    assert _heavy(_imported(*args)) == set()


#: What the package's core needs once a name is used, and what a bare import (and
#: ``--version``) must therefore not pay for: every public name loads on first use.
CORE = ("pydantic", "pydantic_core", "yaml", "anyio", "asyncio", "regex", "phonenumbers")
CORE_OWN = ("guardrails_engine._scanning", "guardrails_engine.checks", "guardrails_engine._cli")


def _core(names: set[str]) -> set[str]:
    own = {n for n in names if n.startswith(CORE_OWN)}
    return {n for n in names if n.split(".")[0] in CORE} | own


@pytest.mark.parametrize(
    "args",
    [["-c", "import guardrails_engine"], ["-m", "guardrails_engine", "--version"]],
    ids=["import", "cli-version"],
)
def test_a_bare_import_and_version_load_none_of_the_core(args: list[str]) -> None:
    assert _core(_imported(*args)) == set()


def test_first_use_of_a_name_loads_what_it_needs() -> None:
    code = (
        "import sys, guardrails_engine as ge\n"
        "assert 'guardrails_engine._policy.policy' not in sys.modules\n"
        "assert ge.Policy.__module__ == 'guardrails_engine'\n"
        "assert 'guardrails_engine._policy.policy' in sys.modules\n"
    )
    names = _imported("-c", code)
    assert {"pydantic", "yaml", "guardrails_engine.checks"} <= names


def test_star_import_gives_every_public_name() -> None:
    code = (
        "import guardrails_engine as ge\n"
        "ns = {}\n"
        "exec('from guardrails_engine import *', ns)\n"
        "missing = set(ge.__all__) - set(ns)\n"
        "assert not missing, missing\n"
        "assert all(getattr(ge, n) is ns[n] for n in ge.__all__)\n"
    )
    _imported("-c", code)


@pytest.mark.parametrize("argv", [["--version"], ["--vers"], ["--version", "check"]])
def test_the_short_version_answer_is_argparses(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from guardrails_engine import _cli
    from guardrails_engine.__main__ import main

    assert main(argv) == 0
    short = capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        _cli.main(argv)
    assert exited.value.code == 0
    assert capsys.readouterr().out == short


def test_other_arguments_reach_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "guardrails_engine", "entities"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "EMAIL_ADDRESS" in done.stdout


def test_a_policy_loads_only_what_its_checks_need() -> None:
    code = (
        "import guardrails_engine as ge\n"
        "p = ge.Policy.from_yaml('version: 1\\nname: t\\nchecks:\\n"
        "  - {id: c, type: content, terms: [x], action: repair}\\n')\n"
        "assert p.validate_sync('a x b').decision == 'repair'\n"
    )
    assert _heavy(_imported("-c", code)) == set()
    schema = (
        "import guardrails_engine as ge\n"
        "ge.Policy.from_yaml('version: 1\\nname: t\\nchecks:\\n"
        "  - {id: s, type: schema, schema: {type: object}}\\n')\n"
    )
    assert "jsonschema" in _heavy(_imported("-c", schema))  # (loaded when needed)
