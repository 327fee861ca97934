"""One training run: an agent on an env with one seed, logged to ``runs/<env>/<agent>_<seed>/``.

This is what ``jacrl train`` runs and what ``jacrl compare`` runs for every cell of its grid, so
every agent — the Jacobian learner, the supervised baseline and the SB3 baselines — is trained,
evaluated and stored the same way:

- ``events.out.tfevents.*``: TensorBoard (SB3's keys for every agent, so curves overlay),
- ``model.zip``: the trained agent (``jacrl eval`` reloads it),
- ``config.yaml``: the resolved hyperparameters and run settings,
- with ``eval_every``: ``evaluations.npz`` (SB3 ``EvalCallback`` format: deterministic returns
  on a separate evaluation env, which uses the held-out split when the env has one) and
- ``result.json``: final evaluation, wall time and throughput,
- with ``checkpoint_every`` (jacrl agents), while the run is unfinished: ``checkpoint.zip``, from
  which :func:`resume` (``jacrl train --resume <run_dir>``) continues a killed run to the same
  final weights, in the same TensorBoard curve.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from gymnasium.envs.registration import load_env_creator
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from jacrl.agents.sb3 import SB3_ALGORITHMS, make_sb3_agent
from jacrl.common.errors import ConfigError
from jacrl.envs.registration import check_env_id
from jacrl.presets import RUN_KEYS, load_preset, resolve_schedules

JACRL_AGENTS = ("jacobian", "backprop")
AGENTS = (*JACRL_AGENTS, *SB3_ALGORITHMS)
EVAL_SEED_OFFSET = 10_000  # evaluation envs are seeded apart from the training envs
CHECKPOINT_FILE = "checkpoint.zip"
CONFIG_FILE = "config.yaml"


class ResumableEvalCallback(EvalCallback):
    """SB3's ``EvalCallback``, made to continue a resumed run's evaluation history.

    SB3's callback starts every ``learn`` with an empty history (so it would overwrite
    ``evaluations.npz`` with the resumed part alone) and counts ``eval_freq`` from its own first
    call (so evaluations would shift by the steps done before the checkpoint). On a resumed run
    this keeps the evaluations at or before the checkpoint's step — later ones came from the killed
    process past its checkpoint and are redone — and aligns the call count with the step count.
    The evaluation episodes after the resume are drawn afresh: the evaluation env's RNG is not
    part of the agent's checkpoint, so their returns may differ from an uninterrupted run's.
    """

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
    steps_per_s: float
    reward_threshold: float | None
    status: str = "ok"


def run_dir_for(log_root: str | Path, env_id: str, agent: str, seed: int) -> Path:
    """``<log_root>/<env>/<agent>_<seed>`` with the env id made a folder name (``/`` → ``_``)."""
    return Path(log_root) / env_id.replace("/", "_") / f"{agent}_{seed}"


def _eval_env_kwargs(env_id: str) -> dict[str, Any]:
    """Evaluate on the held-out split when the env offers one (``ClassificationBandit``)."""
    entry_point = gym.spec(env_id).entry_point
    target = entry_point if callable(entry_point) else load_env_creator(str(entry_point))
    params = inspect.signature(target).parameters
    return {"split": "test"} if "split" in params else {}


def _make_agent(
    agent: str, env_id: str, hp: dict[str, Any], n_envs: int, normalize: bool, seed: int
) -> tuple[Any, VecNormalize | None]:
    """Build the agent; returns it and, for SB3 with ``normalize``, the VecNormalize wrapper."""
    if agent in SB3_ALGORITHMS:
        venv: VecEnv = make_vec_env(env_id, n_envs=n_envs, seed=seed)
        norm = VecNormalize(venv) if normalize else None
        return make_sb3_agent(agent, norm or venv, hp, seed=seed), norm
    if agent == "jacobian":
        from jacrl.agents import JacobianAgent

        return JacobianAgent(env_id, n_envs=n_envs, seed=seed, **hp), None
    if agent == "backprop":
        from jacrl.agents.backprop import BackpropAgent

        return BackpropAgent(env_id, n_envs=n_envs, seed=seed, **hp), None
    raise ConfigError(f"unknown agent '{agent}'; accepted: {', '.join(AGENTS)}")


def resolve_config(
    agent: str,
    env_id: str,
    steps: int | None,
    hp: Mapping[str, Any] | None = None,
    preset: str | Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge preset and overrides; split them into run settings and agent hyperparameters.

    :returns: ``(run, agent_hp)`` where ``run`` holds ``n_envs``, ``n_timesteps``, ``normalize``.
    :raises ConfigError: for an unknown agent or a budget that is not a positive integer.
    """
    if agent not in AGENTS:
        raise ConfigError(f"unknown agent '{agent}'; accepted: {', '.join(AGENTS)}")
    merged = {**load_preset(agent, env_id, preset), **(hp or {})}
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
    resume: bool = False,
) -> RunResult:
    """Train ``agent`` on ``env_id`` for ``steps`` env steps and store everything in its run folder.

    :param agent: one of :data:`AGENTS`.
    :param steps: env-step budget; ``None`` takes the preset's ``n_timesteps``.
    :param hp: overrides on top of the preset (``agents/<agent>.yml``, or ``preset``).
    :param eval_every: evaluate deterministically every this many env steps (and at the end) on a
        separate env seeded ``seed + 10000``; ``None`` skips evaluation.
    :param eval_episodes: episodes per evaluation; by default 10, or for an env with a held-out
        split (``ClassificationBandit``) the whole split, so the score is the held-out accuracy.
    :param run_name: the run folder's name before ``_<seed>`` (default: ``agent``); compare's
        variants (``jacobian-d0``…) use it to keep their runs apart.
    :param checkpoint_every: write ``<run_dir>/checkpoint.zip`` every this many env steps (jacrl
        agents only; see ``BaseAgent.learn``); it is removed once ``model.zip`` is written.
    :param resume: continue from that checkpoint; the other arguments must be the run's own
        (:func:`resume` reads them from ``config.yaml``). Without it, a folder holding a
        checkpoint is refused rather than silently resumed or overwritten.
    """
    check_env_id(env_id)
    run, agent_hp = resolve_config(agent, env_id, steps, hp, preset)
    if eval_every is not None and eval_every <= 0:
        raise ConfigError(f"eval_every must be a positive number of env steps, got {eval_every}")
    if checkpoint_every is not None and (agent not in JACRL_AGENTS or checkpoint_every <= 0):
        raise ConfigError(
            f"checkpoint_every={checkpoint_every} (agent '{agent}'): checkpoints need a positive "
            f"number of env steps and a jacrl agent ({', '.join(JACRL_AGENTS)})"
        )
    run_dir = run_dir_for(log_root, env_id, run_name or agent, seed)
    checkpoint = run_dir / CHECKPOINT_FILE
    if resume and (checkpoint_every is None or not checkpoint.is_file()):
        raise ConfigError(
            f"cannot resume {run_dir}: it holds no {CHECKPOINT_FILE} (trained without "
            "--checkpoint-every, or finished: see its result.json)"
        )
    if not resume and checkpoint.exists():
        raise ConfigError(
            f"{run_dir} holds the checkpoint of an interrupted run; continue it with "
            f"`jacrl train --resume {run_dir}`, or delete {checkpoint} to start over"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "agent": agent,
        "env_id": env_id,
        "seed": seed,
        **run,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "checkpoint_every": checkpoint_every,
        "hyperparameters": agent_hp,
    }
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))

    ctor_hp = resolve_schedules(agent_hp) if agent in SB3_ALGORITHMS else agent_hp
    model, norm = _make_agent(agent, env_id, ctor_hp, run["n_envs"], run["normalize"], seed)
    model.set_logger(configure(str(run_dir), ["tensorboard"]))

    callbacks = []
    eval_env: VecEnv | None = None
    if eval_every is not None:
        eval_kwargs = _eval_env_kwargs(env_id)
        eval_env = make_vec_env(
            env_id, n_envs=1, seed=seed + EVAL_SEED_OFFSET, env_kwargs=eval_kwargs
        )
        if eval_episodes is None:
            held_out = eval_env.envs[0].unwrapped  # type: ignore[attr-defined]
            eval_episodes = len(held_out) if eval_kwargs else 10
        if norm is not None:
            eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        callbacks.append(
            ResumableEvalCallback(
                eval_env,
                eval_freq=max(eval_every // run["n_envs"], 1),
                n_eval_episodes=eval_episodes,
                deterministic=True,
                log_path=str(run_dir),
                verbose=0,
            )
        )

    start = time.perf_counter()
    checkpointing = (
        {}
        if checkpoint_every is None
        else {"checkpoint_every": checkpoint_every, "checkpoint_path": checkpoint}
    )
    model.learn(
        total_timesteps=run["n_timesteps"],
        callback=callbacks,
        progress_bar=progress_bar,
        **checkpointing,
    )
    wall = time.perf_counter() - start
    model.save(run_dir / "model.zip")
    checkpoint.unlink(missing_ok=True)  # model.zip now holds the finished run
    if norm is not None:
        norm.save(str(run_dir / "vecnormalize.pkl"))

    final_mean = final_std = None
    if eval_env is not None:
        final_mean, final_std = _final_evaluation(model, eval_env, callbacks[0], run_dir)
    result = RunResult(
        agent=agent,
        env_id=env_id,
        seed=seed,
        steps=int(model.num_timesteps),
        run_dir=str(run_dir),
        final_eval_mean=final_mean,
        final_eval_std=final_std,
        wall_time_s=wall,
        steps_per_s=model.num_timesteps / wall if wall > 0 else float("nan"),
        reward_threshold=gym.spec(env_id).reward_threshold,
    )
    (run_dir / "result.json").write_text(json.dumps(asdict(result), indent=2))
    return result


def resume(run_dir: str | Path, progress_bar: bool = False) -> RunResult:
    """Continue the interrupted run in ``run_dir`` (``jacrl train --resume``) from its checkpoint,
    with the settings its ``config.yaml`` recorded; it ends with the weights an uninterrupted run
    would have had, and its TensorBoard curve continues in the same folder.

    :raises ConfigError: for a folder that is not a run folder or holds no checkpoint.
    """
    run_dir = Path(run_dir)
    try:
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"cannot resume {run_dir}: no readable {CONFIG_FILE} ({exc}); pass the run folder "
            "<log-root>/<env>/<agent>_<seed> that `jacrl train --checkpoint-every` wrote"
        ) from exc
    run = {key: config[key] for key in RUN_KEYS if key in config}
    return train(
        config["agent"],
        config["env_id"],
        steps=config["n_timesteps"],
        seed=config["seed"],
        hp={**config["hyperparameters"], **run},
        log_root=run_dir.parent.parent,
        eval_every=config.get("eval_every"),
        eval_episodes=config.get("eval_episodes"),
        progress_bar=progress_bar,
        run_name=run_dir.name.removesuffix(f"_{config['seed']}"),
        checkpoint_every=config.get("checkpoint_every"),
        resume=True,
    )


def _final_evaluation(
    model: Any, eval_env: VecEnv, callback: EvalCallback, run_dir: Path
) -> tuple[float, float]:
    """Evaluate once more at the end and append it to ``evaluations.npz`` (if not just done)."""
    timesteps = list(callback.evaluations_timesteps)
    results = list(callback.evaluations_results)
    lengths = list(callback.evaluations_length)
    if not timesteps or timesteps[-1] != model.num_timesteps:
        sync_envs_normalization(model.get_env(), eval_env)  # SB3 + VecNormalize: share stats
        rewards, ep_lengths = evaluate_policy(
            model,
            eval_env,
            n_eval_episodes=callback.n_eval_episodes,
            deterministic=True,
            return_episode_rewards=True,
        )
        timesteps.append(model.num_timesteps)
        results.append(np.atleast_1d(rewards).tolist())
        lengths.append(np.atleast_1d(ep_lengths).tolist())
    np.savez(
        run_dir / "evaluations.npz",
        timesteps=np.asarray(timesteps),
        results=np.asarray(results, dtype=float),
        ep_lengths=np.asarray(lengths),
    )
    return float(np.mean(results[-1])), float(np.std(results[-1]))
