"""Policies pickle as their source and compile again when unpickled, once per process."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import guardrails_engine as ge

TEXTS = [
    "Write to ann@example.org or call +1 415 555 0132 today.",
    "Nothing to see here.",
    "My card is 4111 1111 1111 1111, thanks.",
]


def _validate_in_worker(policy: ge.Policy, text: str) -> tuple[ge.Result, str, int, int]:
    streamed = "".join(policy.stream_sync(text[i : i + 3] for i in range(0, len(text), 3)))
    result = policy.validate_sync(text)
    assert streamed == result.text
    return result, policy.content_hash, os.getpid(), id(policy.checks)


def test_a_policy_pickles_and_gives_the_same_results(support_policy: ge.Policy) -> None:
    copy = pickle.loads(pickle.dumps(support_policy))
    assert copy is not support_policy
    assert (copy.name, copy.source, copy.content_hash) == (
        support_policy.name,
        support_policy.source,
        support_policy.content_hash,
    )
    for text in TEXTS:
        assert copy.validate_sync(text) == support_policy.validate_sync(text)
    # Compiled once per process: a second unpickle shares the compiled checks.
    again = pickle.loads(pickle.dumps(support_policy))
    assert again.checks is copy.checks


def test_an_unpickled_policy_validates_in_a_process_pool(
    support_policy: ge.Policy, tmp_path: Path
) -> None:
    (tmp_path / "answer.json").write_text('{"type": "object", "required": ["answer"]}')
    (tmp_path / "p.yaml").write_text(
        "version: 1\nname: j\nchecks:\n  - id: j\n    type: schema\n    schema_file: answer.json\n"
    )
    schema_policy = ge.load_policy(tmp_path / "p.yaml")
    jobs = [(support_policy, t) for t in TEXTS * 2]
    jobs += [(schema_policy, t) for t in ('{"answer": 1}', '{"other": 1}')]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = [pool.submit(_validate_in_worker, p, t) for p, t in jobs]
        answers = [f.result(timeout=300) for f in futures]
    per_process: dict[tuple[int, str], set[int]] = {}
    for (policy, text), (result, digest, pid, checks) in zip(jobs, answers, strict=True):
        assert result == policy.validate_sync(text)
        assert digest == policy.content_hash
        per_process.setdefault((pid, digest), set()).add(checks)
    assert all(len(ids) == 1 for ids in per_process.values()), per_process
    assert answers[-1][0].decision is ge.Decision.BLOCK
    assert answers[-2][0].decision is ge.Decision.PASS


def test_a_pickle_carries_the_trusted_modules_and_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models_pickle_test.py").write_text(
        "import pydantic\nclass A(pydantic.BaseModel):\n    answer: str\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("GUARDRAILS_TRUSTED_MODULES", raising=False)
    text = "version: 1\nname: m\nchecks:\n  - id: j\n    type: schema\n"
    text += "    model: 'models_pickle_test:A'\n"
    policy = ge.Policy.from_yaml(text, trusted_modules=["models_pickle_test"])
    data = pickle.dumps(policy)
    assert b"models_pickle_test" in data
    copy = pickle.loads(data)
    assert copy.validate_sync('{"answer": 2}').decision is ge.Decision.BLOCK
    # from_yaml without base_dir reads files from the directory current at load time.
    (tmp_path / "s.json").write_text('{"type": "array"}')
    monkeypatch.chdir(tmp_path)
    files = ge.Policy.from_yaml(
        "version: 1\nname: f\nchecks:\n  - id: j\n    type: schema\n    schema_file: s.json\n"
    )
    monkeypatch.chdir(tmp_path.parent)
    assert pickle.loads(pickle.dumps(files)).validate_sync("{}").decision is ge.Decision.BLOCK
