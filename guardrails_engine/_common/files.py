"""Files a policy names (a schema, examples, a tool's policy, a case's prompt): read
only inside the policy's folder, bounded, and never quoted in an error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["MAX_FILE_BYTES", "FileRefused", "read_confined_text", "why_unreadable"]

#: The largest file a policy may name.
MAX_FILE_BYTES = 1 << 20


class FileRefused(ValueError):
    """A file a policy names cannot be had: the message names paths, never content."""


def why_unreadable(exc: FileRefused | OSError) -> str:
    """Why a file a policy names could not be read: the path and the error, never
    what the file holds."""
    if isinstance(exc, OSError):
        return f"[Errno {exc.errno}] {exc.strerror}: {str(exc.filename)!r}"
    return str(exc)


def read_confined_text(path: Path, folder: Path) -> str:
    """The UTF-8 text of ``path``, which must be a regular file inside ``folder``
    (after resolving symlinks), at most :data:`MAX_FILE_BYTES`.

    :raises OSError: if it cannot be read.
    :raises FileRefused: if it is outside the folder, not a regular file, too large or
        not UTF-8 (the message names the path only).
    """
    st = os.stat(path)
    real = path.resolve()
    if not real.is_relative_to(folder):
        raise FileRefused(f"{path} is outside the policy's folder {folder}")
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(f"{path} is not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise FileRefused(f"{path} is larger than {MAX_FILE_BYTES:,} bytes")
    # Non-blocking and not through a symlink: what was checked is what is read.
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise FileRefused(f"{path} is not a regular file")
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise FileRefused(f"{path} is larger than {MAX_FILE_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileRefused(f"{path} is not UTF-8 text") from None
