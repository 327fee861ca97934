"""Where the grid's runs execute: local processes, or Ray tasks on a cluster.

Both run :func:`jacrl.compare.grid.execute` once per cell with one torch thread per run (runs are
small networks; one thread per core beats oversubscribing the cores with intra-op threads) and
yield outcomes as runs finish. Both are context managers (running processes or the Ray
connection live for the ``with`` block) with ``slots``, the runs they hold at once, and
``run(specs, train_fn)``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any

from jacrl.common.errors import ConfigError
from jacrl.compare.grid import RunOutcome, RunSpec, TrainFn, execute, record_failure
from jacrl.train import CONFIG_FILE, ERROR_FILE, EVALUATIONS_FILE, RESULT_FILE

BACKENDS = ("local", "ray")


def default_workers() -> int:
    """The cores this process may use (affinity and cgroup cpusets respected where visible)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def init_worker() -> None:
    """One thread per run, in torch and in numpy's and scipy's BLAS (jacrl.common.threads): the
    grid's parallelism is across runs, not inside one."""
    from jacrl.common.threads import use_threads

    use_threads(1)


def _stop(signum: int, frame: object) -> None:
    """SIGTERM ends a run (the parent stopping the grid) or the grid itself like an exception:
    locks are released and runs stopped on the way out, silently."""
    raise SystemExit(128 + signum)


def _run_in_child(send: Connection, spec: RunSpec, train_fn: TrainFn | None) -> None:
    # Ctrl-C reaches the whole process group; the parent alone answers it (it stops the runs),
    # so a child neither prints a traceback of its own nor dies holding its folder's lock
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    init_worker()
    send.send(execute(spec, train_fn))
    send.close()


@contextlib.contextmanager
def _ignoring_ctrl_c() -> Iterator[None]:
    """Ignore SIGINT while a child starts, so the child starts with it ignored (an ignored signal
    stays ignored across ``exec``, and Python then installs no KeyboardInterrupt handler): a
    Ctrl-C during the child's imports cannot give it a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _died(process: BaseProcess) -> str:
    """A traceback-like text for a run whose process ended without reporting."""
    code = process.exitcode
    how = f"exit code {code}"
    if code is not None and code < 0:
        how = f"signal {signal.Signals(-code).name}" + (
            " (often the out-of-memory killer)" if -code == signal.SIGKILL else ""
        )
    return f"ProcessDied: the run's process ended by {how} before reporting a result"


def _collect(result: Connection, process: BaseProcess, spec: RunSpec) -> RunOutcome:
    """The outcome the child sent, or a recorded failure if it died first (EOF on its pipe)."""
    try:
        outcome: RunOutcome | None = result.recv()
    except EOFError:
        outcome = None
    process.join()
    result.close()
    return outcome if outcome is not None else record_failure(spec, _died(process))


class LocalBackend:
    """Runs on this machine, each in a fresh ``spawn`` process, at most ``slots`` at a time.

    ``spawn``, not ``fork``: torch's threads and locks do not survive a fork.
    A process per run rather than a reused pool: a run that dies hard (segfault, out-of-memory
    kill) takes down only itself (a ``ProcessPoolExecutor`` would fail every pending run), and no
    state leaks from one run into the next. The price, importing torch per run, is seconds.
    """

    def __init__(self, workers: int) -> None:
        self.slots = workers
        self._running: dict[Connection, tuple[BaseProcess, RunSpec]] = {}
        self._previous_sigterm: Any = None

    def __enter__(self) -> LocalBackend:
        # SIGTERM (`kill`, a job scheduler) would end this process at once and leave its runs
        # going as orphans, holding their folders' locks; as an exception it reaches __exit__
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _stop)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """On an interrupt or SIGTERM, stop the runs still going (they resume next time)."""
        for receive, (process, _) in self._running.items():
            process.terminate()
            process.join()
            receive.close()
        self._running.clear()
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def run(self, specs: Sequence[RunSpec], train_fn: TrainFn | None) -> Iterator[RunOutcome]:
        context = multiprocessing.get_context("spawn")
        waiting = list(specs)
        while waiting or self._running:
            while waiting and len(self._running) < self.slots:
                spec = waiting.pop(0)
                receive, send = context.Pipe(duplex=False)
                child = context.Process(target=_run_in_child, args=(send, spec, train_fn))
                with _ignoring_ctrl_c():
                    child.start()
                send.close()  # the child holds the write end: EOF on receive if it dies
                self._running[receive] = (child, spec)
            for ready in wait(list(self._running)):  # a result, or EOF if the child died
                assert isinstance(ready, Connection)
                yield _collect(ready, *self._running.pop(ready))


ARTIFACTS = (RESULT_FILE, EVALUATIONS_FILE, ERROR_FILE, CONFIG_FILE)
"""The run files the report reads; Ray tasks send them back in case the driver's disk is not
the worker's (TensorBoard events and model.zip stay on the worker's node)."""


def read_artifacts(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in ARTIFACTS if (run_dir / name).exists()}


def mirror_artifacts(run_dir: Path, artifacts: dict[str, bytes]) -> None:
    """Make the driver's copy of the report files equal the worker's (a no-op on a shared disk)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS:
        path = run_dir / name
        if name not in artifacts:
            path.unlink(missing_ok=True)
        elif not path.exists() or path.read_bytes() != artifacts[name]:
            path.write_bytes(artifacts[name])


def _ray_task(spec: RunSpec, train_fn: TrainFn | None) -> tuple[RunOutcome, dict[str, bytes]]:
    init_worker()
    outcome = execute(spec, train_fn)
    return outcome, read_artifacts(spec.run_dir)


def _local_runtime_env() -> dict[str, Any]:
    """Let a local Ray instance's workers import this very jacrl, installed or not.

    Ray workers get the driver's working directory on their path, not its ``sys.path``; from a
    source checkout run elsewhere (or in tests) they would not find jacrl.
    """
    import jacrl

    paths = [str(Path(jacrl.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}}


class RayBackend:
    """Ray tasks (one CPU each) on the cluster at ``address``, or on a local instance.

    At most ``slots`` runs are in flight, so ``--workers`` caps a shared cluster too. The nodes of
    a remote cluster need jacrl installed. Run folders are given as absolute paths: on a multi-node
    cluster ``log_root`` should be a disk every node shares; otherwise the report files are copied
    back (see ``ARTIFACTS``). A task whose worker process dies is retried once, then reported as
    failed.
    """

    def __init__(self, workers: int | None, address: str | None) -> None:
        self._workers = workers
        self._address = address
        self._started = False
        self.slots = workers or 1

    def __enter__(self) -> RayBackend:
        import ray

        if not ray.is_initialized():
            local = self._address is None
            ray.init(
                address=self._address,
                num_cpus=self._workers if local else None,
                runtime_env=_local_runtime_env() if local else None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            self._started = True
        self.slots = self._workers or int(ray.cluster_resources().get("CPU", 1))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import ray

        if self._started:
            ray.shutdown()

    def run(self, specs: Sequence[RunSpec], train_fn: TrainFn | None) -> Iterator[RunOutcome]:
        import ray

        task = ray.remote(num_cpus=1, max_retries=1)(_ray_task)
        waiting = list(specs)
        in_flight: dict[Any, RunSpec] = {}
        while waiting or in_flight:
            while waiting and len(in_flight) < self.slots:
                spec = waiting.pop(0)
                remote_spec = replace(spec, log_root=str(Path(spec.log_root).resolve()))
                in_flight[task.remote(remote_spec, train_fn)] = spec
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            spec = in_flight.pop(ref)
            try:
                outcome, artifacts = ray.get(ref)
            except Exception:  # the task's worker or node died
                yield record_failure(spec, traceback.format_exc())
                continue
            mirror_artifacts(spec.run_dir, artifacts)
            yield replace(outcome, spec=spec)


def make_backend(
    name: str, *, workers: int | None, address: str | None, runs: int
) -> LocalBackend | RayBackend:
    """The backend called ``name``; a local pool never starts more workers than there are runs."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if name == "local":
        if address is not None:
            raise ConfigError("--address joins a Ray cluster: use it with --backend ray")
        return LocalBackend(min(workers or default_workers(), runs))
    if name == "ray":
        return RayBackend(workers if workers or address else default_workers(), address)
    raise ConfigError(f"unknown backend '{name}'; accepted: {', '.join(BACKENDS)}")
