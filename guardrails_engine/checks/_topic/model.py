"""Scoring a text against denied topics, by meaning.

Built once per compiled policy from the examples (their embeddings are computed
here and never again):

1. every embedding is centred on the mean of ordinary text (the policy's
   ``allow`` examples and a packaged set of ordinary assistant sentences,
   :mod:`._background`) and normalised: averaged word vectors share a large
   common direction, and removing it spreads sentences apart;
2. a text's *margin* for a topic is the mean cosine of its ``K`` nearest
   examples of that topic, less its best cosine to the ordinary sentences
   (``allow`` among them): a sentence must be nearer the topic than anything
   ordinary, so words shared with a topic but not its meaning weigh less;
3. margins are *calibrated* to a score in 0-1 by a logistic fit made at compile
   time, leave-one-out: each example against the rest of its topic (positives),
   each ordinary sentence against the topics (negatives).  A threshold of 0.5
   then means "more like the examples than like ordinary text" for any policy.

``benchmarks/topic_accuracy.py`` measures what each step adds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from ._background import BACKGROUND
from .embed import Embedder, Matrix, embed

__all__ = ["TopicModel"]

#: How many nearest examples of a topic a margin averages.
K = 2
#: The calibration used when the examples leave nothing to fit (one per topic).
DEFAULT_SLOPE, DEFAULT_INTERCEPT = 12.0, -0.5

Vector = npt.NDArray[np.float32]


def _normalised(m: Matrix) -> Matrix:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return (m / np.maximum(norms, 1e-12)).astype(np.float32)


def _top_mean(sims: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.float32]:
    """Mean of the ``k`` largest values of each row (``-inf`` entries excluded)."""
    k = min(k, sims.shape[1])
    top = -np.sort(-sims, axis=1)[:, :k]
    finite = np.isfinite(top)
    counts = np.maximum(finite.sum(axis=1), 1)
    return (np.where(finite, top, 0.0).sum(axis=1) / counts).astype(np.float32)


class TopicModel:
    """Denied topics with their examples, embedded and calibrated (immutable)."""

    def __init__(
        self,
        embedder: Embedder,
        deny: Mapping[str, Sequence[str]],
        allow: Sequence[str] = (),
        *,
        background: Sequence[str] = BACKGROUND,
        calibrate: bool = True,
        centre: bool = True,
        k: int = K,
    ) -> None:
        if not deny:
            raise ValueError("no denied topic")
        self.embedder = embedder
        self.topics: tuple[str, ...] = tuple(deny)
        self.k = k
        examples = [e for t in self.topics for e in deny[t]]
        ordinary = [*allow, *background]
        raw = embed(embedder, [*examples, *ordinary])
        self.dim = raw.shape[1]
        self.mean: Vector = (
            raw[len(examples) :].mean(axis=0) if centre and ordinary else np.zeros(self.dim)
        ).astype(np.float32)
        x = _normalised(raw - self.mean)
        self.examples = x[: len(examples)]
        self.ordinary = x[len(examples) :]
        self.labels = np.array(
            [i for i, t in enumerate(self.topics) for _ in deny[t]], dtype=np.int32
        )
        self.slope, self.intercept = DEFAULT_SLOPE, DEFAULT_INTERCEPT
        if calibrate:
            self._calibrate()

    # -- scoring -------------------------------------------------------------------------
    def vectors(self, texts: Sequence[str]) -> Matrix:
        """The texts' embeddings, centred and normalised as the examples are."""
        return _normalised(embed(self.embedder, texts, self.dim) - self.mean)

    def margins(self, v: Matrix, *, leave_out: npt.NDArray[np.bool_] | None = None) -> Matrix:
        """Margins of the rows of ``v`` (shape: rows x topics)."""
        sims = v @ self.examples.T
        if leave_out is not None:
            sims = np.where(leave_out, -np.inf, sims).astype(np.float32)
        out = np.empty((v.shape[0], len(self.topics)), dtype=np.float32)
        for i in range(len(self.topics)):
            out[:, i] = _top_mean(sims[:, self.labels == i], self.k)
        if self.ordinary.shape[0]:
            out -= (v @ self.ordinary.T).max(axis=1, keepdims=True)
        return out

    def calibrated(self, margins: Matrix) -> Matrix:
        z = np.clip(self.slope * margins + self.intercept, -30.0, 30.0)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def scores(self, texts: Sequence[str]) -> Matrix:
        """Each text's score for each topic, in 0-1 (rows: texts, columns: :attr:`topics`)."""
        return self.calibrated(self.margins(self.vectors(texts)))

    # -- calibration ---------------------------------------------------------------------
    def _calibrate(self) -> None:
        n = self.examples.shape[0]
        # Positives: each example against the other examples of its topic.
        own = np.eye(n, dtype=bool)
        pos_all = self.margins(self.examples, leave_out=own)
        counts = np.bincount(self.labels, minlength=len(self.topics))
        keep = counts[self.labels] > 1
        pos = pos_all[np.arange(n), self.labels][keep]
        # Negatives: each ordinary sentence against every topic, itself left out of
        # the ordinary sentences it is compared with.
        o = self.ordinary
        if not len(pos) or o.shape[0] < 2:
            return
        sims = o @ self.examples.T
        near = np.empty((o.shape[0], len(self.topics)), dtype=np.float32)
        for i in range(len(self.topics)):
            near[:, i] = _top_mean(sims[:, self.labels == i], self.k)
        other = o @ o.T
        np.fill_diagonal(other, -np.inf)
        neg = (near - other.max(axis=1, keepdims=True)).ravel()
        self.slope, self.intercept = _logistic(pos, neg)


def _logistic(pos: npt.NDArray[np.float32], neg: npt.NDArray[np.float32]) -> tuple[float, float]:
    """``a, b`` of ``p = 1 / (1 + exp(-(a m + b)))`` fitted to margins ``m`` (positives
    and negatives weighted equally), by Newton's method with a small ridge."""
    m = np.concatenate([pos, neg]).astype(np.float64)
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    w = np.concatenate([np.full(len(pos), 0.5 / len(pos)), np.full(len(neg), 0.5 / len(neg))])
    a, b = DEFAULT_SLOPE, DEFAULT_INTERCEPT
    ridge = 1e-4
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(a * m + b, -30, 30)))
        g = w * (p - y)
        h = w * p * (1 - p)
        grad = np.array([(g * m).sum() + ridge * a, g.sum()])
        hess = np.array([[(h * m * m).sum() + ridge, (h * m).sum()], [(h * m).sum(), h.sum()]])
        try:
            step = np.linalg.solve(hess + 1e-9 * np.eye(2), grad)
        except np.linalg.LinAlgError:
            break
        a, b = a - step[0], b - step[1]
        if abs(step).max() < 1e-6:
            break
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        return DEFAULT_SLOPE, DEFAULT_INTERCEPT
    return float(a), float(b)
