"""How soon a streamed schema violation stops the stream, by ``duplicate_names``.

With ``duplicate_names: reject`` (the default) a name given twice is itself a
violation, so every other violation is final at the token that reveals it; with
``last`` a violation in a property's value is only sure when its object closes
(the name may come again, and its last value would count).  Prints:

* for a wrong type in the first property of a 1 KB, 10 KB and 100 KB object
  (``{"id": "x", "pad": "ppp..."}``, ``id: integer``), 4-character chunks: the
  characters the stream pulled before it blocked, and the CPU time spent;
* on an order document (``json_stream.py``'s), 60 violations planted in its first
  orders (wrong types, patterns, bounds, enums, lengths, an unknown name), one per
  document, 4-character chunks: how many are caught in time, i.e. the stream pulls
  at most one chunk past the end of the violating token.

    .venv/bin/python benchmarks/early_detection.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import _common as c
from json_stream import SCHEMA, document

import guardrails_engine as ge

MODES = ("reject", "last")


def policy(schema: Any, duplicates: str) -> ge.Policy:
    return ge.Policy.from_yaml(
        "version: 1\nname: early\ncheck_timeout_ms: 3600000\nchecks:\n"
        "  - id: j\n    type: schema\n    extract: false\n"
        f"    duplicate_names: {duplicates}\n    schema: {json.dumps(schema)}\n"
    )


def pulled_until_blocked(p: ge.Policy, text: str) -> tuple[int, float]:
    """Characters pulled from a 4-character-chunk source until the stream blocked, and
    the CPU seconds spent."""
    pulled = 0

    def source() -> Iterator[str]:
        nonlocal pulled
        for i in range(0, len(text), 4):
            pulled += len(text[i : i + 4])
            yield text[i : i + 4]

    t0 = time.process_time()
    stream = p.stream_sync(source())
    for _ in stream:
        pass
    spent = time.process_time() - t0
    assert stream.result is not None and stream.result.decision is ge.Decision.BLOCK
    return pulled, spent


#: (what, a function making the bad order from a good one, the key whose value is bad)
PLANTS: list[tuple[str, Any, str]] = [
    ("id a string", lambda o: {**o, "id": "seven"}, "id"),
    ("id negative", lambda o: {**o, "id": -1}, "id"),
    ("sku pattern", lambda o: {**o, "sku": "abc-1"}, "sku"),
    ("price zero", lambda o: {**o, "price": 0}, "price"),
    ("note too long", lambda o: {**o, "note": "n" * 201}, "note"),
    ("unknown tag", lambda o: {**o, "tags": ["new", "used"]}, "tags"),
    ("tags an object", lambda o: {**o, "tags": {"a": 1}}, "tags"),
    ("sku a number", lambda o: {**o, "sku": 12}, "sku"),
    ("price a string", lambda o: {**o, "price": "1.00"}, "price"),
    ("an unknown name", lambda o: {"coupon": "X", **o}, "coupon"),
]


def planted() -> list[tuple[str, str, int]]:
    """(what, document, end of the violating token): 60 documents, each with one
    violation in one of the first six orders."""
    base = json.loads(document(20_000))
    out = []
    for at in range(6):
        for what, make, key in PLANTS:
            doc = json.loads(json.dumps(base))
            doc["orders"][at] = make(doc["orders"][at])
            text = json.dumps(doc)
            # The violating token: the key (an unknown name) or the start of its value.
            order_at = text.index('"orders": [')
            for _ in range(at + 1):  # (orders hold no objects: each '{' opens one)
                order_at = text.index("{", order_at + 1)
            start = text.index(f'"{key}": ', order_at)
            value = start + len(f'"{key}": ')
            if key == "coupon":
                end = value - 2
            elif what == "note too long":
                end = value + 1 + 201  # the 201st character
            elif what == "unknown tag":
                end = text.index('"used"', value) + len('"used"')
            elif text[value] in "[{":
                end = value + 1
            else:
                end = value + len(json.dumps(make(base["orders"][at])[key]))
            out.append((f"{what} (order {at})", text, end))
    return out


def main() -> None:
    c.header("early detection of schema violations, by duplicate_names")
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    print("## wrong type in the first property, 4-char chunks: characters pulled, CPU time")
    print(f"{'object':>8} | " + " | ".join(f"{m:>24}" for m in MODES))
    for size in (1_000, 10_000, 100_000):
        text = json.dumps({"id": "x", "pad": "p" * (size - 20)})
        cells = []
        for mode in MODES:
            p = policy(schema, mode)
            pulled_until_blocked(p, text)  # warm-up
            pulled, spent = min(
                (pulled_until_blocked(p, text) for _ in range(3)), key=lambda r: r[1]
            )
            cells.append(f"{pulled:>9,} chars {spent * 1000:8.2f} ms")
        print(f"{len(text):>8,} | " + " | ".join(f"{x:>24}" for x in cells))
    print()
    print("## 60 violations planted in the first orders of an order document, 4-char chunks")
    docs = planted()
    for mode in MODES:
        p = policy(SCHEMA, mode)
        in_time = 0
        late: list[str] = []
        for what, text, end in docs:
            pulled, _ = pulled_until_blocked(p, text)
            if pulled <= end + 4:
                in_time += 1
            else:
                late.append(what)
        print(f"{mode:>6}: {in_time} of {len(docs)} caught within one chunk of the violating token")
        if late and mode == "reject":
            print("        late: " + ", ".join(late))


if __name__ == "__main__":
    main()
