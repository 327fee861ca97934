"""Atomic file writes: a crash (even SIGKILL) leaves the old file or the new one, never half.

The bytes go to a temporary file in the target's folder (same file system, so the rename is
atomic), are flushed and ``fsync``-ed, then :func:`os.replace`-d over the target.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(target: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Create or replace ``target`` with what ``write`` writes to the open binary file it gets.

    :return: the target path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
