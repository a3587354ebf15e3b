"""What importing the package costs, measured in fresh interpreters.

Scenarios, each run ``--runs`` times (default 9) in a child process, median and
min reported:

  - import:   ``python -X importtime -c "import guardrails_engine"``: the
              package's cumulative time as ``-X importtime`` reports it (what the
              target of 0.3 s is about);
  - cpu:      the CPU time (``time.process_time``) of ``import guardrails_engine``
              in a child: on a busy machine, wall times grow with the queue for
              the CPUs and this much less;
  - names:    the CPU time of ``import guardrails_engine`` and then of the names
              a program uses first (``Policy``, ``Stream``, ``Push``, ``Finding``,
              ...): the public names load on first use, so this is what a
              program pays before it loads a policy (on a checkout that imports
              them eagerly, the same as ``cpu``);
  - version:  ``python -m guardrails_engine --version``: wall time of the whole
              child (interpreter start included);
  - python:   ``python -c pass``: wall time of a bare interpreter (the floor).

Children write and read their bytecode under a temporary ``PYTHONPYCACHEPREFIX``
(warmed by one run first), as an installed package has its ``.pyc`` files: without
it (``--no-bytecode``, or ``PYTHONDONTWRITEBYTECODE`` set, as on our machines)
every run compiles the package's sources again, about 0.1 s of CPU.

With ``--baseline PATH`` (another checkout, e.g. main), its ``import`` and
``cpu`` are measured in the same loop, interleaved, and the ratios printed: on a busy
machine the ratio says more than either figure.

Also prints the slowest modules of the median ``import`` run (self time), and
whether jsonschema, presidio or spaCy were loaded (they should not be).

Run:  .venv/bin/python benchmarks/import_time.py [--runs N] [--baseline PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("jsonschema", "rfc3987_syntax", "presidio_analyzer", "spacy")
#: Set by ``main``: the environment's bytecode settings for the children.
BYTECODE: dict[str, str] = {}
NAMES = ("Policy", "Stream", "SyncStream", "Push", "FallbackStream", "Trace", "Finding")


def _child(*args: str, root: Path = ROOT) -> tuple[float, str, str]:
    """Wall time (s), stderr and stdout of a fresh interpreter running ``args`` in ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    if BYTECODE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(BYTECODE)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - t0, done.stderr, done.stdout


def _importtime(stderr: str) -> tuple[float, list[tuple[int, str]]]:
    """The package's cumulative import time (s), and (self us, module) of every module."""
    total = 0.0
    selfs: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, cumulative, name = (part.strip() for part in line[12:].split("|"))
        if not own.isdigit():
            continue  # the header
        selfs.append((int(own), name))
        if name == "guardrails_engine":
            total = int(cumulative) / 1e6
    return total, selfs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument(
        "--no-bytecode", action="store_true", help="compile the sources in every run"
    )
    args = parser.parse_args()
    if not args.no_bytecode:
        BYTECODE["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="import-time-pyc-")

    print("# import cost, fresh interpreters")
    print(f"# python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    cache = "compiled every run" if args.no_bytecode else "cached (PYTHONPYCACHEPREFIX)"
    print(f"# load average {load}; bytecode {cache}")
    imports: list[tuple[float, list[tuple[int, str]]]] = []
    version: list[float] = []
    cpu: list[float] = []
    timed = "import time; t = time.process_time(); import guardrails_engine; "
    timed += "print(time.process_time() - t)"
    used = "import time; t = time.process_time(); import guardrails_engine as ge; "
    used += f"[getattr(ge, n) for n in {NAMES!r}]; print(time.process_time() - t)"
    names: list[float] = []
    baseline_names: list[float] = []
    baseline_version: list[float] = []
    bare: list[float] = []
    baseline: list[float] = []
    baseline_cpu: list[float] = []
    code = ("-X", "importtime", "-c", "import guardrails_engine")
    for root in (ROOT, args.baseline) if args.baseline is not None else (ROOT,):
        _child("-c", used, root=root.resolve())  # (bytecode written)
    for _ in range(args.runs):  # interleaved, so a busy moment hits every scenario
        imports.append(_importtime(_child(*code)[1]))
        if args.baseline is not None:
            other = args.baseline.resolve()
            baseline.append(_importtime(_child(*code, root=other)[1])[0])
            baseline_cpu.append(float(_child("-c", timed, root=other)[2]))
            baseline_names.append(float(_child("-c", used, root=other)[2]))
            baseline_version.append(_child("-m", "guardrails_engine", "--version", root=other)[0])
        version.append(_child("-m", "guardrails_engine", "--version")[0])
        cpu.append(float(_child("-c", timed)[2]))
        names.append(float(_child("-c", used)[2]))
        bare.append(_child("-c", "pass")[0])

    totals = sorted(t for t, _ in imports)
    print(f"{'scenario':<10} {'median s':>9} {'min s':>7}")
    print(f"{'import':<10} {statistics.median(totals):>9.3f} {totals[0]:>7.3f}")
    print(f"{'cpu':<10} {statistics.median(cpu):>9.3f} {min(cpu):>7.3f}")
    print(f"{'names':<10} {statistics.median(names):>9.3f} {min(names):>7.3f}")
    print(f"{'version':<10} {statistics.median(version):>9.3f} {min(version):>7.3f}")
    print(f"{'python':<10} {statistics.median(bare):>9.3f} {min(bare):>7.3f}")
    if baseline:
        ratio = statistics.median(totals) / statistics.median(baseline)
        cpu_ratio = statistics.median(cpu) / statistics.median(baseline_cpu)
        names_ratio = statistics.median(names) / statistics.median(baseline_names)
        print(f"{'baseline':<10} {statistics.median(baseline):>9.3f} {min(baseline):>7.3f}")
        print(f"{'base cpu':<10} {statistics.median(baseline_cpu):>9.3f} {min(baseline_cpu):>7.3f}")
        print(
            f"{'base names':<10} {statistics.median(baseline_names):>9.3f} "
            f"{min(baseline_names):>7.3f}"
        )
        print(
            f"{'base vers.':<10} {statistics.median(baseline_version):>9.3f} "
            f"{min(baseline_version):>7.3f}"
        )
        print(
            f"import / baseline import (medians): {ratio:.2f}; cpu: {cpu_ratio:.2f}; "
            f"names: {names_ratio:.2f}"
        )

    median_run = sorted(imports, key=lambda r: r[0])[len(imports) // 2][1]
    print("\nslowest modules of the median import run (self time):")
    for us, name in sorted(median_run, reverse=True)[:10]:
        print(f"  {us / 1000:7.1f} ms  {name}")
    loaded = sorted({n.split(".")[0] for _, n in median_run} & set(HEAVY))
    print(f"\nheavy packages loaded by the import: {', '.join(loaded) or 'none'}")


if __name__ == "__main__":
    main()
