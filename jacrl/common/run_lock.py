"""One writer per run folder: an exclusive lock file beside it that names its holder.

Two processes training into one run folder (two ``jacrl train``, or ``jacrl train`` and
``jacrl compare``) would race — the last to write wins and the first to finish deletes the
other's checkpoint. Every writer therefore takes ``<run_dir>.lock`` first, created with
``O_CREAT | O_EXCL`` (atomic on local file systems and NFSv3+) and holding the holder's pid, host,
start time and command. A second writer is refused with a :class:`RunFolderError` that names the
holder.

The lock lives *beside* the run folder, not in it, so ``--force`` can move a finished run aside
while holding it. A holder that died without releasing it (SIGKILL, a power cut) leaves a stale
lock: when the holder ran on this host and its pid is gone, the next writer takes the lock over.
A lock held on another host cannot be checked from here and is reported, with the command to
delete it if that process is gone. (A dead holder's pid reused by an unrelated process reads as
alive: the message names the holder's start time, so a user can tell.)

The lock is re-entrant within one process: ``jacrl compare`` holds it around ``train``, which
takes it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from jacrl.common.errors import RunFolderError

LOCK_SUFFIX = ".lock"
#: a lock file that cannot be read is taken as being written for this long, then as stale
UNREADABLE_GRACE_S = 60.0


def lock_path(run_dir: str | os.PathLike[str]) -> Path:
    """``<run_dir>.lock``: the lock file of a run folder (a sibling of the folder)."""
    folder = Path(run_dir).resolve()
    return folder.with_name(folder.name + LOCK_SUFFIX)


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: what its file says."""

    pid: int
    host: str
    started: str
    command: str
    token: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (since {self.started}: {self.command})"

    def is_gone(self) -> bool:
        """The holder ran on this host and its process no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


def _read_holder(path: Path) -> LockHolder | None:
    try:
        data = json.loads(path.read_text())
        return LockHolder(**{k: data[k] for k in LockHolder.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


class RunLock:
    """Hold the lock of ``run_dir`` for the ``with`` block (see the module docstring).

    :raises RunFolderError: on entry, when another live process holds it.
    """

    #: lock file -> (depth, token) of the locks this process holds
    _held: ClassVar[dict[Path, tuple[int, str]]] = {}

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = lock_path(run_dir)

    def __enter__(self) -> RunLock:
        held = self._held.get(self.path)
        if held is not None:
            self._held[self.path] = (held[0] + 1, held[1])
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a stale lock taken over, and then raced: try again
            token = uuid.uuid4().hex
            if self._create(token):
                self._held[self.path] = (1, token)
                return self
            holder = _read_holder(self.path)
            if holder is None and _age_s(self.path) < UNREADABLE_GRACE_S:
                raise RunFolderError(
                    f"{self.run_dir} is being locked by another process right now ({self.path}); "
                    "try again in a moment"
                )
            if holder is not None and not holder.is_gone():
                raise RunFolderError(
                    f"{self.run_dir} is being written by {holder.describe()}; wait for it to "
                    f"finish. If that process is gone (it ran on another machine), delete "
                    f"{self.path} and try again"
                )
            self._take_over(holder)
        raise RunFolderError(f"could not take the lock {self.path}: other processes keep taking it")

    def _create(self, token: str) -> bool:
        """Create the lock file with this process's details; ``False`` if it exists."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        holder = LockHolder(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) or "python",
            token=token,
        )
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(asdict(holder), allow_nan=False))
        return True

    def _take_over(self, stale: LockHolder | None) -> None:
        """Remove a stale lock; a lock that changed since it was judged stale is put back."""
        aside = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:  # another process took it over first
            return
        if _read_holder(aside) == stale:
            aside.unlink()
            return
        # not the lock judged stale: a new holder's; put it back (unless yet another one exists)
        with contextlib.suppress(OSError):
            os.link(aside, self.path)
        aside.unlink()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        depth, token = self._held[self.path]
        if depth > 1:
            self._held[self.path] = (depth - 1, token)
            return
        del self._held[self.path]
        holder = _read_holder(self.path)
        if holder is not None and holder.token == token:
            self.path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"RunLock({str(self.run_dir)!r})"
