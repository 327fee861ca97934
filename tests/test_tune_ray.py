"""``jacrl tune --backend ray``: two tiny CartPole trials as Ray tasks on a local Ray, and the
backend options refused before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from jacrl.common.errors import ConfigError  # noqa: E402
from jacrl.train import RESULT_FILE  # noqa: E402
from jacrl.tune import TUNE_SEED_BASE, runner, tune  # noqa: E402
from jacrl.tune.study import SEED_ATTR  # noqa: E402

ENV = "CartPole-v1"
SPACE = {"learning_rate": {"low": 1.0e-3, "high": 3.0e-3, "log": True}}


def _tune(folder: Path, **kwargs: Any) -> Any:
    (folder / "space.yml").write_text(yaml.safe_dump(SPACE))
    settings: dict[str, Any] = {
        "steps": 256,  # one rollout of the CartPole preset (8 envs x 32 steps)
        "space": folder / "space.yml",
        "storage": f"sqlite:///{folder / 'study.db'}",
        "study_name": "t",
        "out": folder / "out",
        "n_evaluations": 1,
        "eval_episodes": 2,
    }
    return tune("jacobian", ENV, 2, **{**settings, **kwargs})


@pytest.mark.slow  # a local Ray starts in ~10-30 s
@pytest.mark.integration
def test_ray_backend_runs_the_trials_as_ray_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip("ray")

    def no_local_process(*args: Any) -> Any:
        raise AssertionError("--backend ray started a local process")

    monkeypatch.setattr(runner, "_Process", no_local_process)
    monkeypatch.chdir(tmp_path)  # the trials' folders are absolute paths all the same
    result = _tune(tmp_path, backend="ray", n_jobs=2)
    assert result.finished and result.complete + result.pruned == 2 and result.failed == 0
    assert not ray.is_initialized()  # the local Ray it started is shut down
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'study.db'}")
    for trial in study.trials:
        seed = trial.user_attrs[SEED_ATTR]
        assert seed == TUNE_SEED_BASE + trial.number
        run = tmp_path / "out" / "trials" / ENV / f"trial{trial.number}_{seed}"
        assert (run / RESULT_FILE).is_file()
        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed
    assert (tmp_path / "out" / "best.yml").is_file()


def test_backend_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected one of"):
        _tune(tmp_path, backend="dask")
    with pytest.raises(ConfigError, match="address joins a Ray cluster"):
        _tune(tmp_path, address="auto")
    assert not (tmp_path / "study.db").exists()
