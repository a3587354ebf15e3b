"""A check that takes its process down once (tests of batch scans that lose a worker).

It kills the process the first time it sees ``KILL-ME`` while the file named by
``GE_TEST_KILL_MARKER`` does not exist, creating that file first; later calls find
nothing.
"""

from __future__ import annotations

import os

from guardrails_engine.checks import unit_check


@unit_check(unit="text")
def kill_once(text: str) -> None:
    marker = os.environ.get("GE_TEST_KILL_MARKER")
    if marker and "KILL-ME" in text and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(17)
