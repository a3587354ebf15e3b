"""Deadlines for checks: ``timeout_ms`` per check and ``check_timeout_ms`` per policy.

Past its time on one validate or stream a check stops and its ``on_error``
decides; the reason says it timed out.  A pattern that slipped through the
load-time analysis is stopped inside the regular expression engine.  Cases
that would hang if the deadline did not hold run in a child process.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _child import run_limited

import guardrails_engine as ge

#: Lets a snippet load a pattern that the load-time analysis would refuse, to
#: stand for one that slipped through it.
SLIP_THROUGH = (
    "import guardrails_engine._spec.config as _cfg\n_cfg.backtracking = lambda *a: None\n"
)


def run(code: str, *, seconds: float = 60) -> Any:
    """Run ``code`` in a child process (time and memory bounded); the JSON it printed last."""
    return json.loads(run_limited(code, seconds=seconds).strip().splitlines()[-1])


# (A pattern whose every match consumes an "a": the texts hold one, so the scanner
# must search; with a "b" at the end, as it was written, a text without a "b" is not
# searched at all.)
HOSTILE = """
version: 1
name: hostile
block_message: "[blocked]"
checks:
  - id: secrets
    type: content
    patterns: ['(?:a|aa)+$']
    timeout_ms: 200
{extra}
"""


def _policy_code(extra: str = "") -> str:
    policy = HOSTILE.format(extra=extra)
    return SLIP_THROUGH + f"import guardrails_engine as ge\nP = ge.Policy.from_yaml({policy!r})\n"


@pytest.mark.parametrize("n", [40, 2_000, 100_000])
def test_validate_of_a_catastrophic_pattern_times_out(n: int) -> None:
    out = run(
        _policy_code()
        + f"""
import json
r = P.validate_sync("x " + "a" * {n} + " y")
print(json.dumps([r.decision, r.text, list(r.reasons)]))
""",
        seconds=60,
    )
    assert out == ["block", "[blocked]", ["secrets: check timed out after 200 ms, blocked"]]


def test_on_error_pass_lets_the_text_through_and_says_so() -> None:
    out = run(
        _policy_code("    on_error: pass")
        + """
import json
text = "x " + "a" * 5000 + " y"
r = P.validate_sync(text)
print(json.dumps([r.decision, r.text == text, list(r.reasons)]))
""",
    )
    reason = "secrets: check timed out after 200 ms, skipped (on_error: pass)"
    assert out == ["pass", True, [reason]]


def test_stream_of_a_catastrophic_pattern_times_out_and_closes_the_source() -> None:
    out = run(
        _policy_code()
        + """
import json
closed = []
def source():
    try:
        yield "x "
        for _ in range(25_000):
            yield "aaaa"
        yield " y"
        while True:
            yield "more "
    finally:
        closed.append(True)
s = P.stream_sync(source())
pieces = list(s)
print(json.dumps([pieces[-1], s.result.decision, list(s.result.reasons), closed]))
""",
    )
    assert out == [
        "[blocked]",
        "block",
        ["secrets: check timed out after 200 ms, blocked"],
        [True],
    ]


def test_async_validate_on_the_loop_and_in_a_thread_times_out() -> None:
    # Under 16k characters validate runs on the event loop, above in a worker thread.
    out = run(
        _policy_code()
        + """
import json, anyio
async def main():
    short = await P.validate("x " + "a" * 2_000 + " y")
    long = await P.validate("x " + "a" * 40_000 + " y")
    return [list(short.reasons), list(long.reasons)]
print(json.dumps(anyio.run(main)))
""",
    )
    assert out == [["secrets: check timed out after 200 ms, blocked"]] * 2


def _outcomes(policy: str, *texts: str) -> list[Any]:
    """[decision, reasons] of validating each text, in a child process, with a
    policy whose patterns slip through the load-time analysis."""
    return run(
        SLIP_THROUGH
        + f"""
import json, guardrails_engine as ge
P = ge.Policy.from_yaml({policy!r})
print(json.dumps([[r.decision, list(r.reasons)] for r in map(P.validate_sync, {list(texts)!r})]))
"""
    )


def test_the_policy_default_applies_and_a_check_overrides_it() -> None:
    policy = """
version: 1
name: x
check_timeout_ms: 300
checks:
  - id: slow
    type: content
    patterns: ['(?:a|aa)+$']
  - id: slower
    type: content
    patterns: ['(?:c|cc)+$']
    timeout_ms: 150
    on_error: pass
"""
    assert _outcomes(policy, "a" * 3000 + "!", "c" * 3000 + "!") == [
        ["block", ["slow: check timed out after 300 ms, blocked"]],
        ["pass", ["slower: check timed out after 150 ms, skipped (on_error: pass)"]],
    ]


def test_time_is_counted_over_the_whole_run() -> None:
    """No single call is slow, but together they pass the check's time."""
    policy = ge.Policy.from_yaml(
        "version: 1\nname: x\nchecks:\n  - id: words\n    type: content\n"
        "    patterns: ['\\bw\\d+\\b']\n    action: flag\n    timeout_ms: 1\n"
    )
    text = " ".join(f"w{i}" for i in range(200_000))
    result = policy.validate_sync(text)
    assert result.decision == ge.Decision.BLOCK
    assert result.reasons[-1] == "words: check timed out after 1 ms, blocked"
    # An ordinary text well within the default passes, and leaves no deadline behind.
    ok = policy.stream_sync(iter(["w1 w2 ", "w3"]))
    assert list(ok) and ok.result is not None and len(ok.result.findings) == 3
    # (Each session's own deadline, passed to it: none is left set between calls.)
    assert all(s.deadline.at is None for _, s in ok.run._sessions)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("check_timeout_ms", 0),
        ("timeout_ms", 0),
        ("timeout_ms", "soon"),
        ("check_timeout_ms", 10**9),
    ],
)
def test_bad_timeouts_are_policy_errors(where: str, value: object) -> None:
    top = f"{where}: {value}\n" if where == "check_timeout_ms" else ""
    per = f"    {where}: {value}\n" if where == "timeout_ms" else ""
    text = f"version: 1\nname: x\n{top}checks:\n  - id: c\n    type: content\n    terms: [x]\n{per}"
    with pytest.raises(ge.PolicyError, match=where):
        ge.Policy.from_yaml(text)


def test_checks_that_share_a_scanner_share_its_time() -> None:
    # Two content checks with the same time scan with one scanner: when it runs
    # out of time, neither can say which pattern was slow, so both stop.
    policy = """
version: 1
name: x
check_timeout_ms: 200
checks:
  - id: fast
    type: content
    terms: [hello]
    on_error: pass
  - id: slow
    type: content
    patterns: ['(?:c|cc)+$']
"""
    [(decision, reasons)] = _outcomes(policy, "hello " + "c" * 3000 + "!")
    assert decision == "block"
    assert sorted(reasons) == [
        "fast: check timed out after 200 ms, skipped (on_error: pass)",
        "slow: check timed out after 200 ms, blocked",
    ]


def test_the_cpu_share_is_sampled_over_windows_longer_than_a_time_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Inside one scheduler time slice a process that runs at all gets the whole CPU:
    # calls 3 ms apart, each with 3 ms of CPU, must not raise the share the regex
    # engine's CPU timeout is scaled by (that let a 2 s check time run 2.6 s).
    from guardrails_engine._common import deadline as dl

    clock = {"wall": 100.0, "cpu": 10.0}
    monkeypatch.setattr(dl.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(dl.time, "process_time", lambda: clock["cpu"])
    monkeypatch.setattr(dl, "_share", 0.5)
    monkeypatch.setattr(dl, "_loaded_share", lambda: 1.0)
    d = dl.Deadline(at=clock["wall"] + 100.0)

    def step(wall: float, cpu: float) -> float:
        clock["wall"] += wall
        clock["cpu"] += cpu
        left = d.cpu_left()
        assert left is not None
        return left / (d.at - clock["wall"])  # type: ignore[operator]

    assert step(0.0, 0.0) == pytest.approx(0.5)  # the first call: no sample yet
    for _ in range(5):  # 3 ms windows at full CPU: inside a slice, not a share
        assert step(0.003, 0.003) == pytest.approx(0.5)
    # 15 ms of those, then 15 ms more at a third of a CPU: one 30 ms window, 20 ms of CPU.
    assert step(0.015, 0.005) == pytest.approx(0.5 * 0.5 + 0.5 * (0.020 / 0.030))
    # A long window at a full CPU raises it.
    before = step(0.0, 0.0)
    assert step(0.1, 0.1) == pytest.approx(0.5 * before + 0.5)
