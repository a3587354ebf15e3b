"""Cutting a text into chunks for the streaming tests."""

from __future__ import annotations


def cut(text: str, sizes: list[int]) -> list[str]:
    """``text`` in chunks of the given sizes, cycling through them (1 when none are given)."""
    out, i, k = [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)] if sizes else 1
        out.append(text[i : i + n])
        i += n
        k += 1
    return out
