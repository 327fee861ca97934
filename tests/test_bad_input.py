"""Bad input is refused clearly: one table of inputs, each with the error type and the words the
message must contain (the problem and what is accepted), so the catalogue's size is visible in
the test ids. The CLI and the ``nonfinite`` options have their own small tables below.
"""

from __future__ import annotations

import json
import re
import socket
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from jacrl.agents import JacobianAgent
from jacrl.agents.backprop import BackpropAgent
from jacrl.agents.sb3 import make_sb3_agent
from jacrl.cli import main
from jacrl.common.errors import (
    CheckpointError,
    ConfigError,
    JacrlError,
    NonFiniteError,
    PrecisionLossError,
    RunFolderError,
    UnsupportedSpaceError,
)
from jacrl.envs.registration import load_spec, register_envs
from jacrl.nn import InvertibleMLP, SingularWeightError
from jacrl.presets import load_preset
from jacrl.train import train

TINY: dict[str, Any] = dict(
    n_steps=8, batch_size=8, n_epochs=1, lift_hidden=(8,), value_hidden=(8,)
)
BOX4 = spaces.Box(-1.0, 1.0, (4,))
POISON_STEP = 3  # the env step whose observation or reward is made non-finite


class Poisoned(gym.Wrapper):
    """CartPole whose ``POISON_STEP``-th step returns ``value`` in the observation's first entry
    (``where="observation"``) or as the reward (``where="reward"``)."""

    def __init__(self, where: str, value: float) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.where, self.value, self.steps = where, value, 0

    def step(self, action: Any) -> tuple[Any, ...]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps == POISON_STEP:
            if self.where == "observation":
                obs = obs.copy()
                obs[0] = self.value
            else:
                reward = self.value
        return obs, reward, terminated, truncated, info


def predict_only(observation_space: spaces.Space, action_space: spaces.Space = BOX4) -> Any:
    return JacobianAgent(None, observation_space=observation_space, action_space=action_space)


def cartpole(**kwargs: Any) -> JacobianAgent:
    return JacobianAgent("CartPole-v1", seed=0, **{**TINY, **kwargs})


def baseline(algo: str, **hp: Any) -> Any:
    """An SB3 baseline on one CartPole (Discrete agents) or Pendulum env."""
    env_id = "CartPole-v1" if algo in ("ppo", "a2c", "dqn") else "Pendulum-v1"
    return make_sb3_agent(algo, DummyVecEnv([lambda: gym.make(env_id)]), hp)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def with_layer(key: str, edit: Callable[[torch.Tensor], torch.Tensor], **kwargs: Any) -> Any:
    """A CartPole agent whose policy weight ``key`` was replaced through the state dict."""
    agent = cartpole(**kwargs)
    state = agent.policy.state_dict()
    state[key] = edit(state[key].clone())
    agent.policy.load_state_dict(state)
    return agent


def near_singular(v: torch.Tensor) -> torch.Tensor:
    v[-1] *= 1e-9  # one row almost zero: cond(V) ~ 1e9
    return v


def exploding(v: torch.Tensor) -> torch.Tensor:
    v[0] *= 1e8  # one row huge: cond(V) ~ 1e8
    return v


def nan_entry(v: torch.Tensor) -> torch.Tensor:
    v[0, 0] = float("nan")
    return v


def cartpole_acting_in(action_space: spaces.Space) -> gym.Env:
    """CartPole's observations with another action space: a saved agent must refuse it."""
    env = gym.make("CartPole-v1")
    env.action_space = action_space
    return env


def saved_file(tmp_path: Path) -> Path:
    return cartpole().save(tmp_path / "agent.zip")


def truncated_file(tmp_path: Path) -> Path:
    path = saved_file(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def newer_version_file(tmp_path: Path) -> Path:
    source = saved_file(tmp_path)
    target = tmp_path / "newer.zip"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "meta.json":
                data = json.dumps({**json.loads(data), "format_version": 999}).encode()
            dst.writestr(name, data)
    return target


# --- run folders, saved files and paths (issue #12: run safety) ------------------------------


def tiny_train(log_root: Path, **kwargs: Any) -> Path:
    """A finished 8-step jacobian run on CartPole; its run folder."""
    options: dict[str, Any] = {"steps": 8, "hp": TINY, "log_root": log_root, **kwargs}
    return Path(train("jacobian", "CartPole-v1", **options).run_dir)


def retrain_finished(p: Path) -> None:
    tiny_train(p)
    tiny_train(p)


def train_while_held(p: Path) -> None:
    """Train into a folder whose lock another live process (pid 1) holds."""
    from jacrl.common.run_lock import lock_path

    run_dir = p / "CartPole-v1" / "jacobian_0"
    lock_path(run_dir).parent.mkdir(parents=True)
    holder = {"pid": 1, "host": socket.gethostname(), "started": "then",
              "command": "jacrl train", "token": "other"}  # fmt: skip
    lock_path(run_dir).write_text(json.dumps(holder))
    tiny_train(p)


def train_on_env_id(p: Path, env_id: str) -> None:
    gym.register(env_id, entry_point="gymnasium.envs.classic_control:CartPoleEnv")
    try:
        train("jacobian", env_id, steps=8, hp=TINY, log_root=p / "root")
    finally:
        del gym.registry[env_id]


def with_meta(p: Path, key: str, value: Any) -> Path:
    """A saved CartPole agent whose meta.json also sets hyperparameter ``key``."""
    source = saved_file(p)
    target = p / "crafted.zip"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "meta.json":
                meta = json.loads(data)
                meta["hyperparameters"][key] = value
                data = json.dumps(meta).encode()
            dst.writestr(name, data)
    return target


def resume_with_config(p: Path, text: str) -> None:
    from jacrl.train import resume

    run_dir = tiny_train(p)
    (run_dir / "config.yaml").write_text(text)
    resume(run_dir)


def resume_a_copy(p: Path) -> None:
    from jacrl.train import resume

    run_dir = tiny_train(p, checkpoint_every=8)
    copy = run_dir.with_name("jacobian_7")
    copy.mkdir()
    (copy / "config.yaml").write_bytes((run_dir / "config.yaml").read_bytes())
    resume(copy)


def ppo_model(p: Path) -> Path:
    hp = {"n_envs": 1, "n_steps": 8, "batch_size": 8, "n_epochs": 1}
    return Path(train("ppo", "CartPole-v1", steps=8, hp=hp, log_root=p).run_dir) / "model.zip"


def eval_beside_pickle(p: Path) -> None:
    from jacrl.evaluate import evaluate_saved

    model = ppo_model(p)
    (model.parent / "vecnormalize.pkl").write_bytes(b"\x80\x04N.")
    evaluate_saved(model, "CartPole-v1", episodes=1)


def eval_with_pickled_entry(p: Path) -> None:
    from jacrl.evaluate import evaluate_saved

    model = ppo_model(p)
    with zipfile.ZipFile(model) as src:
        members = {name: src.read(name) for name in src.namelist()}
    data = json.loads(members["data"])
    data["surprise"] = {":type:": "<class 'object'>", ":serialized:": "gARLAS4="}  # pickle of 1
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(model, "w") as dst:
        for name, content in members.items():
            dst.writestr(name, content)
    evaluate_saved(model, "CartPole-v1", episodes=1)


def eval_as_other_agent(p: Path) -> None:
    from jacrl.evaluate import evaluate_saved

    evaluate_saved(tiny_train(p) / "model.zip", "CartPole-v1", agent="ppo")


def compare_over_other_run(p: Path) -> None:
    from jacrl.compare.pipeline import compare

    tiny_train(p, hp={**TINY, "depth": 0}, eval_every=8, eval_episodes=1)
    compare(["CartPole-v1"], ["jacobian"], seeds=1, steps=8, eval_every=8, eval_episodes=1,
            log_root=str(p), progress=False)  # fmt: skip


def compare_kwargs(p: Path, **kwargs: Any) -> None:
    from jacrl.compare.pipeline import compare

    compare(["CartPole-v1"], ["jacobian"], seeds=1, steps=8, log_root=str(p), progress=False,
            **kwargs)  # fmt: skip


def far_out_forward() -> object:
    """F(x) at the x a random y gives under asinh, depth 3 (|x| ~ 1e117): issue #12.1's example."""
    torch.manual_seed(0)
    net = InvertibleMLP(16, depth=3, dtype=torch.float64)
    return net(net.inverse(torch.randn(4, 16, dtype=torch.float64)))


def ill_conditioned_inverse() -> object:
    """x = V z that cancels: V = [[1, 1], [1, 1 + 1e-12]], z = (1e12, -1e12), x ≈ (0, -1)."""
    net = InvertibleMLP(2, depth=1, dtype=torch.float64)
    with torch.no_grad():
        net.layers()[0].V.copy_(torch.tensor([[1.0, 1.0], [1.0, 1.0 + 1e-12]], dtype=torch.float64))
    return net.inverse(torch.asinh(torch.tensor([[1e12, -1e12]], dtype=torch.float64)))


def analyze(*argv: str) -> None:
    from jacrl.cli import build_parser

    args = build_parser().parse_args(["analyze", "iteration-jacobian", *argv])
    args.func(args)


ROWS = [
    # unknown env ids
    (lambda p: JacobianAgent("NoSuch-v0"), JacrlError, r"unknown env id 'NoSuch-v0'.*jacrl envs"),
    (lambda p: train("jacobian", "NoSuch-v0", steps=8, log_root=p), ConfigError,
     r"unknown env id 'NoSuch-v0'.*CartPole-v1"),
    (lambda p: train("nosuch", "CartPole-v1", steps=8, log_root=p), ConfigError,
     r"unknown agent 'nosuch'; accepted: jacobian"),
    # spaces the Jacobian agent cannot use
    (lambda p: predict_only(spaces.Dict({"a": BOX4})), UnsupportedSpaceError,
     r"observation space Dict.*supported: observations a 1-D Box"),
    (lambda p: predict_only(spaces.Tuple((BOX4, BOX4))), UnsupportedSpaceError,
     r"observation space Tuple.*supported: observations a 1-D Box"),
    (lambda p: predict_only(spaces.MultiDiscrete([2, 3])), UnsupportedSpaceError,
     r"observation space MultiDiscrete.*supported: observations a 1-D Box"),
    (lambda p: predict_only(spaces.MultiBinary(4)), UnsupportedSpaceError,
     r"observation space MultiBinary.*supported: observations a 1-D Box"),
    (lambda p: predict_only(spaces.Text(8)), UnsupportedSpaceError,
     r"observation space Text.*supported: observations a 1-D Box"),
    (lambda p: predict_only(spaces.Box(0, 255, (8, 8, 3), np.uint8)), UnsupportedSpaceError,
     r"observation space Box\(0, 255, \(8, 8, 3\), uint8\).*FlattenObservation"),
    (lambda p: predict_only(BOX4, spaces.MultiDiscrete([2, 2])), UnsupportedSpaceError,
     r"action space MultiDiscrete.*Discrete\(k\) or a 1-D Box"),
    (lambda p: predict_only(BOX4, spaces.MultiBinary(2)), UnsupportedSpaceError,
     r"action space MultiBinary.*Discrete\(k\) or a 1-D Box"),
    (lambda p: predict_only(BOX4, spaces.Tuple((spaces.Discrete(2),))), UnsupportedSpaceError,
     r"action space Tuple.*Discrete\(k\) or a 1-D Box"),
    # NaN/inf from the env (the default nonfinite="raise")
    (lambda p: JacobianAgent(Poisoned("observation", np.nan), **TINY).learn(16), NonFiniteError,
     rf"non-finite observation at env step {POISON_STEP}.*nonfinite='skip' or 'clip'"),
    (lambda p: JacobianAgent(Poisoned("observation", np.inf), **TINY).learn(16), NonFiniteError,
     rf"non-finite observation at env step {POISON_STEP}.*nonfinite='skip' or 'clip'"),
    (lambda p: JacobianAgent(Poisoned("reward", np.nan), **TINY).learn(16), NonFiniteError,
     rf"non-finite reward at env step {POISON_STEP}.*nonfinite='skip' or 'clip'"),
    (lambda p: JacobianAgent(Poisoned("reward", -np.inf), **TINY).learn(16), NonFiniteError,
     rf"non-finite reward at env step {POISON_STEP}.*nonfinite='skip' or 'clip'"),
    (lambda p: cartpole(nonfinite="ignore"), JacrlError,
     r"nonfinite='ignore': expected one of \('raise', 'skip', 'clip'\)"),
    # what predict is given
    (lambda p: cartpole().predict(np.zeros(3)), JacrlError,
     r"observation shape \(3,\) does not fit.*expected \(4,\) or \(batch, \*\(4,\)\)"),
    (lambda p: cartpole().predict(np.zeros((2, 5))), JacrlError,
     r"observation shape \(2, 5\) does not fit.*expected \(4,\)"),
    (lambda p: cartpole().predict(np.array(["a", "b", "c", "d"])), JacrlError,
     r"observation dtype <U1 is not numeric"),
    (lambda p: cartpole().predict(np.zeros(4, dtype=complex)), JacrlError,
     r"observation dtype complex128 is not numeric"),
    (lambda p: cartpole().predict(np.array([0.0, np.nan, 0.0, 0.0])), NonFiniteError,
     r"predict: the observation holds NaN or inf"),
    # malformed presets
    (lambda p: load_preset("jacobian", "CartPole-v1", write(p, "bad.yml", "a: [1, 2")),
     ConfigError, r"bad.yml is not valid YAML"),
    (lambda p: load_preset("jacobian", "CartPole-v1", write(p, "list.yml", "- 1\n- 2\n")),
     ConfigError, r"must map env ids to hyperparameter mappings, got a list"),
    (lambda p: load_preset("jacobian", "CartPole-v1", write(p, "e.yml", "CartPole-v1: 3\n")),
     ConfigError, r"entry for 'CartPole-v1' must be a mapping of hyperparameter names"),
    (lambda p: load_preset("jacobian", "CartPole-v1", p / "missing.yml"), ConfigError,
     r"missing.yml does not exist"),
    (lambda p: train("jacobian", "CartPole-v1", steps=8, log_root=p,
                     preset=write(p, "bad.yml", "{")), ConfigError, r"not valid YAML"),
    # malformed env specs
    (lambda p: load_spec(write(p, "s.yaml", "id: [x")), ConfigError, r"cannot read env spec"),
    (lambda p: load_spec(write(p, "s.yaml", "- id\n")), ConfigError,
     r"an env spec must be a YAML mapping, got list"),
    (lambda p: load_spec(write(p, "s.yaml", "id: jacrl/X-v0\n")), ConfigError,
     r"field 'entry_point' is required"),
    (lambda p: load_spec(write(p, "s.yaml", "id: jacrl/X-v0\nentry_point: nocolon\n")),
     ConfigError, r"field 'entry_point' must be 'module:Class'"),
    (lambda p: load_spec(write(p, "s.yaml", "id: jacrl/X-v0\nentry_point: m:C\ncolor: 1\n")),
     ConfigError, r"field 'color' is not a spec field; accepted: id, entry_point"),
    (lambda p: load_spec(write(p, "s.yaml", "id: X\nentry_point: m:C\nmax_episode_steps: -1\n")),
     ConfigError, r"field 'max_episode_steps' must be a positive integer or null, got -1"),
    (lambda p: load_spec(write(p, "s.yaml", "id: 5\nentry_point: m:C\n")), ConfigError,
     r"field 'id' must be a string like 'jacrl/Name-v0'"),
    # budgets
    (lambda p: cartpole().learn(0), JacrlError, r"total_timesteps=0: the budget must be positive"),
    (lambda p: cartpole().learn(-5), JacrlError, r"total_timesteps=-5: the budget must be posit"),
    (lambda p: train("jacobian", "CartPole-v1", steps=0, log_root=p), ConfigError,
     r"budget must be a positive whole number of env steps, got 0"),
    (lambda p: train("jacobian", "CartPole-v1", steps=-3, log_root=p), ConfigError,
     r"budget must be a positive whole number of env steps, got -3"),
    (lambda p: train("jacobian", "CartPole-v1", hp={"n_timesteps": 2.5}, log_root=p),
     ConfigError, r"positive whole number of env steps, got 2.5"),
    (lambda p: cartpole().learn(16, checkpoint_every=0, checkpoint_path=p / "c"), JacrlError,
     r"checkpoint_every a positive number of env steps"),
    # non-invertible or exploding weights
    (lambda p: with_layer("net.linears.1.V", near_singular).predict(np.zeros(4)),
     SingularWeightError, r"layer 1 \(InverseLinear\) has condition number .* > max_cond=1e\+06"),
    (lambda p: with_layer("net.linears.1.V", near_singular).learn(16), SingularWeightError,
     r"layer 1 \(InverseLinear\) has condition number .* > max_cond=1e\+06"),
    (lambda p: with_layer("net.linears.0.V", exploding).learn(16), SingularWeightError,
     r"layer 0 \(InverseLinear\) has condition number .* > max_cond=1e\+06"),
    (lambda p: with_layer("net.linears.2.V", nan_entry).predict(np.zeros(4)),
     SingularWeightError, r"condition number nan > max_cond.*NaN means non-finite weights"),
    (lambda p: with_layer("net.linears.0.log_diag", lambda s: s + torch.arange(4) * 10,
                          parameterization="lu").learn(16),
     SingularWeightError, r"layer 0 \(LULinear\) has condition number .* > max_cond"),
    (lambda p: cartpole(max_cond=1.0), ConfigError, r"max_cond=1.0: expected a finite number > 1"),
    (lambda p: cartpole(ill_conditioned="clip"), ConfigError,
     r"ill_conditioned='clip': expected one of \('repair', 'raise'\)"),
    # saved agents that cannot be loaded
    (lambda p: JacobianAgent.load(truncated_file(p)), CheckpointError,
     r"not a readable zip \(truncated or corrupt\)"),
    (lambda p: JacobianAgent.load(write(p, "junk.zip", "not a zip")), CheckpointError,
     r"not a readable zip \(truncated or corrupt\)"),
    (lambda p: JacobianAgent.load(newer_version_file(p)), CheckpointError,
     r"format version 999, newer than the 1 this jacrl reads; upgrade jacrl"),
    (lambda p: JacobianAgent.load(saved_file(p), env="Pendulum-v1"), CheckpointError,
     r"observation space .* does not match the saved agent's"),
    (lambda p: JacobianAgent.load(saved_file(p), env="Acrobot-v1"), CheckpointError,
     r"observation space .* does not match the saved agent's"),
    (lambda p: JacobianAgent.load(saved_file(p), env=cartpole_acting_in(spaces.Discrete(3))),
     CheckpointError, r"action space Discrete\(3\) does not match the saved agent's Discrete\(2\)"),
    # evaluation counts, seeds (issue #12.3)
    (lambda p: tiny_train(p, eval_every=8, eval_episodes=0), ConfigError,
     r"eval_episodes=0: expected a positive whole number"),
    (lambda p: tiny_train(p, eval_every=8, eval_episodes=-1), ConfigError,
     r"eval_episodes=-1: expected a positive whole number"),
    (lambda p: tiny_train(p, seed=-1), ConfigError, r"seed=-1: expected a whole number >= 0"),
    (lambda p: compare_kwargs(p, eval_episodes=0), ConfigError,
     r"eval_episodes=0: --eval-episodes must be a positive number"),
    # run folders: finished, held, another configuration (issue #12.2, .9, .10)
    (retrain_finished, RunFolderError, r"holds a finished run .*--force \(force=True\)"),
    (train_while_held, RunFolderError, r"is being written by pid 1 on .* \(since then"),
    (compare_over_other_run, RunFolderError,
     r"(?s)hold runs it would not train.*hyperparameters.depth.*--force"),
    (lambda p: resume_with_config(p, "agent: jacobian\n"), ConfigError,
     r"lacks \['env_id', 'seed'"),
    (lambda p: resume_with_config(p, "[1, 2]\n"), ConfigError,
     r"is not a run configuration \(a YAML mapping\)"),
    (resume_a_copy, ConfigError, r"its config.yaml describes the run folder .*jacobian_0"),
    # paths out of their root, files that set runtime settings (issue #12.13)
    (lambda p: train_on_env_id(p, ".."), ConfigError, r"folder name '..'.*outside its root"),
    (lambda p: JacobianAgent.load(with_meta(p, "tensorboard_log", str(p))), CheckpointError,
     r"sets \['tensorboard_log'\], a runtime setting, not a hyperparameter"),
    (lambda p: JacobianAgent.load(with_meta(p, "device", "cuda")), CheckpointError,
     r"sets \['device'\], a runtime setting"),
    (lambda p: JacobianAgent.load(with_meta(p, "no_such_option", 1)), CheckpointError,
     r"sets \['no_such_option'\], which JacobianAgent does not take"),
    # files that would run code, models of another agent (issue #12.12, #13.10)
    (eval_beside_pickle, CheckpointError, r"vecnormalize.pkl is a pickle.*--trust-pickle"),
    (eval_with_pickled_entry, CheckpointError, r"pickled entries \['surprise'\].*--trust-pick"),
    (eval_as_other_agent, ConfigError, r"--agent ppo, but .*config.yaml says .* by jacobian"),
    # CLI values that mean nothing, env spec folders (issue #13.10)
    (lambda p: analyze("--lr", "0", "--out", str(p)), ConfigError,
     r"--lr 0: the step size α must be a positive finite number"),
    (lambda p: analyze("--hidden", "0", "--out", str(p)), ConfigError,
     r"--hidden 0: expected a positive whole number"),
    (lambda p: register_envs(on_error="ignore"), ConfigError,  # type: ignore[arg-type]
     r"on_error='ignore': expected one of \('raise', 'warn'\)"),
    # hyperparameters: type and range at construction, whatever passes can be saved (#12.8)
    (lambda p: cartpole(gamma=2), ConfigError, r"gamma=2: expected a number in \[0, 1\]"),
    (lambda p: cartpole(gamma="abc"), ConfigError,
     r"gamma='abc' \(a str\): expected a number in \[0, 1\]"),
    (lambda p: cartpole(gae_lambda=-0.1), ConfigError, r"gae_lambda=-0.1: expected a number in"),
    (lambda p: cartpole(batch_size=1.5), ConfigError,
     r"batch_size=1.5: expected a positive whole number"),
    (lambda p: cartpole(n_epochs=True), ConfigError,
     r"n_epochs=True: expected a positive whole number"),
    (lambda p: cartpole(clip_range=-1), ConfigError,
     r"clip_range=-1: expected a finite number > 0"),
    (lambda p: cartpole(clip_range="lin_-0.2"), ConfigError,
     r"clip_range='lin_-0.2' \(a str\): expected .*'lin_<x>' with x > 0"),
    (lambda p: cartpole(max_grad_norm=float("inf")), ConfigError,
     r"max_grad_norm=inf: .*for no clipping, a large number such as 1e10 \(JSON.*has no inf"),
    (lambda p: cartpole(learning_rate=float("nan")), ConfigError,
     r"learning_rate=nan: expected a finite number > 0"),
    (lambda p: cartpole(target_kl=0), ConfigError, r"target_kl=0: expected a finite number > 0"),
    (lambda p: cartpole(vf_coef=-1), ConfigError, r"vf_coef=-1: expected a finite number >= 0"),
    (lambda p: cartpole(sigma_x=0), ConfigError, r"sigma_x=0: expected a finite number > 0"),
    (lambda p: cartpole(learn_sigma="yes"), ConfigError,
     r"learn_sigma='yes' \(a str\): expected True or False"),
    (lambda p: cartpole(lift_hidden=[8, 0]), ConfigError,
     r"lift_hidden=\[8, 0\]: lift_hidden\[1\]=0: expected a positive whole number"),
    (lambda p: cartpole(value_hidden="64"), ConfigError,
     r"value_hidden='64' \(a str\): expected a list of positive whole numbers"),
    (lambda p: cartpole(depth=-1), ConfigError, r"depth=-1: expected a whole number >= 0"),
    (lambda p: cartpole(width=0), ConfigError, r"width=0: expected a positive whole number"),
    (lambda p: cartpole(n_envs=0), ConfigError, r"n_envs=0: expected a positive whole number"),
    (lambda p: JacobianAgent("CartPole-v1", seed=-1), ConfigError,
     r"seed=-1: expected a whole number >= 0"),
    (lambda p: cartpole().learn(float("nan")), ConfigError,
     r"total_timesteps=nan: the budget must be positive, a whole number of env steps"),
    (lambda p: cartpole().learn(2.5), ConfigError, r"total_timesteps=2.5: the budget must be"),
    (lambda p: train("jacobian", "CartPole-v1", steps=8, log_root=p, hp={"unknown_key": 1}),
     ConfigError, r"JacobianAgent has no hyperparameter 'unknown_key'; accepted: rule, advantage"),
    (lambda p: train("jacobian", "CartPole-v1", steps=8, log_root=p, hp={"gamma": "abc"}),
     ConfigError, r"gamma='abc' \(a str\): expected a number in \[0, 1\]"),
    (lambda p: BackpropAgent("jacrl/DigitsBandit-v0", hidden=[0]), ConfigError,
     r"hidden=\[0\]: hidden\[0\]=0: expected a positive whole number"),
    (lambda p: BackpropAgent("jacrl/DigitsBandit-v0", learning_rate=-0.1), ConfigError,
     r"learning_rate=-0.1: expected a finite number > 0"),
    # SB3's habits: policy_kwargs, the env first; options that would do nothing (#13.6)
    (lambda p: JacobianAgent("MlpPolicy", "CartPole-v1"), ConfigError,
     r"JacobianAgent takes the env first: JacobianAgent\(env, \.\.\.\); its policy is always the "
     r"invertible policy, configured with policy_kwargs"),
    (lambda p: BackpropAgent("MlpPolicy", "jacrl/DigitsBandit-v0"), ConfigError,
     r"BackpropAgent takes the env first"),
    (lambda p: cartpole(depth=1, policy_kwargs={"depth": 2}), ConfigError,
     r"depth=1 and policy_kwargs\['depth'\]=2: give each setting one way"),
    (lambda p: cartpole(device="tpu"), ConfigError,
     r"device='tpu': expected 'auto' \(the CPU\), 'cpu', 'cuda', 'cuda:<index>' or a torch.device"),
    (lambda p: cartpole(device=3.5), ConfigError, r"device=3.5: expected 'auto' \(the CPU\)"),
    (lambda p: cartpole(policy_kwargs={"gamma": 0.9}), ConfigError,
     r"policy_kwargs has no setting 'gamma'; accepted: embed, width, depth"),
    (lambda p: cartpole(policy_kwargs=[("depth", 2)]), ConfigError,
     r"policy_kwargs=\[\('depth', 2\)\] \(a list\): expected a dict of policy settings"),
    (lambda p: cartpole(volume_hold="x0"), ConfigError,
     r"volume_hold='x0' choose the volume rule's score; rule='density' .* ignores them"),
    (lambda p: cartpole(volume_objective="absdet", update="reinforce"), ConfigError,
     r"volume_objective='absdet'.*rule='density' scores the whole density and ignores them"),
    (lambda p: cartpole(weighting_temperature=0.5), ConfigError,
     r"weighting_temperature=0.5 is the temperature of advantage_weighting='softmax'"),
    (lambda p: cartpole(update="reinforce", target_kl=0.01), ConfigError,
     r"target_kl=0.01 with update='reinforce'.*the stop could never act"),
    # passes that would return x or a log-det less accurate than their tolerance (#12.1)
    # the SB3 baselines' values, checked as jacrl's own (SB3 trains or fails later on these)
    (lambda p: baseline("a2c", gamma=-1), ConfigError, r"gamma=-1: expected a number in \[0, 1\]"),
    (lambda p: baseline("dqn", exploration_fraction=3), ConfigError,
     r"exploration_fraction=3: expected a number in \[0, 1\]"),
    (lambda p: baseline("td3", tau="abc"), ConfigError,
     r"tau='abc' \(a str\): expected a number in \(0, 1\]"),
    (lambda p: baseline("sac", buffer_size=-1), ConfigError,
     r"buffer_size=-1: expected a positive whole number"),
    (lambda p: baseline("sac", ent_coef="auto_x"), ConfigError,
     r"ent_coef='auto_x'.*'auto_<x>' with x > 0"),
    (lambda p: baseline("sac", target_entropy="high"), ConfigError,
     r"target_entropy='high'.*'auto' \(minus the action size\) or a finite number"),
    (lambda p: baseline("td3", train_freq=[1, "epoch"]), ConfigError,
     r"train_freq=\[1, 'epoch'\].*'step' \| 'episode'"),
    (lambda p: baseline("ppo", learning_rate="abc"), ConfigError,
     r"learning_rate='abc'.*'lin_<x>'"),
    (lambda p: baseline("ppo", n_steps=1), ConfigError,
     r"PPO rejected a hyperparameter: `n_steps \* n_envs` must be greater than 1"),
    (lambda p: far_out_forward(), PrecisionLossError,
     r"forward pass from x loses accuracy at layer \d: .* past the tolerance 1.1e-08"),
    (lambda p: ill_conditioned_inverse(), PrecisionLossError,
     r"inverse pass from y loses accuracy at layer 0: .*activation='smooth_leaky_relu'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "match"), ROWS, ids=[f"bad{i:02d}" for i in range(len(ROWS))]
)
def test_bad_input_is_refused_clearly(
    call: Callable[[Path], object], error: type[Exception], match: str, tmp_path: Path
) -> None:
    with pytest.raises(error, match=match):
        call(tmp_path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "NoSuch-v0"], r"unknown env id 'NoSuch-v0'"),
        (["--env", "CartPole-v1", "--steps", "0"], r"positive whole number of env steps, got 0"),
        (["--env", "CartPole-v1", "--steps", "-8"], r"positive whole number of env steps"),
        (["--env", "CartPole-v1", "--preset", "/nonexistent.yml"], r"does not exist"),
        (["--env", "CartPole-v1", "--hp", "n_steps"], r"--hp expects key=value"),
        (
            ["--env", "CartPole-v1", "--eval-every", "8", "--eval-episodes", "0"],
            r"eval_episodes=0: expected a positive whole number",
        ),
        (["--env", "CartPole-v1", "--seed", "-1"], r"seed=-1: expected a whole number >= 0"),
    ],
    ids=[
        "unknown-env",
        "zero-steps",
        "negative-steps",
        "missing-preset",
        "bad-hp",
        "zero-eval-episodes",
        "negative-seed",
    ],
)
def test_cli_refuses_with_exit_code_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--agent", "jacobian", "--log-root", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("jacrl: error: ")
    assert re.search(message, err)


@pytest.mark.parametrize(
    ("mode", "where", "value", "expected"),
    [
        ("skip", "observation", np.nan, 0.0),
        ("skip", "observation", np.inf, 0.0),
        ("skip", "reward", np.nan, 0.0),
        ("skip", "reward", -np.inf, 0.0),
        ("clip", "observation", np.nan, 0.0),
        ("clip", "observation", np.inf, 10.0),
        ("clip", "observation", -np.inf, -10.0),
        ("clip", "reward", np.nan, 0.0),
        ("clip", "reward", np.inf, 10.0),
        ("clip", "reward", -np.inf, -10.0),
    ],
)
def test_nonfinite_options_do_what_they_say(
    mode: str, where: str, value: float, expected: float
) -> None:
    """skip: the bad entry carries no information (0, left out of the normaliser); clip: NaN -> 0,
    +-inf -> +-10 (VecNormalize's clip, in normalised units for observations)."""
    agent = JacobianAgent(Poisoned(where, value), nonfinite=mode, seed=0, **TINY).learn(8)
    buffer = agent.rollout_buffer  # row t holds the reward of env step t + 1, the obs after t
    seen = (
        buffer.rewards[POISON_STEP - 1, 0] if where == "reward" else buffer.obs[POISON_STEP, 0, 0]
    )
    assert seen == expected
    assert np.isfinite(buffer.obs).all() and np.isfinite(buffer.rewards).all()
    assert np.isfinite(agent.obs_rms.mean).all() and np.isfinite(agent.obs_rms.var).all()
    assert all(torch.isfinite(v).all() for v in agent.get_parameters().values())
