"""One training run: an agent on an env with one seed, logged to ``runs/<env>/<agent>_<seed>/``.

This is what ``jacrl train`` runs and what ``jacrl compare`` runs for every cell of its grid, so
every agent — the Jacobian learner, the supervised baseline and the SB3 baselines — is trained,
evaluated and stored the same way:

- ``config.yaml``: the resolved configuration (agent, env, seed, budget, evaluation settings,
  every hyperparameter after the preset, the versions that decide the numbers) and its
  ``fingerprint``, a hash of all of it: ``jacrl compare`` reuses a finished run only when the
  fingerprint is the one it would train now;
- ``events.out.tfevents.*``: TensorBoard (SB3's keys for every agent, so curves overlay; with
  ``eval_every``, for an agent with an exact density of a 1-D or 2-D Box action, that density
  as an image at every evaluation, ``eval/action_density``: :mod:`jacrl.density`),
- ``model.zip``: the trained agent (``jacrl eval`` reloads it),
- with ``eval_every``: ``evaluations.npz`` (SB3 ``EvalCallback`` format: deterministic returns
  on a separate evaluation env, which uses the held-out split when the env has one),
- for SB3 agents with ``normalize``: ``vecnormalize.npz``, the normalisation statistics as arrays
  (not pickled: :mod:`jacrl.common.normalization_stats`),
- ``result.json``: final evaluation, wall time and throughput, written last — a folder with a
  ``result.json`` of status ``ok`` holds a finished run;
- with ``checkpoint_every`` (jacrl agents), while the run is unfinished: ``checkpoint.zip``, from
  which :func:`resume` (``jacrl train --resume <run_dir>``) continues a killed run to the same
  final weights, evaluations and TensorBoard curve as an uninterrupted run.

**A run folder is never overwritten silently.** A writer holds ``<run_dir>.lock``
(:mod:`jacrl.common.run_lock`) for the whole run, so a second writer is refused naming the first.
A folder that holds a finished run, or an interrupted one with a checkpoint, is refused unless
``force`` (``--force``) moves it aside to ``<run_dir>.old-<time>``; the files of an attempt that
ended without a result or a checkpoint (it cannot be continued) are removed before the run starts
again, so no stale file sits beside the new run's. ``config.yaml`` is written only once the agent
is built (the run is committed to start) and ``result.json`` last, so the files in a folder
always describe one run.

**Evaluations do not depend on the process's history.** Evaluation ``k`` resets the evaluation env
with a seed computed from the run's seed and ``k`` (:func:`evaluation_seed`), so a resumed run
evaluates on the episodes an uninterrupted one does. (Before this, the episodes continued the
evaluation env's generator, which a resumed run rebuilt; evaluation numbers differ from those of
earlier jacrl versions for that reason.)
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import stable_baselines3
import yaml
from gymnasium.envs.registration import load_env_creator
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

import jacrl
from jacrl.agents.registry import AGENTS, check_agent_fits_env, get_agent
from jacrl.common.atomic import write_atomically
from jacrl.common.errors import ConfigError, NonFiniteError, RunFolderError
from jacrl.common.normalization_stats import save_statistics
from jacrl.common.paths import inside_root
from jacrl.common.run_lock import RunLock
from jacrl.density import density_callback
from jacrl.envs.classification_bandit import ClassificationBandit
from jacrl.envs.registration import check_env_id
from jacrl.presets import RUN_KEYS, load_preset

EVAL_SEED_OFFSET = 10_000  # evaluation envs are seeded apart from the training envs
DEFAULT_EVAL_EPISODES = 10

# the run folder's files (jacrl compare and jacrl eval read them back)
MODEL_FILE = "model.zip"
CONFIG_FILE = "config.yaml"
RESULT_FILE = "result.json"
EVALUATIONS_FILE = "evaluations.npz"
CHECKPOINT_FILE = "checkpoint.zip"
VECNORMALIZE_FILE = "vecnormalize.npz"
PICKLED_VECNORMALIZE_FILE = "vecnormalize.pkl"  # what SB3 (and jacrl before) wrote: pickle
ERROR_FILE = "error.txt"  # a failed run's traceback (jacrl compare writes it)
EVENTS_PATTERN = "events.out.tfevents.*"
RUN_FILES = (
    CONFIG_FILE,
    MODEL_FILE,
    RESULT_FILE,
    EVALUATIONS_FILE,
    CHECKPOINT_FILE,
    VECNORMALIZE_FILE,
    PICKLED_VECNORMALIZE_FILE,
    ERROR_FILE,
)
"""Every file a run (or compare, for a failed one) writes, besides the TensorBoard events."""


def evaluation_seed(seed: int, index: int) -> int:
    """The seed the ``index``-th evaluation of a run with ``seed`` resets its env with.

    A function of the two numbers only, so an evaluation's episodes do not depend on what the
    evaluation env did before (a resumed run rebuilds it), and apart from the training envs'
    seeds (``seed + i``).
    """
    return int(np.random.SeedSequence([seed + EVAL_SEED_OFFSET, index]).generate_state(1)[0])


class ResumableEvalCallback(EvalCallback):
    """SB3's ``EvalCallback``, with evaluation episodes fixed by the run and a resumable history.

    Evaluation ``k`` resets the evaluation env with :func:`evaluation_seed` ``(seed, k)``, so its
    episodes are the same in a resumed run as in an uninterrupted one.

    SB3's callback starts every ``learn`` with an empty history (so it would overwrite
    ``evaluations.npz`` with the resumed part alone) and counts ``eval_freq`` from its own first
    call (so evaluations would shift by the steps done before the checkpoint). On a resumed run
    this keeps the evaluations at or before the checkpoint's step — later ones came from the killed
    process past its checkpoint and are redone — and aligns the call count with the step count.

    :param seed: the run's seed.
    """

    def __init__(self, eval_env: Any, *, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(eval_env, **kwargs)
        self.seed = seed

    def _on_training_start(self) -> None:
        super()._on_training_start()
        step = self.model.num_timesteps
        history = Path(f"{self.log_path}.npz") if self.log_path else None
        if step == 0 or history is None or not history.is_file():
            return
        self.n_calls = step // self.training_env.num_envs
        with np.load(history) as data:
            keep = data["timesteps"] <= step
            self.evaluations_timesteps = data["timesteps"][keep].tolist()
            self.evaluations_results = data["results"][keep].tolist()
            self.evaluations_length = data["ep_lengths"][keep].tolist()
            if "successes" in data:  # written only for envs that report info["is_success"]
                self.evaluations_successes = data["successes"][keep].tolist()

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            self.eval_env.seed(evaluation_seed(self.seed, len(self.evaluations_timesteps)))
        return super()._on_step()

    def evaluate_final(self, path: Path) -> tuple[float, float]:
        """Evaluate once more at the end (unless the last evaluation was at this step) and write
        the whole history to ``path`` atomically; the final evaluation's mean and std."""
        step = self.model.num_timesteps
        if not self.evaluations_timesteps or self.evaluations_timesteps[-1] != step:
            if self.model.get_vec_normalize_env() is not None:  # SB3 + VecNormalize: share stats
                sync_envs_normalization(self.training_env, self.eval_env)
            self._is_success_buffer = []
            self.eval_env.seed(evaluation_seed(self.seed, len(self.evaluations_timesteps)))
            rewards, lengths = evaluate_policy(
                self.model,
                self.eval_env,
                n_eval_episodes=self.n_eval_episodes,
                deterministic=self.deterministic,
                return_episode_rewards=True,
                callback=self._log_success_callback,
            )
            self.evaluations_timesteps.append(step)
            self.evaluations_results.append(np.atleast_1d(rewards).tolist())
            self.evaluations_length.append(np.atleast_1d(lengths).tolist())
            if self._is_success_buffer:
                self.evaluations_successes.append(self._is_success_buffer)
        arrays: dict[str, Any] = {
            "timesteps": np.asarray(self.evaluations_timesteps),
            "results": np.asarray(self.evaluations_results, dtype=float),
            "ep_lengths": np.asarray(self.evaluations_length),
        }
        if self.evaluations_successes:
            arrays["successes"] = np.asarray(self.evaluations_successes, dtype=float)
        write_atomically(path, lambda file: np.savez(file, **arrays))
        final = arrays["results"][-1]
        return float(np.mean(final)), float(np.std(final))


@dataclass
class RunResult:
    """What one run produced; also written to ``result.json``."""

    agent: str
    env_id: str
    seed: int
    steps: int
    run_dir: str
    final_eval_mean: float | None
    final_eval_std: float | None
    wall_time_s: float
    steps_per_s: float | None  # None for a run timed at 0 s
    reward_threshold: float | None
    status: str = "ok"


def env_slug(env_id: str) -> str:
    """An env id as a file-name part (``jacrl/DigitsBandit-v0`` → ``jacrl_DigitsBandit-v0``)."""
    return env_id.replace("/", "_")


def run_dir_for(log_root: str | Path, env_id: str, agent: str, seed: int) -> Path:
    """``<log_root>/<env slug>/<agent>_<seed>``, the folder :func:`train` writes.

    :raises ConfigError: when a part is not a plain folder name, or the folder would not lie
        inside ``log_root`` (an env id ``..``, a seed ``"0/../x"`` from a crafted file).
    """
    what = f"the run of agent {agent!r} on env {env_id!r} with seed {seed!r}"
    return inside_root(log_root, env_slug(env_id), f"{agent}_{seed}", what=what)


def held_out_episodes(bandit: ClassificationBandit) -> int:
    """Evaluation episodes that answer every held-out example once: ⌈examples / episode_length⌉.

    The default evaluation size on a classification bandit (its score is then the accuracy on
    the whole held-out set, not on a sample of it); ``jacrl compare`` scores with the same count.
    """
    return -(-len(bandit) // bandit.episode_length)


def eval_env_kwargs(env_id: str) -> dict[str, Any]:
    """Evaluate on the held-out split when the env offers one (``ClassificationBandit``): the
    test split, or the validation split when the env's spec holds one out of the training rows
    (``validation_fraction``: how ``jacrl tune`` registers the env for its trials)."""
    spec = gym.spec(env_id)
    entry_point = spec.entry_point
    target = entry_point if callable(entry_point) else load_env_creator(str(entry_point))
    if "split" not in inspect.signature(target).parameters:
        return {}
    return {"split": "test" if spec.kwargs.get("validation_fraction") is None else "validation"}


def default_eval_episodes(env_id: str) -> int:
    """10, or for a classification bandit its whole held-out split once."""
    env = gym.make(env_id, **eval_env_kwargs(env_id))
    try:
        bandit = env.unwrapped
        if isinstance(bandit, ClassificationBandit):
            return held_out_episodes(bandit)
        return DEFAULT_EVAL_EPISODES
    finally:
        env.close()


def _check_count(name: str, value: Any, minimum: int = 1) -> None:
    """Refuse a count that is not a whole number ``>= minimum`` (``None`` passes: unset)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        least = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        raise ConfigError(f"{name}={value!r}: expected {least}")


def resolve_config(
    agent: str,
    env_id: str,
    steps: int | None,
    hp: Mapping[str, Any] | None = None,
    preset: str | Path | None = None,
    *,
    from_preset: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge preset and overrides; split them into run settings and agent hyperparameters.

    :param from_preset: ``False`` takes ``hp`` alone (it is a whole configuration already).
    :returns: ``(run, agent_hp)`` where ``run`` holds ``n_envs``, ``n_timesteps``, ``normalize``.
    :raises ConfigError: for an unknown agent or a budget that is not a positive integer.
    """
    get_agent(agent)
    base = load_preset(agent, env_id, preset) if from_preset else {}
    merged = {**base, **(hp or {})}
    run = {key: merged.pop(key) for key in RUN_KEYS if key in merged}
    run.setdefault("n_envs", 1)
    run.setdefault("normalize", False)
    budget = steps if steps is not None else run.get("n_timesteps")
    if budget is None or int(budget) != budget or int(budget) <= 0:
        raise ConfigError(
            f"the training budget must be a positive whole number of env steps, got {budget!r} "
            "(pass --steps, or set n_timesteps in the preset)"
        )
    run["n_timesteps"] = int(budget)
    return run, merged


def _canonical(value: Any) -> Any:
    """``value`` as plain JSON (tuples as lists, non-finite floats and other objects as text),
    so equal configurations hash equally."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


@dataclass(frozen=True)
class RunConfig:
    """The resolved configuration of one run: everything that decides its numbers.

    ``config.yaml`` holds it, with :attr:`fingerprint`; :func:`run_config` builds it from the
    arguments of :func:`train`.
    """

    agent: str
    env_id: str
    seed: int
    n_envs: int
    n_timesteps: int
    normalize: Any
    eval_every: int | None
    eval_episodes: int | None
    checkpoint_every: int | None
    hyperparameters: dict[str, Any]
    run_name: str
    env: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    #: fields that do not change the run's numbers (checkpoints are invisible to it)
    NOT_FINGERPRINTED: ClassVar[tuple[str, ...]] = ("checkpoint_every",)

    def identity(self) -> dict[str, Any]:
        """The fingerprinted part, as plain JSON."""
        values = asdict(self)
        return _canonical({k: v for k, v in values.items() if k not in self.NOT_FINGERPRINTED})

    @property
    def fingerprint(self) -> str:
        """SHA-256 of :meth:`identity`: equal exactly for runs that would train alike."""
        text = json.dumps(self.identity(), sort_keys=True, allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_file(self) -> dict[str, Any]:
        """What ``config.yaml`` holds (the keys older readers know first)."""
        return {
            "agent": self.agent,
            "env_id": self.env_id,
            "seed": self.seed,
            "n_envs": self.n_envs,
            "n_timesteps": self.n_timesteps,
            "normalize": self.normalize,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "checkpoint_every": self.checkpoint_every,
            "hyperparameters": self.hyperparameters,
            "run_name": self.run_name,
            "env": self.env,
            "versions": self.versions,
            "fingerprint": self.fingerprint,
        }

    def run_dir(self, log_root: str | Path) -> Path:
        return run_dir_for(log_root, self.env_id, self.run_name, self.seed)


def _env_description(env_id: str) -> dict[str, Any]:
    """The registered spec of ``env_id`` that decides its dynamics (an edited spec file changes
    the fingerprint)."""
    spec = check_env_id(env_id)
    entry_point = spec.entry_point
    return _canonical(
        {
            "entry_point": entry_point if isinstance(entry_point, str) else repr(entry_point),
            "kwargs": dict(spec.kwargs),
            "max_episode_steps": spec.max_episode_steps,
        }
    )


def _versions() -> dict[str, str]:
    return {
        "jacrl": jacrl.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gym.__version__,
    }


def run_config(
    agent: str,
    env_id: str,
    steps: int | None = None,
    seed: int = 0,
    hp: Mapping[str, Any] | None = None,
    preset: str | Path | None = None,
    eval_every: int | None = None,
    eval_episodes: int | None = None,
    run_name: str | None = None,
    checkpoint_every: int | None = None,
    *,
    from_preset: bool = True,
) -> RunConfig:
    """The configuration :func:`train` resolves from these arguments (nothing is written).

    :param from_preset: ``False`` takes ``hp`` as the whole configuration (what :func:`resume`
        reads back from ``config.yaml``), without the preset under it.

    :raises ConfigError: for an unknown agent or env, a budget, seed or evaluation count that is
        not a positive whole number (the seed: non-negative), or checkpoints for an SB3 agent.
    :raises UnsupportedSpaceError: for an agent that cannot act in the env.
    """
    check_env_id(env_id)
    _check_count("seed", seed, minimum=0)
    _check_count("eval_every", eval_every)
    _check_count("eval_episodes", eval_episodes)
    run, agent_hp = resolve_config(agent, env_id, steps, hp, preset, from_preset=from_preset)
    entry = check_agent_fits_env(agent, env_id)
    if checkpoint_every is not None and (not entry.checkpoints or checkpoint_every <= 0):
        resumable = ", ".join(name for name, e in AGENTS.items() if e.checkpoints)
        raise ConfigError(
            f"checkpoint_every={checkpoint_every} (agent '{agent}'): checkpoints need a positive "
            f"number of env steps and a jacrl agent ({resumable})"
        )
    if eval_every is None:
        eval_episodes = None
    elif eval_episodes is None:
        eval_episodes = default_eval_episodes(env_id)
    return RunConfig(
        agent=agent,
        env_id=env_id,
        seed=int(seed),
        n_envs=run["n_envs"],
        n_timesteps=run["n_timesteps"],
        normalize=run["normalize"],
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        checkpoint_every=checkpoint_every,
        hyperparameters=agent_hp,
        run_name=run_name or agent,
        env=_env_description(env_id),
        versions=_versions(),
    )


def read_config(run_dir: Path) -> dict[str, Any]:
    """``run_dir/config.yaml`` as a mapping.

    :raises ConfigError: for a missing, unreadable or malformed file.
    """
    path = run_dir / CONFIG_FILE
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"no readable {CONFIG_FILE} in {run_dir} ({exc}); a run folder is "
            "<log-root>/<env>/<agent>_<seed>, as `jacrl train` writes it"
        ) from exc
    if not isinstance(config, dict):
        raise ConfigError(
            f"{path} is not a run configuration (a YAML mapping), it holds "
            f"{type(config).__name__}: {config!r:.80}"
        )
    return config


def config_differences(found: Mapping[str, Any], expected: RunConfig) -> list[str]:
    """What differs between a folder's ``config.yaml`` and the configuration asked for, as
    ``"key: <in the folder> (folder) vs <asked for> (now)"`` lines (fingerprinted keys only)."""
    wanted = expected.identity()
    have = _canonical({k: found.get(k) for k in wanted})
    lines = []
    for key in wanted:
        if isinstance(wanted[key], dict) and isinstance(have[key], dict):
            for sub in sorted(set(wanted[key]) | set(have[key])):
                a, b = have[key].get(sub, "<unset>"), wanted[key].get(sub, "<unset>")
                if a != b:
                    lines.append(f"{key}.{sub}: {a!r} (folder) vs {b!r} (now)")
        elif have[key] != wanted[key]:
            lines.append(f"{key}: {have[key]!r} (folder) vs {wanted[key]!r} (now)")
    if not lines and found.get("fingerprint") != expected.fingerprint:
        lines.append("fingerprint (the file was edited, or written by another jacrl)")
    return lines


def finished_result(run_dir: Path) -> dict[str, Any] | None:
    """``result.json`` when it says the run finished (status ``ok``), else ``None``."""
    try:
        result = json.loads((run_dir / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("status") == "ok" else None


def move_aside(run_dir: Path) -> Path:
    """Rename ``run_dir`` to ``<run_dir>.old-<time>`` (a free name); the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{number}")
    run_dir.rename(target)
    return target


def _clear_unfinished(run_dir: Path) -> None:
    """Remove the files of an attempt that left neither a result nor a checkpoint."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for events in run_dir.glob(EVENTS_PATTERN):
        events.unlink()


def _prepare_folder(run_dir: Path, force: bool) -> None:
    """Make ``run_dir`` ready for a new run, under its lock (see the module docstring).

    :raises RunFolderError: for a folder holding a finished or interrupted run, without ``force``.
    """
    held = [
        what
        for what, present in (
            ("a finished run (result.json)", finished_result(run_dir) is not None),
            ("a trained model (model.zip)", (run_dir / MODEL_FILE).exists()),
            ("the checkpoint of an interrupted run", (run_dir / CHECKPOINT_FILE).exists()),
        )
        if present
    ]
    if held and force:
        move_aside(run_dir)
    elif held:
        kind = "an interrupted run" if "finished" not in held[0] else "a finished run"
        raise RunFolderError(
            f"{run_dir} holds {kind} ({'; '.join(held)}); train into another --log-root or "
            f"--seed, or pass --force (force=True) to move it aside to {run_dir.name}.old-<time> "
            "and train again; `jacrl train --resume DIR` continues a run interrupted with a "
            "checkpoint"
        )
    elif run_dir.is_dir():
        _clear_unfinished(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def train(
    agent: str,
    env_id: str,
    steps: int | None = None,
    seed: int = 0,
    hp: Mapping[str, Any] | None = None,
    preset: str | Path | None = None,
    log_root: str | Path = "runs",
    eval_every: int | None = None,
    eval_episodes: int | None = None,
    progress_bar: bool = False,
    run_name: str | None = None,
    checkpoint_every: int | None = None,
    force: bool = False,
) -> RunResult:
    """Train ``agent`` on ``env_id`` for ``steps`` env steps and store everything in its run folder.

    :param agent: a name in :data:`jacrl.agents.registry.AGENTS`.
    :param steps: env-step budget; ``None`` takes the preset's ``n_timesteps``.
    :param seed: a non-negative whole number.
    :param hp: overrides on top of the preset (``agents/<agent>.yml``, or ``preset``).
    :param eval_every: evaluate deterministically every this many env steps (and at the end) on a
        separate env, evaluation ``k`` seeded with :func:`evaluation_seed`; ``None`` skips
        evaluation.
    :param eval_episodes: episodes per evaluation, a positive number; by default 10, or for an
        env with a held-out split (``ClassificationBandit``) the whole split once
        (:func:`held_out_episodes`), so the score is the held-out accuracy.
    :param run_name: the run folder's name before ``_<seed>`` (default: ``agent``); compare's
        variants (``jacobian-d0``…) use it to keep their runs apart.
    :param checkpoint_every: write ``<run_dir>/checkpoint.zip`` every this many env steps (jacrl
        agents only; see ``BaseAgent.learn``); it is removed once ``model.zip`` is written.
        :func:`resume` continues an interrupted run from it.
    :param force: move a finished or interrupted run in the folder aside (to
        ``<run_dir>.old-<time>``) instead of refusing.
    :raises RunFolderError: when the folder holds another run (without ``force``) or another
        process is writing it.
    """
    config = run_config(
        agent, env_id, steps, seed, hp, preset, eval_every, eval_episodes, run_name,
        checkpoint_every,
    )  # fmt: skip
    run_dir = config.run_dir(log_root)
    with RunLock(run_dir):
        _prepare_folder(run_dir, force)
        try:
            return _run(config, run_dir, resuming=False, progress_bar=progress_bar)
        except BaseException:
            with contextlib.suppress(OSError):  # a run that failed before writing a file
                run_dir.rmdir()  # leaves no folder
            raise


#: the keys ``jacrl train --resume`` needs in ``config.yaml``, with their types
_RESUME_KEYS: dict[str, type | tuple[type, ...]] = {
    "agent": str,
    "env_id": str,
    "seed": int,
    "n_envs": int,
    "n_timesteps": int,
    "hyperparameters": dict,
    "checkpoint_every": int,
}


def resume(run_dir: str | Path, progress_bar: bool = False) -> RunResult:
    """Continue the interrupted run in ``run_dir`` (``jacrl train --resume``) from its checkpoint,
    with the configuration its ``config.yaml`` recorded; it ends with the weights and evaluations
    an uninterrupted run would have had, and its TensorBoard curve continues in the same folder.

    :raises ConfigError: for a folder that is not a run folder, whose ``config.yaml`` lacks a key
        or describes another folder or another configuration, or that holds no checkpoint.
    """
    run_dir = Path(run_dir).resolve()
    found = read_config(run_dir)
    missing = [key for key in _RESUME_KEYS if key not in found]
    wrong = [
        f"{key}={found[key]!r} (expected {kind.__name__ if isinstance(kind, type) else kind})"
        for key, kind in _RESUME_KEYS.items()
        if key in found and (not isinstance(found[key], kind) or isinstance(found[key], bool))
    ]
    if missing or wrong:
        raise ConfigError(
            f"cannot resume {run_dir}: its {CONFIG_FILE} "
            + (f"lacks {missing}" if missing else "")
            + ("; " if missing and wrong else "")
            + (f"has {', '.join(wrong)}" if wrong else "")
            + "; it is not the config.yaml of a run trained with --checkpoint-every"
        )
    run_name = found.get("run_name", run_dir.name.removesuffix(f"_{found['seed']}"))
    config = run_config(
        found["agent"],
        found["env_id"],
        steps=found["n_timesteps"],
        seed=found["seed"],
        hp={**found["hyperparameters"], **{k: found[k] for k in RUN_KEYS if k in found}},
        from_preset=False,  # every hyperparameter is in config.yaml; the preset may have changed
        eval_every=found.get("eval_every"),
        eval_episodes=found.get("eval_episodes"),
        run_name=str(run_name),
        checkpoint_every=found["checkpoint_every"],
    )
    expected_dir = config.run_dir(run_dir.parent.parent).resolve()
    if expected_dir != run_dir:
        raise ConfigError(
            f"cannot resume {run_dir}: its {CONFIG_FILE} describes the run folder {expected_dir} "
            "(agent, env, seed); pass that folder, the one the run was trained in"
        )
    if "fingerprint" in found and found["fingerprint"] != config.fingerprint:
        differences = "; ".join(config_differences(found, config))
        raise RunFolderError(
            f"cannot resume {run_dir}: its {CONFIG_FILE} does not match the run it describes "
            f"({differences}); resume it with the jacrl that started it, or train it again with "
            "--force"
        )
    with RunLock(run_dir):
        if not (run_dir / CHECKPOINT_FILE).is_file():
            raise ConfigError(
                f"cannot resume {run_dir}: it holds no {CHECKPOINT_FILE} (trained without "
                "--checkpoint-every, or finished: see its result.json)"
            )
        return _run(config, run_dir, resuming=True, progress_bar=progress_bar)


def _run(config: RunConfig, run_dir: Path, *, resuming: bool, progress_bar: bool) -> RunResult:
    """Build, train, evaluate and save one run in ``run_dir`` (its lock held, folder prepared)."""
    entry = get_agent(config.agent)
    model, norm = entry.make(
        config.env_id,
        config.hyperparameters,
        n_envs=config.n_envs,
        normalize=config.normalize,
        seed=config.seed,
    )
    if not resuming:  # the run is committed to start: from here its files describe it
        text = yaml.safe_dump(config.to_file(), sort_keys=False)
        write_atomically(run_dir / CONFIG_FILE, lambda file: file.write(text.encode()))
    model.set_logger(configure(str(run_dir), ["tensorboard"]))

    callback: ResumableEvalCallback | None = None
    if config.eval_every is not None:
        assert config.eval_episodes is not None
        eval_env: VecEnv = make_vec_env(
            config.env_id,
            n_envs=1,
            seed=config.seed + EVAL_SEED_OFFSET,
            env_kwargs=eval_env_kwargs(config.env_id),
        )
        if norm is not None:
            eval_env = VecNormalize(
                eval_env, training=False, norm_obs=norm.norm_obs, norm_reward=False
            )
        callback = ResumableEvalCallback(
            eval_env,
            seed=config.seed,
            eval_freq=max(config.eval_every // config.n_envs, 1),
            n_eval_episodes=config.eval_episodes,
            deterministic=True,
            log_path=str(run_dir),
            verbose=0,
            # the exact action density at every evaluation, where there is one to draw
            callback_after_eval=density_callback(model, config.env_id, config.seed),
        )

    checkpoint = run_dir / CHECKPOINT_FILE
    checkpointing = (
        {}
        if config.checkpoint_every is None
        else {"checkpoint_every": config.checkpoint_every, "checkpoint_path": checkpoint}
    )
    start = time.perf_counter()
    model.learn(
        total_timesteps=config.n_timesteps,
        callback=[] if callback is None else [callback],
        progress_bar=progress_bar,
        **checkpointing,
    )
    wall = time.perf_counter() - start
    model.save(run_dir / MODEL_FILE)
    checkpoint.unlink(missing_ok=True)  # model.zip now holds the finished run
    if norm is not None:
        save_statistics(norm, run_dir / VECNORMALIZE_FILE)

    final_mean = final_std = None
    if callback is not None:
        final_mean, final_std = callback.evaluate_final(run_dir / EVALUATIONS_FILE)
        if not math.isfinite(final_mean):
            raise NonFiniteError(
                f"the final evaluation of {run_dir} has a non-finite mean return ({final_mean}): "
                "the env returned NaN or inf rewards; the model is saved, result.json is not"
            )
    result = RunResult(
        agent=config.agent,
        env_id=config.env_id,
        seed=config.seed,
        steps=int(model.num_timesteps),
        run_dir=str(run_dir),
        final_eval_mean=final_mean,
        final_eval_std=final_std,
        wall_time_s=wall,
        steps_per_s=model.num_timesteps / wall if wall > 0 else None,
        reward_threshold=gym.spec(config.env_id).reward_threshold,
    )
    text = json.dumps(asdict(result), indent=2, allow_nan=False)
    write_atomically(run_dir / RESULT_FILE, lambda file: file.write(text.encode()))
    return result
