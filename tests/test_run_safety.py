"""Never a silently wrong number, never a lost run, never code from a file (issue #12).

One test (or a few) per class of failure: a reused run must match the whole resolved
configuration; evaluation counts are positive and every JSON file is standard JSON; a finished
run is never overwritten without ``--force``; two writers never share a run folder; a resumed
run is indistinguishable from an uninterrupted one; no file jacrl reads can run code; and no
name or file steers a path outside its root, or sets a runtime setting.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import pickle
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback

import jacrl
from jacrl.agents import JacobianAgent, JacobianSAC
from jacrl.agents.base import BaseAgent
from jacrl.cli import main
from jacrl.common.errors import CheckpointError, ConfigError, RunFolderError
from jacrl.common.serialization import META_MEMBER, read_agent
from jacrl.compare.grid import RunSpec, is_finished
from jacrl.compare.pipeline import compare
from jacrl.evaluate import evaluate_saved
from jacrl.train import resume, train

HP: dict[str, Any] = dict(
    n_envs=2, n_steps=32, batch_size=32, n_epochs=2, lift_hidden=(8,), value_hidden=(8,)
)
ROLLOUT = HP["n_envs"] * HP["n_steps"]
TOTAL, EVERY = 8 * ROLLOUT, 2 * ROLLOUT
PPO_HP: dict[str, Any] = dict(n_envs=1, n_steps=32, batch_size=32, n_epochs=1)


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses the NaN / Infinity tokens standard JSON does not have."""

    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def tiny_run(log_root: Path, **kwargs: Any) -> Path:
    """A finished jacobian run on CartPole (4 evaluations of 2 episodes), its run folder."""
    options: dict[str, Any] = dict(steps=TOTAL, hp=HP, eval_every=EVERY, eval_episodes=2)
    result = train("jacobian", "CartPole-v1", log_root=log_root, **{**options, **kwargs})
    return Path(result.run_dir)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


class Payload:
    """Unpickling this creates ``marker``: the code a malicious file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


# ---------------------------------------------------------------------------------------------
# #12.2: a reused run must match the whole resolved configuration


def test_a_finished_run_is_reused_only_for_its_own_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = RunSpec("jacobian", "jacobian", "CartPole-v1", 0, TOTAL, EVERY, 2, str(tmp_path), HP)
    train(**spec.train_kwargs())
    assert is_finished(spec)
    others = {
        "hyperparameters": RunSpec(
            "jacobian", "jacobian", "CartPole-v1", 0, TOTAL, EVERY, 2, str(tmp_path),
            {**HP, "depth": 0},
        ),
        "evaluation schedule": RunSpec(
            "jacobian", "jacobian", "CartPole-v1", 0, TOTAL, EVERY // 2, 2, str(tmp_path), HP
        ),
        "evaluation episodes": RunSpec(
            "jacobian", "jacobian", "CartPole-v1", 0, TOTAL, EVERY, 3, str(tmp_path), HP
        ),
        "budget": RunSpec(
            "jacobian", "jacobian", "CartPole-v1", 0, 2 * TOTAL, EVERY, 2, str(tmp_path), HP
        ),
    }  # fmt: skip
    for what, other in others.items():
        assert other.run_dir == spec.run_dir
        assert not is_finished(other), f"a run with another {what} was taken as finished"
    monkeypatch.setattr(jacrl, "__version__", "999.0")
    assert not is_finished(spec), "a run of another jacrl version was taken as finished"


def test_compare_refuses_to_report_a_run_trained_with_other_settings(tmp_path: Path) -> None:
    """A depth-0 run trained earlier into the log root is not reported as ``jacobian``."""
    run_dir = tiny_run(tmp_path, hp={**HP, "depth": 0})
    before = folder_bytes(run_dir)
    with pytest.raises(RunFolderError, match=r"(?s)depth.*--force") as info:
        compare(
            ["CartPole-v1"], ["jacobian"], seeds=1, steps=TOTAL, eval_every=EVERY,
            eval_episodes=2, log_root=str(tmp_path), progress=False, workers=1,
        )  # fmt: skip
    assert str(run_dir) in str(info.value)
    assert folder_bytes(run_dir) == before
    assert not (tmp_path / "compare").exists(), "a report was written from a run it never trained"


# ---------------------------------------------------------------------------------------------
# #12.3: evaluation counts are positive; every JSON file jacrl writes is standard JSON


@pytest.mark.parametrize("episodes", [0, -1])
def test_non_positive_evaluation_counts_are_refused_everywhere(
    episodes: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=rf"eval_episodes={episodes}.*positive"):
        train("jacobian", "CartPole-v1", steps=64, hp=HP, log_root=tmp_path, eval_every=64,
              eval_episodes=episodes)  # fmt: skip
    with pytest.raises(ConfigError, match=rf"eval_episodes={episodes}.*positive"):
        compare(["CartPole-v1"], ["jacobian"], seeds=1, steps=64, eval_episodes=episodes,
                log_root=str(tmp_path), progress=False)  # fmt: skip
    argv = ["train", "--agent", "jacobian", "--env", "CartPole-v1", "--steps", "64", "--eval-every",
            "64", "--eval-episodes", str(episodes), "--log-root", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert "eval_episodes" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "a refused run left files behind"


def test_result_json_is_standard_json_even_for_an_instant_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run timed at 0 s has no steps-per-second: ``null``, not a ``NaN`` token."""
    import jacrl.train as train_module

    monkeypatch.setattr(train_module.time, "perf_counter", lambda: 1.0)
    run_dir = tiny_run(tmp_path, steps=64, eval_every=64)
    result = strict_json((run_dir / "result.json").read_text())
    assert result["steps_per_s"] is None
    assert result["status"] == "ok"


def test_jacrl_writes_json_only_with_allow_nan_false() -> None:
    """Every ``json.dump``/``json.dumps`` call in jacrl refuses NaN and infinity, so no file (or
    printed listing) can hold a non-standard token."""
    package = Path(jacrl.__file__).parent
    offending = []
    for source in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("dump", "dumps")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "json"
            ):
                flags = {kw.arg: kw.value for kw in node.keywords}
                value = flags.get("allow_nan")
                if not (isinstance(value, ast.Constant) and value.value is False):
                    offending.append(f"{source.relative_to(package)}:{node.lineno}")
    assert not offending, f"json.dump(s) without allow_nan=False: {offending}"


# ---------------------------------------------------------------------------------------------
# #12.9: a finished run is never overwritten silently; a folder's files always agree


def test_a_finished_run_is_refused_and_force_moves_it_aside(tmp_path: Path) -> None:
    run_dir = tiny_run(tmp_path)
    before = folder_bytes(run_dir)
    with pytest.raises(RunFolderError, match=r"finished run.*--force.*--resume") as info:
        tiny_run(tmp_path)
    assert str(run_dir) in str(info.value)
    assert folder_bytes(run_dir) == before

    # a retry that would fail to start (a bad hyperparameter) is refused before it writes
    with pytest.raises(RunFolderError):
        tiny_run(tmp_path, hp={**HP, "n_steps": "abc"})
    assert folder_bytes(run_dir) == before

    tiny_run(tmp_path, force=True)
    (old,) = [p for p in run_dir.parent.iterdir() if p.name.startswith(f"{run_dir.name}.old-")]
    assert folder_bytes(old) == before, "the moved-aside run is not the old run, whole"
    assert {"model.zip", "config.yaml", "evaluations.npz", "result.json"} <= set(
        folder_bytes(run_dir)
    )


def test_a_run_that_fails_to_start_writes_no_config(tmp_path: Path) -> None:
    """config.yaml is written once the run is committed to start, so a folder never holds the
    settings of a run that did not happen."""
    with pytest.raises(Exception):  # noqa: B017  (whatever the agent raises for the value)
        train("jacobian", "CartPole-v1", steps=64, hp={**HP, "n_steps": "abc"}, log_root=tmp_path)
    run_dir = tmp_path / "CartPole-v1" / "jacobian_0"
    assert not (run_dir / "config.yaml").exists()


def test_an_interrupted_run_is_restarted_clean(tmp_path: Path) -> None:
    """A run killed without a checkpoint cannot be continued: retraining it removes its partial
    files first, so no stale evaluations.npz or TensorBoard events sit beside the new run's."""
    run_dir = tmp_path / "CartPole-v1" / "jacobian_0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("agent: jacobian\n")
    (run_dir / "events.out.tfevents.1.stale").write_bytes(b"stale")
    np.savez(run_dir / "evaluations.npz", timesteps=np.array([999]))
    tiny_run(tmp_path, steps=64, eval_every=64)
    assert not (run_dir / "events.out.tfevents.1.stale").exists()
    with np.load(run_dir / "evaluations.npz") as evaluations:
        assert evaluations["timesteps"].tolist() == [64]


@pytest.mark.integration
def test_a_smaller_compare_does_not_overwrite_the_grids_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_compare import fake_train

    monkeypatch.chdir(tmp_path)
    kwargs: dict[str, Any] = dict(steps=100, eval_every=50, eval_episodes=2, workers=2,
                                  train_fn=fake_train, progress=False)  # fmt: skip
    compare(["CartPole-v1"], ["ppo"], seeds=2, **kwargs)
    summary = tmp_path / "runs/compare/CartPole-v1/summary.json"
    before = summary.read_bytes()
    compare(["CartPole-v1"], ["ppo"], seeds=2, **kwargs)  # the same grid again: allowed
    assert summary.read_bytes() == before
    with pytest.raises(RunFolderError, match=r"summary of another grid.*--out.*--force"):
        compare(["CartPole-v1"], ["ppo"], seeds=1, **kwargs)
    assert summary.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# #12.10: one writer per run folder


PAUSED_TRAIN = """
import sys, time
import torch
torch.set_num_threads(1)
from jacrl.agents.base import BaseAgent
from jacrl.cli import main

step_env = BaseAgent._step_env

def paused_step_env(self, actions, callback):
    if self.num_timesteps >= 64:
        print("paused", flush=True)
        time.sleep(300)
    return step_env(self, actions, callback)

BaseAgent._step_env = paused_step_env
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.integration
def test_a_second_writer_is_refused_naming_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = [f"--hp={k}={list(v) if isinstance(v, tuple) else v}" for k, v in HP.items()]
    argv = ["train", "--agent", "jacobian", "--env", "CartPole-v1", "--steps", str(TOTAL),
            "--log-root", str(tmp_path), "--no-progress", *overrides]  # fmt: skip
    first = subprocess.Popen(
        [sys.executable, "-c", PAUSED_TRAIN, *argv], stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None and first.stdout.readline() == "paused\n"
        run_dir = tmp_path / "CartPole-v1" / "jacobian_0"
        before = folder_bytes(run_dir)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("jacrl: error: ")
        assert f"pid {first.pid}" in err and socket.gethostname() in err
        assert folder_bytes(run_dir) == before, "the refused writer touched the folder"
    finally:
        first.kill()
        first.wait(timeout=60)
    # the holder died without releasing its lock: the next writer detects it as stale
    assert main([*argv, "--force"]) == 0
    assert (run_dir / "model.zip").is_file()


def test_a_stale_lock_is_taken_over_and_a_lock_on_another_host_is_reported(tmp_path: Path) -> None:
    from jacrl.common.run_lock import RunLock, lock_path

    run_dir = tmp_path / "CartPole-v1" / "jacobian_0"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = lock_path(run_dir)
    lock.parent.mkdir(parents=True)
    holder = {"pid": dead.pid, "host": socket.gethostname(), "started": "earlier",
              "command": "jacrl train", "token": "dead"}  # fmt: skip
    lock.write_text(json.dumps(holder))
    with RunLock(run_dir), RunLock(run_dir):  # taken over; re-entrant in one process
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists(), "the lock outlived its holder"

    lock.write_text(json.dumps({**holder, "host": "elsewhere"}))  # cannot be checked from here
    with pytest.raises(RunFolderError, match=rf"pid {dead.pid} on elsewhere.*delete {lock}"):
        RunLock(run_dir).__enter__()
    assert json.loads(lock.read_text())["host"] == "elsewhere", "another host's lock was broken"


@pytest.mark.integration
def test_compare_does_not_write_into_a_folder_another_process_holds(tmp_path: Path) -> None:
    from jacrl.common.run_lock import RunLock

    spec = RunSpec("jacobian", "jacobian", "CartPole-v1", 0, 64, 64, 2, str(tmp_path), HP)
    with RunLock(spec.run_dir):
        child = subprocess.run(
            [sys.executable, "-c",
             "import sys; from jacrl.compare.grid import RunSpec, execute; "
             f"print(execute(RunSpec(*{(*spec.__dict__.values(),)!r})).error)"],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        assert f"pid {os.getpid()}" in child.stdout
        assert not spec.run_dir.exists(), "the refused run wrote into the folder"


# ---------------------------------------------------------------------------------------------
# #12.11: checkpointing is invisible to the run


def stop_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next run raise KeyboardInterrupt at env step ``step``, as Ctrl-C would."""
    step_env = BaseAgent._step_env

    def interrupted(self: BaseAgent, actions: np.ndarray, callback: BaseCallback) -> Any:
        if self.num_timesteps >= step:
            raise KeyboardInterrupt
        return step_env(self, actions, callback)

    monkeypatch.setattr(BaseAgent, "_step_env", interrupted)


def test_a_resumed_run_equals_an_uninterrupted_one_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evaluations, final weights: the same whether the run was checkpointed, interrupted and
    resumed, checkpointed without interruption, or never checkpointed at all."""
    plain = tiny_run(tmp_path / "plain")
    checkpointed = tiny_run(tmp_path / "checkpointed", checkpoint_every=EVERY)
    with monkeypatch.context() as patch:
        stop_at(TOTAL // 2 + 40, patch)  # an iteration past the checkpoint at TOTAL // 2
        with pytest.raises(KeyboardInterrupt):
            tiny_run(tmp_path / "killed", checkpoint_every=EVERY)
    killed = tmp_path / "killed" / "CartPole-v1" / "jacobian_0"
    assert read_agent(killed / "checkpoint.zip", "JacobianAgent").num_timesteps == TOTAL // 2
    resume(killed)

    final = read_agent(plain / "model.zip", "JacobianAgent").tensors
    for run_dir in (checkpointed, killed):
        other = read_agent(run_dir / "model.zip", "JacobianAgent").tensors
        assert all(torch.equal(v, other[k]) for k, v in final.items()), run_dir
        with np.load(plain / "evaluations.npz") as a, np.load(run_dir / "evaluations.npz") as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{run_dir}: {key}")


class StopAfter(BaseCallback):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        return self.num_timesteps < self.step


def sac(env: Any = "Pendulum-v1") -> JacobianSAC:
    return JacobianSAC(
        env, seed=1, n_envs=2 if isinstance(env, str) else 1, learning_starts=40, batch_size=16,
        net_arch=(8,), lift_hidden=(8,),
    )  # fmt: skip


@pytest.mark.parametrize(
    "make", [lambda: JacobianAgent("CartPole-v1", seed=1, **HP), sac], ids=["jacobian", "sac"]
)
def test_resuming_replays_the_episodes_in_progress(make: Any, tmp_path: Path) -> None:
    """Episodes cut by a checkpoint continue where they were, for on- and off-policy agents:
    interrupted and resumed, the run ends with the weights of a run never checkpointed."""
    total, every = 320, 128
    agent = make()
    reference = agent.learn(total).get_parameters()
    checkpoint = tmp_path / "checkpoint.zip"
    make().learn(total, callback=StopAfter(200), checkpoint_every=every, checkpoint_path=checkpoint)
    assert read_agent(checkpoint, type(agent).__name__).num_timesteps < 200
    resumed = make().learn(total, checkpoint_every=every, checkpoint_path=checkpoint)
    final = resumed.get_parameters()
    assert all(torch.equal(v, final[k]) for k, v in reference.items())


class Restless(gym.Wrapper):
    """Pendulum whose reset ignores its seed: not deterministic given seed and actions."""

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(seed=int.from_bytes(os.urandom(4), "little"))
        return obs, info


def test_an_env_that_cannot_be_replayed_is_refused_on_resume(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.zip"
    agent = sac(Restless(gym.make("Pendulum-v1")))
    agent.learn(320, callback=StopAfter(200), checkpoint_every=128, checkpoint_path=checkpoint)
    with pytest.raises(CheckpointError, match=r"replay.*not deterministic given its seed"):
        sac(Restless(gym.make("Pendulum-v1"))).learn(
            320, checkpoint_every=128, checkpoint_path=checkpoint
        )


# ---------------------------------------------------------------------------------------------
# #12.12: no file jacrl reads can run code


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ppo")
    return Path(train("ppo", "CartPole-v1", steps=64, hp=PPO_HP, log_root=root).run_dir)


def copy_run(run_dir: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("model.zip", "config.yaml"):
        (target / name).write_bytes((run_dir / name).read_bytes())
    return target / "model.zip"


def rewrite_member(model: Path, member: str, edit: Any) -> None:
    with zipfile.ZipFile(model) as src:
        members = {name: src.read(name) for name in src.namelist()}
    members[member] = edit(members[member])
    with zipfile.ZipFile(model, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)


def with_serialized(key: str, marker: Path) -> Any:
    """An edit of SB3's ``data`` that makes entry ``key`` unpickle to the payload (keeping the
    entry's readable attributes, as a crafted file would)."""

    def edit(data: bytes) -> bytes:
        content = json.loads(data)
        evil = base64.b64encode(pickle.dumps(Payload(marker))).decode()
        content[key] = {**content.get(key, {":type:": "<class 'object'>"}), ":serialized:": evil}
        return json.dumps(content).encode()

    return edit


def test_an_sb3_model_is_loaded_without_unpickling(ppo_run: Path, tmp_path: Path) -> None:
    """Every ``:serialized:`` entry SB3 would unpickle is rebuilt from the env and the preset."""
    marker = tmp_path / "payload-ran"
    model = copy_run(ppo_run, tmp_path / "run")
    expected = evaluate_saved(ppo_run / "model.zip", "CartPole-v1", episodes=2)
    for key in ("policy_class", "lr_schedule", "observation_space", "_last_obs"):
        rewrite_member(model, "data", with_serialized(key, marker))
    assert evaluate_saved(model, "CartPole-v1", episodes=2) == expected
    assert not marker.exists(), "loading the SB3 model executed a pickled payload"


def test_unsafe_files_are_refused_and_do_not_run(ppo_run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    unknown = copy_run(ppo_run, tmp_path / "unknown")
    rewrite_member(unknown, "data", with_serialized("surprise", marker))
    with pytest.raises(CheckpointError, match=r"'surprise'.*--trust-pickle"):
        evaluate_saved(unknown, "CartPole-v1", episodes=1)

    weights = copy_run(ppo_run, tmp_path / "weights")
    evil = tmp_path / "evil.pth"
    torch.save({"x": Payload(marker)}, evil)
    rewrite_member(weights, "policy.pth", lambda _: evil.read_bytes())
    with pytest.raises(CheckpointError, match=r"policy.pth"):
        evaluate_saved(weights, "CartPole-v1", episodes=1)

    stats = copy_run(ppo_run, tmp_path / "stats")
    (stats.parent / "vecnormalize.pkl").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError, match=r"vecnormalize.pkl.*--trust-pickle"):
        evaluate_saved(stats, "CartPole-v1", episodes=1)
    assert not marker.exists(), "a refused file executed its payload"

    # control: trusting the file does run it, so the assertions above are not vacuous
    with pytest.raises(Exception):  # noqa: B017  (the payload is not VecNormalize statistics)
        evaluate_saved(stats, "CartPole-v1", episodes=1, trust_pickle=True)
    assert marker.exists()


def test_normalisation_statistics_are_saved_without_pickle(tmp_path: Path) -> None:
    run_dir = Path(
        train("a2c", "Pendulum-v1", steps=64, hp={"n_envs": 1, "normalize": True},
              log_root=tmp_path).run_dir
    )  # fmt: skip
    assert not list(run_dir.glob("*.pkl"))
    with np.load(run_dir / "vecnormalize.npz", allow_pickle=False) as stats:
        assert stats["obs_mean"].shape == (3,) and float(stats["obs_count"]) > 1
    mean, _ = evaluate_saved(run_dir / "model.zip", "Pendulum-v1", episodes=1)
    assert np.isfinite(mean)


# ---------------------------------------------------------------------------------------------
# #12.13: every derived path stays inside its root; a saved file sets hyperparameters only


@pytest.fixture
def dotdot_env() -> Iterator[str]:
    env_id = ".."
    gym.register(env_id, entry_point="gymnasium.envs.classic_control:CartPoleEnv",
                 max_episode_steps=50)  # fmt: skip
    yield env_id
    del gym.registry[env_id]


def test_an_env_id_cannot_steer_a_run_folder_out_of_the_log_root(
    tmp_path: Path, dotdot_env: str
) -> None:
    root = tmp_path / "root"
    with pytest.raises(ConfigError, match=r"outside.*root"):
        train("jacobian", dotdot_env, steps=64, hp=HP, log_root=root)
    with pytest.raises(ConfigError, match=r"outside.*root"):
        compare([dotdot_env], ["jacobian"], seeds=1, steps=64, log_root=str(root),
                progress=False)  # fmt: skip
    assert not (tmp_path / "jacobian_0").exists() and not root.exists()


def test_a_crafted_config_cannot_steer_resume_out_of_the_log_root(tmp_path: Path) -> None:
    run_dir = tiny_run(tmp_path / "root", checkpoint_every=EVERY, steps=64, eval_every=None)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "checkpoint.zip").write_bytes(b"")  # as if interrupted
    config["seed"] = "0/../../../escaped"
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"seed"):
        resume(run_dir)
    assert not (tmp_path / "escaped").exists()


@pytest.mark.parametrize(
    ("key", "value"),
    [("tensorboard_log", "TMP/evil"), ("device", "cuda"), ("verbose", 2), ("seed", 3)],
)
def test_a_saved_file_sets_hyperparameters_only(key: str, value: Any, tmp_path: Path) -> None:
    saved = JacobianAgent("CartPole-v1", **HP).save(tmp_path / "agent.zip")
    value = value.replace("TMP", str(tmp_path)) if isinstance(value, str) else value

    def edit(data: bytes) -> bytes:
        meta = json.loads(data)
        meta["hyperparameters"][key] = value
        return json.dumps(meta).encode()

    rewrite_member(saved, META_MEMBER, edit)
    with pytest.raises(CheckpointError, match=rf"{key}.*runtime setting"):
        JacobianAgent.load(saved, env="CartPole-v1")
    assert not (tmp_path / "evil").exists()
