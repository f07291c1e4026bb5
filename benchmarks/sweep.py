"""Sweeps behind rlcl's tuned configs: each grid row is run over several seeds at the config's
default budget, one run at a time (the machine has 2 cores).

    python benchmarks/sweep.py ppo CartPole --grid cartpole --out benchmarks/sweep_ppo_cartpole.md
    python benchmarks/sweep.py a2c CartPole --grid a2c_cartpole --seeds 0 1 2 3 4
    python benchmarks/sweep.py ppo Acrobot --seeds 0 1 2 --set learning_rate=0.03   # one row

Each row: the greedy evaluation mean (20 episodes) per seed and their minimum, how many seeds'
last-20-episode training mean reached the env's target, and the median env step where it first
did. Results are printed as a markdown table and appended to --out.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time

from rlcl.config import build_config, packaged_config, parse_override, read_toml
from rlcl.envs import resolve_env
from rlcl.train import train

TARGETS = {"CartPole-v1": 475, "Acrobot-v1": -100, "Pendulum-v1": -250, "LunarLander-v3": 200}

GRIDS = {
    "default": [{}],
    "cartpole": [  # issue 2: momentum, Nesterov, lr, lr_min, epochs, minibatches, envs x steps
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
    "fast_cartpole": [  # issue 6: the cheap default and its neighbours
        {},
        {"update_epochs": 2}, {"update_epochs": 5},
        {"num_minibatches": 2}, {"num_minibatches": 8, "update_epochs": 2},
        {"learning_rate": 0.02}, {"learning_rate": 0.05},
        {"hidden_sizes": [32]}, {"hidden_sizes": [64, 64]},
        {"num_envs": 16, "num_steps": 16},
        {"env_backend": "gymnasium"},
        {"hidden_sizes": [64, 64], "num_minibatches": 1, "update_epochs": 20},  # issue 2's
    ],
    "a2c_cartpole": [
        {},
        {"learning_rate": 0.003}, {"learning_rate": 0.03},
        {"momentum": 0.8}, {"momentum": 0.95},
        {"nesterov": True},
        {"lr_min": 0.001},
        {"num_envs": 16, "num_steps": 5}, {"num_envs": 8, "num_steps": 10},
    ],
}


def first_reach(episodes, threshold: float, window: int = 20):
    rets = [r for _, r, _ in episodes]
    for i in range(window, len(rets) + 1):
        if sum(rets[i - window : i]) / window >= threshold:
            return episodes[i - 1][0]
    return None


def run(algo: str, env_id: str, base: dict, overrides: dict, seeds: list[int],
        runs_dir: str) -> dict:
    evals, reach, walls, reach_s = [], [], [], []
    for seed in seeds:
        cfg = build_config({**base, **overrides, "algo": algo, "env_id": env_id, "seed": seed,
                            "runs_dir": runs_dir, "progress": False})
        res = train(cfg)
        evals.append(res.summary["eval_mean_return"])
        reach.append(first_reach(res.episodes, TARGETS.get(env_id, float("inf"))))
        walls.append(res.summary["wall_seconds"])
        if reach[-1] is not None:  # the training wall time of that episode (episodes.csv)
            with open(res.run_dir / "episodes.csv") as fh:
                rows = list(csv.reader(fh))[1:]
            reach_s.append(next(float(r[1]) for r in rows if int(r[0]) == reach[-1]))
    reached = [r for r in reach if r is not None]
    return {"evals": evals, "min": min(evals), "reach_median": statistics.median(reached)
            if reached else None, "reached": len(reached), "wall": statistics.median(walls),
            "reach_s": statistics.median(reach_s) if reach_s else None}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("algo", choices=["ppo", "a2c"])
    ap.add_argument("env")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--grid", choices=GRIDS, default="default")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE for every row")
    ap.add_argument("--start", type=int, default=0, help="skip the first START grid rows")
    ap.add_argument("--out")
    args = ap.parse_args()
    env_id, alias = resolve_env(args.env)
    path = packaged_config(args.algo, alias) or packaged_config(args.algo, "generic")
    base = {**read_toml(path), **dict(parse_override(s) for s in args.set)}
    target = TARGETS.get(env_id, "-")
    header = (f"| overrides | greedy eval per seed | min | seeds reaching {target} (train) | "
              "median step to it | median wall s to it | median wall s |\n"
              "|---|---|---|---|---|---|---|")
    print(header, flush=True)
    lines = [header]
    with tempfile.TemporaryDirectory() as runs_dir:
        for overrides in GRIDS[args.grid][args.start :]:
            r = run(args.algo, env_id, base, overrides, args.seeds, runs_dir)
            name = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "base"
            line = (f"| {name} | {' '.join(f'{e:.0f}' for e in r['evals'])} | {r['min']:.0f} | "
                    f"{r['reached']}/{len(args.seeds)} | {r['reach_median'] or '-'} | "
                    f"{'-' if r['reach_s'] is None else format(r['reach_s'], '.2f')} | "
                    f"{r['wall']:.1f} |")
            print(line, flush=True)
            lines.append(line)
    if args.out:
        with open(args.out, "a") as fh:
            sets = f", --set {' '.join(args.set)}" if args.set else ""
            fh.write(f"\n{args.algo} {env_id} ({path.name}{sets}), "
                     f"{time.strftime('%Y-%m-%d %H:%M')}, seeds {args.seeds}\n\n")
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
