"""Training throughput and peak memory: jacrl's learners vs SB3's, measured side by side.

Rows (each cell the median of ``--repeats`` timed ``learn`` calls, the two learners interleaved
so that a change in machine load hits both alike; one torch thread):

- **on-policy**, CartPole-v1, JacobianAgent vs SB3 PPO with the same sizes (64-64 tanh lift/policy
  MLP, 64-64 value MLP) and update settings: 1 env with SB3's PPO defaults (n_steps 2048, batch
  64, 10 epochs) and 8 envs with the zoo's CartPole settings (n_steps 32, batch 256, 20 epochs).
  Env steps/s; targets: >= 2× SB3 PPO (issue #16).
- **off-policy**, Pendulum-v1, JacobianSAC vs SB3 SAC at SB3 SAC's defaults (256-256 actor lift
  and Q-networks, batch 256, one gradient step per env step), ``learning_starts`` 100 for both.
  Gradient steps/s = (steps − learning_starts) / time of the whole ``learn`` (the env steps and
  the acting are inside it, alike for both); targets: >= 1× (issue #14) and >= 2× (issue #16).
  ``--depth`` sets F's blocks for both jacrl learners: ``--depth 0`` (the Gaussian on the lift)
  against the default 3 measures what F itself costs in each ratio.
- ``--grid``: each env of the README grid with the agents' shipped presets (``jacobian`` vs
  ``ppo``, ``jacrl train``'s settings), env steps/s; target >= 1× (issue #16).

Every timed run is a fresh process (spawned: nothing shared with the previous run), which builds
the learner (not timed) and times ``learn`` from its first step, so any one-time cost of the run
(first allocations, warm-up) is inside the time. Each cell reports

- env (or gradient) steps per second of wall time, the figure the targets are about;
- the same per second of the process's CPU time (``time.process_time``): on a shared machine the
  wall time includes waiting for a core, the CPU time does not, so the CPU ratio is the steadier
  one when other work runs;
- the peak resident set size of the process (``resource.getrusage``'s ``ru_maxrss``: interpreter,
  torch, the learner and its buffers), median over the repeats.

    python benchmarks/throughput.py --steps 16384 --repeats 3
    python benchmarks/throughput.py --rows off-policy --sac-steps 3000
    python benchmarks/throughput.py --rows off-policy --sac-steps 3000 --depth 0
    python benchmarks/throughput.py --rows grid --steps 8192
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Any

ON_POLICY = {
    "1 env (SB3 defaults)": dict(n_envs=1, n_steps=2048, batch_size=64, n_epochs=10),
    "8 envs (zoo CartPole)": dict(n_envs=8, n_steps=32, batch_size=256, n_epochs=20),
}
#: the envs of the README's grid (``jacrl compare``), run with the agents' presets
GRID = ("CartPole-v1", "jacrl/DigitsBandit-v0", "Pendulum-v1", "jacrl/Reach-v0")
OFF_POLICY_ENV = "Pendulum-v1"
LEARNING_STARTS = 100
ROWS = ("on-policy", "off-policy", "grid")


@dataclass(frozen=True)
class Measure:
    """One timed ``learn``: wall and CPU seconds, the units it did, peak RSS in MiB."""

    wall: float
    cpu: float
    units: int
    peak_rss_mib: float


def _build(spec: dict[str, Any]) -> Any:
    """The learner a spec describes (imports inside: this runs in the child)."""
    from jacrl.common.threads import use_threads

    use_threads(1)
    kind = spec["kind"]
    if kind == "jacobian":
        from jacrl.agents import JacobianAgent

        return JacobianAgent(spec["env"], seed=0, depth=spec["depth"], **spec["settings"])
    if kind == "ppo":
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_vec_env

        settings = dict(spec["settings"])
        env = make_vec_env(spec["env"], n_envs=settings.pop("n_envs"), seed=0)
        return PPO("MlpPolicy", env, seed=0, device="cpu", **settings)
    if kind == "jacobian-sac":
        from jacrl.agents.sac import JacobianSAC

        return JacobianSAC(
            spec["env"], seed=0, depth=spec["depth"], learning_starts=LEARNING_STARTS, device="cpu"
        )
    if kind == "sac":
        from stable_baselines3 import SAC

        return SAC("MlpPolicy", spec["env"], seed=0, learning_starts=LEARNING_STARTS, device="cpu")
    # a README-grid cell: the agent's shipped preset, as `jacrl train` builds it
    from jacrl.agents.registry import get_agent
    from jacrl.train import resolve_config

    assert kind == "preset", kind
    run, hp = resolve_config(spec["agent"], spec["env"], spec["steps"])
    model, _ = get_agent(spec["agent"]).make(
        spec["env"], hp, n_envs=run["n_envs"], normalize=run["normalize"], seed=0
    )
    return model


def _measure(spec: dict[str, Any]) -> Measure:
    """Build the learner, then time ``learn(steps)`` (runs in a fresh child process)."""
    learner = _build(spec)
    steps = spec["steps"]
    wall, cpu = time.perf_counter(), time.process_time()
    learner.learn(steps)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    units = steps - LEARNING_STARTS if spec["kind"] in ("jacobian-sac", "sac") else steps
    # ru_maxrss is in KiB on Linux
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Measure(wall, cpu, units, peak)


def measure(spec: dict[str, Any]) -> Measure:
    """:func:`_measure` in a fresh spawned process, so its peak RSS is this run's alone."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure, (spec,))


@dataclass(frozen=True)
class Cell:
    """The medians over the repeats of one learner in one row."""

    wall_rate: float
    cpu_rate: float
    peak_rss_mib: float

    @classmethod
    def of(cls, measures: list[Measure]) -> Cell:
        return cls(
            statistics.median(m.units / m.wall for m in measures),
            statistics.median(m.units / m.cpu for m in measures),
            statistics.median(m.peak_rss_mib for m in measures),
        )


def compare(ours: dict[str, Any], theirs: dict[str, Any], repeats: int) -> tuple[Cell, Cell]:
    """Both learners ``repeats`` times, interleaved."""
    runs = [(measure(ours), measure(theirs)) for _ in range(repeats)]
    return Cell.of([r[0] for r in runs]), Cell.of([r[1] for r in runs])


HEADER = (
    f"{'row':<30}{'wall: ours':>11}{'theirs':>8}{'ratio':>7}{'cpu: ours':>11}{'theirs':>8}"
    f"{'ratio':>7}{'MiB: ours':>11}{'theirs':>8}  targets (wall ratio / cpu ratio)"
)


def row(name: str, ours: Cell, theirs: Cell, targets: str) -> str:
    """One printed row: rates per second of wall and of CPU time, their ratios, peak RSS, and
    each target ``label>=bound`` met or not by the wall ratio and by the CPU ratio."""
    ratio, cpu_ratio = ours.wall_rate / theirs.wall_rate, ours.cpu_rate / theirs.cpu_rate
    verdicts = []
    for target in targets.split(","):
        label, _, bound = target.partition(">=")
        met = ["met" if r >= float(bound) else "NOT met" for r in (ratio, cpu_ratio)]
        verdicts.append(f"{label} >= {bound}×: {met[0]} / {met[1]}")
    return (
        f"{name:<30}{ours.wall_rate:>11.0f}{theirs.wall_rate:>8.0f}{ratio:>7.2f}"
        f"{ours.cpu_rate:>11.0f}{theirs.cpu_rate:>8.0f}{cpu_ratio:>7.2f}"
        f"{ours.peak_rss_mib:>11.0f}{theirs.peak_rss_mib:>8.0f}  {'; '.join(verdicts)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per timed learn")
    parser.add_argument(
        "--sac-steps", type=int, default=3_000, help="env steps per timed off-policy learn"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--env", default="CartPole-v1", help="the on-policy rows' env")
    parser.add_argument(
        "--depth",
        type=int,
        default=3,
        help="blocks of F in JacobianAgent and JacobianSAC (0: the no-F ablation, what F costs)",
    )
    parser.add_argument(
        "--rows",
        default="on-policy,off-policy",
        help=f"comma-separated, of {', '.join(ROWS)} (grid: the README envs with their presets)",
    )
    args = parser.parse_args()
    rows = args.rows.split(",")
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows {unknown}; accepted: {', '.join(ROWS)}")
    if args.depth < 0:
        parser.error(f"--depth must be >= 0, got {args.depth}")
    if args.sac_steps <= LEARNING_STARTS:
        parser.error(f"--sac-steps must exceed learning_starts={LEARNING_STARTS}")

    print(
        f"median of {args.repeats}, one torch thread, each run a fresh process; on-policy: "
        f"{args.env}, {args.steps} env steps, JacobianAgent depth {args.depth}; off-policy: "
        f"{OFF_POLICY_ENV}, {args.sac_steps} env steps ({LEARNING_STARTS} before learning), "
        f"JacobianSAC depth {args.depth}; "
        "rates per second of wall time and of CPU time; MiB = peak RSS of the run's process"
    )
    print(HEADER)
    if "on-policy" in rows:
        for name, settings in ON_POLICY.items():
            common = dict(env=args.env, steps=args.steps, settings=settings)
            ours, theirs = compare(
                dict(kind="jacobian", depth=args.depth, **common),
                dict(kind="ppo", **common),
                args.repeats,
            )
            print(row(f"{name}: vs PPO", ours, theirs, "#16>=2"), flush=True)
    if "off-policy" in rows:
        common = dict(env=OFF_POLICY_ENV, steps=args.sac_steps)
        ours, theirs = compare(
            dict(kind="jacobian-sac", depth=args.depth, **common),
            dict(kind="sac", **common),
            args.repeats,
        )
        print(row("SAC grad steps: vs SB3 SAC", ours, theirs, "#14>=1,#16>=2"), flush=True)
    if "grid" in rows:
        for env_id in GRID:
            common = dict(env=env_id, steps=args.steps)
            ours, theirs = compare(
                dict(kind="preset", agent="jacobian", **common),
                dict(kind="preset", agent="ppo", **common),
                args.repeats,
            )
            print(row(f"{env_id} presets: vs PPO", ours, theirs, "#16>=1"), flush=True)


if __name__ == "__main__":
    main()
