"""Shared fixtures: the anyio backends, the policies folder, one loaded support policy."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import guardrails_engine as ge
from guardrails_engine._common.trust import TRUST_ENV

POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"

# policies/support-links.yaml uses a check of its own, policies/policy_checks (the shipped
# example of `type: custom`): importable and trusted in the tests, as .ci/run makes it for
# its eval, so that every test that loads the shipped policies loads it too.
sys.path.insert(0, str(POLICIES_DIR))
os.environ[TRUST_ENV] = ",".join(filter(None, [os.environ.get(TRUST_ENV), "policy_checks"]))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``pytest.mark.anyio`` test on both backends."""
    return str(request.param)


@pytest.fixture(scope="session")
def policies_dir() -> Path:
    return POLICIES_DIR


@pytest.fixture(scope="session")
def support_policy(policies_dir: Path) -> ge.Policy:
    """policies/support-chat.yaml, loaded once (loading presidio takes a while)."""
    return ge.load_policy(policies_dir / "support-chat.yaml")
