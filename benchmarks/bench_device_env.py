"""Issue 11: rlcl's device envs (the rollout in one launch) against the host path, and, with
--peers, beside SB3's zoo PPO and PureJaxRL, in one session.

    python benchmarks/bench_device_env.py --seeds 0 1 2 [--peers] [--out benchmarks/bench_device_env.md]

Runs alternate per seed, so drifts in machine load hit all alike:
* ``ppo-device``: ``python -m rlcl.train ppo CartPole`` as shipped (env_backend = "device");
* ``ppo-gymnasium``: the same config on the host path (one gymnasium CartPole per env);
* ``a2c-device`` / ``a2c-gymnasium``: the shipped A2C CartPole config, 100,000 steps;
* ``ppo-acrobot-*`` / ``ppo-pendulum-*``: the shipped PPO configs on either backend, 50,000
  steps (steps/s only: the 475 column is CartPole's);
* with --peers: ``sb3`` (benchmarks/bench_sb3.py's zoo PPO; needs the bench extra) and
  ``purejaxrl`` (``bash ../shared/peers/purejaxrl/bench.sh``, its own config; its compile time
  is reported apart).
Reported: env steps/s over training, and training seconds to a last-20 mean of 475 (CartPole).
Add ``--profile`` to a single ``python -m rlcl.train`` run to see where the time goes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_sb3 import publish, run_alternating, run_rlcl, run_sb3, table  # noqa: E402

PEER = Path(__file__).resolve().parents[1] / ".." / "shared" / "peers" / "purejaxrl" / "bench.sh"


def run_purejaxrl(seed: int, config: str = "purejaxrl", seeds: int = 1) -> dict:
    """SEEDS PureJaxRL agents (vmapped) with its CONFIG (the script seeds its own agents: SEED
    only labels the run's turn in the alternation)."""
    out = subprocess.run(["bash", str(PEER), "--config", config, "--seeds", str(seeds)],
                         capture_output=True, text=True, check=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    return {"sps": row["steps_per_s_all_agents"], "to_475_s": row.get("s_to_475_median"),
            "to_475_step": row.get("step_at_475_median"), "compile_s": row.get("compile_s")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--peers", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    a2c = {"algo": "a2c", "total_timesteps": 100_000}
    runs = {"ppo-device": lambda s: run_rlcl(s, {}),
            "ppo-gymnasium": lambda s: run_rlcl(s, {"env_backend": "gymnasium"}),
            "a2c-device": lambda s: run_rlcl(s, a2c, "a2c"),
            "a2c-gymnasium": lambda s: run_rlcl(s, {**a2c, "env_backend": "gymnasium"}, "a2c")}
    for env in ("Acrobot", "Pendulum"):  # steps/s only: 50,000 of their 200,000 steps
        short = {"total_timesteps": 50_000}
        for backend in ("device", "gymnasium"):
            runs[f"ppo-{env.lower()}-{backend}"] = (
                lambda s, e=env, b=backend: run_rlcl(s, {**short, "env_backend": b}, "ppo", e))
    if args.peers:
        runs.update({"sb3": run_sb3, "purejaxrl": run_purejaxrl})
    results = run_alternating(runs, args.seeds)
    med = {name: statistics.median(r["sps"] for r in rows) for name, rows in results.items()}
    lines = [*table(results), "",
             f"ppo device/gymnasium steps/s: {med['ppo-device'] / med['ppo-gymnasium']:.2f}",
             f"a2c device/gymnasium steps/s: {med['a2c-device'] / med['a2c-gymnasium']:.2f}",
             *(f"ppo {env} device/gymnasium steps/s: "
               f"{med[f'ppo-{env}-device'] / med[f'ppo-{env}-gymnasium']:.2f}"
               for env in ("acrobot", "pendulum"))]
    publish(lines, args.out, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
