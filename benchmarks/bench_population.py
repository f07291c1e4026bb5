"""Issue 13's benchmark: populations of agents trained in one process, beside PureJaxRL's
vmapped agents, in one benchmark run.

    python benchmarks/bench_population.py [--sizes 1 8 64 256] [--repeats 3] [--out FILE.md]

* ``default xN``: ``python -m rlcl.train ppo CartPole --seeds 0-(N-1) --profile`` (the shipped
  config: 16x16, device env, 100,000 steps per agent), N = 1, 8, 64, 256;
* ``purejaxrl-hp x32``: rlcl with PureJaxRL's own CartPole hyperparameters (64x64 tanh, 4 envs
  x 128 steps, 4 epochs x 4 minibatches, gamma 0.99, lambda 0.95, entropy 0.01, clip 0.2,
  vf_coef 0.5, max_grad_norm 0.5, 500,000 steps per agent) on rlcl's own optimizer (Momentum,
  cosine), 32 seeds;
* ``purejaxrl x32``: ``bash ../shared/peers/purejaxrl/bench.sh --config purejaxrl --seeds 32``
  (32 agents vmapped, its compile time excluded as rlcl's setup is).
Each rlcl population runs in its own process (the command line), so its peak RSS is its own
(os.wait4). Reported: aggregate env steps/s over training (population.json's fps), the
process's wall time to finish (setup, training and the 20-episode greedy evaluation of every
agent), the IQM of the greedy evaluations with its 95 % CI, the peak RSS, and the profile.

The default-config rows run ``--repeats`` times, one after the other, and report the median
run's figures with the range of the steps/s: this VM's speed drifts 1.2-1.5x within minutes
(stops 24-28), so one run of a few seconds says as much about the VM as about rlcl. The
repeats must agree on every agent's evaluation returns (the same seeds on the same device give
the same bits); the benchmark fails if they do not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_device_env import run_purejaxrl  # noqa: E402
from roofline import cpu_model  # noqa: E402

PUREJAXRL_HP = {"hidden_sizes": "[64,64]", "num_envs": 4, "num_steps": 128, "update_epochs": 4,
                "num_minibatches": 4, "gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.01,
                "clip_coef": 0.2, "vf_coef": 0.5, "max_grad_norm": 0.5,
                "total_timesteps": 500_000}


def run_population(seeds: int, sets: dict, runs: Path) -> dict:
    """One population through the command line; its figures."""
    argv = [sys.executable, "-m", "rlcl.train", "ppo", "CartPole", "--seeds", f"0-{seeds - 1}",
            "--runs-dir", str(runs), "--no-progress", "--profile",
            *(a for k, v in sets.items() for a in ("--set", f"{k}={v}"))]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{err}")
    (pop,) = [p for p in runs.iterdir() if f"__pop{seeds}__" in p.name]
    index = json.loads((pop / "population.json").read_text())
    ev = index["grid_points"][0]["eval"]
    profile = err[err.index("profile:"):] if "profile:" in err else ""
    return {"agents": seeds, "sps": index["fps"], "train_s": index["wall_seconds"],
            "wall_s": wall, "rss_mib": usage.ru_maxrss / 1024, "iqm": ev["iqm"]["value"],
            "ci": ev["iqm"]["ci"], "at_500": sum(min(a["eval_returns"]) >= 500
                                                 for a in index["agents"]),
            "returns": [a["eval_returns"] for a in index["agents"]],
            "profile": profile.strip(), "summary": out.strip()}


def run_repeated(seeds: int, sets: dict, runs: Path, repeats: int) -> dict:
    """run_population REPEATS times: the median run by steps/s, with every run's steps/s
    ("repeats") and the largest peak RSS; a SystemExit if the runs' returns differ."""
    done = [run_population(seeds, sets, runs / f"r{k}") for k in range(repeats)]
    if any(r["returns"] != done[0]["returns"] for r in done):
        raise SystemExit(f"x{seeds}: repeated runs gave different evaluation returns")
    median = sorted(done, key=lambda r: r["sps"])[(repeats - 1) // 2]
    return {**median, "repeats": [r["sps"] for r in done],
            "rss_mib": max(r["rss_mib"] for r in done)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 64, 256])
    ap.add_argument("--hp-agents", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each default-config row")
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # a first launch compiles each kernel for its shape: fill PoCL's cache first, for the
        # single run's kernels (one agent) and the population's
        run_population(1, {"total_timesteps": 2048}, Path(tmp) / "warm-1")
        run_population(2, {"total_timesteps": 2048}, Path(tmp) / "warm")
        run_population(2, {**PUREJAXRL_HP, "total_timesteps": 2048}, Path(tmp) / "warm-hp")
        for n in args.sizes:
            rows.append(("default", run_repeated(n, {}, Path(tmp) / f"d{n}", args.repeats)))
        hp = run_population(args.hp_agents, PUREJAXRL_HP, Path(tmp) / "hp")
        rows.append(("purejaxrl-hp", {**hp, "repeats": [hp["sps"]]}))
    peer = run_purejaxrl(0, "purejaxrl", seeds=args.hp_agents)
    lines = [f"CPU: {cpu_model()}", f"date: {time.strftime('%Y-%m-%d %H:%M')}", "",
             "| run | agents | aggregate env steps/s | runs: steps/s | training s | "
             "wall s to finish | IQM greedy eval [95% CI] | agents at 500 | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        runs = ", ".join(f"{sps:,.0f}" for sps in r["repeats"])
        lines.append(f"| rlcl {name} | {r['agents']} | {r['sps']:,.0f} | {runs} | "
                     f"{r['train_s']:.1f} | {r['wall_s']:.1f} | {r['iqm']:.1f} "
                     f"[{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] | {r['at_500']} | "
                     f"{r['rss_mib']:,.0f} |")
    lines.append(f"| PureJaxRL own config (vmapped) | {args.hp_agents} | {peer['sps']:,.0f} | "
                 f"| | | | | |")
    lines += ["", f"The default rows: the median of {args.repeats} runs (steps/s), their figures "
              "and its profile; every run's steps/s in the runs column, in the order run."]
    hp = rows[-1][1]
    lines += ["", f"rlcl purejaxrl-hp / PureJaxRL, {args.hp_agents} agents, aggregate env "
              f"steps/s: {hp['sps'] / peer['sps']:.2f} (target > 1)", ""]
    for name, r in rows:
        lines += [f"### rlcl {name} x{r['agents']}: --profile", "```", r["profile"], "```", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(f"# Populations (issue 13)\n\n"
                                  f"`python benchmarks/bench_population.py`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
