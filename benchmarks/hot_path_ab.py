"""Issue 25's figures for two (or more) checkouts, side by side, in one run.

Each round starts one child process per checkout (in turn, so they share the machine's
load); each child imports ``guardrails_engine`` from its checkout and measures, three
times, the fastest of:

- a 4-character stream of 32,000 characters of PII-free prose (``_common.clean_text``)
  through the floor (a length limit never reached), the e-mail pii policy and the
  six-entity pii policy (``floors.py``), in us a chunk;
- ``validate_sync`` of the 120 PII-free corpus texts (``_common.rows``, values replaced
  by plain words) through the same three policies, in us a character.

Reported per checkout: the median over rounds of each figure, and of the issue's units
measured against the floor of the same child: ``(x / floor - 1) * 2.2`` us for the streams
(the issue's floor was 2.2 us a chunk), ``x / floor`` for validate.  Children differ by a
few percent even on one checkout (memory layout, the machine's neighbours): compare
medians of at least five rounds.

Run:  .venv/bin/python benchmarks/hot_path_ab.py [--rounds 5] CHECKOUT [CHECKOUT ...]
      (a checkout: a directory holding ``guardrails_engine/``, e.g. a ``git worktree``)
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(tree: str) -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, tree)
    import _common as c
    from floors import LENGTH_ONLY, SIX, pii_policy

    text = c.clean_text(32000)
    chunks = c.chunks(text, 4)
    texts = [c._scrub(r) for r in c.rows()]
    size = sum(map(len, texts))
    policies = {
        "floor": LENGTH_ONLY,
        "email": pii_policy("e", ["EMAIL_ADDRESS"]),
        "six": pii_policy("s", SIX),
    }

    def stream(p: object) -> float:
        gc.collect()
        t = time.perf_counter()
        out = "".join(p.stream_sync(iter(chunks)))  # type: ignore[attr-defined]
        took = time.perf_counter() - t
        assert out == text
        return took / len(chunks) * 1e6

    def validate(p: object) -> float:
        gc.collect()
        t = time.perf_counter()
        for x in texts:
            p.validate_sync(x)  # type: ignore[attr-defined]
        return (time.perf_counter() - t) / size * 1e6

    best: dict[str, float] = {}
    for _ in range(3):
        for name, p in policies.items():
            for key, value in ((name, stream(p)), ("v" + name, validate(p))):
                best[key] = min(best.get(key, value), value)
    print(json.dumps(best))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.trees[0])
        return 0
    got: dict[str, list[dict[str, float]]] = {t: [] for t in args.trees}
    for _ in range(args.rounds):
        for tree in args.trees:
            out = subprocess.run(
                [sys.executable, __file__, "--child", tree],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            got[tree].append(json.loads(out.strip().splitlines()[-1]))
    print(f"# hot_path_ab: median of {args.rounds} rounds, one child per checkout a round")
    for tree, runs in got.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        units = {
            k: statistics.median((r[k] / r["floor"] - 1) * 2.2 for r in runs)
            for k in ("email", "six")
        }
        ratio = {
            k: statistics.median(r["v" + k] / r["vfloor"] for r in runs) for k in ("email", "six")
        }
        print(f"\n{tree}")
        print(
            f"  stream us/chunk: floor {med['floor']:.2f}, e-mail {med['email']:.2f} "
            f"({units['email']:.2f} in issue units), six {med['six']:.2f} ({units['six']:.2f})"
        )
        print(
            f"  validate us/char: floor {med['vfloor']:.3f}, e-mail {med['vemail']:.3f} "
            f"({ratio['email']:.2f}x the floor), six {med['vsix']:.3f} ({ratio['six']:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
