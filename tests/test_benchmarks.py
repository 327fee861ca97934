"""The benchmarks still run: each script, with the smallest budget its flags allow, exits 0 and
prints its table. (They import jacrl and each other, so an API change can break them silently
between the on-demand runs; these runs measure nothing.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

CASES = {  # case (the script, or script:variant): (arguments, a string its output must contain)
    "learning": (
        "--envs jacrl/DigitsBandit-v0 --configs jacobian,random --seeds 1 --budget 256 "
        "--eval-every 256 --hp n_steps=128 --hp batch_size=64",
        "jacobian",
    ),
    "volume_rule": (
        "--envs CartPole-v1 --variants smooth,random --seeds 1 --budget 512 --evals 1",
        "per seed final",
    ),
    "fourmodes_oracle": ("--updates 20 --eval-every 10 --grid 20", "20: "),
    "fourmodes_oracle:learned": (
        "--critic learned --updates 240 --eval-every 240 --grid 20",
        "critic peak",
    ),
    "soak": ("--steps 512 --env CartPole-v1 --rule volume --param lu", "failed configurations: 0"),
    "throughput": ("--steps 256 --sac-steps 150 --repeats 1", "vs SB3 SAC"),
    "throughput:depth0": (
        "--rows off-policy --sac-steps 150 --repeats 1 --depth 0",
        "JacobianSAC depth 0",
    ),
    "logdet_grad": (
        "--sizes 4 --dtypes float64 --parameterizations inverse --reps 1 --budget 0.05 "
        "--seed-budget 0.05 --agreement-sizes 4",
        "inverse",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs(name: str) -> None:
    args, expected = CASES[name]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name.split(':')[0]}.py"), *args.split()],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout, done.stdout[-3000:]


def test_fourmodes_oracle_refuses_a_budget_it_would_cut_short() -> None:
    """--critic learned trains --eval-every steps at a time: 100 steps in chunks of 30 would
    silently train 90, so the run is refused before anything is built."""
    arguments = ["--critic", "learned", "--updates", "100", "--eval-every", "30"]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "fourmodes_oracle.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "must be a positive multiple of --eval-every" in done.stderr
