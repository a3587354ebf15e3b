"""The examples of README "Writing a check" run as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from _policies import make_policy

import guardrails_engine as ge
from guardrails_engine.testing import check_chunkings

README = Path(__file__).parent.parent / "README.md"


@pytest.fixture(scope="module")
def examples() -> types.ModuleType:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Writing a check") :]
    section = section[: section.index("\n## ", 10)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 4  # unit checks, async, incremental, testing
    module = types.ModuleType("readme_checks")
    sys.modules["readme_checks"] = module
    for block in blocks[:3]:
        exec(compile(block, "README.md", "exec"), module.__dict__)
    return module


def _policy(checks: str) -> ge.Policy:
    return make_policy(
        checks, name="readme", block_message="[blocked]", trusted=["readme_checks"]
    )


def test_the_unit_check_examples(examples: types.ModuleType) -> None:
    policy = _policy(
        "  - {id: rivals, type: custom, function: 'readme_checks:rivals', action: repair,"
        " options: {names: [Acme, Globex]}}\n"
        "  - {id: disclaimer, type: custom, function: 'readme_checks:disclaimer'}\n"
    )
    assert policy.validate_sync("We beat Acme. Globex too.").text == "We beat <RIVAL>. <RIVAL> too."
    assert policy.validate_sync("Invest in Acme.").blocked
    assert policy.validate_sync("Invest. Not financial advice.").decision is ge.Decision.PASS
    check_chunkings(policy, ["We beat acme. Fine!", "Invest now."], max_examples=30)


def test_the_async_example_is_an_async_unit_check(examples: types.ModuleType) -> None:
    assert examples.moderated.is_async
    assert examples.moderated.options is examples.ServiceOptions


def test_the_incremental_example(examples: types.ModuleType) -> None:
    policy = _policy(
        "  - {id: terms, type: custom, function: 'readme_checks:Terms', action: repair,"
        " replacement: '[x]', options: {terms: [blue falcon, zeta]}}\n"
    )
    assert policy.validate_sync("The Blue Falcon and zeta.").text == "The [x] and [x]."
    check_chunkings(policy, ["The Blue Falcon and zeta.", "blue falconzeta zet"], max_examples=60)
