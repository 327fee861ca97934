#!/usr/bin/env bash
# The main job: install jacrl, then train the Jacobian agent and SB3's PPO (rl-baselines3-zoo's
# preset) side by side on CartPole-v1 (seed 0, 50k env steps each, deterministic evaluation every
# 5k steps on a separate env), logging to runs/, and print the comparison table and where the
# learning-curve PNG is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
STEPS=${STEPS:-50000}
jacrl compare --env CartPole-v1 --agents jacobian,ppo --seeds 1 --steps "$STEPS" \
  --eval-every $((STEPS / 10)) --eval-episodes 10 --workers 2 --no-progress
cat <<'TXT'

The table compares the final deterministic evaluation of the Jacobian agent (the density rule
on the invertible policy) with PPO's after the same number of env steps, and how soon each first
reached CartPole's threshold of 475; one seed says little, so `jacrl compare ... --seeds 5` gives
the IQM with a bootstrap CI. The learning curves are in runs/compare/CartPole-v1/curves_CartPole-v1.png.
Both runs are in runs/CartPole-v1/ (jacobian_0, ppo_0). To watch them in TensorBoard:
  .venv/bin/tensorboard --logdir runs
and open http://localhost:6006 (rollout/ep_rew_mean, eval/mean_reward, jacobian/*).
Running this script again reuses the finished runs (same configuration) and prints the table again.
TXT
