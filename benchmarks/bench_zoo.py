"""Issue 12's headline: rlcl against PureJaxRL with the same hyperparameters (SB3 zoo's
CartPole set: tanh 64x64, 8 envs x 32 steps, 20 epochs of one 256-sample minibatch, 100,000
steps), one agent each, in one benchmark run.

    python benchmarks/bench_zoo.py --seeds 0 1 [--out benchmarks/bench_zoo.md]

Runs alternate (rlcl, PureJaxRL, rlcl, ...), so drifts in the machine's speed hit both alike:
* ``rlcl-zoo``: benchmarks/bench_sb3.py's ZOO overrides on the shipped PPO CartPole config
  (its device env and optimizer: Momentum, cosine lr), ``python -m rlcl.train`` in-process;
* ``purejaxrl-zoo``: ``bash ../shared/peers/purejaxrl/bench.sh --config zoo --seeds 1``
  (its compile time excluded, as rlcl's setup is).
A short rlcl run first fills PoCL's kernel cache (a first launch compiles). Reported: env
steps/s over training and the time to a last-20 mean of 475, the ratio of the
medians, and the CPU model. Target: ratio >= 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_device_env import run_purejaxrl  # noqa: E402
from bench_sb3 import ZOO, publish, run_alternating, run_rlcl, table  # noqa: E402
from roofline import cpu_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out")
    args = ap.parse_args()
    runs = {"rlcl-zoo": lambda seed: run_rlcl(seed, ZOO),
            "purejaxrl-zoo": lambda seed: run_purejaxrl(seed, "zoo")}
    # PoCL compiles each kernel for each launch shape at its first launch and caches it on
    # disk: a short run first, so that no timed run pays that (PureJaxRL's compile time is
    # excluded by its script)
    run_rlcl(args.seeds[0], {**ZOO, "total_timesteps": 2048})
    results = run_alternating(runs, args.seeds)
    med = {name: statistics.median(r["sps"] for r in rows) for name, rows in results.items()}
    lines = [f"CPU: {cpu_model()}", "", *table(results), "",
             f"rlcl-zoo / purejaxrl-zoo env steps/s (medians): "
             f"{med['rlcl-zoo'] / med['purejaxrl-zoo']:.2f} (target >= 1)"]
    publish(lines, args.out, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
