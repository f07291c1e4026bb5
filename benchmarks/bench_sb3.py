"""rlcl's PPO against Stable-Baselines3's PPO on CartPole-v1, in one session (issue 6).

    pip install -e ".[bench]"            # stable-baselines3 and torch==2.13.0 (CPU build)
    python benchmarks/bench_sb3.py --seeds 0 1 2 [--out benchmarks/bench_sb3.md]

Both libraries train with the rl-baselines3-zoo CartPole-v1 set (8 envs x 32 steps, batch 256,
20 epochs, gamma 0.98, lambda 0.8, clip 0.2, no entropy bonus, 100,000 steps), which is also
rlcl's packaged default; each keeps its own optimizer (rlcl: momentum 0.9 + cosine; SB3 / the
zoo: Adam with linearly decaying lr 1e-3 and clip range). Runs alternate rlcl and SB3 per
seed, one at a time. Reported per library, as median (min-max) over seeds:
* env steps/s over the whole training (setup, compilation and the final evaluation excluded);
* the training wall time and env step at which the last-20-episode mean first reaches 475.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np

TARGET, WINDOW, STEPS = 475.0, 20, 100_000


def first_reach(times_steps_returns):
    """(seconds, env step) where the last-20 mean first reached 475, or (None, None)."""
    rets = [r for _, _, r in times_steps_returns]
    for i in range(WINDOW, len(rets) + 1):
        if np.mean(rets[i - WINDOW : i]) >= TARGET:
            return times_steps_returns[i - 1][0], times_steps_returns[i - 1][1]
    return None, None


def run_rlcl(seed: int) -> dict:
    import csv

    from rlcl.config import build_config, packaged_config, read_toml
    from rlcl.train import train

    with tempfile.TemporaryDirectory() as runs:
        cfg = build_config({**read_toml(packaged_config("ppo", "CartPole")), "seed": seed,
                            "total_timesteps": STEPS, "runs_dir": runs, "progress": False,
                            "eval_episodes": 0, "checkpoint_every": 0})
        result = train(cfg)
        with open(result.run_dir / "episodes.csv") as fh:
            rows = [(float(r[1]), int(r[0]), float(r[2])) for r in list(csv.reader(fh))[1:]]
    seconds, step = first_reach(rows)
    return {"sps": result.summary["fps"], "to_475_s": seconds, "to_475_step": step}


def run_sb3(seed: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class Episodes(BaseCallback):
        def _on_training_start(self) -> None:
            self.t0, self.rows = time.perf_counter(), []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.rows.append((time.perf_counter() - self.t0, self.num_timesteps,
                                      float(info["episode"]["r"])))
            return True

    def linear(start):
        return lambda progress_remaining: progress_remaining * start

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98,
                gae_lambda=0.8, ent_coef=0.0, learning_rate=linear(1e-3),
                clip_range=linear(0.2), seed=seed, verbose=0, device="cpu")
    callback = Episodes()
    start = time.perf_counter()
    model.learn(total_timesteps=STEPS, callback=callback)
    wall = time.perf_counter() - start
    seconds, step = first_reach(callback.rows)
    return {"sps": model.num_timesteps / wall, "to_475_s": seconds, "to_475_step": step}


def summarise(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "never"
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}-{max(values):,.1f})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out")
    args = ap.parse_args()
    results = {"rlcl": [], "sb3": []}
    for seed in args.seeds:  # alternate, so drifts in machine load hit both alike
        results["rlcl"].append(run_rlcl(seed))
        print(f"seed {seed} rlcl {results['rlcl'][-1]}", file=sys.stderr, flush=True)
        results["sb3"].append(run_sb3(seed))
        print(f"seed {seed} sb3  {results['sb3'][-1]}", file=sys.stderr, flush=True)
    lines = ["| library | env steps/s | wall s to last-20 mean 475 | env step at 475 | "
             "seeds reaching 475 |", "|---|---|---|---|---|"]
    for lib, rows in results.items():
        lines.append(f"| {lib} | {summarise(r['sps'] for r in rows)} | "
                     f"{summarise(r['to_475_s'] for r in rows)} | "
                     f"{summarise(r['to_475_step'] for r in rows)} | "
                     f"{sum(r['to_475_s'] is not None for r in rows)}/{len(rows)} |")
    med = {lib: statistics.median(r["sps"] for r in rows) for lib, rows in results.items()}
    reach = {lib: [r["to_475_s"] for r in rows if r["to_475_s"] is not None]
             for lib, rows in results.items()}
    lines.append("")
    lines.append(f"rlcl/SB3 steps/s ratio (medians): {med['rlcl'] / med['sb3']:.2f}")
    if reach["rlcl"] and reach["sb3"]:
        ratio = statistics.median(reach["rlcl"]) / statistics.median(reach["sb3"])
        lines.append(f"rlcl/SB3 wall time to 475 (medians): {ratio:.2f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(f"\n{time.strftime('%Y-%m-%d %H:%M')}, seeds {args.seeds}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
