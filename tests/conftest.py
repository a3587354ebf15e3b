"""Shared fixtures: the anyio backends, the policies folder, one loaded support policy."""

from __future__ import annotations

from pathlib import Path

import pytest

import guardrails_engine as ge

POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"


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
