"""Issue 12, part 3: what rlcl does on a GPU through its vendor's OpenCL (benchmarks/gpu.md).

    python benchmarks/bench_gpu.py info            # the device, and each kernel's limits there
    python benchmarks/bench_gpu.py bench [--seeds 0 1] [--sizes 8 64 256] [--hp-agents 32]
                                         [--wide 1024]

``info`` prints the OpenCL devices, the chosen device's properties (those rlcl's shapes are
chosen from: compute units, work-group and local-memory limits, preferred vector width,
sub-buffer alignment) and, for every rlcl kernel, the largest work-group it can be launched
with there, its private and local memory (a GPU bounds a work-group by the kernel's registers,
not only by the device's maximum).

``bench`` runs, one at a time, each row printed as it ends (a run cut short keeps the rows so
far): the shipped PPO CartPole (16x16, device env) and SB3 zoo's shape (64x64, one 256-row
minibatch, 20 epochs) as single agents (benchmarks/bench_sb3.run_rlcl), then populations of the
shipped config and one of PureJaxRL's hyperparameters through the command line
(benchmarks/bench_population.run_population, with --profile). benchmarks/gpu.sh runs both on
the GPU machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_population import PUREJAXRL_HP, run_population  # noqa: E402
from bench_sb3 import ZOO, run_rlcl  # noqa: E402

import numpy as np  # noqa: E402
import pyopencl as cl  # noqa: E402

from rlcl.device import Device  # noqa: E402
from rlcl.device_choice import BUILD_OPTIONS, CORRECT_DIVIDE, list_devices  # noqa: E402

DEVICE_PROPERTIES = ("name", "vendor", "version", "driver_version", "max_compute_units",
                     "max_clock_frequency", "max_work_group_size", "max_work_item_sizes",
                     "local_mem_size", "global_mem_size", "preferred_vector_width_float",
                     "native_vector_width_float", "mem_base_addr_align",
                     "profiling_timer_resolution")


def info() -> None:
    print(list_devices())
    device = Device()
    dev = device.device
    print(f"\nchosen: {dev.platform.name.strip()} {dev.platform.version.strip()}")
    for prop in DEVICE_PROPERTIES:
        print(f"  {prop}: {getattr(dev, prop)}")
    print(f"  rlcl tile_cols: {device.tile_cols}, base_align: {device.base_align} bytes")
    print("\n| kernel | max work-group | preferred multiple | private bytes | local bytes |")
    print("|---|---|---|---|---|")
    wg = cl.kernel_work_group_info
    for name in sorted(device.kernels):
        kernel = device.kernels[name]
        row = [kernel.get_work_group_info(what, dev) for what in (
            wg.WORK_GROUP_SIZE, wg.PREFERRED_WORK_GROUP_SIZE_MULTIPLE, wg.PRIVATE_MEM_SIZE,
            wg.LOCAL_MEM_SIZE)]
        print(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    print("\nfloat contract probe:")
    float_probe(device)


PROBE = """
#pragma OPENCL FP_CONTRACT OFF
__kernel void probe(__global const float *x, __global const float *y, __global const float *z,
                    __global float *out, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    float p = x[i] * y[i];
    out[i] = p + z[i];                 /* contracted into an fma only if the pragma is ignored */
    out[n + i] = x[i] / y[i];          /* correctly rounded only with a precise divide */
    out[2 * n + i] = sqrt(fabs(x[i]));
    out[3 * n + i] = exp(x[i]);
    out[4 * n + i] = log(fabs(y[i]));
}
"""


def float_probe(device: Device) -> None:
    """Does the device keep rlcl's float contract: a*b+c unfused under FP_CONTRACT OFF, and
    divides and square roots correctly rounded (with and without the option that asks for
    them)? Compared with numpy's float32 on 2**20 random values."""
    n = 1 << 20
    rng = np.random.default_rng(0)
    x, y, z = (rng.standard_normal(n).astype(np.float32) * 4 for _ in range(3))
    want = [x * y + z, x / y, np.sqrt(np.abs(x)), np.exp(x.astype(np.float64)).astype(np.float32),
            np.log(np.abs(y).astype(np.float64)).astype(np.float32)]
    ctx, queue = device.context, device.queue
    bufs = [cl.Buffer(ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=a)
            for a in (x, y, z)]
    out = np.empty(5 * n, np.float32)
    dst = cl.Buffer(ctx, cl.mem_flags.WRITE_ONLY, out.nbytes)
    for options in ([*BUILD_OPTIONS], [*BUILD_OPTIONS, CORRECT_DIVIDE]):
        prg = cl.Program(ctx, PROBE).build(options=options)
        prg.probe(queue, (n,), None, *bufs, dst, np.int32(n))
        cl.enqueue_copy(queue, out, dst)
        got = out.reshape(5, n)
        counts = [int(np.count_nonzero(got[k] != want[k])) for k in range(5)]
        print(f"  {' '.join(options)}: of {n} values, differing from numpy float32: "
              f"a*b+c {counts[0]}, a/b {counts[1]}, sqrt {counts[2]}, "
              f"exp {counts[3]} (vs float64 rounded), log {counts[4]}")


def bench(seeds: list[int], sizes: list[int], hp_agents: int, wide: int) -> None:
    print("| run | agents | env steps/s | training s | wall s | IQM eval | note |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for name, overrides in (("default (16x16)", {}), ("zoo (64x64)", ZOO)):
        for seed in seeds:
            t0 = time.perf_counter()
            r = run_rlcl(seed, overrides)
            print(f"| single {name} seed {seed} | 1 | {r['sps']:,.0f} | | "
                  f"{time.perf_counter() - t0:.1f} | | 475 at step {r['to_475_step']} |",
                  flush=True)
    profiles = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("default", n, {}) for n in sizes] + [("purejaxrl-hp", hp_agents, PUREJAXRL_HP)]
        runs += [("default, 25,000 steps each", wide, {"total_timesteps": 25_000})] if wide else []
        for label, n, sets in runs:
            r = run_population(n, sets, Path(tmp) / f"{label[:7]}{n}")
            print(f"| population {label} | {n} | {r['sps']:,.0f} | {r['train_s']:.1f} | "
                  f"{r['wall_s']:.1f} | {r['iqm']:.1f} [{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] | "
                  f"{r['at_500']} at 500, {r['rss_mib']:,.0f} MiB |", flush=True)
            profiles.append(f"### population {label} x{n}: --profile\n{r['profile']}\n")
    print("\n" + "\n".join(profiles))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("info", "bench"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 64, 256])
    ap.add_argument("--hp-agents", type=int, default=32)
    ap.add_argument("--wide", type=int, default=1024, help="a last population, 25,000 steps "
                    "each (0: none)")
    args = ap.parse_args()
    if args.what == "info":
        info()
    else:
        bench(args.seeds, args.sizes, args.hp_agents, args.wide)
    return 0


if __name__ == "__main__":
    sys.exit(main())
