"""Long whitespace-free runs with values glued before, inside and after them:
the inputs that push a match in progress past the hold-back cap."""

from __future__ import annotations

import random

RUNS = {
    "letters": lambda r, n: "x" * n,
    "digits": lambda r, n: "".join(r.choice("0123456789") for _ in range(n)),
    "ones": lambda r, n: "1" * n,
    "dotted": lambda r, n: ".".join(str(r.randrange(256)) for _ in range(n // 3))[:n],
    "at-signs": lambda r, n: ("a@" * n)[:n],
    "hex": lambda r, n: "".join(r.choice("0123456789abcdef") for _ in range(n)),
    "path": lambda r, n: ("/seg" * n)[:n],
    "dashes": lambda r, n: ("-1" * n)[:n],
    "www": lambda r, n: ("www.a" * n)[:n],
    "spaced-digits": lambda r, n: ("1 " * n)[:n],
}

VALUES = [
    "jdoe@example.com",
    "4111111111111111",
    "4111-1111-1111-1111",
    "536-90-4399",
    "+1 415 555 0132",
    "415-555-0132",
    "192.168.10.20",
    "DE89370400440532013000",
    "sk-ABCDEFGHIJKLMNOPQRSTUVWX",
]


def long_case(r: random.Random, cap: int) -> str:
    """A text with a run longer than ``cap`` and a value glued to it somewhere."""
    kind = r.choice(sorted(RUNS))
    n = r.randrange(cap - 20, 2 * cap + 200)
    run = RUNS[kind](r, n)
    value = r.choice(VALUES)
    where = r.choice(["before", "inside", "after", "after-space", "twice"])
    if where == "before":
        body = value + run
    elif where == "inside":
        k = r.randrange(len(run) + 1)
        body = run[:k] + value + run[k:]
    elif where == "after":
        body = run + value
    elif where == "after-space":
        body = run + " " + value
    else:
        k = r.randrange(len(run) + 1)
        body = value + run[:k] + value + run[k:] + value
    return r.choice(["Ref: ", "", "see ", "id="]) + body + r.choice([" thanks", "", ".", "\n"])


def chunks(r: random.Random, text: str, top: int = 8) -> list[str]:
    out, i = [], 0
    while i < len(text):
        n = r.randint(1, top)
        out.append(text[i : i + n])
        i += n
    return out
