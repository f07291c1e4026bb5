"""rlcl's PPO against Stable-Baselines3's PPO on CartPole-v1, in one session (issue 6).

    pip install -e ".[bench]"            # stable-baselines3 and torch==2.13.0 (CPU build)
    python benchmarks/bench_sb3.py --seeds 0 1 2 [--out benchmarks/bench_sb3.md]

Three runs per seed, one at a time, alternating so drifts in machine load hit all alike:
* ``rlcl-zoo``: rlcl with the rl-baselines3-zoo CartPole-v1 hyperparameters SB3 uses (8 envs x
  32 steps, batch 256, 1 minibatch, 20 epochs, gamma 0.98, lambda 0.8, clip 0.2, no entropy
  bonus, tanh 64x64 actor and critic), 100,000 steps, with rlcl's optimizer (momentum 0.9,
  lr 0.03 cosine) and its vector CartPole;
* ``rlcl-default``: ``python -m rlcl.train ppo CartPole`` as shipped (rlcl/configs/ppo_cartpole.toml);
* ``sb3``: SB3's PPO with the zoo set (Adam, linearly decaying lr 1e-3 and clip range), which is
  SB3's own tuned CartPole config.
Reported per run, as median (min-max) over seeds:
* env steps/s over the whole training (setup, compilation and the final evaluation excluded);
* the training wall time and env step at which the last-20-episode mean first reaches 475
  (rlcl: read from the run's episodes.csv; SB3: timed in a callback from the start of learn).
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


ZOO = {"num_envs": 8, "num_steps": 32, "num_minibatches": 1, "update_epochs": 20,
       "gamma": 0.98, "gae_lambda": 0.8, "clip_coef": 0.2, "ent_coef": 0.0,
       # SB3's vf_coef 0.5 weighs a plain MSE; rlcl's value loss is 0.5 * MSE, so the same
       # weight is rlcl's 1.0 (issue 10; the results in bench_sb3.md predate this and used 0.5)
       "vf_coef": 1.0,
       "max_grad_norm": 0.5, "hidden_sizes": [64, 64], "activation": "tanh",
       "total_timesteps": STEPS}


def run_rlcl(seed: int, overrides: dict, algo: str = "ppo", env: str = "CartPole") -> dict:
    import csv

    from rlcl.config import build_config, packaged_config, read_toml
    from rlcl.envs import resolve_env
    from rlcl.train import train

    with tempfile.TemporaryDirectory() as runs:
        cfg = build_config({**read_toml(packaged_config(algo, env)),
                            "env_id": resolve_env(env)[0], **overrides,
                            "seed": seed, "runs_dir": runs, "progress": False,
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


def run_alternating(runs: dict, seeds) -> dict:
    """name -> one result per seed; for each seed every run once, in turn, so drifts in
    machine load hit all alike."""
    results = {name: [] for name in runs}
    for seed in seeds:
        for name, run in runs.items():
            results[name].append(run(seed))
            print(f"seed {seed} {name} {results[name][-1]}", file=sys.stderr, flush=True)
    return results


def table(results: dict) -> list[str]:
    """The Markdown rows: steps/s, wall s and env step to 475, seeds reaching it."""
    lines = ["| run | env steps/s | wall s to last-20 mean 475 | env step at 475 | "
             "seeds reaching 475 |", "|---|---|---|---|---|"]
    for name, rows in results.items():
        lines.append(f"| {name} | {summarise(r['sps'] for r in rows)} | "
                     f"{summarise(r['to_475_s'] for r in rows)} | "
                     f"{summarise(r['to_475_step'] for r in rows)} | "
                     f"{sum(r['to_475_s'] is not None for r in rows)}/{len(rows)} |")
    return lines


def publish(lines: list[str], out: str | None, seeds) -> None:
    """Print the table and append it, dated, to OUT."""
    text = "\n".join(lines)
    print(text)
    if out:
        with open(out, "a") as fh:
            fh.write(f"\n{time.strftime('%Y-%m-%d %H:%M')}, seeds {seeds}\n\n{text}\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out")
    args = ap.parse_args()
    runs = {"rlcl-zoo": lambda seed: run_rlcl(seed, ZOO),  # on the shipped config's device env
            "rlcl-default": lambda seed: run_rlcl(seed, {}),
            "sb3": run_sb3}
    results = run_alternating(runs, args.seeds)
    lines = table(results)
    med = {name: statistics.median(r["sps"] for r in rows) for name, rows in results.items()}
    reach = {name: [r["to_475_s"] for r in rows if r["to_475_s"] is not None]
             for name, rows in results.items()}
    lines.append("")
    lines.append(f"same hyperparameters, rlcl-zoo/sb3 env steps/s (medians): "
                 f"{med['rlcl-zoo'] / med['sb3']:.2f} (target >= 8)")
    for name in ("rlcl-default", "rlcl-zoo"):
        if reach[name] and reach["sb3"]:
            ratio = statistics.median(reach[name]) / statistics.median(reach["sb3"])
            lines.append(f"{name}/sb3 wall time to 475 (medians): {ratio:.2f}"
                         + (" (target <= 0.2)" if name == "rlcl-default" else ""))
    publish(lines, args.out, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
