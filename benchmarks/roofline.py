"""Issue 12: the update and rollout kernels' achieved GFLOP/s beside the device's measured peak.

    python benchmarks/roofline.py [--device SPEC] [--out benchmarks/roofline.md]

Two shapes, on the CartPole device env: the shipped default (16x16, minibatches of 64) and SB3
zoo's (64x64, one minibatch of 256). For each, one agent runs a few iterations under OpenCL
profiling events, then the separate forward and backward kernels run on minibatch rows; a
kernel's GFLOP/s is its FLOP count over its median device time per launch. FLOP counts are the
multiply-adds of the linear layers (2 per MAC, both networks), the part that scales:
  ac_forward            2 M sum_l IN_l OUT_l
  ac_transpose          none counted (a copy of W transposed, for the deltas)
  ac_backward_deltas    2 M sum_l IN_l OUT_l over layers past each network's first
  ac_backward_params    2 M sum_l (IN_l + 1) OUT_l
  ppo_minibatch         the three above (plus the loss, not counted)
  ppo_step              none counted (the norm and the optimizer step, elementwise)
  update                ppo_minibatch's count over ppo_minibatch's and ppo_step's times: one
                        whole minibatch update
  rollout_classic       2 (T + 1) N sum_l IN_l OUT_l (both networks' forward per env step)
The peak comes from benchmarks/peak_flops.cl (independent float8 multiply-add chains, no fusion;
the best of several chain counts) on the same device: one work-group per compute unit, each of
1 work-item. The table is for one core (the basic device, the kernels' own speed); the default
device rule runs the zoo shape on pthread, both networks at once (rlcl/device_choice.py).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyopencl as cl

from rlcl.agents.ppo import PPO
from rlcl.config import build_config, packaged_config, read_toml
from rlcl.device import Device
from rlcl.train import make_agent

SHAPES = {
    "default (16x16, M=64, 3x4 updates)": {},
    "zoo (64x64, M=256, 20x1 updates)": {"hidden_sizes": [64, 64], "num_minibatches": 1,
                                         "update_epochs": 20},
}
KERNELS = ("update", "ppo_minibatch", "ppo_step", "ac_forward", "ac_transpose",
           "ac_backward_deltas", "ac_backward_params", "rollout_classic")


def cpu_model() -> str:
    """lscpu's model name, family and model (a VM may show only "AMD EPYC"), and AVX-512."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or "unknown"
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    get = lambda key: info.get(key, "?").strip()  # noqa: E731
    avx = "AVX-512" if "avx512f" in get("Flags") else "AVX2" if "avx2" in get("Flags") else ""
    return f"{get('Model name')} (family {get('CPU family')} model {get('Model')}, {avx})"


def peak_gflops(device: Device, iters: int = 100000) -> tuple[float, int]:
    """(best GFLOP/s, its chain count) of peak_flops.cl over a few chain counts, all compute
    units busy (8 one-item work-groups each: PoCL pthread hands work-groups out in packets)."""
    source = (Path(__file__).parent / "peak_flops.cl").read_text()
    units = 8 * device.device.max_compute_units  # work-groups: enough for every core
    out = cl.Buffer(device.context, cl.mem_flags.WRITE_ONLY, 4 * units)
    best = (0.0, 0)
    for chains in (8, 10, 12, 14, 16):
        kernel = cl.Program(device.context, source).build(options=[f"-DCHAINS={chains}"])
        kernel = kernel.peak_flops
        kernel(device.queue, (units,), (1,), out, np.int32(100)).wait()  # compile the shape
        for _ in range(3):
            t0 = time.perf_counter()
            kernel(device.queue, (units,), (1,), out, np.int32(iters)).wait()
            rate = units * iters * chains * 8 * 2 / (time.perf_counter() - t0) / 1e9
            best = max(best, (rate, chains))
    return best


def median_times(device: Device) -> dict:
    """name -> the median device seconds of its launches since the last collect: this VM's
    speed drifts by 20 % and more within a run, and a median keeps the slow stretches out."""
    launches: dict[str, list[float]] = {}
    for name, seconds in device.collect_launches():
        launches.setdefault(name, []).append(seconds)
    return {name: float(np.median(times)) for name, times in launches.items()}


def kernel_times(device: Device, overrides: dict, fuse: bool, iterations: int = 12):
    """(name -> median device seconds per launch, config, policy): the training kernels over
    ITERATIONS iterations after one warm-up, then the separate forward and backward kernels
    on minibatch rows."""
    PPO.FUSE = fuse
    cfg = build_config({**read_toml(packaged_config("ppo", "CartPole")), "seed": 0,
                        **overrides})
    envs, policy, _, rollout, agent = make_agent(cfg, device)
    envs.reset(cfg.seed)
    rng = np.random.default_rng(0)
    for it in range(iterations + 1):
        if it == 1:  # the first iteration compiles each launch shape
            device.collect_launches()
        rollout.collect(envs, None, policy, cfg.seed, it, 0)
        rollout.compute_gae(cfg.gamma, cfg.gae_lambda)
        agent.update(rng)
    times = median_times(device)  # the separate kernels on minibatch rows only (not the churn's)
    for _ in range(100):
        policy.evaluate(cfg.minibatch_size)
        policy.backward(cfg.minibatch_size)
    return {**times, **median_times(device)}, cfg, policy


def flops(cfg, policy) -> dict:
    layers = policy.actor.layers + policy.critic.layers
    firsts = {id(policy.actor.layers[0]), id(policy.critic.layers[0])}
    macs = sum(layer.n_in * layer.n_out for layer in layers)
    deltas = sum(layer.n_in * layer.n_out for layer in layers if id(layer) not in firsts)
    params = sum((layer.n_in + 1) * layer.n_out for layer in layers)
    M = cfg.minibatch_size
    out = {"ac_forward": 2 * M * macs, "ac_backward_deltas": 2 * M * deltas,
           "ac_backward_params": 2 * M * params,
           "rollout_classic": 2 * (cfg.num_steps + 1) * cfg.num_envs * macs}
    out["ppo_minibatch"] = out["ac_forward"] + out["ac_backward_deltas"] + out["ac_backward_params"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device")
    ap.add_argument("--out")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    device = Device(args.device, profile=True)
    # ROUNDS rounds of everything: this VM's speed drifts within a run, so a kernel's time is
    # its fastest round's median and the peak the best round's, the machine at its speed
    peak, chains, best = 0.0, 0, {}
    for _ in range(args.rounds):
        peak, chains = max((peak, chains), peak_gflops(device))
        for shape, overrides in SHAPES.items():
            times, cfg, policy = kernel_times(device, overrides, fuse=True)
            if "ppo_minibatch" in times and "ppo_step" in times:
                times["update"] = times["ppo_minibatch"] + times["ppo_step"]
            old = best.get(shape, ({}, cfg, policy))[0]
            best[shape] = ({k: min(v, old.get(k, v)) for k, v in times.items()}, cfg, policy)
    lines = [f"{time.strftime('%Y-%m-%d %H:%M')}: {cpu_model()}, OpenCL device "
             f"{device.device.name.strip()} ({device.device.max_compute_units} compute units, "
             f"TILE_COLS {device.tile_cols}); measured peak {peak:.1f} GFLOP/s "
             f"(benchmarks/peak_flops.cl, {chains} chains); best of {args.rounds} rounds", "",
             "| shape | kernel | us per launch | GFLOP/s | fraction of peak |", "|---|---|---|---|---|"]
    for shape, (times, cfg, policy) in best.items():
        counts = flops(cfg, policy)
        counts["update"] = counts["ppo_minibatch"]
        for name in KERNELS:
            if name in times and name not in counts:
                lines.append(f"| {shape} | {name} | {times[name] * 1e6:.1f} | - | - |")
            elif name in times:
                rate = counts[name] / times[name] / 1e9
                lines.append(f"| {shape} | {name} | {times[name] * 1e6:.1f} | {rate:.1f} | "
                             f"{rate / peak:.0%} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
