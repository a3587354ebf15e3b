"""Drift: is real traffic moving away from the texts an eval set covers?

A *reference* (an eval case file, or JSON lines of texts) is embedded once.  Its
*coverage threshold* is the q-th percentile (q = 5 % by default) of its own
nearest-neighbour similarities (each reference text against the others).  A
current text is **uncovered** when its best similarity to the reference falls
below that threshold: with no drift, about q of the texts are.  Texts are read
in windows (100 by default); a window *alerts* when its uncovered share is above
2q, or when a one-sided binomial test says that many uncovered texts are unlikely
(p < 0.01) if the rate were q.  The cosine distance between the window's centroid
and the reference's is reported too, as a secondary number.

Reports hold numbers only; the uncovered texts leave only through
:meth:`DriftReport.export_cases`, grouped by similarity, as candidate eval cases.

Where texts come from: :data:`READERS`, by file suffix (JSON lines, YAML case
files).  A trace database holds no text: :func:`check_traces` reads the numbers a
policy's ``drift:`` recorded per run (best similarity, uncovered) instead.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .._common.errors import GuardrailsError
from ..checks._topic.coverage import MIN_REFERENCE, Coverage, _normalised, reference_id
from .eval import CaseError, load_cases

if TYPE_CHECKING:
    from ..checks._topic import Embedder

__all__ = [
    "DriftError",
    "DriftReference",
    "DriftReport",
    "Window",
    "check_traces",
    "is_trace_db",
    "read_texts",
    "windows",
]

#: Default percentile of the reference's nearest-neighbour similarities.
DEFAULT_Q = 0.05
#: Default number of texts per window.
DEFAULT_WINDOW = 100
#: A window alerts when a one-sided binomial test gives p below this.
ALERT_P = 0.01


class DriftError(GuardrailsError, ValueError):
    """Texts that cannot be read, or a reference too small to measure against."""


# -- reading texts ---------------------------------------------------------------------


def _read_jsonl(path: Path, field: str) -> list[str]:
    """One text a line: a JSON string, or an object with ``field`` (or an eval case's
    ``input``)."""
    out: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DriftError(f"{path}: cannot read: {type(exc).__name__}") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DriftError(f"{path}:{n}: invalid JSON: {exc.msg}") from None
        if isinstance(item, dict):
            value = item.get(field, item.get("input") if "expect" in item else None)
        else:
            value = item
        if not isinstance(value, str):
            raise DriftError(f"{path}:{n}: no text: expected a string or an object with {field!r}")
        out.append(value)
    return out


def _read_cases(path: Path, field: str) -> list[str]:
    """The inputs of an eval case file."""
    try:
        return [c.input for c in load_cases(path)]
    except CaseError as exc:
        raise DriftError(str(exc)) from None


#: How texts are read, by file suffix (a trace database is not one: see
#: :func:`check_traces`).
READERS: dict[str, Callable[[Path, str], list[str]]] = {
    ".jsonl": _read_jsonl,
    ".yaml": _read_cases,
    ".yml": _read_cases,
}


def read_texts(path: str | Path, field: str = "text") -> list[str]:
    """The texts of a file: JSON lines (a string or an object with ``field`` a line,
    or eval cases), or a YAML eval case file.

    :raises DriftError: naming the file (and line) that cannot be read.
    """
    p = Path(path)
    if p.name.endswith(".cases.jsonl"):
        return _read_cases(p, field)
    reader = READERS.get(p.suffix)
    if reader is None:
        known = ", ".join(sorted(READERS))
        raise DriftError(f"{p}: cannot read texts from a {p.suffix or 'suffixless'} file ({known})")
    return reader(p, field)


# -- the statistic ---------------------------------------------------------------------


def binomial_tail(k: int, n: int, q: float) -> float:
    """P[X >= k] for X ~ Binomial(n, q)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    log_q, log_p = math.log(q), math.log1p(-q)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * log_q
        + (n - i) * log_p
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


@dataclass(frozen=True, slots=True)
class Window:
    """One window of current texts: numbers only."""

    index: int
    start: int
    texts: int
    uncovered: int
    p_value: float
    #: None when the texts are not at hand (read from a trace database).
    centroid_distance: float | None
    alert: bool

    @property
    def share(self) -> float:
        return self.uncovered / self.texts if self.texts else 0.0


def _centroid(distance: float | None) -> str:
    return "-" if distance is None else f"{distance:.4f}"


@dataclass
class DriftReport:
    """The uncovered share per window, with the alert rule."""

    reference_texts: int
    q: float
    threshold: float
    window: int
    windows: list[Window]
    #: Current texts below the threshold, with their best similarity (for export only).
    uncovered: list[tuple[str, float]] = field(default_factory=list, repr=False)
    #: Their embeddings (rows as in :attr:`uncovered`), to group them.
    uncovered_vectors: Any = field(default=None, repr=False)

    @property
    def alert(self) -> bool:
        return any(w.alert for w in self.windows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_texts": self.reference_texts,
            "q": self.q,
            "threshold": self.threshold,
            "window": self.window,
            "alert": self.alert,
            "texts": sum(w.texts for w in self.windows),
            "uncovered": sum(w.uncovered for w in self.windows),
            "windows": [
                {
                    "index": w.index,
                    "start": w.start,
                    "texts": w.texts,
                    "uncovered": w.uncovered,
                    "share": w.share,
                    "p_value": w.p_value,
                    "centroid_distance": w.centroid_distance,
                    "alert": w.alert,
                }
                for w in self.windows
            ],
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ["window", "start", "texts", "uncovered", "share", "p_value", "centroid", "alert"]
        )
        for w in self.windows:
            writer.writerow(
                [
                    w.index,
                    w.start,
                    w.texts,
                    w.uncovered,
                    f"{w.share:.4f}",
                    f"{w.p_value:.3g}",
                    "" if w.centroid_distance is None else f"{w.centroid_distance:.4f}",
                    int(w.alert),
                ]
            )
        return out.getvalue()

    def to_text(self, width: int = 40) -> str:
        """A table with a chart: one bar per window, ``|`` at the 2q alert line."""
        top = max([2 * self.q * 2, *(w.share for w in self.windows)])
        line = round(2 * self.q / top * width)
        lines = [
            f"reference: {self.reference_texts} texts; uncovered below similarity "
            f"{self.threshold:.3f} (its {self.q:.0%} percentile); windows of {self.window}",
            f"alert: a share above {2 * self.q:.0%} or binomial p < {ALERT_P}",
            f"{'window':>6} {'texts':>6} {'uncov':>6} {'share':>6} {'p':>8} {'centroid':>8}  "
            f"0{' ' * (width - 1)}{top:.0%}",
        ]
        for w in self.windows:
            n = round(w.share / top * width)
            bar = "".join("#" if i < n else ("|" if i == line else " ") for i in range(width + 1))
            lines.append(
                f"{w.index:>6} {w.texts:>6} {w.uncovered:>6} {w.share:>6.1%} {w.p_value:>8.2g} "
                f"{_centroid(w.centroid_distance):>8}  {bar}{'  ALERT' if w.alert else ''}"
            )
        total = sum(w.texts for w in self.windows)
        lines.append(
            f"{total} texts, {sum(w.uncovered for w in self.windows)} uncovered: "
            + ("ALERT" if self.alert else "no alert")
        )
        return "\n".join(lines) + "\n"

    def export_cases(self) -> str:
        """The uncovered texts as a YAML case file, grouped by similarity (largest group
        first), each expecting ``pass`` until someone reviews it."""
        import numpy as np

        groups: list[list[int]] = []
        seeds: list[int] = []
        vectors = self.uncovered_vectors
        for i in np.argsort([s for _, s in self.uncovered]):  # least covered first
            for g, seed in enumerate(seeds):
                if float(vectors[i] @ vectors[seed]) >= self.threshold:
                    groups[g].append(int(i))
                    break
            else:
                seeds.append(int(i))
                groups.append([int(i)])
        groups.sort(key=len, reverse=True)
        out = [
            "# Candidate eval cases: current texts no reference text covers (best similarity",
            f"# below {self.threshold:.3f}), grouped by similarity.  Every expectation is `pass`:",
            "# review each one before adding the case to an eval set.",
            "cases:",
        ]
        for g, members in enumerate(groups, start=1):
            out.append(f"  # group {g}: {len(members)} text{'s' * (len(members) != 1)}")
            for j, i in enumerate(members, start=1):
                text, best = self.uncovered[i]
                case = {"id": f"drift-{g}-{j}", "input": text, "expect": {"decision": "pass"}}
                dumped = yaml.safe_dump([case], allow_unicode=True, sort_keys=False, width=1000)
                out.append(f"  # best similarity to the reference: {best:.3f}")
                out.extend("  " + x for x in dumped.rstrip("\n").split("\n"))
        return "\n".join(out) + "\n"


class DriftReference(Coverage):
    """A reference set of texts, embedded once (the default embedder: WordLlama)."""

    def __init__(
        self,
        texts: Sequence[str],
        *,
        embedder: Embedder | None = None,
        q: float = DEFAULT_Q,
    ) -> None:
        from ..checks._topic import default_embedder

        if not 0 < q < 0.5:
            raise TypeError(f"q must be between 0 and 0.5, got {q!r}")
        if len(texts) < MIN_REFERENCE:
            raise DriftError(f"a reference needs at least {MIN_REFERENCE} texts, got {len(texts)}")
        super().__init__(texts, embedder if embedder is not None else default_embedder(), q)

    def check(self, texts: Sequence[str], *, window: int = DEFAULT_WINDOW) -> DriftReport:
        """The uncovered share of ``texts`` per window (a last window shorter than half
        of ``window`` joins the one before)."""
        import numpy as np

        if window < 1:
            raise TypeError(f"window must be a positive number of texts, got {window!r}")
        if not texts:
            raise DriftError("no current texts")
        raw, best = self.embedded(texts)
        uncovered = best < self.threshold
        plain = _normalised(raw)

        def centroid(lo: int, hi: int) -> float:
            c = plain[lo:hi].mean(axis=0)
            cos = float(c @ self.centroid) / max(
                float(np.linalg.norm(c) * np.linalg.norm(self.centroid)), 1e-12
            )
            return 1.0 - cos

        idx = np.flatnonzero(uncovered)
        return DriftReport(
            self.size,
            self.q,
            self.threshold,
            window,
            windows(uncovered, self.q, window, centroid),
            [(texts[int(i)], float(best[i])) for i in idx],
            self._unit(raw)[idx],
        )


def windows(
    uncovered: Sequence[bool] | Any,
    q: float,
    window: int,
    centroid: Callable[[int, int], float | None] = lambda lo, hi: None,
) -> list[Window]:
    """The windows of a sequence of uncovered flags, with the alert rule (a last
    window shorter than half of ``window`` joins the one before)."""
    flags = [bool(u) for u in uncovered]
    bounds = list(range(0, len(flags), window))
    if len(bounds) > 1 and len(flags) - bounds[-1] < window / 2:
        bounds.pop()
    out = []
    for i, lo in enumerate(bounds):
        hi = bounds[i + 1] if i + 1 < len(bounds) else len(flags)
        n, k = hi - lo, sum(flags[lo:hi])
        p = binomial_tail(k, n, q)
        out.append(Window(i + 1, lo, n, k, p, centroid(lo, hi), k / n > 2 * q or p < ALERT_P))
    return out


# -- a trace database as current traffic -------------------------------------------------


def is_trace_db(path: str | Path) -> bool:
    """Whether ``path`` is an SQLite file (a trace database), by its header."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def check_traces(
    paths: Sequence[str | Path], *, reference: str | Path | None, window: int = DEFAULT_WINDOW
) -> DriftReport:
    """The uncovered share per window of the runs recorded in trace databases, as the
    policy's ``drift:`` measured them (the flags and similarities are read, not
    computed: a trace holds no text).  ``reference`` (the reference file) picks the
    runs measured against it; without it, the databases must hold one reference.

    :raises DriftError: for an unreadable database, no such run, or several references.
    """
    import sqlite3

    rows: list[tuple[float, int, str, float, float, float, int, int]] = []
    for path in paths:
        # Read only (mode=ro): a report never writes or upgrades the database.
        conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
        try:
            rows += conn.execute(
                "SELECT c.started_at, d.id, d.reference, d.quantile, d.threshold, "
                "d.similarity, d.uncovered, d.reference_texts FROM drift d "
                "JOIN calls c ON c.id = d.call_id ORDER BY c.started_at, d.id"
            ).fetchall()
        except sqlite3.DatabaseError:  # a schema before 3 (no drift table), or not a store
            raise DriftError(f"{path}: not a trace database with drift numbers") from None
        finally:
            conn.close()
    rows.sort(key=lambda r: (r[0], r[1]))
    if reference is not None:
        try:
            wanted = reference_id(Path(reference).read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise DriftError(f"{reference}: cannot read: {type(exc).__name__}") from None
        rows = [r for r in rows if r[2] == wanted]
        if not rows:
            raise DriftError(f"no run in the trace database was measured against {reference}")
    refs = {r[2] for r in rows}
    if not rows:
        raise DriftError("no run in the trace database was measured against a reference")
    if len(refs) > 1:
        raise DriftError(
            f"the runs were measured against {len(refs)} references: name one with --reference"
        )
    q, threshold, size = rows[-1][3], rows[-1][4], rows[-1][7]
    return DriftReport(size, q, threshold, window, windows([r[6] for r in rows], q, window))
