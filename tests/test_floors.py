"""The dependency floors pyproject.toml declares are real: pinned all at once
(constraints-floors.txt) they install together in a fresh venv, and jacrl imports and trains there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOORS_FILE = REPO / "constraints-floors.txt"

#: run by the floors venv's python, outside the repository (so it imports the installed jacrl):
#: the installed versions are the pins, every module imports, and agents train, save and load
SMOKE = """
import importlib, importlib.metadata, pkgutil, sys, tempfile
import numpy as np
import torch
torch.set_num_threads(1)

pins = dict(arg.split("==") for arg in sys.argv[1:])
installed = {name: importlib.metadata.version(name).split("+")[0] for name in pins}
assert installed == pins, f"installed {installed}, pinned {pins}"

import jacrl
assert "site-packages" in jacrl.__file__, jacrl.__file__
for module in pkgutil.walk_packages(jacrl.__path__, "jacrl."):
    importlib.import_module(module.name)
from jacrl import JacobianAgent

tiny = dict(n_steps=64, batch_size=32, n_epochs=2, lift_hidden=(16,), value_hidden=(16,))
with tempfile.TemporaryDirectory() as folder:
    agent = JacobianAgent(
        "CartPole-v1", seed=0, learning_rate="lin_0.001", tensorboard_log=folder, **tiny
    ).learn(256)
    loaded = JacobianAgent.load(agent.save(folder + "/agent.zip"), env="CartPole-v1")
    obs = np.zeros((2, 4), dtype=np.float32)
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0],
                          agent.predict(obs, deterministic=True)[0])
    JacobianAgent("jacrl/Reach-v0", seed=0, **tiny).learn(128)  # a Box action space
print("floors ok:", installed)
"""


def floors_pinned() -> dict[str, str]:
    """``name -> version`` of the ``name==version`` lines of constraints-floors.txt."""
    pins = {}
    for line in FLOORS_FILE.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[normalized(name)] = version
    return pins


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_pins_are_the_floors_pyproject_declares() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {}
    for requirement in dependencies:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+).*", requirement)
        assert match, f"{requirement!r} declares no floor (>=)"
        declared[normalized(match[1])] = match[2]
    pins = floors_pinned()
    assert pins.keys() == declared.keys()
    for name, floor in declared.items():  # "6" pins as "6.0"; the pin may not be above the floor
        assert pins[name] == floor or pins[name].startswith(floor + "."), (name, floor, pins[name])


def floors_venv() -> Path:
    """A venv with the floors installed, kept under ``~/.cache/jacrl`` and named by the pins'
    hash: the first run fetches them (a few minutes, most of it torch 2.4's CUDA build from PyPI,
    about 5 GB installed), later runs with the same pins reuse it."""
    digest = hashlib.sha256(FLOORS_FILE.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jacrl"
    venv = cache / f"floors-{digest}-py{sys.version_info.major}{sys.version_info.minor}"
    if (venv / "complete").exists():
        return venv
    for stale in cache.glob("floors-*"):  # other pins, or an interrupted install
        shutil.rmtree(stale, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = [*pip(venv), "install", "--no-compile", "-c", str(FLOORS_FILE), str(REPO)]
    subprocess.run(install, check=True, timeout=1800)
    (venv / "complete").touch()
    return venv


def pip(venv: Path) -> list[str]:
    return [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]


@pytest.mark.slow
@pytest.mark.integration
def test_the_floors_install_together_and_train(tmp_path: Path) -> None:
    """This checkout of jacrl, installed over the floors, imports, trains, saves and loads."""
    venv = floors_venv()
    reinstall = [*pip(venv), "install", "--no-deps", "--force-reinstall", str(REPO)]
    subprocess.run(reinstall, check=True, timeout=600)
    subprocess.run([*pip(venv), "check"], check=True)  # the pins are consistent
    pins = [f"{name}=={version}" for name, version in floors_pinned().items()]
    smoke = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SMOKE, *pins],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"},
    )
    assert smoke.returncode == 0, smoke.stderr[-4000:]
    assert "floors ok" in smoke.stdout
