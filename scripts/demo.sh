#!/usr/bin/env bash
# The main job: install jacrl, then train the Jacobian agent and SB3's PPO on CartPole-v1
# (seed 0, 50k env steps each, deterministic evaluation every 10k steps), logging to runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
STEPS=${STEPS:-50000}
jacrl train --agent jacobian --env CartPole-v1 --steps "$STEPS" --seed 0 --eval-every 10000
jacrl train --agent ppo --env CartPole-v1 --steps "$STEPS" --seed 0 --eval-every 10000
cat <<'TXT'

Both runs are in runs/CartPole-v1/ (jacobian_0, ppo_0). To watch them side by side:
  .venv/bin/tensorboard --logdir runs
and open http://localhost:6006 (rollout/ep_rew_mean, eval/mean_reward, jacobian/*).
TXT
