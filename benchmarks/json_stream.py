"""Streaming a large JSON document through a schema check.

Builds a ~1 MB JSON document (an order list) and a schema for it, then prints:

* one ``jsonschema`` validation of the parsed document (the baseline);
* the document streamed in 4-character chunks through a policy with only that
  schema check (``release: incremental``), and the ratio to the baseline
  (target: <= 3x);
* the same for a 16x document, and time(16x) / time(1x) (target: <= 20x);
* the peak memory of the 1x stream (tracemalloc), against the document's size;
* a document nested 10,000 levels deep, streamed without a RecursionError.

    .venv/bin/python benchmarks/json_stream.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import _common as c
import jsonschema

import guardrails_engine as ge

SCHEMA = {
    "type": "object",
    "required": ["orders"],
    "properties": {
        "orders": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "sku", "price", "tags"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "integer", "minimum": 0},
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                    "price": {"type": "number", "exclusiveMinimum": 0},
                    "note": {"type": "string", "maxLength": 200},
                    "tags": {"type": "array", "items": {"enum": ["new", "sale", "gift"]}},
                },
            },
        }
    },
}


def document(size: int) -> str:
    orders = []
    i = 0
    text = ""
    while len(text) < size:
        for _ in range(200):
            orders.append(
                {
                    "id": i,
                    "sku": f"ABC-{i % 10000:04d}",
                    "price": round(1 + (i % 97) * 0.37, 2),
                    "note": "handle with care, deliver before noon",
                    "tags": ["new", "gift"] if i % 3 else ["sale"],
                }
            )
            i += 1
        text = json.dumps({"orders": orders})
    return text


def policy() -> ge.Policy:
    return ge.Policy.from_yaml(
        # (A 16 MB stream takes longer than the default 10 s a check may spend on a run.)
        "version: 1\nname: json-bench\ncheck_timeout_ms: 3600000\nchecks:\n"
        "  - id: orders\n    type: schema\n"
        f"    release: incremental\n    extract: false\n    schema: {json.dumps(SCHEMA)}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size = 100_000 if args.quick else 1_000_000
    repeat = 1 if args.quick else 3
    c.header("JSON schema check while streaming")
    p = policy()
    validator = jsonschema.Draft202012Validator(SCHEMA)
    results = {}
    for scale in (1, 16):
        text = document(size * scale)
        doc = json.loads(text)
        base, _ = c.timed(lambda d=doc: validator.validate(d), repeat=repeat)
        chunks = c.chunks(text, 4)
        streamed, out = c.timed(lambda ch=chunks: "".join(p.stream_sync(ch)), repeat=1)
        ok = "OK" if out == text else "MISMATCH"
        results[scale] = streamed
        print(
            f"{len(text) / 1e6:6.2f} MB: jsonschema {base * 1000:8.1f} ms, stream (4-char chunks) "
            f"{streamed * 1000:9.1f} ms, ratio {streamed / base:5.2f}x (target <= 3x)  output {ok}"
        )
    growth = results[16] / results[1]
    print(f"16x document: {growth:.1f}x the time (target <= 20x)")
    # Memory: the peak of Python allocations while streaming (tracemalloc; slow,
    # so on the 1x document), against the document's size.
    text = document(size)
    tracemalloc.start()
    at = 0
    for piece in p.stream_sync(text[i : i + 4] for i in range(0, len(text), 4)):
        at += len(piece)  # checked as it comes, not kept
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ok = "OK" if at == len(text) else "MISMATCH"
    print(
        f"memory: {len(text) / 1e6:.2f} MB in 4-char chunks peaks at {peak / 1e6:.1f} MB "
        f"({peak / len(text):.1f}x the document; json.loads alone is about 5x)  output {ok}"
    )
    depth = 10_000
    deep = "[" * depth + "]" * depth
    q = ge.Policy.from_yaml(
        "version: 1\nname: deep\nchecks:\n  - {id: j, type: schema, schema: {type: array}}\n"
    )
    t0 = time.perf_counter()
    out = "".join(q.stream_sync(c.chunks(deep, 64)))
    verdict = "OK" if out == deep else "MISMATCH"
    print(f"nested {depth:,} deep: {(time.perf_counter() - t0) * 1000:.0f} ms, output {verdict}")


if __name__ == "__main__":
    main()
