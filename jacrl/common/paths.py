"""Paths jacrl derives from a name (an env id, an agent, a seed) stay inside their root.

A run folder is ``<log_root>/<env slug>/<name>_<seed>``; an env id such as ``..`` (Gymnasium
accepts it) or a seed read from a crafted ``config.yaml`` such as ``"0/../../x"`` would otherwise
put it anywhere on disk. Every part is checked to be one plain file-name component, and the
result to resolve inside the root.
"""

from __future__ import annotations

import os
from pathlib import Path

from jacrl.common.errors import ConfigError


def plain_name(part: str, what: str) -> str:
    """``part``, after checking it is one file-name component (not empty, ``.``, ``..``, and
    without a path separator).

    :param what: what the part is, for the message (``"the env id 'x'"``).
    :raises ConfigError: otherwise.
    """
    separators = {os.sep, os.altsep or os.sep, "\0"}
    if part in ("", ".", "..") or any(s in part for s in separators):
        raise ConfigError(
            f"{what} gives the folder name {part!r}, which is not a plain name: a folder derived "
            "from it would lie outside its root (names may not be empty, '.', '..' or contain a "
            "path separator)"
        )
    return part


def inside_root(root: str | os.PathLike[str], *parts: str, what: str) -> Path:
    """``root / part / ...``, after checking that every part is a plain name and that the path
    resolves (symbolic links followed) inside ``root``.

    :raises ConfigError: naming ``what`` and the root.
    """
    path = Path(root).joinpath(*(plain_name(part, what) for part in parts))
    resolved, base = path.resolve(), Path(root).resolve()
    if not resolved.is_relative_to(base):
        raise ConfigError(
            f"{what} gives the folder {path}, which resolves to {resolved}, outside its root {base}"
        )
    return path
