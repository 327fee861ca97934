"""`jacrl train` / `jacrl eval` with the SB3 baselines, end to end through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from stable_baselines3 import SAC, TD3

from jacrl.cli import main
from jacrl.common.errors import UnsupportedSpaceError
from jacrl.train import train


def test_ppo_through_the_cli_writes_a_complete_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scalar_tags: Callable[[Path], set[str]]
) -> None:
    code = main(
        [
            "train", "--agent", "ppo", "--env", "CartPole-v1", "--steps", "2048", "--seed", "3",
            "--log-root", str(tmp_path), "--eval-every", "1024", "--eval-episodes", "2",
            "--hp", "n_epochs=2", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    run_dir = tmp_path / "CartPole-v1" / "ppo_3"
    assert {"model.zip", "config.yaml", "evaluations.npz", "result.json"} <= {
        p.name for p in run_dir.iterdir()
    }
    tags = scalar_tags(run_dir)
    assert {"rollout/ep_rew_mean", "time/fps", "eval/mean_reward"} <= tags
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["hyperparameters"]["n_epochs"] == 2  # the override beat the preset's 20
    assert config["n_envs"] == 8  # from the zoo preset
    result = json.loads((run_dir / "result.json").read_text())
    evals = np.load(run_dir / "evaluations.npz")
    assert result["steps"] >= 2048
    assert evals["timesteps"][-1] == result["steps"]
    assert result["final_eval_mean"] == pytest.approx(evals["results"][-1].mean())

    assert (
        main(["eval", str(run_dir / "model.zip"), "--env", "CartPole-v1", "--episodes", "2"]) == 0
    )
    from_file = capsys.readouterr().out.splitlines()[-1]
    assert "mean return" in from_file
    # the run folder, as `jacrl train` prints it, names the same model
    assert main(["eval", str(run_dir), "--env", "CartPole-v1", "--episodes", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == from_file


def test_unknown_env_id_is_a_clear_cli_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--agent", "ppo", "--env", "NoSuchEnv-v9", "--steps", "10",
                 "--log-root", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "unknown env id 'NoSuchEnv-v9'" in capsys.readouterr().err


def test_dqn_refuses_continuous_actions(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSpaceError, match="Discrete"):
        train("dqn", "Pendulum-v1", steps=10, log_root=tmp_path)


def test_a2c_with_normalize_saves_its_statistics(tmp_path: Path) -> None:
    result = train(
        "a2c", "Pendulum-v1", steps=256, log_root=tmp_path, eval_every=128, eval_episodes=1,
        hp={"n_envs": 2},
    )  # fmt: skip
    run_dir = Path(result.run_dir)
    assert (run_dir / "vecnormalize.npz").is_file()  # arrays, not a pickle
    assert not (run_dir / "vecnormalize.pkl").exists()
    assert np.isfinite(result.final_eval_mean)


def test_sac_trains_on_pendulum_and_its_saved_model_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train(
        "sac", "Pendulum-v1", steps=300, seed=1, log_root=tmp_path, eval_every=150,
        eval_episodes=1, hp={"learning_starts": 100, "batch_size": 32},
    )  # fmt: skip
    run_dir = tmp_path / "Pendulum-v1" / "sac_1"
    assert Path(result.run_dir) == run_dir
    assert {"model.zip", "config.yaml", "evaluations.npz", "result.json"} <= {
        p.name for p in run_dir.iterdir()
    }
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["hyperparameters"] == {
        "policy": "MlpPolicy",  # the zoo's Pendulum-v1 entry
        "learning_rate": 1e-3,
        "learning_starts": 100,
        "batch_size": 32,
    }
    evals = np.load(run_dir / "evaluations.npz")
    assert evals["timesteps"].tolist() == [150, 300]
    assert np.isfinite(result.final_eval_mean)
    saved = SAC.load(run_dir / "model.zip")
    assert saved.learning_rate == 1e-3
    assert saved._n_updates == 300 - 100  # one gradient step per env step after learning_starts

    argv = ["eval", str(run_dir / "model.zip"), "--env", "Pendulum-v1", "--episodes", "1"]
    assert main(argv) == 0
    assert "Pendulum-v1: mean return" in capsys.readouterr().out
    assert main(["eval", str(run_dir / "model.zip"), "--env", "CartPole-v1"]) == 2
    assert "sac needs a Box action space" in capsys.readouterr().err


def test_td3_trains_on_pendulum_with_the_zoo_noise(tmp_path: Path) -> None:
    result = train(
        "td3", "Pendulum-v1", steps=300, log_root=tmp_path, eval_every=300, eval_episodes=1,
        hp={"learning_starts": 100, "policy_kwargs": "dict(net_arch=[32, 32])"},
    )  # fmt: skip
    run_dir = Path(result.run_dir)
    assert run_dir == tmp_path / "Pendulum-v1" / "td3_0"
    assert {"model.zip", "evaluations.npz", "result.json"} <= {p.name for p in run_dir.iterdir()}
    hp = yaml.safe_load((run_dir / "config.yaml").read_text())["hyperparameters"]
    assert (hp["noise_type"], hp["noise_std"], hp["gamma"]) == ("normal", 0.1, 0.98)
    assert np.isfinite(result.final_eval_mean)
    assert TD3.load(run_dir / "model.zip").actor.mu[0].out_features == 32
