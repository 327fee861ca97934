"""jacrl compare: the grid, its failure handling and resuming, the report, and both backends.

Most tests inject ``fake_train``, a stand-in with ``jacrl.train.train``'s signature that writes
the run files instantly with known learning curves; one test runs the real ``train``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

from jacrl.common.errors import ConfigError, UnsupportedSpaceError
from jacrl.compare import grid
from jacrl.compare.backends import LocalBackend, make_backend, mirror_artifacts
from jacrl.compare.grid import RunOutcome, RunSpec, build_grid, execute, is_finished
from jacrl.compare.pipeline import compare
from jacrl.compare.report import SummaryRow, format_steps, format_threshold
from jacrl.compare.runner import GridProgress, run_grid
from jacrl.compare.scoring import Bandit, EnvScoring, env_scoring
from jacrl.compare.variants import VARIANTS, parse_names, resolve
from jacrl.train import run_config, train

CARTPOLE = EnvScoring("CartPole-v1", 475.0)
DIGITS = EnvScoring("jacrl/DigitsBandit-v0", 0.8, Bandit(-1.0, 1.0, 10, 360))
SCORINGS = {s.env_id: s for s in (CARTPOLE, DIGITS)}
LEVELS = {"ppo": 500.0, "a2c": 200.0, "jacobian": 100.0, "backprop": 0.9}


def fake_train(
    agent: str,
    env_id: str,
    steps: int,
    seed: int = 0,
    hp: dict[str, Any] | None = None,
    log_root: str = "runs",
    eval_every: int | None = None,
    eval_episodes: int = 10,
    run_name: str | None = None,
    force: bool = False,
) -> None:
    """Write a run folder like ``jacrl.train.train`` (its ``config.yaml`` too, fingerprint and
    all): return rises linearly to LEVELS[agent] (10 % less for each seed).

    On a bandit (one-step episodes, ±1 rewards) the level is the mean reward. An hp named
    ``boom`` raises, as an unknown hyperparameter does in the real ``train``; ``die`` kills the
    process.
    """
    if hp and "boom" in hp:
        raise ValueError(f"unknown hyperparameter 'boom' for agent '{agent}'")
    if hp and "die" in hp:  # like a segfault or the out-of-memory killer
        os.kill(os.getpid(), signal.SIGKILL)
    assert eval_every is not None
    run_dir = Path(log_root) / env_id.replace("/", "_") / f"{run_name or agent}_{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_config(agent, env_id, steps, seed, hp, None, eval_every, eval_episodes, run_name)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_file()))
    timesteps = np.arange(eval_every, steps + 1, eval_every)
    bandit = env_id.startswith("jacrl/")
    level = LEVELS[agent] if not bandit else min(LEVELS[agent], 1.0) - 0.1 * seed
    mean = level * timesteps / steps * (1.0 - 0.1 * seed)
    results = np.repeat(mean[:, None], eval_episodes, axis=1)
    np.savez(
        run_dir / "evaluations.npz",
        timesteps=timesteps,
        results=results,
        ep_lengths=np.ones_like(results, dtype=int) * (1 if bandit else 50),
    )
    result = {
        "agent": agent,
        "env_id": env_id,
        "seed": seed,
        "steps": steps,
        "final_eval_mean": float(mean[-1]),
        "final_eval_std": 0.0,
        "wall_time_s": 2.0,
        "steps_per_s": steps / 2.0,
        "reward_threshold": 475.0,
        "status": "ok",
    }
    (run_dir / "result.json").write_text(json.dumps(result))


@pytest.fixture
def broken_variant(monkeypatch: pytest.MonkeyPatch) -> str:
    """A variant whose every run crashes (an unknown hyperparameter)."""
    monkeypatch.setitem(VARIANTS, "ppo-broken", ("ppo", {"boom": 1}))
    return "ppo-broken"


def test_variants_resolve_to_a_base_agent_with_overrides() -> None:
    assert resolve("jacobian-volume") == ("jacobian", {"rule": "volume"})
    assert resolve("jacobian-d0") == ("jacobian", {"depth": 0})
    resolve("jacobian-d0")[1]["depth"] = 3  # callers get a copy
    assert VARIANTS["jacobian-d0"][1] == {"depth": 0}
    assert parse_names("ppo, jacobian,ppo") == ["ppo", "jacobian"]
    with pytest.raises(ConfigError, match="unknown agent 'sacc'; accepted: jacobian, jacobian-sac"):
        parse_names("ppo,sacc")


def test_grid_runs_backprop_only_on_labelled_envs() -> None:
    specs = build_grid(
        ["CartPole-v1", "jacrl/DigitsBandit-v0"],
        ["ppo", "backprop"],
        range(2),
        1000,
        100,
        scorings=SCORINGS,
    )
    cells = [(s.env_id, s.name, s.seed) for s in specs]
    assert cells == [
        ("CartPole-v1", "ppo", 0),
        ("CartPole-v1", "ppo", 1),
        ("jacrl/DigitsBandit-v0", "ppo", 0),
        ("jacrl/DigitsBandit-v0", "ppo", 1),
        ("jacrl/DigitsBandit-v0", "backprop", 0),
        ("jacrl/DigitsBandit-v0", "backprop", 1),
    ]
    # backprop is added on a bandit even when not listed
    only_ppo = build_grid(["jacrl/DigitsBandit-v0"], ["ppo"], [0], 10, 5, scorings=SCORINGS)
    assert [s.name for s in only_ppo] == ["ppo", "backprop"]
    # a bandit is evaluated on its whole held-out set, other envs on 10 episodes by default
    assert [s.eval_episodes for s in (only_ppo[0], specs[0])] == [360, 10]
    assert only_ppo[0].run_dir == Path("runs/jacrl_DigitsBandit-v0/ppo_0")


def test_variant_runs_in_its_own_folder(tmp_path: Path) -> None:
    (spec,) = build_grid(
        ["CartPole-v1"], ["jacobian-d0"], [3], 100, 50, scorings=SCORINGS,
        log_root=str(tmp_path),
    )  # fmt: skip
    assert spec.train_kwargs()["run_name"] == "jacobian-d0"
    assert spec.train_kwargs()["hp"] == {"depth": 0}
    assert execute(spec, fake_train).status == "ok"
    assert (tmp_path / "CartPole-v1" / "jacobian-d0_3" / "result.json").exists()


def test_a_crash_is_recorded_and_a_changed_budget_reruns(tmp_path: Path) -> None:
    spec = RunSpec("ppo", "ppo", "CartPole-v1", 0, 100, 50, 2, str(tmp_path), {"boom": 1})
    outcome = execute(spec, fake_train)
    assert outcome.status == "failed"
    assert outcome.error == "ValueError: unknown hyperparameter 'boom' for agent 'ppo'"
    assert "Traceback" in (spec.run_dir / "error.txt").read_text()
    assert json.loads((spec.run_dir / "result.json").read_text())["status"] == "failed"
    assert not is_finished(spec)

    fixed = RunSpec("ppo", "ppo", "CartPole-v1", 0, 100, 50, 2, str(tmp_path))
    assert execute(fixed, fake_train).status == "ok"
    assert not (spec.run_dir / "error.txt").exists()  # the stale traceback is gone
    assert is_finished(fixed)
    assert not is_finished(RunSpec("ppo", "ppo", "CartPole-v1", 0, 200, 50, 2, str(tmp_path)))


def test_train_that_writes_nothing_is_a_failure(tmp_path: Path) -> None:
    spec = RunSpec("ppo", "ppo", "CartPole-v1", 0, 100, 50, 2, str(tmp_path))
    outcome = execute(spec, lambda **kwargs: None)
    assert outcome.status == "failed"
    assert "without writing result.json" in (outcome.error or "")


def test_grid_end_to_end_with_a_crash_then_resumes(
    tmp_path: Path, broken_variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    kwargs: dict[str, Any] = {
        "seeds": 2, "steps": 1000, "eval_every": 250, "eval_episodes": 3, "workers": 2,
        "train_fn": fake_train, "progress": False,
    }  # fmt: skip
    result = compare(["CartPole-v1"], ["ppo", broken_variant], **kwargs)

    status = {(o.spec.name, o.spec.seed): o.status for o in result.outcomes}
    assert status == {
        ("ppo", 0): "ok", ("ppo", 1): "ok", (broken_variant, 0): "failed",
        (broken_variant, 1): "failed",
    }  # fmt: skip
    assert "boom" in (tmp_path / f"runs/CartPole-v1/{broken_variant}_1/error.txt").read_text()

    out = tmp_path / "runs" / "compare" / "CartPole-v1"
    names = {p.name for p in result.files}
    assert names == {
        "summary.md", "summary.csv", "summary.json", "curves_CartPole-v1.png",
        "final_CartPole-v1.png", "README_results.md", "grid.json",
    }  # fmt: skip
    for png in out.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"

    rows = {r["agent"]: r for r in json.loads((out / "summary.json").read_text())}
    # ppo: final returns 500 and 450; the IQM of two is their mean. Only seed 0 reaches 475,
    # at its last evaluation (1000 steps), so the median over both seeds is beyond the budget.
    ppo = rows["ppo"]
    assert (ppo["iqm"], ppo["mean"], ppo["std"]) == pytest.approx((475.0, 475.0, 25.0))
    assert ppo["iqm_low"] <= 475.0 <= ppo["iqm_high"]
    assert (ppo["reached"], ppo["median_steps"], ppo["median_steps_reached"]) == (1, None, 1000.0)
    assert ppo["steps_per_s"] == pytest.approx(500.0)
    assert rows[broken_variant]["runs_ok"] == 0 and rows[broken_variant]["iqm"] is None
    assert len(rows[broken_variant]["failures"]) == 2

    table = (out / "summary.md").read_text()
    assert "| ppo | 2/2 | 475.0 [" in table
    assert "1/2 reached; median 1k over those, > 1k for the rest (median of all: > 1k)" in table
    assert "ValueError: unknown hyperparameter 'boom'" in table
    readme = (out / "README_results.md").read_text()
    assert "jacrl compare --env CartPole-v1 --agents ppo,ppo-broken --seeds 2" in readme
    assert "![curves_CartPole-v1](runs/compare/CartPole-v1/curves_CartPole-v1.png)" in readme
    assert "Commit `" in readme and "CPUs" in readme

    # again (without the broken variant, whose retry is tested above): nothing left to train;
    # a report of fewer runs replaces this one only with force (which moves this one aside)
    again = compare(["CartPole-v1"], ["ppo"], **kwargs, force=True)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"]
    (aside,) = out.parent.glob("CartPole-v1.old-*")
    assert (aside / "summary.json").read_bytes() != (out / "summary.json").read_bytes()


def test_a_run_whose_process_dies_takes_down_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    killed = RunSpec("ppo-killed", "ppo", "CartPole-v1", 0, 100, 50, 2, "runs", {"die": 1})
    fine = RunSpec("ppo", "ppo", "CartPole-v1", 0, 100, 50, 2)
    outcomes = run_grid([killed, fine], workers=2, train_fn=fake_train, progress=False)
    status = {(o.spec.name, o.spec.seed): (o.status, o.error) for o in outcomes}
    assert status[("ppo", 0)] == ("ok", None)
    assert status[("ppo-killed", 0)] == (
        "failed",
        "ProcessDied: the run's process ended by signal SIGKILL (often the out-of-memory "
        "killer) before reporting a result",
    )
    assert "SIGKILL" in (killed.run_dir / "error.txt").read_text()


def test_bandit_is_reported_as_accuracy_with_the_supervised_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = compare(
        ["jacrl/DigitsBandit-v0"], ["jacobian"], seeds=1, steps=100, eval_every=50,
        eval_episodes=4, workers=2, train_fn=fake_train, progress=False,
    )  # fmt: skip
    rows = {r.agent: r for r in result.rows}
    assert set(rows) == {"jacobian", "backprop"}
    # fake mean reward 0.9 at the end -> accuracy (0.9 + 1) / 2
    assert rows["backprop"].iqm == pytest.approx(0.95)
    assert rows["backprop"].accuracy and "accuracy" in rows["backprop"].metric
    assert rows["backprop"].threshold_score == pytest.approx(0.9)  # reward threshold 0.8
    assert (
        tmp_path / "runs/compare/jacrl_DigitsBandit-v0/curves_jacrl_DigitsBandit-v0.png"
    ).exists()


def test_accuracy_comes_from_the_env_rewards() -> None:
    scoring = env_scoring("jacrl/DigitsBandit-v0")
    # sklearn digits: 1797 examples, 20 % held out, one-step episodes
    assert scoring == EnvScoring("jacrl/DigitsBandit-v0", 0.8, Bandit(-1.0, 1.0, 10, 360))
    assert scoring.chance == pytest.approx(0.1)
    # 10-step episodes returning 6: mean reward 0.6 per step -> 80 % right
    assert scoring.score(np.array([6.0]), np.array([10])) == pytest.approx([0.8])
    zero_one = EnvScoring("x", None, Bandit(0.0, 1.0, 2, 1))
    assert zero_one.score(np.array([0.7]), 1.0) == pytest.approx(0.7)
    cartpole = env_scoring("CartPole-v1")
    assert cartpole == CARTPOLE and cartpole.chance is None
    assert cartpole.score(np.array([200.0]), np.array([200])) == pytest.approx([200.0])
    with pytest.raises(ConfigError, match="unknown env id 'NoSuchEnv-v0'"):
        env_scoring("NoSuchEnv-v0")


def _row(**fields: Any) -> SummaryRow:
    base: dict[str, Any] = {
        "env_id": "CartPole-v1", "agent": "ppo", "metric": "return", "accuracy": False,
        "runs_ok": 5, "runs": 5, "iqm": 1.0, "iqm_low": 0.0, "iqm_high": 2.0, "mean": 1.0,
        "std": 0.0, "threshold": 475.0, "threshold_score": 475.0, "reached": 5,
        "median_steps": 40_000.0, "median_steps_reached": 40_000.0, "budget": 100_000,
        "wall_time_s": 1.0, "steps_per_s": 1.0, "failures": (),
    }  # fmt: skip
    return SummaryRow(**{**base, **fields})


def test_threshold_text_counts_runs_that_never_reached_it() -> None:
    assert format_steps(40_000) == "40k" and format_steps(1_500_000) == "1.5M"
    assert format_steps(512) == "512"
    assert format_threshold(_row()) == "5/5 reached; median 40k"
    assert format_threshold(_row(reached=3, median_steps=60_000.0)) == (
        "3/5 reached; median 40k over those, > 100k for the rest (median of all: 60k)"
    )
    assert format_threshold(_row(reached=2, median_steps=None)) == (
        "2/5 reached; median 40k over those, > 100k for the rest (median of all: > 100k)"
    )
    assert format_threshold(_row(reached=0)) == "0/5 reached (> 100k)"
    assert format_threshold(_row(threshold=None)) == "n/a (no threshold)"


def test_backend_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--address joins a Ray cluster"):
        make_backend("local", workers=None, address="auto", runs=1)
    with pytest.raises(ConfigError, match="--workers must be at least 1"):
        make_backend("local", workers=0, address=None, runs=1)
    with pytest.raises(ConfigError, match="unknown backend 'dask'; accepted: local, ray"):
        make_backend("dask", workers=None, address=None, runs=1)
    assert make_backend("local", workers=8, address=None, runs=3).slots == 3


def test_ray_results_are_copied_back_when_disks_differ(tmp_path: Path) -> None:
    run_dir = tmp_path / "ppo_0"
    run_dir.mkdir()
    (run_dir / "error.txt").write_text("stale traceback of an earlier attempt")
    (run_dir / "result.json").write_text('{"status": "failed"}')
    mirror_artifacts(run_dir, {"result.json": b'{"status": "ok"}', "config.yaml": b"n: 1"})
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "result.json"]
    assert (run_dir / "result.json").read_text() == '{"status": "ok"}'


def test_progress_counts_cells_and_names_failures(capsys: pytest.CaptureFixture[str]) -> None:
    spec = RunSpec("ppo", "ppo", "CartPole-v1", 1, 100, 50)
    bar = GridProgress(total=4, skipped=1, slots=2)
    bar.record(RunOutcome(spec, "failed", "ValueError: bad"))
    bar.record(RunOutcome(spec, "ok"))
    assert (bar.done, bar.failed, bar.skipped, bar.pending) == (1, 1, 1, 1)
    bar.close()
    err = capsys.readouterr()
    assert "failed: ppo on CartPole-v1 seed 1: ValueError: bad" in err.out + err.err
    assert "running=1" in err.err


def test_ray_backend_runs_the_same_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    cloudpickle = ray.cloudpickle

    # Ray workers cannot import this test module: ship fake_train by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.chdir(tmp_path)
    specs = build_grid(
        ["CartPole-v1"], ["ppo", "a2c"], range(1), 100, 50, scorings=SCORINGS,
        log_root="runs",
    )  # fmt: skip
    try:
        outcomes = run_grid(specs, backend="ray", workers=2, train_fn=fake_train, progress=False)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert sorted((o.spec.name, o.status) for o in outcomes) == [("a2c", "ok"), ("ppo", "ok")]
    assert all(grid.is_finished(s) for s in specs)


def test_compare_cli_trains_for_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real jacrl.train.train through ``jacrl compare``; jacobian with a short rollout."""
    from jacrl.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(
        VARIANTS,
        "jacobian",
        ("jacobian", {"n_envs": 1, "n_steps": 256, "batch_size": 64, "n_epochs": 2}),
    )
    argv = [
        "compare", "--env", "CartPole-v1", "--agents", "ppo,jacobian", "--seeds", "2",
        "--steps", "256", "--eval-every", "128", "--eval-episodes", "2", "--workers", "2",
        "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    for name in ("ppo", "jacobian"):
        for seed in (0, 1):
            run_dir = tmp_path / "runs" / "CartPole-v1" / f"{name}_{seed}"
            assert json.loads((run_dir / "result.json").read_text())["status"] == "ok"
            assert (run_dir / "model.zip").exists()
    summary = json.loads((tmp_path / "runs/compare/CartPole-v1/summary.json").read_text())
    assert [(r["agent"], r["runs_ok"]) for r in summary] == [("ppo", 2), ("jacobian", 2)]


@pytest.fixture
def seven_step_digits() -> Iterator[str]:
    """Digits with 7 answers per episode: 360 held-out examples are ⌈360 / 7⌉ = 52 episodes."""
    env_id = "jacrl-test/DigitsBandit7-v0"
    gym.register(
        env_id,
        entry_point="jacrl.envs.classification_bandit:ClassificationBandit",
        kwargs={"dataset": "digits", "episode_length": 7},
    )
    yield env_id
    del gym.registry[env_id]


def test_train_and_scoring_evaluate_the_same_held_out_episodes(
    tmp_path: Path, seven_step_digits: str
) -> None:
    assert env_scoring(seven_step_digits).eval_episodes(default=10) == 52
    result = train("backprop", seven_step_digits, steps=64, log_root=tmp_path, eval_every=64)
    evals = np.load(Path(result.run_dir) / "evaluations.npz")
    assert evals["results"].shape == (1, 52)  # train's default: the same 52 episodes
    assert evals["ep_lengths"].sum() == 52 * 7  # every one of the 360 examples answered


def test_compare_refuses_an_agent_that_cannot_act_in_an_env(tmp_path: Path) -> None:
    assert parse_names("sac,td3,jacobian-sac") == ["sac", "td3", "jacobian-sac"]
    with pytest.raises(UnsupportedSpaceError) as info:
        compare(
            ["CartPole-v1", "Pendulum-v1"], ["ppo", "dqn"], seeds=1, steps=100,
            log_root=str(tmp_path), train_fn=fake_train, progress=False,
        )  # fmt: skip
    assert str(info.value).startswith(
        "cannot run 'dqn' on Pendulum-v1: dqn needs a Discrete action space; for Box(-2.0, 2.0, "
    )
    assert list(tmp_path.iterdir()) == []  # refused before any run started


def test_threshold_option_replaces_the_env_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fake ppo rises linearly to 500 (seed 0) and 450 (seed 1) over 1000 steps, evaluated every
    # 250: 300 is first reached at 750 steps by both (375 and 337.5; at 500 steps 250 and 225),
    # while CartPole's own threshold 475 is reached by seed 0 only
    monkeypatch.chdir(tmp_path)
    kwargs: dict[str, Any] = {
        "seeds": 2, "steps": 1000, "eval_every": 250, "eval_episodes": 3, "workers": 1,
        "train_fn": fake_train, "progress": False,
    }  # fmt: skip
    result = compare(["CartPole-v1"], ["ppo"], thresholds=[300.0], **kwargs)
    (row,) = result.rows
    assert (row.threshold, row.reached, row.median_steps) == (300.0, 2, 750.0)
    out = tmp_path / "runs" / "compare" / "CartPole-v1"
    assert "--threshold 300" in (out / "README_results.md").read_text()
    assert "reward threshold: 300 (return)" in (out / "summary.md").read_text()
    with pytest.raises(ConfigError, match="one finite return per --env"):
        compare(["CartPole-v1"], ["ppo"], thresholds=[1.0, 2.0], **kwargs)


def test_each_env_gets_its_own_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = compare(
        ["CartPole-v1", "Acrobot-v1"], ["ppo"], seeds=1, steps=[400, 1000], eval_every=None,
        eval_episodes=2, workers=1, train_fn=fake_train, progress=False,
    )  # fmt: skip
    budgets = {o.spec.env_id: (o.spec.steps, o.spec.eval_every) for o in result.outcomes}
    assert budgets == {"CartPole-v1": (400, 40), "Acrobot-v1": (1000, 100)}
    readme = (tmp_path / "runs/compare/CartPole-v1+Acrobot-v1/README_results.md").read_text()
    assert "--steps 400,1000 --eval-every 40,100" in readme
    with pytest.raises(ConfigError, match="one per --env"):
        compare(["CartPole-v1", "Acrobot-v1"], ["ppo"], steps=[400], train_fn=fake_train)
    with pytest.raises(ConfigError, match="positive number of env steps"):
        compare(["CartPole-v1"], ["ppo"], steps=0, train_fn=fake_train)


def sleepy_train(**kwargs: Any) -> None:
    """A run that writes its pid beside the runs and then takes a minute."""
    (Path(kwargs["log_root"]) / "pid").write_text(str(os.getpid()))
    time.sleep(60)


def test_sigterm_to_the_grid_stops_its_runs(tmp_path: Path) -> None:
    """`kill` of a grid's process stops its runs too, rather than leaving them orphaned."""
    spec = RunSpec("ppo", "ppo", "CartPole-v1", 0, 100, 50, 2, str(tmp_path))
    pid_file, before = tmp_path / "pid", signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit), LocalBackend(1) as backend:
        runs = backend.run([spec], sleepy_train)
        threading.Thread(target=_sigterm_once_started, args=(pid_file,), daemon=True).start()
        next(runs)
    child = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert signal.getsignal(signal.SIGTERM) == before


def _sigterm_once_started(pid_file: Path) -> None:
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)
