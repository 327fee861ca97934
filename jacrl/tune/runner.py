"""Where a trial trains: one :func:`jacrl.train.train` run in its own ``spawn`` process, or in a
Ray task (``--backend ray``, through :class:`jacrl.compare.backends.RayBackend`, as ``jacrl
compare`` runs its cells).

The coordinator (:mod:`jacrl.tune.study`) starts a trial with a launcher's ``start`` and gets a
:class:`TrialRun` back, which it polls (``wait``), stops when the trial is pruned (``stop``) and
asks how it ended (``failure``). Both kinds read the trial's run folder the same way: a Ray task
sends the folder's report files back when it ends (compare's ``read_artifacts``), so the driver
sees the final ``result.json`` even without a disk shared with the worker; the intermediate
evaluations, which the pruner reads while the trial trains, reach the driver only through a
shared disk (on one machine, or with ``--out`` on a disk every node mounts).

The child side imports only what training needs (not Optuna). A local child exits when its
parent does — a killed ``jacrl tune`` must not leave trials training on with no one to record
them (the restarted study retries them instead); Ray ends a driver's tasks when the driver goes.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

ERROR_FILE = "error.txt"
"""Written to the trial's run folder when training raised: the traceback."""

Backend = Literal["local", "ray"]


# -- the child side ----------------------------------------------------------------------------
def _train(run_dir: str, train_kwargs: dict[str, Any], env_kwargs: dict[str, Any]) -> bool:
    """Run ``jacrl.train.train(**train_kwargs)`` with ``env_kwargs`` added to the env's spec
    (:func:`jacrl.tune.validation.holding_out_validation`) on one torch thread; ``False``, with
    the traceback in ``<run_dir>/error.txt``, if it raised."""
    from jacrl.compare.backends import init_worker
    from jacrl.train import train
    from jacrl.tune.validation import holding_out_validation

    init_worker()  # parallelism is across trials, as in jacrl compare
    try:
        with holding_out_validation(train_kwargs["env_id"], env_kwargs):
            train(**train_kwargs)
    except BaseException:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / ERROR_FILE).write_text(traceback.format_exc())
        return False
    return True


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """End this process once its parent is gone (re-parenting changes ``getppid``)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def train_trial(
    parent: int, run_dir: str, train_kwargs: dict[str, Any], env_kwargs: dict[str, Any]
) -> None:
    """A local child: :func:`_train`, exiting with status 1 if training raised."""
    _exit_with_parent(parent)
    if not _train(run_dir, train_kwargs, env_kwargs):
        raise SystemExit(1)


def train_trial_task(
    run_dir: str, train_kwargs: dict[str, Any], env_kwargs: dict[str, Any]
) -> tuple[bool, dict[str, bytes]]:
    """A Ray task: :func:`_train`, and the run folder's report files for the driver."""
    from jacrl.compare.backends import read_artifacts

    trained = _train(run_dir, train_kwargs, env_kwargs)
    return trained, read_artifacts(Path(run_dir))


# -- the coordinator's side ----------------------------------------------------------------------
class TrialRun(Protocol):
    """A trial training somewhere."""

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; whether the trial's training has ended."""
        ...

    def failure(self) -> str | None:
        """Once ended: ``None`` if it trained to the end, else what went wrong."""
        ...

    def stop(self) -> None:
        """End the training now if it still runs (a pruned or handed-back trial)."""
        ...


Start = Callable[[Path, dict[str, Any], dict[str, Any]], TrialRun]
"""``start(run_dir, train_kwargs, env_kwargs)``: a launcher."""


class _Process:
    """A trial in a fresh ``spawn`` process (torch's threads do not survive a fork)."""

    def __init__(self, run_dir: Path, train_kwargs: dict[str, Any], env_kwargs: dict[str, Any]):
        context = multiprocessing.get_context("spawn")
        self.child = context.Process(
            target=train_trial,
            args=(os.getpid(), str(run_dir), train_kwargs, env_kwargs),
            daemon=True,
        )
        self.child.start()

    def wait(self, timeout: float) -> bool:
        self.child.join(timeout)
        return self.child.exitcode is not None

    def failure(self) -> str | None:
        code = self.child.exitcode
        return None if code == 0 else f"the trial's process ended with exit code {code}"

    def stop(self) -> None:
        if self.child.is_alive():
            self.child.terminate()
        self.child.join()


class _RayTask:
    """A trial in a Ray task; its report files are mirrored into ``run_dir`` when it ends."""

    def __init__(
        self, task: Any, run_dir: Path, train_kwargs: dict[str, Any], env_kwargs: dict[str, Any]
    ):
        self.run_dir = run_dir
        self.ref = task.remote(str(run_dir.resolve()), train_kwargs, env_kwargs)
        self.ended = False
        self.problem: str | None = None

    def wait(self, timeout: float) -> bool:
        import ray

        from jacrl.compare.backends import mirror_artifacts

        if self.ended:
            return True
        ready, _ = ray.wait([self.ref], timeout=timeout)
        if not ready:
            return False
        self.ended = True
        try:
            trained, artifacts = ray.get(self.ref)
        except Exception as exc:  # the task's worker or node died
            self.problem = f"the trial's Ray task failed: {type(exc).__name__}: {exc}"
            return True
        mirror_artifacts(self.run_dir, artifacts)
        self.problem = None if trained else "the trial's Ray task ended with an error"
        return True

    def failure(self) -> str | None:
        return self.problem

    def stop(self) -> None:
        import ray

        if not self.ended:
            ray.cancel(self.ref, force=True)  # kills the worker: it runs this one task only
            self.ended = True


@contextmanager
def launcher(backend: Backend, n_jobs: int, address: str | None) -> Iterator[Start]:
    """How trials start on ``backend``, for the ``with`` block: local ``spawn`` processes, or Ray
    tasks (one CPU each, a fresh worker process per trial) on the cluster at ``address`` or a
    local Ray of ``n_jobs`` CPUs, connected as ``jacrl compare --backend ray`` connects.

    :raises ConfigError: for an unknown backend, or an ``address`` without Ray.
    """
    from jacrl.compare.backends import RayBackend, make_backend

    with make_backend(backend, workers=n_jobs, address=address, runs=n_jobs) as pool:
        if not isinstance(pool, RayBackend):
            yield _Process
            return
        import ray

        task = ray.remote(num_cpus=1, max_retries=0, max_calls=1)(train_trial_task)
        yield lambda run_dir, train_kwargs, env_kwargs: _RayTask(
            task, run_dir, train_kwargs, env_kwargs
        )
