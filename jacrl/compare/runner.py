"""Run a grid: skip the cells that already finished, hand the rest to a backend, show progress.

The layer above :mod:`jacrl.compare.grid` (the cells) and :mod:`jacrl.compare.backends` (where
they run); :func:`jacrl.compare.pipeline.compare` calls :func:`run_grid` and then reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tqdm.auto import tqdm

from jacrl.common.errors import RunFolderError
from jacrl.compare.backends import make_backend
from jacrl.compare.grid import (
    ERROR_FILE,
    RunOutcome,
    RunSpec,
    TrainFn,
    folder_conflict,
    is_finished,
)

MAX_LISTED = 5  # conflicting folders named in the refusal


class GridProgress:
    """A tqdm bar over the cells: done / running / failed / skipped, with tqdm's ETA.

    "running" is the number of cells the backend's slots hold right now (unfinished cells, capped
    by the slots); the ETA counts only cells trained in this invocation, not skipped ones.
    """

    def __init__(self, total: int, skipped: int, slots: int, enabled: bool = True) -> None:
        self.done, self.failed, self.skipped = 0, 0, skipped
        self.pending = total - skipped
        self.slots = slots
        self._bar = tqdm(total=total, initial=skipped, unit="run", desc="grid", disable=not enabled)
        self._show()

    def _show(self) -> None:
        self._bar.set_postfix(
            done=self.done,
            running=min(self.pending, self.slots),
            failed=self.failed,
            skipped=self.skipped,
        )

    def record(self, outcome: RunOutcome) -> None:
        """Count one finished cell; a failure is printed above the bar with its error."""
        self.pending -= 1
        if outcome.status == "failed":
            self.failed += 1
            spec = outcome.spec
            self._bar.write(
                f"failed: {spec.name} on {spec.env_id} seed {spec.seed}: {outcome.error} "
                f"(traceback: {spec.run_dir / ERROR_FILE})"
            )
        else:
            self.done += 1
        self._show()
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def run_grid(
    specs: Sequence[RunSpec],
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    train_fn: TrainFn | None = None,
    progress: bool = True,
    force: bool = False,
) -> list[RunOutcome]:
    """Run every unfinished cell on ``backend`` (``"local"`` or ``"ray"``); outcomes of all cells.

    :param workers: parallel runs (default: this machine's cores; with Ray and an ``address``, the
        cluster's CPUs).
    :param address: the Ray cluster to join (``"auto"``, ``"ray://host:10001"``); ``None`` starts
        a local Ray instance.
    :param force: train the cells whose folders hold a run of another configuration, moving it
        aside (``<run>.old-<time>``); without it such a grid is refused before any run starts.
    :raises RunFolderError: for cells whose folders hold another run, without ``force``.
    """
    todo: list[RunSpec] = []
    outcomes: list[RunOutcome] = []
    conflicts: list[str] = []
    for spec in specs:
        conflict = folder_conflict(spec)
        if conflict is not None:
            conflicts.append(conflict)
            todo.append(replace(spec, force=True))
        elif is_finished(spec):
            outcomes.append(RunOutcome(spec, "skipped"))
        else:
            todo.append(spec)
    if conflicts and not force:
        listed = "\n  ".join(conflicts[:MAX_LISTED])
        more = (
            f"\n  ... and {len(conflicts) - MAX_LISTED} more" if len(conflicts) > MAX_LISTED else ""
        )
        raise RunFolderError(
            f"{len(conflicts)} run folder(s) of this grid hold runs it would not train, which it "
            f"will neither report nor overwrite:\n  {listed}{more}\nuse another --log-root, or "
            "pass --force to move them aside (to <run>.old-<time>) and train them again"
        )
    if not todo:
        return outcomes
    with make_backend(backend, workers=workers, address=address, runs=len(todo)) as pool:
        bar = GridProgress(len(specs), len(outcomes), pool.slots, enabled=progress)
        try:
            for outcome in pool.run(todo, train_fn):
                bar.record(outcome)
                outcomes.append(outcome)
        finally:
            bar.close()
    return outcomes
