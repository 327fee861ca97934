"""jacrl tune: search spaces, a real study on CartPole (tiny space, a few hundred steps per
trial), resuming, retrying a trial whose worker died, the preset it writes, its plots, and bad
input refused before any training. The slow test kills a 2-worker study mid-run and restarts it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

optuna = pytest.importorskip("optuna")  # the jacrl[tune] extra; the dev extra installs it

from jacrl.agents.registry import get_agent  # noqa: E402
from jacrl.agents.sb3 import make_sb3_agent  # noqa: E402
from jacrl.common.errors import ConfigError, JacrlError  # noqa: E402
from jacrl.presets import load_preset  # noqa: E402
from jacrl.tune import TUNE_SEED_BASE, tune  # noqa: E402
from jacrl.tune import space as search  # noqa: E402
from jacrl.tune.__main__ import main  # noqa: E402
from jacrl.tune.output import HISTORY_PNG, IMPORTANCE_PNG  # noqa: E402
from jacrl.tune.study import (  # noqa: E402
    HP_ATTR,
    RETRY_ATTR,
    SEED_ATTR,
    SEED_VALUES_ATTR,
    WORKER_ATTR,
)

ENV = "CartPole-v1"
STEPS = 256  # one rollout of the CartPole preset (8 envs x 32 steps)
TINY_SPACE = {
    "learning_rate": {"low": 1.0e-3, "high": 3.0e-3, "log": True},
    "n_epochs": {"choices": [1, 2]},
}
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _space_file(folder: Path, content: Any = None) -> Path:
    path = folder / "space.yml"
    path.write_text(yaml.safe_dump(TINY_SPACE if content is None else content))
    return path


def _tune(folder: Path, trials: int, env: str = ENV, **kwargs: Any) -> Any:
    settings: dict[str, Any] = {
        "steps": STEPS,
        "space": folder / "space.yml",
        "storage": f"sqlite:///{folder / 'study.db'}",
        "study_name": "t",
        "out": folder / "out",
        "n_evaluations": 2,
        "eval_episodes": 2,
    }
    return tune("jacobian", env, trials, **{**settings, **kwargs})


def _trials(folder: Path) -> list[Any]:
    return optuna.load_study(study_name="t", storage=f"sqlite:///{folder / 'study.db'}").trials


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-trial study, trained 2 at a time (the tests that change it use a copy)."""
    folder = tmp_path_factory.mktemp("tune")
    _space_file(folder)
    result = _tune(folder, 2, n_jobs=2)
    assert result.finished and result.complete + result.pruned == 2
    return folder


def _copy(study_dir: Path, to: Path) -> Path:
    shutil.copy(study_dir / "study.db", to / "study.db")
    shutil.copy(study_dir / "space.yml", to / "space.yml")
    return to


# -- the study ---------------------------------------------------------------------------------
@pytest.mark.integration
def test_study_holds_the_trials_with_tuning_seeds(study_dir: Path) -> None:
    trials = _trials(study_dir)
    assert [t.number for t in trials] == [0, 1]
    assert all(t.state in FINISHED for t in trials)
    assert [t.user_attrs[SEED_ATTR] for t in trials] == [TUNE_SEED_BASE + n for n in range(2)]
    for trial in trials:  # the sampled point lies in the space; the two evaluations reported
        assert 1e-3 <= trial.params["learning_rate"] <= 3e-3
        assert trial.params["n_epochs"] in (1, 2)
        assert trial.user_attrs[HP_ATTR] == trial.params
        assert sorted(trial.intermediate_values) == [1, 2]
    run = study_dir / "out" / "trials" / ENV / f"trial0_{TUNE_SEED_BASE}" / "config.yaml"
    config = yaml.safe_load(run.read_text())
    assert config["seed"] == TUNE_SEED_BASE and config["n_timesteps"] == STEPS


@pytest.mark.integration
def test_best_preset_loads_through_presets(study_dir: Path) -> None:
    trials = _trials(study_dir)
    best = max((t for t in trials if t.value is not None), key=lambda t: t.value)
    entry = load_preset("jacobian", ENV, study_dir / "out" / "best.yml")
    shipped = load_preset("jacobian", ENV)
    expected = {**shipped, **best.params, "n_timesteps": STEPS}
    assert entry == expected
    header = (study_dir / "out" / "best.yml").read_text().splitlines()[0]
    assert header.startswith("# jacrl tune: the best of 2 trials")


@pytest.mark.integration
def test_plots_are_pngs(study_dir: Path) -> None:
    for name in (HISTORY_PNG, IMPORTANCE_PNG):
        data = (study_dir / "out" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


@pytest.mark.integration
def test_resume_adds_only_missing_trials_and_retries_a_dead_workers_trial(
    study_dir: Path, tmp_path: Path
) -> None:
    """Run again with the same storage: a full study trains nothing; a trial left RUNNING by a
    process that is gone (a killed ``jacrl tune``) is failed and retried with its point and seed;
    the study then holds exactly the trials asked for, under distinct numbers."""
    folder = _copy(study_dir, tmp_path)
    before = [(t.number, t.value) for t in _trials(folder)]
    again = _tune(folder, 2)
    assert again.finished and [(t.number, t.value) for t in _trials(folder)] == before

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{folder / 'study.db'}")
    orphan = study.ask()
    orphan.suggest_float("learning_rate", 1e-3, 3e-3, log=True)
    orphan.suggest_categorical("n_epochs", [1, 2])
    orphan.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{gone.pid}")
    result = _tune(folder, 3)
    trials = _trials(folder)
    assert result.complete + result.pruned == 3 and result.failed == 1
    assert [(t.number, t.value) for t in trials[:2]] == before
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert trials[2].state == optuna.trial.TrialState.FAIL
    retry = trials[3]
    assert retry.state in FINISHED and retry.user_attrs[RETRY_ATTR] == 2
    assert retry.params == trials[2].params
    assert retry.user_attrs[SEED_ATTR] == TUNE_SEED_BASE + 2


@pytest.mark.integration
def test_resuming_with_other_settings_is_refused(study_dir: Path, tmp_path: Path) -> None:
    folder = _copy(study_dir, tmp_path)
    with pytest.raises(ConfigError, match=r"other settings.*steps"):
        _tune(folder, 3, steps=512)


@pytest.mark.integration
def test_a_trial_of_several_seeds_scores_their_mean(tmp_path: Path) -> None:
    """``seeds_per_trial=2``: trial k trains seeds base + 2k and base + 2k + 1, reports both
    seeds' evaluations (steps 1-2 and 4-5: a stride of n_evaluations + 1), and its value is the
    mean of the two final evaluations read from the runs' own results; the preset's header says
    so, and resuming with one seed per trial is refused by name."""
    _space_file(tmp_path)
    result = _tune(tmp_path, 2, pruner="none", seeds_per_trial=2)
    assert result.complete == 2
    trials_root = tmp_path / "out" / "trials" / ENV
    for trial in _trials(tmp_path):
        first = TUNE_SEED_BASE + 2 * trial.number
        assert trial.user_attrs[SEED_ATTR] == first
        finals = [
            json.loads((trials_root / f"trial{trial.number}_{seed}" / "result.json").read_text())[
                "final_eval_mean"
            ]
            for seed in (first, first + 1)
        ]
        assert trial.user_attrs[SEED_VALUES_ATTR] == finals
        assert trial.value == pytest.approx(np.mean(finals), rel=1e-12)
        assert sorted(trial.intermediate_values) == [1, 2, 4, 5]  # seed j from step 3j + 1
        assert trial.intermediate_values[2] == pytest.approx(finals[0], rel=1e-12)
        assert trial.intermediate_values[5] == pytest.approx(finals[1], rel=1e-12)
    lines = (tmp_path / "out" / "best.yml").read_text().splitlines()
    header = " ".join(line.removeprefix("# ") for line in lines if line.startswith("#"))
    assert "mean final evaluation" in header and "2 x trial number + 0..1" in header
    with pytest.raises(ConfigError, match=r"other settings \(seeds_per_trial differ\)"):
        _tune(tmp_path, 2, pruner="none")
    with pytest.raises(ConfigError, match="seeds_per_trial must be a positive whole number"):
        _tune(tmp_path, 2, seeds_per_trial=0)


@pytest.mark.integration
def test_a_bandit_trial_is_scored_on_the_validation_split(tmp_path: Path) -> None:
    """A digits trial evaluates on the 288 validation images (not the 360 test images), trains
    without them, and its value is the mean return of its final evaluation there."""
    space = {"learning_rate": {"low": 1.0e-3, "high": 2.0e-3, "log": True}, "n_steps": 64}
    _space_file(tmp_path, space)
    result = _tune(
        tmp_path, 1, env="jacrl/DigitsBandit-v0", steps=64, n_evaluations=1, eval_episodes=None
    )
    assert result.complete == 1
    run = tmp_path / "out" / "trials" / "jacrl_DigitsBandit-v0" / f"trial0_{TUNE_SEED_BASE}"
    with np.load(run / "evaluations.npz") as data:
        assert data["results"].shape == (1, 288)
        assert result.best_value == pytest.approx(float(np.mean(data["results"][-1])))
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["env"]["kwargs"] == {"dataset": "digits", "validation_fraction": 0.2}
    assert config["eval_episodes"] == 288
    header = (tmp_path / "out" / "best.yml").read_text()
    assert "scored on the validation split" in header


def test_timeout_starts_no_trial_after_it(tmp_path: Path) -> None:
    """Past the timeout no trial starts: a study run with an expired one trains nothing and is
    not finished, and ``jacrl tune --timeout`` still exits 0 (the timeout was asked for)."""
    _space_file(tmp_path)
    result = _tune(tmp_path, 3, timeout=1e-9)
    assert (result.complete, result.pruned, result.failed, result.finished) == (0, 0, 0, False)
    assert _trials(tmp_path) == [] and not (tmp_path / "out" / "best.yml").exists()
    with pytest.raises(ConfigError, match="timeout must be a positive number"):
        _tune(tmp_path, 3, timeout=0)


# -- bad input, refused before training --------------------------------------------------------
@pytest.mark.parametrize("trials", [0, -2])
def test_trials_must_be_positive(tmp_path: Path, trials: int) -> None:
    _space_file(tmp_path)
    with pytest.raises(ConfigError, match="trials must be a positive whole number"):
        _tune(tmp_path, trials)
    assert not (tmp_path / "study.db").exists()


def test_unknown_parameter_in_space_file(tmp_path: Path) -> None:
    _space_file(tmp_path, {"learning_rate": {"low": 1e-4, "high": 1e-3}, "lerning_rate": 1e-3})
    with pytest.raises(ConfigError, match=r"unknown parameter 'lerning_rate'.*accepted: .*sigma_x"):
        _tune(tmp_path, 2)
    assert not (tmp_path / "study.db").exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"low": 1e-3}, "a range is"),
        ({"low": 1e-3, "high": 1e-2, "step": 2}, "a range is"),
        ({"low": 0.0, "high": 1.0, "log": True}, "needs low > 0"),
        ({"low": 2.0, "high": 1.0}, "needs low < high"),
        ({"choices": []}, "must not be empty"),
        ({"choices": 3}, "as a list"),
    ],
)
def test_malformed_space_entry(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    path = _space_file(tmp_path, {"learning_rate": entry})
    with pytest.raises(ConfigError, match=message):
        search.load_space(path, "jacobian")


@pytest.mark.parametrize(
    "storage",
    ["sqlite:////no/such/folder/study.db", "nosuchdb://x", "study.db", "/no/such/folder/j.log"],
)
def test_storage_that_cannot_be_opened(tmp_path: Path, storage: str) -> None:
    _space_file(tmp_path)
    with pytest.raises(ConfigError, match="storage"):
        _tune(tmp_path, 2, storage=storage)


def test_journal_storage_opens(tmp_path: Path) -> None:
    from jacrl.tune.study import open_storage

    storage = open_storage(str(tmp_path / "journal.log"))
    assert optuna.create_study(storage=storage).trials == []


def _open_and_create(url: str, barrier: Any, results: Any) -> None:
    """A spawn worker: open ``url`` when every worker is ready, then create (or load) study 't'."""
    from jacrl.tune.study import open_storage

    barrier.wait()
    try:
        optuna.create_study(study_name="t", storage=open_storage(url), load_if_exists=True)
        results.put("ok")
    except Exception as exc:  # what the parent asserts on
        results.put(repr(exc))


def test_processes_opening_one_new_storage_at_once_all_succeed(tmp_path: Path) -> None:
    """Optuna creates a new database's schema without a lock: before open_storage retried, 4
    processes opening one new SQLite file at once failed in 5 of 6 rounds ("table studies already
    exists", a UNIQUE failure on alembic_version). The slow kill test hit it through its probe."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        barrier, results = context.Barrier(4), context.Queue()
        workers = [
            context.Process(target=_open_and_create, args=(url, barrier, results)) for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join()
        assert outcomes == ["ok"] * 4, outcomes


def test_unknown_agent_env_and_unfit_agent(tmp_path: Path) -> None:
    _space_file(tmp_path)
    with pytest.raises(ConfigError, match="unknown agent"):
        tune("nope", ENV, 2)
    with pytest.raises(ConfigError, match="unknown env id"):
        tune("jacobian", "NoSuchEnv-v9", 2)
    with pytest.raises(JacrlError, match="Box action space"):
        tune("sac", ENV, 2)


def test_cli_reports_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    """Both ways in: ``python -m jacrl.tune`` and the ``jacrl tune`` subcommand."""
    from jacrl.cli import main as jacrl_main

    arguments = ["--agent", "jacobian", "--env", ENV, "--trials", "0"]
    assert main(arguments) == 2
    assert "jacrl: error: trials must be a positive" in capsys.readouterr().err
    assert jacrl_main(["tune", *arguments]) == 2
    assert "jacrl: error: trials must be a positive" in capsys.readouterr().err


# -- the spaces --------------------------------------------------------------------------------
@pytest.mark.parametrize("agent", sorted(search.SPACES))
def test_builtin_space_names_only_what_the_agent_takes(agent: str) -> None:
    search.check_space(search.SPACES[agent], agent, "built-in")


@pytest.mark.parametrize("agent", sorted(search.SPACES))
def test_builtin_space_draws_build_the_agent(agent: str) -> None:
    """Three random points of each built-in space construct the agent (SB3 on a VecEnv)."""
    env_id = "Pendulum-v1" if agent in ("sac", "td3") else ENV
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    base = load_preset(agent, env_id)
    for _ in range(3):
        drawn = search.sample(study.ask(), search.SPACES[agent])
        hp = {k: v for k, v in search.merge(base, drawn).items() if k not in ("n_timesteps",)}
        n_envs, normalize = hp.pop("n_envs", 1), hp.pop("normalize", False)
        entry = get_agent(agent)
        if entry.family == "sb3":
            from stable_baselines3.common.env_util import make_vec_env

            model = make_sb3_agent(agent, make_vec_env(env_id, n_envs=n_envs), hp, seed=0)
        else:
            model, _ = entry.make(env_id, hp, n_envs=n_envs, normalize=normalize, seed=0)
        assert model.action_space == gym.make(env_id).action_space


def test_one_minus_and_structured_choices() -> None:
    points = {
        "gamma": search.FloatRange(0.9, 0.999, one_minus=True),
        "lift_hidden": search.Choice(([32, 32], [64, 64])),
        "policy_kwargs.net_arch": search.Choice(([64], [256, 256])),
        "width": 8,
    }
    trial = optuna.trial.FixedTrial(
        {"one_minus_gamma": 0.01, "lift_hidden": "[64, 64]", "policy_kwargs.net_arch": "[64]"}
    )
    drawn = search.sample(trial, points)
    assert drawn == {
        "gamma": pytest.approx(0.99),
        "lift_hidden": [64, 64],
        "policy_kwargs": {"net_arch": [64]},
        "width": 8,
    }


def test_merge_keeps_the_presets_other_policy_settings() -> None:
    base = {"policy_kwargs": "dict(log_std_init=-2, ortho_init=False)", "n_steps": 8}
    drawn = {"policy_kwargs": {"net_arch": [64]}, "n_steps": 16}
    assert search.merge(base, drawn) == {
        "policy_kwargs": {"log_std_init": -2, "ortho_init": False, "net_arch": [64]},
        "n_steps": 16,
    }


def test_space_file_reads_yaml_11_numbers(tmp_path: Path) -> None:
    """PyYAML reads ``1e-4`` (no dot) as a string; the range must still be a float range."""
    path = tmp_path / "space.yml"
    path.write_text("learning_rate: {low: 1e-4, high: 1e-2, log: true}\ndepth: {low: 1, high: 3}\n")
    points = search.load_space(path, "jacobian")
    assert points == {
        "learning_rate": search.FloatRange(1e-4, 1e-2, log=True),
        "depth": search.IntRange(1, 3),
    }


SHIPPED_SPACES = Path(__file__).resolve().parent.parent / "agents" / "spaces"
SHIPPED = {  # a search-space file in agents/spaces: (agent, env id of the preset it was tuned for)
    "jacrl_DigitsBandit-v0_jacobian.yml": ("jacobian", "jacrl/DigitsBandit-v0"),
}


def test_every_shipped_space_file_is_checked() -> None:
    assert sorted(p.name for p in SHIPPED_SPACES.glob("*.yml")) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_space_holds_the_preset_it_found(name: str) -> None:
    """A space file shipped for a preset loads for its agent, and the preset's value of every
    searched key lies inside it: the space was narrowed around that entry, so a study in it
    can find the entry again (editing one without the other fails here)."""
    agent, env_id = SHIPPED[name]
    points = search.load_space(SHIPPED_SPACES / name, agent)
    preset = load_preset(agent, env_id)
    for key, dimension in points.items():
        value = preset[key]
        if isinstance(dimension, search.Choice):
            assert value in dimension.choices, key
        elif isinstance(dimension, search.FloatRange | search.IntRange):
            assert dimension.low <= value <= dimension.high, key
        else:
            assert value == dimension, key


# -- killed and restarted ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.integration
def test_killed_study_restarts_to_n_distinct_finished_trials(tmp_path: Path) -> None:
    """Kill the 2-worker ``python -m jacrl.tune`` (SIGKILL, no clean-up) at a random moment while
    trials train, restart it, and check the study: exactly N finished trials, every trial the
    kill interrupted failed and retried once with its own point and seed, no point trained twice
    to completion."""
    n = 6
    _space_file(tmp_path)
    command = [
        sys.executable,
        "-m",
        "jacrl.tune",
        "--agent",
        "jacobian",
        "--env",
        ENV,
        "--trials",
        str(n),
        "--steps",
        "512",
        "--space",
        str(tmp_path / "space.yml"),
        "--storage",
        f"sqlite:///{tmp_path / 'study.db'}",
        "--study-name",
        "t",
        "--out",
        str(tmp_path / "out"),
        "--n-jobs",
        "2",
        "--n-evaluations",
        "2",
        "--eval-episodes",
        "2",
        "--n-startup-trials",
        "2",  # so the median pruner can prune some trials too
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until some trial has finished and others train
        time.sleep(0.5)
        if (tmp_path / "study.db").exists():
            states = [t.state for t in _trials(tmp_path)] if _has_study(tmp_path) else []
            if states.count(optuna.trial.TrialState.COMPLETE) >= 1 and len(states) >= 3:
                break
    time.sleep(random.Random(os.getpid()).uniform(0.0, 4.0))
    while not any(t.state.name == "RUNNING" for t in _trials(tmp_path)):
        time.sleep(0.05)  # kill while a trial trains, so the retry path is exercised
    first.send_signal(signal.SIGKILL)
    first.wait()
    interrupted = [t.number for t in _trials(tmp_path) if t.state.name == "RUNNING"]
    assert subprocess.run(command, env=env, timeout=600).returncode == 0
    trials = _trials(tmp_path)
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == n
    assert len({t.number for t in finished}) == n
    retries = {t.user_attrs[RETRY_ATTR]: t for t in trials if RETRY_ATTR in t.user_attrs}
    for number in interrupted:
        assert trials[number].state == optuna.trial.TrialState.FAIL
        retry = retries[number]
        assert retry.params == trials[number].params
        assert retry.user_attrs[SEED_ATTR] == TUNE_SEED_BASE + number
    assert sorted(retries) == sorted(interrupted)
    points = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(points)) == n
    assert all(np.isfinite(t.value) for t in finished)


def _has_study(folder: Path) -> bool:
    """Whether study 't' exists, read without Optuna: ``load_study`` on a file still being created
    would create the schema itself, racing the process under test."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{folder / 'study.db'}?mode=ro", uri=True) as connection:
            found = connection.execute("SELECT 1 FROM studies WHERE study_name = 't'").fetchone()
    except sqlite3.Error:  # no file, or no table yet
        return False
    return found is not None
