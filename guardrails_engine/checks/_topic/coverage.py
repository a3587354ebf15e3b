"""Coverage: how near a text is to a reference set of texts, by meaning.

A reference is embedded once.  Its *coverage threshold* is the q-th percentile
(q = 5 % by default) of its own nearest-neighbour similarities (each reference
text against the others, centred on the reference's mean).  A text is
**uncovered** when its best similarity to the reference falls below that
threshold: with no drift, about q of the texts are.  Used by a policy's
``drift:`` (per run, numbers for its trace) and by ``guardrails-engine drift``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .embed import Embedder, embed

__all__ = ["MIN_REFERENCE", "Coverage", "reference_id"]

#: The fewest texts a reference may have (its percentile means nothing below).
MIN_REFERENCE = 20


def reference_id(text: str) -> str:
    """The name a trace gives a reference: a hash of its file's text (never the text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _normalised(x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = (
        x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    ).astype(np.float32)
    return out


class Coverage:
    """A reference set of texts, embedded once (immutable, shared by every run).

    :raises ValueError: for fewer than :data:`MIN_REFERENCE` texts.
    :raises EmbedderError: if the embedder breaks its contract.
    """

    def __init__(self, texts: Sequence[str], embedder: Embedder, q: float) -> None:
        if len(texts) < MIN_REFERENCE:
            raise ValueError(f"a reference needs at least {MIN_REFERENCE} texts, got {len(texts)}")
        self.embedder = embedder
        self.q = q
        raw = embed(embedder, list(texts))
        self.dim = raw.shape[1]
        self.mean = raw.mean(axis=0)
        self.vectors = self._unit(raw)
        # The centroid is taken before centring (centred, the reference's is about 0).
        self.centroid = _normalised(raw).mean(axis=0)
        nearest = self._best(self.vectors, leave_out_self=True)
        self.threshold = float(np.quantile(nearest, q))
        self.size = len(texts)

    def _unit(self, raw: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        return _normalised(raw - self.mean)

    def _best(self, v: npt.NDArray[np.float32], *, leave_out_self: bool = False) -> Any:
        out = np.empty(len(v), dtype=np.float32)
        for lo in range(0, len(v), 1024):  # blocks: memory stays small for big sets
            sims = v[lo : lo + 1024] @ self.vectors.T
            if leave_out_self:
                rows = np.arange(sims.shape[0])
                sims[rows, lo + rows] = -np.inf
            out[lo : lo + 1024] = sims.max(axis=1)
        return out

    def embedded(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """The texts' raw embeddings, and their best similarities to the reference."""
        raw = embed(self.embedder, list(texts), self.dim)
        return raw, self._best(self._unit(raw))

    def similarity(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """Each text's best similarity to the reference, and whether it is uncovered
        (numbers a trace may record; never text or vectors)."""
        _, best = self.embedded(texts)
        return best, best < self.threshold
