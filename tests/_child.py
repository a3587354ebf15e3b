"""Run code in a child process with a time and a memory limit, so that a hang or a
blow-up fails one test instead of taking the suite down."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_PRELUDE = """
import resource
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
"""


def run_limited(code: str, *, seconds: float = 60, memory: int = 1_500_000_000) -> str:
    """Run ``code`` in a fresh interpreter limited to ``memory`` bytes of address space
    and ``seconds`` of wall time; return its stdout.

    :raises AssertionError: if it fails, runs out of memory or time.
    """
    script = _PRELUDE.format(limit=memory) + textwrap.dedent(code)
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the child did not finish within {seconds} s") from None
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
