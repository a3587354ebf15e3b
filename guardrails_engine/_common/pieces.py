"""Text held as it arrived, in many small pieces, at about its own size.

A list with one string per 4-character chunk costs about 50 bytes per chunk on
top of the text (13x the text).  Lists that may grow long (text held back, text
released, a JSON document kept for its final validation) join their recent
pieces into one block every :data:`BLOCK` pieces.  The owner keeps a *limit*
(:data:`BLOCK` for a new list): before it appends, ``len(parts) >= limit``
(cheap) says to call :func:`join_tail`, which returns the next limit.  The last
piece appended stays the last item.
"""

from __future__ import annotations

__all__ = ["BLOCK", "join_tail"]

BLOCK = 256


def join_tail(parts: list[str], limit: int) -> int:
    """``parts`` has reached ``limit`` items: join the pieces after its blocks
    (the first ``limit - BLOCK`` items) into one more block; return the next limit."""
    joined = limit - BLOCK
    parts[joined:] = ["".join(parts[joined:])]
    return joined + 1 + BLOCK
