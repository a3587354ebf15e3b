"""Embedders: a callable from a list of texts to a matrix, one row per text.

The default is WordLlama (the ``semantic`` extra): its weights and tokenizer ship
inside its wheel, it needs no torch, and it is loaded with its own package folder
as the cache and downloads disabled, so it never reaches the network.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Embedder",
    "EmbedderError",
    "EmbedderMissing",
    "WordLlamaEmbedder",
    "default_embedder",
    "embed",
]

#: Texts in, one row per text out (any array-like of numbers).
Embedder = Callable[[list[str]], Any]

Matrix = npt.NDArray[np.float32]

#: Words as ``str.split`` cuts them (runs of anything but whitespace).
_WORDS = re.compile(r"\S+")


class EmbedderMissing(ImportError):
    """The default embedder's package (wordllama) is not installed."""


class EmbedderError(ValueError):
    """An embedder returned something that is not one row of numbers per text.
    The message names shapes and types, never text."""


def embed(embedder: Embedder, texts: Sequence[str], dim: int | None = None) -> Matrix:
    """``embedder(texts)`` as a float32 matrix of ``len(texts)`` finite rows (of
    ``dim`` columns, if given).

    :raises EmbedderError: if the embedder broke that contract.
    """
    out = embedder(list(texts))
    try:
        matrix = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError):
        raise EmbedderError(
            f"an embedder returns a matrix of numbers, got {type(out).__name__}"
        ) from None
    if matrix.ndim != 2 or matrix.shape[0] != len(texts) or matrix.shape[1] == 0:
        raise EmbedderError(
            f"an embedder returns one row per text: {len(texts)} texts gave shape {matrix.shape}"
        )
    if dim is not None and matrix.shape[1] != dim:
        raise EmbedderError(f"rows of {matrix.shape[1]} numbers, earlier rows had {dim}")
    if not np.isfinite(matrix).all():
        raise EmbedderError("an embedder returned a number that is not finite")
    return matrix


class WordLlamaEmbedder:
    """WordLlama as an :data:`Embedder`: the mean of a text's token vectors, what its
    ``embed`` computes, but one text at a time: its batch path wakes the tokenizer's
    thread pool, which on a busy machine costs milliseconds at the tail (p99 9.6 ms
    against 4.2 ms in benchmarks/topic_accuracy.py, same machine and load)."""

    __slots__ = ("_model", "_table", "_tokenizer")

    def __init__(self, model: Any) -> None:
        self._model = model
        self._table = np.asarray(model.embedding, dtype=np.float32)
        self._tokenizer = model.tokenizer

    def __call__(self, texts: list[str]) -> Any:
        table, encode = self._table, self._tokenizer.encode
        last = table.shape[0] - 1
        out = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
        for i, text in enumerate(texts):
            enc = encode(text, add_special_tokens=False)
            pairs = zip(enc.ids, enc.attention_mask, strict=True)
            ids = [min(max(t, 0), last) for t, keep in pairs if keep]
            if ids:
                out[i] = table[ids].mean(axis=0)
        return out

    def left_out(self, text: str, words: tuple[list[str], list[int]]) -> Matrix:
        """Rows for ``text`` and for each of its variants that leave out one of ``words``
        (its words and which are left out: ``model.left_out_words``), from one reading of
        the text: a variant is the mean of the text's token vectors without those of the
        left-out word (what embedding the variant's text gives, up to how the tokens at
        its edges are cut)."""
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        last = self._table.shape[0] - 1
        kept = [
            (min(max(t, 0), last), end)
            for t, keep, (_, end) in zip(enc.ids, enc.attention_mask, enc.offsets, strict=True)
            if keep
        ]
        _, which = words
        out = np.zeros((1 + len(which), self._table.shape[1]), dtype=np.float32)
        if not kept:
            return out
        vectors = self._table[[t for t, _ in kept]]
        total = vectors.sum(axis=0)
        out[0] = total / len(kept)
        if which:
            # Each token belongs to the word its last character is in.
            starts = np.array([m.start() for m in _WORDS.finditer(text)])
            ends = np.array([end - 1 for _, end in kept])
            owner = np.searchsorted(starts, ends, side="right") - 1
            inside = np.flatnonzero(owner >= 0)  # (a token of leading spaces is no word's)
            member = np.zeros((len(starts), len(kept)), dtype=np.float32)
            member[owner[inside], inside] = 1.0  # (np.add.at is slower)
            sums = member @ vectors
            counts = member.sum(axis=1).astype(np.int64)
            left = len(kept) - counts[which]
            rows = (total - sums[which]) / np.maximum(left, 1)[:, None]
            out[1:] = np.where(left[:, None] > 0, rows, 0.0)
        return out

    def __repr__(self) -> str:
        return "<WordLlama embedder>"


_LOCK = threading.Lock()
_DEFAULT: list[Embedder] = []


def default_embedder() -> Embedder:
    """WordLlama's 256-dimension model, loaded once per process from its package.

    :raises EmbedderMissing: if wordllama is not installed.
    """
    with _LOCK:
        if not _DEFAULT:
            _DEFAULT.append(_load_wordllama())
        return _DEFAULT[0]


def _load_wordllama() -> Embedder:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama
    except ImportError:
        raise EmbedderMissing(
            "the default embedder needs wordllama: pip install 'guardrails-engine[semantic]'"
        ) from None
    finally:
        # wordllama calls logging.basicConfig() when imported: the application's
        # logging is its own, so what it had is put back.
        root.handlers[:] = handlers
        root.setLevel(level)
    folder = Path(wordllama.__file__).parent
    # Weights and tokenizer from the package itself; never a download.
    model = wordllama.WordLlama.load(cache_dir=folder, disable_download=True)
    return WordLlamaEmbedder(model)
