"""``jacrl tune``: a hyperparameter search for one agent on one env with Optuna, as the zoo does it.

**What a trial is.** One :func:`jacrl.train.train` run with the preset of ``agent`` on ``env_id``
(``agents/<agent>.yml``, or ``--preset``) and one point of the search space
(:mod:`jacrl.tune.space`) on top, for the same budget every trial. It evaluates
deterministically ``n_evaluations`` times; each evaluation is reported to Optuna, whose pruner
(median or successive halving, as in rl-baselines3-zoo) may stop it early. Its value is the final
evaluation's mean return. On a classification bandit a trial trains without a validation share of
the training rows and evaluates on it, never on the test split (:mod:`jacrl.tune.validation`).
The sampler is TPE (multivariate, with the constant liar so parallel workers do not all sample
the same point).

**Seeds.** Trial ``k`` trains with seed ``TUNE_SEED_BASE + k`` = 1_000_000 + k (its evaluation
env ``+ 10_000``, as every run); with ``seeds_per_trial`` = m it trains seeds 1_000_000 + m·k + j,
j < m, one after the other, and its value is the mean of their final evaluations (evaluation i of
seed j is reported to the pruner as step j·(n_evaluations + 1) + i). Evaluation runs — ``jacrl
train``, ``jacrl compare``, the benchmarks — use small seeds (0, 1, …), so a preset is never
scored on the seeds it was picked on; keep evaluation seeds below 1_000_000. A retried trial keeps
the seeds of the trial it repeats.

**Processes.** Every trial trains in a fresh ``spawn`` process; ``n_jobs`` of them at a time. The
coordinating process only waits on them (one light thread per slot), reads each child's
``evaluations.npz`` as it grows, reports to Optuna, and kills a child whose trial is pruned. So
training is never limited by Python's GIL, a trial that crashes takes down only itself, and no
torch state leaks from one trial into the next. With ``backend="ray"`` each trial is a Ray task
in a fresh worker process instead (:mod:`jacrl.tune.runner`), and the coordinator does the same.

**Resuming.** The study lives in an Optuna storage: SQLite by default
(``runs/tune/<study>.db``), any RDB URL, or a journal file (``*.log``) — one storage can serve
workers on several machines. Run the same command again and it continues: ``trials`` counts the
study's *finished* (completed or pruned) trials, whoever ran them. A trial whose worker died
(killed process, lost machine) is marked failed and retried, once, with the same hyperparameters
and seed: a worker on the same host whose process is gone is dead at once; elsewhere, a worker
is dead when its trial's heartbeat (written every ``HEARTBEAT_S``) is older than ``GRACE_S``.
Failed trials are never counted, so the study ends with exactly ``trials`` distinct finished
trials. (A resumed study's sampler is reseeded with ``seed + trials so far``: the same history
gives the same next samples, and the new stream does not replay the old one.)
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from jacrl.common.errors import ConfigError, JacrlError
from jacrl.tune import space as search
from jacrl.tune.runner import Backend, Start, launcher
from jacrl.tune.validation import validation_kwargs

if TYPE_CHECKING:
    import optuna

Pruner = Literal["median", "halving", "none"]
TUNE_SEED_BASE = 1_000_000
HEARTBEAT_S = 2.0
GRACE_S = 20.0
POLL_S = 0.25
MAX_FAILURES_IN_A_ROW = 3
"""Trials that raise (a sampled combination the agent refuses, say) fail and are not retried;
this many in a row stop the study, since then the configuration itself is likely broken."""

# trial user attributes
WORKER_ATTR = "jacrl_worker"  # "<host>:<pid>" of the coordinating process
HEARTBEAT_ATTR = "jacrl_heartbeat"  # unix time of its last sign of life
RETRY_ATTR = "jacrl_retry_of"  # the number of the trial this one repeats
SEED_ATTR = "jacrl_seed"  # the first of the trial's seeds
SEED_VALUES_ATTR = "jacrl_seed_values"  # each seed's final evaluation (seeds_per_trial > 1)
HP_ATTR = "jacrl_hyperparameters"  # the sampled point, as JSON-able values
ERROR_ATTR = "jacrl_error"
STUDY_ATTR = "jacrl"  # the study's identity: agent, env, budget, space


def require_optuna() -> Any:
    """Optuna, or a :class:`ConfigError` saying how to install it (it is an optional extra)."""
    try:
        import optuna
    except ImportError as exc:
        raise ConfigError(
            f"jacrl tune needs Optuna ({exc}); install it with: pip install 'jacrl[tune]'"
        ) from exc
    return optuna


@dataclass(frozen=True)
class TuneResult:
    """How the study stands when :func:`tune` returns."""

    study_name: str
    storage: str
    trials: int
    complete: int
    pruned: int
    failed: int
    best_trial: int | None
    best_value: float | None
    best_hyperparameters: dict[str, Any] | None
    files: tuple[Path, ...]

    @property
    def finished(self) -> bool:
        """Whether the study holds its ``trials`` completed-or-pruned trials."""
        return self.complete + self.pruned >= self.trials


def default_storage(study_name: str) -> str:
    """``sqlite:///runs/tune/<study_name>.db`` (relative to the working directory)."""
    return f"sqlite:///runs/tune/{study_name}.db"


def open_storage(url: str, create_parent: bool = False) -> Any:
    """An Optuna storage for ``url``: an RDB URL (``sqlite:///file.db``, ``postgresql://…``,
    ``mysql://…``) or a journal file path ending in ``.log``.

    :param create_parent: create a missing folder for a SQLite file or journal (the default
        storage's ``runs/tune/``); a user's URL is opened as given.
    :raises ConfigError: for a URL of neither form, or one that cannot be opened.
    """
    optuna = require_optuna()
    accepted = (
        "accepted: an RDB URL (sqlite:///path/to/study.db, postgresql://user@host/db, "
        "mysql://…) or a journal file path ending in .log"
    )
    if "://" not in url and not url.endswith(".log"):
        raise ConfigError(f"storage '{url}' is neither an RDB URL nor a journal file; {accepted}")
    try:
        if "://" not in url:
            journal = Path(url)
            if create_parent:
                journal.parent.mkdir(parents=True, exist_ok=True)
            if not journal.parent.is_dir():
                raise ConfigError(f"the folder {journal.parent} does not exist")
            backend = optuna.storages.journal.JournalFileBackend(str(journal))
            return optuna.storages.JournalStorage(backend)
        sqlite = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
        if create_parent and sqlite:
            Path(sqlite).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 60}} if sqlite is not None else None
        return _open_rdb(optuna, url, engine)
    except Exception as exc:  # SQLAlchemy, a missing driver, the file system: one message
        raise ConfigError(f"cannot open the storage '{url}': {exc}; {accepted}") from exc


def _open_rdb(optuna: Any, url: str, engine: dict[str, Any] | None, attempts: int = 5) -> Any:
    """``RDBStorage(url)``, retried while another process creates the same new schema.

    Optuna creates a new database's tables and its version row without a lock, so two processes
    opening one new storage at once (two workers, or a machine and a progress probe) can see
    "table … already exists" or a UNIQUE failure on the version row. Both mean the schema is being
    made by the other process; opening again once it has finished succeeds. Any other error, or
    the same one after ``attempts``, is raised.
    """
    import sqlalchemy.exc

    for attempt in range(1, attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as exc:
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if not racing:
                raise
            time.sleep(0.1 * attempt)
    return optuna.storages.RDBStorage(url, engine_kwargs=engine)


def _pruner(kind: Pruner, n_startup_trials: int, n_evaluations: int) -> Any:
    """The zoo's pruners: median (after ``n_startup_trials`` trials and a third of the
    evaluations), successive halving (reduction factor 4), or none."""
    pruners = require_optuna().pruners
    if kind == "median":
        return pruners.MedianPruner(
            n_startup_trials=n_startup_trials, n_warmup_steps=n_evaluations // 3
        )
    if kind == "halving":
        return pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=4, min_early_stopping_rate=0
        )
    return pruners.NopPruner()


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive whole number, got {value!r}")


def _finished_states() -> tuple[Any, ...]:
    state = require_optuna().trial.TrialState
    return (state.COMPLETE, state.PRUNED)


def tune(
    agent: str,
    env_id: str,
    trials: int,
    *,
    steps: int | None = None,
    space: str | Path | None = None,
    preset: str | Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    out: str | Path | None = None,
    n_jobs: int = 1,
    backend: Backend = "local",
    address: str | None = None,
    seed: int = 0,
    pruner: Pruner = "median",
    n_startup_trials: int = 10,
    n_evaluations: int = 5,
    eval_episodes: int | None = None,
    seeds_per_trial: int = 1,
    timeout: float | None = None,
    progress_bar: bool = False,
) -> TuneResult:
    """Tune ``agent`` on ``env_id`` until the study holds ``trials`` completed-or-pruned trials,
    then write the best trial as a preset and the study's plots to ``out``.

    :param steps: env steps per trial; default the preset's ``n_timesteps``.
    :param space: a search-space YAML file (:func:`jacrl.tune.space.load_space`); default the
        agent's built-in space.
    :param preset: a preset file to start from instead of ``agents/<agent>.yml``.
    :param storage: an Optuna storage URL (:func:`open_storage`); default
        :func:`default_storage`.
    :param study_name: default ``<env>_<agent>``.
    :param out: where ``best.yml``, the plots and the trials' run folders go; default
        ``runs/tune/<study_name>``.
    :param n_jobs: trials trained at once, each in its own process.
    :param backend: ``"local"`` (``spawn`` processes) or ``"ray"`` (Ray tasks, one CPU each,
        connected as ``jacrl compare --backend ray``: :mod:`jacrl.tune.runner`).
    :param address: the Ray cluster to join (``"auto"``, ``"ray://host:10001"``); ``None``
        starts a local Ray of ``n_jobs`` CPUs. On several nodes, ``out`` should be a disk they
        all share (the pruner reads the trials' evaluations as they are written) and
        ``storage`` one they all reach.
    :param seed: the sampler's seed (trial seeds are ``TUNE_SEED_BASE + trial number``).
    :param n_startup_trials: random trials before TPE models the results, and trials before the
        median pruner prunes.
    :param n_evaluations: evaluations per trial, reported to the pruner.
    :param eval_episodes: episodes per evaluation (default as :func:`jacrl.train.train`).
    :param seeds_per_trial: training seeds per trial, one after the other; the trial's value is
        the mean of their final evaluations. One seed rewards a point that was lucky on it: a
        40-trial digits study picked a point at validation accuracy 0.965 whose test accuracy on
        five other seeds averaged 0.941 (docs/presets.md).
    :param timeout: start no trial after this many seconds (running ones finish), as Optuna's
        ``optimize(timeout=...)``; the study may then end with fewer than ``trials`` (and a
        later run with the same settings goes on with it).
    :raises ConfigError: at once, for an unknown agent or env, an agent that cannot act in the
        env, a bad search-space file, a storage that cannot be opened, a count that is not
        positive, an unknown backend or an address without Ray, or a storage holding another
        study under this name.
    :raises JacrlError: when ``MAX_FAILURES_IN_A_ROW`` trials fail in a row.
    """
    from jacrl.agents.registry import check_agent_fits_env
    from jacrl.envs.registration import check_env_id
    from jacrl.presets import load_preset
    from jacrl.train import env_slug, resolve_config

    optuna = require_optuna()
    _check_positive(
        trials=trials,
        n_jobs=n_jobs,
        n_evaluations=n_evaluations,
        seeds_per_trial=seeds_per_trial,
    )
    if pruner not in get_args(Pruner):
        raise ConfigError(f"pruner={pruner!r}: expected one of {get_args(Pruner)}")
    if n_startup_trials < 0:
        raise ConfigError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
    if backend not in get_args(Backend):
        raise ConfigError(f"backend={backend!r}: expected one of {get_args(Backend)}")
    if address is not None and backend != "ray":
        raise ConfigError("address joins a Ray cluster: use it with backend 'ray' (--backend ray)")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    check_env_id(env_id)
    check_agent_fits_env(agent, env_id)
    points = search.load_space(space, agent) if space is not None else search.builtin_space(agent)
    run, _ = resolve_config(agent, env_id, steps, None, preset)
    budget = run["n_timesteps"]
    base = load_preset(agent, env_id, preset)
    name = study_name or f"{env_slug(env_id)}_{agent}"
    url = storage or default_storage(name)
    opened = open_storage(url, create_parent=storage is None)
    out = Path(out) if out is not None else Path("runs") / "tune" / name
    trials_root = (out / "trials").resolve()
    held_out = validation_kwargs(env_id)

    identity = {
        "agent": agent,
        "env_id": env_id,
        "steps": budget,
        "n_evaluations": n_evaluations,
        "eval_episodes": eval_episodes,
        "preset": base,
        "space": search.describe(points),
        **({"env_kwargs": held_out} if held_out else {}),
        # absent for one seed, so that studies made before the option resume
        **({"seeds_per_trial": seeds_per_trial} if seeds_per_trial > 1 else {}),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            study_name=name,
            storage=opened,
            direction="maximize",
            load_if_exists=True,
            pruner=_pruner(pruner, n_startup_trials, n_evaluations),
        )
        study.sampler = optuna.samplers.TPESampler(
            n_startup_trials=n_startup_trials,
            seed=seed + len(study.get_trials(deepcopy=False)),
            multivariate=True,
            constant_liar=True,
        )
    _claim(study, identity, url)

    def train_kwargs(drawn: Mapping[str, Any], trial_seed: int, run_name: str) -> dict[str, Any]:
        return {
            "agent": agent,
            "env_id": env_id,
            "steps": budget,
            "seed": trial_seed,
            "hp": search.merge(base, drawn),
            "preset": None if preset is None else str(Path(preset).resolve()),
            "log_root": str(trials_root),  # absolute: a Ray worker has its own cwd
            "eval_every": max(budget // n_evaluations, 1),
            "eval_episodes": eval_episodes,
            "run_name": run_name,
        }

    with launcher(backend, n_jobs, address) as start:
        coordinator = _Coordinator(
            study,
            opened,
            trials,
            points,
            train_kwargs,
            start,
            env_id,
            held_out,
            trials_root,
            seeds_per_trial,
            n_evaluations,
        )
        coordinator.run(n_jobs, progress_bar, timeout)

    from jacrl.tune.output import save_plots, write_best_preset

    files: list[Path] = []
    best, hp = _best(study), None
    if best is not None:
        hp = {**search.merge(base, best.user_attrs[HP_ATTR]), "n_timesteps": budget}
        first = int(best.user_attrs[SEED_ATTR])
        if seeds_per_trial == 1:
            scored = f"final evaluation {best.value:.6g} after {budget} steps, seed {first}"
            seeds = "trial number"
        else:
            each = ", ".join(f"{v:.6g}" for v in best.user_attrs[SEED_VALUES_ATTR])
            scored = (
                f"mean final evaluation {best.value:.6g} after {budget} steps over seeds "
                f"{first}-{first + seeds_per_trial - 1} ({each})"
            )
            seeds = f"{seeds_per_trial} x trial number + 0..{seeds_per_trial - 1}"
        provenance = (
            f"jacrl tune: the best of {trials} trials of study '{name}' ({url}): trial "
            f"{best.number}, {scored} (tuning seeds are {TUNE_SEED_BASE} + {seeds})"
            + (
                f"; scored on the validation split (validation_fraction "
                f"{held_out['validation_fraction']} of the training rows), never the test split"
                if held_out
                else ""
            )
        )
        files.append(write_best_preset(out / "best.yml", env_id, hp, provenance))
        files.extend(save_plots(study, out))
    counts = _count(study)
    if coordinator.gave_up:
        raise JacrlError(
            f"{MAX_FAILURES_IN_A_ROW} trials in a row failed, so the study stopped; the last "
            f"error: {coordinator.last_error}"
        )
    return TuneResult(
        study_name=name,
        storage=url,
        trials=trials,
        complete=counts["COMPLETE"],
        pruned=counts["PRUNED"],
        failed=counts["FAIL"],
        best_trial=None if best is None else best.number,
        best_value=None if best is None else best.value,
        best_hyperparameters=hp,
        files=tuple(files),
    )


def _claim(study: optuna.Study, identity: dict[str, Any], url: str) -> None:
    """Mark a new study as this search, or check that an existing one is the same search."""
    found = study.user_attrs.get(STUDY_ATTR)
    if found is None and study.get_trials(deepcopy=False):
        raise ConfigError(
            f"storage '{url}' already holds a study '{study.study_name}' that jacrl tune did not "
            "create; choose another --study-name"
        )
    if found is None:
        study.set_user_attr(STUDY_ATTR, search.jsonable(identity))
        return
    if found != search.jsonable(identity):
        wanted = search.jsonable(identity)
        differ = sorted(k for k in {*found, *wanted} if found.get(k) != wanted.get(k))
        raise ConfigError(
            f"storage '{url}' holds study '{study.study_name}' with other settings "
            f"({', '.join(differ)} differ); resume it with the same ones, or choose another "
            "--study-name"
        )


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    state = require_optuna().trial.TrialState
    complete = study.get_trials(deepcopy=False, states=(state.COMPLETE,))
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def _count(study: optuna.Study) -> dict[str, int]:
    counts = dict.fromkeys(("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"), 0)
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _evaluation_means(path: Path) -> list[float] | None:
    """The mean return of each evaluation in ``evaluations.npz`` so far; ``None`` while the file
    is missing or half-written (the child rewrites it after every evaluation)."""
    try:
        with np.load(path) as data:
            return [float(np.mean(row)) for row in data["results"]]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):
        return None


class _Wait:
    """Returned instead of a trial while the study is full but some running trial may still
    fail (and need a retry)."""


class _Coordinator:
    """Runs trials in child processes until the study holds ``target`` finished trials."""

    def __init__(
        self,
        study: optuna.Study,
        storage: Any,
        target: int,
        points: search.SearchSpace,
        train_kwargs: Callable[[Mapping[str, Any], int, str], dict[str, Any]],
        start: Start,
        env_id: str,
        env_kwargs: dict[str, Any],
        trials_root: Path,
        seeds_per_trial: int,
        n_evaluations: int,
    ) -> None:
        self.study, self.storage, self.target, self.points = study, storage, target, points
        self.seeds_per_trial, self.n_evaluations = seeds_per_trial, n_evaluations
        self.train_kwargs, self.env_id, self.trials_root = train_kwargs, env_id, trials_root
        self.env_kwargs, self.start = env_kwargs, start
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.host, self.me = socket.gethostname(), f"{socket.gethostname()}:{os.getpid()}"
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.active: set[int] = set()  # trials this process is running
        self.failures_in_a_row = 0
        self.gave_up = False
        self.last_error: str | None = None
        self.crash: BaseException | None = None
        self.bar: Any = None
        self.deadline: float | None = None  # monotonic time after which no trial starts

    # -- the loop ------------------------------------------------------------------------------
    def run(self, n_jobs: int, progress_bar: bool, timeout: float | None = None) -> None:
        """Work with ``n_jobs`` slots until done (or, with ``timeout``, until no trial may start
        any more and the running ones have finished); on Ctrl-C, hand the running trials back
        (they are retried on the next run) and re-raise."""
        from tqdm.auto import tqdm

        self.deadline = None if timeout is None else time.monotonic() + timeout
        finished = sum(_count(self.study)[s] for s in ("COMPLETE", "PRUNED"))
        self.bar = tqdm(
            total=self.target,
            initial=min(finished, self.target),
            unit="trial",
            desc=f"tune {self.study.study_name}",
            disable=not progress_bar,
        )
        threads = [threading.Thread(target=self._work, daemon=True) for _ in range(n_jobs)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)
        except KeyboardInterrupt:
            self.stop.set()
            for thread in threads:
                thread.join()
            raise
        finally:
            self.bar.close()
        if self.crash is not None:
            raise self.crash

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                trial = self._next_trial()
                if trial is None:
                    return
                if isinstance(trial, _Wait):
                    self.stop.wait(POLL_S * 4)
                    continue
                try:
                    self._run(trial)
                finally:
                    with self.lock:
                        self.active.discard(trial.number)
                        self._refresh_bar()
        except BaseException as exc:  # a storage failure: stop every slot, raise in run()
            self.crash = exc
            self.stop.set()

    def _next_trial(self) -> optuna.Trial | _Wait | None:
        """The next trial to run, a :class:`_Wait`, or ``None`` when the study is done."""
        optuna = require_optuna()
        with self.lock:
            self._reap()
            counts = _count(self.study)
            finished = counts["COMPLETE"] + counts["PRUNED"]
            if finished >= self.target:
                return None
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return None
            if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                self.gave_up = True
                self.stop.set()  # the other slots hand their trials back
                return None
            if finished + counts["RUNNING"] >= self.target:
                return _Wait()
            trial = self.study.ask()
            self.active.add(trial.number)
            trial.set_user_attr(WORKER_ATTR, self.me)
            trial.set_user_attr(HEARTBEAT_ATTR, time.time())
            if self._surplus(trial):  # another process asked for the last slot first
                self._hand_back(trial)
                self.active.discard(trial.number)
                return _Wait()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                trial.set_user_attr(HP_ATTR, search.jsonable(search.sample(trial, self.points)))
            origin = trial.user_attrs.get(RETRY_ATTR, trial.number)
            trial.set_user_attr(SEED_ATTR, TUNE_SEED_BASE + origin * self.seeds_per_trial)
            return trial

    def _surplus(self, trial: optuna.Trial) -> bool:
        """Whether finished trials and earlier running ones already fill the study (two
        processes on one storage asked at once): trial numbers decide who runs."""
        state = require_optuna().trial.TrialState
        ahead = 0
        for other in self.study.get_trials(deepcopy=False):
            if other.state in _finished_states() or (
                other.state == state.RUNNING and other.number < trial.number
            ):
                ahead += 1
        return ahead >= self.target

    # -- dead workers --------------------------------------------------------------------------
    def _dead(self, trial: optuna.trial.FrozenTrial, now: float) -> bool:
        host, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
        if (
            host == self.host
            and pid.isdigit()
            and (int(pid) == os.getpid() or not _pid_alive(int(pid)))
        ):
            return True  # not in self.active (the caller checked), or its process is gone
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - float(trial.user_attrs.get(HEARTBEAT_ATTR, started)) > GRACE_S

    def _reap(self) -> None:
        """Fail the running trials whose worker died, and queue each again (same point, seed)."""
        optuna = require_optuna()
        now = time.time()
        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for trial in running:
            if trial.number in self.active or not self._dead(trial, now):
                continue
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(
                self.study_id, trial.number
            )
            try:
                self.storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker reaped it, or it finished after all
            self._enqueue_retry(trial.params, trial.user_attrs.get(RETRY_ATTR, trial.number))

    def _enqueue_retry(self, params: dict[str, Any], origin: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # enqueue_trial is experimental-ish
            self.study.enqueue_trial(params, user_attrs={RETRY_ATTR: origin}, skip_if_exists=False)

    def _hand_back(self, trial: optuna.Trial) -> None:
        """Give up a trial not yet trained: fail it, and queue it again if it was a retry (or,
        being run, would have sampled params that a retry must keep)."""
        self.study.tell(trial, state=require_optuna().trial.TrialState.FAIL)
        if RETRY_ATTR in trial.user_attrs or trial.params:
            self._enqueue_retry(trial.params, trial.user_attrs.get(RETRY_ATTR, trial.number))

    # -- one trial -----------------------------------------------------------------------------
    def _run(self, trial: optuna.Trial) -> None:
        """Train the trial's seeds one after the other; its value is the mean of their final
        evaluations. Evaluation i of seed j is reported as step j·(n_evaluations + 1) + i, so the
        pruner compares every trial's seed j with the other trials' seed j, and can stop a poor
        point during its first seed. (A run evaluates every ``steps // n_evaluations`` env steps
        and once more at its end when that is off the grid, as a rollout can overshoot the
        budget: n_evaluations + 1 evaluations.)"""
        optuna = require_optuna()
        first = int(trial.user_attrs[SEED_ATTR])
        stride = self.n_evaluations + 1
        finals: list[float] = []
        for seed in range(first, first + self.seeds_per_trial):
            last = len(finals) == self.seeds_per_trial - 1
            final = self._train_seed(trial, seed, len(finals) * stride, None if last else stride)
            if final is None:  # pruned, handed back or failed: the trial is told already
                return
            finals.append(final)
        if self.seeds_per_trial > 1:
            trial.set_user_attr(SEED_VALUES_ATTR, finals)
        self._tell(trial, optuna.trial.TrialState.COMPLETE, float(np.mean(finals)))

    def _train_seed(
        self, trial: optuna.Trial, seed: int, offset: int, most: int | None
    ) -> float | None:
        """Train one seed of ``trial`` in a child, reporting its first ``most`` (all: ``None``)
        evaluations as steps ``offset + 1``, …; its final evaluation, or ``None`` once the trial
        has been told (pruned, failed) or handed back (Ctrl-C)."""
        from jacrl.train import EVALUATIONS_FILE, RESULT_FILE, run_dir_for
        from jacrl.tune.runner import ERROR_FILE

        optuna = require_optuna()
        state = optuna.trial.TrialState
        run_name = f"trial{trial.number}"
        run_dir = run_dir_for(self.trials_root, self.env_id, run_name, seed)
        kwargs = self.train_kwargs(trial.user_attrs[HP_ATTR], seed, run_name)
        training = self.start(run_dir, kwargs, self.env_kwargs)
        reported, beat = 0, time.monotonic()
        try:  # the training is gone when its trial is told (pruned, interrupted)
            while True:
                done = training.wait(POLL_S)
                if time.monotonic() - beat >= HEARTBEAT_S:
                    trial.set_user_attr(HEARTBEAT_ATTR, time.time())
                    beat = time.monotonic()
                means = (_evaluation_means(run_dir / EVALUATIONS_FILE) or [])[:most]
                for step, value in enumerate(means[reported:], start=reported + 1):
                    trial.report(value, offset + step)
                    reported = step
                    if trial.should_prune():
                        self._tell(trial, state.PRUNED)
                        return None
                if done:
                    break
                if self.stop.is_set():  # Ctrl-C: the next run retries it
                    self._hand_back(trial)
                    return None
        finally:
            training.stop()
        failure = training.failure()
        if failure is None and (run_dir / RESULT_FILE).is_file():
            return float(json.loads((run_dir / RESULT_FILE).read_text())["final_eval_mean"])
        error_file = run_dir / ERROR_FILE
        error = (
            error_file.read_text().strip().splitlines()[-1]
            if error_file.is_file()
            else failure or f"the trial ended without a {RESULT_FILE}"
        )
        trial.set_user_attr(ERROR_ATTR, error)
        self._tell(trial, state.FAIL, error=f"{error} (traceback: {error_file})")
        return None

    def _tell(
        self,
        trial: optuna.Trial,
        state: optuna.trial.TrialState,
        value: float | None = None,
        error: str | None = None,
    ) -> None:
        self.study.tell(trial, value, state=state)
        with self.lock:
            if error is None:
                self.failures_in_a_row = 0
            else:
                self.failures_in_a_row += 1
                self.last_error = error

    def _refresh_bar(self) -> None:
        counts = _count(self.study)
        self.bar.n = min(counts["COMPLETE"] + counts["PRUNED"], self.target)
        best = _best(self.study)
        if best is not None:
            self.bar.set_postfix(best=f"{best.value:.4g}", pruned=counts["PRUNED"], refresh=False)
        self.bar.refresh()
