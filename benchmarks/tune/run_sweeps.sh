#!/usr/bin/env bash
# The studies behind rlcl/configs/ppo_mountaincarcontinuous.toml and a2c_pendulum.toml
# (issue 14), then each winner trained on seeds 0-4 at the study's budget. Results:
# benchmarks/tune/README.md. About 40 minutes on 2 cores (4 + 2 + 26 minutes of trials, 2 of
# checks); RUNS (default runs/sweeps) gets the study folders.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs/sweeps}
"$PY" -m rlcl.tune ppo MountainCarContinuous-v0 --trials 40 --seeds 0-3 \
    --total-timesteps 100000 --set env_backend=device --set eval_episodes=5 --sampler-seed 0 \
    --runs-dir "$RUNS" --no-progress
# A2C on Pendulum: the first study (300,000 steps, a wide space) found nothing that learned;
# the second, 1,000,000 steps and a space drawn from a small grid, found the shipped config
"$PY" -m rlcl.tune a2c Pendulum --trials 30 --seeds 0-3 --total-timesteps 300000 \
    --space benchmarks/tune/a2c_pendulum_wide.toml --set env_backend=device \
    --set norm_reward=true --set eval_episodes=5 --sampler-seed 0 --runs-dir "$RUNS" --no-progress
"$PY" -m rlcl.tune a2c Pendulum --study a2c_Pendulum-v1_1M --trials 24 --seeds 0-3 \
    --total-timesteps 1000000 --space benchmarks/tune/a2c_pendulum_space.toml \
    --set env_backend=device --set norm_reward=true --set gamma=0.9 --set eval_episodes=5 \
    --sampler-seed 0 --runs-dir "$RUNS" --no-progress
"$PY" -m rlcl.train ppo MountainCarContinuous-v0 --seeds 0-4 --no-progress \
    --config "$RUNS/tune/ppo_MountainCarContinuous-v0/best.toml" --runs-dir "$RUNS/check"
"$PY" -m rlcl.train a2c Pendulum --seeds 0-4 --no-progress \
    --config "$RUNS/tune/a2c_Pendulum-v1_1M/best.toml" --runs-dir "$RUNS/check"
