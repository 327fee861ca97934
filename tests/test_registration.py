"""YAML env specs: the shipped ones, user folders, malformed files, and the installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest

import jacrl.envs.registration as registration
from jacrl.common.errors import ConfigError
from jacrl.envs.registration import (
    SPEC_DIR_ENV,
    builtin_spec_dir,
    list_registered,
    load_spec,
    register_envs,
)

REPO = Path(__file__).resolve().parent.parent

USER_SPEC = """\
id: jacrl/TinyArrays-v0
entry_point: jacrl.envs.classification_bandit:ClassificationBandit
kwargs:
  dataset: arrays
  X: [[0.0, 1.0], [1.0, 0.0]]
  y: [0, 1]
max_episode_steps: 7
reward_threshold: 0.5
"""


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Undo what a test registers, so user specs do not leak into other tests."""
    before_gym, before_jacrl = dict(gym.registry), dict(registration._REGISTERED)
    yield
    gym.registry.clear()
    gym.registry.update(before_gym)
    registration._REGISTERED.clear()
    registration._REGISTERED.update(before_jacrl)


def test_shipped_specs_register_idempotently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is overridden
        first, second = register_envs(), register_envs()
    assert first == second
    assert "jacrl/DigitsBandit-v0" in first
    sources = {spec["id"]: spec["source"] for spec in list_registered()}
    assert sources["jacrl/DigitsBandit-v0"] == builtin_spec_dir() / "digits_bandit.yaml"
    assert gym.spec("jacrl/Reach-v0").max_episode_steps == 50
    assert gym.spec("jacrl/DigitsBandit-v0").reward_threshold == 0.8
    assert builtin_spec_dir() == REPO / "envs"  # a source checkout reads the top-level folder


@pytest.mark.usefixtures("clean_registry")
def test_a_user_adds_an_env_by_adding_a_file(tmp_path: Path) -> None:
    (tmp_path / "tiny.yml").write_text(USER_SPEC)
    assert "jacrl/TinyArrays-v0" in register_envs(tmp_path)
    env = gym.make("jacrl/TinyArrays-v0")
    assert env.spec is not None and env.spec.max_episode_steps == 7
    assert env.action_space == gym.spaces.Discrete(2)
    source = {spec["id"]: spec["source"] for spec in list_registered()}["jacrl/TinyArrays-v0"]
    assert source == (tmp_path / "tiny.yml").resolve()
    # editing the file and registering again replaces the old version
    (tmp_path / "tiny.yml").write_text(
        USER_SPEC.replace("max_episode_steps: 7", "max_episode_steps: 9")
    )
    register_envs(tmp_path)
    assert gym.spec("jacrl/TinyArrays-v0").max_episode_steps == 9


@pytest.mark.usefixtures("clean_registry")
def test_user_folders_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tiny.yaml").write_text(USER_SPEC)
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path))
    assert "jacrl/TinyArrays-v0" in register_envs()
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=f"missing.*{SPEC_DIR_ENV}.*not a directory"):
        register_envs()


@pytest.mark.usefixtures("clean_registry")
def test_an_id_may_not_be_claimed_twice(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(USER_SPEC)
    (tmp_path / "b.yaml").write_text(USER_SPEC)
    with pytest.raises(ConfigError, match=r"b\.yaml: field 'id' .*already defined by .*a\.yaml"):
        register_envs(tmp_path)
    (tmp_path / "b.yaml").unlink()
    (tmp_path / "a.yaml").write_text(USER_SPEC.replace("jacrl/TinyArrays-v0", "CartPole-v1"))
    with pytest.raises(ConfigError, match=r"a\.yaml: field 'id' 'CartPole-v1'.*another package"):
        register_envs(tmp_path)


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("entry_point: a.b:C\n", "id", "is required"),
        ("id: jacrl/X-v0\n", "entry_point", "is required"),
        ("id: [1]\nentry_point: a.b:C\n", "id", "must be a string"),
        ("id: 'jacrl/X-v0 bad'\nentry_point: a.b:C\n", "id", "not a valid Gymnasium id"),
        ("id: jacrl/X-v0\nentry_point: a.b.C\n", "entry_point", "must be 'module:Class'"),
        ("id: jacrl/X-v0\nentry_point: a:C\nkwargs: [1, 2]\n", "kwargs", "must be a mapping"),
        ("id: jacrl/X-v0\nentry_point: a:C\nmax_episode_steps: -1\n", "max_episode_steps", ""),
        ("id: jacrl/X-v0\nentry_point: a:C\nmax_episode_steps: '50'\n", "max_episode_steps", ""),
        ("id: jacrl/X-v0\nentry_point: a:C\nmax_episode_steps: true\n", "max_episode_steps", ""),
        ("id: jacrl/X-v0\nentry_point: a:C\nreward_threshold: high\n", "reward_threshold", ""),
        ("id: jacrl/X-v0\nentry_point: a:C\nreward_threshold: .nan\n", "reward_threshold", ""),
        ("id: jacrl/X-v0\nentry_point: a:C\nmax_steps: 5\n", "max_steps", "not a spec field"),
        ("id: jacrl/X-v0\nentry_point: a:C\ndescription: {a: 1}\n", "description", "string"),
    ],
)
def test_malformed_spec_names_file_and_field(
    tmp_path: Path, text: str, field: str, problem: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"field '{field}' .*{problem}") as info:
        load_spec(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "must be a YAML mapping"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("id: [\n", "cannot read"),
    ],
)
def test_unreadable_spec_names_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem) as info:
        load_spec(path)
    assert str(path) in str(info.value)


@pytest.mark.slow
def test_installed_wheel_registers_envs_outside_the_repo(tmp_path: Path) -> None:
    """A non-editable install must find the specs in jacrl/_data/envs (force-included)."""
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", str(REPO), "--no-deps", "-w", str(wheels)], check=True)
    (wheel,) = wheels.glob("jacrl-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    script = textwrap.dedent(
        """
        import gymnasium as gym, jacrl.envs
        from jacrl.envs.registration import builtin_spec_dir
        print(jacrl.envs.__file__, builtin_spec_dir(), sep="\\n")
        env = gym.make("jacrl/DigitsBandit-v0")
        obs, info = env.reset(seed=0)
        print(obs.shape, env.step(info["label"])[1])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop(SPEC_DIR_ENV, None)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    module_file, spec_dir, last = result.stdout.strip().splitlines()
    assert module_file.startswith(str(target))
    assert Path(spec_dir) == target / "jacrl" / "_data" / "envs"
    assert last == "(64,) 1.0"
