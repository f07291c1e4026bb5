"""Sweeps behind the CartPole defaults of PPO (issue 2) and A2C (issue 3): momentum, Nesterov,
lr, lr_min, epochs, minibatches and envs x steps, each over several seeds at the config's
default budget (PPO 100,000 env steps, A2C 500,000).

    python benchmarks/sweep_cartpole.py --algo ppo --seeds 0 1 2 3 4 --grid full \
        --out benchmarks/sweep_ppo_cartpole.md

Each row: the greedy evaluation mean (20 episodes) per seed, the minimum over seeds, and the
median env step at which the last-20-episode training mean first reached 475. Runs go one at a
time (the machine has 2 cores). Results are printed as a markdown table and appended to --out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from rlcl.config import build_config, packaged_config, read_toml
from rlcl.train import train

GRIDS = {
    "quick": [{}],
    "a2c": [
        {},
        {"learning_rate": 0.003}, {"learning_rate": 0.03},
        {"momentum": 0.8}, {"momentum": 0.95},
        {"nesterov": True},
        {"lr_min": 0.001},
        {"num_envs": 16, "num_steps": 5}, {"num_envs": 8, "num_steps": 10},
    ],
    "full": [
        {},
        {"learning_rate": 0.01}, {"learning_rate": 0.1},
        {"momentum": 0.8}, {"momentum": 0.95},
        {"nesterov": True},
        {"lr_min": 0.003},
        {"update_epochs": 10},
        {"num_minibatches": 4},
        {"num_envs": 4, "num_steps": 64},
        {"num_envs": 16, "num_steps": 16},
    ],
}


def first_reach(episodes, threshold=475.0, window=20):
    rets = [r for _, r, _ in episodes]
    for i in range(window, len(rets) + 1):
        if sum(rets[i - window : i]) / window >= threshold:
            return episodes[i - 1][0]
    return None


def run(algo: str, overrides: dict, seeds: list[int], runs_dir: str) -> dict:
    base = read_toml(packaged_config(algo, "CartPole"))
    evals, reach, walls = [], [], []
    for seed in seeds:
        cfg = build_config({**base, **overrides, "algo": algo, "seed": seed,
                            "runs_dir": runs_dir, "progress": False})
        res = train(cfg)
        evals.append(res.summary["eval_mean_return"])
        reach.append(first_reach(res.episodes))
        walls.append(res.summary["wall_seconds"])
    reached = [r for r in reach if r is not None]
    return {"evals": evals, "min": min(evals), "reach_median": statistics.median(reached)
            if reached else None, "reached": len(reached), "wall": statistics.median(walls)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--algo", choices=["ppo", "a2c"], default="ppo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--grid", choices=GRIDS, default="quick")
    ap.add_argument("--out")
    ap.add_argument("--start", type=int, default=0, help="skip the first START grid rows")
    args = ap.parse_args()
    header = ("| overrides | greedy eval per seed | min | seeds reaching 475 (train) | "
              "median step to 475 | median wall s |\n|---|---|---|---|---|---|")
    print(header, flush=True)
    lines = [header]
    with tempfile.TemporaryDirectory() as runs_dir:
        for overrides in GRIDS[args.grid][args.start :]:
            r = run(args.algo, overrides, args.seeds, runs_dir)
            name = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"
            line = (f"| {name} | {' '.join(f'{e:.0f}' for e in r['evals'])} | {r['min']:.0f} | "
                    f"{r['reached']}/{len(args.seeds)} | {r['reach_median'] or '-'} | "
                    f"{r['wall']:.1f} |")
            print(line, flush=True)
            lines.append(line)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(f"\n{args.algo}, {time.strftime('%Y-%m-%d %H:%M')}, seeds {args.seeds}\n\n")
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
