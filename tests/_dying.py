"""A task that takes its worker process down (tests of the batch process pool);
a module of its own so that a spawned worker imports nothing else."""

from __future__ import annotations

import os


def die(marks: str, item: tuple[int, str]) -> int:
    """``item`` is ``(i, how)``: exit the process the first time item ``i`` runs
    (``once``) or every time (``always``), adding an ``x`` to ``marks/killed-i``;
    else ``i * 10``."""
    i, how = item
    mark = os.path.join(marks, f"killed-{i}")
    if how == "always" or (how == "once" and not os.path.exists(mark)):
        with open(mark, "a") as f:
            f.write("x")  # one x per death
        os._exit(17)
    return i * 10
