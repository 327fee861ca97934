"""Every ``jacrl`` refusal is one ``jacrl: error: ...`` line with exit code 2, never a traceback
(issue #13, item 10): ``train``, ``eval``, ``train --resume``, ``analyze``, a broken
``$JACRL_ENV_SPECS``, and Ctrl-C on ``compare``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from jacrl.agents.base import BaseAgent
from jacrl.cli import TRACEBACK_ENV, main
from jacrl.train import train

HP: dict[str, Any] = dict(n_envs=1, n_steps=32, batch_size=32, n_epochs=1, lift_hidden=(8,),
                          value_hidden=(8,))  # fmt: skip
PPO_HP: dict[str, Any] = dict(n_envs=1, n_steps=32, batch_size=32, n_epochs=1)


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``jacrl argv``; assert a one-line refusal with exit code 2 and return it."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("jacrl: error: ") and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished jacobian run and a finished ppo run (their model.zip), and each model alone in
    a folder without config.yaml."""
    root = tmp_path_factory.mktemp("runs")
    models = {
        "jacobian": Path(train("jacobian", "CartPole-v1", steps=32, hp=HP, log_root=root).run_dir),
        "ppo": Path(train("ppo", "CartPole-v1", steps=32, hp=PPO_HP, log_root=root).run_dir),
    }
    found = {name: run_dir / "model.zip" for name, run_dir in models.items()}
    for name, model in list(found.items()):
        alone = root / f"{name}-alone"
        alone.mkdir()
        found[f"{name}-alone"] = Path(shutil.copy(model, alone / "model.zip"))
    return found


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("jacobian", ["--env", "NoSuch-v0"], r"unknown env id 'NoSuch-v0'"),
        (
            "jacobian",
            ["--env", "CartPole-v1", "--agent", "ppo"],
            r"--agent ppo, but .*config.yaml says .* was saved by jacobian",
        ),
        (
            "jacobian-alone",
            ["--env", "CartPole-v1", "--agent", "ppo"],
            r"saved by a jacrl agent, not by agent 'ppo'; pass one of: jacobian",
        ),
        (
            "ppo-alone",
            ["--env", "CartPole-v1", "--agent", "jacobian"],
            r"saved by SB3, not by agent 'jacobian'; pass one of: ppo",
        ),
        (
            "jacobian-alone",
            ["--env", "CartPole-v1", "--agent", "jacobian-sac"],
            r"jacobian-sac needs a Box action space",
        ),
        ("jacobian", ["--env", "Acrobot-v1"], r"saved for another env: its observation space"),
        ("ppo", ["--env", "Acrobot-v1"], r"saved for another env: its observation space"),
        ("ppo", ["--env", "CartPole-v1", "--episodes", "0"], r"--episodes must be a positive"),
    ],
    ids=[
        "unknown-env",
        "agent-vs-config",
        "sb3-reads-jacrl",
        "jacrl-reads-sb3",
        "action-space",
        "jacrl-other-env",
        "sb3-other-env",
        "no-episodes",
    ],
)
def test_eval_refuses_with_one_line(
    model: str, extra: list[str], message: str, runs: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert re.search(message, refused(["eval", str(runs[model]), *extra], capsys))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{", r"no readable config.yaml"),
        ("- a\n- b\n", r"is not a run configuration \(a YAML mapping\), it holds list"),
        ("agent: 5\n", r"names no agent \(agent: 5\)"),
        ("agent: nosuch\n", r"unknown agent 'nosuch'; accepted: jacobian"),
    ],
    ids=["not-yaml", "a-list", "no-agent", "unknown-agent"],
)
def test_eval_refuses_a_broken_config(
    config: str, message: str, runs: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    model = Path(shutil.copy(runs["jacobian"], tmp_path / "model.zip"))
    (tmp_path / "config.yaml").write_text(config)
    assert re.search(message, refused(["eval", str(model), "--env", "CartPole-v1"], capsys))


class Interrupt(BaseCallback):
    """Raise KeyboardInterrupt at an env step (as Ctrl-C would)."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.step:
            raise KeyboardInterrupt
        return True


@pytest.fixture
def interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A jacobian run folder interrupted after its first checkpoint (at step 64 of 128)."""
    learn = BaseAgent.learn

    def interrupted_learn(self: BaseAgent, *args: Any, **kwargs: Any) -> Any:
        kwargs["callback"] = [*(kwargs.get("callback") or []), Interrupt(80)]
        return learn(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(BaseAgent, "learn", interrupted_learn)
        with pytest.raises(KeyboardInterrupt):
            train("jacobian", "CartPole-v1", steps=128, hp=HP, log_root=tmp_path / "root",
                  checkpoint_every=64)  # fmt: skip
    run_dir = tmp_path / "root" / "CartPole-v1" / "jacobian_0"
    assert (run_dir / "checkpoint.zip").is_file()
    return run_dir


def test_resume_dot_resumes_the_run_folder_it_is_run_in(
    interrupted: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(interrupted)
    assert main(["train", "--resume", ".", "--no-progress"]) == 0
    assert (interrupted / "model.zip").is_file() and not (interrupted / "checkpoint.zip").exists()
    assert not (interrupted / "CartPole-v1").exists(), "resumed into a folder below the run's"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: "agent: jacobian\n", r"lacks \['env_id', 'seed', 'n_envs', 'n_timesteps'"),
        (lambda text: text.replace("seed: 0", "seed: zero"), r"has seed='zero' \(expected int\)"),
        (
            lambda text: text.replace("n_steps: 32", "n_steps: 64"),
            r"does not match the run it describes \(fingerprint \(the file was edited",
        ),
    ],
    ids=["partial", "wrong-type", "edited"],
)
def test_resume_refuses_a_config_that_is_not_the_runs(
    edit: Callable[[str], str], message: str, interrupted: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = interrupted / "config.yaml"
    config.write_text(edit(config.read_text()))
    err = refused(["train", "--resume", str(interrupted)], capsys)
    assert re.search(message, err), err


def test_resume_refuses_a_folder_its_config_does_not_describe(
    interrupted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = interrupted.with_name("jacobian_7")
    shutil.copytree(interrupted, copy)
    err = refused(["train", "--resume", str(copy)], capsys)
    assert f"describes the run folder {interrupted}" in err
    assert not (copy / "model.zip").exists() and not (interrupted / "model.zip").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "0"], r"--lr 0: the step size α must be a positive finite number"),
        (["--lr", "-0.1"], r"--lr -0.1: the step size"),
        (["--lr", "nan"], r"--lr nan: the step size"),
        (["--hidden", "0"], r"--hidden 0: expected a positive whole number"),
        (["--track", "--every", "0"], r"--every 0: expected a positive whole number"),
        (["--batch-size", "0"], r"--batch-size 0: expected a positive whole number"),
    ],
    ids=["lr-zero", "lr-negative", "lr-nan", "hidden-zero", "every-zero", "batch-zero"],
)
def test_analyze_refuses_meaningless_values(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(["analyze", "iteration-jacobian", "--out", str(tmp_path), *argv], capsys)
    assert re.search(message, err)
    assert list(tmp_path.iterdir()) == []


def test_an_unexpected_error_is_one_line_unless_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import jacrl.train

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("something jacrl does not check")

    monkeypatch.setattr(jacrl.train, "train", broken)
    argv = ["train", "--agent", "jacobian", "--env", "CartPole-v1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("jacrl: error: unexpected RuntimeError: something jacrl does not check")
    assert "Traceback" not in err and TRACEBACK_ENV in err
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(RuntimeError, match="something jacrl does not check"):
        main(argv)


@pytest.mark.integration
def test_a_broken_spec_folder_does_not_break_import_or_help(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "broken.yaml").write_text("id: [x\n")
    (specs / "good.yaml").write_text(
        "id: jacrl-test/Good-v0\nentry_point: gymnasium.envs.classic_control:CartPoleEnv\n"
    )
    env = {
        **os.environ,
        "JACRL_ENV_SPECS": os.pathsep.join([str(tmp_path / "missing"), str(specs)]),
    }
    for argv in (["--help"], ["envs"]):
        done = subprocess.run([sys.executable, "-m", "jacrl.cli", *argv], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert f"{tmp_path / 'missing'} (from $JACRL_ENV_SPECS) is not a directory" in done.stderr
        assert "broken.yaml: cannot read env spec" in done.stderr
    assert "jacrl-test/Good-v0" in done.stdout  # the good spec beside the broken one


def _as_in_a_terminal() -> None:
    """Give the child SIGINT's default action, as a terminal's foreground job has it.

    A job started in the background by a non-interactive shell (``cmd &``, ``nohup``) has
    SIGINT ignored, and an ignored signal stays ignored across ``exec``: Python then installs no
    KeyboardInterrupt handler and Ctrl-C cannot reach the grid. Run from such a shell, the test
    would time out for a reason that is not jacrl's (it did, in round 0.2).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.integration
def test_ctrl_c_on_compare_ends_with_one_line(tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it, while the grid's run
    process trains: one line on stderr, exit code 130, no traceback from parent or child, and the
    child's run-folder lock released."""
    argv = [sys.executable, "-m", "jacrl.cli", "compare", "--env", "CartPole-v1",
            "--agents", "jacobian", "--seeds", "1", "--steps", "200000", "--workers", "1",
            "--no-progress", "--log-root", str(tmp_path)]  # fmt: skip
    grid = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_as_in_a_terminal)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        events = []
        while not events and time.monotonic() < deadline:  # the run is training
            events = list(tmp_path.glob("CartPole-v1/jacobian_*/events.out.tfevents.*"))
            time.sleep(0.5)
        assert events, "the run did not start"
        os.killpg(grid.pid, signal.SIGINT)
        _, err = grid.communicate(timeout=120)
    finally:
        if grid.poll() is None:
            os.killpg(grid.pid, signal.SIGKILL)
    assert grid.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("jacrl: interrupted")
    assert not list(tmp_path.glob("CartPole-v1/*.lock")), "a run died holding its lock"
    assert np.all([not (p / "result.json").exists() for p in tmp_path.glob("CartPole-v1/*_*")])
