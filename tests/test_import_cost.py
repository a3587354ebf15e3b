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
